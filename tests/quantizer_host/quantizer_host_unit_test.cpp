// quantizer.skip matching and diagnostics, the quantized-weight cache's key, file format and checks, and the builder
// that serves model construction (with a counting quantizer, no plugins, no model files beyond config.json).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <stdexcept>

#include "loft/framework/files.h"
#include "loft/framework/quantizer_host.h"
#include "loft/framework/safetensors.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

Qwen2Config three_layers() {
  Qwen2Config c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  return c;
}

std::string problems_text(const SkipResolution& r) {
  std::string s;
  for (const auto& [i, m] : r.problems) s += std::to_string(i) + ": " + m + "\n";
  return s;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "loft_qhost_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { (void)remove_tree(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(QuantizerSkip, EntriesMatchLikePeftTargets) {
  const std::string down = "model.layers.0.mlp.down_proj";
  EXPECT_TRUE(skip_entry_matches("down_proj", down));
  EXPECT_TRUE(skip_entry_matches("mlp.down_proj", down));
  EXPECT_TRUE(skip_entry_matches("layers.0.mlp.down_proj", down));
  EXPECT_TRUE(skip_entry_matches(down, down));
  EXPECT_FALSE(skip_entry_matches("own_proj", down));        // suffixes are whole dotted components
  EXPECT_FALSE(skip_entry_matches("p.down_proj", down));
  EXPECT_FALSE(skip_entry_matches("model.layers.0.mlp", down));
  EXPECT_TRUE(skip_entry_matches(R"(re:.*\.(q|v)_proj)", "model.layers.1.self_attn.v_proj"));
  EXPECT_FALSE(skip_entry_matches(R"(re:.*\.(q|v)_proj)", "model.layers.1.self_attn.k_proj"));
  EXPECT_FALSE(skip_entry_matches("re:v_proj", "model.layers.1.self_attn.v_proj"));  // the whole name must match
  EXPECT_FALSE(skip_entry_matches("re:(", "model.layers.1.self_attn.v_proj"));       // invalid: matches nothing
}

