// quantizer.skip and quantizer.cache_dir through the real path (recipe -> registry -> build_model) on a tiny Qwen2
// that transformers wrote: skipped sites hold dense storage, and a model built from the cache has exactly the
// logits of one quantized afresh (quantizer/none and the testing_absmax fixture, whose `bits` option must miss).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <fstream>

#include "loft/framework/files.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/quantizer_host.h"
#include "loft/framework/recipe.h"
#include "loft/framework/run.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

class QuantizerHostRecipe : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(fs::path(LOFT_TINY_QWEN2_DIR) / "model.safetensors")) {
      GTEST_SKIP() << "no fixture in " << LOFT_TINY_QWEN2_DIR << " (ctest runs quantizer_host.tiny_qwen2 first)";
    }
    std::string pattern = (std::filesystem::temp_directory_path() / "loft_qhost_recipe_XXXXXX").string();
    dir_ = ::mkdtemp(pattern.data());
  }
  void TearDown() override {
    if (!dir_.empty()) (void)remove_tree(dir_);
  }

  // Builds the recipe's model and returns fp32 logits for fixed ids; `check` sees the model first.
  at::Tensor logits(const std::string& quantizer_lines, const std::vector<std::string>& overrides = {},
                    const std::function<void(Qwen2Model&)>& check = {}) {
    const std::string text = "[model]\npath = \"" + std::string(LOFT_TINY_QWEN2_DIR) +
                             "\"\ndevice = \"cpu\"\ndtype = \"fp32\"\n[quantizer]\n" + quantizer_lines +
                             "\n[peft]\ntype = \"lora\"\nr = 4\ninit = \"random\"\n[dataset]\ntype = \"synthetic\"\n";
    auto recipe = parse_recipe_text(text, (dir_ / "recipe.toml").string());
    EXPECT_TRUE(recipe.ok()) << recipe.status().message();
    for (size_t i = 0; i < overrides.size(); ++i) EXPECT_TRUE(apply_override(recipe.value(), overrides[i], static_cast<int>(i + 1)).ok());
    PluginRegistry registry;
    registry.discover({LOFT_PLUGIN_DIR});
    registry.discover({fs::path(LOFT_TESTING_PLUGIN_DIR) / "quantizer" / "testing_absmax"});
    ResolvedRecipe resolved;
    auto diags = validate_recipe(recipe.value(), registry, &resolved);
    for (const auto& d : diags) ADD_FAILURE() << d.str();
    if (!diags.empty()) return {};
    auto components = instantiate(resolved, registry);
    EXPECT_TRUE(components.ok()) << components.status().message();
    auto model = build_model(resolved, components.value());
    EXPECT_TRUE(model.ok()) << model.status().message();
    if (!model.ok()) return {};
    if (check) check(*model.value());
    torch::NoGradGuard no_grad;
    const at::Tensor ids = torch::arange(0, 40, torch::kLong).remainder(576).view({2, 20}) * 7 % 576;
    return model.value()->logits(ids);
  }

  std::vector<fs::path> cache_files() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir_ / "qcache", ec), end; !ec && it != end; it.increment(ec)) out.push_back(it->path());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

TEST_F(QuantizerHostRecipe, SkippedSitesAreDenseTheOthersQuantized) {
  int dense = 0, quantized = 0;
  const at::Tensor with_skip = logits("type = \"testing_absmax\"\nskip = [\"lm_head\", \"mlp.down_proj\", "
                                      "\"re:model\\\\.layers\\\\.1\\\\.self_attn\\\\.q_proj\"]",
                                      {}, [&](Qwen2Model& m) {
                                        for (const LinearSite* s : m.linear_sites()) {
                                          const bool skipped = s->short_name == "down_proj" ||
                                                               s->name == "model.layers.1.self_attn.q_proj";
                                          EXPECT_EQ(is_dense_frozen_linear(s->base), skipped) << s->name;
                                          // fp32 dense: 4 bytes a weight; int8 codes + fp32 row scales: far fewer.
                                          const int64_t dense_bytes = s->out_features * s->in_features * 4;
                                          if (skipped) {
                                            EXPECT_EQ(s->base->storage_bytes(), dense_bytes) << s->name;
                                            ++dense;
                                          } else {
                                            EXPECT_LT(s->base->storage_bytes(), dense_bytes / 2) << s->name;
                                            ++quantized;
                                          }
                                        }
                                      });
  EXPECT_EQ(dense, 3);
  EXPECT_EQ(quantized, 11);
  // Skipping changes the result (the skipped sites are exact), but not its shape.
  const at::Tensor without = logits("type = \"testing_absmax\"");
  ASSERT_EQ(with_skip.sizes(), without.sizes());
  EXPECT_FALSE(torch::equal(with_skip, without));
}

