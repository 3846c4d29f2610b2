#!/usr/bin/env python3
"""Loads loft-written PEFT adapter folders with transformers + PEFT and checks them against loft.

Usage: check_loft_adapter.py BASE_DIR ADAPTER_DIR...
Each ADAPTER_DIR holds adapter_config.json + adapter_model.safetensors written by loft and loft_logits.safetensors
(input_ids, lengths, loft's fp32 logits). Every saved tensor must be taken up by PEFT unchanged, and PEFT's logits
must equal loft's within 1e-5 relative (max |diff| / max |ref| over the real positions). Exit 1 on any failure.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Qwen2ForCausalLM

TOLERANCE = 1e-5


def live_name(saved):
    # PEFT's save drops the adapter name: put "default" back where the live module has it.
    for part in ("lora_A", "lora_B", "lora_magnitude_vector"):
        if f".{part}." in saved or saved.endswith(f".{part}"):
            return saved.replace(f".{part}", f".{part}.default") + ("" if saved.endswith(".weight") else ".weight")
    module, param = saved.rsplit(".", 1)
    return f"{module}.modules_to_save.default.{param}"


def main():
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and steady on a busy machine
    base_dir, folders = sys.argv[1], sys.argv[2:]
    failed = False
    for folder in folders:
        base = Qwen2ForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, folder).eval()
        state = model.state_dict()
        saved = load_file(f"{folder}/adapter_model.safetensors")
        for name, t in saved.items():
            live = live_name(name)
            if live not in state or not torch.equal(state[live], t):
                print(f"FAIL {folder}: {name} not taken up by PEFT as {live}")
                failed = True
        ref = load_file(f"{folder}/loft_logits.safetensors")
        ids, lengths = ref["input_ids"], ref["lengths"]
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        err = 0.0
        for b in range(ids.shape[0]):
            n = int(lengths[b])
            err = max(err, ((logits[b, :n] - ref["logits"][b, :n]).abs().max() / ref["logits"][b, :n].abs().max()).item())
        ok = err <= TOLERANCE
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {folder}: PEFT vs loft logits max relative error {err:.3g} "
              f"({len(saved)} tensors taken up)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
