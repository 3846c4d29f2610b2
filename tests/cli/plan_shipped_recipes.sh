#!/usr/bin/env bash
# The shipped T4 recipes fit their own [budget] as `loft plan` predicts them for a GPU, from config.json alone (the
# real models' dimensions, written here: no weights are needed to plan): the seed recipe
# (DeepSeek-R1-Distill-Qwen-1.5B, int8, zero3) and the 7B example (Qwen2.5-7B dimensions, nf4, zero3), both under
# 15 GiB of GPU and 12 GiB of host memory; and the 7B example's settings on a 14B shape (Qwen2.5-14B dimensions), the
# issue's other T4 case. Planned as `model.init = "random"` so that no weights are needed (the
# plan is the same: the memory does not depend on the values), with the demo's tokenizer and a one-line dataset.
set -euo pipefail
loft=$1 recipes=$2 python=$3 work=$4
rm -rf "$work" && mkdir -p "$work/r1-1.5b" "$work/r1-7b" "$work/r1-14b"
"$python" - "$work" <<'PY'
import json, sys
common = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu", max_position_embeddings=131072,
              rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False, torch_dtype="bfloat16",
              bos_token_id=151646, eos_token_id=151643, attention_dropout=0.0, initializer_range=0.02)
shapes = {
    "r1-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                    num_key_value_heads=2, vocab_size=151936, rope_theta=10000.0),
    "r1-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, vocab_size=152064, rope_theta=10000.0),
    "r1-14b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                   num_key_value_heads=8, vocab_size=152064, rope_theta=1000000.0),
}
for name, shape in shapes.items():
    json.dump({**common, **shape}, open(f"{sys.argv[1]}/{name}/config.json", "w"), indent=1)
json.dump({"problem": "What is 1 + 1?", "solution": "$\\boxed{2}$", "level": "Level 1", "type": "Algebra"},
          open(f"{sys.argv[1]}/math.jsonl", "w"))
PY
for m in r1-1.5b r1-7b r1-14b; do cp "$recipes/../models/demo/tokenizer.json" "$work/$m/"; done
check() {  # check <recipe> <model dir> <json out> [overrides...]
  local recipe=$1 model=$2 out=$3; shift 3
  "$loft" plan "$recipe" model.path="$model" model.init=random model.device=cuda dataset.path="$work/math.jsonl" \
    --json "$@" >"$out"
}
check "$recipes/qwen_math_lora_zero3.toml" "$work/r1-1.5b" "$work/seed.json"
check "$recipes/qwen7b_math_nf4_zero3.toml" "$work/r1-7b" "$work/7b.json"
check "$recipes/qwen7b_math_nf4_zero3.toml" "$work/r1-14b" "$work/14b.json"
"$python" - "$work" <<'PY'
import json, sys
gib = 1 << 30
for name in ("seed", "7b", "14b"):
    p = json.load(open(f"{sys.argv[1]}/{name}.json"))
    g, h = p["gpu"], p["host"]
    print(f"{name}: GPU {g['total_bytes'] / gib:.2f} of {g['budget_bytes'] / gib:.0f} GiB, host {h['total_bytes'] / gib:.2f} "
          f"(loading {h.get('load_bytes', 0) / gib:.2f}) of {h['budget_bytes'] / gib:.0f} GiB")
    assert g["budget_bytes"] == 15 * gib and h["budget_bytes"] == 12 * gib, (g, h)
    assert g["fits"] and h["fits"], f"{name} does not fit its own budget: {g}, {h}"
PY
echo PASS
