// Parameter groups (the host's no-decay rule, resolution of a PEFT method's groups, LoRA+) and the optimizer plugins
// (conformance with a reference AdamW, state round trip, exact resume through the trainer), on CPU.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "loft/framework/chunked_loss.h"
#include "loft/framework/files.h"
#include "loft/framework/host.h"
#include "loft/framework/param_groups.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/trainer.h"
#include "loft/optimizer.h"
#include "loft/peft.h"
#include "loft/quantizer.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// The host's weight-decay rule and group resolution.

TEST(ParamGroups, NoDecayForBiasesAndNormsAsTransformers) {
  for (const char* name : {"model.layers.0.self_attn.q_proj.bias", "model.layers.3.input_layernorm.weight",
                           "model.layers.3.post_attention_layernorm.weight", "model.norm.weight",
                           "model.layers.0.self_attn.q_norm.weight", "encoder.LayerNorm.weight", "rmsnorm.weight"}) {
    EXPECT_FALSE(default_weight_decay_applies(name)) << name;
  }
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight", "model.layers.0.mlp.up_proj.weight",
                           "model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_B.weight",
                           "model.layers.0.self_attn.q_proj.lora_magnitude_vector", "normalizer.weight"}) {
    EXPECT_TRUE(default_weight_decay_applies(name)) << name;
  }
}

NamedTensors tensors(const std::vector<std::string>& names) {
  NamedTensors out;
  for (const auto& n : names) out.emplace_back(n, torch::zeros({2}, torch::kFloat).requires_grad_());
  return out;
}

