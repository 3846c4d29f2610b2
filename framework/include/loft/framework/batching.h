// Tokenized training examples and their batches (right padding; prompt tokens masked out of the labels).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loft {

// One example: token ids and, per token, the label it is trained to predict at that position's *input* (HF style:
// labels[i] = input_ids[i] for trained tokens, kIgnoreLabel for prompt and padding; the shift happens in the loss).
struct TokenizedExample {
  std::vector<int32_t> input_ids;
  std::vector<int64_t> labels;
};

// A right-padded batch on the CPU: input_ids [B, S] int64 (padded with pad_id), labels [B, S] int64 (padded with
// kIgnoreLabel), lengths [B] int64. S is the longest example. `label_tokens` counts trained (shifted) targets, the
// denominator of the loss across gradient-accumulation micro-batches.
struct Batch {
  at::Tensor input_ids;
  at::Tensor labels;
  at::Tensor lengths;
  int64_t label_tokens = 0;
};

Batch collate(const std::vector<const TokenizedExample*>& examples, int64_t pad_id);

}  // namespace loft
