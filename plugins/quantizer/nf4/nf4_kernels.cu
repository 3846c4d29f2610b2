// CUDA kernels for the 4-bit format; each mirrors a loop of nf4_format.cpp with the same fp32 operations, written with
// explicit round-to-nearest intrinsics (__fmul_rn, __fadd_rn, __fdiv_rn) so nvcc cannot fuse them into FMAs.
#include "nf4_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace loft::nf4 {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;  // one warp per quantisation block, eight per CUDA block

struct Code16 {
  float value[16];
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

__device__ __forceinline__ uint8_t four_bit_code(const FourBitQuantizer& fq, float scaled) {
  int sorted = 0;
#pragma unroll
  for (int k = 0; k < 15; ++k) sorted += fq.bounds[k] < scaled ? 1 : 0;
  return fq.sorted_to_index[sorted];
}

// One warp per block of `blocksize` elements: absmax, then the 4-bit codes packed two per byte (high nibble first).
template <typename T>
__global__ void quantize_4bit_kernel(const T* __restrict__ x, int64_t n, int64_t blocksize, int64_t blocks,
                                     FourBitQuantizer fq, uint8_t* __restrict__ packed, float* __restrict__ absmax) {
  const int64_t block = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (block >= blocks) return;  // whole warps leave together
  const int64_t begin = block * blocksize;
  const int64_t end = begin + blocksize < n ? begin + blocksize : n;
  float m = 0.0f;
  for (int64_t i = begin + lane; i < end; i += kWarp) m = fmaxf(m, fabsf(to_float(x[i])));
  m = warp_max(m);
  const bool full = end - begin == blocksize;
  const float tiny = 1e-38f;  // bitsandbytes' clamp(min=1e-38)
  const float stored = full ? m : fmaxf(m, tiny);
  const float inv = __fdiv_rn(1.0f, fmaxf(m, tiny));
  if (lane == 0) absmax[block] = stored;
  auto code_at = [&](int64_t i) -> uint8_t {
    if (i >= n) return four_bit_code(fq, 0.0f);  // odd element count: padded with 0
    const float v = to_float(x[i]);
    return four_bit_code(fq, clamp_unit(full ? __fmul_rn(v, inv) : __fdiv_rn(v, stored)));
  };
  for (int64_t e = begin + 2 * lane; e < end; e += 2 * kWarp) {
    packed[e / 2] = static_cast<uint8_t>(code_at(e) << 4 | code_at(e + 1));
  }
}

__device__ __forceinline__ uint16_t dynamic_map_bin_device(float scaled) {
  const float v = clamp_unit(scaled);
  float t = __fmul_rn(__fadd_rn(v, 1.0f), 0.5f);
  t = __fmul_rn(t, 65535.0f);
  t = __fadd_rn(t, 0.5f);
  return static_cast<uint16_t>(t);
}

// One warp per block of 256 absmax values: (absmax - offset) quantised with the dynamic map's bin table.
__global__ void quantize_nested_kernel(const float* __restrict__ absmax, int64_t n, int64_t blocks, float offset,
                                       const uint8_t* __restrict__ bin_codes, uint8_t* __restrict__ codes,
                                       float* __restrict__ nested_absmax) {
  const int64_t block = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (block >= blocks) return;
  const int64_t begin = block * kNestedBlocksize;
  const int64_t end = begin + kNestedBlocksize < n ? begin + kNestedBlocksize : n;
  float m = 0.0f;
  for (int64_t i = begin + lane; i < end; i += kWarp) m = fmaxf(m, fabsf(__fsub_rn(absmax[i], offset)));
  m = warp_max(m);
  if (lane == 0) nested_absmax[block] = m;
  if (m == 0.0f) {
    for (int64_t i = begin + lane; i < end; i += kWarp) codes[i] = 0;
    return;
  }
  const float inv = __fdiv_rn(1.0f, m);
  for (int64_t i = begin + lane; i < end; i += kWarp) {
    codes[i] = bin_codes[dynamic_map_bin_device(__fmul_rn(__fsub_rn(absmax[i], offset), inv))];
  }
}

struct DynamicCode {
  float value[256];
};

// One thread per packed byte: two outputs code[q] * absmax[block], absmax rebuilt from the nested state if needed.
template <typename T>
__global__ void dequantize_4bit_kernel(const uint8_t* __restrict__ packed, int64_t n, int64_t blocksize, Code16 code,
                                       const float* __restrict__ absmax, const uint8_t* __restrict__ absmax_codes,
                                       const float* __restrict__ nested_absmax, const float* __restrict__ offset,
                                       DynamicCode dynamic, T* __restrict__ out) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t e = 2 * j;
  if (e >= n) return;
  const int64_t block = e / blocksize;  // e and e + 1 share a block: blocksize is even
  float scale;
  if (absmax != nullptr) {
    scale = absmax[block];
  } else {
    scale = __fadd_rn(__fmul_rn(dynamic.value[absmax_codes[block]], nested_absmax[block / kNestedBlocksize]), *offset);
  }
  const uint8_t byte = packed[j];
  out[e] = from_float<T>(__fmul_rn(code.value[byte >> 4], scale));
  if (e + 1 < n) out[e + 1] = from_float<T>(__fmul_rn(code.value[byte & 0x0F], scale));
}

