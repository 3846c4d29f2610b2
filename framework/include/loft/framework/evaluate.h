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
};

// Grades one generation against a sample: the reference is fields["answer"], else the last \boxed{} of the sample's
// final message.
EvalItem grade_generation(const std::string& generated, const Sample& sample);

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
// grades them. Prints the table; writes eval.json into the run folder when there is one. Bad input is
// kInvalidArgument; a failure of the run another code.
Status eval_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const EvalOptions& options);

}  // namespace loft
