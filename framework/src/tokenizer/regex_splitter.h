// A compiled PCRE2 pattern (UTF + UCP, JIT when available) that finds successive non-overlapping matches, the way
// HF's Split pre-tokenizer walks Oniguruma matches.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace loft::tokenizer_detail {

// `pattern` with \s and \S spelled as Unicode White_Space classes (Oniguruma's meaning); exposed for tests.
std::string onig_compatible_pattern(const std::string& pattern);

class RegexSplitter {
 public:
  // Compiles `pattern`; on failure returns nullptr and sets *error to PCRE2's message and offset.
  static std::unique_ptr<RegexSplitter> compile(const std::string& pattern, std::string* error);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Calls on_match(begin, end) for each match in `text` (valid UTF-8), left to right. An empty match advances by one
  // character. Thread-safe.
  void for_each_match(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;

  bool jit() const { return jit_; }

 private:
  RegexSplitter() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace loft::tokenizer_detail
