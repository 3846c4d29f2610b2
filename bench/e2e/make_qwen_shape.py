#!/usr/bin/env python3
"""Writes a random-init Qwen2 checkpoint of a real shape (default: DeepSeek-R1-Distill-Qwen-1.5B's) in bf16 with
transformers, plus the demo tokenizer, and a JSONL of long samples, for bench/e2e/lora_vs_peft.sh and
bench/e2e/quant_vs_bnb.sh."""
import argparse
import json
import pathlib
import shutil

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {  # config.json fields of the real models (no weights can be downloaded; shapes are public)
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=False, rope_theta=10000.0),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False, rope_theta=1000000.0),
    "14b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False, rope_theta=1000000.0),
    # For checking the bench scripts on a CPU: the same structure (GQA, untied head, in_features multiples of 64),
    # the demo tokenizer's vocabulary.
    "tiny": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=576, tie_word_embeddings=False, rope_theta=10000.0),
}

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--shape", default="1.5b", choices=sorted(SHAPES))
ap.add_argument("--samples", type=int, default=64)
args = ap.parse_args()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
config = Qwen2Config(**SHAPES[args.shape], max_position_embeddings=4096, rms_norm_eps=1e-6,
                     bos_token_id=567, eos_token_id=564)
with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
demo = pathlib.Path(__file__).resolve().parents[2] / "models" / "demo"
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(demo / f, out / f)
# Long responses: every example fills max_length, so loft and the peer see the same [batch, max_length] shapes.
words = "the sum of twelve and thirty is forty two so we divide by seven and find the answer ".split()
with open(out / "long.jsonl", "w") as f:
    for i in range(args.samples):
        text = " ".join(words[(i + j) % len(words)] for j in range(3000))
        f.write(json.dumps({"prompt": f"Problem {i}: reason step by step.", "response": text}) + "\n")
print(f"wrote {out}: {sum(p.numel() for p in model.parameters())/1e9:.2f}B parameters")
