// loft plan's arithmetic on a tiny config whose every term is computed by hand here (see the comments), with fake
// plugins that declare simple costs, and its fallbacks when a plugin declares nothing.
#include <gtest/gtest.h>

#include "loft/framework/memory_plan.h"

namespace loft {
namespace {

// H 8, I 16, V 32, 2 layers, 2 query heads and 1 key-value head of 4: q 8, kv 4. Tied embeddings.
Qwen2Config tiny() {
  Qwen2Config c;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.vocab_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.tie_word_embeddings = true;
  return c;
}

// One byte per weight; the forward rebuilds a bf16 weight.
class ByteQuantizer final : public QuantizerMemoryCost {
 public:
  int64_t storage_bytes(int64_t out, int64_t in, c10::ScalarType) const override { return out * in; }
  int64_t transient_bytes(int64_t out, int64_t in, c10::ScalarType) const override { return out * in * 2; }
};

// Rank-1 adapters on q_proj and v_proj: in + out elements; forward keeps 2 bytes per token.
class RankOne final : public PeftMethod, public PeftMemoryCost {
 public:
  bool targets(const LinearSite& s) const override { return s.short_name == "q_proj" || s.short_name == "v_proj"; }
  std::unique_ptr<Adapter> attach(const LinearSite&) const override { return nullptr; }
  std::vector<std::string> trainable_parameters(const std::vector<std::string>&) const override { return {}; }
  std::string adapter_config_json(const std::string&) const override { return ""; }
  int64_t trainable_elements(const LinearSite& s, bool) const override { return s.in_features + s.out_features; }
  int64_t saved_bytes(const LinearSite&, bool, int64_t tokens, c10::ScalarType) const override { return tokens * 2; }
};

class AdamLike final : public OptimizerMemoryCost {
 public:
  OptimizerFootprint footprint(bool, int64_t) const override {
    OptimizerFootprint f;
    f.state_device_bytes = 8;
    f.gradient_device_bytes = 4;
    f.state_device_bytes_per_tensor = 4;
    return f;
  }
};

class FixedLayout final : public OffloadMemoryPlan {
 public:
  explicit FixedLayout(OffloadMemoryLayout l) : layout_(std::move(l)) {}
  OffloadMemoryLayout layout(const std::vector<ModelUnit>&) const override { return layout_; }

