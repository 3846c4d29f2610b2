// Shared by the offload/zero3 tests (CPU and CUDA): every combination of its parts, and a fixture that trains a small
// Qwen2 (quantized, LoRA with dropout on every linear) for a few optimizer steps through a chosen offload strategy
// and optimizer, returning each step's loss and gradients (as the optimizer sees them) and zero3's own statistics.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/optimizer.h"
#include "streaming_test_strategy.h"
#include "zero3_stats.h"

namespace loft {
namespace testing_offload {

struct Zero3Parts {
  bool params = true, activations = true, optimizer = false, recompute = true;
  int64_t prefetch_blocks = 1;

  std::string label() const {
    return fmt::format("params={} activations={} optimizer={} recompute={} prefetch={}", params, activations,
                       optimizer, recompute, prefetch_blocks);
  }
  // The recipe's [offload] options for these parts.
  Options options() const {
    return Options("offload", {{"params", params}, {"activations", activations}, {"optimizer", optimizer},
                               {"recompute", recompute}, {"prefetch_blocks", prefetch_blocks}});
  }
  // optimizer = true runs with the host optimizer, as validation requires.
  std::string optimizer_type() const { return optimizer ? "adamw_cpu" : "adamw"; }
};

// Every valid combination (activations need recompute): 12.
inline std::vector<Zero3Parts> all_zero3_combinations() {
  std::vector<Zero3Parts> out;
  for (bool params : {false, true}) {
    for (bool activations : {false, true}) {
      for (bool optimizer : {false, true}) {
        for (bool recompute : {false, true}) {
          if (activations && !recompute) continue;
          out.push_back({params, activations, optimizer, recompute, 1});
        }
      }
    }
  }
  return out;
}

// Wraps a strategy and throws once at one stage of one block, after the wrapped strategy heard it: a pass that
// stops between a block's Pre and Post, as the contract allows.
class FailingOnceStrategy final : public OffloadStrategy {
 public:
  // `*fired` becomes true when it throws; it throws only while `*armed` (when given) is true.
  FailingOnceStrategy(OffloadStrategy& inner, int64_t index, BlockStage stage, bool* fired, const bool* armed = nullptr)
      : inner_(inner), index_(index), stage_(stage), fired_(fired), armed_(armed) {}
  std::vector<Home> plan(const std::vector<ModelUnit>& units) override { return inner_.plan(units); }
  void place(const std::vector<BlockResidency>& units) override { inner_.place(units); }
  BlockExecution execution(int64_t index) override { return inner_.execution(index); }
  void on_block(const BlockEvent& event) override {
    inner_.on_block(event);
    if (!*fired_ && (armed_ == nullptr || *armed_) && event.index == index_ && event.stage == stage_) {
      *fired_ = true;
      throw std::runtime_error("injected failure");
    }
  }
  const void* extension(std::string_view id) const override { return inner_.extension(id); }

 private:
  OffloadStrategy& inner_;
  int64_t index_;
  BlockStage stage_;
  bool* fired_;
  const bool* armed_;
};

class Zero3Fixture : public ResidencyFixture {
 protected:
  struct Steps {
    std::vector<Result> steps;
    std::optional<Zero3Stats> stats;  // zero3's counters after the last step
  };

  // What train() builds and runs. `offload` is a registered strategy's name; `wrap` may wrap it (fault injection).
  struct Setup {
    c10::Device device = c10::kCPU;
    std::string quantizer = "none";
    std::string offload = "none";
    Options offload_options;
    std::string optimizer = "adamw";
    std::string peft = "lora";  // or "dora"
    int64_t layers = 4;
    int64_t steps = 2;
    std::function<std::unique_ptr<OffloadStrategy>(OffloadStrategy&)> wrap;
    // When set, runs each step's forward and backward (after zero_grad): lets a test measure or constrain them.
    std::function<void(int64_t step, const std::function<void()>& forward_backward)> checked_step;
    // When set, sees every linear the quantizer makes, as it made it (before the model moves it to its home).
    std::function<void(const std::string& site, QuantizedLinear& linear)> made;
    // When set, changes the model's shape (small_config with `layers` blocks otherwise).
    std::function<void(Qwen2Config&)> configure;
  };

  static Setup reference(c10::Device device, const std::string& quantizer, const Zero3Parts& parts) {
    Setup s;
    s.device = device;
    s.quantizer = quantizer;
    s.offload = "none";
    s.offload_options = Options("offload", {});
    s.optimizer = parts.optimizer_type();
    return s;
  }
  static Setup zero3(c10::Device device, const std::string& quantizer, const Zero3Parts& parts) {
    Setup s = reference(device, quantizer, parts);
    s.offload = "zero3";
    s.offload_options = parts.options();
    return s;
  }