TEST(ParamGroups, DefaultGroupSplitsIntoDecayAndNoDecayInModelOrder) {
  auto all = tensors({"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                      "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
                      "model.norm.weight", "lm_head.weight"});
  ParamGroup g;
  g.name = "default";
  g.tensors = all;
  auto resolved = resolve_param_groups(all, {g}, 0.05, "peft/full");
  ASSERT_TRUE(resolved.ok()) << resolved.status().message();
  ASSERT_EQ(resolved.value().size(), 2u);
  const ParamGroup& decay = resolved.value()[0];
  const ParamGroup& no_decay = resolved.value()[1];
  EXPECT_EQ(decay.name, "default");
  EXPECT_EQ(decay.weight_decay, 0.05);
  EXPECT_EQ(no_decay.name, "default.no_decay");
  EXPECT_EQ(no_decay.weight_decay, 0.0);
  std::vector<std::string> d, n;
  for (const auto& [name, t] : decay.tensors) d.push_back(name);
  for (const auto& [name, t] : no_decay.tensors) n.push_back(name);
  EXPECT_EQ(d, (std::vector<std::string>{"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                                         "lm_head.weight"}));
  EXPECT_EQ(n, (std::vector<std::string>{"model.layers.0.input_layernorm.weight",
                                         "model.layers.0.self_attn.q_proj.bias", "model.norm.weight"}));
  EXPECT_TRUE(decay.tensors[0].second.is_same(all[0].second));
}

TEST(ParamGroups, ExplicitDecayScaleAppliesToTheWholeGroup) {
  auto all = tensors({"a.bias", "b.weight"});
  ParamGroup on, off;
  on.name = "on";
  on.lr_scale = 4;
  on.weight_decay_scale = 1.0;
  on.tensors = {all[0]};
  off.name = "off";
  off.weight_decay_scale = 0.0;
  off.tensors = {all[1]};
  auto resolved = resolve_param_groups(all, {on, off}, 0.1, "test");
  ASSERT_TRUE(resolved.ok()) << resolved.status().message();
  ASSERT_EQ(resolved.value().size(), 2u);
  EXPECT_EQ(resolved.value()[0].weight_decay, 0.1);  // a bias, but the group asked for decay
  EXPECT_EQ(resolved.value()[0].lr_scale, 4);
  EXPECT_EQ(resolved.value()[1].weight_decay, 0.0);
}

TEST(ParamGroups, AGroupingThatIsNotAPartitionIsRefusedNamingTheTensor) {
  auto all = tensors({"a.weight", "b.weight"});
  ParamGroup only_a;
  only_a.name = "g";
  only_a.tensors = {all[0]};
  auto missing = resolve_param_groups(all, {only_a}, 0.0, "peft/x");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("peft/x: trainable tensor 'b.weight' is in no parameter group"),
            std::string::npos) << missing.status().message();

  ParamGroup twice = only_a;
  twice.name = "h";
  twice.tensors = all;
  auto duplicated = resolve_param_groups(all, {only_a, twice}, 0.0, "peft/x");
  ASSERT_FALSE(duplicated.ok());
  EXPECT_NE(duplicated.status().message().find("'a.weight' is in more than one parameter group"), std::string::npos);

  ParamGroup foreign;
  foreign.name = "f";
  foreign.tensors = {{"a.weight", torch::zeros({2})}, all[1]};  // right name, another tensor
  auto stranger = resolve_param_groups(all, {foreign}, 0.0, "peft/x");
  ASSERT_FALSE(stranger.ok());
  EXPECT_NE(stranger.status().message().find("holds 'a.weight', which is not one of the model's trainable tensors"),
            std::string::npos);

  ParamGroup negative;
  negative.name = "n";
  negative.lr_scale = -1;
  negative.tensors = all;
  EXPECT_FALSE(resolve_param_groups(all, {negative}, 0.0, "peft/x").ok());
}

// ---------------------------------------------------------------------------------------------------------------
// LoRA+ in peft/lora.

class LoraPlus : public ::testing::Test {
 protected:
  void SetUp() override { registry_.discover({LOFT_PLUGIN_DIR}); }
  std::unique_ptr<PeftMethod> lora(double ratio) {
    const PluginManifest* m = registry_.find("peft", "lora");
    EXPECT_NE(m, nullptr);
    std::map<std::string, OptionValue> values;
    for (const auto& spec : m->options) {
      if (spec.default_value) values[spec.name] = *spec.default_value;
    }
    values["lora_plus_ratio"] = ratio;
    auto made = registry_.create_peft("lora", ctx_, Options("peft", values));
    EXPECT_TRUE(made.ok()) << made.status().message();
    return made.ok() ? std::move(made).value() : nullptr;
  }
  // What Qwen2Model::trainable_parameters() gives for LoRA on q_proj with a trained bias and final norm.
  NamedTensors trainable() {
    return {{"model.layers.0.input_layernorm.weight", torch::ones({8}).requires_grad_()},
            {"model.layers.0.self_attn.q_proj.lora_A.weight", torch::zeros({4, 8}).requires_grad_()},
            {"model.layers.0.self_attn.q_proj.lora_B.weight", torch::zeros({8, 4}).requires_grad_()},
            {"model.layers.0.self_attn.q_proj.bias", torch::zeros({8}).requires_grad_()},
            {"model.norm.weight", torch::ones({8}).requires_grad_()},
            {"lm_head.weight", torch::zeros({16, 8}).requires_grad_()}};
  }
  static std::vector<std::string> names(const ParamGroup& g) {
    std::vector<std::string> out;
    for (const auto& [n, t] : g.tensors) out.push_back(n);
    return out;
  }
  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 3};
};

TEST_F(LoraPlus, BLearnsAtRatioTimesTheLearningRateAsPeftGroupsIt) {
  auto method = lora(16.0);
  ASSERT_NE(method, nullptr);
  auto all = trainable();
  auto resolved = resolve_param_groups(all, method->param_groups(all), 0.01, "peft/lora");
  ASSERT_TRUE(resolved.ok()) << resolved.status().message();
  const auto& g = resolved.value();
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].name, "groupA");
  EXPECT_EQ(g[0].lr_scale, 1.0);
  EXPECT_EQ(g[0].weight_decay, 0.01);
  EXPECT_EQ(names(g[0]), (std::vector<std::string>{"model.layers.0.self_attn.q_proj.lora_A.weight", "lm_head.weight"}));
  EXPECT_EQ(g[1].name, "groupB");
  EXPECT_EQ(g[1].lr_scale, 16.0);
  EXPECT_EQ(g[1].weight_decay, 0.01);  // PEFT decays 1-D tensors but biases (RMSNorm is no nn.LayerNorm)
  EXPECT_EQ(names(g[1]), (std::vector<std::string>{"model.layers.0.input_layernorm.weight",
                                                   "model.layers.0.self_attn.q_proj.lora_B.weight",
                                                   "model.norm.weight"}));
  EXPECT_EQ(g[2].name, "groupB_no_decay");
  EXPECT_EQ(g[2].lr_scale, 16.0);
  EXPECT_EQ(g[2].weight_decay, 0.0);
  EXPECT_EQ(names(g[2]), (std::vector<std::string>{"model.layers.0.self_attn.q_proj.bias"}));
}

