// quantizer/int8: CUDA kernels for row-wise int8 quantize and dequantize, bit-identical to the CPU reference in
// int8_rowwise.cpp (IEEE-rounded fp32 intrinsics, so no compiler flag or contraction can change a result).
#include "int8_rowwise.h"

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace loft::int8::detail {
namespace {

constexpr int kQuantizeThreads = 256;

// One block per row: the row's absmax (over |a| < threshold when threshold > 0), then the codes.
__global__ void quantize_rows_kernel(const __half* __restrict__ a, int8_t* __restrict__ codes,
                                     float* __restrict__ absmax, int64_t cols, float threshold) {
  const int64_t row = blockIdx.x;
  const __half* src = a + row * cols;
  const bool decompose = threshold > 0.0f;
  float m = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = fabsf(__half2float(src[c]));
    if (!decompose || v < threshold) m = fmaxf(m, v);
  }
  // max is exact and order-free, so any reduction tree gives the CPU's value.
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  __shared__ float warp_max[kQuantizeThreads / 32];
  __shared__ float row_max;
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = 0.0f;
    for (int w = 0; w < kQuantizeThreads / 32; ++w) r = fmaxf(r, warp_max[w]);
    row_max = r;
    absmax[row] = r;
  }
  __syncthreads();
  const float rmax = row_max;
  // bitsandbytes' CPU path computes 127 / absmax in torch, which evaluates it as reciprocal(absmax) * 127.
  const float scale = __fmul_rn(__fdiv_rn(1.0f, rmax), 127.0f);
  int8_t* dst = codes + row * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float v = __half2float(src[c]);
    const bool keep = rmax > 0.0f && (!decompose || fabsf(v) < threshold);
    // __float2int_rn rounds half to even, as std::nearbyint does on the CPU.
    dst[c] = keep ? static_cast<int8_t>(__float2int_rn(__fmul_rn(v, scale))) : int8_t{0};
  }
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// Four outputs written with one store (8 bytes for bf16/fp16, 16 for fp32).
template <typename T>
struct alignas(4 * sizeof(T)) Vec4 {
  T v[4];
};

__device__ __forceinline__ float dequantize_one(int8_t code, float row_absmax) {
  return __fmul_rn(__fmul_rn(static_cast<float>(code), row_absmax), kDequantScale);
}

// One block per row; four codes per load and four outputs per store when every row allows it (`vector4`: cols a
// multiple of 4 and the codes 4-byte aligned; the output is a fresh allocation, so it is aligned too).
template <typename T>
__global__ void dequantize_rows_kernel(const int8_t* __restrict__ codes, const float* __restrict__ absmax,
                                       T* __restrict__ out, int64_t cols, bool vector4) {
  const int64_t row = blockIdx.x;
  const float s = absmax[row];
  const int8_t* src = codes + row * cols;
  T* dst = out + row * cols;
  if (vector4) {
    const char4* src4 = reinterpret_cast<const char4*>(src);
    for (int64_t c = threadIdx.x; c < cols / 4; c += blockDim.x) {
      const char4 q = src4[c];
      Vec4<T> o;
      o.v[0] = from_float<T>(dequantize_one(q.x, s));
      o.v[1] = from_float<T>(dequantize_one(q.y, s));
      o.v[2] = from_float<T>(dequantize_one(q.z, s));
      o.v[3] = from_float<T>(dequantize_one(q.w, s));
      reinterpret_cast<Vec4<T>*>(dst)[c] = o;
    }
  } else {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = from_float<T>(dequantize_one(src[c], s));
  }
}

}  // namespace

RowQuantized quantize_rows_cuda(const at::Tensor& a, float threshold) {
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t rows = a.size(0), cols = a.size(1);
  at::Tensor codes = at::empty({rows, cols}, a.options().dtype(at::kChar));
  at::Tensor absmax = at::empty({rows}, a.options().dtype(at::kFloat));
  if (rows == 0) return {codes, absmax};
  TORCH_CHECK(rows <= 0x7fffffff, "quantizer/int8: ", rows, " rows exceed one CUDA grid");
  quantize_rows_kernel<<<static_cast<unsigned>(rows), kQuantizeThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const __half*>(a.data_ptr<at::Half>()), codes.data_ptr<int8_t>(), absmax.data_ptr<float>(),
      cols, threshold);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {codes, absmax};
}

at::Tensor dequantize_rows_cuda(const at::Tensor& codes, const at::Tensor& absmax, c10::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(codes.device());
  const int64_t rows = codes.size(0), cols = codes.size(1), n = rows * cols;
  at::Tensor out = at::empty({rows, cols}, codes.options().dtype(dtype));
  if (n == 0) return out;
  constexpr int kThreads = 256;
  TORCH_CHECK(rows <= 0x7fffffff, "quantizer/int8: ", rows, " rows exceed one CUDA grid");
  const auto blocks = static_cast<unsigned>(rows);
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int8_t* src = codes.data_ptr<int8_t>();
  const float* amax = absmax.data_ptr<float>();
  const bool vector4 = cols % 4 == 0 && reinterpret_cast<std::uintptr_t>(src) % 4 == 0;
  switch (dtype) {
    case at::kFloat:
      dequantize_rows_kernel<float><<<blocks, kThreads, 0, stream>>>(src, amax, out.data_ptr<float>(), cols, vector4);
      break;
    case at::kBFloat16:
      dequantize_rows_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(
          src, amax, reinterpret_cast<__nv_bfloat16*>(out.data_ptr<at::BFloat16>()), cols, vector4);
      break;
    case at::kHalf:
      dequantize_rows_kernel<__half><<<blocks, kThreads, 0, stream>>>(
          src, amax, reinterpret_cast<__half*>(out.data_ptr<at::Half>()), cols, vector4);
      break;
    default:
      TORCH_CHECK(false, "quantizer/int8: cannot dequantize to ", dtype, "; use float32, bfloat16 or float16");
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace loft::int8::detail
