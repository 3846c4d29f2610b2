#!/usr/bin/env python3
"""The seed notebook's stack as a peer: transformers + PEFT LoRA (r16, alpha 32, all seven linears) under DeepSpeed
ZeRO-3 with CPU offload of the parameters and the optimizer state, gradient checkpointing, bf16, one process on one
GPU (no launcher: the single-rank environment is set here). Prints one JSON line: tokens/s (mean over the steps after
warm-up), peak reserved GPU memory and the process's peak host RSS.
--optimizer torch: torch's AdamW on the offloaded fp32 partitions (DeepSpeed allows it with
zero_force_ds_cpu_optimizer = false); --optimizer ds: DeepSpeedCPUAdam (JIT-compiled on first use, about a minute)."""
import argparse
import json
import os
import resource
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--seq", type=int, default=1024)
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--r", type=int, default=16)
ap.add_argument("--optimizer", default="torch", choices=["torch", "ds"])
args = ap.parse_args()

for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "RANK": "0", "LOCAL_RANK": "0",
                   "WORLD_SIZE": "1"}.items():
    os.environ.setdefault(key, value)
import deepspeed  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.integrations import HfDeepSpeedConfig  # noqa: E402

config = {
    "train_micro_batch_size_per_gpu": args.batch,
    "gradient_accumulation_steps": 1,
    "gradient_clipping": 1.0,
    "bf16": {"enabled": True},
    "zero_optimization": {
        "stage": 3,
        "offload_param": {"device": "cpu", "pin_memory": True},
        "offload_optimizer": {"device": "cpu", "pin_memory": True},
        "overlap_comm": True,
        "contiguous_gradients": True,
        "stage3_gather_16bit_weights_on_model_save": True,
    },
    "zero_force_ds_cpu_optimizer": args.optimizer == "ds",
    "steps_per_print": 10**9,
    "wall_clock_breakdown": False,
}
deepspeed.init_distributed(dist_backend="nccl")
keep = HfDeepSpeedConfig(config)  # must be alive while loading: transformers then partitions the weights as it loads
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16, attn_implementation="sdpa")
model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
model.enable_input_require_grads()
model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.0,
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj"]))
model.train()  # from_pretrained leaves eval mode, where transformers silently skips gradient checkpointing
trainable = [p for p in model.parameters() if p.requires_grad]
if args.optimizer == "ds":
    from deepspeed.ops.adam import DeepSpeedCPUAdam
    optimizer = DeepSpeedCPUAdam(trainable, lr=1e-4)
else:
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
ids = torch.randint(0, 560, (args.batch, args.seq), device=engine.device)
torch.cuda.reset_peak_memory_stats()
times = []
for step in range(args.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss = engine(input_ids=ids, labels=ids).loss
    engine.backward(loss)
    engine.step()
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
steady = times[args.warmup:] or times
print(json.dumps({"peer": f"transformers+peft+deepspeed-zero3-offload ({args.optimizer} adamw)",
                  "tokens_per_s": args.batch * args.seq * len(steady) / sum(steady),
                  "peak_gpu_gib": torch.cuda.max_memory_reserved() / 2**30,
                  "peak_host_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "loss_last": loss.item(), "steps": args.steps, "warmup": args.warmup}))
