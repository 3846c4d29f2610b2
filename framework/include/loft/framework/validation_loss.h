// The held-out loss of [eval]: the training loss over a fixed set of examples, measured without training.
#pragma once

#include <cstdint>
#include <vector>

#include <c10/core/Device.h>

#include "loft/framework/batching.h"
#include "loft/framework/causal_lm.h"

namespace loft {

struct ValidationLoss {
  double loss = 0;           // mean over the label tokens: the sum of chunked_linear_cross_entropy / label_tokens
  int64_t label_tokens = 0;  // trained (shifted) targets of all the examples
};

// The loss the trainer would report for `examples` as one step, batch_size examples at a time in the given order
// (packed into rows of pack_length tokens when pack_length > 0, as the trainer packs), with the model in eval mode
// (hidden_states(..., training = false): no dropout) and no gradients. The default CPU generator (and `device`'s,
// on CUDA) is restored afterwards, so measuring changes nothing a later training step draws. One host
// synchronisation. Throws c10::Error when the examples hold no label token or the model throws.
ValidationLoss validation_loss(CausalLM& model, const std::vector<TokenizedExample>& examples, int64_t batch_size,
                               int64_t pad_id, int64_t pack_length, c10::Device device);

}  // namespace loft
