#!/usr/bin/env bash
# recipes/qwen_math_lora_zero3.toml, the seed recipe, trains as shipped except for what a CPU test must change: the
# model (the demo Qwen2 config, random init, instead of the 1.5B folder), the data (40 MATH-format problems written
# here), fp32 instead of fp16, and a short, fast schedule. int8 base + LoRA + checkpointing + packing + the math
# dataset run together; the loss falls and a PEFT-format adapter is written.
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
"$loft" run "$recipes/qwen_math_lora_zero3.toml" model.path="$recipes/../models/demo" model.init=random \
  model.dtype=fp32 dataset.path="$work/math.jsonl" train.max_steps=12 train.grad_accum=2 train.warmup_steps=0 train.lr=1e-2 \
  train.log_every=1 train.save_every=6 output.dir="$work/runs" output.name=seed 2>&1 | tee "$work/log.txt"
run="$work/runs/seed"
grep -q "quantizer/int8 peft/lora offload/zero3 dataset/math optimizer/adamw_cpu" "$work/log.txt" || { echo "FAIL: the recipe's plugins were not used"; exit 1; }
test -s "$run/adapter/adapter_model.safetensors" || { echo "FAIL: no adapter written"; exit 1; }
test -s "$run/adapter/adapter_config.json" || { echo "FAIL: no adapter_config.json"; exit 1; }
test -d "$run/checkpoints/step-000006" || { echo "FAIL: no step-6 checkpoint"; exit 1; }
"$python" - "$run/metrics.jsonl" <<'PY'
import json, sys
losses = [json.loads(l)["loss"] for l in open(sys.argv[1])]
assert len(losses) == 12, f"expected 12 metric records, got {len(losses)}"
first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
print(f"seed recipe: loss {first:.3f} -> {last:.3f}")
assert last < first - 0.25, f"loss did not fall by 0.25: {first:.3f} -> {last:.3f}"
PY
echo "PASS"
