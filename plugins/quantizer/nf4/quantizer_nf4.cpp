// quantizer/nf4: QLoRA's 4-bit storage, bit-identical to bitsandbytes 0.50.2 (quantize_4bit / dequantize_4bit);
// y = x · deq(W)ᵀ through loft::dequantized_linear (CUDA kernels on GPU, the CPU reference elsewhere).
//
// state() keys, named after bitsandbytes' QuantState.as_dict (n = out_features * in_features, B = ceil(n / blocksize)):
//   "weight"            uint8 [ceil(n/2), 1]  two 4-bit code indices per byte, element 2j in the high nibble
//   "absmax"            fp32 [B]              max |w| of each block of `blocksize` row-major elements (no double quant)
//                       uint8 [B]             with double quant: codes of (absmax - nested_offset) in the dynamic map
//   "quant_map"         fp32 [16]             the 4-bit code (NF4 or FP4 table); load() checks it against quant_type
//   "nested_absmax"     fp32 [ceil(B/256)]    double quant only: max |absmax - offset| per block of 256 absmax values
//   "nested_quant_map"  fp32 [256]            double quant only: bitsandbytes' signed 8-bit dynamic map
//   "nested_offset"     fp32 []               double quant only: mean of the fp32 absmax
// blocksize, quant_type and the shape are the quantizer's options and load()'s arguments, not state tensors.
#include <stdexcept>

#include <ATen/ops/all.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/from_blob.h>

#include "loft/dequantized_linear.h"
#include "loft/memory_cost.h"
#include "loft/plugin.h"
#include "loft/quantizer.h"
#include "nf4_format.h"
#include "nf4_kernels.h"

namespace {

using loft::nf4::Format;
using loft::nf4::Quantized;
using loft::nf4::QuantType;

at::Tensor quant_map_tensor(QuantType type) {
  return at::from_blob(const_cast<float*>(loft::nf4::code_table(type).data()), {16}, at::kFloat).clone();
}
at::Tensor nested_quant_map_tensor() {
  return at::from_blob(const_cast<float*>(loft::nf4::dynamic_map().data()), {256}, at::kFloat).clone();
}

class Nf4Linear final : public loft::QuantizedLinear {
 public:
  Nf4Linear(Quantized q, Format format, int64_t out_features, int64_t in_features)
      : q_(std::move(q)), format_(format), out_(out_features), in_(in_features) {
    const auto device = q_.packed.device();
    quant_map_ = quant_map_tensor(format_.quant_type).to(device);
    if (format_.double_quant) nested_quant_map_ = nested_quant_map_tensor().to(device);
  }

  at::Tensor forward(const at::Tensor& x) const override { return loft::dequantized_linear(x, *this); }

  at::Tensor dequantize(c10::ScalarType dtype) const override {
    const bool direct = dtype == at::kFloat || dtype == at::kBFloat16 || dtype == at::kHalf;
    const auto kernel_dtype = direct ? dtype : at::kFloat;
    at::Tensor flat = q_.packed.is_cuda() ? loft::nf4::dequantize_cuda(q_, format_, out_ * in_, kernel_dtype)
                                          : loft::nf4::dequantize_reference(q_, format_, out_ * in_, kernel_dtype);
    at::Tensor w = flat.view({out_, in_});
    return direct ? w : w.to(dtype);
  }

  int64_t storage_bytes() const override {
    int64_t bytes = 0;
    for (const auto& [name, t] : state()) bytes += static_cast<int64_t>(t.nbytes());
    return bytes;
  }

  std::map<std::string, at::Tensor> state() const override {
    std::map<std::string, at::Tensor> s = {{"weight", q_.packed}, {"absmax", q_.absmax}, {"quant_map", quant_map_}};
    if (format_.double_quant) {
      s["nested_absmax"] = q_.nested_absmax;
      s["nested_quant_map"] = nested_quant_map_;
      s["nested_offset"] = q_.nested_offset;
    }
    return s;
  }

  void to(c10::Device device, bool non_blocking) override {
    for (at::Tensor* t : {&q_.packed, &q_.absmax, &q_.nested_absmax, &q_.nested_offset, &quant_map_, &nested_quant_map_}) {
      if (t->defined()) *t = t->to(device, non_blocking);
    }
  }

