// Qwen2Model without reference files: config parsing, the cached decode path against the full forward, and the
// plugin hooks (linear maker, PEFT adapters and trainable parameters, offload residency and block execution).
#include <set>

#include <gtest/gtest.h>

#include "loft/framework/generation.h"
#include "loft/framework/qwen2.h"
#include "model_test_support.h"
#include "packing_support.h"

namespace loft {
namespace {

using testing::cpu_options;
using testing::small_config;

TEST(Qwen2Config, ReadsTransformers5RopeParameters) {
  auto c = parse_qwen2_config(R"({"model_type":"qwen2","vocab_size":300,"hidden_size":72,"intermediate_size":200,
      "num_hidden_layers":2,"num_attention_heads":3,"num_key_value_heads":1,"rms_norm_eps":1e-5,
      "rope_parameters":{"rope_theta":1000000.0,"rope_type":"default"},"tie_word_embeddings":true,
      "eos_token_id":[5,7],"pad_token_id":null,"dtype":"bfloat16"})",
                              "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c.value().head_dim, 24);
  EXPECT_EQ(c.value().num_key_value_heads, 1);
  EXPECT_DOUBLE_EQ(c.value().rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.value().rms_norm_eps, 1e-5);
  EXPECT_TRUE(c.value().tie_word_embeddings);
  EXPECT_EQ(c.value().eos_token_ids, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(c.value().torch_dtype, "bfloat16");
}

TEST(Qwen2Config, ReadsTopLevelRopeThetaAndDefaults) {
  auto c = parse_qwen2_config(R"({"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
      "num_attention_heads":2,"rope_theta":500000,"eos_token_id":3,"head_dim":6})",
                              "x.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c.value().num_key_value_heads, 2);  // defaults to num_attention_heads, as in transformers
  EXPECT_EQ(c.value().head_dim, 6);             // explicit head_dim wins over hidden_size / heads
  EXPECT_DOUBLE_EQ(c.value().rope_theta, 500000);
  EXPECT_EQ(c.value().eos_token_ids, (std::vector<int64_t>{3}));
  EXPECT_FALSE(c.value().tie_word_embeddings);
}

TEST(Qwen2Model, StateDictHasHuggingFaceNamesAndShapes) {
  for (bool tied : {false, true}) {
    auto model = Qwen2Model::create_random(small_config(4, 2, tied), 1, cpu_options());
    ASSERT_TRUE(model.ok()) << model.status().message();
    auto sd = model.value()->state_dict(at::kFloat);
    std::map<std::string, std::vector<int64_t>> shapes;
    for (auto& [name, t] : sd) shapes[name] = t.sizes().vec();
    EXPECT_EQ(shapes.count("lm_head.weight"), tied ? 0u : 1u);
    EXPECT_EQ(shapes.at("model.layers.1.self_attn.k_proj.weight"), (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(shapes.at("model.layers.1.self_attn.k_proj.bias"), (std::vector<int64_t>{32}));
    EXPECT_EQ(shapes.count("model.layers.0.self_attn.o_proj.bias"), 0u);
    EXPECT_EQ(shapes.at("model.layers.0.mlp.down_proj.weight"), (std::vector<int64_t>{64, 72}));
    EXPECT_EQ(sd.size(), 1u + 2u * 12u + 1u + (tied ? 0u : 1u));
    EXPECT_EQ(model.value()->linear_sites().size(), 14u);
  }
}

TEST(Qwen2Model, RandomInitFollowsTransformers) {
  Qwen2Config c = small_config();
  c.initializer_range = 0.02;
  auto model = Qwen2Model::create_random(c, 7, cpu_options());
  ASSERT_TRUE(model.ok());
  std::map<std::string, at::Tensor> sd;
  for (auto& [name, t] : model.value()->state_dict(at::kFloat)) sd[name] = t;
  EXPECT_TRUE(sd.at("model.norm.weight").eq(1).all().item<bool>());
  EXPECT_TRUE(sd.at("model.layers.0.self_attn.q_proj.bias").eq(0).all().item<bool>());
  EXPECT_NEAR(sd.at("model.embed_tokens.weight").std().item<double>(), 0.02, 0.002);
  // Same seed, same weights.
  auto again = Qwen2Model::create_random(c, 7, cpu_options());
  EXPECT_TRUE(again.value()->state_dict(at::kFloat)[5].second.equal(model.value()->state_dict(at::kFloat)[5].second));
}

// The cached path (right-padded prefill, per-row decode with a key mask) must pick the tokens the plain causal
// forward picks, for prompts of different lengths decoded together.
TEST(Qwen2Generation, BatchedCachedDecodingMatchesFullForward) {
  for (auto [heads, kv] : {std::pair<int64_t, int64_t>{4, 4}, {4, 2}, {4, 1}}) {
    auto model = Qwen2Model::create_random(small_config(heads, kv), 3, cpu_options());
    ASSERT_TRUE(model.ok());
    Qwen2Model& m = *model.value();
    std::vector<std::vector<int64_t>> prompts{{5, 9, 17, 3, 44, 2, 8}, {11}, {60, 61, 62, 63}};
    GenerationConfig g;
    g.max_new_tokens = 12;
    auto batched = generate(m, prompts, g);
    ASSERT_TRUE(batched.ok()) << batched.status().message();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto& out = batched.value()[i];
      ASSERT_EQ(out.size(), 12u);
      auto alone = generate(m, {prompts[i]}, g);
      EXPECT_EQ(alone.value()[0], out) << "prompt " << i << " alone vs batched";
      std::vector<int64_t> all = prompts[i];
      all.insert(all.end(), out.begin(), out.end());
      const at::Tensor ids = at::tensor(all, at::kLong).unsqueeze(0);
      const at::Tensor full = m.logits(ids).argmax(-1)[0];
      const int64_t p = static_cast<int64_t>(prompts[i].size());
      EXPECT_EQ(testing::to_ids(full.slice(0, p - 1, p - 1 + 12)), out) << "heads " << heads << " kv " << kv;
    }
  }
}

TEST(Qwen2Generation, StopTokensSamplingAndErrors) {
  auto model = Qwen2Model::create_random(small_config(), 4, cpu_options());
  Qwen2Model& m = *model.value();
  GenerationConfig g;
  g.max_new_tokens = 10;
  auto greedy = generate(m, {{1, 2, 3}, {4, 5}}, g).value();
  g.stop_token_ids = {greedy[0][3]};
  auto stopped = generate(m, {{1, 2, 3}, {4, 5}}, g).value();
  const auto first = std::find(greedy[0].begin(), greedy[0].end(), greedy[0][3]) - greedy[0].begin();
  EXPECT_EQ(stopped[0], std::vector<int64_t>(greedy[0].begin(), greedy[0].begin() + first + 1));

  GenerationConfig s;
  s.max_new_tokens = 16;
  s.do_sample = true;
  s.temperature = 0.7;
  s.top_p = 0.9;
  s.seed = 123;
  auto a = generate(m, {{1, 2, 3}}, s).value();
  auto b = generate(m, {{1, 2, 3}}, s).value();
  EXPECT_EQ(a, b);
  s.top_p = 1e-6;  // the nucleus is the argmax alone
  GenerationConfig plain;
  plain.max_new_tokens = 16;
  EXPECT_EQ(generate(m, {{1, 2, 3}}, s).value(), generate(m, {{1, 2, 3}}, plain).value());

  EXPECT_FALSE(generate(m, {{}}, plain).ok());
  auto bad = generate(m, {{1, 1000}}, plain);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("1000"), std::string::npos);
}

// ---- plugin hooks ---------------------------------------------------------------------------------------------

// out = base_out + x A^T with A trainable (zeros), or, for "full" sites, the whole output from its own weight.
class TestAdapter final : public Adapter {
 public:
  TestAdapter(const LinearSite& site, bool full)
      : full_(full), a_(at::zeros({site.out_features, site.in_features}).requires_grad_(true)) {
    if (full) a_ = site.base->dequantize(at::kFloat).clone().requires_grad_(true);
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out, bool) override {
    EXPECT_EQ(base_out.defined(), !full_);
    return full_ ? at::linear(x, a_) : base_out + at::linear(x, a_);
  }
  bool uses_base_output() const override { return !full_; }
  NamedTensors trainable() const override { return {{"A", a_}}; }
  NamedTensors state_dict() const override { return {{"A", a_}}; }
  Status load_state_dict(const std::map<std::string, at::Tensor>&) override { return Status::Ok(); }
  at::Tensor merged_weight(c10::ScalarType dtype) const override {
    return (full_ ? a_ : site_weight_ + a_).detach().to(dtype);
  }
  at::Tensor site_weight_;

