// `loft ablate GRID.toml`: every variant of an ablation grid (ablation_grid.h) validated and planned before any
// runs, then each run as its own `loft run` process in <grid folder>/runs/<variant>/, with results.jsonl rewritten
// (atomically) as variants end. A variant that fails, or that `loft plan` predicts over the recipe's [budget], is
// recorded with its reason and the grid goes on; a finished variant (summary.json, same recipe) is reused; one with
// a checkpoint is resumed. Grid folder: grid.toml (a copy), results.jsonl, recipes/<variant>.toml (the resolved recipe
// each `loft run` gets), runs/<variant>/, logs/<variant>.log (the run's output), and a lock file (.ablate.lock) held
// while `loft ablate` runs in it.
//
// results.jsonl, one line per variant in grid order:
//   {"variant", "index" (0-based), "seed" (or null), "overrides": {"section.key": value of each axis},
//    "status": "finished" | "failed" | "does_not_fit" | "interrupted" | "pending", "reason" ("" when finished),
//    "run_dir": "runs/<variant>", "reused": bool, "summary": summary.json's contents (run_summary.h) or null}
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "loft/framework/ablation_grid.h"
#include "loft/framework/plugin_registry.h"
#include "loft/status.h"

namespace loft {

struct AblateOptions {
  std::filesystem::path grid_dir;  // empty: <base recipe's output.dir>/ablate/<grid name>
  // "section.key=value" from the command line, as `loft run` reads them: applied to every variant after the grid's
  // [set] (so they win over it); a key that an axis varies (or train.seed with seeds) is refused.
  std::vector<std::string> overrides;
  bool dry_run = false;            // list the variants, their overrides, predicted peaks and what would happen
  std::filesystem::path loft_executable = "/proc/self/exe";  // what runs each variant (`loft run ...`)
  std::vector<std::string> run_flags;  // passed on to every `loft run` (--plugin-path DIR, --log-level L)
  std::string rerun_command;           // the command that continues the grid, for messages
};

struct AblateOutcome {
  int64_t finished = 0, reused = 0, failed = 0, does_not_fit = 0, interrupted = 0, pending = 0;
  int stop_signal = 0;  // SIGINT/SIGTERM that stopped the grid, or 0
};

// Runs (or with dry_run lists) the grid. kInvalidArgument, before anything runs or is written, when a variant's
// recipe is invalid, its files or plugins are missing, or it cannot be planned: every problem, one line each, naming
// the variant(s) and the recipe key at its file:line:column. kInvalidArgument too when another `loft ablate` holds
// the grid folder. Variants' own failures are outcomes, not errors.
StatusOr<AblateOutcome> run_ablation(const AblationGrid& grid, PluginRegistry& registry, const AblateOptions& options);

}  // namespace loft
