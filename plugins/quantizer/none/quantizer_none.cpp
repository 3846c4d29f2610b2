// quantizer/none: dense frozen weights in the run's compute dtype; y = x W^T through at::linear.
#include <ATen/ops/linear.h>

#include "loft/plugin.h"
#include "loft/quantizer.h"

namespace {

class DenseLinear final : public loft::QuantizedLinear {
 public:
  explicit DenseLinear(at::Tensor weight) : weight_(std::move(weight)) {}
  // The weight never requires grad, so autograd differentiates w.r.t. x only.
  at::Tensor forward(const at::Tensor& x) const override { return at::linear(x, weight_); }
  at::Tensor dequantize(c10::ScalarType dtype) const override { return weight_.to(dtype); }
  int64_t storage_bytes() const override { return static_cast<int64_t>(weight_.nbytes()); }
  std::map<std::string, at::Tensor> state() const override { return {{"weight", weight_}}; }
  void to(c10::Device device, bool non_blocking) override { weight_ = weight_.to(device, non_blocking); }
  int64_t out_features() const override { return weight_.size(0); }
  int64_t in_features() const override { return weight_.size(1); }

 private:
  at::Tensor weight_;
};

class NoneQuantizer final : public loft::Quantizer {
 public:
  explicit NoneQuantizer(c10::ScalarType dtype) : dtype_(dtype) {}
  std::unique_ptr<loft::QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const override {
    TORCH_CHECK(weight.dim() == 2, "quantizer/none: weight of ", site, " must be 2-D [out, in], got ", weight.sizes());
    return std::make_unique<DenseLinear>(weight.detach().to(dtype_).contiguous());
  }
  std::unique_ptr<loft::QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                              int64_t in_features) const override {
    auto it = state.find("weight");
    TORCH_CHECK(it != state.end(), "quantizer/none: saved state has no 'weight'");
    TORCH_CHECK(it->second.dim() == 2 && it->second.size(0) == out_features && it->second.size(1) == in_features,
                "quantizer/none: saved weight has shape ", it->second.sizes(), ", expected [", out_features, ", ",
                in_features, "]");
    return std::make_unique<DenseLinear>(it->second.detach().to(dtype_).contiguous());
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