 private:
  OffloadMemoryLayout layout_;
};

struct Fakes {
  ByteQuantizer quantizer;
  RankOne peft;
  AdamLike optimizer;
};

// bf16 on CUDA, 2 examples of at most 5 tokens: T = 10 tokens per micro-batch, 8 in the loss.
PlanSetup cuda_setup(const Fakes& f) {
  PlanSetup s;
  s.config = tiny();
  s.dtype = c10::kBFloat16;
  s.cuda = true;
  s.batch_size = 2;
  s.max_length = 5;
  s.dataset_examples = 3;
  s.pretrained = false;
  s.quantizer = &f.quantizer;
  s.peft = &f.peft;
  s.peft_cost = &f.peft;
  s.optimizer = &f.optimizer;
  return s;
}

OffloadMemoryLayout resident(size_t units, std::vector<BlockExecution> execution) {
  OffloadMemoryLayout l;
  l.homes.assign(units, Home::kRunDevice);
  l.execution = std::move(execution);
  return l;
}

// Hand arithmetic, bf16 (2 bytes):
//   block storage: norms 2*8*2 = 32, biases (8+4+4)*2 = 32, linears 1 byte each: q 64 + k 32 + v 32 + o 64 +
//   gate 128 + up 128 + down 128 = 576 -> 640; embedding 32*8*2 = 512; final norm 16. Weights 2*640+512+16 = 1808.
//   adapters: (8+8) + (8+4) = 28 elements per block, 56 -> 224 bytes fp32; gradients 224; optimizer 56*8 + 8 tensors*4.
//   per token per block: x and the residual 2*2*8 = 32, gate, silu, up 3*2*16 = 96, attention (8+4+4+8)*2 + 2 heads*4
//   = 56, 2 fused norms' rstd 8: 192; the adapters on q and v keep the norm output 10*8*2 = 160 and 2 sites*10*2 = 40:
//   a block keeps 1920 + 160 + 40 = 2120 (no adapter on gate/up/down: h2 and silu*up are not kept). After the blocks:
//   last output 160, final norm rstd 40, its output 160, the shifted copy 8*8*2 = 128: 488; RoPE cos/sin 2*5*4*2 = 80.
//   Activations 2*2120 + 488 + 80 = 4808.
//   loss: 8 rows of 32 fp32 logits + their bf16 copy 8*32*6 = 1536 (> backward's 8*8*6 = 384), hidden gradient
//   8*8*4 = 256: 1792. workspace: 10*(3*16 + 2*8)*2 = 1280 + gate's bf16 weight 256 = 1536, after the loss's 1536 are
//   freed: only cuBLAS adds. Gradients (224) appear as backward frees more than that: nothing adds.
TEST(MemoryPlanArithmetic, EveryTermOfAResidentBf16RunByHand) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  ASSERT_EQ(units.size(), 4u);  // embedding, 2 blocks, final norm (tied: no lm_head)
  EXPECT_EQ(units[1].frozen_bytes, (8 * 8 + 4 * 8 * 2 + 8 * 8 + 16 * 8 * 3) * 2 + 32 + 32);
  const MemoryPrediction p = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain,
                                                                              BlockExecution::kPlain}));
  EXPECT_EQ(p.tokens_per_micro_batch, 10);
  EXPECT_EQ(p.term("context", false), kPlanCudaContextBytes);
  EXPECT_EQ(p.term("weights", false), 1808u);
  EXPECT_EQ(p.term("adapters", false), 224u);
  EXPECT_EQ(p.term("gradients", false), 0u);
  EXPECT_EQ(p.term("optimizer", false), 56u * 8 + 8 * 4);
  EXPECT_EQ(p.term("activations", false), 4808u);
  EXPECT_EQ(p.term("loss chunk", false), 1792u);
  EXPECT_EQ(p.term("workspace", false), kPlanCublasWorkspaceBytes);
  // With accumulation the earlier micro-batches' gradients sit beside the next forward.
  PlanSetup accumulating = s;
  accumulating.grad_accum = 2;
  EXPECT_EQ(predict_memory(accumulating, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}))
                .term("gradients", false),
            224u);
  uint64_t sum = 0;
  for (const auto& t : p.gpu) sum += t.bytes;
  EXPECT_EQ(p.gpu_total_bytes, sum);
  // Host: 3 examples * 5 tokens * (4 + 8) + 1 micro-batch * 10 tokens * 8 * 3 = 420; the runtime estimate.
  EXPECT_EQ(p.term("data", true), 420u);
  EXPECT_EQ(p.term("other", true), kPlanHostRuntimeCudaBytes);
  EXPECT_EQ(p.term("weights", true), 0u);
  EXPECT_EQ(p.host_total_bytes, 420u + kPlanHostRuntimeCudaBytes);
  EXPECT_TRUE(p.notes.empty());
  std::vector<std::string> names;
  for (const auto& t : p.gpu) names.push_back(t.category);
  EXPECT_EQ(names, (std::vector<std::string>{"context", "weights", "adapters", "gradients", "optimizer", "activations",
                                             "loss chunk", "workspace"}));
  names.clear();
  for (const auto& t : p.host) names.push_back(t.category);
  EXPECT_EQ(names, (std::vector<std::string>{"weights", "optimizer", "activations", "data", "other"}));
}

TEST(MemoryPlanArithmetic, RecomputeKeepsInputsAndOneBlockAtATime) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  // Both blocks recomputed. Start of backward: 2 inputs of 10*8*2 = 160, the final norm's 160 + 40, the loop's 160 +
  // 128 and RoPE's 80: 888, + the loss 1792 = 2680. Block 1's backward: block 0's input 160, block 1 whole again 2120,
  // the loop's 368: 2648, + its adapters' gradients 28*4 = 112 + workspace 1536 = 4296: the peak.
  auto both = predict_memory(s, units, resident(units.size(), {BlockExecution::kRecompute, BlockExecution::kRecompute}));
  EXPECT_EQ(both.term("activations", false), 160u + 2120 + 368);
  EXPECT_EQ(both.term("gradients", false), 112u);
  EXPECT_EQ(both.term("loss chunk", false), 0u);
  EXPECT_EQ(both.term("workspace", false), 1536u + kPlanCublasWorkspaceBytes);
  EXPECT_EQ(both.recomputed_blocks, 2);
  // Only block 1 recomputed: the start holds block 0 whole (2120) and block 1's input (160) + 568 + 1792 = 4640;
  // block 1's backward 2120 + 2120 + 368 + 112 + 1536 = 6256: the peak.
  auto one = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kRecompute}));
  EXPECT_EQ(one.term("activations", false), 2120u + 2120 + 368);
  // Inputs on the host: there, all of them; on the device, one at a time.
  auto layout = resident(units.size(), {BlockExecution::kRecompute, BlockExecution::kRecompute});
  layout.saved_inputs_on_host = true;
  layout.device_saved_inputs = 1;
  auto offloaded = predict_memory(s, units, layout);
  EXPECT_EQ(offloaded.term("activations", false), 160u + 2120 + 368);
  EXPECT_EQ(offloaded.term("activations", true), 2u * 160);
}

