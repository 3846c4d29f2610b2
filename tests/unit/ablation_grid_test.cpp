// Ablation grid files: expansion (cartesian axes x paired blocks x seeds, in file order), deterministic folder-safe
// names, values that `loft run` reads back unchanged, and every kind of malformed grid refused with its location.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>

#include "loft/framework/ablation_grid.h"
#include "loft/framework/files.h"

namespace loft {
namespace {

class AblationGridTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/loft_grid_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    std::ofstream(root_ / "base.toml") << "[peft]\ntype = \"lora\"\n";
  }
  void TearDown() override { EXPECT_TRUE(remove_tree(root_).ok()); }

  StatusOr<AblationGrid> parse(const std::string& body) {
    return parse_ablation_grid_text("base = \"base.toml\"\n" + body, root_ / "grid.toml");
  }
  // The error text of a grid that must be refused.
  std::string refused(const std::string& body) {
    auto grid = parse(body);
    EXPECT_FALSE(grid.ok()) << body;
    if (grid.ok()) return "";
    EXPECT_EQ(grid.status().code(), StatusCode::kInvalidArgument);
    return grid.status().message();
  }
  fs::path root_;
};

std::vector<std::string> names(const AblationGrid& g) {
  std::vector<std::string> out;
  for (const auto& v : g.variants) out.push_back(v.name);
  return out;
}

std::vector<std::string> keys(const std::vector<GridSetting>& settings) {
  std::vector<std::string> out;
  for (const auto& s : settings) out.push_back(s.key);
  return out;
}

TEST_F(AblationGridTest, CartesianAxesTimesPairedBlocksTimesSeedsInFileOrder) {
  auto grid = parse(R"(
name = "mine"
seeds = [1, 2]
[set]
train.max_steps = 20
[axes]
quantizer.type = ["none", "int8", "nf4"]
[paired]
method = [{name = "lora", peft.type = "lora", peft.r = 16}, {name = "dora", peft.type = "dora", peft.r = 8}]
)");
  ASSERT_TRUE(grid.ok()) << grid.status().message();
  const AblationGrid& g = grid.value();
  EXPECT_EQ(g.name, "mine");
  EXPECT_EQ(g.base, root_ / "base.toml");
  ASSERT_EQ(g.variants.size(), 3u * 2u * 2u);
  // The first axis varies slowest but for the seeds, which vary slowest of all.
  EXPECT_EQ(names(g), (std::vector<std::string>{
                          "quantizer-none,method-lora,seed-1", "quantizer-none,method-dora,seed-1",
                          "quantizer-int8,method-lora,seed-1", "quantizer-int8,method-dora,seed-1",
                          "quantizer-nf4,method-lora,seed-1", "quantizer-nf4,method-dora,seed-1",
                          "quantizer-none,method-lora,seed-2", "quantizer-none,method-dora,seed-2",
                          "quantizer-int8,method-lora,seed-2", "quantizer-int8,method-dora,seed-2",
                          "quantizer-nf4,method-lora,seed-2", "quantizer-nf4,method-dora,seed-2"}));
  for (size_t i = 0; i < g.variants.size(); ++i) EXPECT_EQ(g.variants[i].index, static_cast<int64_t>(i));
  const GridVariant& v = g.variants[3];
  EXPECT_EQ(v.seed, 1);
  EXPECT_EQ(keys(v.overrides), (std::vector<std::string>{"quantizer.type", "peft.type", "peft.r"}));
  // [set] first, then the axes, then the seed: the order `loft run` applies them in.
  EXPECT_EQ(keys(v.settings),
            (std::vector<std::string>{"train.max_steps", "quantizer.type", "peft.type", "peft.r", "train.seed"}));
  EXPECT_EQ(v.settings[1].assignment(), "quantizer.type=\"int8\"");
  EXPECT_EQ(v.settings[3].assignment(), "peft.r=8");
  EXPECT_EQ(v.settings[4].assignment(), "train.seed=1");
  // Every value is located at its line in the grid.
  EXPECT_EQ(v.settings[1].where.file, (root_ / "grid.toml").string());
  EXPECT_EQ(v.settings[1].where.line, 8);  // line 1 is base, line 2 empty
  EXPECT_EQ(v.settings[3].where.line, 10);
}

TEST_F(AblationGridTest, AxesFollowTheFileNotTheAlphabet) {
  auto grid = parse("[axes]\ntrain.lr = [1e-3, 2e-3]\nquantizer.type = [\"none\", \"int8\"]\n");
  ASSERT_TRUE(grid.ok()) << grid.status().message();
  EXPECT_EQ(names(grid.value()), (std::vector<std::string>{"lr-0.001,quantizer-none", "lr-0.001,quantizer-int8",
                                                           "lr-0.002,quantizer-none", "lr-0.002,quantizer-int8"}));
}