TEST_F(LoraPlus, RatioZeroIsPlainLoraWithTheHostRule) {
  auto method = lora(0.0);
  ASSERT_NE(method, nullptr);
  auto all = trainable();
  auto proposed = method->param_groups(all);
  ASSERT_EQ(proposed.size(), 1u);
  EXPECT_EQ(proposed[0].name, "default");
  EXPECT_EQ(proposed[0].lr_scale, 1.0);
  EXPECT_FALSE(proposed[0].weight_decay_scale.has_value());
  ASSERT_EQ(proposed[0].tensors.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(proposed[0].tensors[i].first, all[i].first);
    EXPECT_TRUE(proposed[0].tensors[i].second.is_same(all[i].second));
  }
}

TEST_F(LoraPlus, ANegativeRatioIsRefused) {
  const PluginManifest* m = registry_.find("peft", "lora");
  ASSERT_NE(m, nullptr);
  std::map<std::string, OptionValue> values;
  for (const auto& spec : m->options) {
    if (spec.default_value) values[spec.name] = *spec.default_value;
  }
  values["lora_plus_ratio"] = -2.0;
  auto made = registry_.create_peft("lora", ctx_, Options("peft", values));
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("peft.lora_plus_ratio = -2: must be >= 0"), std::string::npos)
      << made.status().message();
}

// ---------------------------------------------------------------------------------------------------------------
// Optimizer plugins.

class Optimizers : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    names_ = registry_.names("optimizer");
    ASSERT_FALSE(names_.empty()) << "no optimizer plugin found in " << LOFT_PLUGIN_DIR;
  }
  std::unique_ptr<Optimizer> make(const std::string& name) {
    auto made = registry_.create_optimizer(name, ctx_, Options("optimizer", {}));
    EXPECT_TRUE(made.ok()) << made.status().message();
    return made.ok() ? std::move(made).value() : nullptr;
  }
  PluginRegistry registry_;
  std::vector<std::string> names_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 3};
};

// Three tensors in two groups; `c` gets no gradient on odd steps.
struct Problem {
  at::Tensor a, b, c;
  explicit Problem(uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    a = torch::randn({5, 3}, gen).requires_grad_();
    b = torch::randn({7}, gen).requires_grad_();
    c = torch::randn({2, 2}, gen).requires_grad_();
  }
  std::vector<ParamGroup> groups() const {
    ParamGroup g1, g2;
    g1.name = "one";
    g1.lr_scale = 1.0;
    g1.weight_decay = 0.1;
    g1.tensors = {{"a", a}, {"c", c}};
    g2.name = "two";
    g2.lr_scale = 3.0;
    g2.weight_decay = 0.0;
    g2.tensors = {{"b", b}};
    return {g1, g2};
  }
  // Two micro-batches per step (so gradients accumulate), deterministic in the step.
  void backward(int step) {
    for (int micro = 0; micro < 2; ++micro) {
      const double k = 1.0 + 0.37 * step + 0.11 * micro;
      auto loss = (a.sin() * k).pow(2).sum() + (b * k).exp().sum() * 0.01;
      if (step % 2 == 0) loss = loss + (c * c).sum() * k;
      loss.backward();
    }
  }
};

