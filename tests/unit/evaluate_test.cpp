// Grading generations against MATH samples and the per-level, per-type summary, on hand-written cases.
#include <gtest/gtest.h>

#include "loft/framework/evaluate.h"

namespace loft {
namespace {

Sample sample(const std::string& level, const std::string& type, const std::string& solution,
              const std::string& answer = "") {
  Sample s;
  s.messages = {{"user", "q"}, {"assistant", solution}};
  s.fields = {{"level", level}, {"type", type}};
  if (!answer.empty()) s.fields["answer"] = answer;
  return s;
}

TEST(Evaluate, GradesTheLastBoxedAnswerAgainstTheReference) {
  auto half = sample("Level 2", "Algebra", "so $\\boxed{\\frac{1}{2}}$");
  EXPECT_TRUE(grade_generation("thinking... the answer is $\\boxed{0.5}$", half).correct);
  EXPECT_TRUE(grade_generation("\\boxed{3} no wait \\boxed{\\dfrac12}", half).correct);
  EXPECT_FALSE(grade_generation("\\boxed{\\frac{1}{3}}", half).correct);
  auto no_box = grade_generation("I don't know", half);
  EXPECT_FALSE(no_box.correct);
  EXPECT_FALSE(no_box.predicted.has_value());
  // fields["answer"] wins over the solution's box (MATH-500 records carry one).
  auto explicit_answer = sample("Level 1", "Prealgebra", "\\boxed{wrong}", "10");
  EXPECT_TRUE(grade_generation("\\boxed{10.0}", explicit_answer).correct);
  // No reference at all: never correct.
  EXPECT_FALSE(grade_generation("\\boxed{1}", sample("Level 1", "Algebra", "no box")).correct);
}

TEST(Evaluate, SummaryCountsByLevelAndType) {
  std::vector<EvalItem> items(4);
  items[0] = {"Level 1", "Algebra", "1", std::string("1"), true};
  items[1] = {"Level 1", "Geometry", "2", std::string("3"), false};
  items[2] = {"Level 2", "Algebra", "4", std::string("4"), true};
  items[3] = {"Level 2", "Algebra", "5", std::nullopt, false};
  auto s = summarize(items);
  EXPECT_EQ(s.total, 4);
  EXPECT_EQ(s.correct, 2);
  EXPECT_DOUBLE_EQ(s.accuracy(), 0.5);
  EXPECT_EQ(s.by_level["Level 1"], std::make_pair(int64_t{1}, int64_t{2}));
  EXPECT_EQ(s.by_type["Algebra"], std::make_pair(int64_t{2}, int64_t{3}));
  EXPECT_NE(s.table().find("accuracy 2/4 = 50.0%"), std::string::npos) << s.table();
  EXPECT_NE(s.to_json().find("\"accuracy\": 0.5"), std::string::npos) << s.to_json();
}

}  // namespace
}  // namespace loft
