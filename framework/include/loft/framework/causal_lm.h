// What the trainer (and evaluation) need from a causal language model: hidden states, the output projection and the
// trainable tensors. Qwen2Model implements it; tests use small toy models.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loft {

// What the trainer needs from a causal language model. Not thread-safe; methods may throw c10::Error.
class CausalLM {
 public:
  virtual ~CausalLM();
  // Final hidden states [B, S, H] for right-padded input_ids [B, S] with lengths [B].
  virtual at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& lengths, bool training) = 0;
  // Final hidden states [B, S, H] for a packed batch (several examples per row; see Batch in batching.h): each
  // sequence attends only to itself, positions from position_ids. position_ids and cu_seqlens may be on the host
  // (the trainer passes them there; the model copies them to its device). The default refuses: not every model packs.
  virtual at::Tensor packed_hidden_states(const at::Tensor& input_ids, const at::Tensor& position_ids,
                                          const at::Tensor& cu_seqlens, int64_t max_seqlen, bool training);
  // The output projection [V, H] (may require grad).
  virtual at::Tensor lm_head_weight() = 0;
  // Every tensor the optimizer updates, by name; fp32 masters with requires_grad.
  virtual std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() = 0;
};

}  // namespace loft
