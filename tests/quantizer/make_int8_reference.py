"""Reference data for loft's quantizer/int8 parity test, computed with bitsandbytes 0.50.2 on the CPU.

Usage: make_int8_reference.py OUT_DIR. Writes OUT_DIR/reference.json (cases, shapes, dtypes, file names) and one raw
little-endian file per tensor (float32, or int8 for codes), so the C++ test needs no pickle or safetensors reader.

Quantization cases go through bitsandbytes.nn.Int8Params exactly as Linear8bitLt quantizes a checkpoint; matmul cases
through Linear8bitLt's forward in eval mode (MatMul8bitLt: int8 activations, outlier columns in floating point).
"""
import json
import os
import sys
import warnings

import torch

warnings.filterwarnings("ignore")
import bitsandbytes as bnb  # noqa: E402

assert bnb.__version__ == "0.50.2", f"bitsandbytes {bnb.__version__}; the pinned reference is 0.50.2"


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    def put(self, tensor, dtype=torch.float32):
        name = f"t{self.count:04d}.bin"
        self.count += 1
        data = tensor.detach().to(dtype).contiguous().cpu().numpy().tobytes()
        with open(os.path.join(self.out_dir, name), "wb") as f:
            f.write(data)
        return name


def quantize_bnb(weight):
    param = bnb.nn.Int8Params(weight.clone(), requires_grad=False, has_fp16_weights=False)
    param = param.to("cpu")  # moving a CPU float tensor to a device quantizes it (Int8Params._quantize)
    assert param.data.dtype == torch.int8
    return param.CB, param.SCB


def weights():
    g = torch.Generator().manual_seed(1234)
    cases = []
    cases.append(("randn_48x64", torch.randn(48, 64, generator=g)))
    cases.append(("odd_33x100_small", torch.randn(33, 100, generator=g) * 1e-3))
    cases.append(("uniform_64x1536", (torch.rand(64, 1536, generator=g) - 0.5) * 0.2))
    w = torch.randn(40, 96, generator=g) * 20.0
    w[3] = 0.0  # a row of zeros: SCB 0, codes 0
    w[7, 5] = 900.0  # outliers that dominate their rows
    w[11, 0] = -3000.0
    cases.append(("zeros_and_outliers_40x96", w))
    ties = torch.zeros(4, 8)
    ties[0] = torch.tensor([127.0, 2.5, 3.5, -2.5, -0.5, 0.5, 1.5, -126.5])  # scale 1: exact halves round to even
    ties[1] = torch.tensor([-254.0, 5.0, 7.0, -3.0, 1.0, 253.0, 9.0, -11.0])  # scale 1/2: halves again
    ties[2] = torch.tensor([1e-6, -3e-7, 2e-7, 0.0, 5e-8, -1e-6, 7e-7, 1e-7])  # fp16 subnormals
    ties[3] = torch.tensor([60000.0, -65504.0, 1.0, 2.0, -3.0, 4.0, 1000.0, 0.25])  # near the fp16 limit
    cases.append(("ties_subnormals_4x8", ties))
    cases.append(("bf16_source_24x40", torch.randn(24, 40, generator=g).to(torch.bfloat16)))
    return cases


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    writer = Writer(out_dir)
    ref = {"bitsandbytes": bnb.__version__, "torch": torch.__version__, "quantize": [], "matmul": []}
    for name, w in weights():
        cb, scb = quantize_bnb(w)
        ref["quantize"].append({
            "name": name, "shape": list(w.shape), "dtype": str(w.dtype).replace("torch.", ""),
            "weight": writer.put(w), "CB": writer.put(cb, torch.int8), "SCB": writer.put(scb),
            "dequant_f32": writer.put(bnb.functional.int8_vectorwise_dequant(cb, scb)),
        })

    g = torch.Generator().manual_seed(99)
    # (name, tokens, in, out, threshold, outlier columns, dtype)
    specs = [
        ("outliers_f32", 20, 64, 48, 6.0, [3, 17, 40], torch.float32),
        ("outliers_bf16", 20, 64, 48, 6.0, [0, 63], torch.bfloat16),
        ("no_outliers_f32", 9, 96, 40, 6.0, [], torch.float32),
        ("threshold0_f32", 12, 96, 40, 0.0, [5], torch.float32),
        ("one_token_f32", 1, 64, 48, 6.0, [7], torch.float32),
        ("wide_f32", 33, 1000, 72, 6.0, [1, 500, 999], torch.float32),
    ]
    for name, m, k, n, threshold, cols, dtype in specs:
        w = torch.randn(n, k, generator=g) * 0.05
        x = torch.randn(m, k, generator=g) * 1.5
        for c in cols:
            x[torch.randint(0, m, (max(1, m // 4),), generator=g), c] = 7.0 + 3.0 * torch.rand(1, generator=g).item()
        x = x.to(dtype)
        lin = bnb.nn.Linear8bitLt(k, n, bias=False, has_fp16_weights=False, threshold=threshold)
        lin.weight = bnb.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
        lin = lin.to("cpu").eval()
        cb, scb = lin.weight.CB.clone(), lin.weight.SCB.clone()  # forward moves them into lin.state
        with torch.no_grad():
            y = lin(x)
        assert y.dtype == dtype, (y.dtype, dtype)
        ref["matmul"].append({
            "name": name, "tokens": m, "in": k, "out": n, "threshold": threshold, "dtype": str(dtype).replace("torch.", ""),
            "outlier_columns": cols, "weight": writer.put(w), "x": writer.put(x), "y": writer.put(y),
            "CB": writer.put(cb, torch.int8), "SCB": writer.put(scb),
        })
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
