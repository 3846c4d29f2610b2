#!/usr/bin/env bash
# On the GPU machine: LoRA r16 on all seven linears of a random-init DeepSeek-R1-Distill-Qwen-1.5B-shaped model, bf16
# compute, batch 4 x 1024, no recompute, the same steps for every setup, in one run: loft with quantizer none, int8
# (once per matmul mode the plugin offers) and nf4; transformers+PEFT on a bf16 base and on a bitsandbytes 8-bit
# (LLM.int8) and 4-bit NF4 (double quant, bf16 compute) base. Prints tokens/s and peak GPU memory of each, then
# loft-quantized / loft-bf16 (target >= 0.8) and loft / HF per quantizer.
# Usage (after scripts/device_build.sh with .deps carried): bash bench/e2e/quant_vs_bnb.sh [--cpu] [work dir]
#   --cpu   a tiny model of the same structure on the CPU, 4 steps of batch 2 x 64: checks the script without a GPU.
# A missing loft quantizer plugin or an unimportable bitsandbytes skips those setups with a note; a setup that fails
# is reported and the others still run; the exit status is 1 when a loft setup failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
device=cuda
if [ "${1:-}" = "--cpu" ]; then device=cpu; shift; fi
work=${1:-/tmp/loft-bench-quant}
python=${LOFT_BENCH_PYTHON:-$(command -v python3)}
loft=build/bin/loft
if [ "$device" = cuda ]; then
  shape=1.5b batch=4 seq=1024 steps=${STEPS:-12} warmup=3
else
  shape=tiny batch=2 seq=64 steps=${STEPS:-4} warmup=1
fi
mkdir -p "$work"
results="$work/results.jsonl"
: >"$results"
failed=0
note() { printf '\033[1m[quant_vs_bnb]\033[0m %s\n' "$*"; }

# bitsandbytes from .deps/wheels where the system Python lacks it (the GPU machine has no internet).
if ! "$python" -c "import bitsandbytes" >/dev/null 2>&1; then
  pydeps=$(bash scripts/device_wheels.sh) || pydeps=""
  [ -n "$pydeps" ] && export PYTHONPATH="$pydeps${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ -f "$work/model/.complete-$shape" ]; then
  note "reusing the $shape checkpoint in $work/model"
else
  rm -rf "$work/model"
  "$python" bench/e2e/make_qwen_shape.py --out "$work/model" --shape "$shape" || { note "could not write the model"; exit 1; }
  touch "$work/model/.complete-$shape"
fi

cat >"$work/lora.toml" <<TOML
[model]
path = "$work/model"
dtype = "bf16"
device = "$device"
[quantizer]
type = "none"
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
max_steps = $steps
warmup_steps = 0
log_every = 1
[output]
dir = "$work/runs"
TOML

# record SETUP KIND STATUS [JSON fields]: one line of results.jsonl.
record() { printf '{"setup": "%s", "kind": "%s", "status": "%s"%s}\n' "$1" "$2" "$3" "${4:+, $4}" >>"$results"; }

# loft_setup LABEL [overrides...]: one loft run with the recipe above; tokens/s averaged after the warm-up steps.
loft_setup() {
  local label=$1; shift
  rm -rf "$work/runs/$label"
  note "loft $label: $loft run lora.toml${*:+ $*} output.name=\"$label\""
  if "$loft" run "$work/lora.toml" "$@" "output.name=\"$label\"" >"$work/$label.log" 2>&1; then
    local fields
    fields=$("$python" - "$work/runs/$label/metrics.jsonl" "$warmup" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steady = rows[int(sys.argv[2]):] or rows
print(f'"tokens_per_s": {sum(r["tokens_per_s"] for r in steady) / len(steady):.1f}, '
      f'"peak_gpu_gib": {max(r["peak_gpu_bytes"] for r in rows) / 2**30:.3f}, "loss_last": {rows[-1]["loss"]:.4f}')
PY
)
    record "$label" loft ok "$fields"
  else
    note "loft $label FAILED; the end of $work/$label.log:"
    tail -15 "$work/$label.log"
    record "$label" loft "failed (see $work/$label.log)"
    failed=1
  fi
}

# The quantizer plugins this build has, and the options they declare (from manifests; no plugin code runs).
has_plugin() { "$loft" plugins list 2>/dev/null | grep -Eq "^[[:space:]]*quantizer[[:space:]/]+$1([[:space:]]|$)"; }
describe() { "$loft" plugins describe "quantizer/$1" 2>/dev/null; }

loft_setup loft-bf16
if has_plugin int8; then
  # One run per matmul mode the manifest offers (both when it declares the option without choices).
  matmul=$(describe int8 | grep -E '^[[:space:]]+matmul[[:space:]]' || true)
  if [ -z "$matmul" ]; then
    loft_setup loft-int8 'quantizer.type="int8"'
  else
    for mode in dequant int8; do
      if [[ "$matmul" != *"one of"* || "$matmul" =~ (one of |\|)$mode(\||$) ]]; then
        loft_setup "loft-int8-$mode" 'quantizer.type="int8"' "quantizer.matmul=\"$mode\""
      fi
    done
  fi