 private:
  bool full_;
  at::Tensor a_;
};

class TestPeft final : public PeftMethod {
 public:
  bool targets(const LinearSite& site) const override {
    return site.short_name == "q_proj" || site.short_name == "v_proj" || site.short_name == "down_proj";
  }
  std::unique_ptr<Adapter> attach(const LinearSite& site) const override {
    seen.push_back(site);
    auto a = std::make_unique<TestAdapter>(site, site.short_name == "down_proj");
    a->site_weight_ = site.base->dequantize(at::kFloat);
    return a;
  }
  std::vector<std::string> trainable_parameters(const std::vector<std::string>& names) const override {
    offered = names;
    return {"model.norm.weight"};
  }
  std::string adapter_config_json(const std::string&) const override { return ""; }
  mutable std::vector<LinearSite> seen;
  mutable std::vector<std::string> offered;
};

TEST(Qwen2Plugins, AdaptersAndTrainableParameters) {
  TestPeft peft;
  int64_t base_calls = 0;
  ModelOptions options = cpu_options();
  options.make_linear = testing::dense_maker(at::kFloat, &base_calls);
  auto plain = Qwen2Model::create_random(small_config(), 5, cpu_options());
  options.peft = &peft;
  auto model = Qwen2Model::create_random(small_config(), 5, options);
  ASSERT_TRUE(model.ok()) << model.status().message();
  Qwen2Model& m = *model.value();

  ASSERT_EQ(peft.seen.size(), 6u);
  EXPECT_EQ(peft.seen[0].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(peft.seen[0].layer_index, 0);
  EXPECT_EQ(peft.seen[0].out_features, 64);
  EXPECT_TRUE(peft.seen[0].bias.defined());
  EXPECT_FALSE(peft.seen[2].bias.defined());  // down_proj has none
  EXPECT_EQ(peft.offered.front(), "model.embed_tokens.weight");
  EXPECT_EQ(peft.offered.back(), "lm_head.weight");
  EXPECT_EQ(m.adapters().size(), 6u);

  std::set<std::string> names;
  for (auto& [name, t] : m.trainable_parameters()) {
    names.insert(name);
    EXPECT_TRUE(t.requires_grad()) << name;
    EXPECT_EQ(t.scalar_type(), at::kFloat);
  }
  EXPECT_EQ(names.count("model.layers.1.self_attn.v_proj.A"), 1u);
  EXPECT_EQ(names.count("model.norm.weight"), 1u);
  EXPECT_EQ(names.size(), 7u);

  // Zero adapters and a copied base: the same logits as the plain model; the full sites skip base(x).
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, at::kLong).view({2, 3});
  base_calls = 0;
  const at::Tensor logits = m.logits(ids, {}, /*training=*/true);
  EXPECT_EQ(base_calls, 2 * (7 - 1));
  EXPECT_LT(testing::relative_error(logits, plain.value()->logits(ids)), 1e-6);
  logits.sum().backward();
  for (auto& [name, t] : m.trainable_parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << name;
  }
}

class CountingOffload final : public OffloadStrategy {
 public:
  std::vector<Home> plan(const std::vector<ModelUnit>& units) override {
    for (const auto& u : units) planned.push_back(u.name);
    return std::vector<Home>(units.size(), Home::kRunDevice);
  }
  void place(const std::vector<BlockResidency>& units) override {
    ++place_calls;
    for (const auto& b : units) {
      if (b.kind != UnitKind::kBlock) {
        other_tensors += static_cast<int64_t>(b.frozen_tensors.size());
        continue;
      }
      linears += static_cast<int64_t>(b.frozen_linears.size());
      tensors += static_cast<int64_t>(b.frozen_tensors.size());
      for (at::Tensor* t : b.frozen_tensors) *t = t->clone();  // moves go through the pointer
    }
  }
  void on_block(const BlockEvent& event) override {
    if (event.stage == BlockStage::kForwardPre) order.push_back(event.index);
  }
  int64_t place_calls = 0, linears = 0, tensors = 0, other_tensors = 0;
  std::vector<int64_t> order;
  std::vector<std::string> planned;
};

TEST(Qwen2Plugins, OffloadSeesEveryBlock) {
  CountingOffload offload;
  ModelOptions options = cpu_options();
  options.offload = &offload;
  auto model = Qwen2Model::create_random(small_config(), 6, options);
  auto plain = Qwen2Model::create_random(small_config(), 6, cpu_options());
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(offload.place_calls, 1);
  EXPECT_EQ(offload.linears, 2 * 7);
  EXPECT_EQ(offload.tensors, 2 * (3 + 2));  // q/k/v biases and both norms, per block
  EXPECT_EQ(offload.other_tensors, 3);      // the embedding, the final norm and the untied lm_head
  EXPECT_EQ(offload.planned, (std::vector<std::string>{"model.embed_tokens", "model.layers.0", "model.layers.1",
                                                       "model.norm", "lm_head"}));
  const at::Tensor ids = at::tensor(std::vector<int64_t>{7, 8, 9}, at::kLong).view({1, 3});
  EXPECT_TRUE(model.value()->logits(ids).equal(plain.value()->logits(ids)));
  EXPECT_EQ(offload.order, (std::vector<int64_t>{0, 1}));
  GenerationConfig g;
  g.max_new_tokens = 3;
  ASSERT_TRUE(generate(*model.value(), {{1, 2}}, g).ok());
  EXPECT_EQ(offload.order.size(), 2u + 2u * 3u);  // prefill + two decode steps
}

TEST(Qwen2Model, Bfloat16ForwardStaysCloseToFloat32) {
  auto f32 = Qwen2Model::create_random(small_config(), 8, cpu_options(at::kFloat));
  auto bf16 = Qwen2Model::create_random(small_config(), 8, cpu_options(at::kBFloat16));
  const at::Tensor ids = at::tensor(std::vector<int64_t>{3, 1, 4, 1, 5, 9, 2, 6}, at::kLong).view({2, 4});
  const at::Tensor h = bf16.value()->hidden_states(ids, {}, false);
  EXPECT_EQ(h.scalar_type(), at::kBFloat16);
  EXPECT_LT(testing::relative_error(bf16.value()->logits(ids), f32.value()->logits(ids)), 0.05);
  EXPECT_FALSE(bf16.value()->attention_backend().empty());
}

// Packed rows: every example sees only itself (block-diagonal causal mask, positions restarting at 0), so each
// token's hidden state and the step's loss equal the one-example-per-row layout's.
TEST(Qwen2Packing, PackedRowsEqualOneExamplePerRow) {
  for (auto [heads, kv] : {std::pair<int64_t, int64_t>{4, 2}, {4, 4}}) {
    auto model = Qwen2Model::create_random(small_config(heads, kv), 5, cpu_options(at::kDouble));
    ASSERT_TRUE(model.ok()) << model.status().message();
    double loss_diff = 0;
    const double err = testing::packed_vs_unpacked(*model.value(), 16, &loss_diff);
    EXPECT_LT(err, 1e-12) << "heads " << heads << " kv " << kv;
    EXPECT_LT(loss_diff, 1e-12);
  }
}

// The hand-written backward of the rotary embedding (and everything else between the layer-0 norm and the output)
// against central finite differences, in float64 (RMSNorm statistics in fp32, as in HF).
TEST(Qwen2Model, GradientsMatchFiniteDifferences) {
  at::manual_seed(1);
  testing::NormsTrain peft;
  ModelOptions o = cpu_options(at::kDouble);
  o.peft = &peft;
  auto model = Qwen2Model::create_random(small_config(4, 2), 9, o);
  ASSERT_TRUE(model.ok()) << model.status().message();
  Qwen2Model& m = *model.value();
  const at::Tensor ids = at::randint(0, 97, {2, 11}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor probe = at::randn({2, 11, m.config().hidden_size}, at::TensorOptions().dtype(at::kDouble));
  auto loss = [&] { return (m.hidden_states(ids, {}, false) * probe).sum(); };
  at::Tensor master;
  for (auto& [name, t] : m.trainable_parameters()) {
    if (name == "model.layers.0.input_layernorm.weight") master = t;
  }
  ASSERT_TRUE(master.defined());
  loss().backward();
  const at::Tensor grad = master.grad().clone();
  for (int64_t i : {0, 7, 33}) {
    // The fp32 master starts at 1.0, so w ± 2^-10 is exact. RMSNorm computes in fp32 even in a float64 model (as
    // HF's does), which puts ~1e-8 relative noise on the loss: smaller steps than this drown in it.
    const double eps = 1.0 / 1024;
    double plus = 0, minus = 0;
    {
      at::NoGradGuard no_grad;
      const double w = master[i].item<double>();
      master[i].fill_(w + eps);
      plus = loss().item<double>();
      master[i].fill_(w - eps);
      minus = loss().item<double>();
      master[i].fill_(w);
    }
    const double numeric = (plus - minus) / (2 * eps), analytic = grad[i].item<double>();
    EXPECT_NEAR(analytic, numeric, 1e-3 * std::max(1.0, std::abs(numeric))) << "element " << i;
  }
}

}  // namespace
}  // namespace loft
