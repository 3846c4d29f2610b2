// The quantizer conformance test on CUDA: every quantizer plugin's storage moved with to(cuda) gives the CPU's
// forward, gradient and dequantized weight within the dtype's tolerance. Skips with a printed reason without a GPU.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/quantizer.h"
#include "quantizer_expectations.h"

namespace loft {
namespace {

class ConformanceGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
    registry_.discover({LOFT_PLUGIN_DIR});
    torch::manual_seed(0);
  }
  Options with_defaults(const std::string& name, const std::map<std::string, OptionValue>& over) {
    std::map<std::string, OptionValue> values;
    const PluginManifest* m = registry_.find("quantizer", name);
    EXPECT_NE(m, nullptr);
    if (m) {
      for (const auto& spec : m->options) {
        if (spec.default_value) values[spec.name] = *spec.default_value;
      }
    }
    for (const auto& [k, v] : over) values[k] = v;
    return Options("quantizer", values);
  }
  PluginRegistry registry_;
};

double rel_diff(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.cpu().to(torch::kFloat), w = want.cpu().to(torch::kFloat);
  return ((g - w).abs().max() / w.abs().max().clamp_min(1e-30)).item<double>();
}

TEST_F(ConformanceGpu, EveryQuantizerMovedToCudaMatchesItsCpuSelf) {
  for (const auto& name : registry_.names("quantizer")) {
    auto expected = conformance::quantizer_expectations().find(name);
    ASSERT_NE(expected, conformance::quantizer_expectations().end())
        << "quantizer/" << name << " has no entry in tests/plugins/quantizer_expectations.h";
    for (const auto& variant : expected->second.variants) {
      std::string described;
      for (const auto& [k, v] : variant.options) described += " " + k + "=" + format_option_value(v);
      SCOPED_TRACE("quantizer/" + name + (described.empty() ? " (defaults)" : described));
      auto w = torch::randn({256, 1536}) * 0.02;
      // float32 (tight) and bfloat16 (the training dtype: one bf16 rounding of each output, ~2^-8 relative). The
      // compute dtype is the run's, so each dtype gets its own quantizer (quantizer/none stores W in it).
      for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
        SCOPED_TRACE(c10::toString(dtype));
        RunContext ctx(c10::Device(c10::kCUDA), dtype, 1234);
        auto q = registry_.create_quantizer(name, ctx, with_defaults(name, variant.options));
        ASSERT_TRUE(q.ok()) << q.status().message();
        auto stored = q.value()->quantize(w, "model.layers.0.mlp.up_proj");
        const int64_t bytes = stored->storage_bytes();
        const double tol = dtype == torch::kFloat ? 1e-4 : 1.6e-2;
        stored->to(torch::kCPU, false);
        auto x = torch::randn({2, 24, 1536}).to(dtype).requires_grad_(true);
        auto y_cpu = stored->forward(x);
        auto dy = torch::randn_like(y_cpu);
        y_cpu.backward(dy);
        const auto dx_cpu = x.grad().clone();
        const auto deq_cpu = stored->dequantize(dtype);

        stored->to(torch::kCUDA, false);
        for (const auto& [key, t] : stored->state()) EXPECT_TRUE(t.is_cuda()) << key << " stayed on " << t.device();
        EXPECT_EQ(stored->storage_bytes(), bytes);
        auto xg = x.detach().cuda().requires_grad_(true);
        auto y_gpu = stored->forward(xg);
        ASSERT_TRUE(y_gpu.is_cuda());
        ASSERT_EQ(y_gpu.scalar_type(), dtype);
        y_gpu.backward(dy.cuda());
        EXPECT_LE(rel_diff(stored->dequantize(dtype), deq_cpu), dtype == torch::kFloat ? 1e-6 : 4e-3);
        EXPECT_LE(rel_diff(y_gpu, y_cpu), tol);
        EXPECT_LE(rel_diff(xg.grad(), dx_cpu), tol);
      }
    }
  }
}

}  // namespace
}  // namespace loft
