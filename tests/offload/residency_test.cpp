// Residency before materialisation on the CPU (label unit): the strategy plans every unit's home (embedding, each
// block, final norm, lm_head) before the quantizer makes any linear; the model builds each unit there and offers it
// to place() with its home; a strategy that keeps chosen blocks in a pinned arena and streams them in through
// refill_storage (kept graphs and recomputed blocks alike) gives the loss and gradients of offload/none bit for bit,
// for dense, int8 and nf4 storage. On a CPU run the host home is CPU memory, so the homes are checked as the enum.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "streaming_test_strategy.h"

namespace loft {
namespace {

using testing_offload::StreamingTestStrategy;
using Residency = testing_offload::ResidencyFixture;

TEST_F(Residency, HomesArePlannedBeforeAnythingIsBuiltAndEveryUnitIsOffered) {
  int64_t made = 0;
  StreamingTestStrategy s(c10::kCPU, {1}, BlockExecution::kRecompute, &made);
  const Result got = train_step(c10::kCPU, "none", &s, &made);
  ASSERT_TRUE(got.loss.defined());
  EXPECT_EQ(s.plan_calls, 1);
  EXPECT_EQ(s.place_calls, 1);
  EXPECT_EQ(s.linears_made_at_plan, 0) << "plan() must come before the quantizer makes any linear";
  EXPECT_EQ(made, 3 * 7);
  std::vector<std::string> names;
  for (const auto& u : s.planned) names.push_back(u.name);
  EXPECT_EQ(names, (std::vector<std::string>{"model.embed_tokens", "model.layers.0", "model.layers.1", "model.layers.2",
                                             "model.norm", "lm_head"}));
  for (const auto& u : s.planned) EXPECT_GT(u.frozen_bytes, 0) << u.name;
  // One block in float32: 7 linears, 3 biases, 2 norms (small_config: hidden 64, q/kv 64/32, ffn 72).
  const int64_t block_elems = 64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 72 * 64 + 64 + 2 * 32 + 2 * 64;
  EXPECT_EQ(s.planned[1].frozen_bytes, block_elems * 4);
  EXPECT_EQ(s.planned[0].frozen_bytes, 97 * 64 * 4);
  const std::vector<std::pair<UnitKind, Home>> expected{
      {UnitKind::kEmbedding, Home::kRunDevice}, {UnitKind::kBlock, Home::kRunDevice},
      {UnitKind::kBlock, Home::kPinnedHost},    {UnitKind::kBlock, Home::kRunDevice},
      {UnitKind::kFinalNorm, Home::kRunDevice}, {UnitKind::kLmHead, Home::kRunDevice}};
  EXPECT_EQ(s.placed, expected);
  EXPECT_EQ(s.built_elsewhere, 0) << "every frozen tensor is built at its unit's home";
}

TEST_F(Residency, StreamedBlocksGiveTheLossAndGradientsOfNoOffload) {
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    int64_t made = 0;
    const Result ref = train_step(c10::kCPU, quantizer, nullptr, &made);
    for (const BlockExecution how : {BlockExecution::kBoundary, BlockExecution::kRecompute}) {
      SCOPED_TRACE("quantizer/" + quantizer + (how == BlockExecution::kBoundary ? ", kept graphs" : ", recomputed"));
      made = 0;
      StreamingTestStrategy s(c10::kCPU, {0, 2}, how, &made);
      expect_identical(ref, train_step(c10::kCPU, quantizer, &s, &made));
      // Exactly-sized arena: the streamed blocks' storage and nothing else (alignment aside).
      ASSERT_NE(s.arena, nullptr);
      EXPECT_EQ(s.arena->tensor_bytes(), s.streamed_storage_bytes);
      EXPECT_EQ(s.arena->used_bytes(), s.arena->capacity_bytes());
      EXPECT_EQ(s.arena->pinned(), torch::cuda::is_available());
      // Forward and backward each brought every streamed block in, one at a time.
      EXPECT_GE(s.fetches, 4);
      EXPECT_EQ(s.max_resident, 1);
      EXPECT_FALSE(s.resident(0));
      EXPECT_FALSE(s.resident(2));
    }
  }
}

}  // namespace
}  // namespace loft
