#!/usr/bin/env bash
# A checkpoint with a NaN (or Inf) in one linear weight: every quantizer, in-tree or third-party, is refused before it
# sees the weight, exit 2 with one line naming the module and the quantizer.skip entry; with that entry the model builds.
set -uo pipefail
loft=$1 model=$2 work=$3 testing_plugins=$4 python=$5
rm -rf "$work"; mkdir -p "$work/model"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
cp "$model"/* "$work/model/"
site=model.layers.1.mlp.up_proj
"$python" - "$work/model/model.safetensors" "$site.weight" <<'PY' || { echo "FAIL: cannot write the checkpoint"; exit 1; }
import sys, torch
from safetensors.torch import load_file, save_file
tensors = load_file(sys.argv[1])
tensors[sys.argv[2]][3, 4] = float("nan")
tensors[sys.argv[2]][7, 1] = float("inf")
save_file(tensors, sys.argv[1], metadata={"format": "pt"})
PY
cat > "$work/recipe.toml" <<TOML
[model]
path = "model"
device = "cpu"
dtype = "fp32"

[quantizer]
type = "none"

[peft]
type = "lora"
r = 4

[dataset]
type = "synthetic"
limit = 4
TOML
generate() { "$loft" generate "$work/recipe.toml" --plugin-path "$testing_plugins/quantizer/testing_absmax" --prompt "1 + 1?" --max-new-tokens 2 "$@"; }
for q in none int8 nf4 testing_absmax; do
  generate quantizer.type=$q >"$work/$q.out" 2>"$work/$q.err"; rc=$?
  [ $rc = 2 ] || fail "quantizer/$q: exit $rc, not 2"
  grep -q "$site.weight holds 2 non-finite values (NaN or Inf), which quantizer/$q cannot store" "$work/$q.err" \
    || fail "quantizer/$q: the module is not named"
  grep -qF "[quantizer] skip = [\"$site\"]" "$work/$q.err" || fail "quantizer/$q: no quantizer.skip hint"
  [ "$(grep -c '^E ' "$work/$q.err")" = 1 ] || fail "quantizer/$q: not one error line"
  grep -q "Exception raised from\|frame #" "$work/$q.err" && fail "quantizer/$q: a backtrace"
  [ $failures = 0 ] || sed 's/^/    /' "$work/$q.err"
done
# The hint works: the module stays dense (as loaded) and the rest is quantized.
generate quantizer.type=nf4 "quantizer.skip=[\"$site\"]" >"$work/skip.out" 2>"$work/skip.err" \
  || { fail "with quantizer.skip: exit $?"; sed 's/^/    /' "$work/skip.err"; }
grep -q "1 kept dense by quantizer.skip ($site)" "$work/skip.err" || fail "with quantizer.skip: the site is not dense"

[ $failures = 0 ] && echo "non-finite weights: refused for every quantizer, quantizer.skip keeps them dense"
exit $((failures > 0))
