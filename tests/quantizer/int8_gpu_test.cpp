// quantizer/int8 on CUDA: the quantize and dequantize kernels bit-identical to the CPU reference (1.5B-model shapes
// among them), the int8 matmul (cuBLAS int8 through _int_mm, padded where its shape rules fail) equal to the CPU's
// integer part, and both forwards with their gradients. Skips with a printed reason where no CUDA device is visible.
#include <array>
#include <cstring>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/quantizer.h"

namespace loft {
namespace {

class Int8Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
    registry_.discover({LOFT_PLUGIN_DIR});
    torch::manual_seed(5);
  }
  std::unique_ptr<Quantizer> create(const std::string& matmul, double threshold) {
    auto q = registry_.create_quantizer("int8", ctx_,
                                        Options("quantizer", {{"matmul", matmul}, {"threshold", threshold}}));
    EXPECT_TRUE(q.ok()) << q.status().message();
    return q.ok() ? std::move(q).value() : nullptr;
  }
  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCUDA), c10::kBFloat16, 1234};
};

bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto ac = a.cpu().contiguous(), bc = b.cpu().contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.nbytes()) == 0;
}

TEST_F(Int8Gpu, KernelsAreBitIdenticalToTheCpuReference) {
  auto q = create("dequant", 6.0);
  ASSERT_TRUE(q);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1536, 1536}, {256, 1536}, {8960, 1536}, {1536, 8960},
                                                           {33, 100},    {4, 7},      {1, 1},      {3, 4097}};
  for (auto [out, in] : shapes) {
    for (auto src : {torch::kBFloat16, torch::kFloat}) {
      SCOPED_TRACE(std::to_string(out) + "x" + std::to_string(in) + " from " + std::string(c10::toString(src)));
      auto w = (torch::randn({out, in}) * 0.02).to(src);
      w.select(0, out / 2).zero_();                                         // a row of zeros
      w.view(-1).index_put_({torch::randint(0, out * in, {8})}, 1.5);  // outliers
      auto cpu = q->quantize(w, "site");
      auto gpu = q->quantize(w.cuda(), "site");
      ASSERT_TRUE(gpu->state().at("weight").is_cuda());
      EXPECT_TRUE(bit_equal(gpu->state().at("weight"), cpu->state().at("weight")));
      EXPECT_TRUE(bit_equal(gpu->state().at("SCB"), cpu->state().at("SCB")));
      for (auto dt : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
        auto d = gpu->dequantize(dt);
        ASSERT_TRUE(d.is_cuda());
        EXPECT_TRUE(bit_equal(d, cpu->dequantize(dt))) << dt;
      }
      // CPU storage moved to the GPU dequantizes to the same bits there.
      cpu->to(torch::kCUDA, false);
      EXPECT_TRUE(bit_equal(cpu->dequantize(torch::kBFloat16), gpu->dequantize(torch::kBFloat16)));
    }
  }
  // An unaligned view of codes takes the scalar path and gives the same bits.
  auto cpu = q->quantize(torch::randn({8, 16}), "site");
  auto state = cpu->state();
  auto padded = torch::zeros({8 * 16 + 1}, torch::dtype(torch::kChar).device(torch::kCUDA));
  padded.narrow(0, 1, 8 * 16).copy_(state.at("weight").view(-1));
  auto shifted = q->load({{"weight", padded.narrow(0, 1, 8 * 16).view({8, 16})}, {"SCB", state.at("SCB").cuda()}}, 8, 16);
  EXPECT_TRUE(bit_equal(shifted->dequantize(torch::kHalf), cpu->dequantize(torch::kHalf)));
}

TEST_F(Int8Gpu, Int8MatmulMatchesTheCpuPath) {
  // (tokens, in, out): M <= 16, K or N not multiples of 8 take the padded _int_mm; the others the direct one.
  const std::vector<std::array<int64_t, 3>> shapes = {{8, 64, 48}, {64, 1536, 256}, {33, 100, 36}, {512, 1536, 8960}};
  for (double threshold : {6.0, 0.0}) {
    auto q = create("int8", threshold);
    ASSERT_TRUE(q);
    for (const auto& s : shapes) {
      for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
        SCOPED_TRACE(std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]) + " " +
                     c10::toString(dtype) + " threshold " + std::to_string(threshold));
        auto w = torch::randn({s[2], s[1]}) * 0.02;
        auto x = torch::randn({s[0], s[1]});
        x.select(1, s[1] / 3).fill_(8.0);  // an outlier column
        x = x.to(dtype);
        auto cpu = q->quantize(w, "site");
        auto gpu = q->quantize(w.cuda(), "site");
        torch::Tensor y_cpu, y_gpu;
        {
          torch::NoGradGuard g;
          y_cpu = cpu->forward(x);
          y_gpu = gpu->forward(x.cuda());
        }
        ASSERT_EQ(y_gpu.scalar_type(), dtype);
        // The integer part is exact on both; only the outlier GEMM's summation order differs.
        const double scale = y_cpu.abs().max().item<double>();
        const double diff = (y_gpu.cpu().to(torch::kFloat) - y_cpu.to(torch::kFloat)).abs().max().item<double>();
        EXPECT_LE(diff, scale * (dtype == torch::kFloat ? 1e-5 : 8e-3)) << diff << " vs |y| " << scale;
      }
    }
  }
}

TEST_F(Int8Gpu, ForwardAndGradientInBothModes) {
  for (const std::string mode : {"dequant", "int8"}) {
    SCOPED_TRACE(mode);
    auto q = create(mode, 6.0);
    ASSERT_TRUE(q);
    auto w = torch::randn({256, 1536}) * 0.02;
    auto stored = q->quantize(w.to(torch::kBFloat16).cuda(), "site");
    auto x = torch::randn({2, 40, 1536}, torch::dtype(torch::kBFloat16).device(torch::kCUDA)).requires_grad_(true);
    auto y = stored->forward(x);
    ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
    auto deq = stored->dequantize(torch::kBFloat16);
    auto ref = torch::matmul(x.detach().to(torch::kFloat), deq.to(torch::kFloat).t());
    EXPECT_LE((y.to(torch::kFloat) - ref).abs().max().item<double>(), 0.03 * ref.abs().max().item<double>());
    auto dy = torch::randn_like(y);
    y.backward(dy);
    auto gref = torch::matmul(dy.to(torch::kFloat), deq.to(torch::kFloat));
    EXPECT_LE((x.grad().to(torch::kFloat) - gref).abs().max().item<double>(), 0.01 * gref.abs().max().item<double>());
  }
}

}  // namespace
}  // namespace loft
