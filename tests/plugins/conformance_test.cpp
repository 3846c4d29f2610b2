// One conformance test per plugin kind: every in-tree plugin of the kind, loaded through the registry like a run
// does, checked against a dense reference computed here.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>

#include <fmt/format.h>

#include "loft/dataset.h"
#include "loft/error_message.h"
#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "loft/offload.h"
#include "loft/peft.h"
#include "loft/quantizer.h"
#include "quantizer_expectations.h"

namespace loft {
namespace {

class Conformance : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    torch::manual_seed(0);
  }
  // The plugin's options with every manifest default, as a recipe without that section would resolve them.
  Options defaults(const std::string& kind, const std::string& name) {
    const PluginManifest* m = registry_.find(kind, name);
    EXPECT_NE(m, nullptr);
    std::map<std::string, OptionValue> values;
    for (const auto& spec : m->options) {
      if (spec.default_value) values[spec.name] = *spec.default_value;
    }
    return Options(kind, values);
  }
  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
};

// A [48, 64] float32 weight with a zero row and two outliers: the cases quantizers get wrong first.
torch::Tensor quantizer_test_weight() {
  auto w = torch::randn({48, 64});
  w.select(0, 5).zero_();
  w.index_put_({7, 3}, 9.0);
  w.index_put_({30, 60}, -12.0);
  return w;
}

TEST_F(Conformance, EveryQuantizerHasAnExpectation) {
  const auto names = registry_.names("quantizer");
  ASSERT_FALSE(names.empty());
  for (const auto& name : names) {
    EXPECT_TRUE(conformance::quantizer_expectations().count(name))
        << "quantizer/" << name << " has no entry in tests/plugins/quantizer_expectations.h; add its dequantize "
        << "error bound (from its format's worst case) and the option sets to test";
  }
}

TEST_F(Conformance, EveryQuantizerMatchesTheDenseReference) {
  for (const auto& name : registry_.names("quantizer")) {
    auto expected = conformance::quantizer_expectations().find(name);
    if (expected == conformance::quantizer_expectations().end()) continue;  // reported by EveryQuantizerHasAnExpectation
    for (const auto& variant : expected->second.variants) {
      Options options = defaults("quantizer", name);
      auto values = options.values();
      for (const auto& [k, v] : variant.options) values[k] = v;
      std::string described;
      for (const auto& [k, v] : variant.options) described += " " + k + "=" + format_option_value(v);
      SCOPED_TRACE("quantizer/" + name + (described.empty() ? " (defaults)" : described));
      auto q = registry_.create_quantizer(name, ctx_, Options("quantizer", values));
      ASSERT_TRUE(q.ok()) << q.status().message();
      auto w = quantizer_test_weight();
      auto stored = q.value()->quantize(w, "model.layers.0.mlp.up_proj");
      EXPECT_EQ(stored->out_features(), 48);
      EXPECT_EQ(stored->in_features(), 64);
      auto deq = stored->dequantize(torch::kFloat);
      ASSERT_EQ(deq.sizes(), w.sizes());
      ASSERT_EQ(deq.scalar_type(), torch::kFloat);
      const double rel = ((deq - w).abs().max() / w.abs().max()).item<double>();
      EXPECT_LE(rel, expected->second.dequant_rel_error) << "dequantize error relative to max |W|";
      EXPECT_EQ(stored->dequantize(torch::kBFloat16).scalar_type(), torch::kBFloat16);

      // storage_bytes is what the state holds, every tensor of it.
      int64_t state_bytes = 0;
      for (const auto& [key, t] : stored->state()) state_bytes += static_cast<int64_t>(t.nbytes());
      EXPECT_EQ(stored->storage_bytes(), state_bytes);
      EXPECT_GT(stored->storage_bytes(), 0);

      auto x = torch::randn({3, 5, 64}, torch::requires_grad());
      auto y = stored->forward(x);
      ASSERT_EQ(y.sizes(), (std::vector<int64_t>{3, 5, 48}));
      auto ref = torch::matmul(x.detach(), deq.t());
      if (variant.forward_rel_error == 0.0) {
        EXPECT_TRUE(torch::allclose(y, ref, 1e-5, 1e-5)) << (y - ref).abs().max().item<double>();
      } else {
        const double fwd = ((y - ref).abs().max() / ref.abs().max()).item<double>();
        EXPECT_LE(fwd, variant.forward_rel_error);
      }
      auto g = torch::randn_like(y);
      y.backward(g);
      ASSERT_TRUE(x.grad().defined());
      EXPECT_TRUE(torch::allclose(x.grad(), torch::matmul(g, deq), 1e-5, 1e-5));

      // load(state()) rebuilds the same storage, bit for bit.
      const auto state = stored->state();
      auto reloaded = q.value()->load(state, 48, 64);
      const auto again = reloaded->state();
      ASSERT_EQ(again.size(), state.size());
      for (const auto& [key, t] : state) {
        ASSERT_TRUE(again.count(key)) << key;
        EXPECT_EQ(again.at(key).scalar_type(), t.scalar_type()) << key;
        EXPECT_TRUE(torch::equal(again.at(key), t)) << key;
      }
      EXPECT_TRUE(torch::equal(reloaded->dequantize(torch::kFloat), deq));
      EXPECT_EQ(reloaded->storage_bytes(), stored->storage_bytes());
      // ...and computes the same outputs, bit for bit, as the storage it was saved from.
      {
        at::NoGradGuard no_grad;
        const auto probe = torch::randn({5, 64});
        EXPECT_TRUE(torch::equal(reloaded->forward(probe), stored->forward(probe))) << ": outputs differ";
      }
    }
  }
}

