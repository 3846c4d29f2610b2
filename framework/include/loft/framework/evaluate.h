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

struct EvalOptions {
  std::filesystem::path run_dir;  // load the trained tensors of this run's latest checkpoint; empty: the base model
  int64_t limit = 100;            // problems (0: the whole dataset)
  int64_t max_new_tokens = 512;
  int64_t batch_size = 8;
};

// Builds the recipe's model (and the run's trained tensors), generates greedily for the first `limit` samples and
// grades them. Prints the table; when there is a run folder, writes into it eval.jsonl (one eval_record_json line per
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