  // Builds the model, attaches the optimizer to every trainable tensor (one group) and runs `steps` optimizer steps
  // of one micro-batch each. A step whose forward or backward throws (an injected failure) is retried once.
  Steps train(const Setup& setup) {
    Steps out;
    RunContext ctx(setup.device, c10::kFloat, 77);
    auto q = registry_.create_quantizer(setup.quantizer, ctx, defaults("quantizer", setup.quantizer));
    EXPECT_TRUE(q.ok()) << q.status().message();
    auto lora_values = defaults("peft", setup.peft).values();
    lora_values["init"] = std::string("random");
    lora_values["dropout"] = 0.1;  // recomputed blocks must replay the dropout draws
    auto peft = registry_.create_peft(setup.peft, ctx, Options("peft", lora_values));
    EXPECT_TRUE(peft.ok()) << peft.status().message();
    auto made = registry_.create_offload(setup.offload, ctx, setup.offload_options);
    EXPECT_TRUE(made.ok()) << made.status().message();
    if (!q.ok() || !peft.ok() || !made.ok()) return out;
    std::unique_ptr<OffloadStrategy> strategy = std::move(made).value();
    std::unique_ptr<OffloadStrategy> wrapper = setup.wrap ? setup.wrap(*strategy) : nullptr;
    OffloadStrategy* offload = wrapper ? wrapper.get() : strategy.get();
    auto opt = registry_.create_optimizer(setup.optimizer, ctx, defaults("optimizer", setup.optimizer));
    EXPECT_TRUE(opt.ok()) << opt.status().message();
    if (!opt.ok()) return out;
    std::unique_ptr<Optimizer> optimizer = std::move(opt).value();

    ModelOptions options;
    options.dtype = c10::kFloat;
    options.device = setup.device;
    options.attention = AttentionBackend::kMath;
    const Quantizer* quant = q.value().get();
    options.make_linear = [quant, made = setup.made](const at::Tensor& w, const std::string& site) {
      std::unique_ptr<QuantizedLinear> linear = quant->quantize(w, site);
      if (made && linear) made(site, *linear);
      return linear;
    };
    options.peft = peft.value().get();
    options.offload = offload;
    Qwen2Config config = testing::small_config();
    config.num_hidden_layers = setup.layers;
    if (setup.configure) setup.configure(config);
    auto model = Qwen2Model::create_random(config, 21, options);
    EXPECT_TRUE(model.ok()) << model.status().message();
    if (!model.ok()) return out;
    Qwen2Model& m = *model.value();
    ParamGroup group;
    group.name = "all";
    group.weight_decay = 0.01;
    group.tensors = m.trainable_parameters();
    optimizer->attach({group}, OptimizerSettings{});

    const at::Tensor ids =
        at::tensor(std::vector<int64_t>{5, 9, 2, 61, 7, 33, 1, 8, 40, 3, 17, 96}, at::kLong).view({2, 6}).to(setup.device);
    for (int64_t step = 0; step < setup.steps; ++step) {
      Result r;
      auto forward_backward = [&] {
        at::manual_seed(3 + step);
        r.loss = m.logits(ids, {}, /*training=*/true).pow(2).mean();
        r.loss.backward();
      };
      for (int attempt = 0;; ++attempt) {
        try {
          optimizer->zero_grad();
          if (setup.checked_step) {
            setup.checked_step(step, forward_backward);
          } else {
            forward_backward();
          }
          break;
        } catch (const std::exception& e) {
          if (attempt > 0) throw;
          EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos) << e.what();
        }
      }
      const std::vector<at::Tensor> grads = optimizer->gradients();
      for (size_t i = 0; i < grads.size(); ++i) {
        r.grads.emplace_back(group.tensors[i].first, grads[i].defined() ? grads[i].cpu().clone() : at::Tensor());
      }
      r.loss = r.loss.detach().cpu();
      optimizer->step(1e-2);
      out.steps.push_back(std::move(r));
    }
    if (const void* x = strategy->extension(kZero3StatsId)) out.stats = *static_cast<const Zero3Stats*>(x);
    return out;
  }

  // Bit for bit (CPU) or within `rel` of the largest magnitude (CUDA), step by step.
  static void expect_same_steps(const Steps& ref, const Steps& got, double rel = 0.0) {
    ASSERT_EQ(ref.steps.size(), got.steps.size());
    ASSERT_FALSE(ref.steps.empty());
    for (size_t s = 0; s < ref.steps.size(); ++s) {
      SCOPED_TRACE("step " + std::to_string(s));
      if (rel == 0.0) {
        expect_identical(ref.steps[s], got.steps[s]);
        continue;
      }
      const Result& a = ref.steps[s];
      const Result& b = got.steps[s];
      ASSERT_TRUE(a.loss.defined() && b.loss.defined());
      EXPECT_LE(std::abs(a.loss.item<double>() - b.loss.item<double>()), rel * std::abs(a.loss.item<double>()));
      ASSERT_EQ(a.grads.size(), b.grads.size());
      for (size_t i = 0; i < a.grads.size(); ++i) {
        ASSERT_TRUE(b.grads[i].second.defined()) << b.grads[i].first << " got no gradient";
        const double scale = a.grads[i].second.abs().max().item<double>();
        const double diff = (a.grads[i].second - b.grads[i].second).abs().max().item<double>();
        EXPECT_LE(diff, rel * scale) << a.grads[i].first;
      }
    }
  }
};

}  // namespace testing_offload
}  // namespace loft
