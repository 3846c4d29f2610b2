// Running a validated recipe: build the host context, instantiate the recipe's plugins, build the model (one setup
// path, open_session, for run, eval and merge), prepare the run folder. Functions return a Status: kInvalidArgument /
// kNotFound when the user's input is at fault, other codes for failures of the run; the CLI maps them to exit codes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loft/framework/host.h"
#include "loft/framework/memory_budget.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/recipe.h"
#include "loft/framework/tokenizer.h"
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

// The held-out dataset of [eval.dataset], created with its own options; null when the recipe has no [eval]. The
// error names the section.
StatusOr<std::unique_ptr<Dataset>> create_eval_dataset(const ResolvedRecipe& recipe, PluginRegistry& registry,
                                                       const HostContext& context);

// The recipe's model: config.json + weights from model.path (or random init), the recipe's quantizer, PEFT method and
// offload strategy attached. quantizer.skip sites stay dense; with quantizer.cache_dir (pretrained weights only) the
// quantized layers come from the cache file when it matches, else they are quantized and the file is written.
// Logs its size, the frozen linears' storage and how long building took.
StatusOr<std::unique_ptr<Qwen2Model>> build_model(const ResolvedRecipe& recipe, RunComponents& components);

// Writes the model with every adaptation folded in as a Hugging Face folder: sharded safetensors (5 GiB shards) in the
// compute dtype, plus config.json and the tokenizer files copied from `model_dir`.
Status save_merged_model(const Qwen2Model& model, const std::filesystem::path& model_dir, const std::filesystem::path& out);

// What `loft run`, `loft eval` and `loft merge` set up alike, in this order: the recipe's plugins (instantiate), the
// tokenizer, the model (build_model), and optionally the trainable tensors of a run's latest checkpoint.
struct SessionOptions {
  bool tokenizer = true;                  // read model.path/tokenizer.json
  std::filesystem::path trained_run;      // a run folder whose latest checkpoint's trainable tensors are loaded
  std::string trained_run_flag = "--run";  // how the user named that folder, for messages
};
struct Session {
  RunComponents components;
  std::optional<Tokenizer> tokenizer;  // set when SessionOptions::tokenizer
  std::unique_ptr<Qwen2Model> model;   // refers to the components: destroyed first
  std::filesystem::path model_dir;
  std::filesystem::path trained_file;  // the checkpoint file loaded from trained_run, empty otherwise
  std::unique_ptr<MemoryGuard> memory;  // [budget], armed before the model was built
};
StatusOr<Session> open_session(const ResolvedRecipe& recipe, PluginRegistry& registry, const SessionOptions& options);

// `loft merge RECIPE`: the recipe's model (peft.adapter_path loaded when set) and, when `run_dir` is not empty, that
// run's latest checkpoint, written merged to `out`. Refuses (kInvalidArgument) when there is nothing to merge, when
// `out` is (or contains) the base model's folder or the run folder, and when `out` is a non-empty folder unless
// `overwrite` (then only a model folder, with config.json, is replaced). The model is written beside `out` and put
// in place whole (fs::replace_directory): a failure leaves `out` as it was. Fault point: merge.staged.
Status merge_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const std::filesystem::path& run_dir,
                    const std::filesystem::path& out, bool overwrite = false);
// `loft merge RUN_DIR`: merge_recipe with the run's own recipe.toml and its latest checkpoint.
Status merge_run(const std::filesystem::path& run_dir, PluginRegistry& registry, const std::filesystem::path& out,
                 bool overwrite = false);

struct RunOptions {
  std::filesystem::path resume_dir;  // a run folder to continue from its latest checkpoint; empty: a new run
  int64_t stop_after_step = 0;       // > 0: stop (with a checkpoint) after this optimizer step; --resume continues
  bool overwrite = false;            // a new run may replace an earlier run's folder of the same name
  std::vector<std::string> resume_flags;  // CLI flags a resume needs too (--plugin-path DIR), for the resume command
};

// Runs the recipe end to end: tokenized data, the model with the recipe's plugins, the trainer, the run folder
// (recipe.toml, metrics.jsonl, checkpoints/, resumes.jsonl). With [eval]: the held-out examples' loss in metrics.jsonl
// (Trainer::set_validation) and, with eval.accuracy, eval.json and eval.jsonl once the last step is trained. The folder is locked for the whole run
// (run_folder.h); an existing one is refused unless resumed or overwritten, and a resume may change only the keys
// resume_may_change() allows. Fault point: run.locked (the folder is locked and its recipe.toml written).
// SIGINT/SIGTERM during training (stop_signals.h): the current step finishes, a checkpoint is written, the command
// that continues the run is logged, and it returns Ok with stop_signal() set (no adapter/model folder is written).
Status run_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const RunOptions& options = {});

}  // namespace loft
