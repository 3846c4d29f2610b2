// UTF-8 helpers for the tokenizer: validation with U+FFFD repair (Rust's from_utf8_lossy rules), code point
// iteration, Unicode normalisation through utf8proc and the character classes HF's added-token matching uses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace loft::tokenizer_detail {

enum class NormalizationForm { kNFC, kNFD, kNFKC, kNFKD };

// Appends `bytes` to `out`, replacing each maximal invalid subsequence by U+FFFD exactly as Rust's
// String::from_utf8_lossy does (the Unicode "substitution of maximal subparts" practice).
void append_utf8_lossy(std::string& out, std::string_view bytes);

// True when `text` is valid UTF-8 (no surrogates, no overlongs, at most U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Decodes the code point at text[pos] (text must be valid UTF-8); returns its length in bytes.
int decode_code_point(std::string_view text, size_t pos, char32_t* cp);

// Appends the UTF-8 encoding of cp.
void append_code_point(std::string& out, char32_t cp);

// `text` (valid UTF-8) normalised to `form` exactly as HF tokenizers 0.23.3 does: utf8proc, except that the code
// points HF's older Unicode tables do not know (hf_normalizes_as_plain_starter) stay in place and split the text.
// ASCII is returned unchanged without calling utf8proc.
std::string normalize_utf8(std::string_view text, NormalizationForm form);

// True for a code point HF tokenizers' `form` normaliser treats as a plain starter (class 0, no decomposition, no
// composition) while utf8proc does not: the marks and letters added to Unicode after HF's tables (e.g. U+0899, class
// 220 since Unicode 14). The list, hf_normalization_table.inc, is written by tests/tokenizer/make_hf_normalization_table.py.
bool hf_normalizes_as_plain_starter(char32_t cp, NormalizationForm form);

// Unicode White_Space (Rust's char::is_whitespace, regex `\s`).
bool is_unicode_white_space(char32_t cp);

// Rust regex's Unicode `\w`: alphabetic, marks, decimal digits, connector punctuation, join controls.
bool is_unicode_word_char(char32_t cp);

}  // namespace loft::tokenizer_detail