TEST(QuantizerSkip, ResolvesSitesAndAcceptsLmHead) {
  const auto names = skippable_module_names(three_layers());
  ASSERT_EQ(names.size(), 3u * 7 + 1);
  EXPECT_EQ(names.front(), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(names.back(), "lm_head");
  auto r = resolve_quantizer_skip({"lm_head", "down_proj", R"(re:model\.layers\.1\.self_attn\.(q|k)_proj)"},
                                  three_layers());
  EXPECT_TRUE(r.problems.empty()) << problems_text(r);
  EXPECT_EQ(r.sites, (std::set<std::string>{"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj",
                                            "model.layers.2.mlp.down_proj", "model.layers.1.self_attn.q_proj",
                                            "model.layers.1.self_attn.k_proj"}));
  EXPECT_TRUE(resolve_quantizer_skip({}, three_layers()).sites.empty());
  EXPECT_TRUE(resolve_quantizer_skip({"lm_head"}, three_layers()).sites.empty());  // always dense already
}

TEST(QuantizerSkip, EntriesThatNameNothingSaySoWithSuggestions) {
  auto r = resolve_quantizer_skip({"down_prj", "model.layers.5.mlp.up_proj", "re:(", "re:nothing", "embed_tokens",
                                   "self_attn.q_proj"},
                                  three_layers());
  ASSERT_EQ(r.problems.size(), 5u) << problems_text(r);
  EXPECT_EQ(r.problems[0].first, 0u);
  EXPECT_NE(r.problems[0].second.find("\"down_prj\" names no module of the model (did you mean 'down_proj'?)"),
            std::string::npos) << r.problems[0].second;
  EXPECT_NE(r.problems[1].second.find("the model has 3 layers (0-2)"), std::string::npos) << r.problems[1].second;
  EXPECT_NE(r.problems[1].second.find("did you mean 'model.layers."), std::string::npos) << r.problems[1].second;
  EXPECT_NE(r.problems[2].second.find("is not a valid regex"), std::string::npos) << r.problems[2].second;
  EXPECT_NE(r.problems[3].second.find("matches no module"), std::string::npos) << r.problems[3].second;
  EXPECT_EQ(r.problems[4].first, 4u);
  EXPECT_EQ(r.sites.size(), 3u);  // the valid entry still resolves
}

TEST(QuantizerSkip, RecipeDiagnosticsPointAtTheEntry) {
  TempDir dir;
  std::filesystem::copy_file(fs::path(LOFT_SOURCE_DIR) / "models/demo/config.json", dir.path() / "config.json");
  const std::string text = "[model]\npath = \"" + dir.path().string() +
                           "\"\n\n[quantizer]\nskip = [\"lm_head\",\n        \"down_prj\", \"up_proj\"]\n";
  auto recipe = parse_recipe_text(text, (dir.path() / "r.toml").string());
  ASSERT_TRUE(recipe.ok()) << recipe.status().message();
  // The config as validate_recipe reads it, once per run.
  auto config = read_qwen2_config(dir.path() / "config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto diags = check_quantizer_skip(recipe.value(), &config.value());
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].where.line, 6);
  EXPECT_EQ(diags[0].where.column, 9);
  EXPECT_NE(diags[0].str().find("r.toml:6:9: error: quantizer.skip entry \"down_prj\" names no module"),
            std::string::npos) << diags[0].str();
  EXPECT_NE(diags[0].message.find("config.json"), std::string::npos);

  // Relative model paths resolve against the recipe's folder; overrides point at the command line.
  auto relative = parse_recipe_text("[model]\npath = \".\"\n", (dir.path() / "r.toml").string());
  ASSERT_TRUE(relative.ok());
  ASSERT_TRUE(apply_override(relative.value(), R"(quantizer.skip=["mlp.gate_prj"])", 1).ok());
  diags = check_quantizer_skip(relative.value(), &config.value());
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_NE(diags[0].str().find("command line override #1"), std::string::npos) << diags[0].str();
  EXPECT_NE(diags[0].str().find("did you mean 'mlp.gate_proj'"), std::string::npos) << diags[0].str();

  // No readable config.json: only the regexes can be wrong.
  auto elsewhere = parse_recipe_text("[model]\npath = \"/nonexistent\"\n[quantizer]\nskip = [\"x\", \"re:(\"]\n",
                                     (dir.path() / "r.toml").string());
  ASSERT_TRUE(elsewhere.ok());
  diags = check_quantizer_skip(elsewhere.value(), nullptr);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags[0].where.column, 14);
  EXPECT_NE(diags[0].message.find("not a valid regex"), std::string::npos);
}

TEST(QuantizerSkip, DenseStorageKeepsTheComputeDtype) {
  const at::Tensor w = torch::randn({6, 4});
  auto dense = make_dense_frozen_linear(w, at::kBFloat16);
  EXPECT_TRUE(is_dense_frozen_linear(dense.get()));
  EXPECT_EQ(dense->state().at("weight").scalar_type(), at::kBFloat16);
  EXPECT_EQ(dense->storage_bytes(), 6 * 4 * 2);
  const at::Tensor x = torch::randn({3, 4}).to(at::kBFloat16);
  EXPECT_TRUE(torch::equal(dense->forward(x), torch::linear(x, w.to(at::kBFloat16))));
}

TEST(QuantizedCache, Xxh64MatchesTheReference) {
  // Values from the reference implementation (libxxhash 0.8).
  EXPECT_EQ(xxh64("", 0), 0xef46db3751d8e999ULL);
  EXPECT_EQ(xxh64("abc", 3), 0x44bc2cf5ad770999ULL);
  EXPECT_EQ(xxh64("abc", 3, 7), 0x9e755206156676d7ULL);
  const std::string s = "loft quantized-weight cache";
  EXPECT_EQ(xxh64(s.data(), s.size()), 0xb1ee5effd9776059ULL);
  std::string long_input;
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 256; ++i) long_input += static_cast<char>(i);
  }
  long_input += "xyz";
  EXPECT_EQ(xxh64(long_input.data(), long_input.size()), 0xe921a1b45bd779f8ULL);
}

