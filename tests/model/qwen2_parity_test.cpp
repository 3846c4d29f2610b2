// Parity with transformers: fp32 logits (incl. a right-padded batch) and 32-token greedy continuations on the
// checkpoints make_qwen2_fixtures.py writes (tied/untied, MHA and GQA 2/3/4, odd sizes, bf16 file, sharded).
#include <filesystem>
#include <iostream>

#include <gtest/gtest.h>

#include "loft/framework/generation.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/safetensors.h"
#include "model_test_support.h"

namespace loft {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(LOFT_QWEN2_FIXTURE_DIR) / name; }

struct Reference {
  std::map<std::string, at::Tensor> tensors;
  const at::Tensor& operator[](const std::string& name) const { return tensors.at(name); }
};

Reference read_reference(const fs::path& folder) {
  auto reader = CheckpointReader::open(folder / "reference.safetensors");
  EXPECT_TRUE(reader.ok()) << reader.status().message();
  Reference ref;
  if (!reader.ok()) return ref;
  for (const auto& name : reader.value().names()) ref.tensors[name] = reader.value().tensor(name).clone();
  return ref;
}

class Qwen2Parity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    folder_ = fixture(GetParam());
    ASSERT_TRUE(fs::exists(folder_ / "config.json"))
        << folder_ << " is missing: the ctest fixture model.qwen2_fixtures writes it (make_qwen2_fixtures.py)";
    ref_ = read_reference(folder_);
  }
  fs::path folder_;
  Reference ref_;
};

TEST_P(Qwen2Parity, LogitsMatchTransformersInFloat32) {
  auto model = Qwen2Model::load(folder_, testing::cpu_options(at::kFloat));
  ASSERT_TRUE(model.ok()) << model.status().message();
  const at::Tensor ids = ref_["input_ids"], lengths = ref_["lengths"], expected = ref_["logits"];
  const at::Tensor logits = model.value()->logits(ids, lengths);
  ASSERT_EQ(logits.sizes(), expected.sizes());
  double worst = 0;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    const int64_t len = lengths[b].item<int64_t>();  // padded positions are not compared
    const double err = testing::relative_error(logits[b].slice(0, 0, len), expected[b].slice(0, 0, len));
    worst = std::max(worst, err);
    EXPECT_LT(err, 1e-5) << "row " << b << " (" << len << " real tokens)";
  }
  std::cout << "[ parity ] " << GetParam() << ": max relative logit error " << worst << " (attention "
            << model.value()->attention_backend() << ")\n";
  RecordProperty("max_relative_logit_error", std::to_string(worst));

  // The padded row's real positions alone, unpadded: the same logits (padding after a token never reaches it).
  const int64_t len1 = lengths[1].item<int64_t>();
  const at::Tensor alone = model.value()->logits(ids[1].slice(0, 0, len1).unsqueeze(0));
  EXPECT_LT(testing::relative_error(alone[0], logits[1].slice(0, 0, len1)), 1e-6);
}

TEST_P(Qwen2Parity, GreedyContinuationsMatchTransformers) {
  auto model = Qwen2Model::load(folder_, testing::cpu_options(at::kFloat));
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<std::vector<int64_t>> prompts, expected;
  for (int i = 0; ref_.tensors.count("prompt_" + std::to_string(i)) != 0; ++i) {
    prompts.push_back(testing::to_ids(ref_["prompt_" + std::to_string(i)]));
    expected.push_back(testing::to_ids(ref_["greedy_" + std::to_string(i)]));
  }
  ASSERT_GE(prompts.size(), 2u);
  GenerationConfig g;
  g.max_new_tokens = static_cast<int64_t>(expected[0].size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto one = generate(*model.value(), {prompts[i]}, g);
    ASSERT_TRUE(one.ok()) << one.status().message();
    EXPECT_EQ(one.value()[0], expected[i]) << "prompt " << i << " alone";
  }
  auto batched = generate(*model.value(), prompts, g);  // prompts of different lengths in one batch
  ASSERT_TRUE(batched.ok()) << batched.status().message();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(batched.value()[i], expected[i]) << "prompt " << i << " batched";
}

// The same checkpoint computed in bf16 (the training dtype): close to the fp32 reference, not equal.
TEST_P(Qwen2Parity, Bfloat16ComputeStaysClose) {
  auto model = Qwen2Model::load(folder_, testing::cpu_options(at::kBFloat16));
  ASSERT_TRUE(model.ok()) << model.status().message();
  const at::Tensor ids = ref_["input_ids"].slice(0, 0, 1);
  const double err = testing::relative_error(model.value()->logits(ids)[0], ref_["logits"][0]);
  std::cout << "[ parity ] " << GetParam() << ": bf16 compute, relative logit error " << err << "\n";
  EXPECT_LT(err, 5e-2);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Qwen2Parity, ::testing::Values("tied_mha", "gqa2_bf16", "gqa4_sharded", "odd_72"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace loft
