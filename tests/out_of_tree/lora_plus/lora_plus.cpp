// An out-of-tree PEFT plugin built only against the installed SDK: LoRA with LoRA+ learning rates (Hayou et al.,
// 2024: B learns `ratio` times faster than A), through the SDK's parameter groups. Small on purpose: targets by
// module short name, Kaiming-uniform A, zero B, no dropout.
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/zeros.h>
#include <c10/core/Device.h>
#include <fmt/format.h>

#include "loft/peft.h"
#include "loft/plugin.h"

namespace {

struct Config {
  int64_t r = 8;
  double alpha = 16.0;
  double ratio = 16.0;
  std::set<std::string> targets;
  uint64_t seed = 0;
  c10::Device device{c10::kCPU};
};

class LoraPlusAdapter final : public loft::Adapter {
 public:
  LoraPlusAdapter(const loft::LinearSite& site, const Config& c) : base_(site.base), scale_(c.alpha / c.r) {
    // Kaiming-uniform(a = sqrt(5)) for A, as nn.Linear and PEFT initialise it: bound = 1 / sqrt(in_features).
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed ^ std::hash<std::string>{}(site.name));
    const double bound = 1.0 / std::sqrt(static_cast<double>(site.in_features));
    at::NoGradGuard no_grad;
    a_ = at::empty({c.r, site.in_features}, at::kFloat).uniform_(-bound, bound, gen).to(c.device).requires_grad_();
    b_ = at::zeros({site.out_features, c.r}, at::TensorOptions().dtype(at::kFloat).device(c.device)).requires_grad_();
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out, bool) override {
    const auto dt = x.scalar_type();
    return base_out + at::matmul(at::matmul(x, a_.to(dt).t()), b_.to(dt).t()) * scale_;
  }
  loft::NamedTensors trainable() const override { return {{"lora_A.weight", a_}, {"lora_B.weight", b_}}; }
  loft::NamedTensors state_dict() const override { return trainable(); }
  loft::Status load_state_dict(const std::map<std::string, at::Tensor>& state) override {
    at::NoGradGuard no_grad;
    for (auto& [key, t] : trainable()) {
      auto it = state.find(key);
      if (it == state.end()) return loft::Status::InvalidArgument(fmt::format("oot_lora_plus: no tensor {}", key));
      if (it->second.sizes() != t.sizes()) {
        return loft::Status::InvalidArgument(fmt::format("oot_lora_plus: {} has another shape", key));
      }
      t.copy_(it->second);
    }
    return loft::Status::Ok();
  }
  at::Tensor merged_weight(c10::ScalarType dtype) const override {
    at::NoGradGuard no_grad;
    return (base_->dequantize(at::kFloat) + at::matmul(b_, a_) * scale_).to(dtype);
  }

 private:
  const loft::QuantizedLinear* base_;
  double scale_;
  at::Tensor a_, b_;
};

class LoraPlus final : public loft::PeftMethod {
 public:
  explicit LoraPlus(Config c) : c_(std::move(c)) {}
  bool targets(const loft::LinearSite& site) const override { return c_.targets.count(site.short_name) != 0; }
  std::unique_ptr<loft::Adapter> attach(const loft::LinearSite& site) const override {
    return std::make_unique<LoraPlusAdapter>(site, c_);
  }
  std::vector<std::string> trainable_parameters(const std::vector<std::string>&) const override { return {}; }
  std::string adapter_config_json(const std::string& base) const override {
    std::string modules;
    for (const auto& t : c_.targets) modules += (modules.empty() ? "\"" : ", \"") + t + "\"";
    return fmt::format(R"({{"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "{}", "r": {},
 "lora_alpha": {}, "lora_dropout": 0.0, "target_modules": [{}], "bias": "none", "fan_in_fan_out": false}})",
                       base, c_.r, c_.alpha, modules);
  }
  // LoRA+: A at the scheduled learning rate, B at `ratio` times it; weight decay by the host's rule.
  std::vector<loft::ParamGroup> param_groups(const loft::NamedTensors& trainable) const override {
    loft::ParamGroup a, b;
    a.name = "lora_A";
    b.name = "lora_B";
    b.lr_scale = c_.ratio;
    for (const auto& nt : trainable) (nt.first.find("lora_B") != std::string::npos ? b : a).tensors.push_back(nt);
    return {a, b};
  }

 private:
  Config c_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_peft("oot_lora_plus", [](const loft::HostContext& ctx, const loft::Options& o) {
    Config c;
    c.r = o.integer("r");
    c.alpha = o.real("alpha");
    c.ratio = o.real("ratio");
    for (const auto& t : o.strings("targets")) c.targets.insert(t);
    c.seed = ctx.seed();
    c.device = ctx.device();
    return std::make_unique<LoraPlus>(std::move(c));
  });
}

}  // namespace

LOFT_PLUGIN("peft/oot_lora_plus", register_plugin)
