// loft::AdamW: the fused multi-tensor AdamW on the tensors' own device.
#include "loft/adamw.h"
#include "loft/memory_cost.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace loft {

void AdamW::attach(const std::vector<ParamGroup>& groups, const OptimizerSettings& settings) {
  settings_ = settings;
  for (const auto& g : groups) {
    Group group{g.lr_scale, g.weight_decay, {}};
    for (const auto& [name, t] : g.tensors) {
      TORCH_CHECK(t.scalar_type() == at::kFloat, "optimizer/adamw: trainable tensor ", name,
                  " must be an fp32 master, got ", t.scalar_type());
      group.members.push_back(params_.size());
      names_.push_back(name);
      params_.push_back(t);
      exp_avg_.push_back(at::zeros_like(t));
      exp_avg_sq_.push_back(at::zeros_like(t));
      steps_.push_back(at::zeros({}, t.options()));
    }
    groups_.push_back(std::move(group));
  }
}

void AdamW::zero_grad() {
  for (auto& t : params_) t.mutable_grad() = at::Tensor();
}

std::vector<at::Tensor> AdamW::gradients() {
  std::vector<at::Tensor> out;
  out.reserve(params_.size());
  for (const auto& t : params_) out.push_back(t.grad());
  return out;
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  for (const Group& g : groups_) {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
    for (size_t i : g.members) {
      if (!params_[i].grad().defined()) continue;  // not reached by this step's graph: left alone, like PyTorch
      params.push_back(params_[i]);
      grads.push_back(params_[i].grad());
      exp_avg.push_back(exp_avg_[i]);
      exp_avg_sq.push_back(exp_avg_sq_[i]);
      steps.push_back(steps_[i]);
    }
    if (params.empty()) continue;
    at::_foreach_add_(steps, 1.0);
    at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, {}, steps, lr * g.lr_scale, settings_.beta1,
                      settings_.beta2, g.weight_decay, settings_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
}

NamedTensors AdamW::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < names_.size(); ++i) {
    out.emplace_back("exp_avg." + names_[i], exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + names_[i], exp_avg_sq_[i]);
    out.emplace_back("step." + names_[i], steps_[i]);
  }
  return out;
}

Status AdamW::load_state_dict(const std::map<std::string, at::Tensor>& state) {
  at::NoGradGuard no_grad;
  auto current = state_dict();
  for (const auto& [key, target] : current) {
    auto it = state.find(key);
    if (it == state.end()) return Status::InvalidArgument(fmt::format("optimizer state has no '{}'", key));
    if (it->second.sizes() != target.sizes()) {
      return Status::InvalidArgument(fmt::format("optimizer state '{}' has shape [{}], expected [{}]", key,
                                                 fmt::join(it->second.sizes(), ", "), fmt::join(target.sizes(), ", ")));
    }
  }
  for (auto& [key, target] : current) target.copy_(state.at(key));
  return Status::Ok();
}

namespace {

class AdamWMemoryCost final : public OptimizerMemoryCost {
 public:
  OptimizerFootprint footprint(bool, int64_t) const override {
    OptimizerFootprint f;
    f.state_device_bytes = 8;     // exp_avg, exp_avg_sq
    f.gradient_device_bytes = 4;  // .grad, accumulated across micro-batches
    f.state_device_bytes_per_tensor = 4;  // step
    return f;
  }
};

}  // namespace

const void* AdamW::extension(std::string_view id) const {
  static const AdamWMemoryCost cost;
  return id == kOptimizerMemoryCostId ? static_cast<const OptimizerMemoryCost*>(&cost) : nullptr;
}

}  // namespace loft
