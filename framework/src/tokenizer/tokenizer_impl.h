// The loaded tables behind loft::Tokenizer: added-token matchers, normalizer, pre-tokenizer steps, BPE model and
// decoding bytes. Built once by load_tokenizer(), then read-only (the BPE word cache locks itself).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bpe.h"
#include "loft/status.h"
#include "regex_splitter.h"
#include "text_utf8.h"

namespace loft::tokenizer_detail {

struct AddedTokenInfo {
  std::string content;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// HF's AddedVocabulary::find_matches over one set of added tokens: leftmost-longest, non-overlapping matches
// (aho-corasick semantics), then single_word / lstrip / rstrip applied to each match.
class AddedTokenMatcher {
 public:
  // `patterns[i]` is what to look for (the normalized content for normalized tokens); `tokens[i]` its token.
  void build(std::vector<std::pair<std::string, const AddedTokenInfo*>> patterns);
  bool empty() const { return count_ == 0; }

  // Calls emit(piece, id) for every piece of `text` in order: id >= 0 for an added token, -1 for text between.
  template <typename Emit>
  void split(std::string_view text, Emit&& emit) const;

 private:
  struct Pattern {
    std::string text;
    const AddedTokenInfo* token;
  };
  // Patterns by first byte, longest first, so the first hit at a position is the longest.
  std::array<std::vector<Pattern>, 256> by_first_byte_;
  size_t count_ = 0;
};

enum class SplitBehavior { kIsolated, kRemoved };

struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
  std::unique_ptr<RegexSplitter> regex;  // Split's pattern, or ByteLevel's GPT-2 regex when use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool add_prefix_space = false;
};

struct TokenizerImpl {
  std::filesystem::path path;

  std::vector<AddedTokenInfo> added_tokens;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false, matched on the raw text
  AddedTokenMatcher normalized_matcher;  // normalized=true, matched on the normalized text

  std::vector<NormalizationForm> normalizers;  // applied in order
  std::vector<PreTokenizerStep> pre_tokenizer;  // ends with the ByteLevel step
  BpeModel bpe;

  std::unordered_map<std::string, int32_t> token_to_id;  // vocab plus added tokens (added win)
  std::vector<std::string> id_to_token;                  // "" where the id is unused
  std::vector<uint8_t> id_known;
  std::vector<std::string> id_to_bytes;  // what decode() emits per id (before the final lossy UTF-8 pass)
  std::vector<uint8_t> id_special;

  std::optional<int32_t> bos_id, eos_id, pad_id;
  std::string bos_token;  // text of the bos token for the chat template ("" when unknown)

  void encode_into(std::string_view text, std::vector<int32_t>& out) const;
  void pre_tokenize_into(std::string_view piece, size_t step, std::vector<int32_t>& out) const;
  std::string normalize(std::string_view text) const;
};

// Parses tokenizer.json (+ tokenizer_config.json beside it). Errors name the file and the problem.
StatusOr<std::shared_ptr<TokenizerImpl>> load_tokenizer(const std::filesystem::path& tokenizer_json);

// --- template definition ---

template <typename Emit>
void AddedTokenMatcher::split(std::string_view text, Emit&& emit) const {
  if (count_ == 0 || text.empty()) {
    if (!text.empty()) emit(text, -1);
    return;
  }
  const size_t n = text.size();
  size_t start_offset = 0, pos = 0;
  while (pos < n) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const Pattern* hit = nullptr;
    for (const Pattern& p : candidates) {
      if (p.text.size() <= n - pos && text.compare(pos, p.text.size(), p.text) == 0) {
        hit = &p;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->text.size();
    pos = stop;  // the match iterator continues after the match whatever is done with it
    const AddedTokenInfo& token = *hit->token;
    if (token.single_word) {
      bool word_before = false, word_after = false;
      if (start > 0) {
        size_t b = start - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        char32_t cp = 0;
        decode_code_point(text, b, &cp);
        word_before = is_unicode_word_char(cp);
      }
      if (stop < n) {
        char32_t cp = 0;
        decode_code_point(text, stop, &cp);
        word_after = is_unicode_word_char(cp);
      }
      if (word_before || word_after) continue;
    }
    if (token.lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        size_t b = new_start - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        char32_t cp = 0;
        decode_code_point(text, b, &cp);
        if (!is_unicode_white_space(cp)) break;
        new_start = b;
      }
      start = new_start > start_offset ? new_start : start_offset;
    }
    if (token.rstrip) {
      while (stop < n) {
        char32_t cp = 0;
        const int len = decode_code_point(text, stop, &cp);
        if (!is_unicode_white_space(cp)) break;
        stop += static_cast<size_t>(len);
      }
    }
    if (start_offset < start) emit(text.substr(start_offset, start - start_offset), -1);
    emit(text.substr(start, stop - start), token.id);
    start_offset = stop;
  }
  if (start_offset < n) emit(text.substr(start_offset), -1);
}

}  // namespace loft::tokenizer_detail
