// GPT-2's byte <-> unicode table (HF `bytes_to_unicode`): byte-level BPE vocabularies spell every byte as one
// printable character, so "Ġthe" is the bytes " the".
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace loft::tokenizer_detail {

class ByteLevelTable {
 public:
  static const ByteLevelTable& get();

  // The UTF-8 spelling of byte b's character.
  const std::string& byte_to_utf8(unsigned char b) const { return byte_to_utf8_[b]; }

  // The raw bytes a byte-level token spells, or nullopt when one of its characters is not in the table (added tokens
  // such as "<｜User｜>" then decode to their own UTF-8, as HF's ByteLevel decoder does).
  std::optional<std::string> token_to_bytes(std::string_view token) const;

  // The byte-level spelling of raw bytes (" the" -> "Ġthe").
  std::string bytes_to_token(std::string_view bytes) const;

 private:
  ByteLevelTable();
  std::array<std::string, 256> byte_to_utf8_;
  std::array<int, 324> code_point_to_byte_;  // -1 where the code point is not in the table
};

}  // namespace loft::tokenizer_detail
