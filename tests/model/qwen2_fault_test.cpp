// Bad model folders: each error is one line that names the file and the problem.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "loft/framework/files.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/safetensors.h"
#include "model_test_support.h"

namespace loft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fixture(const std::string& name) { return fs::path(LOFT_QWEN2_FIXTURE_DIR) / name; }

class Qwen2Fault : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("loft_qwen2_fault_" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    (void)remove_tree(dir_);  // never std::filesystem::remove_all in a libtorch process (see files.h)
  }
  // A copy of a fixture checkpoint whose config.json has been edited.
  fs::path edited_copy(const std::string& name, const std::function<void(json&)>& edit) {
    const fs::path src = fixture(name);
    EXPECT_TRUE(fs::exists(src / "config.json")) << src << " is missing: run the model.qwen2_fixtures test first";
    for (const auto& entry : std::filesystem::directory_iterator(src)) std::filesystem::copy_file(entry.path(), dir_ / entry.path().filename());
    std::ifstream in(dir_ / "config.json");
    json config = json::parse(in);
    in.close();
    edit(config);
    std::ofstream(dir_ / "config.json") << config.dump(2);
    return dir_;
  }
  void write_config(const std::string& text) { std::ofstream(dir_ / "config.json") << text; }

  fs::path dir_;
};

const char* kGoodConfig = R"({"model_type":"qwen2","vocab_size":300,"hidden_size":72,"intermediate_size":200,
    "num_hidden_layers":2,"num_attention_heads":3,"num_key_value_heads":1,"rms_norm_eps":1e-6,
    "rope_parameters":{"rope_theta":10000.0,"rope_type":"default"},"tie_word_embeddings":true})";

void expect_error(const Status& status, const std::vector<std::string>& parts) {
  ASSERT_FALSE(status.ok());
  const std::string& m = status.message();
  std::cout << "[ message ] " << m << "\n";
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
  for (const auto& part : parts) EXPECT_NE(m.find(part), std::string::npos) << "'" << part << "' not in: " << m;
}

TEST_F(Qwen2Fault, ConfigMissingField) {
  json c = json::parse(kGoodConfig);
  c.erase("intermediate_size");
  write_config(c.dump());
  expect_error(read_qwen2_config(dir_ / "config.json").status(),
               {(dir_ / "config.json").string(), "'intermediate_size'", "missing"});
}

TEST_F(Qwen2Fault, ConfigWrongType) {
  json c = json::parse(kGoodConfig);
  c["hidden_size"] = "72";
  write_config(c.dump());
  expect_error(read_qwen2_config(dir_ / "config.json").status(),
               {(dir_ / "config.json").string(), "'hidden_size'", "integer", "\"72\""});
}

TEST_F(Qwen2Fault, ConfigInconsistentHeads) {
  json c = json::parse(kGoodConfig);
  c["num_attention_heads"] = 5;
  c["num_key_value_heads"] = 5;
  write_config(c.dump());
  expect_error(read_qwen2_config(dir_ / "config.json").status(),
               {(dir_ / "config.json").string(), "hidden_size 72", "num_attention_heads 5"});
  c["num_attention_heads"] = 3;
  c["num_key_value_heads"] = 2;
  write_config(c.dump());
  expect_error(read_qwen2_config(dir_ / "config.json").status(), {"num_key_value_heads 2", "multiple"});
}

TEST_F(Qwen2Fault, ConfigUnsupportedFeatures) {
  json c = json::parse(kGoodConfig);
  c["rope_parameters"]["rope_type"] = "yarn";
  write_config(c.dump());
  expect_error(read_qwen2_config(dir_ / "config.json").status(), {"rope_type", "yarn", "not supported"});
  c = json::parse(kGoodConfig);
  c["use_sliding_window"] = true;
  c["max_window_layers"] = 1;  // layer 1 of 2 slides (transformers: i >= max_window_layers)
  write_config(c.dump());
  expect_error(read_qwen2_config(dir_ / "config.json").status(),
               {"use_sliding_window", "max_window_layers = 1", "layers 1..1", "full attention only"});
  write_config("{\"vocab_size\": 3,");
  expect_error(read_qwen2_config(dir_ / "config.json").status(), {(dir_ / "config.json").string(), "JSON"});
}

