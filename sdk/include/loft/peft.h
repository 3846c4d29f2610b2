// PEFT plugins: which parameters train, and the adapters that wrap frozen linear layers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loft/param_group.h"
#include "loft/quantizer.h"
#include "loft/status.h"

namespace loft {

// A linear layer of the model that a PEFT method may adapt. The host owns everything it points to.
struct LinearSite {
  std::string name;            // module name as in Hugging Face checkpoints: "model.layers.3.self_attn.q_proj"
  std::string short_name;      // last component: "q_proj"
  int64_t layer_index = -1;    // decoder layer, -1 outside the stack (lm_head)
  int64_t in_features = 0;
  int64_t out_features = 0;
  const QuantizedLinear* base = nullptr;  // the frozen weight
  at::Tensor bias;                        // frozen bias, undefined when the layer has none
};

// The adapter on one site. Owned by the host's model for the run; not thread-safe.
class Adapter {
 public:
  virtual ~Adapter();
  // The site's output. `base_out` = base(x) + bias when uses_base_output(), else undefined.
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out, bool training) = 0;
  // False when the adapter computes the whole output itself (full fine-tuning): the host then skips base(x).
  virtual bool uses_base_output() const { return true; }
  // Trainable tensors, named relative to the site ("lora_A.weight"); requires_grad is set.
  virtual NamedTensors trainable() const = 0;
  // The adapter's saved form with Hugging Face / PEFT key names relative to the site.
  virtual NamedTensors state_dict() const = 0;
  // Loads a state_dict() of the same shapes; the error names the key and both shapes.
  virtual Status load_state_dict(const std::map<std::string, at::Tensor>& state) = 0;
  // The dense weight with the adaptation folded in, in `dtype`: what `loft merge` writes.
  virtual at::Tensor merged_weight(c10::ScalarType dtype) const = 0;
  // Capabilities added after this interface: a versioned id ("loft.adapter.<feature>.v1") -> that feature's
  // interface, owned by the adapter; nullptr when unsupported. Does not throw.
  virtual const void* extension(std::string_view id) const {
    (void)id;
    return nullptr;
  }
};

// A PEFT method: picks sites and attaches adapters. Created once per run; const methods are thread-safe.
class PeftMethod {
 public:
  virtual ~PeftMethod();
  virtual bool targets(const LinearSite& site) const = 0;
  virtual std::unique_ptr<Adapter> attach(const LinearSite& site) const = 0;
  // Of the model's parameters outside linear sites (embeddings, norms), those that train too.
  virtual std::vector<std::string> trainable_parameters(const std::vector<std::string>& names) const = 0;
  // PEFT's adapter_config.json for this method, or an empty string when the method saves whole weights.
  virtual std::string adapter_config_json(const std::string& base_model_name_or_path) const = 0;
  // Splits the model's trainable tensors (full names, in model order) into parameter groups (param_group.h): a
  // partition of `trainable` (each tensor in exactly one group, group names unique; the host refuses anything else,
  // naming the tensor), each group keeping model order. The default: one group "default", lr_scale 1, the host's
  // weight-decay rule. Called once per run on the host thread; may throw std::exception naming the problem.
  virtual std::vector<ParamGroup> param_groups(const NamedTensors& trainable) const {
    ParamGroup all;
    all.name = "default";
    all.tensors = trainable;
    return {all};
  }
  // Capabilities added after this interface: a versioned id ("loft.peft.<feature>.v1") -> that feature's interface,
  // owned by the method; nullptr when unsupported. Does not throw.
  virtual const void* extension(std::string_view id) const {
    (void)id;
    return nullptr;
  }
};

}  // namespace loft
