// summary.json: one finished run in numbers (throughput, memory measured and planned, losses, accuracy, sizes),
// written atomically into the run folder at the end of `loft run` (a resumed run's too) and read by `loft ablate`
// and `loft report`. Its format is a contract:
//   {"format": "loft-run-summary", "version": 1, "status": "finished", "steps", "wall_s", "tokens_per_s",
//    "step_time_s", "peak_gpu_bytes", "peak_host_bytes",
//    "planned": {"gpu_bytes", "host_bytes", "gpu_by_category": {category: bytes}, "host_by_category": {...}} or null,
//    "final_loss", "val_loss" (or null), "eval_accuracy" (or null), "trainable_params", "adapter_bytes"}
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "loft/framework/memory_plan.h"
#include "loft/status.h"

namespace loft {

inline constexpr const char* kRunSummaryFileName = "summary.json";

// What only the process that finishes the run knows; the rest comes from the run folder's files.
struct RunSummaryFacts {
  int64_t steps = 0;     // optimizer steps the run has done in all
  double wall_s = 0;     // seconds this process took, setup included (a resumed run: its own process only)
  // The steps this process logged, in order: tokens/s and seconds of each. The first is left out of the medians
  // (warm-up) unless it is the only one.
  std::vector<double> tokens_per_s, step_time_s;
  std::optional<MemoryPrediction> planned;  // `loft plan`'s prediction of the recipe; nullopt: planning failed
  int64_t trainable_params = 0;
  std::filesystem::path saved;  // the adapter/ or model/ folder the run wrote (its bytes are summed)
};

// Writes <run_dir>/summary.json atomically. From <run_dir>/metrics.jsonl: final_loss (the last training record's
// loss), peak_gpu_bytes / peak_host_bytes (the maximum over every record), val_loss (the last validation record's
// `val_loss`, null without one), and tokens_per_s when this process logged no step; from <run_dir>/eval.json, when
// present, eval_accuracy. Errors name the file.
Status write_run_summary(const std::filesystem::path& run_dir, const RunSummaryFacts& facts);

// Deletes <run_dir>/summary.json (a resumed run is not finished until it writes a new one).
Status remove_run_summary(const std::filesystem::path& run_dir);

// The median of `values` without its first element (the whole when it has one); nullopt when empty.
std::optional<double> median_after_first(const std::vector<double>& values);

}  // namespace loft
