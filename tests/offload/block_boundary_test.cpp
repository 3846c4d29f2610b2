// The SDK's block boundary through in-test strategies (label unit): the callbacks each execution gets, in order;
// kBoundary and kRecompute against offload/none bit for bit (backward() and autograd::grad); a strategy that moves
// a recomputed block's saved input away and back; refill_storage / release_storage under a captured graph.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/block_boundary.h"
#include "toy_network.h"

namespace loft {
namespace {

using testing_offload::kBlocks;
using testing_offload::kHidden;
using testing_offload::ToyNet;
using BlockBoundary = testing_offload::OffloadFixture;

// Runs every block as `how` says and records "<index>:<stage>" for every callback.
class RecordingStrategy final : public OffloadStrategy {
 public:
  explicit RecordingStrategy(std::vector<BlockExecution> how) : how_(std::move(how)) {}
  std::vector<Home> plan(const std::vector<ModelUnit>& units) override {
    return std::vector<Home>(units.size(), Home::kRunDevice);
  }
  void place(const std::vector<BlockResidency>&) override {}
  BlockExecution execution(int64_t index) override { return how_[static_cast<size_t>(index) % how_.size()]; }
  void on_block(const BlockEvent& event) override {
    events.push_back(std::to_string(event.index) + ":" + block_stage_name(event.stage));
    if (event.saved_input != nullptr) {
      EXPECT_EQ(event.execution, BlockExecution::kRecompute);
      if (stash_inputs && event.stage == BlockStage::kForwardPost) {
        // Activation offload: keep a copy elsewhere and drop the boundary's reference.
        stashed.push_back(event.saved_input->clone());
        *event.saved_input = at::Tensor();
      } else if (stash_inputs && event.stage == BlockStage::kRecomputePre) {
        EXPECT_FALSE(event.saved_input->defined());
        *event.saved_input = stashed.at(static_cast<size_t>(event.index));
      }
    }
  }
  std::vector<std::string> events;
  bool stash_inputs = false;
  std::vector<at::Tensor> stashed;

 private:
  std::vector<BlockExecution> how_;
};

TEST_F(BlockBoundary, EachExecutionMatchesNoOffloadBitForBit) {
  for (bool input_grad : {true, false}) {
    SCOPED_TRACE(input_grad ? "input requires grad" : "input without grad");
    ToyNet net(c10::kCPU, c10::kFloat);
    auto input = torch::randn({3, 5, kHidden});
    auto none = make("none", "", c10::kCPU);
    const Step ref = step(net, *none, input, input_grad);
    for (const auto& how : std::vector<std::vector<BlockExecution>>{
             {BlockExecution::kBoundary},
             {BlockExecution::kRecompute},
             {BlockExecution::kBoundary, BlockExecution::kRecompute, BlockExecution::kPlain}}) {
      RecordingStrategy s(how);
      expect_identical(ref, step(net, s, input, input_grad));
    }
  }
}

TEST_F(BlockBoundary, CallbacksComeInOrderForEachExecution) {
  ToyNet net(c10::kCPU, c10::kFloat);
  net.dropout = 0.0;
  RecordingStrategy s({BlockExecution::kPlain, BlockExecution::kBoundary, BlockExecution::kRecompute,
                       BlockExecution::kPlain});
  auto input = torch::randn({2, 3, kHidden}).requires_grad_();
  auto loss = net.loss(s, input);
  EXPECT_EQ(s.events, (std::vector<std::string>{"0:forward_pre", "0:forward_post", "1:forward_pre", "1:forward_post",
                                                "2:forward_pre", "2:forward_post", "3:forward_pre",
                                                "3:forward_post"}));
  s.events.clear();
  loss.backward();
  // Backward runs the blocks in reverse; a plain block has no backward callbacks.
  EXPECT_EQ(s.events, (std::vector<std::string>{"2:recompute_pre", "2:recompute_post", "2:backward_pre",
                                                "2:backward_post", "1:backward_pre", "1:backward_post"}));
}

TEST_F(BlockBoundary, WithoutGradModeOnlyForwardCallbacksRun) {
  ToyNet net(c10::kCPU, c10::kFloat);
  RecordingStrategy s({BlockExecution::kRecompute, BlockExecution::kBoundary});
  torch::NoGradGuard no_grad;
  auto out = s.run_block(1, ToyNet::block_fn(net.blocks[1], net.shared * 2.0, 0.0), torch::randn({2, kHidden}));
  EXPECT_FALSE(out.requires_grad());
  EXPECT_EQ(s.events, (std::vector<std::string>{"1:forward_pre", "1:forward_post"}));
}

TEST_F(BlockBoundary, AutogradGradThroughKeptGraphsMatchesNoOffload) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto input = torch::randn({2, 3, kHidden}).requires_grad_();
  auto run = [&](OffloadStrategy& s) {
    torch::manual_seed(5);
    auto loss = net.loss(s, input);
    return torch::autograd::grad({loss}, {net.blocks[1].a, net.blocks[2].w, net.shared, input});
  };
  auto none = make("none", "", c10::kCPU);
  RecordingStrategy boundary({BlockExecution::kBoundary});
  auto ref = run(*none);
  auto got = run(boundary);
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(torch::equal(ref[i], got[i])) << i;
}

TEST_F(BlockBoundary, KeptGraphRunsBackwardTwiceOnlyWhenRetained) {
  ToyNet net(c10::kCPU, c10::kFloat);
  net.dropout = 0.0;
  RecordingStrategy s({BlockExecution::kBoundary});
  auto loss = net.loss(s, torch::randn({2, 3, kHidden}));
  loss.backward({}, /*retain_graph=*/true);
  auto first = net.blocks[0].a.grad().clone();
  loss.backward();
  EXPECT_TRUE(torch::equal(net.blocks[0].a.grad(), first * 2));
  EXPECT_THROW(loss.backward(), c10::Error);
}

TEST_F(BlockBoundary, RecomputedInputMovedAwayAndBackGivesTheSameGradients) {
  ToyNet net(c10::kCPU, c10::kFloat);
  auto input = torch::randn({3, 5, kHidden});
  auto none = make("none", "", c10::kCPU);
  const Step ref = step(net, *none, input, /*input_grad=*/true);
  RecordingStrategy s({BlockExecution::kRecompute});
  s.stash_inputs = true;
  expect_identical(ref, step(net, s, input, /*input_grad=*/true));
  EXPECT_EQ(s.stashed.size(), static_cast<size_t>(kBlocks));
}

TEST_F(BlockBoundary, AWrongSavedInputIsRefused) {
  ToyNet net(c10::kCPU, c10::kFloat);
  class Shrinking final : public OffloadStrategy {
   public:
    std::vector<Home> plan(const std::vector<ModelUnit>& u) override { return std::vector<Home>(u.size()); }
    void place(const std::vector<BlockResidency>&) override {}
    BlockExecution execution(int64_t) override { return BlockExecution::kRecompute; }
    void on_block(const BlockEvent& e) override {
      if (e.stage == BlockStage::kRecomputePre) *e.saved_input = e.saved_input->narrow(0, 0, 1);
    }
  } s;
  auto out = s.run_block(0, ToyNet::block_fn(net.blocks[0], net.shared * 2.0, 0.0), torch::randn({2, kHidden}));
  try {
    out.sum().backward();
    ADD_FAILURE() << "backward should refuse a saved input of another shape";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("kRecomputePre"), std::string::npos) << e.what();
  }
}

