// Recipes: parsing with positions, overrides, validation against framework and plugin schemas, resolution.
#include <gtest/gtest.h>

#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"

namespace loft {
namespace {

class RecipeTest : public ::testing::Test {
 protected:
  void SetUp() override { registry_.discover({LOFT_PLUGIN_DIR}); }

  std::vector<Diagnostic> check(const std::string& text, ResolvedRecipe* out = nullptr,
                                const std::vector<std::string>& overrides = {}) {
    auto recipe = parse_recipe_text(text, "/tmp/recipes/t.toml");
    EXPECT_TRUE(recipe.ok()) << recipe.status().message();
    for (size_t i = 0; i < overrides.size(); ++i) {
      auto st = apply_override(recipe.value(), overrides[i], static_cast<int>(i + 1));
      EXPECT_TRUE(st.ok()) << st.message();
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

constexpr const char* kMinimal = R"([model]
path = "../models/demo"

[peft]
type = "full"

[dataset]
type = "synthetic"
limit = 50
)";

TEST_F(RecipeTest, OptimizerSectionPicksAPluginAndChecksItsKeys) {
  ResolvedRecipe r;
  auto ok = check(std::string(kMinimal) + "\n[optimizer]\ntype = \"adamw_cpu\"\n", &r);
  ASSERT_TRUE(ok.empty()) << joined(ok);
  EXPECT_EQ(r.plugin_types.at("optimizer"), "adamw_cpu");

  auto typo = check(std::string(kMinimal) + "\n[optimizer]\ntype = \"adamv\"\n");
  ASSERT_EQ(typo.size(), 1u) << joined(typo);
  EXPECT_EQ(typo[0].str(), "/tmp/recipes/t.toml:12:8: error: unknown optimizer plugin 'adamv' (did you mean "
                           "'adamw'?); available: adamw, adamw_cpu");

  auto key = check(std::string(kMinimal) + "\n[optimizer]\nbeta1 = 0.8\n");
  ASSERT_EQ(key.size(), 1u) << joined(key);
  EXPECT_EQ(key[0].str(), "/tmp/recipes/t.toml:12:9: error: unknown key 'beta1' in [optimizer] (plugin optimizer/adamw)");
}

TEST_F(RecipeTest, AnOptionsRequirementOfAnotherSectionIsCheckedAtTheOption) {
  // offload/zero3's optimizer = true declares (plugin.toml `requires`) that it needs optimizer.type = "adamw_cpu".
  const std::string zero3 = std::string(kMinimal) + "\n[offload]\ntype = \"zero3\"\noptimizer = true\n";
  auto refused = check(zero3);
  ASSERT_EQ(refused.size(), 1u) << joined(refused);
  EXPECT_EQ(refused[0].str(),
            "/tmp/recipes/t.toml:13:13: error: offload.optimizer = true (plugin offload/zero3) needs optimizer.type = "
            "\"adamw_cpu\", got \"adamw\"; set optimizer.type = \"adamw_cpu\" or offload.optimizer = false");
  auto named = check(zero3 + "\n[optimizer]\ntype = \"adamw\"\n");
  ASSERT_EQ(named.size(), 1u) << joined(named);
  auto from_override = check(std::string(kMinimal) + "\n[offload]\ntype = \"zero3\"\n", nullptr, {"offload.optimizer=true"});
  ASSERT_EQ(from_override.size(), 1u) << joined(from_override);
  EXPECT_NE(from_override[0].str().find("offload.optimizer=true"), std::string::npos) << from_override[0].str();
  EXPECT_TRUE(check(zero3 + "\n[optimizer]\ntype = \"adamw_cpu\"\n").empty());
  EXPECT_TRUE(check(zero3, nullptr, {"optimizer.type=adamw_cpu"}).empty());
  EXPECT_TRUE(check(std::string(kMinimal) + "\n[offload]\ntype = \"zero3\"\noptimizer = false\n").empty());
  // A requirement of an option left at its default (params = true) is reported at the section.
  auto cached = check(std::string(kMinimal) + "\n[offload]\ntype = \"zero3\"\n", nullptr, {"quantizer.cache_dir=qc"});
  ASSERT_EQ(cached.size(), 1u) << joined(cached);
  EXPECT_EQ(cached[0].str(), "/tmp/recipes/t.toml:11:1: error: offload.params = true (plugin offload/zero3) needs "
                             "quantizer.cache_dir = \"\", got \"/tmp/recipes/qc\"; set quantizer.cache_dir = \"\" or "
                             "offload.params = false");
  EXPECT_TRUE(check(std::string(kMinimal) + "\n[offload]\ntype = \"zero3\"\nparams = false\n", nullptr,
                    {"quantizer.cache_dir=qc"}).empty());
}

TEST_F(RecipeTest, MinimalRecipeResolvesDefaultsAndPaths) {
  ResolvedRecipe r;
  auto d = check(kMinimal, &r);
  ASSERT_TRUE(d.empty()) << joined(d);
  EXPECT_EQ(r.plugin_types.at("quantizer"), "none");
  EXPECT_EQ(r.plugin_types.at("offload"), "none");
  EXPECT_EQ(r.plugin_types.at("peft"), "full");
  EXPECT_EQ(r.plugin_types.at("optimizer"), "adamw");  // [optimizer] may be left out: today's AdamW
  EXPECT_EQ(r.sections.at("train").integer("batch_size"), 4);
  EXPECT_EQ(r.sections.at("model").string("dtype"), "bf16");
  EXPECT_EQ(r.sections.at("model").string("path"), "/tmp/models/demo");  // relative to the recipe's folder
  EXPECT_EQ(r.sections.at("dataset").integer("limit"), 50);
  EXPECT_EQ(r.sections.at("dataset").integer("max_level"), 5);  // the plugin manifest's default
  EXPECT_EQ(r.sections.at("dataset").integer("max_length"), 1024);  // a host key inside a plugin section
}

TEST_F(RecipeTest, ReportsMisspelledKeyWrongTypeAndUnknownPluginAtOnce) {
  auto d = check(R"([model]
path = "m"

[train]
lr = "fast"
bacth_size = 8

[quantizer]
type = "int9"

[peft]
type = "full"

[dataset]
type = "synthetic"
)");
  ASSERT_EQ(d.size(), 3u) << joined(d);
  std::string all = joined(d);
  EXPECT_NE(all.find("t.toml:5:6: error: train.lr must be a float, got a string \"fast\""), std::string::npos) << all;
  EXPECT_NE(all.find("t.toml:6:14: error: unknown key 'bacth_size' in [train] (did you mean 'batch_size'?)"),
            std::string::npos) << all;
  EXPECT_NE(all.find("t.toml:9:8: error: unknown quantizer plugin 'int9'"), std::string::npos) << all;
}

TEST_F(RecipeTest, PluginOptionsAreCheckedAgainstTheManifest) {
  auto d = check(R"([model]
path = "m"
[peft]
type = "full"
exclud = ["lm_head"]
[dataset]
type = "synthetic"
max_level = 9
types = ["Algebra", "Geometri"]
)");
  std::string all = joined(d);
  ASSERT_EQ(d.size(), 3u) << all;
  EXPECT_NE(all.find("unknown key 'exclud' in [peft] (plugin peft/full) (did you mean 'exclude'?)"), std::string::npos) << all;
  EXPECT_NE(all.find("dataset.max_level = 9 is out of range: must be <= 5"), std::string::npos) << all;
  EXPECT_NE(all.find("= \"Geometri\" is not one of"), std::string::npos) << all;
}

TEST_F(RecipeTest, MissingSectionsAndUnknownSections) {
  auto d = check("[model]\npath = \"m\"\n[trian]\nlr = 1.0\n");
  std::string all = joined(d);
  EXPECT_NE(all.find("unknown section [trian] (did you mean 'train'?)"), std::string::npos) << all;
  EXPECT_NE(all.find("[peft] needs `type`"), std::string::npos) << all;
  EXPECT_NE(all.find("[dataset] needs `type`"), std::string::npos) << all;
}

TEST_F(RecipeTest, OverridesReplaceAndAreValidatedWithTheirPosition) {
  ResolvedRecipe r;
  auto d = check(kMinimal, &r, {"train.lr=1e-3", "dataset.limit=7", "model.dtype=fp32"});
  ASSERT_TRUE(d.empty()) << joined(d);
  EXPECT_DOUBLE_EQ(r.sections.at("train").real("lr"), 1e-3);
  EXPECT_EQ(r.sections.at("dataset").integer("limit"), 7);
  EXPECT_EQ(r.sections.at("model").string("dtype"), "fp32");  // a bare word is a string

  auto bad = check(kMinimal, nullptr, {"train.max_stpes=5"});
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0].str().find("<command line override #1 'train.max_stpes=5'>"), std::string::npos) << bad[0].str();
  EXPECT_NE(bad[0].str().find("did you mean 'max_steps'?"), std::string::npos);

