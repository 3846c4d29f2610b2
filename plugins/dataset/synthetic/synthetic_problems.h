// Deterministic generation of MATH-shaped arithmetic word problems (no torch, testable alone).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loft::synthetic {

struct Problem {
  std::string problem;
  std::string solution;  // worked steps ending in \boxed{answer}
  std::string answer;    // what \boxed{} holds
  int level = 1;         // 1..5
  std::string type;      // MATH type name
};

// Problem number `index` of the stream `seed`: a pure function of its arguments (random access, thread-safe,
// identical across platforms: only splitmix64 arithmetic, no <random> distributions).
Problem make_problem(uint64_t seed, uint64_t index, int max_level, const std::vector<std::string>& types);

}  // namespace loft::synthetic
