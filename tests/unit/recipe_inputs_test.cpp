// Validation beyond the schema: peft.targets against config.json, the files a recipe names, plugins whose manifest
// is refused or defined twice, hints for options of other plugins, and `describe` of every framework section.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "loft/framework/files.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

const std::string kDemo = LOFT_SOURCE_DIR "/models/demo";

class RecipeInputs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("loft_recipe_inputs_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(remove_tree(dir_).ok());
    ASSERT_TRUE(loft::fs::create_directories(dir_).ok());
  }
  // loft's own calls: libtorch's copies of some std::filesystem operations crash (files.h).
  void TearDown() override { EXPECT_TRUE(remove_tree(dir_).ok()); }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path file = dir_ / name;
    EXPECT_TRUE(loft::fs::create_directories(file.parent_path()).ok());
    std::ofstream(file) << text;
    return file;
  }
  // Validation of `text` (a recipe in dir_) with `overrides`, then the input checks when it is valid.
  std::vector<Diagnostic> check(PluginRegistry& registry, const std::string& text,
                                const std::vector<std::string>& overrides = {}, bool inputs = false) {
    auto recipe = parse_recipe_text(text, (dir_ / "r.toml").string());
    EXPECT_TRUE(recipe.ok()) << recipe.status().message();
    for (size_t i = 0; i < overrides.size(); ++i) {
      EXPECT_TRUE(apply_override(recipe.value(), overrides[i], static_cast<int>(i + 1)).ok()) << overrides[i];
    }
    ResolvedRecipe resolved;
    auto d = validate_recipe(recipe.value(), registry, &resolved);
    if (!d.empty() || !inputs) return d;
    RecipeInputChecks checks;
    checks.plugins = false;  // the loader's own tests load libraries
    return check_recipe_inputs(recipe.value(), resolved, registry, checks);
  }
  static std::string joined(const std::vector<Diagnostic>& d) {
    std::string s;
    for (const auto& x : d) s += x.str() + "\n";
    return s;
  }

  fs::path dir_;
};

// Lines 1-5: [model] path, init; [peft] type; then `peft_lines` (from line 6), then [dataset] type = "synthetic".
std::string recipe_with(const std::string& model_path, const std::string& peft = "full",
                        const std::string& peft_lines = "") {
  return "[model]\npath = \"" + model_path + "\"\ninit = \"random\"\n[peft]\ntype = \"" + peft + "\"\n" +
         peft_lines + "[dataset]\ntype = \"synthetic\"\n";
}

TEST_F(RecipeInputs, EveryPeftTargetThatNamesNoModuleIsAnErrorAtItsEntry) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  for (const char* peft : {"lora", "dora"}) {
    SCOPED_TRACE(peft);
    // Accepted: each spelling loft supports, for a module the demo model (4 layers) has.
    for (const char* good : {"q_proj", "self_attn.v_proj", "mlp.down_proj", "model.layers.3.mlp.gate_proj",
                             "re:.*\\\\.(q|v)_proj", "re:model\\\\.layers\\\\.0\\\\..*"}) {
      SCOPED_TRACE(good);
      auto d = check(registry, recipe_with(kDemo, peft, std::string("targets = [\"") + good + "\"]\n"));
      EXPECT_TRUE(d.empty()) << joined(d);
    }
    struct Bad {
      const char* target;
      const char* says;
    };
    for (const Bad& bad : {Bad{"no_such_module", "names no module of the model"},
                           Bad{"q_prj", "did you mean 'q_proj'?"},
                           Bad{"lm_head", "names lm_head, which loft does not adapt"},
                           Bad{"model.layers.4.mlp.up_proj", "names no module of the model"},
                           Bad{"self_attn.up_proj", "names no module of the model"},
                           Bad{"re:nothing", "matches no module of the model"},
                           Bad{"re:(", "is not a valid regex"}}) {
      SCOPED_TRACE(bad.target);
      // The bad entry second in the list: the diagnostic points at its own line.
      auto d = check(registry, recipe_with(kDemo, peft, std::string("targets = [\n  \"q_proj\",\n  \"") + bad.target +
                                                           "\",\n]\n"));
      ASSERT_EQ(d.size(), 1u) << joined(d);
      EXPECT_EQ(d[0].where.line, 8) << d[0].str();
      EXPECT_NE(d[0].message.find(std::string("peft.targets entry \"") + bad.target + "\""), std::string::npos)
          << d[0].message;
      EXPECT_NE(d[0].message.find(bad.says), std::string::npos) << d[0].message;
    }
    // peft.layers: an index past the last layer, and a target outside the selected layers.
    auto layers = check(registry, recipe_with(kDemo, peft, "layers = \"0-7\"\n"));
    ASSERT_EQ(layers.size(), 1u) << joined(layers);
    EXPECT_NE(layers[0].message.find("the model has 4 decoder layers (0-3)"), std::string::npos) << layers[0].message;
    auto outside =
        check(registry, recipe_with(kDemo, peft, "layers = \"1\"\ntargets = [\"model.layers.0.mlp.up_proj\"]\n"));
    ASSERT_EQ(outside.size(), 1u) << joined(outside);
    EXPECT_NE(outside[0].message.find("names no module in peft.layers = \"1\""), std::string::npos)
        << outside[0].message;
    // Without a readable config.json only the schema is checked (the input checks report model.path).
    EXPECT_TRUE(check(registry, recipe_with((dir_ / "none").string(), peft, "targets = [\"nope\"]\n")).empty());
  }
}

