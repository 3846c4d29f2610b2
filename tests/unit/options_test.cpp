// Options view: typed reads, int-as-float, and programming errors for undeclared or mistyped reads.
#include <gtest/gtest.h>

#include "loft/options.h"

namespace loft {
namespace {

TEST(Options, TypedReads) {
  Options o("peft", {{"r", int64_t{16}}, {"alpha", 32.0}, {"rslora", true}, {"init", std::string("kaiming")},
                     {"targets", std::vector<std::string>{"q_proj", "v_proj"}}});
  EXPECT_EQ(o.integer("r"), 16);
  EXPECT_DOUBLE_EQ(o.real("alpha"), 32.0);
  EXPECT_DOUBLE_EQ(o.real("r"), 16.0);  // an int reads as a float
  EXPECT_TRUE(o.boolean("rslora"));
  EXPECT_EQ(o.string("init"), "kaiming");
  EXPECT_EQ(o.strings("targets").size(), 2u);
}

TEST(Options, UndeclaredOrMistypedReadThrowsNamingTheOption) {
  Options o("peft", {{"r", int64_t{16}}});
  try {
    o.integer("rank");
    FAIL() << "expected std::logic_error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("peft.rank"), std::string::npos) << e.what();
  }
  EXPECT_THROW(o.string("r"), std::logic_error);
}

TEST(Options, FormatsValuesAsTomlWould) {
  EXPECT_EQ(format_option_value(OptionValue(true)), "true");
  EXPECT_EQ(format_option_value(OptionValue(int64_t{-3})), "-3");
  EXPECT_EQ(format_option_value(OptionValue(std::string("a\"b"))), "\"a\\\"b\"");
  EXPECT_EQ(format_option_value(OptionValue(std::vector<std::string>{"x", "y"})), "[\"x\", \"y\"]");
}

}  // namespace
}  // namespace loft