// A weight that a kept graph saved (matmul keeps it for the input's gradient) is released after the forward and
// refilled from another buffer before backward: same gradients, no in-place error, same tensor object.
TEST(StorageSwap, RefilledWeightServesTheGraphThatCapturedIt) {
  torch::manual_seed(2);
  auto w = torch::randn({6, 4});
  const auto values = w.clone();
  auto x = torch::randn({3, 4}, torch::requires_grad());
  auto ref_grad = torch::autograd::grad({torch::tanh(torch::matmul(x, values.t())).sum()}, {x})[0];

  auto y = torch::tanh(torch::matmul(x, w.t())).sum();
  const auto version = w._version();
  const void* impl = w.unsafeGetTensorImpl();
  release_storage(w);
  EXPECT_EQ(w.storage().nbytes(), 0u);
  auto buffer = values.clone();  // the "device buffer" the strategy copied the weight into
  refill_storage(w, buffer);
  EXPECT_EQ(w.data_ptr(), buffer.data_ptr());
  EXPECT_EQ(w._version(), version);
  EXPECT_EQ(static_cast<const void*>(w.unsafeGetTensorImpl()), impl);
  auto grad = torch::autograd::grad({y}, {x})[0];
  EXPECT_TRUE(torch::equal(grad, ref_grad));

  // The buffer lives as long as the tensor points at it.
  const void* kept = buffer.data_ptr();
  buffer = torch::Tensor();
  EXPECT_EQ(w.data_ptr(), kept);
  EXPECT_TRUE(torch::equal(w, values));
}

TEST(StorageSwap, MismatchesAreRefused) {
  auto w = torch::zeros({4, 4});
  EXPECT_THROW(refill_storage(w, torch::zeros({4, 3})), c10::Error);
  EXPECT_THROW(refill_storage(w, torch::zeros({4, 4}, torch::kDouble)), c10::Error);
  EXPECT_THROW(refill_storage(w, torch::zeros({4, 4}).t()), c10::Error);
  EXPECT_THROW(release_storage(w.narrow(0, 1, 2)), c10::Error);
  EXPECT_THROW(refill_storage(w.t(), torch::zeros({4, 4})), c10::Error);
}

}  // namespace
}  // namespace loft
