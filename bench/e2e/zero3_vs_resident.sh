#!/usr/bin/env bash
# On the GPU machine: offload/zero3 against resident training, LoRA r16 on all seven linears of a random-init
# DeepSeek-R1-Distill-Qwen-1.5B-shaped model, bf16 compute, int8 base, every block recomputed:
#   - batch 8 x 2048: resident (offload/checkpoint) vs zero3 with params + activations + optimizer (adamw_cpu) and
#     vs zero3 with params only (issue 11's target: all three parts >= 0.92x resident);
#   - batch 1 x 1024 (the seed recipe's micro-batch): peak GPU memory, resident vs zero3 with all parts;
#   - batch 4 x 1024 on a bf16 base: zero3 with all parts vs transformers + PEFT + DeepSpeed ZeRO-3 offload of params
#     and optimizer (bench/e2e/hf_peft_ds_zero3.py; its wheels travel in .deps/wheels, scripts/fetch_device_debs.sh).
# Each setup runs REPEAT times (default 3); prints the median tokens/s (after WARMUP steps) and peak reserved GPU
# memory of each, and the ratios. Results: <work>/results.jsonl.
# Usage (after scripts/device_build.sh): bash bench/e2e/zero3_vs_resident.sh [--cpu] [work dir]
#   --cpu   a tiny model of the same structure on the CPU, 3 steps: checks the script without a GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
device=cuda
if [ "${1:-}" = "--cpu" ]; then device=cpu; shift; fi
work=${1:-/tmp/loft-bench-zero3}
python=${LOFT_BENCH_PYTHON:-$(command -v python3)}
loft=build/bin/loft
repeat=${REPEAT:-3}
if [ "$device" = cuda ]; then
  shape=1.5b big_batch=8 big_seq=2048 steps=${STEPS:-8} warmup=3 dtype=bf16
else
  shape=tiny big_batch=2 big_seq=64 steps=${STEPS:-3} warmup=1 dtype=fp32 repeat=1
fi
mkdir -p "$work"
results="$work/results.jsonl"
: >"$results"
note() { printf '\033[1m[zero3_vs_resident]\033[0m %s\n' "$*"; }
if [ ! -f "$work/model/.complete-$shape" ]; then
  rm -rf "$work/model"
  "$python" bench/e2e/make_qwen_shape.py --out "$work/model" --shape "$shape" --samples 64 || { note "could not write the model"; exit 1; }
  touch "$work/model/.complete-$shape"
fi
cat >"$work/lora.toml" <<TOML
[model]
path = "$work/model"
dtype = "$dtype"
device = "$device"
[quantizer]
type = "int8"
[peft]
type = "lora"
r = 16
alpha = 32.0
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
[offload]
type = "checkpoint"
[dataset]
type = "jsonl"
path = "$work/model/long.jsonl"
max_length = $big_seq
[train]
batch_size = $big_batch
lr = 1e-4
max_steps = $steps
warmup_steps = 0
log_every = 1
[output]
dir = "$work/runs"
TOML

failed=0
# setup LABEL [overrides...]: REPEAT runs; records the median tokens/s and the largest peak.
setup() {
  local label=$1; shift
  local runs=()
  for r in $(seq 1 "$repeat"); do
    rm -rf "$work/runs/$label-$r"
    if ! "$loft" run "$work/lora.toml" "$@" "output.name=\"$label-$r\"" >"$work/$label-$r.log" 2>&1; then
      note "$label (run $r) FAILED; the end of $work/$label-$r.log:"; tail -12 "$work/$label-$r.log"
      printf '{"setup": "%s", "status": "failed"}\n' "$label" >>"$results"; failed=1; return
    fi
    runs+=("$work/runs/$label-$r/metrics.jsonl")
  done
  "$python" - "$label" "$warmup" "$*" "${runs[@]}" >>"$results" <<'PY'
import json, statistics, sys
label, warmup, overrides, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
speeds, peaks = [], []
for f in files:
    rows = [json.loads(l) for l in open(f) if l.strip()]
    steady = rows[warmup:] or rows
    speeds.append(sum(r["tokens_per_s"] for r in steady) / len(steady))
    peaks.append(max(r["peak_gpu_bytes"] for r in rows) / 2**30)
print(json.dumps({"setup": label, "status": "ok", "overrides": overrides, "runs": len(files),
                  "tokens_per_s_median": statistics.median(speeds), "tokens_per_s_min": min(speeds),
                  "tokens_per_s_max": max(speeds), "peak_gpu_gib": max(peaks)}))
PY
  note "$label: $(tail -1 "$results")"
}