  // The state() tensors under their state() names; the nested ones only with double quantisation.
  bool visit_storage(const loft::StorageVisitor& visit) override {
    visit("weight", q_.packed);
    visit("absmax", q_.absmax);
    visit("quant_map", quant_map_);
    if (format_.double_quant) {
      visit("nested_absmax", q_.nested_absmax);
      visit("nested_quant_map", nested_quant_map_);
      visit("nested_offset", q_.nested_offset);
    }
    return true;
  }

  int64_t out_features() const override { return out_; }
  int64_t in_features() const override { return in_; }

 private:
  Quantized q_;
  Format format_;
  int64_t out_;
  int64_t in_;
  at::Tensor quant_map_;
  at::Tensor nested_quant_map_;
};

class Nf4Quantizer final : public loft::Quantizer, public loft::QuantizerMemoryCost {
 public:
  explicit Nf4Quantizer(Format format) : format_(format) {}

  // loft plan: the state() tensors' bytes, from the shape (see the key list at the top of this file).
  int64_t storage_bytes(int64_t out_features, int64_t in_features, c10::ScalarType) const override {
    const int64_t n = out_features * in_features;
    const int64_t blocks = loft::nf4::block_count(n, format_.blocksize);
    int64_t bytes = (n + 1) / 2 + 16 * 4;  // packed codes, quant_map
    if (!format_.double_quant) return bytes + blocks * 4;
    return bytes + blocks + loft::nf4::block_count(blocks, loft::nf4::kNestedBlocksize) * 4 + 256 * 4 + 4;
  }
  // dequantized_linear rebuilds the dense weight in forward and again in backward.
  int64_t transient_bytes(int64_t out_features, int64_t in_features, c10::ScalarType dtype) const override {
    return out_features * in_features * static_cast<int64_t>(c10::elementSize(dtype));
  }
  const void* extension(std::string_view id) const override {
    return id == loft::kQuantizerMemoryCostId ? static_cast<const loft::QuantizerMemoryCost*>(this) : nullptr;
  }

  std::unique_ptr<loft::QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const override {
    TORCH_CHECK(weight.dim() == 2 && weight.numel() > 0, "quantizer/nf4: weight of ", site,
                " must be a non-empty 2-D [out, in] tensor, got ", weight.sizes());
    TORCH_CHECK(at::isFloatingType(weight.scalar_type()), "quantizer/nf4: weight of ", site,
                " must be a floating-point tensor, got ", weight.scalar_type());
    // bitsandbytes turns a block holding NaN or Inf into NaNs; codes cannot hold either, so refuse instead.
    TORCH_CHECK(at::all(at::isfinite(weight)).item<bool>(), "quantizer/nf4: weight of ", site,
                " has values that are not finite (inf or nan), which 4-bit codes cannot store. Leave this module dense "
                "with [quantizer] skip, or check the checkpoint");
    Quantized q = weight.is_cuda() ? loft::nf4::quantize_cuda(weight, format_)
                                   : loft::nf4::quantize_reference(weight, format_);
    return std::make_unique<Nf4Linear>(std::move(q), format_, weight.size(0), weight.size(1));
  }

