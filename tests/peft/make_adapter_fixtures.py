"""Writes a tiny random Qwen2 checkpoint with transformers and PEFT adapters for it, with PEFT's logits.

Under --out:
  base/       the checkpoint (3 layers, GQA 4:2, untied, fp32, every tensor random incl. biases and norms) and the
              demo model's tokenizer files (models/demo), so `loft run` can train on it
  <adapter>/  PeftModel.save_pretrained output + reference.safetensors: input_ids [2, S] (row 1 right-padded),
              lengths [2], logits [2, S, V] fp32 of base + adapter in eval mode
    lora      r 8, alpha 16, all seven linears, B random (non-zero)        (also the loss-curve test's initial adapter)
    rslora    r 8, alpha 16, use_rslora, attention linears only
    dora      r 4, alpha 8, use_dora, q/v/up/down, B and the magnitude perturbed
    mts       r 4, alpha 8, q/v, modules_to_save = embed_tokens, lm_head, model.norm (their copies perturbed)
Nothing is downloaded. Usage: make_adapter_fixtures.py --out DIR --tokenizer-dir models/demo
"""
import argparse
import os
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

ALL_LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = {
    "lora": dict(r=8, lora_alpha=16, target_modules=ALL_LINEARS),
    "rslora": dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], use_rslora=True),
    "dora": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"], use_dora=True),
    "mts": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                modules_to_save=["embed_tokens", "lm_head", "model.norm"]),
}


def base_model(seed):
    # The demo tokenizer's vocabulary (576) and special tokens, so loft's data pipeline runs on this checkpoint.
    config = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=576, tie_word_embeddings=False, bos_token_id=567,
                         eos_token_id=564, max_position_embeddings=2048)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))
    return model


def perturb_adapter(model, seed):
    # PEFT's init leaves B = 0 (the adapter a no-op); give every adapter tensor a visible effect.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "lora_magnitude_vector" in name:
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "modules_to_save" in name:
                p.add_(0.02 * torch.randn(p.shape, generator=g))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokenizer-dir", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and steady on a busy machine
    base_dir = os.path.join(args.out, "base")
    os.makedirs(base_dir, exist_ok=True)
    base_model(2024).save_pretrained(base_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer_dir, f), base_dir)

    g = torch.Generator().manual_seed(7)
    seq = 11
    input_ids = torch.randint(0, 576, (2, seq), generator=g)
    lengths = torch.tensor([seq, 7])
    input_ids[1, 7:] = 0
    attention_mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    for i, (name, kwargs) in enumerate(ADAPTERS.items()):
        model = Qwen2ForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        torch.manual_seed(100 + i)
        peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **kwargs))
        perturb_adapter(peft_model, 200 + i)
        folder = os.path.join(args.out, name)
        peft_model.save_pretrained(folder)
        peft_model.eval()
        with torch.no_grad():
            logits = peft_model(input_ids=input_ids, attention_mask=attention_mask).logits.float().contiguous()
        save_file({"input_ids": input_ids, "lengths": lengths, "logits": logits},
                  os.path.join(folder, "reference.safetensors"))
        print(f"{name}: {sorted(os.listdir(folder))}")
    with open(os.path.join(args.out, "fixtures.done"), "w") as f:
        f.write("\n".join(ADAPTERS) + "\n")


if __name__ == "__main__":
    main()
