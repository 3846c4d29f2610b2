"""Writes a tiny random Qwen2 checkpoint with transformers (save_pretrained, fp32 safetensors) plus the demo model's
tokenizer, so `loft run` can train on it. Nothing is downloaded. Usage: make_tiny_qwen2.py --out DIR [--seed N]
"""
import argparse
import os
import shutil

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "..", "models", "demo")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # The demo tokenizer's vocabulary and special ids; two layers, GQA 2, untied lm_head.
    config = Qwen2Config(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=576, tie_word_embeddings=False, bos_token_id=567,
                         eos_token_id=564, max_position_embeddings=512)
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(config)
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))
    model.save_pretrained(args.out)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(DEMO, f), os.path.join(args.out, f))
    print(f"wrote {sorted(os.listdir(args.out))} to {args.out}")


if __name__ == "__main__":
    main()
