// dataset/synthetic's generator: deterministic, MATH-shaped, and its boxed answers are right.
#include <gtest/gtest.h>

#include <regex>

#include "synthetic_problems.h"

namespace loft::synthetic {
namespace {

const std::vector<std::string> kTypes = {"Prealgebra", "Algebra", "Number Theory", "Counting & Probability"};

std::string boxed(const std::string& solution) {
  auto start = solution.rfind("\\boxed{");
  EXPECT_NE(start, std::string::npos) << solution;
  start += 7;
  return solution.substr(start, solution.find('}', start) - start);
}

TEST(SyntheticProblems, DeterministicPerSeedAndIndex) {
  for (uint64_t i = 0; i < 50; ++i) {
    auto a = make_problem(7, i, 5, kTypes), b = make_problem(7, i, 5, kTypes);
    EXPECT_EQ(a.problem, b.problem);
    EXPECT_EQ(a.solution, b.solution);
  }
  EXPECT_NE(make_problem(7, 0, 5, kTypes).problem, make_problem(8, 0, 5, kTypes).problem);
}

TEST(SyntheticProblems, ShapeLevelsTypesAndBoxedAnswer) {
  std::map<std::string, int> seen_types;
  for (uint64_t i = 0; i < 400; ++i) {
    auto p = make_problem(42, i, 3, kTypes);
    EXPECT_GE(p.level, 1);
    EXPECT_LE(p.level, 3);
    EXPECT_EQ(boxed(p.solution), p.answer);
    EXPECT_FALSE(p.problem.empty());
    ++seen_types[p.type];
  }
  EXPECT_EQ(seen_types.size(), kTypes.size());
}

TEST(SyntheticProblems, AnswersAreCorrect) {
  // Re-derive each family's answer from the numbers in its problem statement.
  std::regex algebra(R"(\$(\d+)x ([+-]) (\d+) = (-?\d+)\$)"), remainder(R"(\$(\d+)\$ is divided by \$(\d+)\$)"),
      committee(R"(committee of (\d+) people be chosen from a group of (\d+))");
  int checked = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    auto p = make_problem(3, i, 5, kTypes);
    std::smatch m;
    if (std::regex_search(p.problem, m, algebra)) {
      long a = std::stol(m[1]), b = std::stol(m[3]) * (m[2] == "-" ? -1 : 1), c = std::stol(m[4]);
      EXPECT_EQ(a * std::stol(p.answer) + b, c) << p.problem;
      ++checked;
    } else if (std::regex_search(p.problem, m, remainder)) {
      EXPECT_EQ(std::stol(m[1]) % std::stol(m[2]), std::stol(p.answer)) << p.problem;
      ++checked;
    } else if (std::regex_search(p.problem, m, committee)) {
      long k = std::stol(m[1]), n = std::stol(m[2]), c = 1;
      for (long j = 1; j <= k; ++j) c = c * (n - k + j) / j;
      EXPECT_EQ(c, std::stol(p.answer)) << p.problem;
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST(SyntheticProblems, RejectsUnknownOrEmptyTypes) {
  EXPECT_THROW(make_problem(1, 0, 5, {}), std::invalid_argument);
  EXPECT_THROW(make_problem(1, 0, 5, {"Geometry"}), std::invalid_argument);
}

}  // namespace
}  // namespace loft::synthetic
