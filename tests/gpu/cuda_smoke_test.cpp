// GPU checks (label gpu): skipped with a printed reason where no CUDA device is visible (CI).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "loft/framework/chunked_loss.h"
#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/quantizer.h"

namespace loft {
namespace {

#define LOFT_REQUIRE_CUDA()                                                   \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

TEST(Gpu, ChunkedLossOnCudaMatchesFloat64Reference) {
  LOFT_REQUIRE_CUDA();
  torch::manual_seed(5);
  const int64_t n = 512, h = 256, v = 32000;
  auto hidden64 = torch::randn({n, h}, torch::kDouble) * 0.1;
  auto weight64 = torch::randn({v, h}, torch::kDouble) * 0.1;
  auto labels = torch::randint(0, v, {n}, torch::kLong);
  auto ref = torch::nn::functional::cross_entropy(
      torch::matmul(hidden64, weight64.t()), labels,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  auto hidden = hidden64.to(torch::kCUDA, torch::kBFloat16).requires_grad_();
  auto weight = weight64.to(torch::kCUDA, torch::kBFloat16);
  auto loss = chunked_linear_cross_entropy(hidden, weight, labels.to(torch::kCUDA), 100);
  EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 2e-2 * std::abs(ref.item<double>()));
  loss.backward();
  EXPECT_EQ(hidden.grad().scalar_type(), torch::kBFloat16);
}

TEST(Gpu, BuiltInPluginsRunOnCuda) {
  LOFT_REQUIRE_CUDA();
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  RunContext ctx(c10::Device(c10::kCUDA, 0), c10::kBFloat16, 1);
  auto q = registry.create_quantizer("none", ctx, Options("quantizer", {}));
  ASSERT_TRUE(q.ok()) << q.status().message();
  auto w = torch::randn({64, 32}, torch::kCUDA);
  auto stored = q.value()->quantize(w, "x");
  auto x = torch::randn({8, 32}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
  auto y = stored->forward(x);
  EXPECT_TRUE(y.is_cuda());
  EXPECT_TRUE(torch::allclose(y.to(torch::kFloat), torch::matmul(x.to(torch::kFloat), w.to(torch::kBFloat16).to(torch::kFloat).t()), 5e-2, 5e-2));
}

}  // namespace
}  // namespace loft