// No quantizer turns a NaN or an Inf into a finite value (bitsandbytes' NF4 makes the block NaN; a finite code would
// silently change the model): quantize() refuses, naming the site and quantizer.skip, for every dtype, bad value and
// position (a lone element first or last, a whole row).
TEST_F(Conformance, EveryQuantizerRefusesNonFiniteWeights) {
  const std::string site = "model.layers.3.mlp.down_proj";
  for (const auto& name : registry_.names("quantizer")) {
    auto expected = conformance::quantizer_expectations().find(name);
    if (expected == conformance::quantizer_expectations().end()) continue;  // reported by EveryQuantizerHasAnExpectation
    for (const auto& variant : expected->second.variants) {
      auto values = defaults("quantizer", name).values();
      for (const auto& [k, v] : variant.options) values[k] = v;
      auto q = registry_.create_quantizer(name, ctx_, Options("quantizer", values));
      ASSERT_TRUE(q.ok()) << q.status().message();
      for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
        for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
          for (int where = 0; where < 3; ++where) {
            auto w = quantizer_test_weight().to(dtype);
            if (where == 0) w.index_put_({0, 0}, bad);
            if (where == 1) w.index_put_({47, 63}, bad);
            if (where == 2) w.select(0, 20).fill_(bad);
            SCOPED_TRACE(fmt::format("quantizer/{} {} value {} at {}", name, c10::toString(dtype), bad,
                                     where == 0 ? "[0, 0]" : where == 1 ? "[47, 63]" : "row 20"));
            try {
              auto stored = q.value()->quantize(w, site);
              ADD_FAILURE() << "quantized; dequantize() has " << stored->dequantize(torch::kFloat).isfinite().sum().item<int64_t>()
                            << " finite values of " << w.numel();
            } catch (const std::exception& e) {
              const std::string m = error_message(e);
              EXPECT_NE(m.find(site), std::string::npos) << m;
              EXPECT_NE(m.find("skip"), std::string::npos) << m;
            }
          }
        }
      }
    }
  }
}

