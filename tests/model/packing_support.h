// Shared by the CPU and GPU packing tests: the same examples run one per row and packed several per row must give
// every token the same final hidden state, and the step the same loss.
#pragma once

#include <vector>

#include <gtest/gtest.h>

#include "loft/framework/batching.h"
#include "loft/framework/chunked_loss.h"
#include "loft/framework/qwen2.h"

namespace loft::testing {

inline std::vector<TokenizedExample> packing_examples(int64_t vocab) {
  std::vector<TokenizedExample> out;
  const std::vector<int64_t> lengths{7, 3, 12, 5, 1, 9, 4};
  for (size_t i = 0; i < lengths.size(); ++i) {
    TokenizedExample e;
    for (int64_t j = 0; j < lengths[i]; ++j) {
      e.input_ids.push_back(static_cast<int32_t>((i * 31 + j * 7 + 3) % vocab));
      e.labels.push_back(j < 2 ? kIgnoreLabel : e.input_ids.back());  // a two-token "prompt"
    }
    out.push_back(e);
  }
  return out;
}

inline double step_loss(CausalLM& m, const Batch& b, c10::Device device) {
  const at::Tensor ids = b.input_ids.to(device);
  const at::Tensor hidden =
      b.packed() ? m.packed_hidden_states(ids, b.position_ids.to(device), b.cu_seqlens.to(device), b.max_seqlen, false)
                 : m.hidden_states(ids, b.lengths.to(device), false);
  const int64_t h = hidden.size(-1);
  const at::Tensor flat_hidden = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, h});
  const at::Tensor flat_labels = b.labels.to(device).narrow(1, 1, b.labels.size(1) - 1).reshape({-1});
  return chunked_linear_cross_entropy(flat_hidden, m.lm_head_weight(), flat_labels).item<double>() /
         static_cast<double>(b.label_tokens);
}

// Returns the largest |difference| of hidden states between the two layouts, relative to their scale.
inline double packed_vs_unpacked(Qwen2Model& m, int64_t row_length, double* loss_diff) {
  const auto examples = packing_examples(m.config().vocab_size);
  std::vector<const TokenizedExample*> ptrs;
  for (const auto& e : examples) ptrs.push_back(&e);
  const Batch plain = collate(ptrs, 0);
  const Batch packed = collate_packed(ptrs, 0, row_length);
  EXPECT_LT(packed.input_ids.size(0), plain.input_ids.size(0)) << "the examples should share rows";
  EXPECT_EQ(packed.label_tokens, plain.label_tokens);

  const c10::Device device = m.device();
  const at::Tensor a = m.hidden_states(plain.input_ids.to(device), plain.lengths.to(device), false).cpu().to(at::kDouble);
  const at::Tensor b = m.packed_hidden_states(packed.input_ids.to(device), packed.position_ids.to(device),
                                              packed.cu_seqlens.to(device), packed.max_seqlen, false)
                           .cpu()
                           .to(at::kDouble);
  // Walk the packed rows in cu_seqlens order: the examples appear first-fit, so find each by its ids.
  double worst = 0, scale = a.abs().max().item<double>();
  std::vector<bool> seen(examples.size(), false);
  const at::Tensor cu = packed.cu_seqlens;
  const int64_t S = packed.input_ids.size(1);
  for (int64_t k = 0; k + 1 < cu.size(0); ++k) {
    const int64_t start = cu[k].item<int64_t>(), end = cu[k + 1].item<int64_t>();
    const int64_t row = start / S, col = start % S, n = end - start;
    for (size_t i = 0; i < examples.size(); ++i) {
      if (seen[i] || static_cast<int64_t>(examples[i].input_ids.size()) != n) continue;
      const at::Tensor ids = packed.input_ids[row].slice(0, col, col + n);
      if (!ids.equal(plain.input_ids[static_cast<int64_t>(i)].slice(0, 0, n))) continue;
      seen[i] = true;
      const at::Tensor diff = b[row].slice(0, col, col + n) - a[static_cast<int64_t>(i)].slice(0, 0, n);
      worst = std::max(worst, diff.abs().max().item<double>());
      break;
    }
  }
  for (size_t i = 0; i < examples.size(); ++i) EXPECT_TRUE(seen[i]) << "example " << i << " not found in the packed rows";
  *loss_diff = std::abs(step_loss(m, packed, device) - step_loss(m, plain, device));
  return worst / scale;
}

}  // namespace loft::testing
