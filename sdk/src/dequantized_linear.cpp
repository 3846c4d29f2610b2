// dequantized_linear: a custom autograd function that keeps only a pointer to the quantized weight between forward
// and backward; the dense copy is a temporary from the caching allocator, reused layer after layer.
#include "loft/dequantized_linear.h"

#include <cstdint>

#include <torch/csrc/autograd/custom_function.h>

#include <ATen/ops/linear.h>
#include <ATen/ops/matmul.h>

namespace loft {
namespace {

class DequantizedLinearFunction : public torch::autograd::Function<DequantizedLinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const QuantizedLinear* weight) {
    ctx->saved_data["weight"] = static_cast<int64_t>(reinterpret_cast<std::intptr_t>(weight));
    return at::linear(x, weight->dequantize(x.scalar_type()));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto* weight =
        reinterpret_cast<const QuantizedLinear*>(static_cast<std::intptr_t>(ctx->saved_data["weight"].toInt()));
    const at::Tensor& dy = grad_outputs[0];
    return {at::matmul(dy, weight->dequantize(dy.scalar_type())), at::Tensor()};
  }
};

using ForwardFn = std::function<at::Tensor(const at::Tensor&)>;

// A forward of the caller's (through a pointer valid during apply only) and dequantized_linear's backward.
class CustomForwardLinearFunction : public torch::autograd::Function<CustomForwardLinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const QuantizedLinear* weight,
                            const ForwardFn* fn) {
    ctx->saved_data["weight"] = static_cast<int64_t>(reinterpret_cast<std::intptr_t>(weight));
    return (*fn)(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto* weight =
        reinterpret_cast<const QuantizedLinear*>(static_cast<std::intptr_t>(ctx->saved_data["weight"].toInt()));
    const at::Tensor& dy = grad_outputs[0];
    return {at::matmul(dy, weight->dequantize(dy.scalar_type())), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor dequantized_linear(const at::Tensor& x, const QuantizedLinear& weight) {
  TORCH_CHECK(x.size(-1) == weight.in_features(), "dequantized_linear: input has ", x.size(-1),
              " features, the weight expects ", weight.in_features());
  return DequantizedLinearFunction::apply(x, &weight);
}

at::Tensor dequantized_linear(const at::Tensor& x, const QuantizedLinear& weight, const ForwardFn& forward) {
  TORCH_CHECK(x.size(-1) == weight.in_features(), "dequantized_linear: input has ", x.size(-1),
              " features, the weight expects ", weight.in_features());
  return CustomForwardLinearFunction::apply(x, &weight, &forward);
}

}  // namespace loft
