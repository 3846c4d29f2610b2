"""Writes small random Qwen2 checkpoints with transformers and the reference outputs loft's parity tests compare with.

One folder per config under --out: the checkpoint as save_pretrained writes it, plus reference.safetensors with
  input_ids [2, S] int64 (row 1 right-padded), lengths [2], logits [2, S, V] fp32 (from the reloaded checkpoint in
  fp32, padded positions masked by attention_mask), prompt_i / greedy_i (model.generate(do_sample=False), 32 tokens).
Nothing is downloaded. Usage: make_qwen2_fixtures.py --out DIR
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

GREEDY_TOKENS = 32

# name -> (Qwen2Config kwargs, save dtype, save_pretrained kwargs)
CONFIGS = {
    # MHA (GQA ratio 1), tied embeddings, fp32
    "tied_mha": (dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=256, tie_word_embeddings=True), torch.float32, {}),
    # GQA ratio 2, untied, saved in bf16 (the reference runs the same bf16 values in fp32)
    "gqa2_bf16": (dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=320, tie_word_embeddings=False), torch.bfloat16, {}),
    # GQA ratio 4, untied, sharded into several files with an index
    "gqa4_sharded": (dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=8,
                          num_key_value_heads=2, vocab_size=384, tie_word_embeddings=False), torch.float32,
                     dict(max_shard_size="300KB")),
    # odd sizes: hidden 72, 3 heads of 24 dims, one KV head (ratio 3), intermediate 200, Qwen2.5's rope_theta
    "odd_72": (dict(hidden_size=72, intermediate_size=200, num_hidden_layers=2, num_attention_heads=3,
                    num_key_value_heads=1, vocab_size=300, tie_word_embeddings=True, rope_theta=1000000.0),
               torch.float32, {}),
}


def randomize(model, seed):
    # Everything random, biases and norm weights included, so each term of the forward pass is exercised.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def write_fixture(out_dir, name, kwargs, save_dtype, save_kwargs, seed):
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    config = Qwen2Config(**kwargs)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    randomize(model, seed)
    model.to(save_dtype).save_pretrained(folder, **save_kwargs)

    ref = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    vocab = kwargs["vocab_size"]
    g = torch.Generator().manual_seed(seed + 1)
    seq = 13
    input_ids = torch.randint(0, vocab, (2, seq), generator=g)
    lengths = torch.tensor([seq, 8])
    input_ids[1, 8:] = 0
    attention_mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    tensors = {"input_ids": input_ids, "lengths": lengths}
    with torch.no_grad():
        tensors["logits"] = ref(input_ids=input_ids, attention_mask=attention_mask).logits.float().contiguous()
        for i, plen in enumerate([5, 11, 1]):
            prompt = torch.randint(0, vocab, (1, plen), generator=g)
            out = ref.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                               max_new_tokens=GREEDY_TOKENS, min_new_tokens=GREEDY_TOKENS, pad_token_id=0)
            tensors[f"prompt_{i}"] = prompt[0].contiguous()
            tensors[f"greedy_{i}"] = out[0, plen:].contiguous()
    save_file(tensors, os.path.join(folder, "reference.safetensors"))
    with open(os.path.join(folder, "config.json")) as f:
        written = json.load(f)
    print(f"{name}: {sorted(os.listdir(folder))} dtype={written.get('dtype')}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for i, (name, (kwargs, dtype, save_kwargs)) in enumerate(CONFIGS.items()):
        write_fixture(args.out, name, kwargs, dtype, save_kwargs, seed=1000 + i)
    with open(os.path.join(args.out, "fixtures.done"), "w") as f:
        f.write("\n".join(CONFIGS) + "\n")


if __name__ == "__main__":
    main()
