// Running code as soon as backward has produced a tensor's gradient (PyTorch's register_post_accumulate_grad_hook),
// without plugins including torch/csrc/autograd internals.
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

namespace loft {

// Calls fn(leaf) each time backward has accumulated a gradient into leaf.grad(), once per backward call. `leaf` must
// be a leaf tensor that requires grad; it holds at most one such hook (a second call replaces the first).
// fn runs on the autograd engine's thread for the leaf's device, with that device's current stream set to the
// stream the gradient was produced on; it may set leaf.mutable_grad() (to release the gradient); an exception it
// throws fails the backward() call. fn must stay callable while the leaf may receive gradients: remove the hook
// before destroying what it refers to. Throws c10::Error when `leaf` is not a leaf that requires grad.
void set_post_accumulate_grad_hook(const at::Tensor& leaf, std::function<void(const at::Tensor&)> fn);

// Removes the hook set above, if any. Does not throw.
void remove_post_accumulate_grad_hook(const at::Tensor& leaf);

}  // namespace loft