  std::unique_ptr<loft::QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                              int64_t in_features) const override {
    TORCH_CHECK(out_features > 0 && in_features > 0, "quantizer/nf4: load() needs a positive shape, got [",
                out_features, ", ", in_features, "]");
    const int64_t n = out_features * in_features;
    const int64_t blocks = loft::nf4::block_count(n, format_.blocksize);
    const std::string where = " in the saved quantizer/nf4 state of a [" + std::to_string(out_features) + ", " +
                              std::to_string(in_features) + "] weight";
    auto get = [&](const std::string& key, c10::ScalarType dtype, int64_t numel, const std::string& hint) {
      auto it = state.find(key);
      TORCH_CHECK(it != state.end() && it->second.defined(), "quantizer/nf4: '", key, "' is missing", where, hint);
      const at::Tensor& t = it->second;
      TORCH_CHECK(t.scalar_type() == dtype, "quantizer/nf4: '", key, "' has dtype ", t.scalar_type(), where,
                  ", expected ", dtype, hint);
      TORCH_CHECK(t.numel() == numel, "quantizer/nf4: '", key, "' has ", t.numel(), " elements", where, ", expected ",
                  numel, hint);
      return t.contiguous();
    };
    const bool has_nested = state.count("nested_absmax") != 0;
    TORCH_CHECK(has_nested == format_.double_quant, "quantizer/nf4: the saved state was quantised ",
                has_nested ? "with" : "without", " double quantisation", where, ", but [quantizer] double_quant = ",
                format_.double_quant ? "true" : "false", "; set double_quant = ", has_nested ? "true" : "false",
                " to load it");
    const std::string shape_hint = "; was it saved with another blocksize (now " + std::to_string(format_.blocksize) +
                                   ") or for another weight?";
    Quantized q;
    q.packed = get("weight", at::kByte, (n + 1) / 2, shape_hint).view({(n + 1) / 2, 1});
    const c10::Device device = q.packed.device();
    auto here = [&](const at::Tensor& t) { return t.to(device); };
    q.absmax = here(get("absmax", format_.double_quant ? at::kByte : at::kFloat, blocks, shape_hint).view({blocks}));
    const at::Tensor quant_map = get("quant_map", at::kFloat, 16, "").cpu();
    if (!at::equal(quant_map, quant_map_tensor(format_.quant_type))) {
      const QuantType other = format_.quant_type == QuantType::kNf4 ? QuantType::kFp4 : QuantType::kNf4;
      const bool is_other = at::equal(quant_map, quant_map_tensor(other));
      TORCH_CHECK(false, "quantizer/nf4: 'quant_map'", where, " is ",
                  is_other ? std::string("the ") + loft::nf4::quant_type_name(other) + " code" : "not a known 4-bit code",
                  ", but [quantizer] quant_type = \"", loft::nf4::quant_type_name(format_.quant_type), "\"",
                  is_other ? std::string("; set quant_type = \"") + loft::nf4::quant_type_name(other) + "\""
                           : std::string("; the state is corrupt: quantise the weight again"));
    }
    if (format_.double_quant) {
      const int64_t nested_blocks = loft::nf4::block_count(blocks, loft::nf4::kNestedBlocksize);
      q.nested_absmax = here(get("nested_absmax", at::kFloat, nested_blocks, shape_hint).view({nested_blocks}));
      q.nested_offset = here(get("nested_offset", at::kFloat, 1, "").reshape(std::vector<int64_t>{}));
      TORCH_CHECK(at::equal(get("nested_quant_map", at::kFloat, 256, "").cpu(), nested_quant_map_tensor()),
                  "quantizer/nf4: 'nested_quant_map'", where,
                  " is not bitsandbytes' signed 8-bit dynamic map; the state is corrupt: quantise the weight again");
    }
    return std::make_unique<Nf4Linear>(std::move(q), format_, out_features, in_features);
  }

 private:
  Format format_;
};

Format format_from(const loft::Options& options) {
  Format f;
  const std::string& type = options.string("quant_type");
  if (type == "nf4") {
    f.quant_type = QuantType::kNf4;
  } else if (type == "fp4") {
    f.quant_type = QuantType::kFp4;
  } else {
    throw std::invalid_argument("[quantizer] quant_type = \"" + type + "\" is not one of \"nf4\", \"fp4\"");
  }
  f.blocksize = options.integer("blocksize");
  bool known = false;
  for (int64_t b : loft::nf4::kBlocksizes) known = known || b == f.blocksize;
  if (!known) {
    throw std::invalid_argument("[quantizer] blocksize = " + std::to_string(f.blocksize) +
                                " is not one bitsandbytes supports: use 32, 64, 128, 256, 512, 1024, 2048 or 4096");
  }
  f.double_quant = options.boolean("double_quant");
  return f;
}

void register_plugin(loft::Registrar& registrar) {
  registrar.add_quantizer("nf4", [](const loft::HostContext&, const loft::Options& options) {
    return std::make_unique<Nf4Quantizer>(format_from(options));
  });
}

}  // namespace

LOFT_PLUGIN("quantizer/nf4", register_plugin)
