// Did-you-mean suggestions: typos get a suggestion, unrelated words do not.
#include <gtest/gtest.h>

#include "recipe/suggest.h"

namespace loft {
namespace {

TEST(Suggest, FindsTyposIncludingTranspositions) {
  std::vector<std::string> keys = {"alpha", "r", "dropout", "targets"};
  EXPECT_EQ(closest_match("alhpa", keys).value_or(""), "alpha");
  EXPECT_EQ(closest_match("dropuot", keys).value_or(""), "dropout");
  EXPECT_EQ(closest_match("target", keys).value_or(""), "targets");
  EXPECT_FALSE(closest_match("learning_rate", keys).has_value());
  EXPECT_EQ(did_you_mean("int9", {"none", "int8", "nf4"}), " (did you mean 'int8'?)");
  EXPECT_EQ(did_you_mean("zzzz", {"none"}), "");
}

}  // namespace
}  // namespace loft
