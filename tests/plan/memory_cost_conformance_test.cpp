// Every in-tree plugin declares its memory (loft/memory_cost.h), and what it declares is what it then allocates:
// quantizers' storage bytes, PEFT methods' trainable elements, optimizers' state, offload strategies' homes and
// block executions. Plugins loaded through the registry as a run loads them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/dense_linear.h"
#include "loft/framework/host.h"
#include "loft/framework/memory_plan.h"
#include "loft/framework/plugin_registry.h"
#include "loft/memory_cost.h"
#include "loft/offload.h"
#include "loft/optimizer.h"
#include "loft/peft.h"
#include "loft/quantizer.h"

namespace loft {
namespace {

class MemoryCostConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    torch::manual_seed(0);
  }
  Options options(const std::string& kind, const std::string& name, std::map<std::string, OptionValue> set = {}) {
    const PluginManifest* m = registry_.find(kind, name);
    EXPECT_NE(m, nullptr) << kind << "/" << name;
    std::map<std::string, OptionValue> values;
    if (m != nullptr) {
      for (const auto& spec : m->options) {
        if (spec.default_value) values[spec.name] = *spec.default_value;
      }
    }
    for (auto& [k, v] : set) values[k] = v;
    return Options(kind, values);
  }
  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
};

TEST_F(MemoryCostConformance, QuantizersDeclareTheirStorageExactly) {
  // Option sets that change the storage format, per plugin; every in-tree quantizer must be listed.
  const std::map<std::string, std::vector<std::map<std::string, OptionValue>>> variants = {
      {"none", {{}}},
      {"int8", {{}, {{"matmul", std::string("int8")}}}},
      {"nf4", {{}, {{"double_quant", false}}, {{"blocksize", int64_t{128}}}, {{"blocksize", int64_t{4096}}}}},
  };
  for (const auto& name : registry_.names("quantizer")) {
    auto listed = variants.find(name);
    ASSERT_NE(listed, variants.end()) << "quantizer/" << name << ": add its storage-changing options here";
    for (const auto& set : listed->second) {
      for (c10::ScalarType dtype : {c10::kFloat, c10::kBFloat16}) {
        RunContext ctx(c10::Device(c10::kCPU), dtype, 1);
        auto q = registry_.create<Quantizer>(name, ctx, options("quantizer", name, set));
        ASSERT_TRUE(q.ok()) << q.status().message();
        const auto* cost = find_extension<QuantizerMemoryCost>(*q.value(), kQuantizerMemoryCostId);
        ASSERT_NE(cost, nullptr) << "quantizer/" << name << " does not answer " << kQuantizerMemoryCostId;
        // Shapes whose element count is and is not a multiple of the block sizes, odd element counts included.
        for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{48, 64}, {7, 9}, {130, 33}}) {
          auto linear = q.value()->quantize(torch::randn({out, in}).to(dtype), "site");
          EXPECT_EQ(cost->storage_bytes(out, in, dtype), linear->storage_bytes())
              << "quantizer/" << name << " [" << out << ", " << in << "] " << dtype;
          EXPECT_GE(cost->transient_bytes(out, in, dtype), 0);
        }
      }
    }
  }
}

TEST_F(MemoryCostConformance, PeftMethodsDeclareTheirTrainableElementsExactly) {
  const std::map<std::string, std::vector<std::map<std::string, OptionValue>>> variants = {
      {"full", {{}}},
      {"lora", {{}, {{"r", int64_t{3}}, {"dropout", 0.1}}}},
      {"dora", {{}, {{"r", int64_t{5}}}}},
  };
  DenseLinear base(torch::randn({12, 20}));
  for (bool has_bias : {false, true}) {
    LinearSite site;
    site.name = "model.layers.0.self_attn.q_proj";
    site.short_name = "q_proj";
    site.layer_index = 0;
    site.out_features = 12;
    site.in_features = 20;
    site.base = &base;
    if (has_bias) site.bias = torch::randn({12});
    for (const auto& name : registry_.names("peft")) {
      auto listed = variants.find(name);
      ASSERT_NE(listed, variants.end()) << "peft/" << name << ": add its size-changing options here";
      for (const auto& set : listed->second) {
        auto method = registry_.create<PeftMethod>(name, ctx_, options("peft", name, set));
        ASSERT_TRUE(method.ok()) << method.status().message();
        const auto* cost = find_extension<PeftMemoryCost>(*method.value(), kPeftMemoryCostId);
        ASSERT_NE(cost, nullptr) << "peft/" << name << " does not answer " << kPeftMemoryCostId;
        ASSERT_TRUE(method.value()->targets(site));
        auto adapter = method.value()->attach(site);
        int64_t numel = 0;
        for (const auto& [n, t] : adapter->trainable()) numel += t.numel();
        EXPECT_EQ(cost->trainable_elements(site, has_bias), numel) << "peft/" << name;
        EXPECT_GE(cost->saved_bytes(site, has_bias, 16, c10::kBFloat16), 0);
      }
    }
  }
}