TEST_F(AblationGridTest, DottedQuotedAndSubTableKeysAreTheSameGrid) {
  auto dotted = parse("[set]\ntrain.max_steps = 5\n[axes]\npeft.r = [4, 8]\n");
  auto quoted = parse("[set]\n\"train.max_steps\" = 5\n[axes]\n\"peft.r\" = [4, 8]\n");
  auto tables = parse("[set.train]\nmax_steps = 5\n[axes.peft]\nr = [4, 8]\n");
  for (auto* g : {&dotted, &quoted, &tables}) {
    ASSERT_TRUE(g->ok()) << g->status().message();
    EXPECT_EQ(names(g->value()), (std::vector<std::string>{"r-4", "r-8"}));
    EXPECT_EQ(keys(g->value().variants[1].settings), (std::vector<std::string>{"train.max_steps", "peft.r"}));
  }
  // Paired blocks as [[paired.NAME]] tables equal the inline ones.
  auto inline_blocks = parse("[paired]\nm = [{peft.type = \"lora\", peft.r = 4}, {name = \"d\", peft.type = \"dora\"}]\n");
  auto table_blocks = parse("[[paired.m]]\npeft.type = \"lora\"\npeft.r = 4\n[[paired.m]]\nname = \"d\"\npeft.type = \"dora\"\n");
  ASSERT_TRUE(inline_blocks.ok() && table_blocks.ok());
  EXPECT_EQ(names(inline_blocks.value()), names(table_blocks.value()));
  EXPECT_EQ(names(inline_blocks.value()), (std::vector<std::string>{"m-lora-4", "m-d"}));
}

TEST_F(AblationGridTest, NamesAreDeterministicFolderSafeAndUnique) {
  const std::string body = R"(
seeds = [7]
[axes]
dataset.path = ["data/a b.jsonl", "data/a?b.jsonl", "data/a/b.jsonl"]
peft.targets = [["q_proj", "v_proj"], ["re:.*\\.(q|v)_proj"]]
offload.type = ["none"]
quantizer.type = ["int8"]
train.lr = [1e-4]
)";
  auto first = parse(body), second = parse(body);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(names(first.value()), names(second.value()));
  std::set<std::string> seen;
  const std::regex safe("[A-Za-z0-9._+,~-]+");
  for (const auto& name : names(first.value())) {
    EXPECT_TRUE(std::regex_match(name, safe)) << name;
    EXPECT_LE(name.size(), 120u) << name;
    EXPECT_NE(name[0], '.') << name;
    EXPECT_TRUE(seen.insert(name).second) << "twice: " << name;
  }
  // "a b", "a?b" and "a/b" read the same once made folder-safe: a tag tells them apart.
  EXPECT_EQ(seen.size(), 3u * 2u);
  EXPECT_NE(first.value().variants[0].name.find('~'), std::string::npos) << first.value().variants[0].name;
  // A type key shows its section; a list joins its items.
  EXPECT_NE(first.value().variants[0].name.find("offload-none,quantizer-int8,lr-0.0001,seed-7"), std::string::npos)
      << first.value().variants[0].name;
  EXPECT_NE(first.value().variants[0].name.find("targets-q_proj+v_proj"), std::string::npos);
}

TEST_F(AblationGridTest, LongNamesAreCutWithATagThatKeepsThemApart) {
  std::string axes = "[axes]\n";
  for (int i = 0; i < 12; ++i) axes += "s.option_with_a_long_name_" + std::to_string(i) + " = [\"value_number_one\", \"value_number_two\"]\n";
  auto grid = parse(axes);
  ASSERT_TRUE(grid.ok()) << grid.status().message();
  std::set<std::string> seen;
  for (const auto& name : names(grid.value())) {
    EXPECT_LE(name.size(), 120u);
    EXPECT_TRUE(seen.insert(name).second) << "twice: " << name;
  }
  EXPECT_EQ(seen.size(), 4096u);
}

TEST_F(AblationGridTest, LabelsThatWouldCollideUseTheWholeKey) {
  auto grid = parse("seeds = [1]\n[axes]\ndataset.max_length = [64]\ntrain.max_length = [32]\nmodel.seed = [3]\n");
  ASSERT_TRUE(grid.ok()) << grid.status().message();
  EXPECT_EQ(grid.value().variants[0].name, "dataset.max_length-64,train.max_length-32,model.seed-3,seed-1");
}

TEST_F(AblationGridTest, WithoutAxesTheBaseRunsOnce) {
  auto grid = parse("[set]\ntrain.max_steps = 3\n");
  ASSERT_TRUE(grid.ok()) << grid.status().message();
  ASSERT_EQ(grid.value().variants.size(), 1u);
  EXPECT_EQ(grid.value().variants[0].name, "base");
  EXPECT_TRUE(grid.value().variants[0].overrides.empty());
  EXPECT_EQ(grid.value().name, "grid");  // the file's stem
}

