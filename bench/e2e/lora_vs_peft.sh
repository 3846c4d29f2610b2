#!/usr/bin/env bash
# On the GPU machine: LoRA r16 on all seven linears of a random-init DeepSeek-R1-Distill-Qwen-1.5B-shaped model, bf16,
# batch 4 x 1024, no recompute; loft and transformers+PEFT in one run, same checkpoint and shapes. Prints both and the
# ratios. Usage (after scripts/device_build.sh): bash bench/e2e/lora_vs_peft.sh [work dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/loft-bench}
python=$(command -v python3)
mkdir -p "$work"
"$python" bench/e2e/make_qwen_shape.py --out "$work/q15"
cat >"$work/lora.toml" <<TOML
[model]
path = "$work/q15"
dtype = "bf16"
device = "cuda"
[peft]
type = "lora"
r = 16
alpha = 32.0
[dataset]
type = "jsonl"
path = "$work/q15/long.jsonl"
max_length = 1024
[train]
batch_size = 4
lr = 1e-4
max_steps = 12
warmup_steps = 0
log_every = 1
[output]
dir = "$work/runs"
name = "lora"
TOML
rm -rf "$work/runs"
build/bin/loft run "$work/lora.toml" 2>&1 | tee "$work/loft.log"
"$python" - "$work/runs/lora/metrics.jsonl" >"$work/loft.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][3:]
print(json.dumps({"peer": "loft", "tokens_per_s": sum(r["tokens_per_s"] for r in rows) / len(rows),
                  "peak_gpu_gib": max(r["peak_gpu_bytes"] for r in rows) / 2**30}))
PY
"$python" bench/e2e/hf_peft_lora.py --model "$work/q15" --batch 4 --seq 1024 --steps 12 >"$work/peer.json"
cat "$work/loft.json" "$work/peer.json"
"$python" - "$work/loft.json" "$work/peer.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"loft/peer tokens/s: {a['tokens_per_s']:.0f} / {b['tokens_per_s']:.0f} = {a['tokens_per_s']/b['tokens_per_s']:.2f}x; "
      f"peak GPU GiB: {a['peak_gpu_gib']:.2f} / {b['peak_gpu_gib']:.2f} = {a['peak_gpu_gib']/b['peak_gpu_gib']:.2f}x")
PY
