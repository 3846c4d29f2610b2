// Running a validated recipe: build the host context, instantiate the recipe's plugins, prepare the run folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/recipe.h"
#include "loft/plugin_interfaces.h"

namespace loft {

// Everything a recipe names, instantiated. Owns the components for the run.
struct RunComponents {
  std::unique_ptr<RunContext> context;
  // One component per plugin kind, named as the kind: quantizer, peft, offload, dataset, optimizer.
#define LOFT_RUN_COMPONENT(Interface, kind, default_type, doc) std::unique_ptr<Interface> kind;
  LOFT_PLUGIN_KINDS(LOFT_RUN_COMPONENT)
#undef LOFT_RUN_COMPONENT
  std::string quantizer_build;  // plugin_build_identity() of the quantizer: part of the quantized-weight cache key
};

// Loads and creates the recipe's plugins, one of each kind. The error names the plugin and the recipe section.
StatusOr<RunComponents> instantiate(const ResolvedRecipe& recipe, PluginRegistry& registry);

// The recipe's model: config.json + weights from model.path (or random init), the recipe's quantizer, PEFT method and
// offload strategy attached. quantizer.skip sites stay dense; with quantizer.cache_dir (pretrained weights only) the
// quantized layers come from the cache file when it matches, else they are quantized and the file is written.
// Logs its size, the frozen linears' storage and how long building took.
StatusOr<std::unique_ptr<Qwen2Model>> build_model(const ResolvedRecipe& recipe, RunComponents& components);

// Writes the model with every adaptation folded in as a Hugging Face folder: sharded safetensors (5 GiB shards) in the
// compute dtype, plus config.json and the tokenizer files copied from `model_dir`.
Status save_merged_model(const Qwen2Model& model, const std::filesystem::path& model_dir, const std::filesystem::path& out);

// `loft merge RECIPE`: the recipe's model (peft.adapter_path loaded when set) and, when `run_dir` is not empty, that
// run's latest checkpoint, written merged to `out`. Returns the exit code; refuses when there is nothing to merge.
int merge_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const std::filesystem::path& run_dir,
                 const std::filesystem::path& out);
// `loft merge RUN_DIR`: merge_recipe with the run's own recipe.toml and its latest checkpoint.
int merge_run(const std::filesystem::path& run_dir, PluginRegistry& registry, const std::filesystem::path& out);

struct RunOptions {
  std::filesystem::path resume_dir;  // a run folder to continue from its latest checkpoint; empty: a new run
  int64_t stop_after_step = 0;       // > 0: stop (with a checkpoint) after this optimizer step; --resume continues
};

// Runs the recipe end to end: tokenized data, the model with the recipe's plugins, the trainer, the run folder
// (recipe.toml, metrics.jsonl, checkpoints/). Returns the process exit code (0 ok, 1 runtime failure, 2 bad input).
int run_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const RunOptions& options = {});

}  // namespace loft