unsigned grid_for(int64_t items, int64_t per_block) {
  const int64_t g = (items + per_block - 1) / per_block;
  TORCH_CHECK(g <= 0x7fffffff, "nf4: tensor too large for one kernel launch (", items, " items)");
  return static_cast<unsigned>(g);
}

}  // namespace

Quantized quantize_cuda(const at::Tensor& weight, const Format& format) {
  TORCH_CHECK(weight.is_cuda(), "nf4: quantize_cuda needs a CUDA tensor");
  const c10::cuda::CUDAGuard guard(weight.device());
  at::Tensor w = weight.detach();
  if (w.scalar_type() != at::kFloat && w.scalar_type() != at::kBFloat16 && w.scalar_type() != at::kHalf) {
    w = w.to(at::kFloat);
  }
  w = w.contiguous().view(-1);
  const int64_t n = w.numel();
  TORCH_CHECK(n > 0, "nf4: cannot quantise an empty weight");
  const int64_t blocks = block_count(n, format.blocksize);
  const auto u8 = w.options().dtype(at::kByte);
  Quantized q;
  q.packed = at::empty({(n + 1) / 2, 1}, u8);
  at::Tensor absmax = at::empty({blocks}, w.options().dtype(at::kFloat));
  const FourBitQuantizer fq = four_bit_quantizer(format.quant_type);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const unsigned grid = grid_for(blocks, kWarpsPerBlock);
  auto launch = [&](auto* x) {
    quantize_4bit_kernel<<<grid, kWarp * kWarpsPerBlock, 0, stream>>>(x, n, format.blocksize, blocks, fq,
                                                                      q.packed.data_ptr<uint8_t>(), absmax.data_ptr<float>());
  };
  switch (w.scalar_type()) {
    case at::kFloat: launch(w.data_ptr<float>()); break;
    case at::kBFloat16: launch(reinterpret_cast<const __nv_bfloat16*>(w.data_ptr<at::BFloat16>())); break;
    default: launch(reinterpret_cast<const __half*>(w.data_ptr<at::Half>())); break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (!format.double_quant) {
    q.absmax = absmax;
    return q;
  }
  const float offset = nested_offset_of(absmax);  // synchronises with the kernel above
  const auto& table = dynamic_map_bin_codes();
  const at::Tensor bin_codes =
      at::from_blob(const_cast<uint8_t*>(table.data()), {static_cast<int64_t>(table.size())}, at::kByte).to(w.device());
  const int64_t nested_blocks = block_count(blocks, kNestedBlocksize);
  q.absmax = at::empty({blocks}, u8);
  q.nested_absmax = at::empty({nested_blocks}, w.options().dtype(at::kFloat));
  quantize_nested_kernel<<<grid_for(nested_blocks, kWarpsPerBlock), kWarp * kWarpsPerBlock, 0, stream>>>(
      absmax.data_ptr<float>(), blocks, nested_blocks, offset, bin_codes.data_ptr<uint8_t>(),
      q.absmax.data_ptr<uint8_t>(), q.nested_absmax.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  q.nested_offset = at::full({}, offset, w.options().dtype(at::kFloat));
  return q;
}

at::Tensor dequantize_cuda(const Quantized& q, const Format& format, int64_t numel, c10::ScalarType dtype) {
  TORCH_CHECK(q.packed.is_cuda(), "nf4: dequantize_cuda needs the state on a CUDA device");
  const c10::cuda::CUDAGuard guard(q.packed.device());
  at::Tensor out = at::empty({numel}, q.packed.options().dtype(dtype));
  Code16 code;
  for (int i = 0; i < 16; ++i) code.value[i] = dequant_table(format.quant_type)[i];
  DynamicCode dynamic;  // 1 KiB of kernel parameters: no host-to-device copy per call
  for (int i = 0; i < 256; ++i) dynamic.value[i] = dynamic_map()[i];
  const bool nested = q.nested_absmax.defined();
  const int64_t bytes = (numel + 1) / 2;
  constexpr int kThreads = 256;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  auto launch = [&](auto* o) {
    dequantize_4bit_kernel<<<grid_for(bytes, kThreads), kThreads, 0, stream>>>(
        q.packed.data_ptr<uint8_t>(), numel, format.blocksize, code, nested ? nullptr : q.absmax.data_ptr<float>(),
        nested ? q.absmax.data_ptr<uint8_t>() : nullptr, nested ? q.nested_absmax.data_ptr<float>() : nullptr,
        nested ? q.nested_offset.data_ptr<float>() : nullptr,
        dynamic, o);
  };
  switch (dtype) {
    case at::kFloat: launch(out.data_ptr<float>()); break;
    case at::kBFloat16: launch(reinterpret_cast<__nv_bfloat16*>(out.data_ptr<at::BFloat16>())); break;
    case at::kHalf: launch(reinterpret_cast<__half*>(out.data_ptr<at::Half>())); break;
    default: TORCH_CHECK(false, "nf4: CUDA dequantisation writes fp32, bf16 or fp16, not ", dtype);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace loft::nf4
