// Chunked linear + cross-entropy as a custom autograd function: per chunk, logits in fp32, loss, and the gradient
// (softmax - onehot), which is folded into grad_hidden and grad_weight right away; the chunk's logits are then freed.
#include "loft/framework/chunked_loss.h"

#include <algorithm>

#include <ATen/TensorOperators.h>
#include <ATen/ops/logsumexp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>

namespace loft {

namespace {

class ChunkedLinearCrossEntropy : public torch::autograd::Function<ChunkedLinearCrossEntropy> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, int64_t chunk_rows) {
    TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
                "chunked_linear_cross_entropy: hidden [N, H] and weight [V, H] expected, got ", hidden.sizes(), " and ",
                weight.sizes());
    TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0) && labels.scalar_type() == at::kLong,
                "chunked_linear_cross_entropy: labels must be int64 [N]");
    const int64_t n = hidden.size(0), vocab = weight.size(0);
    if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, (int64_t{256} << 20) / (vocab * 4));
    // fp32 accumulation for bf16/fp16/fp32 inputs; float64 inputs stay float64 (used to check exactness).
    const auto acc = at::promote_types(hidden.scalar_type(), at::kFloat);
    const bool need_hidden_grad = hidden.requires_grad(), need_weight_grad = weight.requires_grad();
    at::Tensor grad_hidden = need_hidden_grad ? at::zeros_like(hidden, acc) : at::Tensor();
    at::Tensor grad_weight = need_weight_grad ? at::zeros_like(weight, acc) : at::Tensor();
    at::Tensor loss = at::zeros({}, hidden.options().dtype(acc));
    const auto valid_all = labels.ne(kIgnoreLabel);
    for (int64_t start = 0; start < n; start += chunk_rows) {
      const int64_t len = std::min(chunk_rows, n - start);
      auto h = hidden.narrow(0, start, len);
      auto y = labels.narrow(0, start, len);
      auto valid = valid_all.narrow(0, start, len);
      auto logits = at::matmul(h, weight.t()).to(acc);  // [len, V]
      auto lse = at::logsumexp(logits, 1);                          // [len]
      auto safe_y = at::where(valid, y, at::zeros_like(y));
      auto target = logits.gather(1, safe_y.unsqueeze(1)).squeeze(1);
      loss += ((lse - target) * valid.to(acc)).sum();
      if (need_hidden_grad || need_weight_grad) {
        // d loss / d logits = softmax - onehot(label), zero on ignored rows. Reuse the logits buffer.
        auto g = logits.sub_(lse.unsqueeze(1)).exp_();
        g.scatter_add_(1, safe_y.unsqueeze(1), -at::ones({len, 1}, g.options()));
        g.mul_(valid.to(acc).unsqueeze(1));
        auto g_c = g.to(hidden.scalar_type());
        if (need_hidden_grad) grad_hidden.narrow(0, start, len).copy_(at::matmul(g_c, weight).to(acc));
        if (need_weight_grad) grad_weight.add_(at::matmul(g_c.t(), h).to(acc));
      }
    }
    ctx->saved_data["grad_hidden"] = grad_hidden;
    ctx->saved_data["grad_weight"] = grad_weight;
    ctx->saved_data["hidden_dtype"] = static_cast<int64_t>(hidden.scalar_type());
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto& go = grad_outputs[0];
    auto grad_hidden = ctx->saved_data["grad_hidden"].toTensor();
    auto grad_weight = ctx->saved_data["grad_weight"].toTensor();
    auto hidden_dtype = static_cast<c10::ScalarType>(ctx->saved_data["hidden_dtype"].toInt());
    auto weight_dtype = static_cast<c10::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    return {grad_hidden.defined() ? (grad_hidden * go).to(hidden_dtype) : at::Tensor(),
            grad_weight.defined() ? (grad_weight * go).to(weight_dtype) : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor chunked_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                        int64_t chunk_rows) {
  return ChunkedLinearCrossEntropy::apply(hidden, weight, labels, chunk_rows);
}

}  // namespace loft