// What `loft run RECIPE key=<toml>` reads back is the grid's value, exactly, for every kind of value.
TEST_F(AblationGridTest, ValuesReadBackUnchangedAsCommandLineOverrides) {
  const std::vector<OptionValue> values = {
      true, false, int64_t{0}, int64_t{-7}, int64_t{1} << 40, 0.1, 2e-4, 1e-300, 3.0, -0.0, 1.0 / 3.0,
      std::string("int8"), std::string("a \"quoted\" \\ back\nline\ttab"), std::string(""),
      std::string("with = sign"), std::vector<std::string>{}, std::vector<std::string>{"q_proj", "re:.*\\.v_proj"}};
  for (const auto& value : values) {
    const GridSetting s{"sec.key", value, {}};
    Recipe recipe;
    ASSERT_TRUE(apply_override(recipe, s.assignment(), 1).ok()) << s.assignment();
    const OptionValue& back = recipe.sections.at("sec").entries.at("key").value;
    EXPECT_EQ(back.index(), value.index()) << s.assignment();
    EXPECT_TRUE(back == value) << s.assignment();
  }
}

TEST_F(AblationGridTest, BadGridsAreRefusedWithTheirLocation) {
  struct Case {
    std::string body, expected;
  };
  const std::vector<Case> cases = {
      {"seed = [1]\n", "grid.toml:2:1: error: unknown key 'seed' in an ablation grid (did you mean 'seeds'?)"},
      {"[axes]\nquantizer.type = []\n", "grid.toml:3:11: error: axis quantizer.type must be a non-empty list"},
      {"[axes]\nquantizer.type = \"int8\"\n", "axis quantizer.type must be a non-empty list"},
      {"seeds = []\n", "seeds must be a non-empty list of integers"},
      {"seeds = [1, 1]\n", "seed 1 is listed twice"},
      {"seeds = [\"a\"]\n", "seeds must be integers"},
      {"[set]\npeft.r = 4\n[axes]\npeft.r = [4, 8]\n", "peft.r is set in axis peft.r and in [set]"},
      {"[axes]\npeft.r = [4]\n[paired]\nm = [{peft.r = 8}]\n", "peft.r is set in axis m and in axis peft.r"},
      {"seeds = [1]\n[axes]\ntrain.seed = [1, 2]\n", "train.seed is set here and by `seeds`"},
      {"[set]\noutput.dir = \"x\"\n", "output.dir cannot be set in a grid"},
      {"[set]\nmax_steps = 3\n", "'max_steps' is not a recipe key: write section.key"},
      {"[set]\na.b.c = 3\n", "'a.b.c' is not a recipe key"},
      {"[axes]\ntrain.lr = [1e-3, 2e-3, 1e-3]\n", "grid.toml:3:25: error: this value repeats the one at"},
      {"[paired]\nm = [{peft.r = 4}, {peft.r = 4}]\n", "this value repeats the one at"},
      {"[paired]\nm = [{name = \"x\", peft.r = 4}, {name = \"x\", peft.r = 8}]\n", "block name 'x' is used twice"},
      {"[paired]\nm = [{name = \"x\"}]\n", "a block of paired axis 'm' sets no recipe key"},
      {"[paired]\nm = [1, 2]\n", "paired axis 'm' must be a non-empty list of blocks"},
      {"[paired]\n\"m/n\" = [{peft.r = 4}]\n", "paired axis name 'm/n' may hold only"},
      {"[axes]\ntrain.lr = [{a = 1}]\n", "train.lr: expected a bool, number, string or list of strings"},
      {"name = \"../x\"\n", "name must be a non-empty string of letters"},
      {"set = 3\n", "`set` must be a table"},
      {"[axes\n", "invalid TOML"},
  };
  for (const auto& c : cases) {
    const std::string message = refused(c.body);
    EXPECT_NE(message.find(c.expected), std::string::npos) << "grid:\n" << c.body << "\nmessage:\n" << message;
  }
  // No base, or a missing one.
  auto none = parse_ablation_grid_text("[set]\ntrain.lr = 1.0\n", root_ / "g.toml");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("the grid names no base recipe"), std::string::npos);
  auto missing = parse_ablation_grid_text("base = \"nope.toml\"\n", root_ / "g.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.toml does not exist"), std::string::npos);
  EXPECT_EQ(parse_ablation_grid(root_ / "absent.toml").status().code(), StatusCode::kNotFound);
}

TEST_F(AblationGridTest, EveryProblemIsReportedAtOnce) {
  const std::string message = refused("sed = 1\n[set]\nmax_steps = 3\n[axes]\npeft.r = []\ntrain.lr = [1, 1]\n");
  for (const char* expected : {"unknown key 'sed'", "'max_steps' is not a recipe key", "axis peft.r", "repeats",
                               "grid.toml: 4 errors"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << "\n" << message;
  }
}

}  // namespace
}  // namespace loft
