// The framework's recipe sections and their options. Plugin sections declare `type` and the keys the host itself
// uses in that section (dataset.max_length); the rest of their keys come from the selected plugin's manifest.
#include "loft/framework/recipe.h"

#include "loft/framework/manifest.h"
#include "loft/plugin_kinds.h"

namespace loft {

namespace {

OptionSpec opt(std::string name, OptionType type, std::optional<OptionValue> def, std::string doc,
               std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt,
               std::vector<std::string> choices = {}) {
  OptionSpec s;
  s.name = std::move(name);
  s.type = type;
  s.default_value = std::move(def);
  s.doc = std::move(doc);
  s.min = min;
  s.max = max;
  s.choices = std::move(choices);
  return s;
}

using T = OptionType;

std::map<std::string, OptionSchema> build_schema() {
  std::map<std::string, OptionSchema> s;
  s["model"] = {
      opt("path", T::kString, std::nullopt, "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)"),
      opt("dtype", T::kString, std::string("bf16"), "compute dtype of activations and frozen weights", {}, {},
          {"bf16", "fp16", "fp32"}),
      opt("device", T::kString, std::string("auto"), "where to train: auto picks cuda when present", {}, {},
          {"auto", "cpu", "cuda"}),
      opt("init", T::kString, std::string("pretrained"),
          "pretrained loads the weights; random initialises them from config.json (smoke tests, benchmarks)", {}, {},
          {"pretrained", "random"}),
  };
  s["train"] = {
      opt("batch_size", T::kInt, int64_t{4}, "examples per micro-batch", 1),
      opt("packing", T::kBool, false, "pack each micro-batch's examples into as few rows as fit pack_length tokens, "
          "each example attending only to itself (same loss and gradients, less padding)"),
      opt("pack_length", T::kInt, int64_t{0}, "tokens per packed row; 0 means dataset.max_length", 0, 1 << 24),
      opt("grad_accum", T::kInt, int64_t{1}, "micro-batches per optimizer step", 1),
      opt("lr", T::kFloat, 2e-4, "peak learning rate", 0.0),
      opt("schedule", T::kString, std::string("cosine"), "learning-rate schedule after warmup", {}, {},
          {"constant", "linear", "cosine"}),
      opt("warmup_steps", T::kInt, int64_t{0}, "linear warmup steps", 0),
      opt("max_steps", T::kInt, int64_t{-1}, "optimizer steps; -1 means `epochs` passes over the data", -1),
      opt("epochs", T::kInt, int64_t{1}, "passes over the data when max_steps is -1", 1),
      opt("max_grad_norm", T::kFloat, 1.0, "gradient clipping by global norm; 0 disables", 0.0),
      opt("weight_decay", T::kFloat, 0.0, "AdamW decoupled weight decay", 0.0),
      opt("adam_beta1", T::kFloat, 0.9, "AdamW beta1", 0.0, 1.0),
      opt("adam_beta2", T::kFloat, 0.999, "AdamW beta2", 0.0, 1.0),
      opt("adam_eps", T::kFloat, 1e-8, "AdamW epsilon", 0.0),
      opt("seed", T::kInt, int64_t{42}, "seed for initialisation, data order and dropout", 0),
      opt("log_every", T::kInt, int64_t{1}, "steps between log lines and metrics.jsonl records", 1),
      opt("save_every", T::kInt, int64_t{0}, "steps between checkpoints; 0 saves only at the end", 0),
      opt("keep_last", T::kInt, int64_t{2}, "checkpoints kept in <run>/checkpoints: older ones are deleted once a "
          "newer one is in place; the last one written is always kept", 1),
      opt("max_nonfinite_steps", T::kInt, int64_t{3}, "steps in a row whose loss or gradient norm is NaN or Inf that "
          "are skipped (no update: weights, optimizer state and its step count unchanged; logged, and marked "
          "\"nonfinite\": true in metrics.jsonl); the next one in a row stops the run with a checkpoint and exit 1. "
          "0: stop at the first", 0),
      opt("profile_step", T::kInt, int64_t{0}, "run this step under the profiler: a Chrome trace and a table of "
          "the top GPU kernels (CPU operators without CUDA) in <run>/profile/; 0 disables", 0),
  };
  s["budget"] = {
      opt("gpu_memory", T::kString, std::string(""), "cap on GPU memory, e.g. \"15GiB\" (empty: no cap)"),
      opt("host_memory", T::kString, std::string(""), "cap on host memory, e.g. \"12GiB\" (empty: no cap)"),
  };
  s["output"] = {
      opt("dir", T::kString, std::string("runs"), "folder that receives one sub-folder per run"),
      opt("name", T::kString, std::string(""), "run folder name (empty: recipe name + timestamp)"),
  };
  // [eval] and its held-out dataset [eval.dataset]: optional sections, resolved only when the recipe has them
  // (validate_recipe). limit and max_new_tokens exist only with accuracy = true.
  s["eval"] = {
      opt("every", T::kInt, int64_t{0}, "a validation loss over [eval.dataset] every this many optimizer steps (no "
          "gradients, no dropout, the training loss; appended to metrics.jsonl as {\"step\", \"val_loss\", "
          "\"val_label_tokens\"}); one more at the last step. 0: only at the last step", 0),
      opt("accuracy", T::kBool, false, "at the end of `loft run`: generate greedily for the first `limit` problems of "
          "[eval.dataset] and grade the answers MATH-style (eval.json, eval.jsonl in the run folder, as `loft eval`); "
          "needs problems with reference answers"),
      opt("limit", T::kInt, int64_t{100}, "problems graded with accuracy = true (0: the whole dataset); also `loft "
          "eval`'s --limit default", 0),
      opt("max_new_tokens", T::kInt, int64_t{512}, "generation budget per problem with accuracy = true; also `loft "
          "eval`'s --max-new-tokens default", 1),
  };
  s[kEvalDatasetSection] = {opt("type", T::kString, std::nullopt,
                                "the held-out dataset plugin; its options are validated like [dataset]'s, its "
                                "examples tokenized with dataset.max_length")};
  // Plugin sections: `type` first (plugin_kinds.h), then the keys loft itself reads in that section.
  for (const PluginKindInfo& kind : kPluginKindTable) {
    std::optional<OptionValue> def;
    if (*kind.default_plugin) def = std::string(kind.default_plugin);
    s[kind.name] = {opt("type", T::kString, def, kind.doc)};
  }
  auto host_keys = [&](const char* section, OptionSchema keys) {
    for (auto& k : keys) s[section].push_back(std::move(k));
  };
  host_keys("quantizer", {
      opt("skip", T::kStringList, std::vector<std::string>{},
          "linear layers whose frozen weight stays dense in the compute dtype instead of being quantized: a full "
          "module name (\"model.layers.0.mlp.down_proj\"), a dotted suffix that matches every layer's "
          "(\"down_proj\", \"mlp.down_proj\"), or \"re:<regex>\" matched against the full name. \"lm_head\" is "
          "accepted and changes nothing: loft's lm_head is always dense (the chunked loss reads it). An entry that "
          "names no module of the model is an error"),
      opt("cache_dir", T::kString, std::string(""),
          "folder of quantized weights: the first run saves every quantized layer's state there (one safetensors "
          "file, keyed by checkpoint, quantizer build, options, dtype, device and skip list), later runs load it "
          "instead of quantizing; an unusable file is reported and replaced. Empty: no cache. Relative paths are "
          "relative to the recipe's folder"),
  });
  host_keys("peft", {opt("adapter_path", T::kString, std::string(""),
                   "a PEFT adapter folder (adapter_config.json + adapter_model.safetensors, e.g. written by PEFT's "
                   "save_pretrained) loaded into the attached adapters: the initial weights of `loft run`, the "
                   "weights `loft eval` and `loft merge` use; its config must agree with this section (empty: none)")});
  host_keys("dataset", {opt("max_length", T::kInt, int64_t{1024}, "tokens per example after the chat template; longer "
                      "examples are truncated (the prompt is kept, the response cut)", 8, 1 << 20)});
  return s;
}

}  // namespace

const std::map<std::string, OptionSchema>& framework_schema() {
  static const auto* schema = new std::map<std::string, OptionSchema>(build_schema());
  return *schema;
}

std::string section_plugin_kind(const std::string& section) {
  if (is_plugin_kind(section)) return section;
  if (section == kEvalDatasetSection) return "dataset";
  return "";
}

bool is_plugin_section(const std::string& section) { return !section_plugin_kind(section).empty(); }

bool is_optional_section(const std::string& section) { return section == "eval" || section == kEvalDatasetSection; }

}  // namespace loft
