// A toy causal LM and a learnable data set for trainer tests: small, deterministic from a seed, on the CPU.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "loft/framework/batching.h"
#include "loft/framework/causal_lm.h"
#include "loft/framework/chunked_loss.h"

namespace loft {

// Embedding -> dropout -> tanh(linear) -> lm_head, all trainable, deterministic from a seed.
class ToyLM : public CausalLM {
 public:
  explicit ToyLM(uint64_t seed, double dropout = 0.0) : dropout_(dropout) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    embed_ = torch::randn({kVocab, kHidden}, gen).mul_(0.5).requires_grad_();
    w_ = torch::randn({kHidden, kHidden}, gen).mul_(0.3).requires_grad_();
    head_ = torch::randn({kVocab, kHidden}, gen).mul_(0.3).requires_grad_();
  }
  at::Tensor hidden_states(const at::Tensor& ids, const at::Tensor&, bool training) override {
    auto h = torch::embedding(embed_, ids);
    h = torch::dropout(h, dropout_, training);
    h = torch::tanh(torch::matmul(h, w_));
    ++calls;
    return tamper ? tamper(h, calls) : h;
  }
  at::Tensor lm_head_weight() override { return head_; }
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override {
    return {{"embed", embed_}, {"w", w_}, {"head", head_}};
  }
  static constexpr int64_t kVocab = 17, kHidden = 12;

  // When set, applied to the hidden states of each forward (`call`: 1 for the first forward); fault tests make the
  // loss or the gradients non-finite with it.
  std::function<at::Tensor(const at::Tensor& hidden, int64_t call)> tamper;
  int64_t calls = 0;

 private:
  double dropout_;
  at::Tensor embed_, w_, head_;
};

// Sequences "a, a+1, a+2, ..." mod V: learnable; prompt = first two tokens (masked).
inline std::vector<TokenizedExample> counting_data(int n) {
  std::vector<TokenizedExample> data;
  for (int i = 0; i < n; ++i) {
    TokenizedExample e;
    const int len = 4 + i % 5;
    for (int j = 0; j < len; ++j) {
      e.input_ids.push_back((i + j) % ToyLM::kVocab);
      e.labels.push_back(j < 2 ? kIgnoreLabel : (i + j) % ToyLM::kVocab);
    }
    data.push_back(e);
  }
  return data;
}

}  // namespace loft