TEST(MemoryPlanArithmetic, HostHomedBlocksStreamThroughDeviceBuffers) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  auto layout = resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain});
  layout.homes[1] = layout.homes[2] = Home::kPinnedHost;
  layout.device_weight_buffers = 2;
  auto p = predict_memory(s, units, layout);
  EXPECT_EQ(p.term("weights", false), 512u + 16 + 2 * 640);  // embedding, final norm, 2 buffers of a block
  EXPECT_EQ(p.term("weights", true), 2u * 640);
  // Streaming costs predicted throughput (PCIe time beside compute).
  const double resident_tps = predict_tokens_per_second(
      s, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}),
      predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain})));
  EXPECT_LT(predict_tokens_per_second(s, layout, p), resident_tps);
}

TEST(MemoryPlanArithmetic, PackingCountsRowsOfPackLength) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  s.batch_size = 4;
  s.pack_length = 10;  // 2 examples of 5 per row: 2 rows of 10
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  auto p = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}));
  EXPECT_EQ(p.tokens_per_micro_batch, 20);
  s.batch_size = 1;  // one row: no shifted copy of the hidden states (narrow of one row is a view)
  auto one = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}));
  EXPECT_EQ(one.tokens_per_micro_batch, 10);
}

// fp32 on the CPU: the unfused rms_norm keeps x (shared) and rstd, not the normalised product of a frozen weight; the
// run device is the host, so the host total includes the device table.
TEST(MemoryPlanArithmetic, CpuFp32UsesTheUnfusedNormAndCountsTheDeviceAsHost) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  s.cuda = false;
  s.dtype = c10::kFloat;
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  auto p = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}));
  // per token: 4*(16 + 48) = 256, attention 24*4 + 8 = 104, 2 norms' rstd 8: 368; block 3680 + the q/k/v input
  // 10*8*4 = 320 + 2 sites*20. tail: 10*8*4 = 320 + 10*4 + 320 + 8*8*4 = 256; RoPE 2*5*4*4 = 160.
  EXPECT_EQ(p.term("activations", false), 2u * (3680 + 320 + 40) + 320 + 40 + 320 + 256 + 160);
  EXPECT_EQ(p.term("context", false), 0u);
  uint64_t host = 0;
  for (const auto& t : p.host) host += t.bytes;
  EXPECT_EQ(p.host_total_bytes, host + p.gpu_total_bytes);
  EXPECT_EQ(p.device, "cpu");
}

TEST(MemoryPlanArithmetic, PluginsThatDeclareNothingGetNotedFallbacks) {
  PlanSetup s;
  s.config = tiny();
  s.max_length = 5;
  const MemoryPrediction p = predict_memory(s);
  // Dense linears (576 weights * 2 bytes per block instead of 576 bytes), adamw's footprint, resident and plain.
  EXPECT_EQ(p.term("weights", false), 2u * (576 * 2 + 64) + 512 + 16);
  EXPECT_EQ(p.recomputed_blocks, 0);
  std::string notes;
  for (const auto& n : p.notes) notes += n + "\n";
  EXPECT_NE(notes.find("loft.offload.memory_plan/1"), std::string::npos) << notes;
  EXPECT_NE(notes.find("loft.quantizer.memory_cost/1"), std::string::npos) << notes;
  EXPECT_NE(notes.find("loft.optimizer.memory_cost/1"), std::string::npos) << notes;
  EXPECT_NE(notes.find("data not counted"), std::string::npos) << notes;
}

TEST(MemoryPlanArithmetic, SkippedSitesStayDense) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  s.dense_sites = {"model.layers.0.mlp.down_proj"};
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  auto p = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}));
  EXPECT_EQ(p.term("weights", false), 1808u + 128);  // 128 weights at 2 bytes instead of 1
}

TEST(MemoryPlanArithmetic, JsonCarriesEveryCategoryAndTheBudgetVerdict) {
  Fakes f;
  PlanSetup s = cuda_setup(f);
  const auto units = model_units(s.config, s.dtype, s.trainable_params);
  auto p = predict_memory(s, units, resident(units.size(), {BlockExecution::kPlain, BlockExecution::kPlain}));
  const std::string json = prediction_json(p, 1024, 0, 1.0);
  EXPECT_NE(json.find("\"loss chunk\": 1792"), std::string::npos) << json;
  EXPECT_NE(json.find("\"fits\": false"), std::string::npos) << json;  // 1 KiB of GPU budget
  EXPECT_NE(format_prediction(p, 1024, 0).find("OVER"), std::string::npos);
}

}  // namespace
}  // namespace loft
