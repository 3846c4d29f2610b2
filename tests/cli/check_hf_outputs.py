#!/usr/bin/env python3
"""Checks a loft run's outputs with the Hugging Face stack: a full fine-tune's model/ folder loads in transformers and
its weights equal loft's file; a LoRA run's adapter/ folder loads in PEFT with every tensor taken up."""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

kind, folder = sys.argv[1], sys.argv[2]
if kind == "model":
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    saved = load_file(f"{folder}/model.safetensors")
    state = model.state_dict()
    for name, t in saved.items():
        assert torch.equal(state[name], t), name
    out = model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(out).all()
    print(f"transformers loaded {folder}: {len(saved)} tensors equal")
else:
    from peft import PeftConfig, PeftModel
    base_dir = sys.argv[3]
    cfg = PeftConfig.from_pretrained(folder)
    base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    model = PeftModel.from_pretrained(base, folder)
    saved = load_file(f"{folder}/adapter_model.safetensors")
    state = model.state_dict()
    for name, t in saved.items():
        live = name.replace(".weight", ".default.weight") if "lora_" in name else name
        assert live in state, f"{name} not taken up by PEFT (looked for {live})"
        assert torch.equal(state[live].float(), t.float()), name
    print(f"PEFT loaded {folder} ({cfg.peft_type}, r={cfg.r}): {len(saved)} adapter tensors equal")