// LoRA and DoRA on a site whose base is each quantizer's storage: the adapter trains through the quantized matmul,
// and DoRA's magnitude starts as the row norms of the dequantized weight (what the model really multiplies by).
TEST_F(Conformance, EveryQuantizerCarriesLoraAndDora) {
  for (const auto& qname : registry_.names("quantizer")) {
    auto q = registry_.create_quantizer(qname, ctx_, defaults("quantizer", qname));
    ASSERT_TRUE(q.ok()) << q.status().message();
    // No zero row here: DoRA divides by each row's norm (0 / 0 for a zero row, in PEFT too).
    auto w = quantizer_test_weight();
    w.select(0, 5).normal_();
    auto b = torch::randn({48});
    auto base = q.value()->quantize(w, "model.layers.0.self_attn.q_proj");
    const auto deq = base->dequantize(torch::kFloat);
    LinearSite site{"model.layers.0.self_attn.q_proj", "q_proj", 0, 64, 48, base.get(), b};
    for (const std::string peft : {"lora", "dora"}) {
      SCOPED_TRACE("quantizer/" + qname + " + peft/" + peft);
      if (!registry_.find("peft", peft)) {
        ADD_FAILURE() << "peft/" << peft << " not found";
        continue;
      }
      // Default init (B = 0): the layer's function is the quantized base's.
      auto fresh = registry_.create_peft(peft, ctx_, defaults("peft", peft));
      ASSERT_TRUE(fresh.ok()) << fresh.status().message();
      ASSERT_TRUE(fresh.value()->targets(site));
      auto adapter = fresh.value()->attach(site);
      auto x = torch::randn({4, 64});
      {
        torch::NoGradGuard no_grad;
        auto y0 = adapter->forward(x, base->forward(x) + b, /*training=*/false);
        EXPECT_TRUE(torch::allclose(y0, torch::addmm(b, x, deq.t()), 1e-5, 1e-5));
      }
      if (peft == "dora") {
        torch::Tensor magnitude;
        for (auto& [n, t] : adapter->trainable()) {
          if (n == "lora_magnitude_vector") magnitude = t.detach();
        }
        ASSERT_TRUE(magnitude.defined());
        EXPECT_TRUE(torch::allclose(magnitude, torch::linalg_vector_norm(deq, 2, at::IntArrayRef{1}), 1e-6, 1e-6));
        if (!torch::equal(deq, w)) {  // a lossy format: the norm of the fp32 weight would be a different vector
          EXPECT_FALSE(torch::equal(magnitude, torch::linalg_vector_norm(w, 2, at::IntArrayRef{1})));
        }
      }
      // Random init (PEFT's init_lora_weights=False): every adapter tensor gets a finite, non-zero gradient through
      // the quantized base, and x gets one through both.
      auto values = defaults("peft", peft).values();
      values["init"] = std::string("random");
      auto method = registry_.create_peft(peft, ctx_, Options("peft", values));
      ASSERT_TRUE(method.ok()) << method.status().message();
      auto trained = method.value()->attach(site);
      auto xr = torch::randn({4, 64}, torch::requires_grad());
      auto y = trained->forward(xr, base->forward(xr) + b, /*training=*/true);
      y.pow(2).sum().backward();
      for (auto& [pname, t] : trained->trainable()) {
        ASSERT_TRUE(t.grad().defined()) << pname << " got no gradient";
        EXPECT_TRUE(torch::isfinite(t.grad()).all().item<bool>()) << pname;
        EXPECT_GT(t.grad().abs().max().item<double>(), 0.0) << pname;
      }
      ASSERT_TRUE(xr.grad().defined());
      EXPECT_TRUE(torch::isfinite(xr.grad()).all().item<bool>());
      EXPECT_GT(xr.grad().abs().max().item<double>(), 0.0);
    }
  }
}