TEST_F(RecipeInputs, EveryMissingInputIsNamedByItsKey) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  write("no_config/tokenizer.json", "{}");
  write("bad_config/config.json", "{\"model_type\": \"qwen2\"}");
  write("a_file", "x");
  std::ifstream demo_config(kDemo + "/config.json");
  write("no_tokenizer/config.json", std::string(std::istreambuf_iterator<char>(demo_config), {}));
  struct Case {
    std::string model_path;
    std::vector<std::string> overrides;
    std::string says;
  };
  const std::vector<Case> cases = {
      {(dir_ / "missing").string(), {}, "model.path = \"" + (dir_ / "missing").string() + "\" does not exist"},
      {(dir_ / "a_file").string(), {}, "is not a folder"},
      {(dir_ / "no_config").string(), {}, "has no config.json"},
      {(dir_ / "bad_config").string(), {}, "has an unusable config.json"},
      {(dir_ / "no_tokenizer").string(), {}, "has no tokenizer.json"},
      {kDemo, {"model.init=pretrained"}, "has no model.safetensors or model.safetensors.index.json"},
      {kDemo, {"dataset.type=jsonl", "dataset.path=nope.jsonl"}, "dataset.path = \"" + (dir_ / "nope.jsonl").string() +
                                                                  "\" does not exist"},
      {kDemo, {"dataset.type=math", "dataset.path=/no/math.jsonl"}, "dataset.path = \"/no/math.jsonl\" does not exist"},
      {kDemo, {"peft.adapter_path=no_adapter"}, "peft.adapter_path = \"" + (dir_ / "no_adapter").string() +
                                                 "\" does not exist"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.says);
    auto d = check(registry, recipe_with(c.model_path), c.overrides, /*inputs=*/true);
    ASSERT_EQ(d.size(), 1u) << joined(d);
    EXPECT_NE(d[0].message.find(c.says), std::string::npos) << d[0].str();
    EXPECT_FALSE(d[0].where.file.empty()) << d[0].str();
  }
  // The demo folder itself passes, and a `*_dir` key names a folder loft creates (not checked).
  EXPECT_TRUE(check(registry, recipe_with(kDemo), {"quantizer.cache_dir=later"}, true).empty());
}