zero3_all=('offload.type="zero3"' offload.params=true offload.activations=true offload.optimizer=true 'optimizer.type="adamw_cpu"')
setup resident
setup zero3-all "${zero3_all[@]}"
setup zero3-params 'offload.type="zero3"' offload.params=true offload.activations=false offload.optimizer=false
setup resident-b1 train.batch_size=1 dataset.max_length=1024
setup zero3-all-b1 train.batch_size=1 dataset.max_length=1024 "${zero3_all[@]}"
# The DeepSpeed peer's configuration (bf16 weights: 8-bit under ZeRO-3 is refused by that stack), batch 4 x 1024.
setup zero3-all-bf16-b4 'quantizer.type="none"' train.batch_size=4 dataset.max_length=1024 "${zero3_all[@]}"

# transformers + PEFT + DeepSpeed ZeRO-3 offload (params + optimizer on the CPU), same model and batch, REPEAT runs.
if [ "$device" = cuda ]; then
  pydeps=$(bash scripts/device_wheels.sh 2>/dev/null) && export PYTHONPATH="$pydeps${PYTHONPATH:+:$PYTHONPATH}"
  ds_runs=()
  for r in $(seq 1 "$repeat"); do
    if "$python" bench/e2e/hf_peft_ds_zero3.py --model "$work/model" --batch 4 --seq 1024 --steps 6 --warmup 2 \
        >"$work/deepspeed-$r.log" 2>&1; then
      ds_runs+=("$(tail -1 "$work/deepspeed-$r.log")")
    else
      note "deepspeed peer (run $r) FAILED; the end of $work/deepspeed-$r.log:"; tail -12 "$work/deepspeed-$r.log"
    fi
  done
  if [ ${#ds_runs[@]} -gt 0 ]; then
    "$python" - "${ds_runs[@]}" >>"$results" <<'PY'
import json, statistics, sys
rows = [json.loads(a) for a in sys.argv[1:]]
speeds = [r["tokens_per_s"] for r in rows]
print(json.dumps({"setup": "deepspeed-zero3-offload-b4", "status": "ok", "peer": rows[0]["peer"], "runs": len(rows),
                  "tokens_per_s_median": statistics.median(speeds), "tokens_per_s_min": min(speeds),
                  "tokens_per_s_max": max(speeds), "peak_gpu_gib": max(r["peak_gpu_gib"] for r in rows),
                  "peak_host_gib": max(r["peak_host_gib"] for r in rows)}))
PY
    note "deepspeed-zero3-offload-b4: $(tail -1 "$results")"
  else
    failed=1
  fi
fi

"$python" - "$results" <<'PY'
import json, sys
rows = {r["setup"]: r for r in map(json.loads, open(sys.argv[1])) if r.get("status") == "ok"}
print(f'{"setup":<28} {"tokens/s (median, min-max)":>30} {"peak GPU GiB":>13}')
for name, r in rows.items():
    print(f'{name:<28} {r["tokens_per_s_median"]:>12.0f} ({r["tokens_per_s_min"]:.0f}-{r["tokens_per_s_max"]:.0f}) {r["peak_gpu_gib"]:>13.2f}')
def ratio(a, b):
    if a in rows and b in rows:
        print(f'{a} / {b}: {rows[a]["tokens_per_s_median"] / rows[b]["tokens_per_s_median"]:.3f}x tokens/s, '
              f'{rows[a]["peak_gpu_gib"] / rows[b]["peak_gpu_gib"]:.3f}x peak GPU')
ratio("zero3-all", "resident"); ratio("zero3-params", "resident"); ratio("zero3-all-b1", "resident-b1")
ratio("zero3-all-bf16-b4", "deepspeed-zero3-offload-b4")
PY
exit $failed