TEST_F(MemoryCostConformance, OptimizersDeclareTheirStateExactly) {
  for (const auto& name : registry_.names("optimizer")) {
    auto optimizer = registry_.create<Optimizer>(name, ctx_, options("optimizer", name));
    ASSERT_TRUE(optimizer.ok()) << optimizer.status().message();
    const auto* cost = find_extension<OptimizerMemoryCost>(*optimizer.value(), kOptimizerMemoryCostId);
    ASSERT_NE(cost, nullptr) << "optimizer/" << name << " does not answer " << kOptimizerMemoryCostId;
    ParamGroup g;
    g.name = "default";
    g.tensors = {{"a", torch::randn({6, 5}).requires_grad_(true)}, {"b", torch::randn({7}).requires_grad_(true)}};
    optimizer.value()->attach({g}, OptimizerSettings{});
    // The moments are fp32 per element, wherever the footprint puts them (on a CPU run, device and host are one).
    const OptimizerFootprint f = cost->footprint(/*tensors_on_cuda=*/false, 1);
    int64_t moments = 0;
    for (const auto& [key, t] : optimizer.value()->state_dict()) {
      if (key.rfind("exp_avg", 0) == 0) moments += static_cast<int64_t>(t.nbytes());
    }
    const double elements = 6 * 5 + 7;
    EXPECT_DOUBLE_EQ(f.state_device_bytes + f.state_host_bytes, static_cast<double>(moments) / elements)
        << "optimizer/" << name;
    EXPECT_GE(f.gradient_device_bytes + f.gradient_host_bytes, 4.0) << "optimizer/" << name;
  }
}

TEST_F(MemoryCostConformance, OffloadStrategiesDeclareWhatPlanAndExecutionDo) {
  const std::map<std::string, std::vector<std::map<std::string, OptionValue>>> variants = {
      {"none", {{}}},
      {"checkpoint", {{}, {{"blocks", std::string("every_n:2")}}, {{"blocks", std::string("1,3")}}}},
  };
  Qwen2Config config;
  config.hidden_size = 8;
  config.intermediate_size = 16;
  config.vocab_size = 32;
  config.num_hidden_layers = 4;
  config.num_attention_heads = 2;
  config.num_key_value_heads = 1;
  config.head_dim = 4;
  const auto units = model_units(config, c10::kFloat, {});
  for (const auto& name : registry_.names("offload")) {
    // A strategy not listed here (offload/zero3 lands separately) is checked with its defaults: it must answer too.
    auto listed = variants.find(name);
    const auto sets = listed != variants.end() ? listed->second : std::vector<std::map<std::string, OptionValue>>{{}};
    for (const auto& set : sets) {
      auto strategy = registry_.create<OffloadStrategy>(name, ctx_, options("offload", name, set));
      ASSERT_TRUE(strategy.ok()) << strategy.status().message();
      const auto* plan = find_extension<OffloadMemoryPlan>(*strategy.value(), kOffloadMemoryPlanId);
      ASSERT_NE(plan, nullptr) << "offload/" << name << " does not answer " << kOffloadMemoryPlanId;
      const OffloadMemoryLayout layout = plan->layout(units);
      EXPECT_EQ(layout.homes, strategy.value()->plan(units)) << "offload/" << name;
      ASSERT_EQ(layout.execution.size(), 4u);
      for (int64_t i = 0; i < 4; ++i) {
        EXPECT_EQ(layout.execution[static_cast<size_t>(i)], strategy.value()->execution(i)) << "offload/" << name << " block " << i;
      }
    }
  }
}

}  // namespace
}  // namespace loft
