// peft/lora and peft/dora without Python: initialisation, determinism, targeting, the forward and merge formulas
// against a dense reference written here, dropout, rsLoRA, bf16 activations and CUDA (skipped without a GPU).
#include <cmath>

#include "peft_test_support.h"

namespace loft::testing_peft {
namespace {

class PeftLoraUnit : public PeftFixture {};

// W' for LoRA and DoRA, straight from the papers' formulas.
torch::Tensor dense_merged(const torch::Tensor& w, const torch::Tensor& a, const torch::Tensor& b, double scaling,
                           const torch::Tensor& magnitude) {
  auto merged = w + scaling * b.matmul(a);
  if (!magnitude.defined()) return merged;
  return magnitude.unsqueeze(1) * merged / merged.norm(2, {1}, true);
}

torch::Tensor get(const NamedTensors& tensors, const std::string& key) {
  for (const auto& [k, v] : tensors) {
    if (k == key) return v;
  }
  ADD_FAILURE() << "no '" << key << "'";
  return {};
}

TEST_F(PeftLoraUnit, FreshAdaptersKeepTheLayerForEveryInit) {
  for (const std::string plugin : {"lora", "dora"}) {
    for (const std::string init : {"kaiming", "gaussian"}) {
      SCOPED_TRACE(plugin + " " + init);
      auto m = method(plugin, {{"init", init}});
      auto w = torch::randn({24, 16}), b = torch::randn({24});
      auto s = site("model.layers.0.mlp.up_proj", w, b);
      auto adapter = m->attach(s.site);
      auto x = torch::randn({2, 5, 16});
      auto base_out = s.base->forward(x) + b;
      EXPECT_LE(max_rel_error(adapter->forward(x, base_out, false), base_out), 1e-6);
      EXPECT_LE(max_rel_error(adapter->merged_weight(torch::kFloat), w), 1e-6);
      auto st = adapter->state_dict();
      EXPECT_EQ(get(st, "lora_B.weight").abs().max().item<double>(), 0.0);
      EXPECT_EQ(get(st, "lora_A.weight").dtype(), torch::kFloat);
      if (plugin == "dora") EXPECT_LE(max_rel_error(get(st, "lora_magnitude_vector"), w.norm(2, {1})), 1e-6);
    }
  }
}

TEST_F(PeftLoraUnit, InitDistributionsFollowPeft) {
  auto w = torch::randn({64, 400});
  {
    auto a = get(method("lora", {{"r", int64_t{16}}})->attach(site("model.layers.0.mlp.up_proj", w).site)->state_dict(),
                 "lora_A.weight");
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: U(-1/sqrt(in), 1/sqrt(in)).
    EXPECT_LE(a.abs().max().item<double>(), 1.0 / std::sqrt(400.0));
    EXPECT_NEAR(a.std().item<double>(), 1.0 / std::sqrt(3.0 * 400.0), 0.05 / std::sqrt(400.0));
  }
  {
    auto a = get(method("lora", {{"r", int64_t{16}}, {"init", std::string("gaussian")}})
                     ->attach(site("model.layers.0.mlp.up_proj", w).site)
                     ->state_dict(),
                 "lora_A.weight");
    EXPECT_NEAR(a.std().item<double>(), 1.0 / 16, 0.005);
  }
  {
    auto st = method("lora", {{"r", int64_t{16}}, {"init", std::string("random")}})
                  ->attach(site("model.layers.0.mlp.up_proj", w).site)
                  ->state_dict();
    auto b = get(st, "lora_B.weight");
    EXPECT_LE(b.abs().max().item<double>(), 1.0 / std::sqrt(16.0));
    EXPECT_GT(b.abs().max().item<double>(), 0.5 / std::sqrt(16.0));
  }
}

TEST_F(PeftLoraUnit, InitDependsOnSeedAndSiteNameNotOnOrder) {
  auto w = torch::randn({8, 8});
  auto q = site("model.layers.0.self_attn.q_proj", w), k = site("model.layers.0.self_attn.k_proj", w);
  auto m1 = method("lora"), m2 = method("lora");
  auto q1 = get(m1->attach(q.site)->state_dict(), "lora_A.weight");
  auto k1 = get(m1->attach(k.site)->state_dict(), "lora_A.weight");
  auto k2 = get(m2->attach(k.site)->state_dict(), "lora_A.weight");  // other order
  auto q2 = get(m2->attach(q.site)->state_dict(), "lora_A.weight");
  EXPECT_TRUE(torch::equal(q1, q2));
  EXPECT_TRUE(torch::equal(k1, k2));
  EXPECT_FALSE(torch::equal(q1, k1));
  RunContext other_seed{c10::Device(c10::kCPU), c10::kFloat, 99};
  auto q3 = get(method("lora", {}, &other_seed)->attach(q.site)->state_dict(), "lora_A.weight");
  EXPECT_FALSE(torch::equal(q1, q3));
  // The global torch RNG plays no part.
  torch::manual_seed(7);
  auto q4 = get(method("lora")->attach(q.site)->state_dict(), "lora_A.weight");
  EXPECT_TRUE(torch::equal(q1, q4));
}

TEST_F(PeftLoraUnit, ForwardGradientsAndMergeMatchTheDenseFormulas) {
  for (const std::string plugin : {"lora", "dora"}) {
    for (bool rslora : {false, true}) {
      SCOPED_TRACE(plugin + (rslora ? " rslora" : ""));
      const int64_t r = 4;
      const double alpha = 6.0, scaling = rslora ? alpha / 2.0 : alpha / 4.0;
      auto m = method(plugin, {{"r", r}, {"alpha", alpha}, {"rslora", rslora}, {"init", std::string("random")}});
      auto w = torch::randn({12, 20}), bias = torch::randn({12});
      auto s = site("model.layers.1.self_attn.q_proj", w, bias, 1);
      auto adapter = m->attach(s.site);
      auto st = adapter->state_dict();
      auto a = get(st, "lora_A.weight"), b = get(st, "lora_B.weight");
      auto mag = plugin == "dora" ? get(st, "lora_magnitude_vector") : torch::Tensor();
      if (mag.defined()) EXPECT_LE(max_rel_error(mag, (w + scaling * b.matmul(a)).norm(2, {1})), 1e-6);

      // Move the magnitude off its init so DoRA's scale is not 1.
      if (mag.defined()) {
        torch::NoGradGuard g;
        mag.mul_(torch::rand({12}) + 0.5);
      }
      auto x = torch::randn({3, 20});
      auto y = adapter->forward(x, s.base->forward(x) + bias, /*training=*/true);
      auto merged_ref = dense_merged(w, a.detach(), b.detach(), scaling, mag.defined() ? mag.detach() : mag);
      EXPECT_LE(max_rel_error(y, x.matmul(merged_ref.t()) + bias), 1e-5);
      EXPECT_LE(max_rel_error(adapter->merged_weight(torch::kFloat), merged_ref), 1e-6);
      EXPECT_EQ(adapter->merged_weight(torch::kBFloat16).dtype(), torch::kBFloat16);

      // Gradients: LoRA's are those of the dense formula; DoRA's treat the norm as a constant (PEFT's detach).
      auto g = torch::randn_like(y);
      y.backward(g);
      auto a2 = a.detach().clone().requires_grad_(true), b2 = b.detach().clone().requires_grad_(true);
      torch::Tensor mag2, ref;
      auto delta = scaling * b2.matmul(a2);
      if (mag.defined()) {
        mag2 = mag.detach().clone().requires_grad_(true);
        auto norm = (w + delta).norm(2, {1}).detach();
        ref = x.matmul(((mag2 / norm).unsqueeze(1) * (w + delta)).t()) + bias;
      } else {
        ref = x.matmul((w + delta).t()) + bias;
      }
      ref.backward(g);
      EXPECT_LE(max_rel_error(a.grad(), a2.grad()), 1e-5);
      EXPECT_LE(max_rel_error(b.grad(), b2.grad()), 1e-5);
      if (mag.defined()) EXPECT_LE(max_rel_error(mag.grad(), mag2.grad()), 1e-5);
    }
  }
}

TEST_F(PeftLoraUnit, DropoutOnlyWhileTraining) {
  for (const std::string plugin : {"lora", "dora"}) {
    SCOPED_TRACE(plugin);
    auto m = method(plugin, {{"dropout", 0.5}, {"init", std::string("random")}});
    auto w = torch::randn({16, 32});
    auto s = site("model.layers.0.mlp.gate_proj", w);
    auto adapter = m->attach(s.site);
    auto x = torch::randn({4, 32});
    auto base_out = s.base->forward(x);
    auto eval1 = adapter->forward(x, base_out, false), eval2 = adapter->forward(x, base_out, false);
    EXPECT_TRUE(torch::equal(eval1, eval2));
    EXPECT_LE(max_rel_error(eval1, x.matmul(adapter->merged_weight(torch::kFloat).t())), 1e-5);
    auto train = adapter->forward(x, base_out, true);
    EXPECT_GT(max_rel_error(train, eval1), 1e-3);
    train.sum().backward();
    for (const auto& [k, v] : adapter->trainable()) EXPECT_TRUE(v.grad().defined()) << k;
  }
}

TEST_F(PeftLoraUnit, TargetsByNameSuffixRegexAndLayers) {
  auto lin = [](const std::string& name, int64_t layer) {
    return LinearSite{name, name.substr(name.rfind('.') + 1), layer, 8, 8, nullptr, {}};
  };
  auto q0 = lin("model.layers.0.self_attn.q_proj", 0), q3 = lin("model.layers.3.self_attn.q_proj", 3);
  auto down2 = lin("model.layers.2.mlp.down_proj", 2), head = lin("lm_head", -1);
  auto all = method("lora");
  EXPECT_TRUE(all->targets(q0));
  EXPECT_TRUE(all->targets(down2));
  EXPECT_FALSE(all->targets(head));
  auto layers = method("lora", {{"layers", std::string("1-3, 5")}, {"targets", std::vector<std::string>{"q_proj", "lm_head"}}});
  EXPECT_FALSE(layers->targets(q0));
  EXPECT_TRUE(layers->targets(q3));
  EXPECT_FALSE(layers->targets(down2));
  EXPECT_FALSE(layers->targets(head));  // as PEFT: no layer index, not adapted when layers are chosen
  auto re = method("lora", {{"targets", std::vector<std::string>{"re:model\\.layers\\.[0-2]\\..*_proj", "lm_head"}}});
  EXPECT_TRUE(re->targets(q0));
  EXPECT_TRUE(re->targets(down2));
  EXPECT_FALSE(re->targets(q3));
  EXPECT_TRUE(re->targets(head));
  auto suffix = method("lora", {{"targets", std::vector<std::string>{"mlp.down_proj"}}});
  EXPECT_TRUE(suffix->targets(down2));
  EXPECT_FALSE(suffix->targets(q0));
  // PEFT's regex form: one string, plain entries as "(?:.*\.)?name".
  const std::string cfg = re->adapter_config_json("");
  EXPECT_NE(cfg.find(R"("target_modules": "(?:model\\.layers\\.[0-2]\\..*_proj)|(?:.*\\.)?lm_head")"), std::string::npos)
      << cfg;
}

TEST_F(PeftLoraUnit, ModulesToSaveSelectsWholeParameters) {
  auto m = method("lora", {{"modules_to_save", std::vector<std::string>{"embed_tokens", "model.norm.weight"}}});
  std::vector<std::string> names{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                                 "model.norm.weight"};
  EXPECT_EQ(m->trainable_parameters(names), (std::vector<std::string>{"model.embed_tokens.weight", "model.norm.weight"}));
  EXPECT_TRUE(method("lora")->trainable_parameters(names).empty());
}

TEST_F(PeftLoraUnit, Bf16ActivationsKeepFp32MasterWeights) {
  for (const std::string plugin : {"lora", "dora"}) {
    SCOPED_TRACE(plugin);
    RunContext bf16_ctx{c10::Device(c10::kCPU), c10::kBFloat16, 1234};
    auto m = method(plugin, {{"init", std::string("random")}}, &bf16_ctx);
    auto bf16_quantizer = registry_.create_quantizer("none", bf16_ctx, defaults("quantizer", "none"));
    ASSERT_TRUE(bf16_quantizer.ok());
    auto w = torch::randn({32, 64});
    auto s = site("model.layers.0.mlp.up_proj", w);
    s.base = bf16_quantizer.value()->quantize(w, s.site.name);  // bf16 storage, as a bf16 run stores it
    s.site.base = s.base.get();
    auto adapter = m->attach(s.site);
    auto x = torch::randn({4, 64}).to(torch::kBFloat16);
    auto y = adapter->forward(x, s.base->forward(x), true);
    EXPECT_EQ(y.dtype(), torch::kBFloat16);
    auto ref = x.to(torch::kFloat).matmul(adapter->merged_weight(torch::kFloat).t());
    EXPECT_LE(max_rel_error(y, ref), 2e-2);
    y.to(torch::kFloat).sum().backward();
    for (const auto& [k, v] : adapter->trainable()) {
      EXPECT_EQ(v.dtype(), torch::kFloat) << k;
      ASSERT_TRUE(v.grad().defined()) << k;
      EXPECT_EQ(v.grad().dtype(), torch::kFloat) << k;
    }
  }
}

TEST_F(PeftLoraUnit, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  RunContext cuda_ctx{c10::Device(c10::kCUDA, 0), c10::kFloat, 1234};
  for (const std::string plugin : {"lora", "dora"}) {
    SCOPED_TRACE(plugin);
    auto w = torch::randn({48, 40}), bias = torch::randn({48});
    auto cpu_site = site("model.layers.0.self_attn.q_proj", w, bias);
    auto gpu_site = site("model.layers.0.self_attn.q_proj", w.cuda(), bias.cuda());
    auto cpu = method(plugin, {{"init", std::string("random")}})->attach(cpu_site.site);
    auto gpu = method(plugin, {{"init", std::string("random")}}, &cuda_ctx)->attach(gpu_site.site);
    for (const auto& [k, v] : gpu->state_dict()) EXPECT_TRUE(v.is_cuda()) << k;
    auto x = torch::randn({5, 40});
    auto y_cpu = cpu->forward(x, cpu_site.base->forward(x) + bias, false);
    auto xg = x.cuda();
    auto y_gpu = gpu->forward(xg, gpu_site.base->forward(xg) + bias.cuda(), false);
    // Same seed, same site: the same adapter on either device (init runs on the CPU generator).
    EXPECT_LE(max_rel_error(y_gpu.cpu(), y_cpu), 1e-4);
    EXPECT_LE(max_rel_error(gpu->merged_weight(torch::kFloat).cpu(), cpu->merged_weight(torch::kFloat)), 1e-5);
  }
}

}  // namespace
}  // namespace loft::testing_peft
