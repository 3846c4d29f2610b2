// GPT-2's byte <-> unicode table.
#include "byte_level.h"

#include "text_utf8.h"

namespace loft::tokenizer_detail {

ByteLevelTable::ByteLevelTable() {
  code_point_to_byte_.fill(-1);
  // Printable Latin-1 bytes stand for themselves; the other 68 bytes are shifted to U+0100.. in byte order.
  int next_shifted = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next_shifted++);
    append_code_point(byte_to_utf8_[b], cp);
    code_point_to_byte_[cp] = b;
  }
}

const ByteLevelTable& ByteLevelTable::get() {
  static const ByteLevelTable table;
  return table;
}

std::optional<std::string> ByteLevelTable::token_to_bytes(std::string_view token) const {
  std::string bytes;
  bytes.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    char32_t cp = 0;
    pos += decode_code_point(token, pos, &cp);
    if (cp >= code_point_to_byte_.size() || code_point_to_byte_[cp] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(code_point_to_byte_[cp]));
  }
  return bytes;
}

std::string ByteLevelTable::bytes_to_token(std::string_view bytes) const {
  std::string token;
  token.reserve(bytes.size() * 2);
  for (char c : bytes) token += byte_to_utf8_[static_cast<unsigned char>(c)];
  return token;
}

}  // namespace loft::tokenizer_detail
