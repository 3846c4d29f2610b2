"""Writes small random Qwen2 checkpoints that transformers loads in a non-obvious way, with what transformers made of
each, for qwen2_loading_parity_test.cpp. Nothing is downloaded. Usage: make_loading_references.py OUT_DIR

One folder per case under OUT_DIR, each with reference.safetensors (input_ids [1, S], fp32 logits [1, S, V] of the
checkpoint as transformers loads it, when it loads), and OUT_DIR/reference.json describing every case:
  tied_distinct_head  tie_word_embeddings = true, lm_head.weight present and different: untied, with a warning
  tied_equal_head     tie_word_embeddings = true, lm_head.weight present and equal to the embedding: tied, silent
  unused_tensors      extra tensors (and a legacy rotary_emb.inv_freq): transformers' unexpected keys
  sliding_*           use_sliding_window / sliding_window / max_window_layers / layer_types variants: transformers'
                      effective layer_types and window, and whether any layer really slides
"""
import json
import logging
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2Config, Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

BASE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=96)
SEQ = 13  # longer than the sliding windows below, so a sliding layer changes the logits


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def save_model(folder, seed, **overrides):
    config = Qwen2Config(**{**BASE, **overrides})
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    randomize(model, seed)
    model.save_pretrained(folder)
    return folder


def edit_weights(folder, edit):
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def edit_config(folder, edit):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    edit(config)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def load(folder, seed):
    """Loads like a user would; returns what transformers did (warnings, unexpected keys) and writes the logits."""
    handler = Captured()
    hf_logger = hf_logging.get_logger("transformers")
    hf_logger.addHandler(handler)
    try:
        model, info = Qwen2ForCausalLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    finally:
        hf_logger.removeHandler(handler)
    model.eval()
    ids = torch.randint(0, BASE["vocab_size"], (1, SEQ), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float().contiguous()
    save_file({"input_ids": ids, "logits": logits}, os.path.join(folder, "reference.safetensors"))
    return model, info, handler.lines


def main():
    out = sys.argv[1]
    os.makedirs(out)
    torch.set_num_threads(1)
    cases = {}

    # Tied config, distinct head in the file.
    folder = save_model(os.path.join(out, "tied_distinct_head"), 1, tie_word_embeddings=True)
    edit_weights(folder, lambda t: t.update({"lm_head.weight": 0.1 * torch.randn(BASE["vocab_size"], BASE["hidden_size"],
                                                                                  generator=torch.Generator().manual_seed(7))}))
    model, info, warnings = load(folder, 11)
    cases["tied_distinct_head"] = {
        "tied": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "warned": any("tie_word_embeddings" in w for w in warnings),
        "unexpected": sorted(info["unexpected_keys"])}

    # Tied config, the same head in the file (torch .bin exports write both).
    folder = save_model(os.path.join(out, "tied_equal_head"), 2, tie_word_embeddings=True)
    edit_weights(folder, lambda t: t.update({"lm_head.weight": t["model.embed_tokens.weight"].clone()}))
    model, info, warnings = load(folder, 12)
    cases["tied_equal_head"] = {
        "tied": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "warned": any("tie_word_embeddings" in w for w in warnings),
        "unexpected": sorted(info["unexpected_keys"])}

    # Tensors the model has no use for, and a per-layer inv_freq buffer as old checkpoints carry.
    folder = save_model(os.path.join(out, "unused_tensors"), 3, tie_word_embeddings=False)
    g = torch.Generator().manual_seed(8)
    edit_weights(folder, lambda t: t.update({
        "lm_head.bias": torch.randn(BASE["vocab_size"], generator=g),
        "model.layers.1.mlp.gate_proj.bias": torch.randn(BASE["intermediate_size"], generator=g),
        "model.layers.7.input_layernorm.weight": torch.randn(BASE["hidden_size"], generator=g),
        "visual.patch_embed.proj.weight": torch.randn(4, 3, generator=g),
        "model.layers.0.self_attn.rotary_emb.inv_freq": torch.randn(4, generator=g)}))
    model, info, warnings = load(folder, 13)
    cases["unused_tensors"] = {"unexpected": sorted(info["unexpected_keys"])}

    # Sliding-window fields: (config overrides, keep layer_types in config.json as save_pretrained writes it).
    layers = BASE["num_hidden_layers"]
    sliding = {
        "sliding_max_window_layers_eq_layers": (dict(use_sliding_window=True, sliding_window=4, max_window_layers=layers), True),
        "sliding_max_window_layers_gt_layers_legacy": (dict(use_sliding_window=True, sliding_window=4, max_window_layers=28), False),
        "sliding_null_window_legacy": (dict(use_sliding_window=True, sliding_window=None, max_window_layers=0), False),
        "sliding_off_legacy": (dict(use_sliding_window=False, sliding_window=4, max_window_layers=0), False),
        "sliding_explicit_full_types": (dict(use_sliding_window=True, sliding_window=4, max_window_layers=0,
                                             layer_types=["full_attention"] * layers), True),
        "sliding_top_layer": (dict(use_sliding_window=True, sliding_window=4, max_window_layers=layers - 1), True),
        "sliding_top_layer_legacy": (dict(use_sliding_window=True, sliding_window=4, max_window_layers=layers - 1), False),
        "sliding_all_layers_legacy": (dict(use_sliding_window=True, max_window_layers=0), False),
    }
    for i, (name, (overrides, keep_layer_types)) in enumerate(sliding.items()):
        folder = save_model(os.path.join(out, name), 20 + i, **overrides)
        if not keep_layer_types:
            edit_config(folder, lambda c: c.pop("layer_types", None))
        model, info, warnings = load(folder, 30 + i)
        config = model.config
        slides = [t == "sliding_attention" and config.sliding_window is not None for t in config.layer_types]
        cases[name] = {"layer_types": config.layer_types, "sliding_window": config.sliding_window,
                       "first_sliding_layer": slides.index(True) if any(slides) else None}

    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(cases, f, indent=2)
    print(json.dumps(cases, indent=2))


if __name__ == "__main__":
    main()
