#!/usr/bin/env python3
"""The peer: transformers + PEFT LoRA on the same checkpoint and batch shape as loft's run, optionally on a
bitsandbytes-quantized base (--quant 8bit: LLM.int8 with threshold 6; --quant nf4: NF4 with double quant and bf16
compute, as QLoRA); prints JSON with tokens/s (mean over steps after warm-up), peak GPU memory (reserved, as loft
reports) and the GPU bytes the model holds before training. --device cpu runs the same code without CUDA (peak
memory then null), for checking the script on a machine without a GPU."""
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
ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
ap.add_argument("--quant", default="none", choices=["none", "8bit", "nf4"],
                help="base weights: bf16, bitsandbytes LLM.int8 (Linear8bitLt), or bitsandbytes NF4 + double quant")
args = ap.parse_args()
cuda = args.device == "cuda"
torch.manual_seed(0)
load = dict(dtype=torch.bfloat16, attn_implementation="sdpa")
if args.quant != "none":
    import bitsandbytes  # noqa: F401  (fails here, with its own message, when it is not installed)
    from transformers import BitsAndBytesConfig

    if args.quant == "8bit":
        load["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    else:
        load["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                         bnb_4bit_use_double_quant=True,
                                                         bnb_4bit_compute_dtype=torch.bfloat16)
    # Quantized models are placed while loading (they cannot be moved afterwards). lm_head stays bf16 (transformers
    # skips the output embedding), as in loft. No prepare_model_for_kbit_training: it would turn on gradient
    # checkpointing and cast the norms and embeddings to fp32, so the peer would not run loft's configuration.
    load["device_map"] = {"": args.device}
model = AutoModelForCausalLM.from_pretrained(args.model, **load)
if args.quant == "none":
    model = model.to(args.device)
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.0, target_modules=targets))
quantized_linears = sum(1 for m in model.modules() if type(m).__module__.startswith("bitsandbytes."))
model_gpu_gib = torch.cuda.memory_allocated() / 2**30 if cuda else None
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
ids = torch.randint(0, 560, (args.batch, args.seq), device=args.device)
if cuda:
    torch.cuda.reset_peak_memory_stats()
times = []
for step in range(args.steps):
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
steady = times[args.warmup:] or times
peer = "transformers+peft" + ("" if args.quant == "none" else f"+bnb-{args.quant}")
print(json.dumps({"peer": peer, "quant": args.quant, "tokens_per_s": args.batch * args.seq * len(steady) / sum(steady),
                  "peak_gpu_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
                  "model_gpu_gib": model_gpu_gib, "quantized_linears": quantized_linears, "loss_last": loss.item()}))
