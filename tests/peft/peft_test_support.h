// Shared fixture for the peft/lora and peft/dora tests: plugins loaded through the registry as a run loads them,
// dense sites built on the `none` quantizer, and a relative error measure.
#pragma once

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/peft.h"
#include "loft/quantizer.h"

namespace loft::testing_peft {

// max |a - b| / max |b|: one number per tensor, insensitive to where the values are near zero.
inline double max_rel_error(const torch::Tensor& a, const torch::Tensor& b) {
  auto af = a.detach().to(torch::kDouble).cpu(), bf = b.detach().to(torch::kDouble).cpu();
  double denom = bf.abs().max().item<double>();
  return (af - bf).abs().max().item<double>() / (denom > 0 ? denom : 1.0);
}

// A linear site that owns its frozen base (stored by the `none` quantizer).
struct OwnedSite {
  std::unique_ptr<QuantizedLinear> base;
  LinearSite site;
};

class PeftFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.discover({LOFT_PLUGIN_DIR});
    auto q = registry_.create_quantizer("none", ctx_, defaults("quantizer", "none"));
    ASSERT_TRUE(q.ok()) << q.status().message();
    quantizer_ = std::move(q.value());
  }

  // The manifest's defaults with `overrides` applied, as a recipe section would resolve them.
  Options options(const std::string& kind, const std::string& name, const std::map<std::string, OptionValue>& overrides) {
    Options d = defaults(kind, name);
    std::map<std::string, OptionValue> values = d.values();
    for (const auto& [k, v] : overrides) values[k] = v;
    return Options(kind, values);
  }
  Options defaults(const std::string& kind, const std::string& name) {
    const PluginManifest* m = registry_.find(kind, name);
    EXPECT_NE(m, nullptr) << kind << "/" << name << " not found in " << LOFT_PLUGIN_DIR;
    std::map<std::string, OptionValue> values;
    if (m) {
      for (const auto& spec : m->options) {
        if (spec.default_value) values[spec.name] = *spec.default_value;
      }
    }
    return Options(kind, values);
  }
  std::unique_ptr<PeftMethod> method(const std::string& name, const std::map<std::string, OptionValue>& overrides = {},
                                     const HostContext* ctx = nullptr) {
    auto m = registry_.create_peft(name, ctx ? *ctx : ctx_, options("peft", name, overrides));
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(m.value()) : nullptr;
  }
  OwnedSite site(const std::string& name, const torch::Tensor& weight, const torch::Tensor& bias = {},
                 int64_t layer_index = 0) {
    OwnedSite s;
    s.base = quantizer_->quantize(weight, name);
    s.site.name = name;
    s.site.short_name = name.substr(name.rfind('.') + 1);
    s.site.layer_index = layer_index;
    s.site.in_features = weight.size(1);
    s.site.out_features = weight.size(0);
    s.site.base = s.base.get();
    s.site.bias = bias;
    return s;
  }
  static std::map<std::string, torch::Tensor> state_map(const NamedTensors& tensors) {
    std::map<std::string, torch::Tensor> out;
    for (const auto& [k, v] : tensors) out[k] = v.detach().clone();
    return out;
  }

  PluginRegistry registry_;
  RunContext ctx_{c10::Device(c10::kCPU), c10::kFloat, 1234};
  std::unique_ptr<Quantizer> quantizer_;
};

}  // namespace loft::testing_peft
