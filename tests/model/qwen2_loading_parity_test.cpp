// Loading parity with transformers 5.x on checkpoints make_loading_references.py writes: a tied config with a
// different lm_head in the file (untied, warned), unused tensors (listed), sliding-window fields (accepted exactly
// when every layer is full attention by transformers' rule).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loft/framework/qwen2.h"
#include "loft/framework/safetensors.h"
#include "model_test_support.h"
#include "../support/python_reference.h"

namespace loft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path references() {
  static const fs::path dir = testing::python_reference_dir(
      fs::path(LOFT_SOURCE_DIR) / "tests/model/make_loading_references.py", "model_loading_references",
      "\n(make_loading_references.py needs transformers in LOFT_PYTHON)");
  return dir;
}

json cases() {
  std::ifstream in(references() / "reference.json");
  return json::parse(in);
}

// Keeps every line a model load logs.
class CapturedLog final : public LogSink {
 public:
  void log(LogLevel level, std::string_view message) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    (level == LogLevel::kWarn ? warnings : infos).emplace_back(message);
  }
  mutable std::vector<std::string> warnings, infos;

 private:
  mutable std::mutex mutex_;
};

struct Loaded {
  std::unique_ptr<CapturedLog> log;  // outlives the model, which keeps a pointer to it
  std::unique_ptr<Qwen2Model> model;
  std::vector<std::string> warnings;
};

Loaded load_case(const std::string& name) {
  Loaded out;
  out.log = std::make_unique<CapturedLog>();
  ModelOptions options = testing::cpu_options(at::kFloat);
  options.log = out.log.get();
  auto model = Qwen2Model::load(references() / name, options);
  EXPECT_TRUE(model.ok()) << name << ": " << model.status().message();
  if (model.ok()) out.model = std::move(model).value();
  out.warnings = out.log->warnings;
  for (const auto& w : out.warnings) std::cout << "[ warning ] " << w << "\n";
  return out;
}

// loft's logits on the case's input against transformers', fp32.
double logit_error(Qwen2Model& model, const std::string& name) {
  auto reader = CheckpointReader::open(references() / name / "reference.safetensors");
  EXPECT_TRUE(reader.ok()) << reader.status().message();
  if (!reader.ok()) return 1.0;
  const at::Tensor ids = reader.value().tensor("input_ids").clone();
  const at::Tensor expected = reader.value().tensor("logits").clone();
  const double err = testing::relative_error(model.logits(ids), expected);
  std::cout << "[ parity ] " << name << ": max relative logit error " << err << "\n";
  return err;
}

bool mentions(const std::string& line, const std::string& part) { return line.find(part) != std::string::npos; }

TEST(Qwen2LoadingParity, TiedConfigWithADifferentHeadUsesTheFilesHeadAndWarns) {
  ASSERT_FALSE(references().empty());
  const json expected = cases()["tied_distinct_head"];
  ASSERT_FALSE(expected["tied"].get<bool>()) << "transformers should untie it";
  ASSERT_TRUE(expected["warned"].get<bool>());
  Loaded loaded = load_case("tied_distinct_head");
  ASSERT_TRUE(loaded.model);
  EXPECT_FALSE(loaded.model->config().tie_word_embeddings);
  EXPECT_LT(logit_error(*loaded.model, "tied_distinct_head"), 1e-5);
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_TRUE(mentions(loaded.warnings[0], "tie_word_embeddings") && mentions(loaded.warnings[0], "lm_head.weight") &&
              mentions(loaded.warnings[0], "config.json"))
      << loaded.warnings[0];
  // merge writes what the model computes: lm_head.weight beside the embedding.
  bool has_head = false;
  for (const auto& [name, t] : loaded.model->state_dict(at::kFloat)) has_head |= name == "lm_head.weight";
  EXPECT_TRUE(has_head);
}

TEST(Qwen2LoadingParity, TiedConfigWithAnEqualHeadStaysTiedSilently) {
  ASSERT_FALSE(references().empty());
  const json expected = cases()["tied_equal_head"];
  ASSERT_TRUE(expected["tied"].get<bool>());
  ASSERT_FALSE(expected["warned"].get<bool>());
  Loaded loaded = load_case("tied_equal_head");
  ASSERT_TRUE(loaded.model);
  EXPECT_TRUE(loaded.model->config().tie_word_embeddings);
  EXPECT_LT(logit_error(*loaded.model, "tied_equal_head"), 1e-5);
  EXPECT_TRUE(loaded.warnings.empty()) << "lm_head.weight equal to the embedding is used, not unused";
}

// Exactly transformers' unexpected keys, in one line; the legacy rotary_emb.inv_freq is not among them.
TEST(Qwen2LoadingParity, UnusedTensorsAreListedInOneWarningAsTransformersDoes) {
  ASSERT_FALSE(references().empty());
  const json expected = cases()["unused_tensors"]["unexpected"];
  ASSERT_GE(expected.size(), 2u);
  Loaded loaded = load_case("unused_tensors");
  ASSERT_TRUE(loaded.model);
  EXPECT_LT(logit_error(*loaded.model, "unused_tensors"), 1e-5);
  ASSERT_EQ(loaded.warnings.size(), 1u);
  const std::string& line = loaded.warnings[0];
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_TRUE(mentions(line, std::to_string(expected.size()) + " tensors")) << line;
  for (const auto& name : expected) EXPECT_TRUE(mentions(line, name.get<std::string>())) << name << " not in " << line;
  EXPECT_FALSE(mentions(line, "inv_freq")) << line;
  // Every expected tensor is used: none of them is listed.
  EXPECT_FALSE(mentions(line, "lm_head.weight") || mentions(line, "embed_tokens")) << line;
}

// Every sliding-window variant: loft loads it iff transformers runs every layer with full attention, and then its
// logits are transformers'; otherwise the error names the first sliding layer.
TEST(Qwen2LoadingParity, SlidingWindowFieldsAreAcceptedExactlyWhenEveryLayerIsFullAttention) {
  ASSERT_FALSE(references().empty());
  int accepted = 0, refused = 0;
  const json all = cases();
  for (const auto& [name, expected] : all.items()) {
    if (name.rfind("sliding_", 0) != 0) continue;
    SCOPED_TRACE(name);
    const fs::path folder = references() / name;
    auto config = read_qwen2_config(folder / "config.json");
    if (expected["first_sliding_layer"].is_null()) {
      ++accepted;
      ASSERT_TRUE(config.ok()) << config.status().message();
      auto model = Qwen2Model::load(folder, testing::cpu_options(at::kFloat));
      ASSERT_TRUE(model.ok()) << model.status().message();
      EXPECT_LT(logit_error(*model.value(), name), 1e-5);
    } else {
      ++refused;
      ASSERT_FALSE(config.ok()) << "transformers slides layer " << expected["first_sliding_layer"];
      const std::string& m = config.status().message();
      std::cout << "[ message ] " << m << "\n";
      EXPECT_EQ(m.find('\n'), std::string::npos);
      EXPECT_TRUE(mentions(m, (folder / "config.json").string())) << m;
      EXPECT_TRUE(mentions(m, "full attention only")) << m;
      const int64_t layer = expected["first_sliding_layer"].get<int64_t>();
      const bool named = mentions(m, fmt::format("layer_types[{}]", layer)) || mentions(m, fmt::format("layers {}..", layer));
      EXPECT_TRUE(named) << "the first sliding layer, " << layer << ", is not named: " << m;
    }
  }
  EXPECT_GE(accepted, 4);
  EXPECT_GE(refused, 3);
}

}  // namespace
}  // namespace loft
