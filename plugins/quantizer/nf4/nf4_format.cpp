// Tables and the CPU reference of the bitsandbytes 4-bit format; see nf4_format.h. Written from bitsandbytes 0.50.2's
// behaviour (functional.py, backends/default/ops.py, csrc/cpu_ops.cpp) and checked against it by tests/quantizer.
#include "nf4_format.h"

#include <algorithm>
#include <cmath>

#include <vector>

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/mean.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

namespace loft::nf4 {
namespace {

// get_4bit_type("nf4"): the normal-float code of the QLoRA paper, index 0..15.
constexpr std::array<float, 16> kNf4 = {
    -0x1.0p+0f,     -0x1.647362p-1f, -0x1.0cd660p-1f, -0x1.946540p-2f, -0x1.23449ap-2f, -0x1.7a6a7ep-3f,
    -0x1.74f0e2p-4f, 0x0.0p+0f,      0x1.45f5fep-4f,  0x1.4995c6p-3f,  0x1.f809bap-3f,  0x1.5a0674p-2f,
    0x1.c34970p-2f,  0x1.200f56p-1f,  0x1.722766p-1f,  0x1.0p+0f};
// get_4bit_type("fp4"): sign bit 8, then a 1-bit-mantissa float normalised to max 1. Index 8 is +0 as well.
constexpr std::array<float, 16> kFp4 = {
    0x0.0p+0f,  0x1.555556p-8f,  0x1.555556p-1f,  0x1.0p+0f,  0x1.555556p-2f,  0x1.0p-1f,  0x1.555556p-3f,  0x1.0p-2f,
    0x0.0p+0f, -0x1.555556p-8f, -0x1.555556p-1f, -0x1.0p+0f, -0x1.555556p-2f, -0x1.0p-1f, -0x1.555556p-3f, -0x1.0p-2f};
// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), sorted.
constexpr std::array<float, 256> kDynamic = {
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.ee0000p-1f, -0x1.e6ccccp-1f, -0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.ca0000p-1f,
    -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f, -0x1.a60000p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f,
    -0x1.893334p-1f, -0x1.820000p-1f, -0x1.7accccp-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5e0000p-1f, -0x1.56ccccp-1f,
    -0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3a0000p-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f, -0x1.246668p-1f, -0x1.1d3334p-1f,
    -0x1.160000p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f, -0x1.f26664p-2f, -0x1.e40000p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f,
    -0x1.b8ccccp-2f, -0x1.aa6666p-2f, -0x1.9c0000p-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.540000p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0c0000p-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f,
    -0x1.a4ccccp-3f, -0x1.880000p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f, -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.f00000p-4f, -0x1.b66668p-4f,
    -0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c290p-4f, -0x1.5a3d70p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f,
    -0x1.b70a3ep-5f, -0x1.a00000p-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f, -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c290p-5f,
    -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f, -0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c290p-7f,
    -0x1.3e76c8p-7f, -0x1.2c0830p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe76p-8f, -0x1.7ae148p-8f,
    -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f, -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d500p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0x0.0p+0f,
    0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f, 0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f,
    0x1.19ce0ap-12f, 0x1.8fc506p-12f, 0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d500p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f,
    0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f, 0x1.19999ap-7f, 0x1.2c0830p-7f, 0x1.3e76c8p-7f, 0x1.75c290p-7f,
    0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451ebap-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c290p-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.a00000p-5f, 0x1.b70a3ep-5f, 0x1.ce147ap-5f,
    0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f, 0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f,
    0x1.4eb854p-4f, 0x1.5a3d70p-4f, 0x1.65c290p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.f00000p-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3334p-3f, 0x1.880000p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f,
    0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0c0000p-2f, 0x1.1a6668p-2f, 0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.540000p-2f,
    0x1.626666p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9c0000p-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e40000p-2f, 0x1.f26664p-2f, 0x1.006666p-1f, 0x1.079998p-1f, 0x1.0eccccp-1f, 0x1.160000p-1f, 0x1.1d3334p-1f,
    0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3a0000p-1f, 0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f,
    0x1.5e0000p-1f, 0x1.653334p-1f, 0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7accccp-1f, 0x1.820000p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a60000p-1f, 0x1.ad3334p-1f, 0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.ca0000p-1f,
    0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f, 0x1.ee0000p-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1.000000p+0f,
};

// torch.clamp(min=1e-38) in bitsandbytes' quantize_4bit keeps 1/absmax finite for all-zero blocks.
constexpr float kTinyAbsmax = 1e-38f;

float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

float* as_float_ptr(const at::Tensor& t) { return t.data_ptr<float>(); }

}  // namespace

const std::array<float, 16>& code_table(QuantType type) { return type == QuantType::kNf4 ? kNf4 : kFp4; }
const std::array<float, 16>& dequant_table(QuantType type) {
  static const std::array<float, 16> fp4 = [] {
    auto t = kFp4;
    t[8] = -0.0f;
    return t;
  }();
  return type == QuantType::kNf4 ? kNf4 : fp4;
}
const std::array<float, 256>& dynamic_map() { return kDynamic; }
const char* quant_type_name(QuantType type) { return type == QuantType::kNf4 ? "nf4" : "fp4"; }

FourBitQuantizer four_bit_quantizer(QuantType type) {
  const auto& code = code_table(type);
  FourBitQuantizer q;
  // torch.argsort of the code as bitsandbytes computes it (_get_4bit_quantize_bounds); for FP4's two zeros the
  // +0 of index 0 comes before the "-0" of index 8.
  std::array<int, 16> order;
  for (int i = 0; i < 16; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return code[a] < code[b]; });
  for (int i = 0; i < 16; ++i) q.sorted_to_index[i] = static_cast<uint8_t>(order[i]);
  for (int i = 0; i < 15; ++i) q.bounds[i] = (code[order[i]] + code[order[i + 1]]) / 2.0f;
  return q;
}

