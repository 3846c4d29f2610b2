// The bitsandbytes 0.50.2 4-bit format (NF4 / FP4, optional double quantisation of absmax): code tables, parameters
// and the CPU reference quantizer/dequantizer that the CUDA kernels (nf4_kernels.cu) must equal bit for bit.
//
// "Bitsandbytes" here means its CPU path, the one the parity test can run (tests/quantizer). Where its backends
// disagree with each other, loft follows:
//  * 4-bit codes: backends/default quantize_4bit (torch.bucketize over fp32 midpoints, ties to the lower code; full
//    blocks scaled by x * (1/absmax), the final partial block by x / max(absmax, 1e-38), whose clamped absmax is
//    stored). Its CUDA kernel uses a decision tree at the same midpoints; only exact ties could differ.
//  * double quantisation: the offset is torch's CPU mean, and (absmax - offset) is coded with the CPU kernel's
//    65536-bin table (csrc/cpu_ops.cpp), not an exact nearest-entry search: about 0.2% of the 8-bit codes are one
//    step from the nearest entry, where bitsandbytes' CUDA kernel (binary search) would pick the nearest.
//  * FP4 dequantisation: code 8 gives -0.0 (its CUDA and scalar CPU kernels), not +0.0 (its AVX-512/torch paths).
//  * bitsandbytes' CPU AVX-512 dequantize_4bit indexes absmax per row, which is wrong when in_features is a
//    multiple of 16 but not of blocksize; loft (like its CUDA kernel) indexes the flat blocks.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace loft::nf4 {

enum class QuantType { kNf4, kFp4 };

// bitsandbytes' accepted 4-bit block sizes (functional.quantize_4bit).
constexpr std::array<int64_t, 8> kBlocksizes = {32, 64, 128, 256, 512, 1024, 2048, 4096};
// Double quantisation: blocks of absmax values quantised together to 8 bits (bitsandbytes' fixed nested blocksize).
constexpr int64_t kNestedBlocksize = 256;

struct Format {
  QuantType quant_type = QuantType::kNf4;
  int64_t blocksize = 64;
  bool double_quant = true;
};

// Code value of each 4-bit index (bitsandbytes' get_4bit_type, the "quant_map"), index 0..15.
const std::array<float, 16>& code_table(QuantType type);
// The values dequantisation multiplies: code_table, except FP4's index 8 (sign bit, zero magnitude) is -0.0 as in
// bitsandbytes' CUDA kernel (dDequantizeFP4Tree) and CPU scalar kernel; its AVX-512 and torch fallbacks give +0.0.
const std::array<float, 16>& dequant_table(QuantType type);
// The signed 8-bit dynamic map (bitsandbytes' create_dynamic_map(signed=True)), sorted, 256 entries.
const std::array<float, 256>& dynamic_map();

// Where bitsandbytes' quantize_4bit (default backend: torch.bucketize over midpoints) puts a scaled value in [-1, 1]:
// the number of decision bounds strictly below it, mapped back to the code index. Bounds are the fp32 midpoints of
// the sorted code (ties go to the lower code); FP4's code is unsorted, hence `sorted_to_index`.
struct FourBitQuantizer {
  std::array<float, 15> bounds;
  std::array<uint8_t, 16> sorted_to_index;
};
FourBitQuantizer four_bit_quantizer(QuantType type);

// bitsandbytes' CPU blockwise 8-bit quantizer (csrc/cpu_ops.cpp) does not search the map: it rounds the scaled value
// to one of 65536 bins over [-1, 1] and takes the precomputed code of that bin. Returns that 65536-entry table.
const std::array<uint8_t, 65536>& dynamic_map_bin_codes();
// The bin of a scaled value, as bitsandbytes computes it (every step rounded in fp32, truncation at the end).
inline uint16_t dynamic_map_bin(float scaled) {
  float v = scaled < -1.0f ? -1.0f : (scaled > 1.0f ? 1.0f : scaled);
  float t = (v + 1.0f) * 0.5f;
  t = t * 65535.0f;
  t = t + 0.5f;
  return static_cast<uint16_t>(t);
}

// The compact form. `absmax` is fp32 [blocks] without double quantisation, uint8 codes [blocks] with it (then
// `nested_absmax` fp32 [ceil(blocks/256)] and `nested_offset` fp32 [] hold the rest). `packed` is uint8
// [ceil(numel/2), 1]. All tensors live on one device.
struct Quantized {
  at::Tensor packed;
  at::Tensor absmax;
  at::Tensor nested_absmax;
  at::Tensor nested_offset;
};

int64_t block_count(int64_t numel, int64_t blocksize);

// CPU reference: quantises `weight` (fp32/bf16/fp16, any shape; flattened row-major) exactly as
// bitsandbytes.functional.quantize_4bit(weight, blocksize, quant_type, compress_statistics=double_quant) on CPU.
Quantized quantize_reference(const at::Tensor& weight, const Format& format);
// The double-quantisation step alone (shared with the CUDA path, which computes absmax on the GPU): offset =
// mean(absmax) with torch's CPU reduction, as bitsandbytes does, so both paths agree bit for bit.
float nested_offset_of(const at::Tensor& absmax_fp32);
// (absmax - offset) quantised in blocks of 256 with the dynamic map, as bitsandbytes' CPU quantize_blockwise.
void quantize_nested_reference(const at::Tensor& absmax_fp32, float offset, at::Tensor& codes_out,
                               at::Tensor& nested_absmax_out);
// absmax as fp32: code8[q] * nested_absmax[block] + offset (two fp32 roundings), or the fp32 absmax itself.
at::Tensor absmax_reference(const Quantized& q);
// CPU reference dequantisation to a flat [numel] tensor of `dtype` (fp32, bf16 or fp16): code[q] * absmax[block]
// rounded once in fp32, then to `dtype` round-to-nearest-even (bitsandbytes' dequantize_4bit on CPU).
at::Tensor dequantize_reference(const Quantized& q, const Format& format, int64_t numel, c10::ScalarType dtype);

const char* quant_type_name(QuantType type);

}  // namespace loft::nf4