TEST_F(QuantizerHostRecipe, CacheGivesTheSameLogitsAsQuantizing) {
  for (const std::string type : {"none", "testing_absmax"}) {
    SCOPED_TRACE(type);
    (void)remove_tree(dir_ / "qcache");
    const std::string q = "type = \"" + type + "\"\nskip = [\"down_proj\"]";
    const at::Tensor fresh = logits(q);
    const at::Tensor writing = logits(q + "\ncache_dir = \"qcache\"");  // relative to the recipe's folder
    auto files = cache_files();
    ASSERT_EQ(files.size(), 1u);
    EXPECT_NE(files[0].filename().string().find("tiny_qwen2." + type + "."), std::string::npos) << files[0];
    const auto written = std::filesystem::last_write_time(files[0]);
    const at::Tensor loaded = logits(q + "\ncache_dir = \"qcache\"");
    EXPECT_EQ(std::filesystem::last_write_time(files[0]), written);  // a hit: not rewritten
    EXPECT_TRUE(torch::equal(writing, fresh));
    EXPECT_TRUE(torch::equal(loaded, fresh));

    // Corrupt: a warning, then the same logits from quantizing again, and a good file again.
    std::filesystem::resize_file(files[0], std::filesystem::file_size(files[0]) - 5);
    const at::Tensor recovered = logits(q + "\ncache_dir = \"qcache\"");
    EXPECT_TRUE(torch::equal(recovered, fresh));
    EXPECT_EQ(cache_files().size(), 1u);
    EXPECT_TRUE(torch::equal(logits(q + "\ncache_dir = \"qcache\""), fresh));
  }
}

TEST_F(QuantizerHostRecipe, AnotherOptionOrSkipListMisses) {
  const std::string q = "type = \"testing_absmax\"\ncache_dir = \"qcache\"";
  const at::Tensor bits8 = logits(q);
  const at::Tensor bits4 = logits(q, {"quantizer.bits=4"});
  EXPECT_EQ(cache_files().size(), 2u);
  EXPECT_FALSE(torch::equal(bits8, bits4));
  EXPECT_TRUE(torch::equal(logits(q, {"quantizer.bits=4"}), bits4));
  EXPECT_TRUE(torch::equal(logits(q), bits8));
  EXPECT_EQ(cache_files().size(), 2u);
  logits(q, {"quantizer.skip=[\"up_proj\"]"});
  EXPECT_EQ(cache_files().size(), 3u);
}

// The model asks stored_linear first and reads a weight only for the sites it declines; random init never asks.
TEST_F(QuantizerHostRecipe, StoredLinearsAreUsedWithoutReadingTheirWeights) {
  auto plain_options = [] {
    ModelOptions o;
    o.make_linear = [](const at::Tensor& w, const std::string&) { return make_dense_frozen_linear(w, at::kFloat); };
    return o;
  };
  auto reference = Qwen2Model::load(LOFT_TINY_QWEN2_DIR, plain_options());
  ASSERT_TRUE(reference.ok()) << reference.status().message();
  std::map<std::string, at::Tensor> weights;
  for (const LinearSite* s : reference.value()->linear_sites()) weights[s->name] = s->base->dequantize(at::kFloat);

  ModelOptions o = plain_options();
  std::vector<std::string> made;
  int asked = 0;
  o.make_linear = [&](const at::Tensor& w, const std::string& site) {
    made.push_back(site);
    return make_dense_frozen_linear(w, at::kFloat);
  };
  o.stored_linear = [&](const std::string& site, int64_t out, int64_t in) -> std::unique_ptr<QuantizedLinear> {
    ++asked;
    EXPECT_EQ(weights.at(site).size(0), out);
    EXPECT_EQ(weights.at(site).size(1), in);
    if (site.find("up_proj") != std::string::npos) return nullptr;  // declined: read and made as usual
    return make_dense_frozen_linear(weights.at(site), at::kFloat);
  };
  auto model = Qwen2Model::load(LOFT_TINY_QWEN2_DIR, o);
  ASSERT_TRUE(model.ok()) << model.status().message();
  EXPECT_EQ(asked, 14);
  EXPECT_EQ(made, (std::vector<std::string>{"model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"}));
  torch::NoGradGuard no_grad;
  const at::Tensor ids = torch::arange(0, 24, torch::kLong).view({2, 12});
  EXPECT_TRUE(torch::equal(model.value()->logits(ids), reference.value()->logits(ids)));

  auto config = read_qwen2_config(fs::path(LOFT_TINY_QWEN2_DIR) / "config.json");
  ASSERT_TRUE(config.ok());
  asked = 0;
  made.clear();
  auto random = Qwen2Model::create_random(config.value(), 1, o);
  ASSERT_TRUE(random.ok());
  EXPECT_EQ(asked, 0);
  EXPECT_EQ(made.size(), 14u);
}

}  // namespace
}  // namespace loft
