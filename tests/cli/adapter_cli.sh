#!/usr/bin/env bash
# peft.adapter_path through the CLI on a transformers-written Qwen2 and a PEFT-written LoRA adapter
# (make_adapter_fixtures.py): `loft merge RECIPE` writes base + adapter with PEFT's logits, `loft eval` and `loft run`
# load it, and an adapter that disagrees with the recipe is refused (exit 2) with the key to set.
set -euo pipefail
loft=$1 python=$2 fixtures=$3 work=$4
rm -rf "$work"; mkdir -p "$work"
cat > "$work/adapter.toml" <<TOML
[model]
path = "$fixtures/base"
dtype = "fp32"
device = "cpu"

[peft]
type = "lora"
r = 8
alpha = 16
adapter_path = "$fixtures/lora"

[dataset]
type = "synthetic"
limit = 16

[train]
batch_size = 2
max_steps = 2

[output]
dir = "$work"
TOML
"$loft" merge "$work/adapter.toml" --out "$work/merged" 2>&1 | tee "$work/merge.log"
grep -q "merged $fixtures/lora into $work/merged" "$work/merge.log"
"$python" - "$work/merged" "$fixtures/lora/reference.safetensors" <<'PY'
import sys, torch
from safetensors.torch import load_file
from transformers import Qwen2ForCausalLM
model = Qwen2ForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
ref = load_file(sys.argv[2])
ids, lengths = ref["input_ids"], ref["lengths"]
mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
with torch.no_grad():
    logits = model(input_ids=ids, attention_mask=mask).logits
err = max(((logits[b, :n] - ref["logits"][b, :n]).abs().max() / ref["logits"][b, :n].abs().max()).item()
          for b, n in enumerate(lengths.tolist()))
print(f"merged base + PEFT adapter in transformers vs PEFT's logits: max relative error {err:.3g}")
sys.exit(0 if err <= 1e-5 else 1)
PY
"$loft" eval "$work/adapter.toml" --limit 2 --max-new-tokens 4 2>&1 | tee "$work/eval.log"
grep -q "peft: adapter weights loaded from $fixtures/lora" "$work/eval.log"
grep -Eq '^accuracy [0-2]/2' "$work/eval.log"
"$loft" run "$work/adapter.toml" output.name=run 2>&1 | tee "$work/run.log"
grep -q "peft: adapter weights loaded from $fixtures/lora" "$work/run.log"
[ -f "$work/run/adapter/adapter_model.safetensors" ]
# Refusals: exit 2, the message names the file and the key to set.
set +e
"$loft" run "$work/adapter.toml" peft.r=4 peft.rslora=true output.name=bad 2>"$work/bad.txt"; rc=$?
"$loft" merge "$work/adapter.toml" peft.adapter_path= --out "$work/none" 2>"$work/none.txt"; rc2=$?
set -e
cat "$work/bad.txt"
[ $rc = 2 ] || { echo "expected exit 2 for a disagreeing adapter, got $rc"; exit 1; }
grep -q "$fixtures/lora/adapter_config.json does not describe the adapter the recipe attaches" "$work/bad.txt"
grep -q "r = 8, but the recipe gives 4; set peft.r = 8" "$work/bad.txt"
grep -q "use_rslora = false, but the recipe gives true; set peft.rslora = false" "$work/bad.txt"
[ $rc2 = 2 ] && grep -q "nothing to merge" "$work/none.txt"
echo "adapter_path: merge, eval and run load it; disagreements refused"