QuantizedCacheInputs some_inputs() {
  QuantizedCacheInputs in;
  in.checkpoint = R"({"config.json":"00","files":[]})";
  in.quantizer = "quantizer/int8 0.1.0 libloft_quantizer_int8.so size 1 mtime_ns 2";
  in.options = {{"threshold", "6.0"}};
  in.dtype = "BFloat16";
  in.device_type = "cuda";
  in.skipped_sites = {"model.layers.0.mlp.down_proj"};
  return in;
}

TEST(QuantizedCache, KeyChangesWithEveryInput) {
  const QuantizedCacheKey base = make_quantized_cache_key(some_inputs());
  EXPECT_EQ(base.digest.size(), 16u);
  EXPECT_EQ(make_quantized_cache_key(some_inputs()).description, base.description);
  std::vector<QuantizedCacheInputs> changed(6, some_inputs());
  changed[0].checkpoint = R"({"config.json":"01","files":[]})";
  changed[1].quantizer = "quantizer/nf4 0.1.0 libloft_quantizer_nf4.so size 1 mtime_ns 2";
  changed[2].options["threshold"] = "5.0";
  changed[3].dtype = "Half";
  changed[4].device_type = "cpu";
  changed[5].skipped_sites = {};
  for (const auto& c : changed) {
    const QuantizedCacheKey k = make_quantized_cache_key(c);
    EXPECT_NE(k.description, base.description);
    EXPECT_NE(k.digest, base.digest);
  }
  EXPECT_EQ(quantized_cache_file("/c", "/models/qwen/", "int8", base),
            fs::path("/c/qwen.int8." + base.digest + ".safetensors"));
}

TEST(QuantizedCache, CheckpointFingerprintSeesRewrites) {
  TempDir dir;
  {
    std::ofstream(dir.path() / "config.json") << "{\"a\": 1}";
  }
  ASSERT_TRUE(write_safetensors(dir.path() / "model.safetensors", {{"w", torch::ones({64, 64})}}).ok());
  auto a = checkpoint_fingerprint(dir.path());
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(checkpoint_fingerprint(dir.path()).value(), a.value());
  EXPECT_NE(a.value().find("model.safetensors"), std::string::npos);
  // Same names, shapes and size, other values: a different checkpoint.
  ASSERT_TRUE(write_safetensors(dir.path() / "model.safetensors", {{"w", torch::full({64, 64}, 2.0)}}).ok());
  auto b = checkpoint_fingerprint(dir.path());
  ASSERT_TRUE(b.ok());
  EXPECT_NE(b.value(), a.value());
  {
    std::ofstream(dir.path() / "config.json") << "{\"a\": 2}";
  }
  EXPECT_NE(checkpoint_fingerprint(dir.path()).value(), b.value());
  EXPECT_FALSE(checkpoint_fingerprint(dir.path() / "absent").ok());
}

// A quantizer that stores bf16 and counts its calls; load() can be told to fail.
class CountingQuantizer final : public Quantizer {
 public:
  std::unique_ptr<QuantizedLinear> quantize(const at::Tensor& weight, const std::string&) const override {
    ++quantized;
    return make_dense_frozen_linear(weight, at::kBFloat16);
  }
  std::unique_ptr<QuantizedLinear> load(const std::map<std::string, at::Tensor>& state, int64_t out_features,
                                        int64_t in_features) const override {
    ++loaded;
    TORCH_CHECK(!fail_load, "counting quantizer: told to fail");
    auto l = make_dense_frozen_linear(state.at("weight"), at::kBFloat16);
    TORCH_CHECK(l->out_features() == out_features && l->in_features() == in_features, "shape");
    return l;
  }
  mutable int quantized = 0, loaded = 0;
  bool fail_load = false;
};

