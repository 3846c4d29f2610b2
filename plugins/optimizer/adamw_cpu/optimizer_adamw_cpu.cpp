// optimizer/adamw_cpu: AdamW whose state and step live on the host in fp32, fed gradients as backward produces them.
//
// Per trainable tensor the host holds: the gradient accumulated over the step's micro-batches, AdamW's exp_avg,
// exp_avg_sq and step, and (when the tensor lives on a GPU) an fp32 copy of the tensor itself; GPU-side buffers are
// pinned so copies run asynchronously. A post-accumulate-grad hook copies each gradient to the host as soon as
// autograd has produced it (on a side stream, ordered after the stream that produced it) and releases the device
// gradient. A later micro-batch's gradient goes to a staging buffer and is added on the host, in the order autograd
// would have accumulated it, so the sums are the same. step() runs ATen's CPU fused AdamW per group and copies the
// updated tensors back on the current stream. On a CPU run the tensors are updated in place and no copy is made
// but the gradient's.
#include <mutex>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "loft/grad_hooks.h"
#include "loft/optimizer.h"
#include "loft/memory_cost.h"
#include "loft/plugin.h"

namespace {

class HostAdamW final : public loft::Optimizer, public loft::OptimizerMemoryCost {
 public:
  // loft plan: per element on the host, exp_avg + exp_avg_sq + the gradient (+ a staging buffer with accumulation)
  // + a pinned fp32 copy of a GPU tensor; nothing stays on the GPU (each gradient leaves as backward produces it).
  loft::OptimizerFootprint footprint(bool tensors_on_cuda, int64_t grad_accum) const override {
    loft::OptimizerFootprint f;
    f.state_host_bytes = 8 + (tensors_on_cuda ? 4 : 0);
    f.gradient_host_bytes = 4 + (grad_accum > 1 ? 4 : 0);
    return f;
  }
  const void* extension(std::string_view id) const override {
    return id == loft::kOptimizerMemoryCostId ? static_cast<const loft::OptimizerMemoryCost*>(this) : nullptr;
  }

  ~HostAdamW() override {
    for (auto& s : slots_) loft::remove_post_accumulate_grad_hook(s.param);
  }

  void attach(const std::vector<loft::ParamGroup>& groups, const loft::OptimizerSettings& settings) override {
    TORCH_CHECK(slots_.empty(), "optimizer/adamw_cpu: attach() called twice");
    settings_ = settings;
    for (const auto& g : groups) {
      Group group{g.lr_scale, g.weight_decay, {}};
      for (const auto& [name, t] : g.tensors) {
        TORCH_CHECK(t.scalar_type() == at::kFloat, "optimizer/adamw_cpu: trainable tensor ", name,
                    " must be an fp32 master, got ", t.scalar_type());
        TORCH_CHECK(t.is_leaf() && t.requires_grad(), "optimizer/adamw_cpu: trainable tensor ", name,
                    " must be a leaf that requires grad");
        TORCH_CHECK(t.device().is_cpu() || t.device().is_cuda(), "optimizer/adamw_cpu: trainable tensor ", name,
                    " is on ", t.device(), "; only CPU and CUDA tensors are supported");
        Slot s;
        s.name = name;
        s.param = t;
        const bool on_host = t.device().is_cpu();
        s.host_options = at::TensorOptions().dtype(at::kFloat).device(at::kCPU).pinned_memory(!on_host);
        at::NoGradGuard no_grad;
        if (on_host) {
          s.host_param = t;
        } else {
          s.host_param = at::empty(t.sizes(), s.host_options);
          s.host_param.copy_(t.detach());
        }
        s.grad = at::empty(t.sizes(), s.host_options);
        const auto f32 = at::TensorOptions().dtype(at::kFloat);
        s.exp_avg = at::zeros(t.sizes(), f32);
        s.exp_avg_sq = at::zeros(t.sizes(), f32);
        s.step = at::zeros({}, f32);
        group.members.push_back(slots_.size());
        slots_.push_back(std::move(s));
      }
      groups_.push_back(std::move(group));
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      loft::set_post_accumulate_grad_hook(slots_[i].param, [this, i](const at::Tensor& param) { on_gradient(i, param); });
    }
  }

  void zero_grad() override {
    std::lock_guard<std::mutex> lock(mutex_);
    wait_copies();
    for (auto& s : slots_) {
      s.has_grad = false;
      s.pending = false;
      s.param.mutable_grad() = at::Tensor();
    }
  }

  std::vector<at::Tensor> gradients() override {
    std::lock_guard<std::mutex> lock(mutex_);
    wait_copies();
    std::vector<at::Tensor> out;
    out.reserve(slots_.size());
    for (auto& s : slots_) {
      settle(s);
      out.push_back(s.has_grad ? s.grad : at::Tensor());
    }
    return out;
  }

