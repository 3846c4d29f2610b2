// optimizer/adamw_cpu on CUDA tensors: gradients copied to pinned host memory on a side stream as backward produces
// them, the step on the host, the tensors written back: the same parameters as optimizer/adamw's fused GPU step, and
// no optimizer state on the GPU.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/optimizer.h"
#include "loft/param_group.h"

namespace loft {
namespace {

#define LOFT_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

struct Trained {
  at::Tensor a, b;
};

// Six steps of two micro-batches each on two groups (different lr scale and weight decay), as the trainer drives an
// optimizer: zero_grad, backward passes, gradients(), step.
Trained train(PluginRegistry& registry, const std::string& name, const RunContext& ctx) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor a = torch::randn({64, 33}, gen).to(ctx.device()).requires_grad_();
  at::Tensor b = torch::randn({129}, gen).to(ctx.device()).requires_grad_();
  ParamGroup one, two;
  one.name = "one";
  one.weight_decay = 0.1;
  one.tensors = {{"a", a}};
  two.name = "two";
  two.lr_scale = 3.0;
  two.tensors = {{"b", b}};
  auto made = registry.create_optimizer(name, ctx, Options("optimizer", {}));
  EXPECT_TRUE(made.ok()) << made.status().message();
  if (!made.ok()) return {};
  auto optimizer = std::move(made).value();
  optimizer->attach({one, two}, OptimizerSettings{0.9, 0.999, 1e-8});
  for (int step = 0; step < 6; ++step) {
    optimizer->zero_grad();
    for (int micro = 0; micro < 2; ++micro) {
      const double k = 1.0 + 0.3 * step + 0.1 * micro;
      auto loss = (a.sin() * k).pow(2).sum() + (b * k).exp().sum() * 0.01;
      loss.backward();
    }
    auto grads = optimizer->gradients();
    EXPECT_EQ(grads.size(), 2u);
    for (const auto& g : grads) EXPECT_TRUE(g.defined());
    optimizer->step(0.01);
  }
  torch::cuda::synchronize();
  if (name == "adamw_cpu") {
    for (const auto& [key, t] : optimizer->state_dict()) {
      EXPECT_TRUE(t.device().is_cpu()) << key << " is on " << t.device() << ": adamw_cpu keeps its state on the host";
    }
  }
  return {a.detach().clone(), b.detach().clone()};
}

TEST(OptimizerGpu, HostAdamWOnCudaTensorsEqualsTheFusedGpuAdamW) {
  LOFT_REQUIRE_CUDA();
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  const RunContext ctx(c10::Device(c10::kCUDA, 0), c10::kFloat, 3);
  const Trained gpu = train(registry, "adamw", ctx);
  const Trained host = train(registry, "adamw_cpu", ctx);
  ASSERT_TRUE(gpu.a.defined() && host.a.defined());
  EXPECT_TRUE(host.a.is_cuda() && host.b.is_cuda()) << "the updated tensors stay on the GPU";
  for (const auto& [mine, ref, what] : {std::tuple{host.a, gpu.a, "a"}, std::tuple{host.b, gpu.b, "b"}}) {
    const double rel = ((mine - ref).abs().max() / ref.abs().max()).item<double>();
    EXPECT_LT(rel, 1e-5) << what << ": adamw_cpu and adamw differ by " << rel << " (relative to max |x|)";
  }
  // And they trained: six steps moved the tensors.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor a0 = torch::randn({64, 33}, gen).to(ctx.device());
  EXPECT_GT((host.a - a0).abs().max().item<double>(), 1e-3);
}

}  // namespace
}  // namespace loft
