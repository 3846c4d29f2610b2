// Answer extraction and normalisation for MATH-style grading.
#include "loft/framework/math_answer.h"

#include <cmath>
#include <cstdlib>
#include <regex>
#include <vector>

namespace loft {

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

// Index just past the brace group that opens at s[open] == '{', or npos if unbalanced.
size_t close_brace(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i + 1;
  }
  return std::string::npos;
}

// "\frac12" -> "\frac{1}{2}", "\frac1{2}" -> "\frac{1}{2}" (the MATH convention for unbraced arguments).
std::string brace_frac_arguments(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t at = s.find("\\frac", i);
    if (at == std::string::npos) break;
    out += s.substr(i, at + 5 - i);
    i = at + 5;
    for (int arg = 0; arg < 2 && i < s.size(); ++arg) {
      if (s[i] == '{') {
        size_t end = close_brace(s, i);
        if (end == std::string::npos) break;
        out += s.substr(i, end - i);
        i = end;
      } else {
        out += std::string("{") + s[i] + "}";
        ++i;
      }
    }
  }
  return out + s.substr(std::min(i, s.size()));
}

// "\sqrt3" -> "\sqrt{3}".
std::string brace_sqrt_argument(const std::string& s) {
  static const std::regex unbraced(R"(\\sqrt([^{\[]))");
  return std::regex_replace(s, unbraced, "\\sqrt{$1}");
}

// Removes a trailing "\text{...}" unit ("5\text{ cm}" -> "5") and turns other \text{x} into x.
std::string strip_text(std::string s) {
  static const std::regex trailing_unit(R"(^(.*\S)\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z ^2-3]*\}$)");
  std::smatch m;
  if (std::regex_match(s, m, trailing_unit)) s = m[1];
  static const std::regex text(R"(\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\})");
  return std::regex_replace(s, text, "$1");
}

// Value of "3", "-0.25", "1/2", "\frac{3}{4}", "-\frac{1}{2}", "1,000"; nullopt when not such a number.
std::optional<double> numeric_value(const std::string& s) {
  static const std::regex plain(R"(^-?\d+(\.\d*)?$|^-?\.\d+$)");
  static const std::regex slash(R"(^(-?\d+)/(\d+)$)");
  static const std::regex frac(R"(^(-?)\\frac\{(-?\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}$)");
  std::string t = s;
  static const std::regex thousands(R"(^-?\d{1,3}(,\d{3})+(\.\d+)?$)");
  if (std::regex_match(t, thousands)) replace_all(t, ",", "");
  std::smatch m;
  if (std::regex_match(t, plain)) return std::strtod(t.c_str(), nullptr);
  if (std::regex_match(t, m, slash)) {
    double d = std::strtod(m[2].str().c_str(), nullptr);
    if (d != 0) return std::strtod(m[1].str().c_str(), nullptr) / d;
  }
  if (std::regex_match(t, m, frac)) {
    double d = std::strtod(m[3].str().c_str(), nullptr);
    if (d != 0) return (m[1] == "-" ? -1.0 : 1.0) * std::strtod(m[2].str().c_str(), nullptr) / d;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> extract_boxed_answer(const std::string& text) {
  size_t best = std::string::npos;
  size_t skip = 0;
  for (const char* marker : {"\\boxed", "\\fbox"}) {
    size_t at = text.rfind(marker);
    if (at != std::string::npos && (best == std::string::npos || at > best)) {
      best = at;
      skip = std::string(marker).size();
    }
  }
  if (best == std::string::npos) return std::nullopt;
  size_t i = best + skip;
  if (i < text.size() && text[i] == ' ') {  // "\boxed 5": the argument runs to the next '$' or space
    size_t end = text.find_first_of("$ \n", i + 1);
    return text.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
  }
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  size_t end = close_brace(text, i);
  if (end == std::string::npos) return std::nullopt;
  return text.substr(i + 1, end - i - 2);
}

std::string normalize_math_answer(const std::string& answer) {
  std::string s = answer;
  replace_all(s, "\n", "");
  replace_all(s, "\\!", "");
  replace_all(s, "\\\\", "\\");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  replace_all(s, "\\left", "");
  replace_all(s, "\\right", "");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  s = strip_text(s);
  // Leading "x = " on short answers ("k = 3").
  static const std::regex lhs(R"(^\s*[a-zA-Z]\s*=\s*(.+)$)");
  std::smatch m;
  if (std::regex_match(s, m, lhs)) s = m[1];
  std::string compact;
  for (char c : s) {
    if (c != ' ' && c != '\t') compact += c;
  }
  s = brace_sqrt_argument(brace_frac_arguments(compact));
  if (s.size() >= 2 && s[0] == '.' ) s = "0" + s;  // ".5" -> "0.5"
  if (s == "0.5") s = "\\frac{1}{2}";
  static const std::regex trailing_zeros(R"(^(-?\d+)\.0+$)");
  if (std::regex_match(s, m, trailing_zeros)) s = m[1];
  return s;
}

bool math_answers_match(const std::string& predicted, const std::string& reference) {
  const std::string a = normalize_math_answer(predicted), b = normalize_math_answer(reference);
  if (a == b) return true;
  auto x = numeric_value(a), y = numeric_value(b);
  return x && y && std::fabs(*x - *y) <= 1e-9 * std::max(1.0, std::fabs(*y));
}

}  // namespace loft