  Recipe raw;
  EXPECT_FALSE(apply_override(raw, "lr=1", 1).ok());
  EXPECT_FALSE(apply_override(raw, "train.lr", 1).ok());
}

TEST_F(RecipeTest, BudgetSizesAreChecked) {
  auto d = check(std::string(kMinimal) + "[budget]\ngpu_memory = \"15 GiB\"\nhost_memory = \"12 gigs\"\n");
  ASSERT_EQ(d.size(), 1u) << joined(d);
  EXPECT_NE(d[0].str().find("budget.host_memory"), std::string::npos);
  EXPECT_EQ(parse_byte_size("15GiB").value(), 15ull << 30);
  EXPECT_EQ(parse_byte_size("1.5GB").value(), 1500000000ull);
  EXPECT_FALSE(parse_byte_size("-1GiB").ok());
}

// NaN and infinities are refused wherever a number is read: framework keys, plugin options, overrides and budget
// sizes; each error names the key.
TEST_F(RecipeTest, NonFiniteNumbersAreRefusedWithTheirKey) {
  auto d = check(std::string(kMinimal) + "[train]\nlr = inf\nadam_eps = nan\nweight_decay = -inf\n");
  std::string all = joined(d);
  ASSERT_EQ(d.size(), 3u) << all;
  EXPECT_NE(all.find("t.toml:11:6: error: train.lr must be a finite number, got inf"), std::string::npos) << all;
  EXPECT_NE(all.find("t.toml:12:12: error: train.adam_eps must be a finite number, got nan"), std::string::npos) << all;
  EXPECT_NE(all.find("train.weight_decay must be a finite number, got -inf"), std::string::npos) << all;

  auto plugin = check(R"([model]
path = "m"
[peft]
type = "lora"
dropout = nan
alpha = inf
[dataset]
type = "synthetic"
)");
  all = joined(plugin);
  ASSERT_EQ(plugin.size(), 2u) << all;
  EXPECT_NE(all.find("peft.dropout must be a finite number, got nan"), std::string::npos) << all;
  EXPECT_NE(all.find("peft.alpha must be a finite number, got inf"), std::string::npos) << all;

  for (const char* o : {"train.lr=inf", "train.lr=+inf", "train.max_grad_norm=nan", "train.adam_beta1=-nan"}) {
    auto over = check(kMinimal, nullptr, {o});
    ASSERT_EQ(over.size(), 1u) << o << ": " << joined(over);
    EXPECT_NE(over[0].str().find("must be a finite number"), std::string::npos) << over[0].str();
  }

  auto budget = check(std::string(kMinimal) + "[budget]\ngpu_memory = \"inf GiB\"\nhost_memory = \"nan\"\n");
  all = joined(budget);
  ASSERT_EQ(budget.size(), 2u) << all;
  EXPECT_NE(all.find("budget.gpu_memory: 'inf GiB' is not a finite size"), std::string::npos) << all;
  EXPECT_NE(all.find("budget.host_memory: 'nan' is not a finite size"), std::string::npos) << all;
  EXPECT_FALSE(parse_byte_size("1e30TiB").ok());  // beyond uint64
}

TEST_F(RecipeTest, ResolvedRecipeRoundTripsThroughToml) {
  ResolvedRecipe r;
  ASSERT_TRUE(check(kMinimal, &r, {"train.lr=3e-4"}).empty());
  auto again = parse_recipe_text(r.to_toml(), "/tmp/recipes/resolved.toml");
  ASSERT_TRUE(again.ok()) << again.status().message();
  ResolvedRecipe r2;
  auto d = validate_recipe(again.value(), registry_, &r2);
  ASSERT_TRUE(d.empty()) << joined(d);
  EXPECT_EQ(r2.to_toml().substr(r2.to_toml().find('\n')), r.to_toml().substr(r.to_toml().find('\n')));
}

TEST_F(RecipeTest, SyntaxErrorsAndStructuralProblemsAreLocated) {
  auto syntax = parse_recipe_text("[train]\nlr = \n", "x.toml");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("x.toml:2"), std::string::npos) << syntax.status().message();

  auto d = check(std::string(kMinimal) + "[train]\nlr = [1, 2]\n[output]\n[output.extra]\nx = 1\n");
  std::string all = joined(d);
  EXPECT_NE(all.find("train.lr: expected a list of strings, but an item is an int"), std::string::npos) << all;
  EXPECT_NE(all.find("output.extra: expected a bool, number, string or list of strings, got a table"),
            std::string::npos) << all;
}

}  // namespace
}  // namespace loft
