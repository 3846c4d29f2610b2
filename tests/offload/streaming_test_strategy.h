// Shared by the residency tests: an in-test strategy that homes chosen blocks on the host and streams them through
// the SDK's contract (what offload/zero3 will do, without its overlap), and a fixture that builds one small Qwen2
// model with it and another with offload/none, and compares a training step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/qwen2.h"
#include "loft/offload.h"
#include "loft/pinned_arena.h"
#include "model_test_support.h"

namespace loft {
namespace testing_offload {

// Homes the blocks in `host_blocks` on the host. place() copies each one's frozen storage (quantized storage through
// QuantizedLinear::visit_storage, biases and norms through the residency pointers) into one exactly-sized
// PinnedArena, and leaves the model holding run-device tensors whose bytes are released. Before a streamed block's
// forward, recompute or kept-graph backward it refills them from fresh device copies of the arena (refill_storage),
// and releases them once that pass no longer reads them, so at most one streamed block is resident at a time.
class StreamingTestStrategy final : public OffloadStrategy {
 public:
  StreamingTestStrategy(c10::Device run_device, std::set<int64_t> host_blocks, BlockExecution streamed,
                        const int64_t* linears_made)
      : run_device_(run_device), host_blocks_(std::move(host_blocks)), streamed_(streamed),
        linears_made_(linears_made) {}

  std::vector<Home> plan(const std::vector<ModelUnit>& units) override {
    ++plan_calls;
    linears_made_at_plan = *linears_made_;
    planned = units;
    std::vector<Home> homes;
    for (const auto& u : units) {
      homes.push_back(u.kind == UnitKind::kBlock && host_blocks_.count(u.index) ? Home::kPinnedHost
                                                                                : Home::kRunDevice);
    }
    return homes;
  }

  void place(const std::vector<BlockResidency>& units) override {
    ++place_calls;
    std::vector<std::pair<int64_t, at::Tensor*>> streamed;  // block, tensor
    for (const auto& unit : units) {
      placed.emplace_back(unit.kind, unit.home);
      const c10::Device built_on = home_device(unit.home, run_device_);
      for (at::Tensor* t : unit.frozen_tensors) {
        if (t->device() != built_on) ++built_elsewhere;
      }
      for (QuantizedLinear* linear : unit.frozen_linears) {
        const bool visited = linear->visit_storage([&](std::string_view, at::Tensor& t) {
          if (t.device() != built_on) ++built_elsewhere;
          if (unit.home == Home::kPinnedHost) streamed.emplace_back(unit.index, &t);
        });
        EXPECT_TRUE(visited) << "every in-tree QuantizedLinear can be visited";
        if (unit.home == Home::kPinnedHost) streamed_storage_bytes += linear->storage_bytes();
      }
      if (unit.home == Home::kPinnedHost) {
        for (at::Tensor* t : unit.frozen_tensors) {
          streamed.emplace_back(unit.index, t);
          streamed_storage_bytes += static_cast<int64_t>(t->nbytes());
        }
      }
    }
    std::vector<int64_t> sizes;
    for (auto& [block, t] : streamed) sizes.push_back(static_cast<int64_t>(t->nbytes()));
    arena = std::make_unique<PinnedArena>(PinnedArena::capacity_for(sizes));
    for (auto& [block, t] : streamed) {
      Entry e;
      e.master = arena->copy_in(*t);
      // Before place() returns a strategy may replace the tensor object; from here on only its bytes change.
      *t = at::empty(t->sizes(), t->options().device(run_device_));
      e.tensor = *t;
      release_storage(e.tensor);
      entries_[block].push_back(std::move(e));
    }
  }

  BlockExecution execution(int64_t index) override {
    return host_blocks_.count(index) ? streamed_ : BlockExecution::kPlain;
  }

  void on_block(const BlockEvent& event) override {
    if (!host_blocks_.count(event.index)) return;
    switch (event.stage) {
      case BlockStage::kForwardPre:
      case BlockStage::kRecomputePre:
      case BlockStage::kBackwardPre:
        fetch(event.index);
        break;
      case BlockStage::kForwardPost:  // a kept graph holds the tensor objects; its backward refills them first
      case BlockStage::kBackwardPost:
        release(event.index);
        break;
      case BlockStage::kRecomputePost:
        break;
    }
  }

  bool resident(int64_t block) const {
    for (const auto& e : entries_.at(block)) {
      if (e.tensor.storage().nbytes() == 0) return false;
    }
    return true;
  }

  int64_t plan_calls = 0, place_calls = 0, linears_made_at_plan = -1, built_elsewhere = 0;
  int64_t fetches = 0, max_resident = 0, streamed_storage_bytes = 0;
  std::vector<ModelUnit> planned;
  std::vector<std::pair<UnitKind, Home>> placed;
  std::unique_ptr<PinnedArena> arena;

