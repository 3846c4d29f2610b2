// Text generation with a KV cache on a Qwen2Model: greedy or sampled (temperature, top-p), stop tokens, batched
// prompts of different lengths.
#pragma once

#include <cstdint>
#include <vector>

#include "loft/framework/qwen2.h"
#include "loft/status.h"

namespace loft {

struct GenerationConfig {
  int64_t max_new_tokens = 256;
  bool do_sample = false;      // false: greedy (argmax; ties go to the lowest id, like torch.argmax)
  double temperature = 1.0;    // sampling only; > 0
  double top_p = 1.0;          // sampling only; nucleus in (0, 1]
  uint64_t seed = 0;           // sampling only; a CPU generator, so results do not depend on the device
  std::vector<int64_t> stop_token_ids;  // a row ends after emitting one of these (it is kept in the output)
  int64_t pad_token_id = 0;    // fills the right padding of shorter prompts; never attended to
};

// Generates continuations of `prompts` (token ids, each non-empty) in one batch. Returns the new ids of each prompt,
// at most max_new_tokens, ending at the first stop token. Runs without autograd; adapters run in eval mode.
// Errors: an empty prompt, an id outside the vocabulary, bad sampling settings.
StatusOr<std::vector<std::vector<int64_t>>> generate(Qwen2Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                                     const GenerationConfig& config);

}  // namespace loft
