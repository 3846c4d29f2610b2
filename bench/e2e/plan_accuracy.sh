#!/usr/bin/env bash
# loft plan's accuracy (issue 11): for 12 recipes covering every offload part and quantizer on a random-init
# DeepSeek-R1-Distill-Qwen-1.5B-shaped model (bf16, LoRA r16 on all seven linears unless said), the predicted peaks
# (`loft plan --json`) against what a 4-step run measures: GPU as the caching allocator's peak reserved bytes (the
# plan's total less its context estimate, which the allocator does not see), host as the process's peak RSS
# (ru_maxrss: loading included, so against the larger of the plan's host total and its loading peak). Each within
# max(5%, 128 MiB) passes. Results: bench/results/plan_accuracy.json (a gpu-labelled test reads it) and the table.
# Usage (after scripts/device_build.sh): bash bench/e2e/plan_accuracy.sh [--cpu] [work dir]
#   --cpu   the tiny shape on the CPU, host only: checks the script without a GPU (results under the work dir only).
set -uo pipefail
cd "$(dirname "$0")/../.."
device=cuda
if [ "${1:-}" = "--cpu" ]; then device=cpu; shift; fi
work=${1:-/tmp/loft-bench-plan}
python=${LOFT_BENCH_PYTHON:-$(command -v python3)}
loft=build/bin/loft
if [ "$device" = cuda ]; then shape=1.5b batch=4 seq=1024 dtype=bf16 out=bench/results/plan_accuracy.json
else shape=tiny batch=2 seq=64 dtype=fp32 out=$work/plan_accuracy.json; fi
mkdir -p "$work"
note() { printf '\033[1m[plan_accuracy]\033[0m %s\n' "$*"; }
if [ ! -f "$work/model/.complete-$shape" ]; then
  rm -rf "$work/model"
  "$python" bench/e2e/make_qwen_shape.py --out "$work/model" --shape "$shape" --samples 32 || { note "could not write the model"; exit 1; }
  touch "$work/model/.complete-$shape"
fi
cat >"$work/base.toml" <<TOML
[model]
path = "$work/model"
dtype = "$dtype"
device = "$device"
[peft]
type = "lora"
r = 16
alpha = 32.0
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
[dataset]
type = "jsonl"
path = "$work/model/long.jsonl"
max_length = $seq
[train]
batch_size = $batch
lr = 1e-4
max_steps = 4
log_every = 1
[output]
dir = "$work/runs"
TOML
z3='offload.type="zero3"'
# name | overrides (every offload part and quantizer at least once)
cases=(
  "bf16-resident|"
  "bf16-recompute|offload.type=\"checkpoint\""
  "int8-resident|quantizer.type=\"int8\""
  "int8-recompute|quantizer.type=\"int8\" offload.type=\"checkpoint\""
  "nf4-recompute|quantizer.type=\"nf4\" offload.type=\"checkpoint\""
  "dora-int8-recompute|quantizer.type=\"int8\" offload.type=\"checkpoint\" peft.type=\"dora\""
  "bf16-r64-b1-resident|peft.r=64 peft.alpha=128.0 train.batch_size=1"
  "int8-zero3-params|quantizer.type=\"int8\" $z3 offload.activations=false"
  "int8-zero3-activations|quantizer.type=\"int8\" $z3 offload.params=false"
  "int8-zero3-all|quantizer.type=\"int8\" $z3 offload.optimizer=true optimizer.type=\"adamw_cpu\""
  "nf4-zero3-all|quantizer.type=\"nf4\" $z3 offload.optimizer=true optimizer.type=\"adamw_cpu\""
  "bf16-zero3-optimizer|$z3 offload.params=false offload.activations=false offload.optimizer=true optimizer.type=\"adamw_cpu\""
)
: >"$work/results.jsonl"
failed=0
for c in "${cases[@]}"; do
  name=${c%%|*}; read -r -a over <<<"${c#*|}"
  if ! "$loft" plan "$work/base.toml" "${over[@]}" --json >"$work/$name.plan.json" 2>"$work/$name.plan.err"; then
    note "$name: plan FAILED: $(tail -1 "$work/$name.plan.err")"; failed=1; continue
  fi
  rm -rf "$work/runs/$name"
  if ! "$loft" run "$work/base.toml" "${over[@]}" "output.name=\"$name\"" >"$work/$name.log" 2>&1; then
    note "$name: run FAILED; the end of $work/$name.log:"; tail -6 "$work/$name.log"; failed=1; continue
  fi
  "$python" - "$name" "$device" "$work/$name.plan.json" "$work/runs/$name/metrics.jsonl" "${c#*|}" >>"$work/results.jsonl" <<'PY'
import json, sys
name, device, plan_file, metrics_file, overrides = sys.argv[1:6]
plan = json.load(open(plan_file))
rows = [json.loads(l) for l in open(metrics_file) if l.strip()]
def verdict(predicted, measured):
    tol = max(0.05 * measured, 128 * 2**20)
    return {"predicted_bytes": predicted, "measured_bytes": measured, "error_bytes": predicted - measured,
            "tolerance_bytes": tol, "within": abs(predicted - measured) <= tol}
out = {"recipe": name, "overrides": overrides, "device": device}
host_pred = max(plan["host"]["total_bytes"], plan["host"].get("load_bytes", 0))
out["host"] = verdict(host_pred, max(r["peak_host_bytes"] for r in rows))
if device == "cuda":
    g = plan["gpu"]
    out["gpu"] = verdict(g["total_bytes"] - g["categories_bytes"]["context"], max(r["peak_gpu_bytes"] for r in rows))
print(json.dumps(out))
PY
  note "$name: $(tail -1 "$work/results.jsonl")"
done
"$python" - "$work/results.jsonl" "$out" "$shape" "$batch" "$seq" <<'PY'
import datetime, json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
doc = {"bench": "bench/e2e/plan_accuracy.sh", "shape": sys.argv[3], "batch": int(sys.argv[4]), "seq": int(sys.argv[5]),
       "date": datetime.date.today().isoformat(), "recipes": rows}
with open(sys.argv[2] + ".partial", "w") as f:
    json.dump(doc, f, indent=1)
import os
os.replace(sys.argv[2] + ".partial", sys.argv[2])
gib = 2**30
print(f'{"recipe":<24} {"GPU pred":>9} {"meas":>7} {"host pred":>10} {"meas":>7}  within')
for r in rows:
    g, h = r.get("gpu"), r["host"]
    gp = f'{g["predicted_bytes"] / gib:9.2f} {g["measured_bytes"] / gib:7.2f}' if g else f'{"-":>9} {"-":>7}'
    ok = all(x["within"] for x in (g, h) if x)
    print(f'{r["recipe"]:<24} {gp} {h["predicted_bytes"] / gib:10.2f} {h["measured_bytes"] / gib:7.2f}  {"yes" if ok else "NO"}')
print(f"wrote {sys.argv[2]}")
PY
exit $failed
