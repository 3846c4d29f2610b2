// quantizer/int8: the CPU reference of row-wise int8 quantization, the device dispatch, and LLM.int8's exact matmul.
#include "int8_rowwise.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <ATen/Parallel.h>
#include <ATen/ops/_int_mm.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/any.h>
#include <ATen/ops/ge.h>
#include <ATen/ops/index_fill.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/nonzero.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace loft::int8 {
namespace detail {

RowQuantized quantize_rows_cpu(const at::Tensor& a, float threshold) {
  const int64_t rows = a.size(0), cols = a.size(1);
  at::Tensor codes = at::empty({rows, cols}, a.options().dtype(at::kChar));
  at::Tensor absmax = at::empty({rows}, a.options().dtype(at::kFloat));
  const c10::Half* src = a.data_ptr<c10::Half>();
  int8_t* dst = codes.data_ptr<int8_t>();
  float* amax = absmax.data_ptr<float>();
  const bool decompose = threshold > 0.0f;
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const c10::Half* row = src + r * cols;
      float m = 0.0f;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = std::fabs(static_cast<float>(row[c]));
        if (!decompose || v < threshold) m = std::max(m, v);
      }
      amax[r] = m;
      // torch evaluates 127 / absmax as reciprocal(absmax) * 127: two rounded fp32 operations, in that order.
      const float scale = (1.0f / m) * 127.0f;
      int8_t* out = dst + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = static_cast<float>(row[c]);
        const bool keep = m > 0.0f && (!decompose || std::fabs(v) < threshold);
        out[c] = keep ? static_cast<int8_t>(std::nearbyint(v * scale)) : int8_t{0};
      }
    }
  });
  return {codes, absmax};
}

at::Tensor dequantize_rows_cpu(const at::Tensor& codes, const at::Tensor& absmax, c10::ScalarType dtype) {
  const int64_t rows = codes.size(0), cols = codes.size(1);
  at::Tensor out = at::empty({rows, cols}, codes.options().dtype(dtype));
  const int8_t* src = codes.data_ptr<int8_t>();
  const float* amax = absmax.data_ptr<float>();
  auto run = [&](auto* dst) {
    using T = std::remove_pointer_t<decltype(dst)>;
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float s = amax[r];
        for (int64_t c = 0; c < cols; ++c) {
          // Two rounded fp32 products in bitsandbytes' order, then one rounding to T (nearest even).
          const float v = static_cast<float>(src[r * cols + c]) * s;
          dst[r * cols + c] = static_cast<T>(v * kDequantScale);
        }
      }
    });
  };
  switch (dtype) {
    case at::kFloat: run(out.data_ptr<float>()); break;
    case at::kBFloat16: run(out.data_ptr<c10::BFloat16>()); break;
    case at::kHalf: run(out.data_ptr<c10::Half>()); break;
    default: TORCH_CHECK(false, "quantizer/int8: cannot dequantize to ", dtype, "; use float32, bfloat16 or float16");
  }
  return out;
}

}  // namespace detail

RowQuantized quantize_rows(const at::Tensor& a, double threshold) {
  TORCH_CHECK(a.dim() == 2 && a.scalar_type() == at::kHalf && a.is_contiguous(),
              "quantizer/int8: quantize_rows needs a contiguous float16 [rows, cols] tensor, got ", a.scalar_type(),
              " ", a.sizes());
  TORCH_CHECK(threshold >= 0.0, "quantizer/int8: threshold must be >= 0, got ", threshold);
  // bitsandbytes compares the fp16 |x| with the threshold converted to fp16.
  const float t = threshold > 0.0 ? static_cast<float>(c10::Half(static_cast<float>(threshold))) : 0.0f;
  if (a.is_cuda()) return detail::quantize_rows_cuda(a, t);
  TORCH_CHECK(a.is_cpu(), "quantizer/int8: tensors on ", a.device(), " are not supported (CPU or CUDA)");
  return detail::quantize_rows_cpu(a, t);
}

