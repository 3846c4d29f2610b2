// Residency before materialisation on CUDA (label gpu): blocks homed on the host are built in host memory (never on
// the GPU first), streamed from an arena pinned with cudaHostRegister into device buffers, and the step equals
// offload/none's bit for bit (math attention). Skips with a printed reason where no CUDA device is visible.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "streaming_test_strategy.h"

namespace loft {
namespace {

#define LOFT_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

using testing_offload::StreamingTestStrategy;
using ResidencyGpu = testing_offload::ResidencyFixture;

TEST_F(ResidencyGpu, HostHomedBlocksAreBuiltOnTheHostAndStreamedBitExactly) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    SCOPED_TRACE("quantizer/" + quantizer);
    int64_t made = 0;
    const Result ref = train_step(dev, quantizer, nullptr, &made);
    for (const BlockExecution how : {BlockExecution::kBoundary, BlockExecution::kRecompute}) {
      made = 0;
      StreamingTestStrategy s(dev, {1, 2}, how, &made);
      expect_identical(ref, train_step(dev, quantizer, &s, &made));
      EXPECT_EQ(s.linears_made_at_plan, 0);
      EXPECT_EQ(s.built_elsewhere, 0) << "host-homed tensors must be built in host memory";
      ASSERT_NE(s.arena, nullptr);
      EXPECT_TRUE(s.arena->pinned());
      EXPECT_EQ(s.arena->tensor_bytes(), s.streamed_storage_bytes);
      EXPECT_EQ(s.max_resident, 1);
    }
  }
}

}  // namespace
}  // namespace loft