else
  note "loft int8 skipped: quantizer/int8 is not built (no plugin.toml found by '$loft plugins list')"
  record loft-int8 loft "skipped: quantizer/int8 not built"
fi
if has_plugin nf4; then
  nf4_args=('quantizer.type="nf4"')
  # The peer's configuration (NF4, blocks of 64, double quant), for each of those options the plugin declares.
  options=$(describe nf4)
  grep -Eq '^[[:space:]]+quant_type[[:space:]]' <<<"$options" && nf4_args+=('quantizer.quant_type="nf4"')
  grep -Eq '^[[:space:]]+double_quant[[:space:]]' <<<"$options" && nf4_args+=('quantizer.double_quant=true')
  grep -Eq '^[[:space:]]+blocksize[[:space:]]' <<<"$options" && nf4_args+=('quantizer.blocksize=64')
  loft_setup loft-nf4 "${nf4_args[@]}"
else
  note "loft nf4 skipped: quantizer/nf4 is not built (no plugin.toml found by '$loft plugins list')"
  record loft-nf4 loft "skipped: quantizer/nf4 not built"
fi

# hf_setup LABEL QUANT: the transformers+PEFT peer on the same checkpoint and shapes.
hf_setup() {
  local label=$1 quant=$2
  note "hf $label: hf_peft_lora.py --quant $quant"
  local out
  if out=$("$python" bench/e2e/hf_peft_lora.py --model "$work/model" --device "$device" --batch "$batch" --seq "$seq" \
             --steps "$steps" --warmup "$warmup" --quant "$quant" 2>"$work/$label.log" | tail -1) && [ -n "$out" ]; then
    "$python" -c 'import json, sys; print(json.dumps({"setup": sys.argv[1], "kind": "hf", "status": "ok", **json.loads(sys.argv[2])}))' \
      "$label" "$out" >>"$results"
  else
    note "hf $label FAILED; the end of $work/$label.log:"
    tail -15 "$work/$label.log"
    record "$label" hf "failed (see $work/$label.log)"
  fi
}

hf_setup hf-bf16 none
if bnb_error=$("$python" -c "import bitsandbytes" 2>&1); then
  hf_setup hf-bnb-8bit 8bit
  hf_setup hf-bnb-nf4 nf4
else
  note "HF+bitsandbytes peer skipped: python cannot import bitsandbytes (${bnb_error##*$'\n'}); on the GPU machine run scripts/fetch_device_debs.sh here first and carry .deps"
  record hf-bnb-8bit hf "skipped: bitsandbytes not importable"
  record hf-bnb-nf4 hf "skipped: bitsandbytes not importable"
fi

"$python" - "$results" "$device" "$shape" "$batch" "$seq" "$steps" "$warmup" <<'PY'
import json, sys
path, device, shape, batch, seq, steps, warmup = sys.argv[1:]
rows = {}
for line in open(path):
    r = json.loads(line)
    rows[r["setup"]] = r
print(f"\nLoRA r16, all 7 linears, bf16 compute, {shape} shape, batch {batch} x {seq}, {steps} steps "
      f"(tokens/s over steps after {warmup}), device {device}")
print(f"{'setup':<20} {'tokens/s':>10} {'peak GPU GiB':>13} {'model GPU GiB':>14}  status")
fmt = lambda v, spec: format("-", ">" + spec.split(".")[0].rstrip("f")) if v is None else format(v, spec)
for name, r in rows.items():
    print(f"{name:<20} {fmt(r.get('tokens_per_s'), '10.0f')} {fmt(r.get('peak_gpu_gib'), '13.2f')} "
          f"{fmt(r.get('model_gpu_gib'), '14.2f')}  {r['status']}")

def ratio(a, b, target=None):
    ra, rb = rows.get(a, {}), rows.get(b, {})
    if ra.get("status") != "ok" or rb.get("status") != "ok":
        return
    t = ra["tokens_per_s"] / rb["tokens_per_s"]
    line = f"{a + ' / ' + b:<36} tokens/s {t:5.2f}x"
    if ra.get("peak_gpu_gib") and rb.get("peak_gpu_gib"):
        line += f"   peak GPU {ra['peak_gpu_gib'] / rb['peak_gpu_gib']:5.2f}x"
    if target is not None:
        line += f"   (target >= {target}: {'ok' if t >= target else 'BELOW'})"
    print(line)

print()
loft_q = [n for n in rows if n.startswith("loft-") and n != "loft-bf16"]
for n in loft_q:
    ratio(n, "loft-bf16", 0.8)
ratio("hf-bnb-8bit", "hf-bf16")
ratio("hf-bnb-nf4", "hf-bf16")
ratio("loft-bf16", "hf-bf16")
for n in loft_q:
    ratio(n, "hf-bnb-nf4" if "nf4" in n else "hf-bnb-8bit")
PY
exit $failed