TEST_F(Conformance, EveryPeftMethodMatchesTheDenseReferenceAndTrains) {
  auto quantizer = registry_.create_quantizer("none", ctx_, defaults("quantizer", "none"));
  ASSERT_TRUE(quantizer.ok());
  for (const auto& name : registry_.names("peft")) {
    SCOPED_TRACE("peft/" + name);
    auto method = registry_.create_peft(name, ctx_, defaults("peft", name));
    ASSERT_TRUE(method.ok()) << method.status().message();
    auto w = torch::randn({32, 16}), b = torch::randn({32});
    auto base = quantizer.value()->quantize(w, "model.layers.0.self_attn.q_proj");
    LinearSite site{"model.layers.0.self_attn.q_proj", "q_proj", 0, 16, 32, base.get(), b};
    ASSERT_TRUE(method.value()->targets(site));
    auto adapter = method.value()->attach(site);
    auto x = torch::randn({4, 16});
    auto base_out = adapter->uses_base_output() ? base->forward(x) + b : torch::Tensor();
    auto y = adapter->forward(x, base_out, /*training=*/false);
    // Freshly attached adapters leave the layer's function unchanged (LoRA's B = 0; full copies W).
    EXPECT_TRUE(torch::allclose(y, torch::addmm(b, x, w.t()), 1e-5, 1e-5));
    auto merged = adapter->merged_weight(torch::kFloat);
    EXPECT_TRUE(torch::allclose(merged, w, 1e-6, 1e-6));

    auto trainable = adapter->trainable();
    ASSERT_FALSE(trainable.empty());
    y.pow(2).sum().backward();
    for (auto& [pname, t] : trainable) {
      EXPECT_TRUE(t.requires_grad()) << pname;
      ASSERT_TRUE(t.grad().defined()) << pname << " got no gradient";
    }
    // A state dict loads back into a fresh adapter and gives the same function.
    std::map<std::string, torch::Tensor> state;
    for (auto& [k, v] : adapter->state_dict()) state[k] = v.detach() * 0.5;
    auto other = method.value()->attach(site);
    ASSERT_TRUE(other->load_state_dict(state).ok());
    std::map<std::string, torch::Tensor> wrong = state;
    wrong.begin()->second = torch::zeros({1});
    EXPECT_FALSE(other->load_state_dict(wrong).ok());
  }
}

