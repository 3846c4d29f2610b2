// AdamW with its state beside each tensor, stepped by ATen's multi-tensor fused kernel (_fused_adamw_, what
// torch.optim.AdamW(fused=True) runs): optimizer/adamw, and the trainer's optimizer when none is given.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "loft/optimizer.h"

namespace loft {

// Decoupled weight decay as torch.optim.AdamW: per group, lr = the step's lr x lr_scale. The state (exp_avg,
// exp_avg_sq: fp32 like the tensor; step: a 0-dim fp32 tensor) lives on each tensor's device; the gradients are the
// tensors' own .grad. Tensors that got no gradient in a step are left alone, state included, as PyTorch does.
class AdamW final : public Optimizer {
 public:
  // Throws c10::Error when a tensor is not fp32.
  void attach(const std::vector<ParamGroup>& groups, const OptimizerSettings& settings) override;
  void zero_grad() override;
  std::vector<at::Tensor> gradients() override;
  void step(double lr) override;
  NamedTensors state_dict() const override;
  Status load_state_dict(const std::map<std::string, at::Tensor>& state) override;
  // Answers kOptimizerMemoryCostId (loft/memory_cost.h): 8 bytes of state and 4 of gradient per element on the
  // tensor's device, plus a 4-byte step per tensor.
  const void* extension(std::string_view id) const override;

 private:
  struct Group {
    double lr_scale = 1.0;
    double weight_decay = 0.0;
    std::vector<size_t> members;  // indices into the vectors below
  };
  OptimizerSettings settings_;
  std::vector<Group> groups_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_, steps_;
};

}  // namespace loft
