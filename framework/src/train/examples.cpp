// Samples -> tokenized examples with masked prompts.
#include "loft/framework/examples.h"

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
  TokenizeStats s;
  std::vector<TokenizedExample> out;
  for (int64_t i = 0; i < dataset.size(); ++i) {
    Sample sample = dataset.get(i);
    if (sample.messages.empty() || sample.messages.back().role != "assistant") {
      return Status::InvalidArgument(fmt::format("dataset sample {} does not end with an assistant message", i));
    }
    std::vector<ChatMessage> prompt_messages(sample.messages.begin(), sample.messages.end() - 1);
    auto prompt = tokenizer.encode(tokenizer.apply_chat_template(prompt_messages, /*add_generation_prompt=*/true));
    auto response = tokenizer.encode(sample.messages.back().content);
    response.push_back(*eos);
    if (static_cast<int64_t>(prompt.size()) + 1 >= max_length) {
      ++s.dropped;
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
  s.examples = static_cast<int64_t>(out.size());
  if (stats) *stats = s;
  return out;
}

}  // namespace loft
