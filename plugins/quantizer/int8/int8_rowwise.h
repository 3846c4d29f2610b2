// Row-wise int8 quantization as bitsandbytes 0.50.2 does it (LLM.int8): the CPU reference, the CUDA kernels with
// bit-identical results, and the exact int8 matmul with outlier decomposition. Internal to quantizer/int8.
#pragma once

#include <ATen/core/Tensor.h>

namespace loft::int8 {

// bitsandbytes' constants, as fp32 (functional.py int8_vectorwise_dequant; backends/default/ops.py int8_mm_dequant).
constexpr float kDequantScale = 7.874015718698502e-3f;  // ~1/127
constexpr float kMatmulDequantScale = 6.200124e-05f;    // ~1/127^2

struct RowQuantized {
  at::Tensor codes;   // int8 [rows, cols]
  at::Tensor absmax;  // float32 [rows]
};

// a: float16 [rows, cols], contiguous, CPU or CUDA. Per row: absmax = max |a| over the elements with |a| < threshold
// (all elements when threshold == 0), scale = (1 / absmax) * 127 (two IEEE-rounded fp32 operations, the way torch
// evaluates bitsandbytes' `127.0 / row_stats`), code = round-half-even(a * scale) for those elements and 0 for the
// others (and for rows whose absmax is 0). This is bitsandbytes' int8_vectorwise_quant of its default (CPU) backend;
// its CUDA kernel uses __fdividef(127, absmax) instead, which can move a code by 1 where a * scale lies within a few
// ulp of a half-integer. Launches on the current CUDA stream.
RowQuantized quantize_rows(const at::Tensor& a, double threshold);

// codes int8 [rows, cols], absmax float32 [rows] on the same device -> (float(code) * absmax) * kDequantScale in fp32,
// rounded to `dtype` (float32, bfloat16 or float16) with round-to-nearest-even: bitsandbytes'
// int8_vectorwise_dequant(...).to(dtype). CPU and CUDA give identical bits.
at::Tensor dequantize_rows(const at::Tensor& codes, const at::Tensor& absmax, c10::ScalarType dtype);

// Exact int32 product a [M, K] int8 times b [N, K] int8 transposed -> [M, N] int32. CUDA: at::_int_mm, zero-padded
// where its shape rules (M > 16, K and N multiples of 8) do not hold; CPU: at::_int_mm.
at::Tensor int8_matmul_int32(const at::Tensor& a, const at::Tensor& b);

// LLM.int8 forward as bitsandbytes' MatMul8bitLt (no bias): x [..., K] (any float dtype) -> [..., N] in x's dtype.
// x is cast to fp16 and quantized per row with `threshold`; outlier columns (any |x16| >= threshold) are zeroed in
// the int8 operand and added back as x[:, cols] @ dequantize(cb[:, cols])^T in x's dtype. Not differentiable.
at::Tensor llm_int8_forward(const at::Tensor& x, const at::Tensor& cb, const at::Tensor& scb, double threshold);

namespace detail {
RowQuantized quantize_rows_cpu(const at::Tensor& a, float threshold);
RowQuantized quantize_rows_cuda(const at::Tensor& a, float threshold);
at::Tensor dequantize_rows_cpu(const at::Tensor& codes, const at::Tensor& absmax, c10::ScalarType dtype);
at::Tensor dequantize_rows_cuda(const at::Tensor& codes, const at::Tensor& absmax, c10::ScalarType dtype);
}  // namespace detail

}  // namespace loft::int8