// torch.optim.AdamW's update in plain tensor ops (double precision), for one tensor.
struct ReferenceAdamW {
  at::Tensor p, m, v;
  int64_t t = 0;
  void step(const at::Tensor& g, double lr, double wd, double b1, double b2, double eps) {
    ++t;
    p = p * (1 - lr * wd);
    m = m * b1 + g * (1 - b1);
    v = v * b2 + g * g * (1 - b2);
    const double bc1 = 1 - std::pow(b1, static_cast<double>(t)), bc2 = 1 - std::pow(b2, static_cast<double>(t));
    p = p - (m / bc1) / ((v / bc2).sqrt() + eps) * lr;
  }
};

// The gradient of Problem::backward for one step, computed separately on double copies.
std::vector<at::Tensor> reference_gradients(const std::vector<at::Tensor>& values, int step) {
  std::vector<at::Tensor> leaves;
  for (const auto& v : values) leaves.push_back(v.detach().clone().requires_grad_());
  for (int micro = 0; micro < 2; ++micro) {
    const double k = 1.0 + 0.37 * step + 0.11 * micro;
    auto loss = (leaves[0].sin() * k).pow(2).sum() + (leaves[1] * k).exp().sum() * 0.01;
    if (step % 2 == 0) loss = loss + (leaves[2] * leaves[2]).sum() * k;
    loss.backward();
  }
  std::vector<at::Tensor> out;
  for (auto& l : leaves) out.push_back(l.grad().defined() ? l.grad() : at::Tensor());
  return out;
}

TEST_F(Optimizers, EveryPluginStepsAsAReferenceAdamWWithTwoGroups) {
  const OptimizerSettings settings{0.85, 0.99, 1e-6};
  const double lr = 0.02;
  for (const auto& name : names_) {
    SCOPED_TRACE("optimizer/" + name);
    Problem problem(7);
    auto optimizer = make(name);
    ASSERT_NE(optimizer, nullptr);
    optimizer->attach(problem.groups(), settings);
    // Reference state, in double: a (group one), b (group two), c (group one).
    std::vector<ReferenceAdamW> ref(3);
    const std::vector<at::Tensor*> live = {&problem.a, &problem.b, &problem.c};
    const double lr_scale[] = {1.0, 3.0, 1.0}, wd[] = {0.1, 0.0, 0.1};
    for (int i = 0; i < 3; ++i) {
      ref[i].p = live[i]->detach().to(torch::kDouble);
      ref[i].m = torch::zeros_like(ref[i].p);
      ref[i].v = torch::zeros_like(ref[i].p);
    }
    for (int step = 0; step < 6; ++step) {
      auto expected_grads = reference_gradients({problem.a, problem.b, problem.c}, step);
      optimizer->zero_grad();
      problem.backward(step);
      auto grads = optimizer->gradients();
      ASSERT_EQ(grads.size(), 3u);  // attach order: a, c (group one), b (group two)
      EXPECT_TRUE(grads[0].defined());
      EXPECT_TRUE(grads[2].defined());
      EXPECT_EQ(grads[1].defined(), step % 2 == 0) << "c has a gradient on even steps only";
      EXPECT_TRUE(torch::allclose(grads[0], expected_grads[0], 1e-6, 1e-7));
      EXPECT_TRUE(torch::allclose(grads[2], expected_grads[1], 1e-6, 1e-7));
      optimizer->step(lr);
      for (int i = 0; i < 3; ++i) {
        if (i == 2 && step % 2 != 0) continue;  // no gradient: left alone, state included
        ref[i].step(expected_grads[i].to(torch::kDouble), lr * lr_scale[i], wd[i], settings.beta1, settings.beta2,
                    settings.eps);
      }
      for (int i = 0; i < 3; ++i) {
        const double err = (live[i]->detach().to(torch::kDouble) - ref[i].p).abs().max().item<double>();
        EXPECT_LT(err, 2e-6) << "tensor " << i << " after step " << step + 1;
      }
    }
    // The state is torch.optim.AdamW's, under the checkpoint names.
    std::map<std::string, at::Tensor> state;
    for (const auto& [key, t] : optimizer->state_dict()) state[key] = t;
    ASSERT_EQ(state.size(), 9u);
    EXPECT_EQ(state.at("step.a").item<double>(), 6.0);
    EXPECT_EQ(state.at("step.c").item<double>(), 3.0);
    EXPECT_TRUE(torch::allclose(state.at("exp_avg.b").to(torch::kDouble), ref[1].m, 1e-5, 1e-7));
    EXPECT_TRUE(torch::allclose(state.at("exp_avg_sq.a").to(torch::kDouble), ref[0].v, 1e-5, 1e-9));
  }
}

