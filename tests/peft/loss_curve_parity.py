#!/usr/bin/env python3
"""30-step training-loss parity: `loft run` against transformers + PEFT with everything else equal.

Usage: loss_curve_parity.py LOFT FIXTURE_DIR WORK_DIR [--lora-plus-ratio R]   (FIXTURE_DIR from make_adapter_fixtures.py)

Both sides start from the same weights: the transformers-written base and the PEFT-written LoRA adapter with non-zero B
(fixture "lora", loaded by loft through peft.adapter_path). Both train on the same token batches: the examples are
`loft data --tokens` (loft's own tokenization), in loft's order (a torch.randperm per epoch seeded with
seed * 1000003 + epoch, the same generator in LibTorch and PyTorch; each step's label-token count is checked against
loft's metrics.jsonl). The step: right-padded micro-batches of 4, gradient accumulation 2, the loss summed over the
step's label tokens and divided by their count, clip_grad_norm_, torch.optim.AdamW (betas, eps, weight decay),
transformers' get_linear_schedule_with_warmup; dropout 0, fp32, CPU. Checks |loss_loft - loss_peft| <= 1e-4 at every
step, and that the trained adapters agree. Exit 1 on failure.

With --lora-plus-ratio R, loft runs with peft.lora_plus_ratio = R and the reference is LoRA+ written out by hand:
torch.optim.AdamW over parameter groups, lora_A (and any other matrix) at lr with weight decay, lora_B (and any 1-D
tensor) at R x lr, with weight decay unless the name contains "bias" (the grouping of PEFT's
create_loraplus_optimizer, which is not called); the schedule scales every group.
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Qwen2ForCausalLM, get_linear_schedule_with_warmup

STEPS, BATCH, ACCUM, SEED = 30, 4, 2, 5
LR, WARMUP, WD, BETAS, EPS, CLIP = 2e-3, 4, 0.01, (0.9, 0.98), 1e-7, 0.5
LOSS_TOLERANCE = 1e-4

RECIPE = f"""
[model]
path = "{{fixtures}}/base"
dtype = "fp32"
device = "cpu"

[peft]
type = "lora"
r = 8
alpha = 16
dropout = 0.0
adapter_path = "{{fixtures}}/lora"

[dataset]
type = "synthetic"
limit = 96
max_level = 2
max_length = 96

[train]
batch_size = {BATCH}
grad_accum = {ACCUM}
lr = {LR}
schedule = "linear"
warmup_steps = {WARMUP}
max_steps = {STEPS}
max_grad_norm = {CLIP}
weight_decay = {WD}
adam_beta1 = {BETAS[0]}
adam_beta2 = {BETAS[1]}
adam_eps = {EPS}
seed = {SEED}

[output]
dir = "{{work}}"
name = "run"
"""


def loft_order(n, step):
    # Trainer::examples_for_step: the k-th example of step s is global index s * per_step + k of the epoch permutation.
    per_step = BATCH * ACCUM
    out = []
    for k in range(per_step):
        g = step * per_step + k
        epoch, index = divmod(g, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(SEED * 1000003 + epoch))
        out.append(int(perm[index]))
    return out


def collate(examples, pad_id):
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return ids, labels, mask


def reference_optimizer(model, ratio):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if ratio == 0:
        return torch.optim.AdamW([p for _, p in named], lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    group_a = [p for n, p in named if not ("lora_B" in n or p.ndim == 1)]
    group_b = [p for n, p in named if ("lora_B" in n or p.ndim == 1) and "bias" not in n]
    group_b_no_decay = [p for n, p in named if ("lora_B" in n or p.ndim == 1) and "bias" in n]
    assert group_a and group_b, "the fixture adapter should have lora_A and lora_B weights"
    groups = [{"params": group_a, "lr": LR, "weight_decay": WD},
              {"params": group_b, "lr": LR * ratio, "weight_decay": WD}]
    if group_b_no_decay:
        groups.append({"params": group_b_no_decay, "lr": LR * ratio, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)


def main():
    args = sys.argv[1:]
    ratio = 0.0
    if "--lora-plus-ratio" in args:
        at = args.index("--lora-plus-ratio")
        ratio = float(args[at + 1])
        del args[at:at + 2]
    loft, fixtures, work = args[0], os.path.abspath(args[1]), os.path.abspath(args[2])
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and steady on a busy machine
    shutil.rmtree(work, ignore_errors=True)  # a run folder of an earlier test run would be appended to
    os.makedirs(work)
    recipe = os.path.join(work, "parity.toml")
    with open(recipe, "w") as f:
        text = RECIPE.replace("{fixtures}", fixtures).replace("{work}", work)
        if ratio:
            text = text.replace('dropout = 0.0\n', f'dropout = 0.0\nlora_plus_ratio = {ratio}\n')
        f.write(text)
    tokens = subprocess.run([loft, "data", recipe, "--tokens", "--limit", "0"], check=True, capture_output=True,
                            text=True).stdout
    examples = [json.loads(line) for line in tokens.splitlines() if line.strip()]
    subprocess.run([loft, "run", recipe], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(work, "run", "metrics.jsonl")) as f:
        metrics = [json.loads(line) for line in f]
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1)), "loft logged other steps"

    base = Qwen2ForCausalLM.from_pretrained(os.path.join(fixtures, "base"), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, os.path.join(fixtures, "lora"), is_trainable=True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = reference_optimizer(model, ratio)
    schedule = get_linear_schedule_with_warmup(optimizer, WARMUP, STEPS)
    worst, failed = 0.0, False
    for step in range(STEPS):
        chosen = [examples[i] for i in loft_order(len(examples), step)]
        micro = [collate(chosen[i * BATCH:(i + 1) * BATCH], pad_id=0) for i in range(ACCUM)]
        label_tokens = sum(int((labels[:, 1:] != -100).sum()) for _, labels, _ in micro)
        loss_sum = 0.0
        for ids, labels, mask in micro:
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                                     labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
            (loss / label_tokens).backward()
            loss_sum += loss.item()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ours, theirs = loss_sum / label_tokens, metrics[step]["loss"]
        diff = abs(ours - theirs)
        worst = max(worst, diff)
        if metrics[step]["label_tokens"] != label_tokens:
            print(f"step {step + 1}: loft trained on {metrics[step]['label_tokens']} label tokens, PEFT on "
                  f"{label_tokens}: the batches differ")
            failed = True
        if diff > LOSS_TOLERANCE:
            failed = True
        print(f"step {step + 1:2d}: loss loft {theirs:.7f} PEFT {ours:.7f} |diff| {diff:.2e}")
    print(f"max |loss diff| over {STEPS} steps: {worst:.3g} (tolerance {LOSS_TOLERANCE})")

    # The trained adapters: loft's run/adapter against PEFT's live weights.
    saved = load_file(os.path.join(work, "run", "adapter", "adapter_model.safetensors"))
    state = model.state_dict()
    adapter_err = 0.0
    for name, t in saved.items():
        live = state[name.replace(".weight", ".default.weight")]
        adapter_err = max(adapter_err, ((t - live).abs().max() / live.abs().max()).item())
    print(f"trained adapter: max relative difference per tensor {adapter_err:.3g}")
    if adapter_err > 1e-3:
        failed = True
    first, last = metrics[0]["loss"], metrics[-1]["loss"]
    if not last < 0.9 * first:
        print(f"the loss did not fall ({first:.4f} -> {last:.4f}): the test would prove little")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
