// [eval] and [eval.dataset] in recipes: resolved only when written, validated like [dataset] (every error at once,
// located at its key), keys that would do nothing refused, round trip through a run folder's recipe.toml, the
// held-out warning, the files and plugins the held-out dataset names, and what --resume may change.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "loft/framework/files.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "loft/framework/run_folder.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

const std::string kRecipe = R"([model]
path = ")" LOFT_SOURCE_DIR R"(/models/demo"
init = "random"
[peft]
type = "full"
[dataset]
type = "synthetic"
limit = 16
)";

const std::string kEval = R"([eval]
every = 5
accuracy = true
limit = 4
[eval.dataset]
type = "synthetic"
limit = 8
seed = 7
)";

class EvalRecipe : public ::testing::Test {
 protected:
  void SetUp() override { registry_.discover({LOFT_PLUGIN_DIR}); }

  std::vector<Diagnostic> check(const std::string& text, const std::vector<std::string>& overrides = {},
                                ResolvedRecipe* out = nullptr) {
    auto recipe = parse_recipe_text(text, "r.toml");
    EXPECT_TRUE(recipe.ok()) << recipe.status().message();
    for (size_t i = 0; i < overrides.size(); ++i) {
      auto st = apply_override(recipe.value(), overrides[i], static_cast<int>(i + 1));
      EXPECT_TRUE(st.ok()) << overrides[i] << ": " << st.message();
    }
    return validate_recipe(recipe.value(), registry_, out);
  }
  static std::string joined(const std::vector<Diagnostic>& d) {
    std::string s;
    for (const auto& x : d) s += x.str() + "\n";
    return s;
  }

  PluginRegistry registry_;
};

TEST_F(EvalRecipe, ResolvedOnlyWhenWritten) {
  ResolvedRecipe plain;
  ASSERT_TRUE(check(kRecipe, {}, &plain).empty());
  EXPECT_EQ(plain.sections.count("eval"), 0u);
  EXPECT_EQ(plain.sections.count(kEvalDatasetSection), 0u);
  EXPECT_EQ(plain.to_toml().find("[eval"), std::string::npos) << "a recipe without [eval] keeps its recipe.toml";

  ResolvedRecipe r;
  auto d = check(kRecipe + kEval, {}, &r);
  ASSERT_TRUE(d.empty()) << joined(d);
  EXPECT_EQ(r.sections.at("eval").integer("every"), 5);
  EXPECT_TRUE(r.sections.at("eval").boolean("accuracy"));
  EXPECT_EQ(r.sections.at("eval").integer("limit"), 4);
  EXPECT_EQ(r.sections.at("eval").integer("max_new_tokens"), 512);
  EXPECT_EQ(r.plugin_types.at(kEvalDatasetSection), "synthetic");
  EXPECT_EQ(r.sections.at(kEvalDatasetSection).integer("seed"), 7);
  EXPECT_EQ(r.sections.at(kEvalDatasetSection).integer("limit"), 8);
  EXPECT_EQ(r.sections.at(kEvalDatasetSection).integer("max_level"), 5);  // the plugin's default
  EXPECT_EQ(r.sections.at("dataset").integer("limit"), 16) << "[dataset] is not touched by [eval.dataset]";
}

// The same held-out section written as a sub-table, inline, or from the command line.
TEST_F(EvalRecipe, SubTableInlineTableAndOverridesAreTheSame) {
  ResolvedRecipe sub, inline_table, overridden;
  ASSERT_TRUE(check(kRecipe + kEval, {}, &sub).empty());
  auto d = check(kRecipe + "[eval]\nevery = 5\naccuracy = true\nlimit = 4\n"
                           "dataset = { type = \"synthetic\", limit = 8, seed = 7 }\n", {}, &inline_table);
  ASSERT_TRUE(d.empty()) << joined(d);
  d = check(kRecipe, {"eval.every=5", "eval.accuracy=true", "eval.limit=4", "eval.dataset.type=synthetic",
                      "eval.dataset.limit=8", "eval.dataset.seed=7"}, &overridden);
  ASSERT_TRUE(d.empty()) << joined(d);
  auto body = [](const ResolvedRecipe& r) { return r.to_toml().substr(r.to_toml().find('\n')); };
  EXPECT_EQ(body(inline_table), body(sub));
  EXPECT_EQ(body(overridden), body(sub));
  // An override replaces a written key of the sub-table.
  ResolvedRecipe replaced;
  ASSERT_TRUE(check(kRecipe + kEval, {"eval.dataset.seed=9"}, &replaced).empty());
  EXPECT_EQ(replaced.sections.at(kEvalDatasetSection).integer("seed"), 9);
}