 private:
  struct Entry {
    at::Tensor tensor;  // the model's own tensor object (shares its TensorImpl)
    at::Tensor master;  // the pinned host copy
  };

  void fetch(int64_t block) {
    if (resident(block)) return;  // kBoundary's backward after a retained pass, for example
    ++fetches;
    for (auto& e : entries_.at(block)) {
      refill_storage(e.tensor, e.master.to(run_device_, /*non_blocking=*/true, /*copy=*/true));
    }
    int64_t now = 0;
    for (const auto& [b, list] : entries_) now += resident(b) ? 1 : 0;
    max_resident = std::max(max_resident, now);
  }
  void release(int64_t block) {
    for (auto& e : entries_.at(block)) release_storage(e.tensor);
  }

  c10::Device run_device_;
  std::set<int64_t> host_blocks_;
  BlockExecution streamed_;
  const int64_t* linears_made_;
  std::map<int64_t, std::vector<Entry>> entries_;
};

class ResidencyFixture : public ::testing::Test {
 protected:
  void SetUp() override { registry_.discover({LOFT_PLUGIN_DIR}); }

  Options defaults(const std::string& kind, const std::string& name) {
    const PluginManifest* m = registry_.find(kind, name);
    EXPECT_NE(m, nullptr) << kind << "/" << name;
    std::map<std::string, OptionValue> values;
    if (m != nullptr) {
      for (const auto& spec : m->options) {
        if (spec.default_value) values[spec.name] = *spec.default_value;
      }
    }
    return Options(kind, values);
  }

  struct Result {
    at::Tensor loss;
    std::vector<std::pair<std::string, at::Tensor>> grads;
  };

  // Builds a 3-block model quantized by `quantizer` with LoRA (random init, so every adapter tensor gets a
  // gradient) on every linear, runs one loss.backward() through `offload` (offload/none when null) and returns the
  // loss and every trainable gradient. `linears_made` counts the quantizer's calls.
  Result train_step(c10::Device device, const std::string& quantizer, OffloadStrategy* offload, int64_t* linears_made) {
    RunContext ctx(device, c10::kFloat, 77);
    auto q = registry_.create_quantizer(quantizer, ctx, defaults("quantizer", quantizer));
    EXPECT_TRUE(q.ok()) << q.status().message();
    auto lora_values = defaults("peft", "lora").values();
    lora_values["init"] = std::string("random");
    auto peft = registry_.create_peft("lora", ctx, Options("peft", lora_values));
    EXPECT_TRUE(peft.ok()) << peft.status().message();
    std::unique_ptr<OffloadStrategy> none;
    if (offload == nullptr) {
      auto s = registry_.create_offload("none", ctx, defaults("offload", "none"));
      EXPECT_TRUE(s.ok()) << s.status().message();
      none = std::move(s).value();
      offload = none.get();
    }
    ModelOptions options;
    options.dtype = c10::kFloat;
    options.device = device;
    options.attention = AttentionBackend::kMath;
    const Quantizer* quant = q.value().get();
    options.make_linear = [quant, linears_made](const at::Tensor& w, const std::string& site) {
      ++*linears_made;
      return quant->quantize(w, site);
    };
    options.peft = peft.value().get();
    options.offload = offload;
    Qwen2Config config = testing::small_config();
    config.num_hidden_layers = 3;
    auto model = Qwen2Model::create_random(config, 21, options);
    EXPECT_TRUE(model.ok()) << model.status().message();
    Result r;
    if (!model.ok()) return r;
    Qwen2Model& m = *model.value();
    const at::Tensor ids = at::tensor(std::vector<int64_t>{5, 9, 2, 61, 7, 33, 1, 8}, at::kLong).view({2, 4});
    at::manual_seed(3);
    r.loss = m.logits(ids, {}, /*training=*/true).pow(2).mean();
    r.loss.backward();
    for (auto& [name, t] : m.trainable_parameters()) {
      r.grads.emplace_back(name, t.grad().defined() ? t.grad().cpu() : at::Tensor());
    }
    r.loss = r.loss.detach().cpu();
    return r;
  }

  static void expect_identical(const Result& ref, const Result& got) {
    ASSERT_TRUE(ref.loss.defined() && got.loss.defined());
    EXPECT_TRUE(at::equal(ref.loss, got.loss)) << ref.loss.item<double>() << " vs " << got.loss.item<double>();
    ASSERT_EQ(ref.grads.size(), got.grads.size());
    ASSERT_FALSE(ref.grads.empty());
    for (size_t i = 0; i < ref.grads.size(); ++i) {
      ASSERT_TRUE(got.grads[i].second.defined()) << got.grads[i].first << " got no gradient";
      EXPECT_TRUE(at::equal(ref.grads[i].second, got.grads[i].second)) << ref.grads[i].first;
    }
  }

  PluginRegistry registry_;
};

}  // namespace testing_offload
}  // namespace loft
