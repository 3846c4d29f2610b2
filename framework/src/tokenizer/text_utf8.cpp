// UTF-8 repair, iteration, normalisation (utf8proc, with HF tokenizers' older mark tables) and character classes for
// the tokenizer.
#include "text_utf8.h"

#include <cstdlib>
#include <stdexcept>

#include <utf8proc.h>

namespace loft::tokenizer_detail {
namespace {

// Length of the valid UTF-8 sequence at bytes[pos], or 0 with *invalid_len set to the length of the maximal
// subpart to replace by one U+FFFD (at least 1). Second-byte ranges follow Unicode Table 3-7.
size_t valid_sequence_length(std::string_view bytes, size_t pos, size_t* invalid_len) {
  const auto b0 = static_cast<unsigned char>(bytes[pos]);
  if (b0 < 0x80) return 1;
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    *invalid_len = 1;
    return 0;
  }
  size_t i = 1;
  for (; i <= need; ++i) {
    if (pos + i >= bytes.size()) break;
    const auto b = static_cast<unsigned char>(bytes[pos + i]);
    const unsigned char l = (i == 1) ? lo : 0x80, h = (i == 1) ? hi : 0xBF;
    if (b < l || b > h) break;
  }
  if (i == need + 1) return need + 1;
  *invalid_len = i;  // the lead byte plus the continuation bytes that were still valid
  return 0;
}

}  // namespace

void append_utf8_lossy(std::string& out, std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t bad = 0;
    const size_t len = valid_sequence_length(bytes, pos, &bad);
    if (len > 0) {
      out.append(bytes.data() + pos, len);
      pos += len;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += bad;
    }
  }
}

bool is_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    size_t bad = 0;
    const size_t len = valid_sequence_length(text, pos, &bad);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

int decode_code_point(std::string_view text, size_t pos, char32_t* cp) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  int len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t value = b0 & (0x7F >> len);
  for (int i = 1; i < len; ++i) value = (value << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  *cp = value;
  return len;
}

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

struct CodePointRange {
  char32_t first, last;
};
#include "hf_normalization_table.inc"

template <size_t N>
bool in_ranges(const CodePointRange (&table)[N], char32_t cp) {
  size_t lo = 0, hi = N;  // first range whose last >= cp
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (table[mid].last < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < N && table[lo].first <= cp;
}

std::string utf8proc_normalize(std::string_view text, int options) {
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &result,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) {
    // Only reachable with invalid UTF-8, which callers repair first; fail fast inside.
    throw std::runtime_error(std::string("tokenizer: utf8proc normalisation failed: ") + utf8proc_errmsg(n));
  }
  std::string out(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return out;
}

}  // namespace

bool hf_normalizes_as_plain_starter(char32_t cp, NormalizationForm form) {
  if (cp < kHfStartersCanonical[0].first) return false;
  const bool compat = form == NormalizationForm::kNFKC || form == NormalizationForm::kNFKD;
  return compat ? in_ranges(kHfStartersCompatibility, cp) : in_ranges(kHfStartersCanonical, cp);
}

std::string normalize_utf8(std::string_view text, NormalizationForm form) {
  bool ascii = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii || text.empty()) return std::string(text);
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNFC: options |= UTF8PROC_COMPOSE; break;
    case NormalizationForm::kNFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalizationForm::kNFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalizationForm::kNFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  // HF tokenizers' tables predate some marks utf8proc knows; HF treats them as plain starters, across which nothing
  // reorders or composes. Normalising the text between them and keeping them in place reproduces HF exactly.
  std::string out;
  size_t segment = 0, pos = 0;
  while (pos < text.size()) {
    char32_t cp = 0;
    const int len = decode_code_point(text, pos, &cp);
    if (hf_normalizes_as_plain_starter(cp, form)) {
      if (pos > segment) out += utf8proc_normalize(text.substr(segment, pos - segment), options);
      out.append(text.data() + pos, static_cast<size_t>(len));
      segment = pos + static_cast<size_t>(len);
    }
    pos += static_cast<size_t>(len);
  }
  if (segment == 0) return utf8proc_normalize(text, options);
  if (segment < text.size()) out += utf8proc_normalize(text.substr(segment), options);
  return out;
}

bool is_unicode_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_unicode_word_char(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  }
  if (cp == 0x200C || cp == 0x200D) return true;                   // Join_Control
  if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F189)) return true;  // Other_Alphabetic So
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace loft::tokenizer_detail
