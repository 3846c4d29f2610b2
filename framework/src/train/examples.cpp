// Samples -> tokenized examples with masked prompts.
#include "loft/framework/examples.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

#include "loft/framework/chunked_loss.h"

namespace loft {

StatusOr<std::vector<TokenizedExample>> tokenize_dataset(const Tokenizer& tokenizer, const Dataset& dataset,
                                                         int64_t max_length, TokenizeStats* stats) {
  auto eos = tokenizer.eos_id();
  if (!eos) {
    return Status::InvalidArgument(
        "the tokenizer has no eos token: add \"eos_token\" to tokenizer_config.json beside tokenizer.json");
  }
  if (dataset.size() == 0) {
    return Status::InvalidArgument("the dataset has no samples: check the [dataset] section (its file, filters and "
                                   "limit)");
  }
  TokenizeStats s;
  std::vector<TokenizedExample> out;
  size_t shortest_dropped_prompt = SIZE_MAX;  // tokens, to say how long max_length must be
  for (int64_t i = 0; i < dataset.size(); ++i) {
    Sample sample;
    try {
      sample = dataset.get(i);
    } catch (const std::invalid_argument& e) {  // a dataset plugin reading its file lazily: the user's input
      return Status::InvalidArgument(fmt::format("dataset sample {}: {}", i, e.what()));
    } catch (const std::exception& e) {
      return Status::Internal(fmt::format("dataset sample {}: {}", i, e.what()));
    }
    if (sample.messages.empty() || sample.messages.back().role != "assistant") {
      return Status::InvalidArgument(fmt::format("dataset sample {} does not end with an assistant message", i));
    }
    std::vector<ChatMessage> prompt_messages(sample.messages.begin(), sample.messages.end() - 1);
    auto prompt = tokenizer.encode(tokenizer.apply_chat_template(prompt_messages, /*add_generation_prompt=*/true));
    auto response = tokenizer.encode(sample.messages.back().content);
    response.push_back(*eos);
    if (static_cast<int64_t>(prompt.size()) + 1 >= max_length) {
      ++s.dropped;
      shortest_dropped_prompt = std::min(shortest_dropped_prompt, prompt.size());
      continue;
    }
    const size_t room = static_cast<size_t>(max_length) - prompt.size();
    if (response.size() > room) {
      response.resize(room);
      ++s.truncated;
    }
    TokenizedExample e;
    e.input_ids = prompt;
    e.input_ids.insert(e.input_ids.end(), response.begin(), response.end());
    e.labels.assign(prompt.size(), kIgnoreLabel);
    for (int32_t id : response) e.labels.push_back(id);
    s.label_tokens += static_cast<int64_t>(response.size());
    out.push_back(std::move(e));
  }
  if (out.empty()) {
    // One line with the counts, the reason and the fix: nothing would be left to train on.
    return Status::InvalidArgument(fmt::format(
        "dataset: {} samples read, all {} dropped: each prompt (chat template included) fills dataset.max_length = {} "
        "tokens, leaving no room for the response; raise dataset.max_length to at least {} (the shortest prompt has "
        "{} tokens) or shorten the prompts",
        dataset.size(), s.dropped, max_length, shortest_dropped_prompt + 2, shortest_dropped_prompt));
  }
  s.examples = static_cast<int64_t>(out.size());
  if (stats) *stats = s;
  return out;
}

}  // namespace loft