// What a run folder keeps (recipe.toml) validates back to the same recipe: --resume and merge read it.
TEST_F(EvalRecipe, RecipeTomlRoundTrips) {
  for (const std::string& eval : {kEval, std::string("[eval.dataset]\ntype = \"synthetic\"\nseed = 3\n"),
                                  std::string("[eval]\naccuracy = false\n[eval.dataset]\ntype = \"synthetic\"\n")}) {
    SCOPED_TRACE(eval);
    ResolvedRecipe r, again;
    ASSERT_TRUE(check(kRecipe + eval, {}, &r).empty());
    auto d = check(r.to_toml(), {}, &again);
    ASSERT_TRUE(d.empty()) << joined(d) << r.to_toml();
    EXPECT_EQ(again.to_toml().substr(again.to_toml().find('\n')), r.to_toml().substr(r.to_toml().find('\n')));
    EXPECT_NE(r.to_toml().find("[eval.dataset]\ntype = \"synthetic\"\n"), std::string::npos) << r.to_toml();
  }
}

// Every mistake at once, each at its key: unknown keys (with the near name), types, ranges, another plugin's
// option, a missing held-out dataset or type, and keys that would do nothing.
TEST_F(EvalRecipe, BadInputIsReportedAtItsKey) {
  const std::string text = kRecipe + R"([eval]
evry = 5
accuracy = "yes"
[eval.dataset]
type = "synthetic"
levels = ["Level 1"]
sed = 7
)";
  auto d = check(text, {"eval.limit=-1"});
  const std::string all = joined(d);
  EXPECT_NE(all.find("r.toml:10:8: error: unknown key 'evry' in [eval] (did you mean 'every'?)"), std::string::npos)
      << all;
  EXPECT_NE(all.find("r.toml:11:12: error: eval.accuracy must be a bool, got a string \"yes\""), std::string::npos)
      << all;
  EXPECT_NE(all.find("eval.limit = -1 is out of range: must be >= 0"), std::string::npos) << all;
  EXPECT_NE(all.find("r.toml:14:10: error: unknown key 'levels' in [eval.dataset] (plugin dataset/synthetic): `levels` "
                     "is an option of dataset plugin math, not of dataset/synthetic; set eval.dataset.type = \"math\""),
            std::string::npos) << all;
  EXPECT_NE(all.find("unknown key 'sed' in [eval.dataset] (plugin dataset/synthetic) (did you mean 'seed'?)"),
            std::string::npos) << all;
  EXPECT_EQ(d.size(), 5u) << all;

  // [eval] alone: the held-out data is missing.
  d = check(kRecipe + "[eval]\nevery = 2\n");
  ASSERT_EQ(d.size(), 1u) << joined(d);
  EXPECT_NE(d[0].str().find("r.toml:9:1: error: [eval] needs an [eval.dataset] section"), std::string::npos)
      << joined(d);
  // [eval.dataset] without a type, and an unknown plugin.
  d = check(kRecipe + "[eval.dataset]\nseed = 7\n");
  EXPECT_NE(joined(d).find("[eval.dataset] needs `type` naming a dataset plugin (available: jsonl, math, synthetic)"),
            std::string::npos) << joined(d);
  d = check(kRecipe, {"eval.dataset.type=synthetc"});
  EXPECT_NE(joined(d).find("unknown dataset plugin 'synthetc' (did you mean 'synthetic'?)"), std::string::npos)
      << joined(d);
  // limit and max_new_tokens act only with accuracy = true: written without it, they are refused, and left out of
  // the resolved recipe when not written.
  d = check(kRecipe + "[eval]\nlimit = 4\nmax_new_tokens = 64\n[eval.dataset]\ntype = \"synthetic\"\n");
  ASSERT_EQ(d.size(), 2u) << joined(d);
  EXPECT_NE(joined(d).find("r.toml:10:9: error: eval.limit is used only with eval.accuracy = true"), std::string::npos)
      << joined(d);
  EXPECT_NE(joined(d).find("eval.max_new_tokens is used only with eval.accuracy = true"), std::string::npos)
      << joined(d);
  ResolvedRecipe loss_only;
  ASSERT_TRUE(check(kRecipe + "[eval.dataset]\ntype = \"synthetic\"\n", {}, &loss_only).empty());
  EXPECT_FALSE(loss_only.sections.at("eval").has("limit"));
  EXPECT_FALSE(loss_only.sections.at("eval").has("max_new_tokens"));
  // A sub-table that is no section, and a deeper override, are named.
  d = check(kRecipe + kEval + "[eval.extra]\nx = 1\n");
  EXPECT_NE(joined(d).find("eval.extra: expected a bool, number, string or list of strings, got a table"),
            std::string::npos) << joined(d);
  // The same section as a quoted dotted name and as a sub-table: both are named, neither is dropped silently.
  d = check(kRecipe + "[\"eval.dataset\"]\ntype = \"synthetic\"\n[eval.dataset]\ntype = \"jsonl\"\n");
  EXPECT_NE(joined(d).find("section [eval.dataset] is written twice"), std::string::npos) << joined(d);
  auto recipe = parse_recipe_text(kRecipe, "r.toml");
  ASSERT_TRUE(recipe.ok());
  EXPECT_FALSE(apply_override(recipe.value(), "eval.extra.x=1", 1).ok());
  EXPECT_FALSE(apply_override(recipe.value(), "train..lr=1", 1).ok());
}