TEST_F(RecipeInputs, APluginDefinedTwiceOrWithARefusedManifestIsAnErrorWhereTheRecipeNamesIt) {
  // A second dataset/synthetic (shadowing the built-in) and a quantizer whose library escapes its folder.
  write("extra/shadow/plugin.toml", "name = \"synthetic\"\nkind = \"dataset\"\nversion = \"9\"\nsdk_abi = 2\n"
                                    "library = \"libshadow.so\"\n");
  write("extra/escape/plugin.toml", "name = \"escape\"\nkind = \"quantizer\"\nversion = \"1\"\nsdk_abi = 2\n"
                                    "library = \"../../libloft_quantizer_none.so\"\n");
  PluginRegistry registry;
  registry.discover({dir_ / "extra", LOFT_PLUGIN_DIR});
  auto shadowed = check(registry, recipe_with(kDemo));
  ASSERT_EQ(shadowed.size(), 1u) << joined(shadowed);
  EXPECT_NE(shadowed[0].message.find("plugin dataset/synthetic is defined by more than one manifest"),
            std::string::npos) << shadowed[0].message;
  EXPECT_NE(shadowed[0].message.find((dir_ / "extra" / "shadow" / "plugin.toml").string()), std::string::npos);
  EXPECT_EQ(shadowed[0].where.line, 7);  // dataset.type

  auto escaping = check(registry, recipe_with(kDemo), {"dataset.type=jsonl", "dataset.path=x", "quantizer.type=escape"});
  ASSERT_EQ(escaping.size(), 1u) << joined(escaping);
  EXPECT_NE(escaping[0].message.find("plugin quantizer/escape cannot be used"), std::string::npos)
      << escaping[0].message;
  EXPECT_NE(escaping[0].message.find("escape/plugin.toml"), std::string::npos) << escaping[0].message;
  EXPECT_FALSE(registry.load("quantizer", "escape").ok());
}

TEST_F(RecipeInputs, AnOptionOfAnotherPluginOfTheSameKindIsNamedAsSuch) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  struct Case {
    std::string type, key, says;
  };
  for (const Case& c : {Case{"synthetic", "size", "dataset/synthetic calls it `limit` now; write dataset.limit"},
                        Case{"jsonl", "size", "did you mean 'limit'? `size` is the former name of `limit` in "
                                              "dataset/synthetic"},
                        Case{"synthetic", "path", "`path` is an option of dataset plugin jsonl, math, not of "
                                                  "dataset/synthetic; set dataset.type = \"jsonl\""},
                        Case{"synthetic", "levels", "`levels` is an option of dataset plugin math"},
                        Case{"math", "max_level", "`max_level` is an option of dataset plugin synthetic"},
                        Case{"jsonl", "levls", "did you mean 'levels'? an option of dataset plugin math"},
                        Case{"synthetic", "limt", "(did you mean 'limit'?)"}}) {
    SCOPED_TRACE(c.type + "." + c.key);
    auto d = check(registry, recipe_with(kDemo), {"dataset.type=" + c.type, "dataset.path=x", "dataset." + c.key + "=1"});
    std::string all = joined(d);
    ASSERT_NE(all.find("unknown key '" + c.key + "' in [dataset] (plugin dataset/" + c.type + ")"), std::string::npos)
        << all;
    EXPECT_NE(all.find(c.says), std::string::npos) << all;
  }
  // The same for [peft]: dora's and lora's options are not full's.
  auto d = check(registry, recipe_with(kDemo), {"peft.r=4"});
  EXPECT_NE(joined(d).find("`r` is an option of peft plugin dora, lora, not of peft/full"), std::string::npos)
      << joined(d);
}

TEST(RecipeDescribe, EverySchemaKeyIsPrintedWithTypeDefaultAndHelp) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  for (const auto& [section, schema] : framework_schema()) {
    SCOPED_TRACE(section);
    auto text = describe_section(section, registry);
    ASSERT_TRUE(text.ok()) << text.status().message();
    for (const auto& spec : schema) {
      SCOPED_TRACE(spec.name);
      ASSERT_FALSE(spec.doc.empty()) << "no help string in recipe_schema.cpp";
      const std::string entry = describe_option(spec);
      EXPECT_NE(text.value().find(entry), std::string::npos) << text.value();
      EXPECT_NE(entry.find(std::string(" ") + option_type_name(spec.type) + " "), std::string::npos) << entry;
      EXPECT_NE(entry.find(spec.default_value ? " default " + format_option_value(*spec.default_value) : " required"),
                std::string::npos) << entry;
      EXPECT_NE(entry.find(spec.doc), std::string::npos) << entry;
    }
  }
  EXPECT_NE(describe_section("train", registry).value().find("save_every"), std::string::npos);
  auto unknown = describe_section("trian", registry);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("did you mean 'train'?"), std::string::npos) << unknown.status().message();
}

}  // namespace
}  // namespace loft
