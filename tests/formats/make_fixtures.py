"""Writes the safetensors parity fixtures into --out (run by ctest before the parity tests; nothing is downloaded).

single/<case>.safetensors  files written by safetensors.torch.save_file
qwen/                      a tiny random Qwen2 saved by transformers' save_pretrained in several shards
reference.json             per case: metadata, whether the bytes are deterministic, and every tensor's dtype, shape and
                           raw little-endian bytes (hex), taken from the torch tensors themselves, not from the files
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

DTYPE_NAMES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.uint16: "U16",
    torch.int32: "I32", torch.uint32: "U32", torch.int64: "I64", torch.uint64: "U64", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64", torch.complex64: "C64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}
QWEN_MAX_SHARD_BYTES = 40_000


def raw_hex(t: torch.Tensor) -> str:
    t = t.contiguous()
    if t.numel() == 0:
        return ""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes().hex()


def describe(tensors: dict) -> list:
    return [{"name": k, "dtype": DTYPE_NAMES[v.dtype], "shape": list(v.shape), "hex": raw_hex(v)}
            for k, v in tensors.items()]


def cases() -> dict:
    g = torch.Generator().manual_seed(1234)
    randn = lambda *s: torch.randn(*s, generator=g)
    ints = lambda lo, hi, *s: torch.randint(lo, hi, s, generator=g)
    return {
        "fp32": ({"weight": randn(4, 5), "bias": randn(5)}, None),
        "bf16": ({"weight": randn(3, 7).to(torch.bfloat16)}, None),
        "fp16": ({"weight": randn(6, 2).to(torch.float16), "x": randn(1).to(torch.float16)}, None),
        "int64": ({"ids": ints(-2**40, 2**40, 17)}, None),
        "multi_dim": ({"t4": randn(2, 3, 4, 5), "t3": randn(1, 1, 9)}, None),
        "scalar": ({"s": torch.tensor(3.25), "i": torch.tensor(-7, dtype=torch.int64)}, None),
        "empty": ({"e0": torch.empty(0), "e30": torch.empty(3, 0, dtype=torch.bfloat16),
                   "full": randn(2)}, None),
        "mixed_dtypes": ({
            "a_bool": torch.tensor([True, False, True]),
            "b_u8": ints(0, 256, 5).to(torch.uint8),
            "c_i8": ints(-128, 128, 5).to(torch.int8),
            "d_i16": ints(-30000, 30000, 3).to(torch.int16),
            "e_i32": ints(-2**31, 2**31, 3).to(torch.int32),
            "f_f64": randn(3).to(torch.float64),
            "g_f16": randn(3).to(torch.float16),
            "h_bf16": randn(3).to(torch.bfloat16),
            "i_u16": ints(0, 65536, 3).to(torch.uint16),
            "j_u32": ints(0, 2**32, 3).to(torch.uint32),
            "k_u64": ints(0, 2**62, 3).to(torch.uint64),
            "l_f8e4m3": randn(5).to(torch.float8_e4m3fn),
            "m_f8e5m2": randn(5).to(torch.float8_e5m2),
            "n_c64": torch.complex(randn(2), randn(2)),
            "o_f32": randn(2, 2),
            "p_i64": ints(-5, 5, 2),
        }, None),
        "odd_sizes": ({"b": ints(0, 2, 3).to(torch.bool), "h": randn(3).to(torch.float16), "d": randn(3).double()},
                      None),
        "metadata": ({"w": randn(2, 2)}, {"format": "pt"}),
        "names": ({"model.layers.0.self_attn.q_proj.weight": randn(2, 2), "Z": randn(1), "a\"b\\c\n\t": randn(1),
                   "unicodé☃😀": randn(1), "\u007f\u0001": randn(1)}, {"note": "quote\" backslash\\ é"}),
        # Several metadata keys: the Rust crate writes them in hash order, so only the values are compared.
        "metadata_multi": ({"w": randn(3)}, {"format": "pt", "b": "2", "a": "1", "z": "x"}),
    }


def tiny_qwen(out_dir: str) -> list:
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(out_dir, max_shard_size=QWEN_MAX_SHARD_BYTES)
    return describe(model.state_dict())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(os.path.join(args.out, "single"))
    reference = {"single": {}}
    for name, (tensors, metadata) in cases().items():
        save_file(tensors, os.path.join(args.out, "single", name + ".safetensors"), metadata=metadata)
        reference["single"][name] = {
            "metadata": metadata or {},
            "byte_identical": metadata is None or len(metadata) <= 1,
            "tensors": describe(tensors),
        }
    qwen_dir = os.path.join(args.out, "qwen")
    reference["qwen"] = {"max_shard_bytes": QWEN_MAX_SHARD_BYTES, "tensors": tiny_qwen(qwen_dir),
                         "files": sorted(os.listdir(qwen_dir))}
    with open(os.path.join(args.out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f)
    print("fixtures written to", args.out, "qwen files:", reference["qwen"]["files"])


if __name__ == "__main__":
    main()