TEST_F(EvalRecipe, WarnsWhenTheHeldOutDatasetIsTheTrainingOne) {
  ResolvedRecipe same, other;
  ASSERT_TRUE(check(kRecipe + "[eval.dataset]\ntype = \"synthetic\"\nlimit = 16\n", {"dataset.max_length=256"}, &same)
                  .empty());
  EXPECT_NE(eval_not_held_out_warning(same).find("[eval.dataset] is the training [dataset] (dataset/synthetic"),
            std::string::npos);
  ASSERT_TRUE(check(kRecipe + kEval, {}, &other).empty());
  EXPECT_EQ(eval_not_held_out_warning(other), "");
  ResolvedRecipe plain;
  ASSERT_TRUE(check(kRecipe, {}, &plain).empty());
  EXPECT_EQ(eval_not_held_out_warning(plain), "");
}

// The held-out dataset's files are checked like [dataset]'s, at its key; its plugin is loaded as a dataset.
TEST_F(EvalRecipe, FilesAndPluginsOfTheHeldOutDatasetAreChecked) {
  auto recipe = parse_recipe_text(kRecipe + "[eval.dataset]\ntype = \"jsonl\"\npath = \"/nonexistent/test.jsonl\"\n",
                                  "r.toml");
  ASSERT_TRUE(recipe.ok());
  ResolvedRecipe r;
  ASSERT_TRUE(validate_recipe(recipe.value(), registry_, &r).empty());
  auto d = check_recipe_inputs(recipe.value(), r, registry_);
  ASSERT_EQ(d.size(), 1u) << joined(d);
  EXPECT_NE(d[0].str().find("r.toml:11:8: error: eval.dataset.path = \"/nonexistent/test.jsonl\" does not exist"),
            std::string::npos) << d[0].str();
}

TEST(EvalResume, ReportingKeysMayChangeTheHeldOutSetMayNot) {
  for (const char* key : {"eval.every", "eval.accuracy", "eval.limit", "eval.max_new_tokens"}) {
    EXPECT_TRUE(resume_may_change(key)) << key;
  }
  for (const char* key : {"eval.dataset.type", "eval.dataset.seed", "eval.dataset.limit", "eval.dataset.path"}) {
    EXPECT_FALSE(resume_may_change(key)) << key;
  }
}

}  // namespace
}  // namespace loft