struct FakeModel {
  std::vector<std::string> names{"model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj",
                                 "model.layers.0.self_attn.q_proj"};
  std::vector<at::Tensor> weights;
  std::vector<std::unique_ptr<QuantizedLinear>> linears;
  std::vector<LinearSite> sites;

  FakeModel() {
    torch::manual_seed(0);
    for (size_t i = 0; i < names.size(); ++i) weights.push_back(torch::randn({8 + static_cast<int64_t>(i), 6}));
  }
  // What Qwen2Model's build does with the two hooks.
  void build(FrozenLinearBuilder& b) {
    linears.clear();
    sites.clear();
    for (size_t i = 0; i < names.size(); ++i) {
      auto l = b.stored(names[i], weights[i].size(0), weights[i].size(1));
      if (!l) l = b.make(weights[i], names[i]);
      linears.push_back(std::move(l));
    }
    for (size_t i = 0; i < names.size(); ++i) {
      LinearSite s;
      s.name = names[i];
      s.base = linears[i].get();
      sites.push_back(s);
    }
    std::vector<const LinearSite*> ptrs;
    for (const auto& s : sites) ptrs.push_back(&s);
    b.finish(ptrs);
  }
  at::Tensor outputs() const {
    std::vector<at::Tensor> ys;
    for (const auto& l : linears) ys.push_back(l->forward(torch::ones({2, 6}, at::kBFloat16)).flatten());
    return torch::cat(ys);
  }
};

const std::set<std::string> kQuantized{"model.layers.0.mlp.up_proj", "model.layers.0.self_attn.q_proj"};
const std::set<std::string> kSkipped{"model.layers.0.mlp.down_proj"};

TEST(QuantizedCache, SecondBuildLoadsInsteadOfQuantizing) {
  TempDir dir;
  const QuantizedCacheKey key = make_quantized_cache_key(some_inputs());
  const fs::path file = dir.path() / "sub" / "m.counting.safetensors";
  CountingQuantizer q;
  FakeModel model;
  FrozenLinearBuilder first(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
  first.use_cache(file, key, kQuantized);
  model.build(first);
  EXPECT_EQ(q.quantized, 2);
  EXPECT_EQ(first.dense_count(), 1);
  EXPECT_TRUE(is_dense_frozen_linear(model.linears[1].get()));
  ASSERT_TRUE(fs::exists(file));
  const at::Tensor expected = model.outputs();

  FrozenLinearBuilder second(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
  second.use_cache(file, key, kQuantized);
  const auto written = std::filesystem::last_write_time(file);
  model.build(second);
  EXPECT_EQ(q.quantized, 2);  // nothing quantized again
  EXPECT_EQ(q.loaded, 2);
  EXPECT_EQ(second.loaded_count(), 2);
  EXPECT_EQ(second.dense_count(), 1);
  EXPECT_EQ(std::filesystem::last_write_time(file), written);  // a hit does not rewrite
  EXPECT_TRUE(torch::equal(model.outputs(), expected));

  auto states = read_quantized_cache(file, key, kQuantized);
  ASSERT_TRUE(states.ok()) << states.status().message();
  EXPECT_EQ(states.value().size(), 2u);
  EXPECT_TRUE(torch::equal(states.value().at("model.layers.0.mlp.up_proj").at("weight"),
                           model.weights[0].to(at::kBFloat16)));
}

TEST(QuantizedCache, UnusableFilesAreRefusedWithTheReason) {
  TempDir dir;
  const QuantizedCacheKey key = make_quantized_cache_key(some_inputs());
  const fs::path file = dir.path() / "m.safetensors";
  CountingQuantizer q;
  FakeModel model;
  FrozenLinearBuilder b(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
  b.use_cache(file, key, kQuantized);
  model.build(b);

  auto other = some_inputs();
  other.options["threshold"] = "5.0";
  auto wrong_key = read_quantized_cache(file, make_quantized_cache_key(other), kQuantized);
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_NE(wrong_key.status().message().find("loft.key differs"), std::string::npos);
  auto more_sites = kQuantized;
  more_sites.insert("model.layers.0.mlp.gate_proj");
  auto missing = read_quantized_cache(file, key, more_sites);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("model.layers.0.mlp.gate_proj is missing"), std::string::npos);
  auto fewer = read_quantized_cache(file, key, {"model.layers.0.mlp.up_proj"});
  ASSERT_FALSE(fewer.ok());
  EXPECT_NE(fewer.status().message().find("not a quantized site of this run"), std::string::npos);

  // One flipped bit in the data.
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(in)), {});
  }
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x10;
  {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << flipped;
  }
  auto corrupt = read_quantized_cache(file, key, kQuantized);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("fails its checksum"), std::string::npos) << corrupt.status().message();
  // Truncated.
  {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  }
  EXPECT_FALSE(read_quantized_cache(file, key, kQuantized).ok());
  // Not even a header.
  {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << "xx";
  }
  EXPECT_FALSE(read_quantized_cache(file, key, kQuantized).ok());

  // The builder falls back to quantizing and rewrites the file, which is then a hit again.
  const int before = q.quantized;
  FrozenLinearBuilder again(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
  again.use_cache(file, key, kQuantized);
  model.build(again);
  EXPECT_EQ(q.quantized, before + 2);
  EXPECT_TRUE(read_quantized_cache(file, key, kQuantized).ok());
}

