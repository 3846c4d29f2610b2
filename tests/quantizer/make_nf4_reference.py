"""Reference data for loft's quantizer/nf4 parity test, computed with bitsandbytes 0.50.2 on the CPU.

Usage: make_nf4_reference.py OUT_DIR. Writes OUT_DIR/nf4_reference.safetensors: per case "<case>.w" (the input
weight in its dtype), bitsandbytes' "<case>.weight" (packed codes), "<case>.absmax", with double quantisation
"<case>.nested_absmax" and "<case>.nested_offset" ([1]), and "<case>.deq_<dtype>" (dequantize_4bit to fp32, bf16 and
fp16); plus "quant_map.nf4", "quant_map.fp4" and "nested_quant_map". The metadata key "cases" holds a JSON list of
{name, shape, dtype, quant_type, blocksize, double_quant}.
"""
import json
import os
import sys

import torch
import torch._dynamo

# bitsandbytes wraps its fallback kernels in torch.compile; eager is the definition and needs no compiler.
torch._dynamo.config.disable = True

import bitsandbytes.functional as F  # noqa: E402
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute  # noqa: E402
from bitsandbytes.backends.utils import _get_4bit_code  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def weight(shape, kind, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g) * 0.02
    flat = w.view(-1)
    if kind == "outliers":  # a few large entries, as real LLM weights have
        idx = torch.randint(0, flat.numel(), (max(1, flat.numel() // 97),), generator=g)
        flat[idx] *= 300.0
    elif kind == "zeros":  # an all-zero row, a zero first block, and a zero tail (the final partial block)
        w[1] = 0.0
        flat[:64] = 0.0
        flat[-(flat.numel() % 64 or 64):] = 0.0
    elif kind == "tiny":  # absmax far below 1 (fp16 stays normal)
        w *= 1e-3 if dtype == torch.float16 else 1e-20
    elif kind == "ties":  # values exactly on 4-bit decision midpoints and at +-absmax
        code = F.get_4bit_type("nf4", device="cpu")
        mids = (code[:-1] + code[1:]) / 2
        flat[: mids.numel()] = mids
        flat[mids.numel()] = 1.0
        flat[mids.numel() + 1] = -1.0
    return w.to(dtype)


def flat_dequantize(packed, state, dtype):
    """bitsandbytes' dequantize_4bit, except where its CPU AVX-512 kernel indexes absmax per row (in_features a
    multiple of 16 but not of blocksize), which rebuilds wrong weights; there its default backend's flat formula
    (the one its CUDA kernel follows) is used."""
    shape = tuple(state.shape)
    absmax = state.absmax
    if state.nested:
        absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
    n = shape[-1]
    if n % 16 == 0 and n % state.blocksize != 0:
        code = _get_4bit_code(state.quant_type, packed.device)
        return _dequantize_4bit_compute(packed.reshape(-1), absmax.float(), code, state.blocksize, shape, dtype)
    saved = state.dtype
    state.dtype = dtype
    out = F.dequantize_4bit(packed, state)
    state.dtype = saved
    return out


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    # (shape, kind, dtype, quant_type, blocksize, double_quant)
    specs = [
        ((64, 128), "normal", "fp32", "nf4", 64, True),
        ((64, 128), "normal", "fp32", "nf4", 64, False),
        ((64, 128), "normal", "fp32", "fp4", 64, True),
        ((64, 128), "normal", "fp32", "fp4", 64, False),
        ((96, 160), "outliers", "bf16", "nf4", 64, True),
        ((96, 160), "outliers", "fp16", "fp4", 64, True),
        ((33, 100), "normal", "bf16", "nf4", 64, True),     # final partial block (3300 = 51 * 64 + 36)
        ((33, 100), "zeros", "fp32", "nf4", 64, True),
        ((33, 100), "zeros", "fp16", "fp4", 128, False),
        ((7, 33), "normal", "fp32", "nf4", 64, True),       # odd element count: the last byte is padded
        ((7, 33), "normal", "bf16", "fp4", 32, False),
        ((12, 80), "normal", "fp32", "nf4", 64, True),      # rows not a multiple of the block
        ((48, 96), "tiny", "fp32", "nf4", 64, True),
        ((48, 96), "tiny", "fp16", "nf4", 256, True),
        ((40, 64), "ties", "fp32", "nf4", 64, False),
        ((33, 100), "normal", "fp32", "nf4", 4096, True),   # one block, partial
        ((512, 1024), "outliers", "fp32", "nf4", 2048, True),
        ((256, 1536), "normal", "bf16", "nf4", 64, True),
        ((1536, 1536), "outliers", "bf16", "nf4", 64, True),  # > 32768 absmax values: torch's parallel mean
    ]
    tensors = {
        "quant_map.nf4": F.get_4bit_type("nf4", device="cpu"),
        "quant_map.fp4": F.get_4bit_type("fp4", device="cpu"),
    }
    cases = []
    for i, (shape, kind, dtype, qt, bs, dq) in enumerate(specs):
        name = f"c{i:02d}"
        w = weight(shape, kind, DTYPES[dtype], 100 + i)
        packed, state = F.quantize_4bit(w, blocksize=bs, quant_type=qt, compress_statistics=dq)
        tensors[f"{name}.w"] = w
        tensors[f"{name}.weight"] = packed
        tensors[f"{name}.absmax"] = state.absmax
        if dq:
            tensors[f"{name}.nested_absmax"] = state.state2.absmax
            tensors[f"{name}.nested_offset"] = state.offset.reshape(1)
            tensors.setdefault("nested_quant_map", state.state2.code)
        for dname, d in DTYPES.items():
            tensors[f"{name}.deq_{dname}"] = flat_dequantize(packed, state, d)
        cases.append({"name": name, "shape": list(shape), "kind": kind, "dtype": dtype, "quant_type": qt,
                      "blocksize": bs, "double_quant": dq})
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(out_dir, "nf4_reference.safetensors"), metadata={"cases": json.dumps(cases)})
    print(f"wrote {len(cases)} cases to {out_dir}")


if __name__ == "__main__":
    main()
