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
// kIgnoreLabel), lengths [B] int64 (tokens in the row before its padding). `label_tokens` counts trained (shifted)
// targets, the denominator of the loss across gradient-accumulation micro-batches.
//
// Unpacked, each row holds one example and S is the longest. Packed, a row holds several examples back to back and
// the packed layout is defined: position_ids [B, S] int64 restart at 0 for each example, and the flattened B*S tokens
// split into sequences at cu_seqlens [N+1] int32 (each example one sequence, each row's padding one more), so
// attention never crosses from one example into another. The first label of every example is kIgnoreLabel: it would
// be the target of the previous example's last token.
struct Batch {
  at::Tensor input_ids;
  at::Tensor labels;
  at::Tensor lengths;
  int64_t label_tokens = 0;
  at::Tensor position_ids;  // packed only
  at::Tensor cu_seqlens;    // packed only
  int64_t max_seqlen = 0;   // packed only: the longest sequence
  bool packed() const { return cu_seqlens.defined(); }
};

// One example per row.
Batch collate(const std::vector<const TokenizedExample*>& examples, int64_t pad_id);

// The same examples packed into rows of at most `row_length` tokens, first fit in the given order (an example
// longer than row_length is an error: examples are truncated to dataset.max_length before batching). Same
// label_tokens, and the same loss and gradients as collate() up to float rounding.
Batch collate_packed(const std::vector<const TokenizedExample*>& examples, int64_t pad_id, int64_t row_length);

}  // namespace loft
