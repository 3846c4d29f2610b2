// Four families of MATH-style problems whose answers are computed, not templated.
#include "synthetic_problems.h"

#include <fmt/format.h>

#include <numeric>
#include <stdexcept>

namespace loft::synthetic {

namespace {

// splitmix64: a portable, well-mixed stream; each problem gets its own state from (seed, index).
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  template <typename T>
  const T& pick(const std::vector<T>& v) { return v[next() % v.size()]; }
};

const std::vector<std::string> kNames = {"Ana", "Ben", "Chloe", "Dmitri", "Esi", "Farid", "Grace", "Hiro", "Ines", "Jonah"};
const std::vector<std::string> kItems = {"apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells"};

int64_t scale(int level) { return level <= 1 ? 20 : level == 2 ? 100 : level == 3 ? 500 : level == 4 ? 2000 : 10000; }

Problem prealgebra(Rng& r, int level) {
  const std::string& who = r.pick(kNames);
  const std::string& item = r.pick(kItems);
  int64_t start = r.range(level, scale(level)), bought = r.range(1, scale(level)), groups = r.range(2, 3 + level);
  int64_t given = r.range(0, start);
  int64_t after = start - given + bought;
  int64_t total = after * groups;
  Problem p;
  p.problem = fmt::format(
      "{} has {} {}. {} gives away {} of them and then buys {} more. A friend then multiplies {}'s collection, "
      "giving {} {} times as many {} as before. How many {} does {} have at the end?",
      who, start, item, who, given, bought, who, who, groups, item, item, who);
  p.solution = fmt::format(
      "After giving some away, {} has ${} - {} = {}$ {}. After buying more, {} has ${} + {} = {}$. Getting {} times as "
      "many gives ${} \\times {} = {}$. The answer is $\\boxed{{{}}}$.",
      who, start, given, start - given, item, who, start - given, bought, after, groups, after, groups, total, total);
  p.answer = std::to_string(total);
  return p;
}

Problem algebra(Rng& r, int level) {
  int64_t a = r.range(2, 3 + 2 * level), x = r.range(-scale(level) / 10 - 1, scale(level) / 10 + 1), b = r.range(-scale(level), scale(level));
  int64_t c = a * x + b;
  Problem p;
  p.problem = fmt::format("Solve for $x$: ${}x {} {} = {}$.", a, b < 0 ? "-" : "+", b < 0 ? -b : b, c);
  p.solution = fmt::format("Subtract {} from both sides: ${}x = {} - ({}) = {}$. Divide by {}: $x = {}$. The answer is "
                           "$\\boxed{{{}}}$.",
                           b, a, c, b, c - b, a, x, x);
  p.answer = std::to_string(x);
  return p;
}

Problem number_theory(Rng& r, int level) {
  Problem p;
  if (r.next() % 2 == 0) {
    int64_t n = r.range(scale(level), scale(level) * 10), m = r.range(3, 7 + 2 * level);
    p.problem = fmt::format("What is the remainder when ${}$ is divided by ${}$?", n, m);
    p.solution = fmt::format("We have ${} = {} \\cdot {} + {}$, so the remainder is $\\boxed{{{}}}$.", n, m, n / m, n % m, n % m);
    p.answer = std::to_string(n % m);
  } else {
    int64_t g = r.range(2, 4 + 3 * level), a = g * r.range(2, 6 + level), b = g * r.range(2, 6 + level);
    int64_t d = std::gcd(a, b);
    p.problem = fmt::format("Find the greatest common divisor of ${}$ and ${}$.", a, b);
    p.solution = fmt::format("Both ${}$ and ${}$ are multiples of ${}$, and ${}/{} = {}$ and ${}/{} = {}$ share no common "
                             "factor. So $\\gcd({}, {}) = \\boxed{{{}}}$.",
                             a, b, d, a, d, a / d, b, d, b / d, a, b, d);
    p.answer = std::to_string(d);
  }
  return p;
}

Problem counting(Rng& r, int level) {
  int64_t n = r.range(4, 6 + 2 * level), k = r.range(2, std::min<int64_t>(n - 1, 2 + level));
  int64_t c = 1;
  for (int64_t i = 1; i <= k; ++i) c = c * (n - k + i) / i;
  Problem p;
  p.problem = fmt::format("In how many ways can a committee of {} people be chosen from a group of {} people?", k, n);
  p.solution = fmt::format("The order does not matter, so the count is $\\binom{{{}}}{{{}}} = {}$. The answer is "
                           "$\\boxed{{{}}}$.",
                           n, k, c, c);
  p.answer = std::to_string(c);
  return p;
}

}  // namespace

Problem make_problem(uint64_t seed, uint64_t index, int max_level, const std::vector<std::string>& types) {
  if (types.empty()) throw std::invalid_argument("dataset/synthetic: `types` is empty; name at least one type");
  Rng r{seed * 0x2545F4914F6CDD1Dull ^ (index + 0x632BE59BD9B4E019ull)};
  r.next();
  const int level = static_cast<int>(r.range(1, max_level));
  const std::string& type = types[r.next() % types.size()];
  Problem p;
  if (type == "Prealgebra") p = prealgebra(r, level);
  else if (type == "Algebra") p = algebra(r, level);
  else if (type == "Number Theory") p = number_theory(r, level);
  else if (type == "Counting & Probability") p = counting(r, level);
  else throw std::invalid_argument("dataset/synthetic: unknown type '" + type + "'");
  p.level = level;
  p.type = type;
  return p;
}

}  // namespace loft::synthetic
