#!/usr/bin/env bash
# `loft run --resume` continues exactly: LoRA with dropout on a transformers-written Qwen2 (make_adapter_fixtures.py),
# CPU, fp32. 20 steps straight and 10 (--stop-after) + --resume + 10 give byte-identical adapter_model.safetensors
# and the same metrics per step.
set -euo pipefail
loft=$1 fixtures=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
cat > "$work/resume.toml" <<TOML
[model]
path = "$fixtures/base"
dtype = "fp32"
device = "cpu"

[peft]
type = "lora"
r = 8
alpha = 16
dropout = 0.1
targets = ["q_proj", "v_proj", "up_proj", "down_proj"]

[dataset]
type = "synthetic"
limit = 64
max_length = 96

[train]
batch_size = 4
grad_accum = 2
lr = 2e-3
schedule = "cosine"
warmup_steps = 3
max_steps = 20
weight_decay = 0.01
seed = 11

[output]
dir = "$work"
TOML
"$loft" run "$work/resume.toml" output.name=straight > "$work/straight.log" 2>&1
"$loft" run "$work/resume.toml" output.name=split --stop-after 10 > "$work/first.log" 2>&1
grep -q 'stopped after step 10 of 20' "$work/first.log" || { cat "$work/first.log"; exit 1; }
[ "$(wc -l < "$work/split/metrics.jsonl")" = 10 ] || { echo "expected 10 metric lines before resuming"; exit 1; }
"$loft" run "$work/resume.toml" output.name=split --resume "$work/split" > "$work/second.log" 2>&1
grep -q 'resumed from .*step-000010 at step 10' "$work/second.log" || { cat "$work/second.log"; exit 1; }
# Same losses, learning rates and gradient norms at every step (timings and memory aside).
strip() { sed -E 's/,"peak_[a-z_]+":[0-9.e+-]+//g; s/,"tokens_per_s":[0-9.e+-]+//' "$1"; }
diff <(strip "$work/straight/metrics.jsonl") <(strip "$work/split/metrics.jsonl")
cmp "$work/straight/adapter/adapter_model.safetensors" "$work/split/adapter/adapter_model.safetensors"
# Dropout is on: a run with another seed trains a different adapter (so the comparison above can fail).
"$loft" run "$work/resume.toml" output.name=other train.seed=12 > "$work/other.log" 2>&1
if cmp -s "$work/straight/adapter/adapter_model.safetensors" "$work/other/adapter/adapter_model.safetensors"; then
  echo "another seed gave the same adapter"; exit 1
fi
echo "20 straight == 10 + resume + 10: adapter_model.safetensors byte-identical, metrics equal"
