// Qwen2Model on CUDA: the explicitly chosen attention kernels (flash for bf16, efficient with expanded K/V for fp32,
// math with a key mask for cached decoding) against the CPU fp32 model. Skips where no CUDA device is visible.
#include <iostream>

#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "loft/framework/generation.h"
#include "loft/framework/qwen2.h"
#include "model_test_support.h"
#include "packing_support.h"

namespace loft {
namespace {

Qwen2Config gpu_config() {
  Qwen2Config c = testing::small_config(4, 2);
  c.head_dim = 64;  // flash wants head_dim % 8 == 0; Qwen2 uses 64 or 128
  c.hidden_size = 256;
  c.intermediate_size = 384;
  c.initializer_range = 0.05;
  return c;
}

ModelOptions cuda_options(c10::ScalarType dtype) {
  ModelOptions o = testing::cpu_options(dtype);
  o.device = c10::Device(c10::kCUDA, 0);
  return o;
}


TEST(Qwen2Gpu, KernelsAgreeWithCpuAndGenerationIsConsistent) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
  auto cpu = Qwen2Model::create_random(gpu_config(), 11, testing::cpu_options(at::kFloat));
  const at::Tensor ids = at::randint(0, 97, {2, 300}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor expected = cpu.value()->logits(ids);

  for (auto dtype : {at::kBFloat16, at::kFloat}) {
    testing::NormsTrain peft;
    ModelOptions o = cuda_options(dtype);
    o.peft = &peft;
    auto model = Qwen2Model::create_random(gpu_config(), 11, o);
    ASSERT_TRUE(model.ok()) << model.status().message();
    Qwen2Model& m = *model.value();
    const at::Tensor logits = m.logits(ids, {}, /*training=*/true);
    const double err = testing::relative_error(logits.cpu(), expected);
    std::cout << "[ gpu ] " << c10::toString(dtype) << ": attention " << m.attention_backend()
              << ", relative logit error vs CPU fp32 " << err << "\n";
    EXPECT_LT(err, dtype == at::kFloat ? 1e-4 : 5e-2);
    EXPECT_EQ(m.attention_backend().rfind(dtype == at::kFloat ? "efficient" : "flash", 0), 0u) << m.attention_backend();
    logits.to(at::kFloat).square().mean().backward();
    for (auto& [name, t] : m.trainable_parameters()) {
      ASSERT_TRUE(t.grad().defined()) << name;
      EXPECT_TRUE(t.grad().isfinite().all().item<bool>()) << name;
      EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << name;
    }

    std::vector<std::vector<int64_t>> prompts{{5, 9, 17, 3, 44, 2, 8}, {11}, {60, 61, 62, 63}};
    GenerationConfig g;
    g.max_new_tokens = 10;
    auto out = generate(m, prompts, g);
    ASSERT_TRUE(out.ok()) << out.status().message();
    if (dtype != at::kFloat) continue;  // bf16 near-ties may legitimately flip between the two paths
    for (size_t i = 0; i < prompts.size(); ++i) {
      std::vector<int64_t> all = prompts[i];
      all.insert(all.end(), out.value()[i].begin(), out.value()[i].end());
      const at::Tensor full = m.logits(at::tensor(all, at::kLong).unsqueeze(0)).argmax(-1)[0].cpu();
      const int64_t p = static_cast<int64_t>(prompts[i].size());
      EXPECT_EQ(testing::to_ids(full.slice(0, p - 1, p - 1 + 10)), out.value()[i]) << "prompt " << i;
    }
  }
  // The user's SDPA flags are restored after every call.
  EXPECT_TRUE(at::globalContext().userEnabledMathSDP());
  EXPECT_TRUE(at::globalContext().userEnabledFlashSDP());
}

// bf16 packed rows go through flash attention's variable-length kernel, fp32 through the efficient kernel with a
// block-diagonal mask: both must equal one example per row.
TEST(Qwen2Gpu, PackedRowsEqualOneExamplePerRow) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
  for (auto dtype : {at::kBFloat16, at::kFloat}) {
    auto model = Qwen2Model::create_random(gpu_config(), 11, cuda_options(dtype));
    ASSERT_TRUE(model.ok()) << model.status().message();
    double loss_diff = 0;
    const double err = testing::packed_vs_unpacked(*model.value(), 16, &loss_diff);
    std::cout << "[ gpu ] packed " << c10::toString(dtype) << ": hidden-state error " << err << ", loss difference "
              << loss_diff << "\n";
    EXPECT_LT(err, dtype == at::kFloat ? 1e-5 : 2e-2);
    EXPECT_LT(loss_diff, dtype == at::kFloat ? 1e-5 : 1e-2);
  }
}

}  // namespace
}  // namespace loft
