// Shared by the offload tests: a toy multi-block network (dropout, LoRA-style pair, full fine-tune weight, captured
// RoPE-like tables, a captured non-leaf that requires grad) and a fixture that runs seeded steps through a strategy.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/offload.h"

namespace loft {
namespace testing_offload {

constexpr int64_t kBlocks = 4;
constexpr int64_t kHidden = 16;
constexpr int64_t kRank = 4;

// One block's tensors. `w` is a full fine-tune weight, `a`/`b` a LoRA pair; `cos`/`sin` are captured and frozen like
// RoPE tables; `scale` is a frozen norm weight the strategy places.
struct ToyBlock {
  torch::Tensor w, a, b, cos, sin, scale;
};

// The toy network. `shared` is a trainable leaf whose derived, non-leaf copy `shared_scaled` is computed outside the
// blocks and captured by every one of them (a weight cast once per step, for example).
struct ToyNet {
  std::vector<ToyBlock> blocks;
  torch::Tensor shared;
  double dropout = 0.25;

  ToyNet(c10::Device device, c10::ScalarType dtype) {
    torch::manual_seed(11);
    auto opts = torch::TensorOptions().dtype(dtype).device(device);
    for (int64_t i = 0; i < kBlocks; ++i) {
      ToyBlock blk;
      blk.w = (torch::randn({kHidden, kHidden}, opts) * 0.3).requires_grad_();
      blk.a = (torch::randn({kRank, kHidden}, opts) * 0.3).requires_grad_();
      blk.b = (torch::randn({kHidden, kRank}, opts) * 0.3).requires_grad_();
      auto angle = torch::arange(kHidden, opts) * (0.1 * (i + 1));
      blk.cos = angle.cos();
      blk.sin = angle.sin();
      blk.scale = torch::rand({kHidden}, opts) + 0.5;
      blocks.push_back(blk);
    }
    shared = (torch::randn({kHidden}, opts) * 0.1).requires_grad_();
  }

  std::vector<torch::Tensor> trainable() const {
    std::vector<torch::Tensor> out;
    for (const auto& blk : blocks) out.insert(out.end(), {blk.w, blk.a, blk.b});
    out.push_back(shared);
    return out;
  }

  void zero_grads() {
    for (auto& t : trainable()) t.mutable_grad() = torch::Tensor();
  }

  // One block: dropout from the global generator, a full weight plus a LoRA branch, a rotary-style mix with
  // captured tables, a frozen scale and the shared captured non-leaf.
  static BlockFunction block_fn(const ToyBlock& blk, torch::Tensor shared_scaled, double p) {
    return [blk, shared_scaled, p](const torch::Tensor& h) {
      auto x = torch::dropout(h, p, /*train=*/true);
      auto y = torch::matmul(x, blk.w.t()) + torch::matmul(torch::matmul(x, blk.a.t()), blk.b.t());
      auto rotated = y * blk.cos + torch::roll(y, 1, -1) * blk.sin;
      return h + torch::tanh(rotated) * blk.scale + shared_scaled;
    };
  }

  // Runs every block through `strategy` and returns a scalar loss.
  torch::Tensor loss(OffloadStrategy& strategy, const torch::Tensor& input) const {
    auto shared_scaled = shared * 2.0;
    auto h = input;
    for (int64_t i = 0; i < kBlocks; ++i) h = strategy.run_block(i, block_fn(blocks[i], shared_scaled, dropout), h);
    return torch::dropout(h, dropout, true).pow(2).mean();
  }
};

class OffloadFixture : public ::testing::Test {
 protected:
  void SetUp() override { registry_.discover({LOFT_PLUGIN_DIR}); }

  std::unique_ptr<OffloadStrategy> make(const std::string& name, const std::string& blocks, c10::Device device) {
    RunContext ctx(device, c10::kFloat, 1234);
    std::map<std::string, OptionValue> values;
    if (name == "checkpoint") values["blocks"] = blocks;
    auto s = registry_.create_offload(name, ctx, Options("offload", values));
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  struct Step {
    torch::Tensor loss;
    std::vector<torch::Tensor> grads;  // trainable tensors, then the input if it requires grad
    torch::Tensor next_random;         // first draw after the step: the RNG stream must continue identically
  };

  // A seeded training step: forward, loss.backward(), gradients read from .grad.
  static Step step(ToyNet& net, OffloadStrategy& strategy, const torch::Tensor& input_proto, bool input_grad) {
    net.zero_grads();
    auto input = input_proto.detach().clone().requires_grad_(input_grad);
    torch::manual_seed(99);
    Step out;
    out.loss = net.loss(strategy, input);
    out.loss.backward();
    for (auto& t : net.trainable()) out.grads.push_back(t.grad().defined() ? t.grad().clone() : torch::Tensor());
    if (input_grad) out.grads.push_back(input.grad().clone());
    out.next_random = torch::rand({4}, input_proto.options());
    return out;
  }

  static void expect_identical(const Step& ref, const Step& got) {
    EXPECT_TRUE(torch::equal(ref.loss, got.loss)) << ref.loss.item<double>() << " vs " << got.loss.item<double>();
    ASSERT_EQ(ref.grads.size(), got.grads.size());
    for (size_t i = 0; i < ref.grads.size(); ++i) {
      ASSERT_TRUE(got.grads[i].defined()) << "tensor " << i << " got no gradient";
      EXPECT_TRUE(torch::equal(ref.grads[i], got.grads[i]))
          << "tensor " << i << ": max |diff| " << (ref.grads[i] - got.grads[i]).abs().max().item<double>();
    }
    EXPECT_TRUE(torch::equal(ref.next_random, got.next_random)) << "the RNG stream diverged after the step";
  }

  void parity(c10::Device device, const std::vector<std::string>& selections, bool input_grad) {
    ToyNet net(device, c10::kFloat);
    auto input = torch::randn({3, 5, kHidden}, torch::TensorOptions().device(device));
    auto none = make("none", "", device);
    ASSERT_NE(none, nullptr);
    const Step ref = step(net, *none, input, input_grad);
    for (const auto& blocks : selections) {
      SCOPED_TRACE("blocks = \"" + blocks + "\"");
      auto ckpt = make("checkpoint", blocks, device);
      ASSERT_NE(ckpt, nullptr);
      expect_identical(ref, step(net, *ckpt, input, input_grad));
    }
  }

  PluginRegistry registry_;
};

}  // namespace testing_offload
}  // namespace loft
