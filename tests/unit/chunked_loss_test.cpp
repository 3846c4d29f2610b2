// The chunked loss equals the unchunked one, value and gradients, for any chunk size and with ignored labels.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "loft/framework/chunked_loss.h"

namespace loft {
namespace {

TEST(ChunkedLoss, MatchesUnchunkedValueAndGradients) {
  torch::manual_seed(3);
  const int64_t n = 37, h = 24, v = 101;
  auto hidden = torch::randn({n, h}, torch::dtype(torch::kDouble).requires_grad(true));
  auto weight = torch::randn({v, h}, torch::dtype(torch::kDouble).requires_grad(true));
  auto labels = torch::randint(0, v, {n}, torch::kLong);
  labels.index_put_({torch::indexing::Slice(0, 5)}, kIgnoreLabel);
  labels[20] = kIgnoreLabel;

  auto ref = torch::nn::functional::cross_entropy(
      torch::matmul(hidden, weight.t()), labels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel).reduction(torch::kSum));
  auto ref_grads = torch::autograd::grad({ref * 0.5}, {hidden, weight});

  for (int64_t chunk : {1, 7, 16, 37, 100, 0}) {
    SCOPED_TRACE(chunk);
    auto loss = chunked_linear_cross_entropy(hidden, weight, labels, chunk);
    // In float64 the chunked computation is the unchunked one up to summation order.
    EXPECT_NEAR(loss.item<double>(), ref.item<double>(), 1e-12 * std::abs(ref.item<double>()));
    auto grads = torch::autograd::grad({loss * 0.5}, {hidden, weight});
    EXPECT_TRUE(torch::allclose(grads[0], ref_grads[0], 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(grads[1], ref_grads[1], 1e-12, 1e-12));
  }
}

TEST(ChunkedLoss, MatchesTheUnchunkedComputationInFloat32) {
  torch::manual_seed(4);
  auto hidden = torch::randn({64, 32}, torch::requires_grad());
  auto weight = torch::randn({500, 32});
  auto labels = torch::randint(0, 500, {64}, torch::kLong);
  auto whole = chunked_linear_cross_entropy(hidden, weight, labels, 64);
  auto ref = torch::nn::functional::cross_entropy(
      torch::matmul(hidden, weight.t()), labels,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  EXPECT_NEAR(whole.item<float>(), ref.item<float>(), 1e-3);
  auto g_whole = torch::autograd::grad({whole}, {hidden})[0];
  auto chunked = chunked_linear_cross_entropy(hidden, weight, labels, 5);
  auto g_chunked = torch::autograd::grad({chunked}, {hidden})[0];
  // Only GEMM blocking and summation order differ between chunkings, and the blocking depends on the CPU (AVX2 vs
  // AVX-512 kernels), so both are held to the float64 result within a float32 rounding bound scaled by the gradient's
  // size, not to each other bit for bit.
  auto hidden64 = hidden.detach().to(torch::kDouble).requires_grad_(true);
  auto ref64 = torch::nn::functional::cross_entropy(
      torch::matmul(hidden64, weight.to(torch::kDouble).t()), labels,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  auto g_ref = torch::autograd::grad({ref64}, {hidden64})[0];
  const double scale = g_ref.abs().max().item<double>();
  const double bound = 1e-5 * scale;  // ~ 500 terms x float32 epsilon, far below any real error (wrong chunk: O(scale))
  EXPECT_LT((g_whole.to(torch::kDouble) - g_ref).abs().max().item<double>(), bound);
  EXPECT_LT((g_chunked.to(torch::kDouble) - g_ref).abs().max().item<double>(), bound);
  EXPECT_NEAR(whole.item<float>(), chunked.item<float>(), 1e-3);
}

TEST(ChunkedLoss, FrozenWeightGetsNoGradientAndShapesAreChecked) {
  auto hidden = torch::randn({4, 8}, torch::requires_grad());
  auto weight = torch::randn({10, 8});
  auto loss = chunked_linear_cross_entropy(hidden, weight, torch::tensor({1, 2, 3, 4}, torch::kLong));
  loss.backward();
  EXPECT_TRUE(hidden.grad().defined());
  EXPECT_FALSE(weight.grad().defined());
  EXPECT_THROW(chunked_linear_cross_entropy(hidden, torch::randn({10, 9}), torch::tensor({1, 2, 3, 4}, torch::kLong)),
               c10::Error);
}

}  // namespace
}  // namespace loft
