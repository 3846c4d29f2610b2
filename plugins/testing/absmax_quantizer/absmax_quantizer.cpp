// Fixture: a small real quantizer (int8 codes + one fp32 scale per row, `bits` option) so host features that must
// tell quantized from dense storage, or one option from another, can be tested without the shipped int8/nf4 plugins.
#include <cmath>

#include <ATen/TensorOperators.h>
#include <ATen/ops/round.h>

#include "loft/dequantized_linear.h"
#include "loft/plugin.h"
#include "loft/quantizer.h"

namespace {

class AbsmaxLinear final : public loft::QuantizedLinear {
 public:
  AbsmaxLinear(at::Tensor codes, at::Tensor scale) : codes_(std::move(codes)), scale_(std::move(scale)) {}
  at::Tensor forward(const at::Tensor& x) const override { return loft::dequantized_linear(x, *this); }
  at::Tensor dequantize(c10::ScalarType dtype) const override {
    return (codes_.to(at::kFloat) * scale_.unsqueeze(1)).to(dtype);
  }
  int64_t storage_bytes() const override { return static_cast<int64_t>(codes_.nbytes() + scale_.nbytes()); }
  std::map<std::string, at::Tensor> state() const override { return {{"codes", codes_}, {"scale", scale_}}; }
  void to(c10::Device device, bool non_blocking) override {
    codes_ = codes_.to(device, non_blocking);
    scale_ = scale_.to(device, non_blocking);
  }
  int64_t out_features() const override { return codes_.size(0); }
  int64_t in_features() const override { return codes_.size(1); }

 private:
  at::Tensor codes_;  // int8 [out, in]
  at::Tensor scale_;  // fp32 [out]
};

class AbsmaxQuantizer final : public loft::Quantizer {
 public:
  explicit AbsmaxQuantizer(int64_t bits) : levels_(static_cast<double>((int64_t{1} << (bits - 1)) - 1)) {}
  std::unique_ptr<loft::QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const override {
    TORCH_CHECK(weight.dim() == 2, "quantizer/testing_absmax: weight of ", site, " must be 2-D");
    const at::Tensor w = weight.detach().to(at::kFloat);
    const at::Tensor scale = w.abs().amax(1).clamp_min(1e-12) / levels_;
    const at::Tensor codes = at::round(w / scale.unsqueeze(1)).clamp(-levels_, levels_).to(at::kChar);
    return std::make_unique<AbsmaxLinear>(codes.contiguous(), scale.contiguous());
  }
  std::unique_ptr<loft::QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                              int64_t in_features) const override {
    auto codes = state.find("codes");
    auto scale = state.find("scale");
    TORCH_CHECK(codes != state.end() && scale != state.end(), "quantizer/testing_absmax: state needs codes and scale");
    TORCH_CHECK(codes->second.scalar_type() == at::kChar && codes->second.dim() == 2 &&
                    codes->second.size(0) == out_features && codes->second.size(1) == in_features,
                "quantizer/testing_absmax: codes must be int8 [", out_features, ", ", in_features, "]");
    TORCH_CHECK(scale->second.scalar_type() == at::kFloat && scale->second.dim() == 1 &&
                    scale->second.size(0) == out_features,
                "quantizer/testing_absmax: scale must be fp32 [", out_features, "]");
    return std::make_unique<AbsmaxLinear>(codes->second.contiguous(), scale->second.contiguous());
  }

 private:
  double levels_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_quantizer("testing_absmax", [](const loft::HostContext&, const loft::Options& options) {
    return std::make_unique<AbsmaxQuantizer>(options.integer("bits"));
  });
}

}  // namespace

LOFT_PLUGIN("quantizer/testing_absmax", register_plugin)
