"""Reference data for loft's peft/lora and peft/dora parity tests, computed with Hugging Face PEFT.

Usage: make_peft_reference.py OUT_DIR. Writes OUT_DIR/reference.json (cases, shapes, options) and one raw
little-endian float32 file per tensor, so the C++ test needs no pickle or safetensors reader.
"""
import copy
import json
import os
import sys
import tempfile

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file
from transformers import Qwen2Config, Qwen2ForCausalLM

SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BASE_NAME = "tiny/qwen2-for-loft-tests"


def tiny_model(seed):
    torch.manual_seed(seed)
    # hidden 16, 2 heads of 8, 1 kv head: k/v_proj are [8, 16] with bias, gate/up [24, 16], down [16, 24].
    cfg = Qwen2Config(hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=32, max_position_embeddings=64, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg).float()
    model.name_or_path = BASE_NAME
    with torch.no_grad():  # give biases visible values (transformers zero-initialises them)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(0, 0.5)
    return model


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    def put(self, tensor):
        t = tensor.detach().to(torch.float32).contiguous().cpu()
        name = f"t{self.count:04d}.bin"
        self.count += 1
        with open(os.path.join(self.out_dir, name), "wb") as f:
            f.write(t.numpy().astype("<f4").tobytes())
        return {"file": name, "shape": list(t.shape)}


def site_list(model):
    """Every nn.Linear of the base model, as loft's LinearSite would name it."""
    sites = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lora_" not in name and "base_layer" not in name:
            parts = name.split(".")
            layer = int(parts[2]) if len(parts) > 2 and parts[1] == "layers" else -1
            sites.append({"name": name, "short_name": parts[-1], "layer_index": layer,
                          "in": module.in_features, "out": module.out_features})
    return sites


def numeric_case(writer, name, r, alpha, rslora, dora):
    model = tiny_model(1)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=SEVEN, use_rslora=rslora,
                     use_dora=dora, init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(2)
    peft_model = get_peft_model(model, cfg)
    peft_model.eval()
    base = peft_model.base_model.model
    sites = []
    gen = torch.Generator().manual_seed(3)
    for layer_index in (0, 1):
        for short in SEVEN:
            parent = "self_attn" if short in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            site_name = f"model.layers.{layer_index}.{parent}.{short}"
            module = base.get_submodule(site_name)
            assert isinstance(module, LoraLayer)
            lin = module.get_base_layer()
            t = {"W": writer.put(lin.weight)}
            if lin.bias is not None:
                t["bias"] = writer.put(lin.bias)
            t["lora_A"] = writer.put(module.lora_A["default"].weight)
            t["lora_B"] = writer.put(module.lora_B["default"].weight)
            if dora:
                t["magnitude"] = writer.put(module.lora_magnitude_vector["default"].weight)
            x = torch.randn(2, 3, lin.in_features, generator=gen).requires_grad_(True)
            gy = torch.randn(2, 3, lin.out_features, generator=gen)
            for p in module.parameters():
                p.grad = None
            y = module(x)
            y.backward(gy)
            t.update(x=writer.put(x), grad_y=writer.put(gy), y=writer.put(y), grad_x=writer.put(x.grad),
                     grad_lora_A=writer.put(module.lora_A["default"].weight.grad),
                     grad_lora_B=writer.put(module.lora_B["default"].weight.grad))
            if dora:
                t["grad_magnitude"] = writer.put(module.lora_magnitude_vector["default"].weight.grad)
            merged = copy.deepcopy(module)
            merged.merge(safe_merge=True)
            t["merged"] = writer.put(merged.get_base_layer().weight)
            sites.append({"name": site_name, "short_name": short, "layer_index": layer_index,
                          "in": lin.in_features, "out": lin.out_features, "tensors": t})
    return {"name": name, "plugin": "dora" if dora else "lora",
            "options": {"r": r, "alpha": float(alpha), "rslora": rslora}, "sites": sites}


def config_case(name, plugin, loft_options, peft_kwargs):
    model = tiny_model(4)
    all_sites = site_list(model)
    param_names = [n for n, _ in model.named_parameters()]
    site_params = {s["name"] + leaf for s in all_sites for leaf in (".weight", ".bias")}
    other_params = [n for n in param_names if n not in site_params]
    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **peft_kwargs))
    targeted = sorted(n for n, m in peft_model.base_model.model.named_modules() if isinstance(m, LoraLayer))
    with tempfile.TemporaryDirectory() as d:
        peft_model.save_pretrained(d)
        with open(os.path.join(d, "adapter_config.json")) as f:
            adapter_config = json.load(f)
        keys = sorted(load_file(os.path.join(d, "adapter_model.safetensors")).keys())
    return {"name": name, "plugin": plugin, "options": loft_options, "base_model_name_or_path": BASE_NAME,
            "adapter_config": adapter_config, "sites": all_sites, "targeted": targeted,
            "other_parameters": other_params, "saved_keys": keys}


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    writer = Writer(out_dir)
    numeric = [
        numeric_case(writer, "lora_r4", 4, 8, False, False),
        numeric_case(writer, "rslora_r4", 4, 8, True, False),
        numeric_case(writer, "lora_r1", 1, 3, False, False),
        numeric_case(writer, "dora_r4", 4, 8, False, True),
        numeric_case(writer, "dora_rslora_r2", 2, 5, True, True),
    ]
    configs = [
        config_case("defaults", "lora", {}, dict(r=8, lora_alpha=16, target_modules=SEVEN)),
        config_case("gaussian_rslora_layers_save", "lora",
                    {"r": 16, "alpha": 32.0, "dropout": 0.05, "rslora": True, "init": "gaussian", "layers": "1",
                     "modules_to_save": ["embed_tokens"]},
                    dict(r=16, lora_alpha=32, lora_dropout=0.05, use_rslora=True, init_lora_weights="gaussian",
                         target_modules=SEVEN, layers_to_transform=[1], modules_to_save=["embed_tokens"])),
        config_case("dora_random_qv", "dora", {"init": "random", "targets": ["q_proj", "v_proj"], "alpha": 2.5},
                    dict(r=8, lora_alpha=2.5, use_dora=True, init_lora_weights=False,
                         target_modules=["q_proj", "v_proj"])),
        config_case("regex", "lora", {"targets": ["re:.*\\.(q|v)_proj"]},
                    dict(r=8, lora_alpha=16, target_modules=".*\\.(q|v)_proj")),
        config_case("lm_head_and_suffix", "lora", {"targets": ["lm_head", "mlp.down_proj"], "layers": ""},
                    dict(r=8, lora_alpha=16, target_modules=["lm_head", "mlp.down_proj"])),
    ]
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({"numeric": numeric, "configs": configs}, f, indent=1)


if __name__ == "__main__":
    main()
