#!/usr/bin/env bash
# `loft plan` as a user drives it: the table, --json for machines, --fit writing a recipe that validates, and one
# clear line with exit 2 for every kind of bad input (nothing already written is touched then).
set -uo pipefail
loft=$1 recipes=$2 python=${3:-python3}
failures=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
expect() {  # expect <exit code> <regex the output must match> -- command...
  local want=$1 pattern=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $rc (want $want), output:"; echo "$out" | sed 's/^/    /'
    echo "    expected to match: $pattern"
    failures=$((failures + 1))
  else
    echo "ok: $*"
  fi
}
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
demo=$recipes/demo.toml

expect 0 'usage: loft plan' -- "$loft" plan --help
expect 0 'plan RECIPE' -- "$loft" --help
# The table: every category on each side, totals, the throughput model's line.
for category in context weights adapters gradients optimizer activations 'loss chunk' workspace data other total; do
  expect 0 "^  $category +[0-9.]+ (B|KiB|MiB|GiB)" -- "$loft" plan "$demo"
done
expect 0 'predicted throughput' -- "$loft" plan "$demo"
# A GPU plan on a machine without one: said, not refused.
expect 0 'planned for a CUDA device' -- "$loft" plan "$demo" model.device=cuda

# --json: the categories by their exact names, totals and budgets, parseable.
"$loft" plan "$demo" --json budget.host_memory=12GiB >"$tmp/plan.json" 2>"$tmp/err" || fail "plan --json exited $?: $(cat "$tmp/err")"
"$python" - "$tmp/plan.json" <<'PY' || failures=$((failures + 1))
import json, sys
p = json.load(open(sys.argv[1]))
gpu = ["context", "weights", "adapters", "gradients", "optimizer", "activations", "loss chunk", "workspace"]
host = ["weights", "optimizer", "activations", "data", "other"]
assert list(p["gpu"]["categories_bytes"]) == gpu, p["gpu"]
assert list(p["host"]["categories_bytes"]) == host, p["host"]
assert p["host"]["budget_bytes"] == 12 << 30 and p["host"]["fits"] is True, p["host"]
assert p["gpu"]["total_bytes"] == sum(p["gpu"]["categories_bytes"].values())
assert p["device"] == "cpu" and p["host"]["total_bytes"] >= p["gpu"]["total_bytes"]
assert p["predicted_tokens_per_s"] > 0
print("ok: plan --json has every category, totals and the budget verdict")
PY

# --fit: within a host budget on the CPU, the effective batch kept, the written recipe valid.
expect 0 'wrote .*fit.toml' -- "$loft" plan --fit "$demo" budget.host_memory=2GiB train.grad_accum=2 --out "$tmp/fit.toml"
expect 0 'ok' -- "$loft" validate "$tmp/fit.toml"
batch=$(sed -n 's/^batch_size = //p' "$tmp/fit.toml"); accum=$(sed -n 's/^grad_accum = //p' "$tmp/fit.toml")
[ "$((batch * accum))" = 16 ] || fail "fit changed the effective batch: batch_size $batch x grad_accum $accum != 16"
expect 0 '"choice"' -- "$loft" plan --fit "$demo" budget.host_memory=2GiB --json --out "$tmp/fit2.toml"
# A tighter budget moves to recompute or smaller micro-batches, and the prediction fits it.
"$loft" plan --fit "$demo" budget.host_memory=440MiB train.grad_accum=2 --json --out "$tmp/tight.toml" >"$tmp/tight.json" 2>"$tmp/err" \
  || fail "tight fit exited $?: $(cat "$tmp/err")"
"$python" -c "
import json, sys
p = json.load(open('$tmp/tight.json'))
assert p['host']['total_bytes'] <= 0.95 * (440 << 20), p['host']
print('ok: tight fit', p['fit']['choice'])" || failures=$((failures + 1))

# loft run --fit: fits, then runs the fitted recipe; the run folder keeps it.
expect 0 'fit: micro-batch' -- "$loft" run --fit "$demo" budget.host_memory=440MiB train.grad_accum=2 train.max_steps=2 \
  output.dir="$tmp/runs" output.name=fitted
recorded=$(sed -n 's/^batch_size = //p' "$tmp/runs/fitted/recipe.toml")
[ "$recorded" = "$(sed -n 's/^batch_size = //p' "$tmp/tight.toml")" ] \
  || fail "run --fit recorded batch_size $recorded, plan --fit chose $(sed -n 's/^batch_size = //p' "$tmp/tight.toml")"
expect 2 '--fit starts a new run' -- "$loft" run --fit "$demo" --resume "$tmp/runs/fitted"
expect 2 'has no \[budget\]' -- "$loft" run --fit "$demo" output.dir="$tmp/runs"

# Bad input: exit 2, one line saying what and how to fix; an existing --out file is left as it was.
echo "keep me" >"$tmp/keep.toml"
expect 2 'has no \[budget\]: set budget.gpu_memory' -- "$loft" plan --fit "$demo" --out "$tmp/keep.toml"
expect 2 'nothing fits .*budget .*Raise the budget' -- "$loft" plan --fit "$demo" budget.host_memory=1MiB --out "$tmp/keep.toml"
[ "$(cat "$tmp/keep.toml")" = "keep me" ] || fail "a failed --fit touched the --out file"
expect 2 '--out goes with --fit' -- "$loft" plan "$demo" --out "$tmp/x.toml"
expect 2 'name exactly one recipe' -- "$loft" plan
expect 2 "budget.gpu_memory: 'lots' is not a size" -- "$loft" plan "$demo" budget.gpu_memory=lots
expect 2 'model.path = "/nonexistent" does not exist' -- "$loft" plan "$demo" model.path=/nonexistent
expect 2 'no such recipe file' -- "$loft" plan /nonexistent.toml
expect 2 "unknown key 'bacth_size'" -- "$loft" plan "$demo" train.bacth_size=2
expect 2 'unrecognised option|unrecognized option' -- "$loft" plan "$demo" --bogus
out=$("$loft" plan --fit "$demo" budget.host_memory=1MiB 2>&1)
[ "$(wc -l <<<"$out")" = 1 ] || fail "a failed fit printed more than one line: $out"
grep -q 'terminate\|backtrace\|Exception raised' <<<"$out" && fail "a failed fit leaked a C++ error: $out"

[ "$failures" = 0 ] && echo "all plan CLI checks passed" || { echo "$failures failure(s)"; exit 1; }
