// `loft eval`: generate answers to a dataset's problems and grade them MATH-style, by level and type.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "loft/dataset.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"

namespace loft {

struct EvalItem {
  std::string level, type;
  std::string reference;                // the dataset's answer
  std::optional<std::string> predicted;  // the last \boxed{} of the generation, if any
  bool correct = false;
  std::string generation;               // the model's text (special tokens removed)
  std::string prompt;                   // the text the model was given (chat template applied); set by eval_recipe
};

// Grades one generation against a sample: the reference is fields["answer"], else the last \boxed{} of the sample's
// final message.
EvalItem grade_generation(const std::string& generated, const Sample& sample);

// One eval.jsonl line (no newline): {"index", "level", "type", "prompt", "generation", "predicted" (null when the
// generation has no \boxed{}), "reference", "correct"}.
std::string eval_record_json(int64_t index, const EvalItem& item);

struct EvalSummary {
  int64_t total = 0, correct = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> by_level, by_type;  // name -> (correct, total)
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
  std::string table() const;    // human-readable, one line per level and type
  std::string to_json() const;  // what eval.json holds
};
EvalSummary summarize(const std::vector<EvalItem>& items);

class Qwen2Model;
class Tokenizer;

// Generates greedily (stopping at the tokenizer's end-of-text token or after max_new_tokens) for the first `limit`
// samples of `dataset` (0: all), `batch_size` prompts at a time, and grades each: what eval_recipe and the end of a
// run with [eval] accuracy = true both do. Each item's prompt is set. Generation failures are kInternal.
StatusOr<std::vector<EvalItem>> generate_and_grade(Qwen2Model& model, const Tokenizer& tokenizer,
                                                   const Dataset& dataset, int64_t limit, int64_t max_new_tokens,
                                                   int64_t batch_size);

// Writes eval.jsonl (one eval_record_json line per item, in order) and eval.json (the summary) into `run_dir`,
// each atomically, and logs where.
Status write_eval_files(const std::filesystem::path& run_dir, const std::vector<EvalItem>& items);

// Whether a dataset's first sample can be graded: it has a reference answer (fields["answer"], or a \boxed{} in its
// last message). [eval] accuracy = true checks it before training, so a run does not end in a 0% that means nothing.
bool has_reference_answer(const Sample& sample);

struct EvalOptions {
  std::filesystem::path run_dir;  // load the trained tensors of this run's latest checkpoint; empty: the base model
  int64_t limit = 100;            // problems (0: the whole dataset)
  int64_t max_new_tokens = 512;
  int64_t batch_size = 8;
};

// Builds the recipe's model (and the run's trained tensors), generates greedily for the first `limit` samples of the
// recipe's [eval.dataset] (when the recipe has one; else of [dataset]) and grades them. Prints the table; when there is a run folder, writes into it eval.jsonl (one eval_record_json line per
// problem, in dataset order) and eval.json (the summary), each atomically. Bad input is kInvalidArgument; a failure
// of the run another code.
Status eval_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const EvalOptions& options);

struct CompletionOptions {
  std::filesystem::path run_dir;  // load the trained tensors of this run's latest checkpoint; empty: the recipe's model
  std::string prompt;             // the user message; must not be empty
  int64_t max_new_tokens = 512;   // as `loft eval`'s
};

// `loft generate`: the recipe's model (and the run's trained tensors, as eval_recipe loads them) continues `prompt`
// sent as one user message through the tokenizer's chat template, greedily, up to max_new_tokens or the end-of-text
// token. Returns the new text, special tokens removed. Bad input (empty prompt, budget < 1) is kInvalidArgument.
StatusOr<std::string> complete_prompt(const ResolvedRecipe& recipe, PluginRegistry& registry,
                                      const CompletionOptions& options);

}  // namespace loft
