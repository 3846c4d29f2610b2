// `loft plan`: a run's predicted peak GPU and host memory by category, from config.json, the recipe and what the
// plugins declare (loft/memory_cost.h), without reading a weight; and `--fit`, the memory knobs that change no
// numerics chosen to maximise a simple throughput model within the recipe's [budget].
//
// Categories (the names [budget] enforcement reports, memory_budget.h once it lands): on the run device "context", "weights",
// "adapters", "gradients", "optimizer", "activations", "loss chunk", "workspace"; on the host "weights" (offloaded,
// pinned arenas), "optimizer" (host optimizer state and gradients), "activations" (offloaded block inputs), "data",
// "other" (libraries, runtime). On a CPU run the run device is the host: the device table's bytes are host bytes too.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

#include "loft/framework/qwen2.h"
#include "loft/framework/recipe.h"
#include "loft/memory_cost.h"
#include "loft/status.h"

namespace loft {

class PluginRegistry;

// Constants of the model that are not in any plugin (documented in the README's `loft plan` section).
inline constexpr uint64_t kPlanCudaContextBytes = uint64_t{512} << 20;    // CUDA context + cuBLAS/cuDNN handles
inline constexpr uint64_t kPlanCublasWorkspaceBytes = uint64_t{32} << 20;  // cuBLAS workspace (sm90 default)
inline constexpr uint64_t kPlanHostRuntimeCpuBytes = uint64_t{320} << 20;   // libtorch + loft, resident, CPU run
inline constexpr uint64_t kPlanHostRuntimeCudaBytes = uint64_t{1280} << 20;  // + CUDA runtime and kernel images
inline constexpr int64_t kPlanLossChunkBytes = int64_t{256} << 20;          // chunked_loss.cpp's fp32 logits chunk

// Everything the arithmetic needs. Plugin answers are borrowed; a null one gets the fallback its field names, and the
// plan lists that as a note.
struct PlanSetup {
  Qwen2Config config;
  c10::ScalarType dtype = c10::kBFloat16;
  bool cuda = true;                    // the run device is a CUDA GPU (else the CPU: the host)
  int64_t batch_size = 1;              // examples per micro-batch
  int64_t grad_accum = 1;
  int64_t max_length = 1024;           // dataset.max_length: an example's tokens at most
  int64_t pack_length = 0;             // > 0: packing on, rows of this many tokens
  std::set<std::string> dense_sites;   // quantizer.skip resolved: linear sites kept dense in the compute dtype
  std::set<std::string> trainable_params;  // non-linear parameters that train (PeftMethod::trainable_parameters)
  int64_t dataset_examples = -1;       // -1: unknown (data not predicted)
  bool pretrained = true;              // weights read from model.path (mapped while loading)
  const QuantizerMemoryCost* quantizer = nullptr;  // null: every linear dense in the compute dtype
  const PeftMethod* peft = nullptr;                // null: no adapters
  const PeftMemoryCost* peft_cost = nullptr;       // null: adapters cost nothing (noted)
  const OptimizerMemoryCost* optimizer = nullptr;  // null: adamw's footprint (noted)
  const OffloadMemoryPlan* offload = nullptr;      // null: everything resident, every block plain (noted)
  std::vector<std::string> notes;                  // carried into the prediction
};

struct MemoryTerm {
  std::string category;
  uint64_t bytes = 0;
  std::string detail;  // what it is made of, briefly
};

struct MemoryPrediction {
  std::string device;                // "cuda" or "cpu"
  std::vector<MemoryTerm> gpu;       // run-device categories, in the fixed order above
  std::vector<MemoryTerm> host;
  uint64_t gpu_total_bytes = 0;      // the run device's peak (0 on a CPU run: see host_total_bytes)
  uint64_t host_total_bytes = 0;     // the host's peak, the run device's bytes included on a CPU run
  uint64_t host_load_bytes = 0;      // the host while loading (mapped checkpoint + host-homed weights + runtime)
  int64_t tokens_per_micro_batch = 0;  // padded tokens the model computes on per micro-batch (worst case)
  int64_t recomputed_blocks = 0;
  int64_t trainable_elements = 0;
  std::vector<std::string> notes;    // fallbacks used
  uint64_t term(const std::string& category, bool on_host) const;
};

// The arithmetic: pure, deterministic, no device work.
MemoryPrediction predict_memory(const PlanSetup& setup, const std::vector<ModelUnit>& units,
                                const OffloadMemoryLayout& layout);
// The model's units as Qwen2Model::build hands them to OffloadStrategy::plan (frozen bytes in the compute dtype).
std::vector<ModelUnit> model_units(const Qwen2Config& config, c10::ScalarType dtype,
                                   const std::set<std::string>& trainable_params);
// The layout the setup's offload plan gives (or the resident, plain fallback), then predict_memory.
MemoryPrediction predict_memory(const PlanSetup& setup);

// The throughput model (README): predicted tokens/s of the setup, only meaningful relative to other setups of the
// same recipe. `layout` as predict_memory used it.
double predict_tokens_per_second(const PlanSetup& setup, const OffloadMemoryLayout& layout,
                                 const MemoryPrediction& memory);

// "1.50 GiB" / "512.0 MiB" / "12 KiB".
std::string format_plan_bytes(uint64_t bytes);

// The human table and the machine form.
std::string format_prediction(const MemoryPrediction& p, uint64_t gpu_budget, uint64_t host_budget);
std::string prediction_json(const MemoryPrediction& p, uint64_t gpu_budget, uint64_t host_budget,
                            double tokens_per_second);

// `loft plan RECIPE`: instantiates the recipe's quantizer, PEFT method, optimizer and offload strategy (no weights, no
// model) and predicts. kInvalidArgument for recipe problems.
struct RecipePlan {
  MemoryPrediction memory;
  double tokens_per_second = 0;
  uint64_t gpu_budget = 0, host_budget = 0;
};
StatusOr<RecipePlan> plan_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry);

// `loft plan --fit RECIPE`: the knobs that change no numerics (train.batch_size with grad_accum keeping the effective
// batch, which blocks recompute, which offload parts, train.pack_length) that fit budget.gpu_memory and
// budget.host_memory with the highest predicted throughput. `recipe_text` is the recipe as parsed (overrides applied);
// the result is validated again. kInvalidArgument when nothing fits (naming the smallest prediction) or the recipe has
// no [budget].
struct FitResult {
  RecipePlan plan;
  std::vector<std::string> overrides;  // "section.key=value" that turn the recipe into the choice
  std::string choice;                  // one line describing it
  ResolvedRecipe resolved;             // the recipe with the choice applied
  int64_t candidates = 0;              // configurations predicted
};
StatusOr<FitResult> fit_recipe(const Recipe& recipe, const ResolvedRecipe& resolved, PluginRegistry& registry);

}  // namespace loft