const std::array<uint8_t, 65536>& dynamic_map_bin_codes() {
  static const std::array<uint8_t, 65536> table = [] {
    std::array<float, 255> midpoints;
    for (int i = 0; i < 255; ++i) midpoints[i] = 0.5f * (kDynamic[i] + kDynamic[i + 1]);
    std::array<uint8_t, 65536> out{};
    int code = 0;
    for (int bin = 0; bin < 65536; ++bin) {
      float value = -1.0f + (2.0f * static_cast<float>(bin)) / 65535.0f;
      while (code < 255 && midpoints[code] < value) ++code;
      out[bin] = static_cast<uint8_t>(code);
    }
    return out;
  }();
  return table;
}

int64_t block_count(int64_t numel, int64_t blocksize) { return (numel + blocksize - 1) / blocksize; }

Quantized quantize_reference(const at::Tensor& weight, const Format& format) {
  const at::Tensor w = weight.detach().to(at::kCPU, at::kFloat).contiguous().view(-1);
  const int64_t n = w.numel();
  TORCH_CHECK(n > 0, "nf4: cannot quantise an empty weight");
  const int64_t bs = format.blocksize;
  const int64_t blocks = block_count(n, bs);
  const float* x = as_float_ptr(w);
  const FourBitQuantizer fq = four_bit_quantizer(format.quant_type);
  auto code_of = [&](float scaled) {
    int sorted = 0;
    while (sorted < 15 && fq.bounds[sorted] < scaled) ++sorted;
    return fq.sorted_to_index[sorted];
  };

  at::Tensor absmax = at::empty({blocks}, at::kFloat);
  float* am = as_float_ptr(absmax);
  std::vector<uint8_t> codes(static_cast<size_t>(n + 1), code_of(0.0f));  // an odd count pads with the code of 0
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * bs, end = std::min(begin + bs, n);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(x[i]));
    if (end - begin == bs) {
      // Full blocks: x * (1 / absmax), absmax stored as is.
      am[b] = m;
      const float inv = 1.0f / std::max(m, kTinyAbsmax);
      for (int64_t i = begin; i < end; ++i) codes[i] = code_of(clamp_unit(x[i] * inv));
    } else {
      // bitsandbytes treats the final partial block separately: absmax clamped before it is stored, x / absmax.
      m = std::max(m, kTinyAbsmax);
      am[b] = m;
      for (int64_t i = begin; i < end; ++i) codes[i] = code_of(clamp_unit(x[i] / m));
    }
  }

  Quantized q;
  q.packed = at::empty({(n + 1) / 2, 1}, at::kByte);
  uint8_t* p = q.packed.data_ptr<uint8_t>();
  for (int64_t j = 0; j < (n + 1) / 2; ++j) p[j] = static_cast<uint8_t>(codes[2 * j] << 4 | codes[2 * j + 1]);
  if (!format.double_quant) {
    q.absmax = absmax;
    return q;
  }
  const float offset = nested_offset_of(absmax);
  quantize_nested_reference(absmax, offset, q.absmax, q.nested_absmax);
  q.nested_offset = at::full({}, offset, at::kFloat);
  return q;
}

