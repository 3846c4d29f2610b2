// Answer extraction, normalisation and exact equivalence for MATH-style grading (conventions in math_answer.h).
#include "loft/framework/math_answer.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <vector>

namespace loft {

namespace {

using Int = __int128;

// Longer answers are compared as written, white space aside (see normalize_math_answer).
constexpr size_t kMaxNormalizedAnswer = 1000;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
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

// Position of the LaTeX command `cmd` ("\left") at or after `from` that is not the prefix of a longer command name.
size_t find_command(const std::string& s, const std::string& cmd, size_t from = 0) {
  for (size_t at = s.find(cmd, from); at != std::string::npos; at = s.find(cmd, at + 1)) {
    const size_t end = at + cmd.size();
    if (end >= s.size() || !std::isalpha(static_cast<unsigned char>(s[end]))) return at;
  }
  return std::string::npos;
}

void remove_command(std::string& s, const std::string& cmd) {
  for (size_t at = find_command(s, cmd); at != std::string::npos; at = find_command(s, cmd, at)) s.erase(at, cmd.size());
}

// "\text{abc}" -> "abc" for every occurrence of `cmd` followed by a brace group.
void unwrap_command(std::string& s, const std::string& cmd) {
  for (size_t at = find_command(s, cmd); at != std::string::npos; at = find_command(s, cmd, at)) {
    size_t open = at + cmd.size();
    while (open < s.size() && s[open] == ' ') ++open;
    if (open >= s.size() || s[open] != '{') {
      ++at;
      continue;
    }
    const size_t end = close_brace(s, open);
    if (end == std::string::npos) return;
    s = s.substr(0, at) + s.substr(open + 1, end - open - 2) + s.substr(end);
  }
}

// LaTeX spacing ("\\!", "\\,", "\\;", "\\:", "\\ ", "~") -> ' '; the row separator "\\\\" is kept.
std::string remove_latex_spacing(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '~') {
      out += ' ';
    } else if (s[i] == '\\' && i + 1 < s.size()) {
      const char next = s[i + 1];
      if (next == '!' || next == ',' || next == ';' || next == ':' || next == ' ') {
        out += ' ';
      } else {
        out += s[i];
        out += next;
      }
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

const char* const kTextCommands[] = {"\\text", "\\textbf", "\\textrm", "\\textit", "\\textnormal", "\\mbox",
                                     "\\mathrm", "\\mathbf", "\\mathit", "\\boxed", "\\fbox"};

// A unit or a word: letters, spaces, '.', '/' and '-' (at least one letter): " cm", "square units", "m/s".
bool is_unit_text(const std::string& content) {
  bool letter = false;
  for (char c : content) {
    if (std::isalpha(static_cast<unsigned char>(c))) letter = true;
    else if (c != ' ' && c != '.' && c != '/' && c != '-') return false;
  }
  return letter;
}

// "5 \text{ cm}" -> "5", "12\mbox{ square units}^2" -> "12": a trailing \text-like group holding only a unit, after a
// value (something with a digit or a closing brace). A \text group that is the whole answer is kept ("\text{(B)}").
void strip_trailing_units(std::string& s) {
  static const std::regex power(R"(^\s*(\^\s*\{?\s*[23]\s*\}?)?\s*$)");
  for (bool again = true; again;) {
    again = false;
    for (const char* cmd : kTextCommands) {
      size_t at = std::string::npos;
      for (size_t p = find_command(s, cmd); p != std::string::npos; p = find_command(s, cmd, p + 1)) at = p;
      if (at == std::string::npos) continue;
      size_t open = at + std::string(cmd).size();
      while (open < s.size() && s[open] == ' ') ++open;
      if (open >= s.size() || s[open] != '{') continue;
      const size_t end = close_brace(s, open);
      if (end == std::string::npos || !std::regex_match(s.substr(end), power)) continue;
      const std::string before = trim(s.substr(0, at));
      if (before.empty() || !is_unit_text(s.substr(open + 1, end - open - 2))) continue;
      if (before.find_first_of("0123456789}") == std::string::npos) continue;
      s = before;
      again = true;
      break;
    }
  }
}

// "5 cm", "18.90 dollars", "90 degrees", "4 square units": a number followed by words (two letters or more each).
void strip_trailing_words(std::string& s) {
  static const std::regex words(R"(^(.*[0-9}])\s+([a-zA-Z]{2,}\.?)(\s+[a-zA-Z]{2,}\.?)*\s*$)");
  std::smatch m;
  if (!std::regex_match(s, m, words)) return;
  static const std::regex joiners(R"(\s(and|or)(\s|$))");
  if (std::regex_search(s, joiners)) return;  // "3 and 4" is not a unit
  s = m[1];
}

// "x = 3" -> "3", "k=-1" -> "-1", "a_1 = 5" -> "5": one '=' with a short left-hand side (a variable name); and
// "x \in [1,2]" -> "[1,2]".
void strip_variable_lhs(std::string& s) {
  static const std::regex in_set(R"(^\s*[a-zA-Z]\s*\\in\s*(.+)$)");  // "x \in [1,2]"
  std::smatch m;
  if (std::regex_match(s, m, in_set)) s = m[1];
  if (std::count(s.begin(), s.end(), '=') != 1) return;
  const size_t eq = s.find('=');
  std::string lhs;
  for (char c : s.substr(0, eq)) {
    if (c != ' ') lhs += c;
  }
  static const std::regex variable(R"(^([a-zA-Z]|\\[a-zA-Z]+)(_\{?[a-zA-Z0-9]+\}?)?$|^[a-zA-Z]{1,2}$)");
  if (std::regex_match(lhs, variable) && !trim(s.substr(eq + 1)).empty()) s = s.substr(eq + 1);
}

// "\frac12" -> "\frac{1}{2}", "\frac1{2}" -> "\frac{1}{2}" (the MATH convention for unbraced arguments).
std::string brace_frac_arguments(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t at = find_command(s, "\\frac", i);
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
  static const std::regex unbraced(R"(\\sqrt([0-9a-zA-Z]))");
  return std::regex_replace(s, unbraced, "\\sqrt{$1}");
}

// --------------------------------------------------------------------------------------------- exact numbers

struct Rational {
  Int num = 0, den = 1;
  bool operator==(const Rational& o) const { return num == o.num && den == o.den; }
};

Int gcd(Int a, Int b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    const Int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

std::optional<Rational> make_rational(Int num, Int den) {
  if (den == 0) return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const Int g = gcd(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  return Rational{num, den};
}

std::optional<Rational> divide(const Rational& a, const Rational& b) {
  Int num = 0, den = 0;
  if (__builtin_mul_overflow(a.num, b.den, &num) || __builtin_mul_overflow(a.den, b.num, &den)) return std::nullopt;
  return make_rational(num, den);
}

std::optional<Rational> add(const Rational& a, const Rational& b) {
  Int x = 0, y = 0, num = 0, den = 0;
  if (__builtin_mul_overflow(a.num, b.den, &x) || __builtin_mul_overflow(b.num, a.den, &y) ||
      __builtin_add_overflow(x, y, &num) || __builtin_mul_overflow(a.den, b.den, &den)) {
    return std::nullopt;
  }
  return make_rational(num, den);
}

// 10^k as a Rational (k may be negative); nullopt past 10^36.
std::optional<Rational> power_of_ten(long k) {
  if (k > 36 || k < -36) return std::nullopt;
  Int p = 1;
  for (long i = 0; i < (k < 0 ? -k : k); ++i) p *= 10;
  return k < 0 ? make_rational(1, p) : make_rational(p, 1);
}

// "12", "0.25", ".5", "3." exactly; nullopt beyond 36 digits.
std::optional<Rational> parse_decimal(const std::string& s) {
  static const std::regex decimal(R"(^(\d*)(?:\.(\d*))?$)");
  std::smatch m;
  if (!std::regex_match(s, m, decimal) || (m[1].length() == 0 && m[2].length() == 0)) return std::nullopt;
  const std::string digits = m[1].str() + m[2].str();
  if (digits.size() > 36) return std::nullopt;
  Int num = 0;
  for (char c : digits) num = num * 10 + (c - '0');
  auto scale = power_of_ten(static_cast<long>(m[2].length()));
  if (!scale) return std::nullopt;
  return make_rational(num, scale->num);
}

// The brace group at s[i] == '{': its content, and i moved past it.
std::optional<std::string> brace_group(const std::string& s, size_t& i) {
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  const size_t end = close_brace(s, i);
  if (end == std::string::npos) return std::nullopt;
  std::string content = s.substr(i + 1, end - i - 2);
  i = end;
  return content;
}

// The exact value of a normalised answer that is a number: integers, decimals, "a/b", "\frac{a}{b}" (arguments
// themselves numbers), mixed numbers "2\frac{1}{4}", scientific notation "1.5\times10^{3}", "1.5e3", "10^{-2}";
// leading signs. Nothing else: "\pi", "\sqrt{2}" and "2^{10}" are not evaluated.
std::optional<Rational> parse_rational(const std::string& text) {
  size_t i = 0;
  bool negative = false;
  while (i < text.size() && (text[i] == '-' || text[i] == '+')) negative ^= text[i++] == '-';
  std::string s = text.substr(i);
  if (s.size() >= 2 && s.front() == '{' && close_brace(s, 0) == s.size()) return parse_rational(s.substr(1, s.size() - 2));
  auto sign = [&](std::optional<Rational> r) -> std::optional<Rational> {
    if (r && negative) r->num = -r->num;
    return r;
  };
  if (auto r = parse_decimal(s)) return sign(r);
  if (starts_with(s, "\\frac")) {  // \frac{a}{b}
    size_t j = 5;
    auto a = brace_group(s, j);
    auto b = a ? brace_group(s, j) : std::nullopt;
    if (!b || j != s.size()) return std::nullopt;
    auto x = parse_rational(*a), y = parse_rational(*b);
    return x && y ? sign(divide(*x, *y)) : std::nullopt;
  }
  static const std::regex mixed(R"(^(\d+)\\frac\{(\d+)\}\{(\d+)\}$)");
  static const std::regex slash(R"(^([0-9.]+)/(-?[0-9.]+)$)");
  static const std::regex scientific(R"(^([0-9.]+)(?:\\times|\\cdot|\*)10\^(?:\{([+-]?\d+)\}|(\d))$)");
  static const std::regex exponent(R"(^([0-9.]+)[eE]([+-]?\d+)$)");
  static const std::regex ten_power(R"(^10\^(?:\{([+-]?\d+)\}|(\d))$)");
  std::smatch m;
  if (std::regex_match(s, m, mixed)) {  // 2\frac{1}{4} = 9/4, as MATH writes mixed numbers
    auto w = parse_decimal(m[1]), a = parse_decimal(m[2]), b = parse_decimal(m[3]);
    auto f = a && b ? divide(*a, *b) : std::nullopt;
    return w && f ? sign(add(*w, *f)) : std::nullopt;
  }
  if (std::regex_match(s, m, slash)) {
    auto a = parse_decimal(m[1]), b = parse_rational(m[2]);
    return a && b ? sign(divide(*a, *b)) : std::nullopt;
  }
  std::optional<Rational> mantissa, scale;
  if (std::regex_match(s, m, scientific)) {
    mantissa = parse_decimal(m[1]);
    scale = power_of_ten(std::stol(m[2].matched ? m[2].str() : m[3].str()));
  } else if (std::regex_match(s, m, exponent)) {
    mantissa = parse_decimal(m[1]);
    scale = power_of_ten(std::stol(m[2]));
  } else if (std::regex_match(s, m, ten_power)) {
    mantissa = Rational{1, 1};
    scale = power_of_ten(std::stol(m[1].matched ? m[1].str() : m[2].str()));
  }
  if (!mantissa || !scale) return std::nullopt;
  return sign(divide(*mantissa, Rational{scale->den, scale->num}));
}

std::string to_string(Int v) {
  if (v == 0) return "0";
  const bool negative = v < 0;
  std::string out;
  while (v != 0) {
    const int digit = static_cast<int>(v % 10);
    out += static_cast<char>('0' + (digit < 0 ? -digit : digit));
    v /= 10;
  }
  if (negative) out += '-';
  std::reverse(out.begin(), out.end());
  return out;
}

std::string canonical(const Rational& r) {
  if (r.den == 1) return to_string(r.num);
  return (r.num < 0 ? "-\\frac{" + to_string(-r.num) : "\\frac{" + to_string(r.num)) + "}{" + to_string(r.den) + "}";
}

// --------------------------------------------------------------------------------------------- structure

// Splits at top-level occurrences of `sep` (outside (), [], {}); "\{" and "\}" count as braces.
std::vector<std::string> split_top_level(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size() && s[i + 1] != '\\' && s[i + 1] != '{' && s[i + 1] != '}') continue;
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == ']' || c == '}') --depth;
    else if (depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      parts.push_back(s.substr(start, i - start));
      start = i + sep.size();
      i += sep.size() - 1;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

// "\begin{pmatrix}1&2\\3&4\end{pmatrix}" (any of matrix, pmatrix, bmatrix, Bmatrix, vmatrix, Vmatrix, array{..}) ->
// rows of cells; nullopt for anything else.
std::optional<std::vector<std::vector<std::string>>> parse_matrix(const std::string& s) {
  static const std::regex env(R"(^\\begin\{([pbBvV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}$)");
  std::smatch m;
  if (!std::regex_match(s, m, env)) return std::nullopt;
  const std::string kind = m[1];
  std::vector<std::vector<std::string>> rows;
  std::string body = m[2];
  while (ends_with(body, "\\\\")) body.resize(body.size() - 2);
  for (const auto& row : split_top_level(body, "\\\\")) rows.push_back(split_top_level(row, "&"));
  // vmatrix (a determinant) is not a matrix: keep the kind apart from the bracket styles.
  if (kind == "vmatrix" || kind == "Vmatrix") rows.insert(rows.begin(), {std::string("|") + kind});
  return rows;
}

bool equivalent(const std::string& a, const std::string& b);

// Same multiset of elements under `equivalent`.
bool same_elements_unordered(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() != b.size()) return false;
  std::vector<bool> used(b.size(), false);
  for (const auto& x : a) {
    bool found = false;
    for (size_t j = 0; j < b.size() && !found; ++j) {
      if (!used[j] && equivalent(x, b[j])) used[j] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

bool same_elements_ordered(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!equivalent(a[i], b[i])) return false;
  }
  return true;
}

// Two normalised answers denote the same thing: equal strings, equal exact numbers, or the same structure (tuple,
// interval, set, list, matrix) with equivalent elements.
bool equivalent(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  const auto x = parse_rational(a), y = parse_rational(b);
  if (x || y) return x && y && *x == *y;
  const auto ma = parse_matrix(a), mb = parse_matrix(b);
  if (ma || mb) {
    if (!ma || !mb || ma->size() != mb->size()) return false;
    for (size_t r = 0; r < ma->size(); ++r) {
      if (!same_elements_ordered((*ma)[r], (*mb)[r])) return false;
    }
    return true;
  }
  // Sets \{...\}: unordered.
  if (starts_with(a, "\\{") && ends_with(a, "\\}") && starts_with(b, "\\{") && ends_with(b, "\\}")) {
    return same_elements_unordered(split_top_level(a.substr(2, a.size() - 4), ","),
                                   split_top_level(b.substr(2, b.size() - 4), ","));
  }
  // Tuples and intervals: the same brackets at both ends, elements in order.
  auto bracketed = [](const std::string& s) {  // one bracket group: "(1,2]", not "(1,2),(3,4)" or "(0,1)\cup(2,3)"
    if (s.size() < 2 || (s.front() != '(' && s.front() != '[') || (s.back() != ')' && s.back() != ']')) return false;
    int depth = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '(' || s[i] == '[' || s[i] == '{') ++depth;
      if ((s[i] == ')' || s[i] == ']' || s[i] == '}') && --depth == 0 && i + 1 != s.size()) return false;
    }
    return depth == 0;
  };
  if (bracketed(a) && bracketed(b)) {
    if (a.front() != b.front() || a.back() != b.back()) return false;
    const auto ea = split_top_level(a.substr(1, a.size() - 2), ","), eb = split_top_level(b.substr(1, b.size() - 2), ",");
    return ea.size() > 1 && same_elements_ordered(ea, eb);
  }
  // Lists of answers ("all solutions, separated by commas"): unordered.
  const auto la = split_top_level(a, ","), lb = split_top_level(b, ",");
  if (la.size() > 1 && lb.size() > 1) return same_elements_unordered(la, lb);
  return false;
}

}  // namespace

std::optional<std::string> extract_boxed_answer(const std::string& text) {
  size_t best = std::string::npos, skip = 0;
  for (const std::string marker : {"\\boxed", "\\fbox"}) {
    for (size_t at = find_command(text, marker); at != std::string::npos; at = find_command(text, marker, at + 1)) {
      if (best == std::string::npos || at > best) {
        best = at;
        skip = marker.size();
      }
    }
  }
  if (best == std::string::npos) return std::nullopt;
  size_t i = best + skip;
  const size_t after_marker = i;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (i < text.size() && text[i] == '{') {  // "\boxed{5}", "\boxed {5}"
    const size_t end = close_brace(text, i);
    if (end == std::string::npos) return std::nullopt;
    return text.substr(i + 1, end - i - 2);
  }
  if (i == after_marker || i >= text.size()) return std::nullopt;
  // "\boxed 5": the argument runs to the next '$' or white space.
  const size_t end = text.find_first_of("$ \t\n", i);
  return text.substr(i, end == std::string::npos ? std::string::npos : end - i);
}

std::string normalize_math_answer(const std::string& answer) {
  if (answer.size() > kMaxNormalizedAnswer) {  // no MATH answer is this long; std::regex recursion would be deep
    std::string compact;
    for (char c : answer) {
      if (!std::isspace(static_cast<unsigned char>(c))) compact += c;
    }
    return compact;
  }
  std::string s = answer;
  replace_all(s, "\xE2\x88\x92", "-");  // U+2212 MINUS SIGN
  replace_all(s, "\xC2\xB0", "");       // U+00B0 DEGREE SIGN
  for (const char* ws : {"\n", "\r", "\t"}) replace_all(s, ws, " ");
  // Math delimiters, dollars and LaTeX spacing.
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  for (const char* d : {"\\(", "\\)", "\\[", "\\]"}) replace_all(s, d, "");
  s = remove_latex_spacing(s);
  replace_all(s, "{,}", "");  // 1{,}000
  for (const char* cmd : {"\\quad", "\\qquad"}) remove_command(s, cmd);
  for (const char* cmd : {"\\displaystyle", "\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr"}) {
    remove_command(s, cmd);
  }
  for (const char* f : {"\\dfrac", "\\tfrac", "\\cfrac"}) replace_all(s, f, "\\frac");
  // Degrees and percent are dropped (MATH: "90^\circ" = "90", "50\%" = "50").
  for (const char* deg : {"^{\\circ}", "^\\circ", "\\circ", "\\degree"}) replace_all(s, deg, "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  // Units in \text and as trailing words; other \text{x} -> x.
  strip_trailing_units(s);
  for (const char* cmd : kTextCommands) unwrap_command(s, cmd);
  s = trim(s);
  strip_trailing_words(s);
  strip_variable_lhs(s);
  std::string compact;
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) compact += c;
  }
  s = brace_sqrt_argument(brace_frac_arguments(compact));
  if (s.size() > 1 && s.back() == '.' && !ends_with(s, "..")) s.pop_back();  // "5." at the end of a sentence
  // Thousands separators in a number: "1,000,000", "-1,234.5".
  static const std::regex thousands(R"(^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$)");
  if (std::regex_match(s, thousands)) replace_all(s, ",", "");
  // Multiple-choice letters: "(B)" -> "B".
  static const std::regex choice(R"(^\(([A-Z])\)$)");
  std::smatch m;
  if (std::regex_match(s, m, choice)) s = m[1];
  if (auto r = parse_rational(s)) return canonical(*r);
  return s;
}

bool math_answers_match(const std::string& predicted, const std::string& reference) {
  const std::string a = normalize_math_answer(predicted), b = normalize_math_answer(reference);
  if (predicted.size() > kMaxNormalizedAnswer || reference.size() > kMaxNormalizedAnswer) return !a.empty() && a == b;
  return equivalent(a, b);
}

}  // namespace loft
