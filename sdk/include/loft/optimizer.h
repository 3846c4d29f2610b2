// Optimizer plugins: how the trainable tensors are updated from their gradients, and the state that needs.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loft/param_group.h"
#include "loft/status.h"

namespace loft {

// Settings of the recipe's [train] section every optimizer receives (train.adam_beta1, adam_beta2, adam_eps).
// Adam-family optimizers use them; an optimizer without such constants ignores them.
struct OptimizerSettings {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One optimizer for the run, created by its factory and then given the parameter groups once (attach). The host
// calls, per optimizer step: zero_grad(), the backward passes of the step's micro-batches, gradients() (the host
// unscales and clips them in place), then step() unless the step is skipped (fp16 overflow).
// Not thread-safe: the host calls it from the training thread. CUDA work runs on the current stream
// (c10::cuda::getCurrentCUDAStream()), which the host sets, unless a method says otherwise.
class Optimizer {
 public:
  virtual ~Optimizer();

  // Takes the run's resolved groups (every weight_decay set) and the Adam settings, once, before the first backward.
  // The tensors stay owned by the model and outlive the optimizer; the optimizer keeps references and allocates its
  // state (may block: host allocations, pinning). Throws (std::exception, c10::Error) when it cannot serve a
  // tensor (wrong dtype, device), naming it; the host reports that as an error of the [optimizer] section.
  virtual void attach(const std::vector<ParamGroup>& groups, const OptimizerSettings& settings) = 0;

  // Starts a step: forgets the previous step's gradients. Called before the step's first backward. Does not throw.
  virtual void zero_grad() = 0;

  // The step's gradients, after its last backward: one entry per attached tensor, in attach order (groups in order,
  // tensors in order), undefined where the tensor got no gradient this step. Gradients reach the optimizer through
  // backward (the tensors' .grad, or hooks on them: an optimizer may take and release .grad as it is produced). They may live elsewhere than the
  // tensors (an optimizer that steps on the host returns host copies); the host scales them in place (loss
  // unscaling, clipping) before step(). May block until gradient copies finish; may throw c10::Error.
  virtual std::vector<at::Tensor> gradients() = 0;

  // Updates every tensor that got a gradient this step with the gradients() values; group g uses learning rate
  // lr x g.lr_scale and its weight decay. `lr` is the schedule's value for this step. May block (a host optimizer
  // waits for its copies and writes the tensors back); may throw c10::Error.
  virtual void step(double lr) = 0;

  // The state to checkpoint, by "<what>.<tensor name>" (adamw: exp_avg.<name>, exp_avg_sq.<name>, step.<name>), as
  // tensors the caller may move to the host. Every attached tensor has its entries, whether or not it has stepped.
  virtual NamedTensors state_dict() const = 0;
  // Loads a state_dict() of the same keys and shapes (the host checks both first and names what differs). The
  // error names the key. Does not keep references to `state`. The host loads the tensors' own values first: an
  // optimizer that keeps a copy of the tensors re-reads them here. May block.
  virtual Status load_state_dict(const std::map<std::string, at::Tensor>& state) = 0;

  // Capabilities added after this interface: a versioned id ("loft.optimizer.<feature>.v1") -> a pointer to that
  // feature's interface, owned by the optimizer and valid while it lives; nullptr when unsupported. Does not throw.
  virtual const void* extension(std::string_view id) const {
    (void)id;
    return nullptr;
  }
};

}  // namespace loft
