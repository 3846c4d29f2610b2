// MATH answer extraction and equivalence on hand-written cases.
#include <gtest/gtest.h>

#include "loft/framework/math_answer.h"

namespace loft {
namespace {

TEST(MathAnswer, ExtractsTheLastBoxedWithNestedBraces) {
  EXPECT_EQ(extract_boxed_answer("so $\\boxed{\\frac{1}{2}}$.").value_or("?"), "\\frac{1}{2}");
  EXPECT_EQ(extract_boxed_answer("\\boxed{1} then \\boxed{\\{a, b\\}}").value_or("?"), "\\{a, b\\}");
  EXPECT_EQ(extract_boxed_answer("answer: \\fbox{42}").value_or("?"), "42");
  EXPECT_EQ(extract_boxed_answer("$\\boxed 7$").value_or("?"), "7");
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

}  // namespace
}  // namespace loft
