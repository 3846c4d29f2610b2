// quantizer/none: dense frozen weights in the run's compute dtype; y = x W^T through at::linear.
#include <ATen/ops/all.h>
#include <ATen/ops/isfinite.h>

#include "loft/dense_linear.h"
#include "loft/memory_cost.h"
#include "loft/plugin.h"
#include "loft/quantizer.h"

namespace {

class NoneQuantizer final : public loft::Quantizer, public loft::QuantizerMemoryCost {
 public:
  explicit NoneQuantizer(c10::ScalarType dtype) : dtype_(dtype) {}
  // loft plan: the dense weight in the compute dtype; at::linear reads it directly.
  int64_t storage_bytes(int64_t out_features, int64_t in_features, c10::ScalarType) const override {
    return out_features * in_features * static_cast<int64_t>(c10::elementSize(dtype_));
  }
  int64_t transient_bytes(int64_t, int64_t, c10::ScalarType) const override { return 0; }
  const void* extension(std::string_view id) const override {
    return id == loft::kQuantizerMemoryCostId ? static_cast<const loft::QuantizerMemoryCost*>(this) : nullptr;
  }
  std::unique_ptr<loft::QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const override {
    TORCH_CHECK(weight.dim() == 2, "quantizer/none: weight of ", site, " must be 2-D [out, in], got ", weight.sizes());
    // The quantizer contract: no quantizer takes a non-finite weight (the host checks it too, for every plugin).
    TORCH_CHECK(at::all(at::isfinite(weight)).item<bool>(), "quantizer/none: weight of ", site,
                " has values that are not finite (inf or nan). Leave this module out of the quantizer with [quantizer] "
                "skip, or check the checkpoint");
    return std::make_unique<loft::DenseLinear>(weight.detach().to(dtype_).contiguous());
  }
  std::unique_ptr<loft::QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                              int64_t in_features) const override {
    auto it = state.find("weight");
    TORCH_CHECK(it != state.end(), "quantizer/none: saved state has no 'weight'");
    TORCH_CHECK(it->second.dim() == 2 && it->second.size(0) == out_features && it->second.size(1) == in_features,
                "quantizer/none: saved weight has shape ", it->second.sizes(), ", expected [", out_features, ", ",
                in_features, "]");
    return std::make_unique<loft::DenseLinear>(it->second.detach().to(dtype_).contiguous());
  }

 private:
  c10::ScalarType dtype_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_quantizer("none", [](const loft::HostContext& ctx, const loft::Options&) {
    return std::make_unique<NoneQuantizer>(ctx.compute_dtype());
  });
}

}  // namespace

LOFT_PLUGIN("quantizer/none", register_plugin)
