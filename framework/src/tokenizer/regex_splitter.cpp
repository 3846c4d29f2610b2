// PCRE2 matching for the Split pre-tokenizer.
#include "regex_splitter.h"

#include <stdexcept>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace loft::tokenizer_detail {
namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

// The JIT's default 32 KiB stack overflows on long runs (a `\s+(?!\S)` over megabytes of spaces); one larger stack
// per thread, created on first use and kept for the thread's life.
pcre2_match_context* thread_match_context() {
  struct Context {
    pcre2_match_context* context = nullptr;
    pcre2_jit_stack* stack = nullptr;
    Context() {
      context = pcre2_match_context_create(nullptr);
      stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
      if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
    }
    ~Context() {
      if (stack) pcre2_jit_stack_free(stack);
      if (context) pcre2_match_context_free(context);
    }
  };
  thread_local Context ctx;
  return ctx.context;
}

// Unicode White_Space, which is what Oniguruma's (HF's) \s matches. PCRE2's \s with UCP also matches U+180E
// (MONGOLIAN VOWEL SEPARATOR, no longer White_Space since Unicode 6.3), which would split differently from HF.
constexpr const char* kWhiteSpaceRanges =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

}  // namespace

std::string onig_compatible_pattern(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += in_class ? std::string(kWhiteSpaceRanges) : "[" + std::string(kWhiteSpaceRanges) + "]";
      } else if (next == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceRanges) + "]";
      } else {
        out.push_back(c);
        out.push_back(next);
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // POSIX class such as [:alpha:]
      if (end != std::string::npos) {
        out.append(pattern, i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

std::unique_ptr<RegexSplitter> RegexSplitter::compile(const std::string& source_pattern, std::string* error) {
  const std::string pattern = onig_compatible_pattern(source_pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error_code, buffer, sizeof(buffer));
    *error = std::string(reinterpret_cast<const char*>(buffer)) + " at offset " + std::to_string(error_offset);
    return nullptr;
  }
  std::unique_ptr<RegexSplitter> splitter(new RegexSplitter());
  splitter->code_ = code;
  splitter->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return splitter;
}

RegexSplitter::~RegexSplitter() {
  if (code_) pcre2_code_free(as_code(code_));
}

void RegexSplitter::for_each_match(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const {
  pcre2_code* code = as_code(code_);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  if (data == nullptr) throw std::bad_alloc();
  pcre2_match_context* context = thread_match_context();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), start, 0, data, context)
                  : pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data, context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(rc, buffer, sizeof(buffer));
      throw std::runtime_error(std::string("tokenizer: PCRE2 match failed: ") + reinterpret_cast<const char*>(buffer));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    const size_t begin = ovector[0], end = ovector[1];
    on_match(begin, end);
    if (end > begin) {
      start = end;
    } else {
      // Empty match: step over one whole UTF-8 character.
      if (end >= text.size()) break;
      size_t next = end + 1;
      while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
      start = next;
    }
  }
  pcre2_match_data_free(data);
}

}  // namespace loft::tokenizer_detail
