// quantizer/int8: LLM.int8-style storage (int8 codes CB + per-output-row absmax SCB, as bitsandbytes' Linear8bitLt
// stores them) with two forwards: dequantize + dense GEMM (default), or the exact int8 matmul with outliers.
#include <cmath>
#include <string>

#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/matmul.h>

#include "int8_rowwise.h"
#include "loft/dequantized_linear.h"
#include "loft/memory_cost.h"
#include "loft/plugin.h"
#include "loft/quantizer.h"

namespace {

enum class Matmul { kDequant, kInt8 };

class Int8Linear final : public loft::QuantizedLinear {
 public:
  Int8Linear(at::Tensor cb, at::Tensor scb, Matmul matmul, double threshold)
      : cb_(std::move(cb)), scb_(std::move(scb)), matmul_(matmul), threshold_(threshold) {}

  at::Tensor forward(const at::Tensor& x) const override {
    if (matmul_ == Matmul::kDequant) return loft::dequantized_linear(x, *this);
    TORCH_CHECK(x.size(-1) == in_features(), "quantizer/int8: input has ", x.size(-1), " features, the weight expects ",
                in_features());
    // LLM.int8's forward (not differentiable by itself) with the frozen weight's input gradient dx = dy · deq(W).
    // deq(W) is dequantize(): bitsandbytes' int8_vectorwise_dequant order, (CB * SCB) / 127 in fp32 then the dtype.
    // MatMul8bitLt.backward rounds CB * (SCB / 127) instead, which can differ from it in a weight's last bf16/fp16 bit.
    return loft::dequantized_linear(x, *this, [this](const at::Tensor& input) {
      return loft::int8::llm_int8_forward(input, cb_, scb_, threshold_);
    });
  }
  at::Tensor dequantize(c10::ScalarType dtype) const override { return loft::int8::dequantize_rows(cb_, scb_, dtype); }
  int64_t storage_bytes() const override { return static_cast<int64_t>(cb_.nbytes() + scb_.nbytes()); }
  std::map<std::string, at::Tensor> state() const override { return {{"weight", cb_}, {"SCB", scb_}}; }
  void to(c10::Device device, bool non_blocking) override {
    cb_ = cb_.to(device, non_blocking);
    scb_ = scb_.to(device, non_blocking);
  }
  bool visit_storage(const loft::StorageVisitor& visit) override {
    visit("weight", cb_);
    visit("SCB", scb_);
    return true;
  }
  int64_t out_features() const override { return cb_.size(0); }
  int64_t in_features() const override { return cb_.size(1); }

  const at::Tensor& cb() const { return cb_; }
  const at::Tensor& scb() const { return scb_; }

 private:
  at::Tensor cb_;   // int8 [out, in]
  at::Tensor scb_;  // float32 [out]
  Matmul matmul_;
  double threshold_;
};

class Int8Quantizer final : public loft::Quantizer, public loft::QuantizerMemoryCost {
 public:
  Int8Quantizer(Matmul matmul, double threshold) : matmul_(matmul), threshold_(threshold) {}

  // loft plan: int8 codes CB [out, in] + fp32 absmax SCB [out].
  int64_t storage_bytes(int64_t out_features, int64_t in_features, c10::ScalarType) const override {
    return out_features * in_features + out_features * 4;
  }
  // Backward (and the default forward) rebuild deq(W) in the compute dtype.
  int64_t transient_bytes(int64_t out_features, int64_t in_features, c10::ScalarType dtype) const override {
    return out_features * in_features * static_cast<int64_t>(c10::elementSize(dtype));
  }
  const void* extension(std::string_view id) const override {
    return id == loft::kQuantizerMemoryCostId ? static_cast<const loft::QuantizerMemoryCost*>(this) : nullptr;
  }

  std::unique_ptr<loft::QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const override {
    TORCH_CHECK(weight.dim() == 2, "quantizer/int8: weight of ", site, " must be 2-D [out, in], got ", weight.sizes());
    TORCH_CHECK(weight.is_floating_point(), "quantizer/int8: weight of ", site, " must be floating point, got ",
                weight.scalar_type());
    // Linear8bitLt quantizes the fp16 copy of the weight (Int8Params._quantize), so do we.
    const at::Tensor w16 = weight.detach().to(at::kHalf).contiguous();
    TORCH_CHECK(at::all(at::isfinite(w16)).item<bool>(), "quantizer/int8: weight of ", site,
                " has values that are not finite in float16 (|w| > 65504, inf or nan); int8 quantizes the float16 "
                "weight as bitsandbytes does. Leave this module dense with [quantizer] skip, or check the checkpoint");
    auto q = loft::int8::quantize_rows(w16, 0.0);
    return std::make_unique<Int8Linear>(std::move(q.codes), std::move(q.absmax), matmul_, threshold_);
  }

  std::unique_ptr<loft::QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                              int64_t in_features) const override {
    const std::string fix = "; re-create it from the dense weights (quantize) or from a state saved by quantizer/int8";
    for (const char* key : {"weight", "SCB"}) {
      TORCH_CHECK(state.count(key), "quantizer/int8: saved state has no '", key,
                  "' (quantizer/int8 saves 'weight' int8 [out, in] and 'SCB' float32 [out])", fix);
    }
    TORCH_CHECK(state.size() == 2, "quantizer/int8: saved state has ", state.size(),
                " tensors, expected exactly 'weight' and 'SCB'", fix);
    const at::Tensor& cb = state.at("weight");
    const at::Tensor& scb = state.at("SCB");
    TORCH_CHECK(cb.scalar_type() == at::kChar, "quantizer/int8: saved 'weight' is ", cb.scalar_type(),
                ", expected int8 codes", fix);
    TORCH_CHECK(cb.dim() == 2 && cb.size(0) == out_features && cb.size(1) == in_features,
                "quantizer/int8: saved 'weight' has shape ", cb.sizes(), ", expected [", out_features, ", ",
                in_features, "]", fix);
    TORCH_CHECK(scb.scalar_type() == at::kFloat && scb.dim() == 1 && scb.size(0) == out_features,
                "quantizer/int8: saved 'SCB' is ", scb.scalar_type(), " ", scb.sizes(), ", expected float32 [",
                out_features, "]", fix);
    TORCH_CHECK(cb.device() == scb.device(), "quantizer/int8: saved 'weight' is on ", cb.device(), " but 'SCB' on ",
                scb.device(), "; keep both on one device");
    return std::make_unique<Int8Linear>(cb.detach().contiguous(), scb.detach().contiguous(), matmul_, threshold_);
  }

 private:
  Matmul matmul_;
  double threshold_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_quantizer("int8", [](const loft::HostContext&, const loft::Options& options) {
    // The manifest's choices and min already reject bad values at validation; this guards direct callers.
    const std::string& matmul = options.string("matmul");
    const double threshold = options.real("threshold");
    TORCH_CHECK(matmul == "dequant" || matmul == "int8", "quantizer/int8: matmul = \"", matmul,
                "\" is not one of \"dequant\", \"int8\"");
    TORCH_CHECK(std::isfinite(threshold) && threshold >= 0.0, "quantizer/int8: threshold = ", threshold,
                " must be a finite number >= 0 (0 disables the outlier decomposition)");
    return std::make_unique<Int8Quantizer>(matmul == "int8" ? Matmul::kInt8 : Matmul::kDequant, threshold);
  });
}

}  // namespace

LOFT_PLUGIN("quantizer/int8", register_plugin)
