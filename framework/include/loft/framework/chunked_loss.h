// Linear + cross-entropy over a large vocabulary without materialising the full fp32 logits.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace loft {

inline constexpr int64_t kIgnoreLabel = -100;

// Sum over tokens with label != kIgnoreLabel of -log softmax(hidden W^T)[label], in fp32.
// hidden [N, H] (compute dtype), weight [V, H], labels [N] int64. Rows are processed `chunk_rows` at a time (0 picks
// a chunk whose fp32 logits take at most 256 MiB). Gradients for hidden (and weight, when it requires grad) are
// computed during the forward pass chunk by chunk and scaled in backward, so backward needs no second pass.
// Differentiable w.r.t. hidden and weight.
at::Tensor chunked_linear_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                        int64_t chunk_rows = 0);

}  // namespace loft
