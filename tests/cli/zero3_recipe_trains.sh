#!/usr/bin/env bash
# The seed recipe (recipes/qwen_math_lora_zero3.toml) with [offload] type = "zero3" (every part on: params streamed
# from pinned host, activations to the host, the optimizer on the host) and [optimizer] type = "adamw_cpu", trains
# on the CPU as seed_recipe_trains.sh does (demo model, random init, fp32, 40 MATH-format problems, short schedule):
# the loss falls and an adapter is written. Also: optimizer = true with another optimizer is refused by validation,
# naming both keys, exit 2.
set -euo pipefail
loft=$1 recipes=$2 work=$3 python=$4
rm -rf "$work" && mkdir -p "$work"
"$python" - "$work/math.jsonl" <<'PY'
import json, random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for i in range(40):
        a, b = random.randint(2, 99), random.randint(2, 99)
        f.write(json.dumps({"problem": f"What is {a} + {b}?",
                            "solution": f"We add: {a} + {b} = {a + b}. The answer is $\\boxed{{{a + b}}}$.",
                            "level": f"Level {1 + i % 5}", "type": "Algebra"}) + "\n")
PY
# A copy of the seed recipe whose [offload] section is zero3's (the rest as shipped), plus the host optimizer.
"$python" - "$recipes/qwen_math_lora_zero3.toml" "$work/zero3.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
offload = ('[offload]\ntype = "zero3"\nparams = true\nactivations = true\noptimizer = true\nrecompute = true\n'
           'prefetch_blocks = 1\n')
text, n = re.subn(r'\[offload\]\n(?:[^\[\n][^\n]*\n|\n)*?(?=\n\[)', offload, text)
assert n == 1, "the seed recipe has no [offload] section to replace"
text = re.sub(r'\[optimizer\]\n(?:[^\[\n][^\n]*\n)*', '', text) + '\n[optimizer]\ntype = "adamw_cpu"\n'
open(sys.argv[2], "w").write(text)
PY
overrides=(model.path="$recipes/../models/demo" model.init=random model.dtype=fp32 dataset.path="$work/math.jsonl"
           train.max_steps=12 train.grad_accum=2 train.warmup_steps=0 train.lr=1e-2 train.log_every=1
           train.save_every=6 output.dir="$work/runs" output.name=zero3)

# optimizer = true needs the host optimizer: refused before anything loads, naming both keys.
set +e
"$loft" validate "$work/zero3.toml" "${overrides[@]}" optimizer.type=adamw > "$work/refused.txt" 2>&1
rc=$?
set -e
cat "$work/refused.txt"
[ "$rc" = 2 ] || { echo "FAIL: expected exit 2 for offload.optimizer = true with optimizer.type = adamw, got $rc"; exit 1; }
grep -q 'offload.optimizer = true (plugin offload/zero3) needs optimizer.type = "adamw_cpu"' "$work/refused.txt" ||
  { echo "FAIL: the refusal does not name offload.optimizer and optimizer.type"; exit 1; }

"$loft" run "$work/zero3.toml" "${overrides[@]}" 2>&1 | tee "$work/log.txt"
run="$work/runs/zero3"
grep -q "offload/zero3 dataset/math" "$work/log.txt" || { echo "FAIL: offload/zero3 was not used"; exit 1; }
grep -q "offload/zero3: params streamed from pinned host, activations to pinned host, optimizer on host" "$work/log.txt" ||
  { echo "FAIL: zero3's parts were not all on"; exit 1; }
test -s "$run/adapter/adapter_model.safetensors" || { echo "FAIL: no adapter written"; exit 1; }
test -d "$run/checkpoints/step-000006" || { echo "FAIL: no step-6 checkpoint"; exit 1; }
"$python" - "$run/metrics.jsonl" <<'PY'
import json, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[1])]
assert len(losses) == 12, f"expected 12 metric records, got {len(losses)}"
first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
print(f"seed recipe with offload/zero3: loss {first:.3f} -> {last:.3f}")
assert last < first - 0.25, f"loss did not fall by 0.25: {first:.3f} -> {last:.3f}"
PY

# A zero3 run merges: the model is built resident for the merge (streamed weights are readable only inside their
# blocks), and the merged weights equal those of the same adapter merged into a model built without offload.
"$loft" merge "$run" --out "$work/merged" 2>&1 | tee "$work/merge.txt"
grep -q 'merge: \[offload\] type = "zero3" does not apply to merging' "$work/merge.txt" ||
  { echo "FAIL: merge did not say it builds the model resident"; exit 1; }
"$python" - "$work/zero3.toml" "$work/resident.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text, n = re.subn(r'\[offload\]\n(?:[^\[\n][^\n]*\n|\n)*?(?=\n\[|$)', '[offload]\ntype = "none"\n', text)
assert n == 1, "no [offload] section"
open(sys.argv[2], "w").write(text.replace('type = "adamw_cpu"', 'type = "adamw"'))
PY
"$loft" merge "$work/resident.toml" "${overrides[@]}" peft.adapter_path="$run/adapter" --out "$work/merged_none" 2>&1 |
  tail -2
"$python" - "$work/merged" "$work/merged_none" <<'PY'
import sys
from safetensors.torch import load_file
import glob, os
a = {}
b = {}
for f in glob.glob(os.path.join(sys.argv[1], "*.safetensors")): a.update(load_file(f))
for f in glob.glob(os.path.join(sys.argv[2], "*.safetensors")): b.update(load_file(f))
assert a.keys() == b.keys() and a, f"different tensors: {sorted(set(a) ^ set(b))[:5]}"
bad = [k for k in a if not (a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and (a[k] == b[k]).all())]
assert not bad, f"merged weights differ from the resident merge: {bad[:5]}"
print(f"zero3 run merged: {len(a)} tensors equal to the resident merge")
PY
echo "PASS"