float nested_offset_of(const at::Tensor& absmax_fp32) {
  TORCH_CHECK(absmax_fp32.scalar_type() == at::kFloat && absmax_fp32.dim() == 1, "nf4: absmax must be fp32 [blocks]");
  return at::mean(absmax_fp32.to(at::kCPU).contiguous()).item<float>();
}

void quantize_nested_reference(const at::Tensor& absmax_fp32, float offset, at::Tensor& codes_out,
                               at::Tensor& nested_absmax_out) {
  const at::Tensor a = absmax_fp32.to(at::kCPU).contiguous();
  const int64_t n = a.numel();
  const int64_t blocks = block_count(n, kNestedBlocksize);
  const float* x = as_float_ptr(a);
  const auto& bin_codes = dynamic_map_bin_codes();
  codes_out = at::zeros({n}, at::kByte);
  nested_absmax_out = at::empty({blocks}, at::kFloat);
  uint8_t* q = codes_out.data_ptr<uint8_t>();
  float* nested = as_float_ptr(nested_absmax_out);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = x[i] - offset;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kNestedBlocksize, end = std::min(begin + kNestedBlocksize, n);
    float m = 0.0f;
    for (int64_t i = begin; i < end; ++i) m = std::max(m, std::fabs(v[i]));
    nested[b] = m;
    if (m == 0.0f) continue;  // bitsandbytes writes code 0 for an all-zero block
    const float inv = 1.0f / m;
    for (int64_t i = begin; i < end; ++i) q[i] = bin_codes[dynamic_map_bin(v[i] * inv)];
  }
}

at::Tensor absmax_reference(const Quantized& q) {
  if (!q.nested_absmax.defined()) return q.absmax.to(at::kCPU).contiguous();
  const at::Tensor codes = q.absmax.to(at::kCPU).contiguous();
  const at::Tensor nested = q.nested_absmax.to(at::kCPU).contiguous();
  const float offset = q.nested_offset.to(at::kCPU).item<float>();
  const int64_t n = codes.numel();
  at::Tensor out = at::empty({n}, at::kFloat);
  const uint8_t* c = codes.data_ptr<uint8_t>();
  const float* na = as_float_ptr(nested);
  float* o = as_float_ptr(out);
  for (int64_t i = 0; i < n; ++i) {
    const float scaled = kDynamic[c[i]] * na[i / kNestedBlocksize];
    o[i] = scaled + offset;
  }
  return out;
}

at::Tensor dequantize_reference(const Quantized& q, const Format& format, int64_t numel, c10::ScalarType dtype) {
  const at::Tensor absmax = absmax_reference(q);
  const at::Tensor packed = q.packed.to(at::kCPU).contiguous();
  const auto& code = dequant_table(format.quant_type);
  const float* am = as_float_ptr(absmax);
  const uint8_t* p = packed.data_ptr<uint8_t>();
  at::Tensor out = at::empty({numel}, at::kFloat);
  float* o = as_float_ptr(out);
  for (int64_t i = 0; i < numel; ++i) {
    const uint8_t byte = p[i / 2];
    const uint8_t index = (i % 2 == 0) ? byte >> 4 : byte & 0x0F;
    o[i] = code[index] * am[i / format.blocksize];
  }
  return dtype == at::kFloat ? out : out.to(dtype);  // round to nearest even, as bitsandbytes' float_to_bf16/fp16
}

}  // namespace loft::nf4
