// offload/checkpoint against offload/none on CPU fp32 (label unit): same loss, same gradients bit for bit, same RNG
// stream afterwards, fewer activations kept; option validation.
#include <unordered_set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "toy_network.h"

namespace loft {
namespace {

using testing_offload::kBlocks;
using testing_offload::kHidden;
using testing_offload::ToyNet;
using OffloadCheckpoint = testing_offload::OffloadFixture;

TEST_F(OffloadCheckpoint, EveryBlockRecomputedMatchesNoOffloadBitForBit) {
  parity(c10::kCPU, {"all"}, /*input_grad=*/true);
}

TEST_F(OffloadCheckpoint, SelectedBlocksMatchNoOffloadBitForBit) {
  parity(c10::kCPU, {"every_n:2", "every_n:3", "1, 3", "0", "none"}, /*input_grad=*/true);
}

TEST_F(OffloadCheckpoint, InputWithoutGradStillGivesEveryBlockItsGradients) {
  // The embedding output does not require grad in a LoRA run; the blocks' own tensors must still train.
  parity(c10::kCPU, {"all", "every_n:2"}, /*input_grad=*/false);
}

TEST_F(OffloadCheckpoint, AutogradGradWithASubsetOfInputsMatchesNoOffload) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto input = torch::randn({2, 3, kHidden}).requires_grad_();
  auto run = [&](OffloadStrategy& s) {
    torch::manual_seed(5);
    auto loss = net.loss(s, input);
    return torch::autograd::grad({loss}, {net.blocks[1].a, net.blocks[2].w, net.shared, input});
  };
  auto none = make("none", "", c10::kCPU);
  auto ckpt = make("checkpoint", "all", c10::kCPU);
  auto ref = run(*none);
  auto got = run(*ckpt);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(torch::equal(ref[i], got[i])) << i;
}

TEST_F(OffloadCheckpoint, RetainedGraphRecomputesTheSameGradientsTwice) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto ckpt = make("checkpoint", "all", c10::kCPU);
  torch::manual_seed(3);
  auto loss = net.loss(*ckpt, torch::randn({2, 3, kHidden}));
  loss.backward({}, /*retain_graph=*/true);
  auto first = net.blocks[0].a.grad().clone();
  loss.backward();
  EXPECT_TRUE(torch::equal(net.blocks[0].a.grad(), first * 2));
  // A third pass finds the block's input released and says so.
  try {
    loss.backward();
    ADD_FAILURE() << "a third backward through a released graph should fail";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
}

// Follows the autograd graph from `t` and counts its nodes: each plain node may hold saved activations.
int64_t graph_nodes(const torch::Tensor& t) {
  std::unordered_set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> stack{t.grad_fn().get()};
  while (!stack.empty()) {
    auto* n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n).second) continue;
    for (const auto& e : n->next_edges()) stack.push_back(e.function.get());
  }
  return static_cast<int64_t>(seen.size());
}

TEST_F(OffloadCheckpoint, RecomputedBlocksKeepNoActivationsAfterForward) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto input = torch::randn({2, 3, kHidden}).requires_grad_();
  // A block whose intermediate (saved by tanh's backward in a plain run) we watch through a weak reference.
  c10::weak_intrusive_ptr<c10::StorageImpl> watched{c10::intrusive_ptr<c10::StorageImpl>()};
  auto watching = [&](const torch::Tensor& h) {
    auto inner = torch::tanh(torch::matmul(h, net.blocks[0].w.t()));
    watched = inner.storage().getWeakStorageImpl();
    return h + inner;
  };
  auto none = make("none", "", c10::kCPU);
  auto kept = none->run_block(0, watching, input);
  EXPECT_FALSE(watched.expired()) << "a plain block should keep tanh's output for backward";
  auto ckpt = make("checkpoint", "all", c10::kCPU);
  auto recomputed = ckpt->run_block(0, watching, input);
  EXPECT_TRUE(watched.expired()) << "a recomputed block kept an activation alive after its forward";
  EXPECT_TRUE(torch::equal(kept, recomputed));

  // Whole network: one node per recomputed block instead of the block's graph.
  torch::manual_seed(1);
  auto plain_nodes = graph_nodes(net.loss(*none, input));
  torch::manual_seed(1);
  auto ckpt_nodes = graph_nodes(net.loss(*ckpt, input));
  EXPECT_LT(ckpt_nodes * 2, plain_nodes) << ckpt_nodes << " vs " << plain_nodes;
}

TEST_F(OffloadCheckpoint, WithoutGradModeBlocksRunPlainly) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto ckpt = make("checkpoint", "all", c10::kCPU);
  torch::NoGradGuard no_grad;
  auto out = ckpt->run_block(0, ToyNet::block_fn(net.blocks[0], net.shared * 2.0, 0.0), torch::randn({2, kHidden}));
  EXPECT_FALSE(out.requires_grad());
}

TEST_F(OffloadCheckpoint, InPlaceChangeOfABlockInputIsReported) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto ckpt = make("checkpoint", "all", c10::kCPU);
  auto h = torch::randn({2, kHidden}) * 1.0;
  auto out = ckpt->run_block(0, ToyNet::block_fn(net.blocks[0], net.shared * 2.0, 0.0), h);
  h.add_(1.0);
  try {
    out.sum().backward();
    ADD_FAILURE() << "backward should refuse a block input changed in place";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("modified in place"), std::string::npos) << e.what();
  }
}

TEST_F(OffloadCheckpoint, MalformedBlocksOptionIsRejectedNamingTheOption) {
  RunContext ctx(c10::kCPU, c10::kFloat, 1);
  for (const std::string bad : {"every_n:0", "every_n:x", "1,,2", "1,1", "-1", "some", ""}) {
    SCOPED_TRACE("blocks = \"" + bad + "\"");
    auto s = registry_.create_offload("checkpoint", ctx, Options("offload", {{"blocks", bad}}));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("'blocks'"), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find("every_n:K"), std::string::npos) << s.status().message();
  }
  for (const std::string good : {"all", "none", "every_n:1", "every_n: 4", "0", " 0, 2,5 "}) {
    SCOPED_TRACE("blocks = \"" + good + "\"");
    auto s = registry_.create_offload("checkpoint", ctx, Options("offload", {{"blocks", good}}));
    EXPECT_TRUE(s.ok()) << s.status().message();
  }
}

TEST_F(OffloadCheckpoint, PlacesFrozenTensorsOnTheRunDevice) {
  auto ckpt = make("checkpoint", "all", c10::kCPU);
  auto frozen = torch::ones({3}, torch::kDouble);
  std::vector<BlockResidency> residency(1);
  residency[0].frozen_tensors = {&frozen};
  ckpt->place(residency);
  EXPECT_EQ(frozen.device(), c10::Device(c10::kCPU));
  EXPECT_TRUE(torch::equal(frozen, torch::ones({3}, torch::kDouble)));
}

}  // namespace
}  // namespace loft
