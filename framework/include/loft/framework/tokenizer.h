// Hugging Face `tokenizer.json` byte-level BPE (Qwen2, DeepSeek-R1-Distill-Qwen) and the DeepSeek-R1-Distill chat
// template, without Python or Rust: ids are identical to HF tokenizers (tests/tokenizer proves it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loft/dataset.h"
#include "loft/status.h"

namespace loft {

namespace tokenizer_detail {
struct TokenizerImpl;
}

// A loaded tokenizer. Immutable after from_file(); every method is const and thread-safe (the word cache is locked
// internally). Copies are cheap and share the loaded tables.
//
// Pipeline, read from tokenizer.json: added tokens split out (non-normalized ones on the raw text, normalized ones on
// the normalized text, honouring lstrip/rstrip/single_word), normalizer (NFC/NFD/NFKC/NFKD or a Sequence of them),
// pre-tokenizer (Split with a regex, ByteLevel, or a Sequence of them), BPE model by merge rank, ByteLevel decoder.
// Anything else is refused at load time with a message naming the file and the unsupported type.
class Tokenizer {
 public:
  // Loads tokenizer.json and, when present beside it, tokenizer_config.json (for the bos/eos/pad token names).
  // Errors name the file and the problem: unreadable file, malformed JSON, unsupported model/normalizer/pre-tokenizer/
  // decoder type, bad vocab or merges (a merge naming a token not in the vocab), bad regex.
  static StatusOr<Tokenizer> from_file(const std::filesystem::path& tokenizer_json);

  // Text -> ids. Added and special tokens written in the text become their ids. Never adds bos/eos (HF
  // `encode(text, add_special_tokens=False)`, which is also what `apply_chat_template` uses).
  std::vector<int32_t> encode(std::string_view text) const;

  // Ids -> text (invalid UTF-8 from partial tokens becomes U+FFFD, as HF does). Unknown ids are skipped.
  // decode(encode(s)) == s for any NFC-normalised valid UTF-8 s.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // The id of a vocabulary or added token, written as in tokenizer.json (byte-level form for vocab tokens: "Ġthe").
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of an id as in tokenizer.json, or nullopt.
  std::optional<std::string> id_to_token(int32_t id) const;
  // True for added tokens marked "special": true (skipped by decode(..., skip_special_tokens=true)).
  bool is_special(int32_t id) const;

  // Number of distinct tokens, vocabulary plus added tokens (HF `get_vocab_size(with_added_tokens=True)`). The model's
  // embedding may have more rows (padding).
  int64_t vocab_size() const;

  // From tokenizer_config.json's bos_token / eos_token / pad_token; nullopt when absent or not in the vocabulary.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;

  // DeepSeek-R1-Distill-Qwen's chat template (its tokenizer_config.json `chat_template`), rendered without Jinja:
  //   bos_token + system prompt (the LAST system message's content, as the Jinja `set` does; empty if none), then per
  //   message: user -> "<｜User｜>" + content; assistant -> "<｜Assistant｜>" + (content after the last "</think>") +
  //   "<｜end▁of▁sentence｜>"; tool -> "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + content +
  //   "<｜tool▁output▁end｜>" (later tool outputs start with "\n<｜tool▁output▁begin｜>"), an assistant right after a
  //   tool output -> "<｜tool▁outputs▁end｜>" + content + "<｜end▁of▁sentence｜>"; other roles are ignored.
  //   Generation prompt: "<｜Assistant｜><think>\n" (not after a trailing tool output, which gets "<｜tool▁outputs▁end｜>").
  // Returns text; encode() it to get the ids transformers' apply_chat_template(tokenize=True) returns.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const tokenizer_detail::TokenizerImpl> impl_;
};

}  // namespace loft
