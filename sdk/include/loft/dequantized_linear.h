// The differentiable matmul most quantizers need: y = x · deq(W)ᵀ, with the dense weight rebuilt in forward and again
// in backward, so no layer's dense weight outlives its own use (what keeps an 8-bit or 4-bit base small in training).
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

#include "loft/quantizer.h"

namespace loft {

// y = x · Wᵀ where W = weight.dequantize(x.scalar_type()), without bias. Differentiable w.r.t. x only:
// dx = dy · W, with W dequantized again in backward. `weight` is borrowed and must outlive the autograd graph that
// uses it (the host's model owns every QuantizedLinear for the run). Works on any device the storage is on. No tensor
// of the storage is saved: backward reads it through `weight`, so an offload strategy may move or refill the storage
// between forward and backward as long as it is readable on dy's device when backward runs.
// Forward runs on the current stream of x's device, backward on the stream autograd runs it on; neither
// synchronises. Throws c10::Error when x's last dimension is not weight.in_features() (or what dequantize throws).
at::Tensor dequantized_linear(const at::Tensor& x, const QuantizedLinear& weight);

// The same backward with a forward of the quantizer's own: y = forward(x), run without autograd (an int8 matmul with
// outlier decomposition, a fused kernel), differentiable w.r.t. x as dx = dy · W, W = weight.dequantize(dy's dtype).
// `forward` is called once, inside this call; `weight` must outlive the graph, as above. So quantizer plugins need
// no autograd internals of their own.
at::Tensor dequantized_linear(const at::Tensor& x, const QuantizedLinear& weight,
                              const std::function<at::Tensor(const at::Tensor&)>& forward);

}  // namespace loft
