// Shared by the model tests: a dense test-local QuantizedLinear, model options, error measures.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "loft/framework/qwen2.h"

namespace loft::testing {

// y = x W^T in the model's dtype (what the quantizer/none plugin does), counting calls.
class DenseTestLinear final : public QuantizedLinear {
 public:
  DenseTestLinear(at::Tensor weight, int64_t* calls) : weight_(std::move(weight)), calls_(calls) {}
  at::Tensor forward(const at::Tensor& x) const override {
    if (calls_ != nullptr) ++*calls_;
    return at::linear(x, weight_);
  }
  at::Tensor dequantize(c10::ScalarType dtype) const override { return weight_.to(dtype); }
  int64_t storage_bytes() const override { return static_cast<int64_t>(weight_.nbytes()); }
  std::map<std::string, at::Tensor> state() const override { return {{"weight", weight_}}; }
  void to(c10::Device device, bool non_blocking) override { weight_ = weight_.to(device, non_blocking); }
  int64_t out_features() const override { return weight_.size(0); }
  int64_t in_features() const override { return weight_.size(1); }

 private:
  at::Tensor weight_;
  int64_t* calls_;
};

inline LinearMaker dense_maker(c10::ScalarType dtype, int64_t* calls = nullptr) {
  return [dtype, calls](const at::Tensor& weight, const std::string&) -> std::unique_ptr<QuantizedLinear> {
    return std::make_unique<DenseTestLinear>(weight.detach().to(dtype).contiguous(), calls);
  };
}

inline ModelOptions cpu_options(c10::ScalarType dtype = at::kFloat) {
  ModelOptions options;
  options.dtype = dtype;
  options.device = c10::Device(c10::kCPU);
  options.make_linear = dense_maker(dtype);
  return options;
}

// Norm weights train (no adapters): gradients must flow back through attention and RoPE to reach them.
class NormsTrain final : public PeftMethod {
 public:
  bool targets(const LinearSite&) const override { return false; }
  std::unique_ptr<Adapter> attach(const LinearSite&) const override { return nullptr; }
  std::vector<std::string> trainable_parameters(const std::vector<std::string>& names) const override {
    std::vector<std::string> out;
    for (const auto& n : names) {
      if (n.find("norm") != std::string::npos) out.push_back(n);
    }
    return out;
  }
  std::string adapter_config_json(const std::string&) const override { return ""; }
};

// max |a - b| / max |b|: the error relative to the reference's scale.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

inline std::vector<int64_t> to_ids(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

inline Qwen2Config small_config(int64_t heads = 4, int64_t kv_heads = 2, bool tied = false) {
  Qwen2Config c;
  c.vocab_size = 97;
  c.hidden_size = 16 * heads;
  c.intermediate_size = 72;
  c.num_hidden_layers = 2;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 16;
  c.tie_word_embeddings = tied;
  c.initializer_range = 0.2;  // larger than HF's 0.02 so that layers visibly change the logits
  return c;
}

}  // namespace loft::testing
