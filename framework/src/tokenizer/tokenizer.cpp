// loft::Tokenizer: encode (added tokens, normalizer, pre-tokenizer, BPE) and decode (ByteLevel decoder).
#include "loft/framework/tokenizer.h"

#include <algorithm>

#include "tokenizer_impl.h"

namespace loft {
namespace tokenizer_detail {

void AddedTokenMatcher::build(std::vector<std::pair<std::string, const AddedTokenInfo*>> patterns) {
  for (auto& bucket : by_first_byte_) bucket.clear();
  count_ = 0;
  for (auto& [text, token] : patterns) {
    if (text.empty()) continue;
    by_first_byte_[static_cast<unsigned char>(text[0])].push_back(Pattern{std::move(text), token});
    ++count_;
  }
  for (auto& bucket : by_first_byte_) {
    // Longest first; among equal lengths the earlier pattern wins, as with aho-corasick's pattern order.
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const Pattern& a, const Pattern& b) { return a.text.size() > b.text.size(); });
  }
}

std::string TokenizerImpl::normalize(std::string_view text) const {
  std::string out(text);
  for (NormalizationForm form : normalizers) out = normalize_utf8(out, form);
  return out;
}

void TokenizerImpl::pre_tokenize_into(std::string_view piece, size_t step, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (step == pre_tokenizer.size()) {
    bpe.encode_word(piece, out);  // after ByteLevel: the word's raw bytes are its byte-level symbols
    return;
  }
  const PreTokenizerStep& s = pre_tokenizer[step];
  std::string prefixed;  // outlives `piece` when it points here
  if (s.kind == PreTokenizerStep::Kind::kByteLevel) {
    if (s.add_prefix_space && piece.front() != ' ') {
      prefixed.reserve(piece.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(piece);
      piece = prefixed;
    }
    if (!s.regex) {
      pre_tokenize_into(piece, step + 1, out);
      return;
    }
  }
  // Split (or ByteLevel's own regex): matches and the gaps between them become pieces, empty pieces vanish.
  size_t previous_end = 0;
  const bool keep_matches = s.kind == PreTokenizerStep::Kind::kByteLevel || s.behavior == SplitBehavior::kIsolated;
  s.regex->for_each_match(piece, [&](size_t begin, size_t end) {
    if (begin > previous_end) pre_tokenize_into(piece.substr(previous_end, begin - previous_end), step + 1, out);
    if (keep_matches && end > begin) pre_tokenize_into(piece.substr(begin, end - begin), step + 1, out);
    previous_end = end;
  });
  if (previous_end < piece.size()) pre_tokenize_into(piece.substr(previous_end), step + 1, out);
}

void TokenizerImpl::encode_into(std::string_view text, std::vector<int32_t>& out) const {
  std::string repaired;
  if (!is_valid_utf8(text)) {
    append_utf8_lossy(repaired, text);
    text = repaired;
  }
  raw_matcher.split(text, [&](std::string_view piece, int32_t id) {
    if (id >= 0) {
      out.push_back(id);
      return;
    }
    const std::string normalized = normalize(piece);
    normalized_matcher.split(normalized, [&](std::string_view sub, int32_t sub_id) {
      if (sub_id >= 0) {
        out.push_back(sub_id);
      } else {
        pre_tokenize_into(sub, 0, out);
      }
    });
  });
}

}  // namespace tokenizer_detail

StatusOr<Tokenizer> Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  auto impl = tokenizer_detail::load_tokenizer(tokenizer_json);
  if (!impl.ok()) return impl.status();
  return Tokenizer(std::move(impl).value());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode_into(text, ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->id_known.size() || !impl_->id_known[id]) continue;
    if (skip_special_tokens && impl_->id_special[id]) continue;
    bytes += impl_->id_to_bytes[id];
  }
  std::string text;
  text.reserve(bytes.size());
  tokenizer_detail::append_utf8_lossy(text, bytes);
  return text;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_to_id.find(std::string(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_known.size() || !impl_->id_known[id]) return std::nullopt;
  return impl_->id_to_token[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->id_special.size() && impl_->id_special[id];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->token_to_id.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad_id; }

}  // namespace loft