at::Tensor dequantize_rows(const at::Tensor& codes, const at::Tensor& absmax, c10::ScalarType dtype) {
  TORCH_CHECK(codes.dim() == 2 && codes.scalar_type() == at::kChar && codes.is_contiguous(),
              "quantizer/int8: codes must be contiguous int8 [rows, cols], got ", codes.scalar_type(), " ",
              codes.sizes());
  TORCH_CHECK(absmax.dim() == 1 && absmax.size(0) == codes.size(0) && absmax.scalar_type() == at::kFloat &&
                  absmax.is_contiguous() && absmax.device() == codes.device(),
              "quantizer/int8: absmax must be float32 [", codes.size(0), "] on ", codes.device(), ", got ",
              absmax.scalar_type(), " ", absmax.sizes(), " on ", absmax.device());
  if (codes.is_cuda()) return detail::dequantize_rows_cuda(codes, absmax, dtype);
  TORCH_CHECK(codes.is_cpu(), "quantizer/int8: tensors on ", codes.device(), " are not supported (CPU or CUDA)");
  return detail::dequantize_rows_cpu(codes, absmax, dtype);
}

at::Tensor int8_matmul_int32(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), "quantizer/int8: int8 matmul of ", a.sizes(),
              " and ", b.sizes(), "^T");
  if (!a.is_cuda()) return at::_int_mm(a, b.t());
  // cuBLAS int8 GEMM through _int_mm wants M > 16 and K, N multiples of 8; zero rows and columns change no sum.
  const int64_t m = a.size(0), k = a.size(1), n = b.size(0);
  const int64_t m_pad = std::max<int64_t>(m, 17), k_pad = (k + 7) / 8 * 8, n_pad = (n + 7) / 8 * 8;
  if (m_pad == m && k_pad == k && n_pad == n) return at::_int_mm(a, b.t());
  const at::Tensor ap = at::constant_pad_nd(a, {0, k_pad - k, 0, m_pad - m}, 0);
  const at::Tensor bp = at::constant_pad_nd(b, {0, k_pad - k, 0, n_pad - n}, 0);
  return at::_int_mm(ap, bp.t()).narrow(0, 0, m).narrow(1, 0, n).contiguous();
}

at::Tensor llm_int8_forward(const at::Tensor& x, const at::Tensor& cb, const at::Tensor& scb, double threshold) {
  const int64_t k = x.size(-1), n = cb.size(0);
  TORCH_CHECK(k == cb.size(1), "quantizer/int8: input has ", k, " features, the weight expects ", cb.size(1));
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = n;
  const at::Tensor x2 = x.reshape({-1, k});
  const at::Tensor x16 = x2.to(at::kHalf).contiguous();  // bitsandbytes quantizes activations from fp16

  at::Tensor outlier_cols;
  if (threshold > 0.0) {
    const double t = static_cast<double>(static_cast<float>(c10::Half(static_cast<float>(threshold))));
    outlier_cols = at::nonzero(at::any(at::ge(at::abs(x16), t), 0)).view(-1);
  }
  RowQuantized qa = quantize_rows(x16, threshold);
  if (outlier_cols.defined() && outlier_cols.numel() > 0) qa.codes.index_fill_(1, outlier_cols, 0);

  // int32(CA CB^T) * (SCA ⊗ SCB) * 1/127^2 in fp32, in bitsandbytes' order of operations, then x's dtype.
  const at::Tensor acc = int8_matmul_int32(qa.codes, cb);
  at::Tensor out = at::mul(at::mul(acc, at::mul(qa.absmax.unsqueeze(1), scb.unsqueeze(0))), kMatmulDequantScale)
                       .to(x.scalar_type());
  if (outlier_cols.defined() && outlier_cols.numel() > 0) {
    const at::Tensor sub_x = x2.index_select(1, outlier_cols);
    const at::Tensor sub_w = dequantize_rows(cb.index_select(1, outlier_cols).contiguous(), scb, x.scalar_type());
    out = at::addmm(out, sub_x, sub_w.t());
  }
  return out.view(out_shape);
}

}  // namespace loft::int8
