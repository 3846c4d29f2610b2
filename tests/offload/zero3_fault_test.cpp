// offload/zero3 under faults on the CPU (label fault): a pass that stops between a block's Pre and Post (an exception
// in forward, recompute or backward, at every stage of every block) leaves the strategy able to run the next steps
// with offload/none's losses and gradients bit for bit; contradictory options are refused naming both.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "zero3_conformance.h"

namespace loft {
namespace {

using testing_offload::FailingOnceStrategy;
using testing_offload::Zero3Parts;
using Zero3Fault = testing_offload::Zero3Fixture;

TEST_F(Zero3Fault, APassStoppedAtAnyStageLeavesTheNextStepsExact) {
  for (const bool recompute : {true, false}) {
    Zero3Parts parts;
    parts.recompute = recompute;
    parts.activations = recompute;
    auto clean = reference(c10::kCPU, "int8", parts);
    clean.steps = 3;
    clean.layers = 3;
    const Steps ref = train(clean);
    std::vector<BlockStage> stages{BlockStage::kForwardPre, BlockStage::kForwardPost, BlockStage::kBackwardPre};
    if (recompute) stages.insert(stages.end(), {BlockStage::kRecomputePre, BlockStage::kRecomputePost});
    for (const BlockStage stage : stages) {
      for (int64_t block = 0; block < 3; ++block) {
        {
          const int64_t failing_step = 1;  // after a whole step: buffers and saved inputs are in use
          SCOPED_TRACE(parts.label() + ": fails at " + block_stage_name(stage) + " of block " + std::to_string(block) +
                       " in step " + std::to_string(failing_step));
          auto setup = zero3(c10::kCPU, "int8", parts);
          setup.steps = 3;
          setup.layers = 3;
          bool fired = false, armed = false;
          setup.wrap = [&](OffloadStrategy& inner) {
            return std::make_unique<FailingOnceStrategy>(inner, block, stage, &fired, &armed);
          };
          // The failing attempt is made in `failing_step` only (the wrapper is armed there), then retried.
          setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
            armed = step == failing_step;
            forward_backward();
          };
          const Steps got = train(setup);
          EXPECT_TRUE(fired) << "the failure was never injected";
          expect_same_steps(ref, got);
        }
      }
    }
  }
}

TEST_F(Zero3Fault, ActivationsWithoutRecomputeAreRefusedNamingBothOptions) {
  RunContext ctx(c10::kCPU, c10::kFloat, 1);
  Zero3Parts parts;
  parts.activations = true;
  parts.recompute = false;
  auto s = registry_.create_offload("zero3", ctx, parts.options());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'activations'"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("'recompute'"), std::string::npos) << s.status().message();
}

}  // namespace
}  // namespace loft
