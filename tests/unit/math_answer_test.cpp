// MATH answer extraction and equivalence on hand-written cases, and the table in math_answer_cases.tsv.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "loft/framework/math_answer.h"

namespace loft {
namespace {

TEST(MathAnswer, ExtractsTheLastBoxedWithNestedBraces) {
  EXPECT_EQ(extract_boxed_answer("so $\\boxed{\\frac{1}{2}}$.").value_or("?"), "\\frac{1}{2}");
  EXPECT_EQ(extract_boxed_answer("\\boxed{1} then \\boxed{\\{a, b\\}}").value_or("?"), "\\{a, b\\}");
  EXPECT_EQ(extract_boxed_answer("answer: \\fbox{42}").value_or("?"), "42");
  EXPECT_EQ(extract_boxed_answer("$\\boxed 7$").value_or("?"), "7");
  EXPECT_EQ(extract_boxed_answer("$\\boxed {5}$").value_or("?"), "5");  // issue 10 item 17: was "{5}"
  EXPECT_EQ(extract_boxed_answer("\\boxed{\\boxed{5}}").value_or("?"), "5");
  EXPECT_EQ(extract_boxed_answer("\\boxed{}").value_or("?"), "");
  EXPECT_EQ(extract_boxed_answer("\\boxed{1} and \\boxedfoo{2}").value_or("?"), "1");  // not the \\boxed command
  EXPECT_FALSE(extract_boxed_answer("\\boxed").has_value());
  EXPECT_FALSE(extract_boxed_answer("no box here").has_value());
  EXPECT_FALSE(extract_boxed_answer("\\boxed{unbalanced").has_value());
}

TEST(MathAnswer, EquivalentSpellingsMatch) {
  EXPECT_TRUE(math_answers_match("\\dfrac{1}{2}", "\\frac{1}{2}"));
  EXPECT_TRUE(math_answers_match("\\frac12", "\\frac{1}{2}"));
  EXPECT_TRUE(math_answers_match("0.5", "\\frac{1}{2}"));
  EXPECT_TRUE(math_answers_match(".5", "\\frac{1}{2}"));
  EXPECT_TRUE(math_answers_match("1/2", "\\frac{1}{2}"));
  EXPECT_TRUE(math_answers_match("0.75", "\\frac34"));
  EXPECT_TRUE(math_answers_match("-\\frac{3}{4}", "-0.75"));
  EXPECT_TRUE(math_answers_match("5\\text{ cm}", "5"));
  EXPECT_TRUE(math_answers_match("\\text{(B)}", "(B)"));
  EXPECT_TRUE(math_answers_match("x = 3", "3"));
  EXPECT_TRUE(math_answers_match("1,000", "1000"));
  EXPECT_TRUE(math_answers_match("10.0", "10"));
  EXPECT_TRUE(math_answers_match("90^\\circ", "90"));
  EXPECT_TRUE(math_answers_match("\\$18.90", "18.90"));
  EXPECT_TRUE(math_answers_match("2 \\sqrt3", "2\\sqrt{3}"));
  EXPECT_TRUE(math_answers_match("\\left( 1, 2 \\right)", "(1,2)"));
  EXPECT_TRUE(math_answers_match("50\\%", "50"));
}

TEST(MathAnswer, DifferentAnswersDoNotMatch) {
  EXPECT_FALSE(math_answers_match("\\frac{1}{3}", "\\frac{1}{2}"));
  EXPECT_FALSE(math_answers_match("0.33", "\\frac{1}{3}"));
  EXPECT_FALSE(math_answers_match("2\\sqrt{3}", "3\\sqrt{2}"));
  EXPECT_FALSE(math_answers_match("(1,2)", "(2,1)"));
  EXPECT_FALSE(math_answers_match("", "0"));
  EXPECT_FALSE(math_answers_match("12", "1,2"));
}

TEST(MathAnswer, NumbersAreExact) {
  EXPECT_EQ(normalize_math_answer("0.5"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_math_answer("-0.75"), "-\\frac{3}{4}");
  EXPECT_EQ(normalize_math_answer("1,000"), "1000");
  EXPECT_EQ(normalize_math_answer("5 \\text{ cm}"), "5");
  EXPECT_FALSE(math_answers_match("1000000000", "1000000001"));
  EXPECT_FALSE(math_answers_match("0.3333333333", "1/3"));
}

// A degenerate generation can box a huge answer: grading must neither crash (std::regex recursion) nor crawl.
TEST(MathAnswer, LongAnswersAreComparedAsWritten) {
  const std::string digits(200000, '7');
  const std::string generation = "so \\boxed{" + digits + " \\text{ cm}}";
  ASSERT_EQ(extract_boxed_answer(generation).value_or("?"), digits + " \\text{ cm}");
  EXPECT_TRUE(math_answers_match(digits, digits));
  EXPECT_FALSE(math_answers_match(digits, digits + "7"));
  EXPECT_FALSE(math_answers_match(*extract_boxed_answer(generation), digits));  // no unit stripping past the limit
  std::string list;
  for (int i = 0; i < 50000; ++i) list += "1, ";
  EXPECT_TRUE(math_answers_match(list, list));
}

struct Case {
  int line = 0;
  bool right = false;
  std::string prediction, reference, what;
};

std::vector<Case> read_cases() {
  std::ifstream in(std::string(LOFT_SOURCE_DIR) + "/tests/unit/math_answer_cases.tsv");
  std::vector<Case> cases;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string f; std::getline(ss, f, '\t');) fields.push_back(f);
    if (fields.size() != 4 || (fields[0] != "right" && fields[0] != "wrong")) {
      ADD_FAILURE() << "math_answer_cases.tsv:" << n << ": want verdict<TAB>prediction<TAB>reference<TAB>what";
      continue;
    }
    cases.push_back({n, fields[0] == "right", fields[1], fields[2], fields[3]});
  }
  return cases;
}

// Each row graded as `loft eval` grades: a prediction with a box is a generation whose last boxed answer counts.
TEST(MathAnswer, CaseTable) {
  const auto cases = read_cases();
  ASSERT_GE(cases.size(), 80u);
  int right = 0, wrong = 0;
  for (const auto& c : cases) {
    std::optional<std::string> predicted = c.prediction;
    if (c.prediction.find("\\boxed") != std::string::npos || c.prediction.find("\\fbox") != std::string::npos) {
      predicted = extract_boxed_answer(c.prediction);
    }
    const bool match = predicted && math_answers_match(*predicted, c.reference);
    EXPECT_EQ(match, c.right) << "math_answer_cases.tsv:" << c.line << " (" << c.what << "): \"" << c.prediction
                              << "\" vs \"" << c.reference << "\" normalised to \""
                              << normalize_math_answer(predicted.value_or("")) << "\" and \""
                              << normalize_math_answer(c.reference) << "\"";
    (c.right ? right : wrong) += 1;
  }
  EXPECT_GE(right, 30);
  EXPECT_GE(wrong, 30);
}

}  // namespace
}  // namespace loft