TEST_F(Optimizers, StateRoundTripContinuesBitForBit) {
  const OptimizerSettings settings;
  for (const auto& name : names_) {
    SCOPED_TRACE("optimizer/" + name);
    Problem straight(3), resumed(3);
    auto first = make(name), second = make(name);
    ASSERT_NE(first, nullptr);
    ASSERT_NE(second, nullptr);
    first->attach(straight.groups(), settings);
    for (int step = 0; step < 6; ++step) {
      first->zero_grad();
      straight.backward(step);
      first->gradients();
      first->step(0.05);
      if (step == 2) {
        // What a checkpoint does: the tensors, then the state, into a fresh optimizer on fresh tensors.
        at::NoGradGuard no_grad;
        resumed.a.copy_(straight.a);
        resumed.b.copy_(straight.b);
        resumed.c.copy_(straight.c);
        second->attach(resumed.groups(), settings);
        std::map<std::string, at::Tensor> state;
        for (const auto& [key, t] : first->state_dict()) state[key] = t.clone();
        auto st = second->load_state_dict(state);
        ASSERT_TRUE(st.ok()) << st.message();
      }
      if (step > 2) {
        second->zero_grad();
        resumed.backward(step);
        second->gradients();
        second->step(0.05);
      }
    }
    EXPECT_TRUE(torch::equal(straight.a, resumed.a));
    EXPECT_TRUE(torch::equal(straight.b, resumed.b));
    EXPECT_TRUE(torch::equal(straight.c, resumed.c));
    // A state that does not fit is refused, naming the key.
    auto third = make(name);
    Problem other(3);
    third->attach(other.groups(), settings);
    std::map<std::string, at::Tensor> bad;
    for (const auto& [key, t] : first->state_dict()) bad[key] = t.clone();
    bad["exp_avg.a"] = torch::zeros({3, 5});
    auto st = third->load_state_dict(bad);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("exp_avg.a"), std::string::npos) << st.message();
    bad.erase("exp_avg.a");
    EXPECT_FALSE(third->load_state_dict(bad).ok());
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Through the trainer: exact resume with each optimizer, and adamw_cpu equal to adamw.

// Embedding -> tanh(linear + bias) -> lm_head, all trainable (a bias, so the default groups split).
class TinyLM : public CausalLM {
 public:
  explicit TinyLM(uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    embed_ = torch::randn({kVocab, kHidden}, gen).mul_(0.5).requires_grad_();
    w_ = torch::randn({kHidden, kHidden}, gen).mul_(0.3).requires_grad_();
    bias_ = torch::randn({kHidden}, gen).mul_(0.1).requires_grad_();
    head_ = torch::randn({kVocab, kHidden}, gen).mul_(0.3).requires_grad_();
  }
  at::Tensor hidden_states(const at::Tensor& ids, const at::Tensor&, bool training) override {
    auto h = torch::dropout(torch::embedding(embed_, ids), 0.1, training);
    return torch::tanh(torch::matmul(h, w_) + bias_);
  }
  at::Tensor lm_head_weight() override { return head_; }
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override {
    return {{"embed.weight", embed_}, {"w.weight", w_}, {"w.bias", bias_}, {"head.weight", head_}};
  }
  static constexpr int64_t kVocab = 13, kHidden = 8;

 private:
  at::Tensor embed_, w_, bias_, head_;
};

std::vector<TokenizedExample> counting_data(int n) {
  std::vector<TokenizedExample> data;
  for (int i = 0; i < n; ++i) {
    TokenizedExample e;
    for (int j = 0; j < 4 + i % 4; ++j) {
      e.input_ids.push_back((i + j) % TinyLM::kVocab);
      e.labels.push_back(j < 2 ? kIgnoreLabel : (i + j) % TinyLM::kVocab);
    }
    data.push_back(e);
  }
  return data;
}

fs::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("loft_optimizer_test_" + std::to_string(::getpid())) / name;
  EXPECT_TRUE(remove_tree(d).ok());
  return d;
}

