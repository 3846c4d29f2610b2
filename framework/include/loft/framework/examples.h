// From dataset samples to training examples: chat template, tokenization, prompt masking, truncation.
#pragma once

#include <cstdint>
#include <vector>

#include "loft/dataset.h"
#include "loft/framework/batching.h"
#include "loft/framework/tokenizer.h"

namespace loft {

struct TokenizeStats {
  int64_t examples = 0;
  int64_t truncated = 0;        // response cut to fit max_length
  int64_t dropped = 0;          // prompt alone filled max_length: nothing left to learn
  int64_t label_tokens = 0;
};

// The prompt is the chat template of every message but the last, with the generation prompt (so training sees the
// exact text that generation at evaluation starts from); the response is the last message's content followed by
// the end-of-sequence token. Prompt and response are tokenized separately (no BPE merge across the boundary), the
// prompt's labels are masked. Examples longer than max_length keep the prompt and cut the response.
// Fails (kInvalidArgument: the user's input) when the tokenizer has no eos token, a sample does not end with an
// assistant message, the dataset is empty, or every sample is dropped (its prompt alone fills max_length).
StatusOr<std::vector<TokenizedExample>> tokenize_dataset(const Tokenizer& tokenizer, const Dataset& dataset,
                                                         int64_t max_length, TokenizeStats* stats);

}  // namespace loft
