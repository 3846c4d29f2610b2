// Running a validated recipe: build the host context, instantiate the recipe's plugins, prepare the run folder.
#pragma once

#include <filesystem>
#include <memory>

#include "loft/dataset.h"
#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "loft/offload.h"
#include "loft/peft.h"
#include "loft/quantizer.h"

namespace loft {

// Everything a recipe names, instantiated. Owns the components for the run.
struct RunComponents {
  std::unique_ptr<RunContext> context;
  std::unique_ptr<Quantizer> quantizer;
  std::unique_ptr<PeftMethod> peft;
  std::unique_ptr<OffloadStrategy> offload;
  std::unique_ptr<Dataset> dataset;
};

// Loads and creates the recipe's four plugins. The error names the plugin and the recipe section.
StatusOr<RunComponents> instantiate(const ResolvedRecipe& recipe, PluginRegistry& registry);

// Runs the recipe end to end; returns the process exit code (0 ok, 1 runtime failure).
int run_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry);

}  // namespace loft