TEST_F(Conformance, EveryOffloadStrategyGivesTheSameLossAndGradients) {
  // Two toy blocks, each reading a frozen linear in every quantizer's storage (dense, int8, nf4), a trainable
  // LoRA-style pair and a frozen scale. Every strategy is handed the blocks' quantized linears and frozen tensors
  // (plan, then place) and must reproduce offload/none's loss and gradients bit for bit, and no strategy at all.
  for (const auto& qname : registry_.names("quantizer")) {
    auto q = registry_.create_quantizer(qname, ctx_, defaults("quantizer", qname));
    ASSERT_TRUE(q.ok()) << q.status().message();
    struct ToyBlock {
      std::unique_ptr<QuantizedLinear> base;
      torch::Tensor a, b, scale;
    };
    std::vector<ToyBlock> blocks(2);
    for (size_t i = 0; i < blocks.size(); ++i) {
      blocks[i].base = q.value()->quantize(torch::randn({8, 8}), "model.layers." + std::to_string(i) + ".mlp.up_proj");
      blocks[i].a = (torch::randn({2, 8}) * 0.5).requires_grad_();
      blocks[i].b = (torch::randn({8, 2}) * 0.5).requires_grad_();
      blocks[i].scale = torch::rand({8}) + 0.5;
    }
    auto block = [&](size_t i) {
      return [&, i](const torch::Tensor& h) {
        const ToyBlock& blk = blocks[i];
        auto lora = torch::matmul(torch::matmul(h, blk.a.t()), blk.b.t());
        return torch::tanh(blk.base->forward(h) + lora) * blk.scale + h;
      };
    };
    auto input = torch::randn({2, 3, 8}, torch::requires_grad());
    auto grads_of = [&](const torch::Tensor& loss) {
      return torch::autograd::grad({loss}, {input, blocks[0].a, blocks[0].b, blocks[1].a, blocks[1].b});
    };
    auto direct = block(1)(block(0)(input)).pow(2).mean();
    auto direct_grads = grads_of(direct);

    auto run = [&](OffloadStrategy& s, torch::Tensor* loss_out) {
      std::vector<ModelUnit> units(2);
      for (size_t i = 0; i < units.size(); ++i) {
        units[i].index = static_cast<int64_t>(i);
        units[i].name = "model.layers." + std::to_string(i);
      }
      const auto homes = s.plan(units);
      EXPECT_EQ(homes.size(), units.size());
      std::vector<BlockResidency> residency(2);
      for (size_t i = 0; i < residency.size(); ++i) {
        residency[i].index = static_cast<int64_t>(i);
        residency[i].frozen_linears = {blocks[i].base.get()};
        residency[i].frozen_tensors = {&blocks[i].scale};
      }
      s.place(residency);
      auto h = s.run_block(0, block(0), input);
      h = s.run_block(1, block(1), h);
      *loss_out = h.pow(2).mean();
      return grads_of(*loss_out);
    };
    auto none = registry_.create_offload("none", ctx_, defaults("offload", "none"));
    ASSERT_TRUE(none.ok()) << none.status().message();
    torch::Tensor ref;
    const auto ref_grads = run(*none.value(), &ref);
    EXPECT_TRUE(torch::equal(ref, direct));
    for (size_t i = 0; i < ref_grads.size(); ++i) EXPECT_TRUE(torch::equal(ref_grads[i], direct_grads[i])) << i;

    for (const auto& name : registry_.names("offload")) {
      SCOPED_TRACE("offload/" + name + " with quantizer/" + qname);
      auto s = registry_.create_offload(name, ctx_, defaults("offload", name));
      ASSERT_TRUE(s.ok()) << s.status().message();
      torch::Tensor loss;
      auto grads = run(*s.value(), &loss);
      EXPECT_TRUE(torch::equal(loss, ref));
      ASSERT_EQ(grads.size(), ref_grads.size());
      for (size_t i = 0; i < grads.size(); ++i) EXPECT_TRUE(torch::equal(grads[i], ref_grads[i])) << i;
    }

    // What a streaming strategy relies on: every tensor of the storage, by reference, adding up to storage_bytes().
    for (const auto& blk : blocks) {
      int64_t visited_bytes = 0;
      EXPECT_TRUE(blk.base->visit_storage([&](std::string_view key, torch::Tensor& t) {
        EXPECT_TRUE(blk.base->state().count(std::string(key))) << key;
        visited_bytes += static_cast<int64_t>(t.nbytes());
      })) << "quantizer/" << qname << " storage cannot be visited";
      EXPECT_EQ(visited_bytes, blk.base->storage_bytes()) << "quantizer/" << qname;
    }
  }
}

TEST_F(Conformance, EveryDatasetIsDeterministicAndConversational) {
  for (const auto& name : registry_.names("dataset")) {
    SCOPED_TRACE("dataset/" + name);
    auto d1 = registry_.create_dataset(name, ctx_, defaults("dataset", name));
    if (!d1.ok()) {
      // Datasets that read files need a path; those are covered by their own tests.
      EXPECT_NE(d1.status().message().find("path"), std::string::npos) << d1.status().message();
      continue;
    }
    auto d2 = registry_.create_dataset(name, ctx_, defaults("dataset", name));
    ASSERT_GT(d1.value()->size(), 0);
    for (int64_t i = 0; i < std::min<int64_t>(20, d1.value()->size()); ++i) {
      auto a = d1.value()->get(i), b = d2.value()->get(i);
      ASSERT_GE(a.messages.size(), 2u);
      EXPECT_EQ(a.messages.back().role, "assistant");
      EXPECT_EQ(a.messages.back().content, b.messages.back().content);
      EXPECT_EQ(a.messages.front().content, b.messages.front().content);
    }
    EXPECT_THROW(d1.value()->get(d1.value()->size()), std::exception);
  }
}

}  // namespace
}  // namespace loft
