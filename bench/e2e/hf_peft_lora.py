#!/usr/bin/env python3
"""The peer: transformers + PEFT LoRA on the same checkpoint and batch shape as loft's run; prints JSON with
tokens/s (mean over steps after warm-up) and peak GPU memory (reserved, as loft reports)."""
import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--seq", type=int, default=1024)
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--r", type=int, default=16)
args = ap.parse_args()
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.0, target_modules=targets))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, 560, (args.batch, args.seq), device="cuda")
torch.cuda.reset_peak_memory_stats()
times = []
for step in range(args.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
steady = times[args.warmup:]
print(json.dumps({"peer": "transformers+peft", "tokens_per_s": args.batch * args.seq * len(steady) / sum(steady),
                  "peak_gpu_gib": torch.cuda.max_memory_reserved() / 2**30, "loss_last": loss.item()}))
