// peft/full: full fine-tuning. Each linear site gets a trainable fp32 master copy of its weight (and bias) and
// computes its whole output in the activations' dtype; the frozen base is not used.
#include <algorithm>

#include <ATen/core/grad_mode.h>
#include <ATen/ops/linear.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "loft/peft.h"
#include "loft/memory_cost.h"
#include "loft/plugin.h"

namespace {

class FullAdapter final : public loft::Adapter {
 public:
  explicit FullAdapter(const loft::LinearSite& site)
      : weight_(site.base->dequantize(at::kFloat).detach().clone().set_requires_grad(true)) {
    if (site.bias.defined()) bias_ = site.bias.detach().to(at::kFloat).clone().set_requires_grad(true);
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor&, bool) override {
    const auto dtype = x.scalar_type();
    return at::linear(x, weight_.to(dtype), bias_.defined() ? bias_.to(dtype) : at::Tensor());
  }
  bool uses_base_output() const override { return false; }
  loft::NamedTensors trainable() const override { return state_dict(); }
  loft::NamedTensors state_dict() const override {
    loft::NamedTensors out{{"weight", weight_}};
    if (bias_.defined()) out.emplace_back("bias", bias_);
    return out;
  }
  loft::Status load_state_dict(const std::map<std::string, at::Tensor>& state) override {
    for (auto& [name, target] : state_dict()) {
      auto it = state.find(name);
      if (it == state.end()) return loft::Status::NotFound(fmt::format("peft/full: missing '{}'", name));
      if (it->second.sizes() != target.sizes()) {
        return loft::Status::InvalidArgument(fmt::format("peft/full: '{}' has shape [{}], expected [{}]", name,
                                                         fmt::join(it->second.sizes(), ", "),
                                                         fmt::join(target.sizes(), ", ")));
      }
      at::NoGradGuard no_grad;
      target.copy_(it->second);
    }
    return loft::Status::Ok();
  }
  at::Tensor merged_weight(c10::ScalarType dtype) const override { return weight_.detach().to(dtype); }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

class FullFineTune final : public loft::PeftMethod, public loft::PeftMemoryCost {
 public:
  explicit FullFineTune(std::vector<std::string> exclude) : exclude_(std::move(exclude)) {}
  bool targets(const loft::LinearSite& site) const override {
    return !excluded(site.short_name) && !excluded(site.name);
  }
  std::unique_ptr<loft::Adapter> attach(const loft::LinearSite& site) const override {
    return std::make_unique<FullAdapter>(site);
  }
  // loft plan: an fp32 master of the weight (and bias); forward keeps their casts to the compute dtype.
  int64_t trainable_elements(const loft::LinearSite& site, bool has_bias) const override {
    return site.out_features * site.in_features + (has_bias ? site.out_features : 0);
  }
  int64_t saved_bytes(const loft::LinearSite& site, bool has_bias, int64_t, c10::ScalarType dtype) const override {
    if (dtype == at::kFloat) return 0;
    return trainable_elements(site, has_bias) * static_cast<int64_t>(c10::elementSize(dtype));
  }
  const void* extension(std::string_view id) const override {
    return id == loft::kPeftMemoryCostId ? static_cast<const loft::PeftMemoryCost*>(this) : nullptr;
  }
  std::vector<std::string> trainable_parameters(const std::vector<std::string>& names) const override {
    std::vector<std::string> out;
    for (const auto& n : names) {
      if (!excluded(n)) out.push_back(n);
    }
    return out;
  }
  std::string adapter_config_json(const std::string&) const override { return ""; }

 private:
  bool excluded(const std::string& name) const {
    return std::find(exclude_.begin(), exclude_.end(), name) != exclude_.end();
  }
  std::vector<std::string> exclude_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_peft("full", [](const loft::HostContext&, const loft::Options& options) {
    return std::make_unique<FullFineTune>(options.strings("exclude"));
  });
}

}  // namespace

LOFT_PLUGIN("peft/full", register_plugin)