  void step(double lr) override {
    std::lock_guard<std::mutex> lock(mutex_);
    wait_write_back();
    at::NoGradGuard no_grad;
    std::vector<Slot*> stepped;
    for (const Group& g : groups_) {
      std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
      for (size_t i : g.members) {
        Slot& s = slots_[i];
        if (!s.has_grad) continue;  // not reached by this step's graph: left alone, like PyTorch
        settle(s);
        params.push_back(s.host_param);
        grads.push_back(s.grad);
        exp_avg.push_back(s.exp_avg);
        exp_avg_sq.push_back(s.exp_avg_sq);
        steps.push_back(s.step);
        stepped.push_back(&s);
      }
      if (params.empty()) continue;
      at::_foreach_add_(steps, 1.0);
      at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, {}, steps, lr * g.lr_scale, settings_.beta1,
                        settings_.beta2, g.weight_decay, settings_.eps, /*amsgrad=*/false, /*maximize=*/false);
    }
    // Back to the device on the current stream, where the next forward reads them; the host copy must not change
    // until these copies are done (wait_write_back).
    std::optional<c10::DeviceIndex> device;
    for (Slot* s : stepped) {
      if (s->param.device().is_cpu()) continue;
      s->param.detach().copy_(s->host_param, /*non_blocking=*/true);
      device = s->param.device().index();
    }
    if (device) {
      write_back_.emplace();
      write_back_->record(c10::cuda::getCurrentCUDAStream(*device));
    }
  }

  loft::NamedTensors state_dict() const override {
    loft::NamedTensors out;
    for (const auto& s : slots_) {
      out.emplace_back("exp_avg." + s.name, s.exp_avg);
      out.emplace_back("exp_avg_sq." + s.name, s.exp_avg_sq);
      out.emplace_back("step." + s.name, s.step);
    }
    return out;
  }

  loft::Status load_state_dict(const std::map<std::string, at::Tensor>& state) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [key, target] : state_dict()) {
      auto it = state.find(key);
      if (it == state.end()) return loft::Status::InvalidArgument(fmt::format("optimizer state has no '{}'", key));
      if (it->second.sizes() != target.sizes()) {
        return loft::Status::InvalidArgument(fmt::format("optimizer state '{}' has shape [{}], expected [{}]", key,
                                                         fmt::join(it->second.sizes(), ", "),
                                                         fmt::join(target.sizes(), ", ")));
      }
    }
    wait_write_back();
    at::NoGradGuard no_grad;
    for (auto& [key, target] : state_dict()) target.copy_(state.at(key));
    // The tensors were loaded too (the host loads them first): refresh the host copies.
    for (auto& s : slots_) {
      if (!s.param.device().is_cpu()) s.host_param.copy_(s.param.detach());
    }
    return loft::Status::Ok();
  }

 private:
  struct Slot {
    std::string name;
    at::Tensor param;       // the model's tensor
    at::Tensor host_param;  // fp32 on the host: `param` itself on a CPU run, else a pinned copy
    at::TensorOptions host_options;
    at::Tensor grad;        // this step's gradient on the host (pinned for a GPU tensor)
    at::Tensor staging;     // a later micro-batch's gradient on its way to the host, then added to `grad`
    at::Tensor exp_avg, exp_avg_sq, step;
    bool has_grad = false;  // `grad` holds this step's gradient (or its first part)
    bool pending = false;   // `staging` holds a part not yet added to `grad`
  };
  struct Group {
    double lr_scale = 1.0;
    double weight_decay = 0.0;
    std::vector<size_t> members;
  };

  // Runs in backward, right after autograd accumulated a gradient into param.grad(), on the engine's thread for the
  // param's device with the producing stream current.
  void on_gradient(size_t index, const at::Tensor& param) {
    std::lock_guard<std::mutex> lock(mutex_);
    Slot& s = slots_[index];
    at::Tensor g = param.grad();
    if (!g.defined()) return;
    at::NoGradGuard no_grad;
    if (!s.has_grad) {
      copy_to_host(s.grad, g);
      s.has_grad = true;
    } else {
      settle(s);  // an earlier part still in staging: add it first, keeping autograd's order of accumulation
      if (!s.staging.defined()) s.staging = at::empty(s.grad.sizes(), s.host_options);
      copy_to_host(s.staging, g);
      s.pending = true;
    }
    // The host has it (or will, on the side stream): release the device gradient.
    param.mutable_grad() = at::Tensor();
  }

  void copy_to_host(at::Tensor& dst, const at::Tensor& src) {
    if (!src.is_cuda()) {
      dst.copy_(src);
      return;
    }
    const auto device = src.device().index();
    if (!side_) side_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device);
    at::cuda::CUDAEvent produced;
    produced.record(c10::cuda::getCurrentCUDAStream(device));
    produced.block(*side_);
    {
      c10::cuda::CUDAStreamGuard guard(*side_);
      dst.copy_(src, /*non_blocking=*/true);
    }
    // The gradient's memory is released right after this hook: the allocator must not reuse it before the copy.
    c10::cuda::CUDACachingAllocator::recordStream(src.storage().data_ptr(), *side_);
    copies_in_flight_ = true;
  }

  // Adds a staged part to the slot's gradient (waits for the copies first).
  void settle(Slot& s) {
    if (!s.pending) return;
    wait_copies();
    s.grad.add_(s.staging);
    s.pending = false;
  }

  void wait_copies() {
    if (copies_in_flight_) {
      side_->synchronize();
      copies_in_flight_ = false;
    }
  }

  void wait_write_back() {
    if (write_back_) {
      write_back_->synchronize();
      write_back_.reset();
    }
  }

  loft::OptimizerSettings settings_;
  std::vector<Slot> slots_;
  std::vector<Group> groups_;
  std::optional<c10::cuda::CUDAStream> side_;
  std::optional<at::cuda::CUDAEvent> write_back_;
  bool copies_in_flight_ = false;
  std::mutex mutex_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_optimizer("adamw_cpu", [](const loft::HostContext&, const loft::Options&) {
    return std::make_unique<HostAdamW>();
  });
}

}  // namespace

LOFT_PLUGIN("optimizer/adamw_cpu", register_plugin)
