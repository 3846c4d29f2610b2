// An out-of-tree quantizer built only against the installed SDK: frozen weights stored in half precision, the
// matmul through the SDK's dequantized_linear (so it trains with any PEFT method on top).
#include <ATen/ops/empty.h>

#include "loft/dequantized_linear.h"
#include "loft/plugin.h"
#include "loft/quantizer.h"

namespace {

class HalfLinear final : public loft::QuantizedLinear {
 public:
  explicit HalfLinear(at::Tensor w) : w_(std::move(w)) {}
  at::Tensor forward(const at::Tensor& x) const override { return loft::dequantized_linear(x, *this); }
  at::Tensor dequantize(c10::ScalarType dtype) const override { return w_.to(dtype); }
  int64_t storage_bytes() const override { return static_cast<int64_t>(w_.nbytes()); }
  std::map<std::string, at::Tensor> state() const override { return {{"weight", w_}}; }
  void to(c10::Device device, bool non_blocking) override { w_ = w_.to(device, non_blocking); }
  int64_t out_features() const override { return w_.size(0); }
  int64_t in_features() const override { return w_.size(1); }

 private:
  at::Tensor w_;  // fp16 [out, in]
};

class Half final : public loft::Quantizer {
 public:
  std::unique_ptr<loft::QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const override {
    TORCH_CHECK(weight.dim() == 2, "quantizer/oot_half: the weight of ", site, " must be 2-D");
    return std::make_unique<HalfLinear>(weight.detach().to(at::kHalf).contiguous());
  }
  std::unique_ptr<loft::QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                              int64_t in_features) const override {
    auto w = state.find("weight");
    TORCH_CHECK(w != state.end() && w->second.scalar_type() == at::kHalf && w->second.dim() == 2 &&
                    w->second.size(0) == out_features && w->second.size(1) == in_features,
                "quantizer/oot_half: state needs an fp16 weight [", out_features, ", ", in_features, "]");
    return std::make_unique<HalfLinear>(w->second.contiguous());
  }
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_quantizer("oot_half", [](const loft::HostContext&, const loft::Options&) {
    return std::make_unique<Half>();
  });
}

}  // namespace

LOFT_PLUGIN("quantizer/oot_half", register_plugin)