// layer_types, when present, decides per layer; anything but full attention is refused with the index.
TEST_F(Qwen2Fault, ConfigLayerTypesOtherThanFullAttention) {
  auto with_types = [&](const json& types, bool use_window) {
    json c = json::parse(kGoodConfig);
    c["layer_types"] = types;
    c["use_sliding_window"] = use_window;
    c["sliding_window"] = 8;
    write_config(c.dump());
    return read_qwen2_config(dir_ / "config.json").status();
  };
  EXPECT_TRUE(with_types({"full_attention", "attention"}, true).ok()) << "\"attention\" is the legacy full attention";
  expect_error(with_types({"full_attention", "sliding_attention"}, true),
               {"layer_types[1]", "sliding_attention", "sliding_window = 8", "full attention only"});
  expect_error(with_types({"sliding_attention", "full_attention"}, false), {"layer_types[0]", "no window"});
  expect_error(with_types({"full_attention", "chunked_attention"}, false), {"layer_types[1]", "chunked_attention"});
  expect_error(with_types({"full_attention"}, false), {"layer_types", "num_hidden_layers = 2"});
  expect_error(with_types("full_attention", false), {"layer_types", "list"});
}

TEST_F(Qwen2Fault, MissingFolder) {
  expect_error(Qwen2Model::load(dir_ / "nowhere", testing::cpu_options()).status(), {"nowhere", "config.json"});
}

TEST_F(Qwen2Fault, ConfigDisagreesWithWeightShapes) {
  // gqa2_bf16 has 2 key/value heads of 16 dims; claim 4: k_proj.weight is [32, 64], the config implies [64, 64].
  const fs::path folder = edited_copy("gqa2_bf16", [](json& c) { c["num_key_value_heads"] = 4; });
  auto model = Qwen2Model::load(folder, testing::cpu_options());
  expect_error(model.status(), {(folder / "model.safetensors").string(), "model.layers.0.self_attn.k_proj.weight",
                                "[32, 64]", "[64, 64]", "config.json", "num_key_value_heads"});
}

TEST_F(Qwen2Fault, ConfigHasMoreLayersThanTheWeights) {
  const fs::path folder = edited_copy("tied_mha", [](json& c) {
    c["num_hidden_layers"] = 3;
    c.erase("layer_types");  // else its 2 entries disagree first (as transformers says too)
  });
  expect_error(Qwen2Model::load(folder, testing::cpu_options()).status(),
               {folder.string(), "model.layers.2.input_layernorm.weight", "missing", "config.json"});
}

TEST_F(Qwen2Fault, UntiedConfigOnTiedWeights) {
  const fs::path folder = edited_copy("tied_mha", [](json& c) { c["tie_word_embeddings"] = false; });
  expect_error(Qwen2Model::load(folder, testing::cpu_options()).status(),
               {"lm_head.weight", "missing", "tie_word_embeddings"});
}

// A tied config whose file also holds an lm_head.weight of the wrong shape: an error naming it, not a silent tie.
TEST_F(Qwen2Fault, TiedConfigWithAMisshapenHead) {
  const fs::path folder = edited_copy("tied_mha", [](json&) {});
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  {
    auto reader = CheckpointReader::open(folder);  // closed before the file is rewritten
    ASSERT_TRUE(reader.ok()) << reader.status().message();
    for (const auto& name : reader.value().names()) tensors.emplace_back(name, reader.value().tensor(name).clone());
  }
  tensors.emplace_back("lm_head.weight", at::zeros({7, 64}));
  ASSERT_TRUE(write_safetensors(folder / "model.safetensors", tensors).ok());
  expect_error(Qwen2Model::load(folder, testing::cpu_options()).status(),
               {"model.safetensors", "'lm_head.weight'", "[7, 64]", "[256, 64]", "tie_word_embeddings"});
}

}  // namespace
}  // namespace loft
