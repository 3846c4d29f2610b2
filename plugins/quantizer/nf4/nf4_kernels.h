// CUDA kernels of the bitsandbytes 4-bit format: quantise and dequantise on the GPU with results bit-identical to the
// CPU reference in nf4_format.h. Launch on the current CUDA stream of the tensors' device.
#pragma once

#include "nf4_format.h"

namespace loft::nf4 {

// `weight` on a CUDA device (fp32, bf16 or fp16; other float dtypes are converted to fp32 first). The state lands on
// the same device. With double quantisation, the offset is taken on the CPU (nested_offset_of) so it equals the
// reference's; that costs one copy of absmax (numel / blocksize floats) to the host.
Quantized quantize_cuda(const at::Tensor& weight, const Format& format);
// Flat [numel] tensor of `dtype` (fp32, bf16 or fp16) on the state's CUDA device.
at::Tensor dequantize_cuda(const Quantized& q, const Format& format, int64_t numel, c10::ScalarType dtype);

}  // namespace loft::nf4