TrainConfig train_config() {
  TrainConfig c;
  c.batch_size = 3;
  c.grad_accum = 2;
  c.lr = 3e-2;
  c.max_steps = 12;
  c.warmup_steps = 2;
  c.weight_decay = 0.05;
  c.max_grad_norm = 0.5;
  c.seed = 5;
  return c;
}

class TrainerWithOptimizers : public Optimizers {
 protected:
  std::unique_ptr<Trainer> trainer(TinyLM& model, const std::vector<TokenizedExample>& data, const fs::path& dir,
                                   const std::string& optimizer) {
    auto params = model.trainable_parameters();
    ParamGroup all;
    all.name = "default";
    all.tensors = params;
    auto groups = resolve_param_groups(params, {all}, train_config().weight_decay, "test");
    EXPECT_TRUE(groups.ok());
    return std::make_unique<Trainer>(train_config(), model, data, dir, c10::Device(c10::kCPU), make(optimizer),
                                     groups.value());
  }
  static std::vector<at::Tensor> values(TinyLM& model) {
    std::vector<at::Tensor> out;
    for (auto& [n, t] : model.trainable_parameters()) out.push_back(t.detach().clone());
    return out;
  }
};

TEST_F(TrainerWithOptimizers, ResumeIsBitExactWithEveryOptimizer) {
  const auto data = counting_data(20);
  for (const auto& name : names_) {
    SCOPED_TRACE("optimizer/" + name);
    at::manual_seed(1);
    TinyLM straight(9);
    ASSERT_TRUE(trainer(straight, data, temp_dir(name + "_straight"), name)->train().ok());

    at::manual_seed(1);
    const fs::path dir = temp_dir(name + "_split");
    TinyLM first_half(9);
    ASSERT_TRUE(trainer(first_half, data, dir, name)->train_until(6).ok());
    torch::randn({3});  // disturb the RNG: the checkpoint must restore it
    TinyLM resumed(123);  // other weights: the checkpoint must restore them
    auto t = trainer(resumed, data, dir, name);
    auto latest = latest_checkpoint(dir);
    ASSERT_TRUE(latest.ok());
    ASSERT_TRUE(t->load_checkpoint(latest.value()).ok());
    EXPECT_EQ(t->step(), 6);
    ASSERT_TRUE(t->train().ok());
    auto a = values(straight), b = values(resumed);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
  }
}

TEST_F(TrainerWithOptimizers, HostAdamWEqualsAdamW) {
  ASSERT_NE(std::find(names_.begin(), names_.end(), "adamw_cpu"), names_.end());
  const auto data = counting_data(20);
  at::manual_seed(1);
  TinyLM device_state(4);
  ASSERT_TRUE(trainer(device_state, data, temp_dir("adamw"), "adamw")->train().ok());
  at::manual_seed(1);
  TinyLM host_state(4);
  ASSERT_TRUE(trainer(host_state, data, temp_dir("adamw_cpu"), "adamw_cpu")->train().ok());
  auto a = values(device_state), b = values(host_state);
  for (size_t i = 0; i < a.size(); ++i) {
    // Within fp32 rounding; on CPU both run ATen's CPU fused kernel on the same gradients, so in fact bit for bit.
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-6, 1e-7)) << "tensor " << i;
  }
}

}  // namespace
}  // namespace loft
