// Post-accumulate-grad hooks through autograd's own slot (the one Python's register_post_accumulate_grad_hook uses).
#include "loft/grad_hooks.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace loft {

namespace {

struct Hook final : torch::autograd::PostAccumulateGradHook {
  explicit Hook(std::function<void(const at::Tensor&)> f) : fn(std::move(f)) {}
  void operator()(const torch::autograd::Variable& tensor) override { fn(tensor); }
  std::function<void(const at::Tensor&)> fn;
};

}  // namespace

void set_post_accumulate_grad_hook(const at::Tensor& leaf, std::function<void(const at::Tensor&)> fn) {
  TORCH_CHECK(leaf.defined() && leaf.requires_grad() && leaf.is_leaf(),
              "set_post_accumulate_grad_hook: the tensor must be a leaf that requires grad");
  torch::autograd::impl::set_post_acc_grad_hooks(leaf, std::make_unique<Hook>(std::move(fn)));
}

void remove_post_accumulate_grad_hook(const at::Tensor& leaf) {
  if (leaf.defined() && leaf.is_leaf()) torch::autograd::impl::set_post_acc_grad_hooks(leaf, nullptr);
}

}  // namespace loft
