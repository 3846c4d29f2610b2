// offload/zero3 on the CPU (label unit): every combination of its parts (params, activations, optimizer, recompute)
// gives offload/none's losses and gradients bit for bit over two optimizer steps, for dense, int8 and nf4 storage;
// streamed blocks live in one exactly-sized arena and take turns in prefetch_blocks + 1 buffers; saved inputs go to
// the host and come back; evaluation forwards stream too. On a CPU run the copies are plain, the logic the same.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "zero3_conformance.h"

namespace loft {
namespace {

using testing_offload::all_zero3_combinations;
using testing_offload::Zero3Parts;
using Zero3 = testing_offload::Zero3Fixture;

TEST_F(Zero3, EveryCombinationOfPartsMatchesNoOffloadBitForBit) {
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    // Two references: offload/none with the optimizer each combination uses.
    const Steps with_adamw = train(reference(c10::kCPU, quantizer, Zero3Parts{true, false, false, true}));
    const Steps with_adamw_cpu = train(reference(c10::kCPU, quantizer, Zero3Parts{true, false, true, true}));
    for (const Zero3Parts& parts : all_zero3_combinations()) {
      SCOPED_TRACE("quantizer/" + quantizer + ", " + parts.label());
      const Steps got = train(zero3(c10::kCPU, quantizer, parts));
      expect_same_steps(parts.optimizer ? with_adamw_cpu : with_adamw, got);
      ASSERT_TRUE(got.stats.has_value());
      const Zero3Stats& st = *got.stats;
      if (parts.params) {
        // Every block was streamed (a block's copy is reused when its buffer still holds it), one bound at a time.
        EXPECT_GE(st.block_copies, 4);
        EXPECT_EQ(st.device_buffers, 2);
        EXPECT_EQ(st.max_bound_blocks, 1);
      } else {
        EXPECT_EQ(st.block_copies, 0);
        EXPECT_EQ(st.arena_bytes, 0);
      }
      // Two steps of four blocks: every saved input went out and came back.
      EXPECT_EQ(st.inputs_offloaded, parts.activations ? 8 : 0);
      EXPECT_EQ(st.inputs_restored, parts.activations ? 8 : 0);
    }
  }
}

TEST_F(Zero3, DeeperPrefetchMatchesNoOffloadAndUsesOneBufferPerBlockAhead) {
  const Steps ref = train(reference(c10::kCPU, "int8", Zero3Parts{}));
  for (int64_t prefetch : {2, 3, 8}) {
    SCOPED_TRACE("prefetch_blocks = " + std::to_string(prefetch));
    Zero3Parts parts;
    parts.prefetch_blocks = prefetch;
    const Steps got = train(zero3(c10::kCPU, "int8", parts));
    expect_same_steps(ref, got);
    ASSERT_TRUE(got.stats.has_value());
    EXPECT_EQ(got.stats->device_buffers, std::min<int64_t>(prefetch + 1, 4));
  }
}

TEST_F(Zero3, TheArenaHoldsExactlyTheStreamedStorage) {
  const Steps got = train(zero3(c10::kCPU, "none", Zero3Parts{}));
  ASSERT_TRUE(got.stats.has_value());
  // small_config in fp32: q 64x64, k and v 32x64, o 64x64, gate/up/down 72x64; biases of q, k, v; two norms. Each
  // tensor starts at a multiple of 256 bytes.
  const int64_t block = 4 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 72 * 64) + 5 * 256;
  EXPECT_EQ(got.stats->device_buffer_bytes, block);
  EXPECT_EQ(got.stats->arena_bytes, 4 * block);
}

TEST_F(Zero3, QuantizedBlocksStreamTheirStorageNotADenseCopy) {
  const Steps dense = train(zero3(c10::kCPU, "none", Zero3Parts{}));
  for (const std::string quantizer : {"int8", "nf4"}) {
    SCOPED_TRACE(quantizer);
    const Steps q = train(zero3(c10::kCPU, quantizer, Zero3Parts{}));
    ASSERT_TRUE(q.stats && dense.stats);
    EXPECT_LT(q.stats->arena_bytes * 2, dense.stats->arena_bytes);
    EXPECT_EQ(q.stats->arena_bytes, 4 * q.stats->device_buffer_bytes);
  }
}

TEST_F(Zero3, EvaluationForwardStreamsAndMatchesNoOffload) {
  auto logits = [&](const std::string& offload, const Options& options) {
    RunContext ctx(c10::kCPU, c10::kFloat, 77);
    auto q = registry_.create_quantizer("nf4", ctx, defaults("quantizer", "nf4"));
    auto s = registry_.create_offload(offload, ctx, options);
    EXPECT_TRUE(q.ok() && s.ok());
    ModelOptions mo;
    mo.dtype = c10::kFloat;
    mo.attention = AttentionBackend::kMath;
    const Quantizer* quant = q.value().get();
    mo.make_linear = [quant](const at::Tensor& w, const std::string& site) { return quant->quantize(w, site); };
    mo.offload = s.value().get();
    Qwen2Config config = testing::small_config();
    config.num_hidden_layers = 3;
    auto model = Qwen2Model::create_random(config, 5, mo);
    EXPECT_TRUE(model.ok());
    const at::Tensor ids = at::tensor(std::vector<int64_t>{4, 8, 15, 16, 23, 42}, at::kLong).view({1, 6});
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> out;
    for (int i = 0; i < 3; ++i) out.push_back(model.value()->logits(ids));  // repeated passes reuse the buffers
    return out;
  };
  const auto ref = logits("none", Options("offload", {}));
  const auto got = logits("zero3", Zero3Parts{}.options());
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(at::equal(ref[i], got[i])) << "pass " << i;
}

}  // namespace
}  // namespace loft
