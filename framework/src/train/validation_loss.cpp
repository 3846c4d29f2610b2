// validation_loss: forward passes in eval mode over held-out examples, summed with the training loss.
#include "loft/framework/validation_loss.h"

#include <optional>

#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/zeros.h>

#include "loft/framework/trainer.h"

namespace loft {

namespace {

// Puts the default generators back as they were: a model whose eval mode still drew random numbers would otherwise
// shift every later dropout mask, and training with [eval] would differ from training without it.
class GeneratorStateGuard {
 public:
  explicit GeneratorStateGuard(c10::Device device) {
    cpu_state_ = at::globalContext().defaultGenerator(c10::kCPU).get_state();
    if (device.is_cuda()) {
      device_ = device;
      device_state_ = at::globalContext().defaultGenerator(device).get_state();
    }
  }
  ~GeneratorStateGuard() {
    at::Generator cpu = at::globalContext().defaultGenerator(c10::kCPU);  // a handle on the shared generator
    cpu.set_state(cpu_state_);
    if (device_) {
      at::Generator gpu = at::globalContext().defaultGenerator(*device_);
      gpu.set_state(device_state_);
    }
  }
  GeneratorStateGuard(const GeneratorStateGuard&) = delete;
  GeneratorStateGuard& operator=(const GeneratorStateGuard&) = delete;

 private:
  at::Tensor cpu_state_, device_state_;
  std::optional<c10::Device> device_;
};

}  // namespace

ValidationLoss validation_loss(CausalLM& model, const std::vector<TokenizedExample>& examples, int64_t batch_size,
                               int64_t pad_id, int64_t pack_length, c10::Device device) {
  TORCH_CHECK(batch_size >= 1, "validation_loss: batch_size must be >= 1, got ", batch_size);
  GeneratorStateGuard generators(device);
  at::NoGradGuard no_grad;
  // The head without its requires_grad: the chunked loss then computes no gradient alongside the loss.
  const at::Tensor head = model.lm_head_weight().detach();
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  ValidationLoss out;
  const int64_t n = static_cast<int64_t>(examples.size());
  for (int64_t start = 0; start < n; start += batch_size) {
    std::vector<const TokenizedExample*> part;
    for (int64_t i = start; i < std::min(n, start + batch_size); ++i) part.push_back(&examples[static_cast<size_t>(i)]);
    Batch batch = pack_length > 0 ? collate_packed(part, pad_id, pack_length) : collate(part, pad_id);
    if (batch.label_tokens == 0) continue;
    out.label_tokens += batch.label_tokens;
    loss_sum += batch_loss_sum(model, batch, device, head, /*training=*/false).to(at::kDouble);
  }
  TORCH_CHECK(out.label_tokens > 0, "the held-out examples have no label tokens: every response was truncated away");
  out.loss = loss_sum.item<double>() / static_cast<double>(out.label_tokens);
  return out;
}

}  // namespace loft