TEST(QuantizedCache, LoadFailureFallsBackToQuantizing) {
  TempDir dir;
  const QuantizedCacheKey key = make_quantized_cache_key(some_inputs());
  const fs::path file = dir.path() / "m.safetensors";
  CountingQuantizer q;
  FakeModel model;
  FrozenLinearBuilder b(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
  b.use_cache(file, key, kQuantized);
  model.build(b);
  const at::Tensor expected = model.outputs();
  q.fail_load = true;
  FrozenLinearBuilder failing(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
  failing.use_cache(file, key, kQuantized);
  model.build(failing);
  EXPECT_EQ(failing.loaded_count(), 0);
  EXPECT_EQ(failing.quantized_count(), 2);
  EXPECT_TRUE(torch::equal(model.outputs(), expected));
}

// The host refuses a NaN or Inf weight before any quantizer sees it (a third-party one that would keep it finite
// included), naming the module and the quantizer.skip entry that keeps it dense; a skipped site stays as loaded.
TEST(QuantizerHost, NonFiniteWeightsNeverReachTheQuantizer) {
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
      SCOPED_TRACE(std::to_string(bad) + " " + c10::toString(dtype));
      CountingQuantizer q;
      FrozenLinearBuilder b(q, "counting", at::kBFloat16, at::kCPU, kSkipped);
      at::Tensor w = torch::randn({8, 6}).to(dtype);
      w.index_put_({5, 2}, bad);
      try {
        b.make(w, "model.layers.0.mlp.up_proj");
        ADD_FAILURE() << "a non-finite weight was quantized";
      } catch (const std::invalid_argument& e) {
        const std::string m = e.what();
        for (const char* part : {"model.layers.0.mlp.up_proj.weight", "1 non-finite value ", "quantizer/counting",
                                 "[quantizer] skip = [\"model.layers.0.mlp.up_proj\"]"}) {
          EXPECT_NE(m.find(part), std::string::npos) << "'" << part << "' not in: " << m;
        }
      }
      EXPECT_EQ(q.quantized, 0);
      auto dense = b.make(w, "model.layers.0.mlp.down_proj");  // skipped: dense, the value kept
      EXPECT_TRUE(is_dense_frozen_linear(dense.get()));
      const at::Tensor kept = dense->dequantize(at::kFloat)[5][2];
      EXPECT_TRUE(std::isnan(bad) ? kept.isnan().item<bool>() : kept.item<float>() == bad);
      EXPECT_EQ(q.quantized, 0);
    }
  }
}

}  // namespace
}  // namespace loft
