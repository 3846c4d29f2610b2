// The host's side of parameter groups: the default weight-decay rule and the resolution of a PEFT method's groups
// into what the optimizer receives.
#pragma once

#include <string>
#include <vector>

#include "loft/param_group.h"
#include "loft/status.h"

namespace loft {

// transformers' Trainer rule (get_decay_parameter_names): no weight decay for a parameter whose lower-cased name
// contains "bias", "layernorm" or "rmsnorm", or has a "norm" component or one ending in "_norm".
bool default_weight_decay_applies(const std::string& name);

// Checks that `proposed` is a partition of `trainable` (every tensor in exactly one group, by name, and the same
// tensor; unique group names; lr_scale and weight_decay_scale finite and >= 0) and resolves each group's weight decay
// from `weight_decay` (param_group.h). Empty groups are dropped. The error names the tensor or group and `who`
// (the plugin that proposed the groups).
StatusOr<std::vector<ParamGroup>> resolve_param_groups(const NamedTensors& trainable, std::vector<ParamGroup> proposed,
                                                       double weight_decay, const std::string& who);

}  // namespace loft
