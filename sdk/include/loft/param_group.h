// Parameter groups: the trainable tensors, split by how the optimizer treats them (learning-rate scale, weight decay).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loft {

// Tensors by name ("model.layers.0.self_attn.q_proj.lora_A.weight"), in a stable order.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// One group of trainable tensors. A PEFT method proposes groups (PeftMethod::param_groups); the host resolves them
// and hands the optimizer groups with weight_decay set:
// - weight_decay_scale unset: the host's default per tensor, as transformers' Trainer: train.weight_decay, except
//   biases and norm weights (names containing "bias", "layernorm", "rmsnorm", a ".norm." or "_norm" component),
//   which get none; such a group is split into `name` and `name.no_decay`.
// - weight_decay_scale set: train.weight_decay x weight_decay_scale for every tensor of the group (0: none).
// The tensors are the model's fp32 masters (requires_grad), owned by the model.
struct ParamGroup {
  std::string name;
  double lr_scale = 1.0;  // this group's learning rate = the scheduled learning rate x lr_scale
  std::optional<double> weight_decay_scale;  // see above; what a PEFT method sets
  double weight_decay = 0.0;  // decoupled (AdamW) weight decay, resolved by the host; what an optimizer reads
  NamedTensors tensors;
};

}  // namespace loft
