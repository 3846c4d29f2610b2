// Results of runs and grids (issue 12): summary.json and results.jsonl read into rows, rows grouped into variants with
// seeds aggregated (mean and spread, and whether two variants' spreads overlap), and the tables written from them:
// results.csv (every row, every column) and results.md (one row per variant, only the keys that differ).
// `loft report` draws its charts and table from the same aggregation.
//
// Every function here is thread-compatible and never throws (beyond std::bad_alloc).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loft/status.h"

namespace loft {

// Planned peak memory of a run, as `loft plan` predicts it (bytes; categories in the planner's order).
struct PlannedMemory {
  double gpu_bytes = 0;
  double host_bytes = 0;
  std::vector<std::pair<std::string, double>> gpu_by_category;
  std::vector<std::pair<std::string, double>> host_by_category;
};

// What a run measured (summary.json, "loft-run-summary" version 1). Every field may be missing.
struct RunSummary {
  std::string status;  // "finished" when summary.json says so
  std::optional<int64_t> steps;
  std::optional<double> wall_s, tokens_per_s, step_time_s, peak_gpu_bytes, peak_host_bytes;
  std::optional<PlannedMemory> planned;
  std::optional<double> final_loss, val_loss, eval_accuracy, trainable_params, adapter_bytes;
};

// Parses summary.json's text. `where` names the file in errors (kInvalidArgument).
StatusOr<RunSummary> parse_run_summary(std::string_view json_text, const std::string& where);

// One line of a grid's results.jsonl: one variant with one seed.
struct ResultRow {
  std::string variant;
  int64_t index = 0;
  std::optional<int64_t> seed;
  // Recipe key -> value (strings unquoted, other values as TOML/JSON writes them), in the order of the file.
  std::vector<std::pair<std::string, std::string>> overrides;
  std::string status;  // finished | failed | does_not_fit | interrupted | pending
  std::string reason;  // why it did not finish; empty when finished
  std::string run_dir;  // relative to the grid folder (or the run folder itself for a single run)
  bool reused = false;  // a finished run found by a re-run, not run again
  std::optional<RunSummary> summary;
  // Rows of different sources (grids) never merge into one variant; empty for a single grid.
  std::string source;
};

// Reads results.jsonl: every line must be a JSON object of the contract (a torn line is an error: the file is
// rewritten atomically). Errors name file:line (kInvalidArgument) or the file (kNotFound).
StatusOr<std::vector<ResultRow>> read_results_jsonl(const std::filesystem::path& file);

// The metrics of a results table, in column order.
enum class Metric {
  kTokensPerS,
  kStepTime,
  kPeakGpu,
  kPlannedGpu,
  kPeakHost,
  kPlannedHost,
  kFinalLoss,
  kValLoss,
  kEvalAccuracy,
  kTrainableParams,
  kAdapterBytes,
  kWallTime,
};
struct MetricInfo {
  Metric metric;
  const char* column;    // Markdown/HTML header
  const char* csv_name;  // CSV header (base units: bytes, seconds)
  bool higher_is_better;
  bool primary;  // compared across variants: best marked, overlapping spreads marked
};
const std::vector<MetricInfo>& result_metrics();
const MetricInfo& metric_info(Metric metric);
std::optional<double> metric_value(const RunSummary& summary, Metric metric);
// The value in human units: "1.25 GiB", "12.3k tok/s", "85 ms", "41.2%", "1.54M", "2m 05s", "0.7812".
std::string format_metric(Metric metric, double value);

// Seed statistics of one metric. `low`..`high` is the interval compared for overlap: the value itself for one seed,
// min..max for two, mean -/+ sample standard deviation for three or more.
struct Spread {
  int count = 0;
  double mean = 0, min = 0, max = 0, stddev = 0, low = 0, high = 0;
};
std::optional<Spread> spread_of(const std::vector<double>& values);
bool spreads_overlap(const Spread& a, const Spread& b);
// "0.7812" (one seed), "0.7812 (0.7700-0.7924)" (two), "0.7812 ± 0.0100" (three or more), in human units.
std::string format_spread(Metric metric, const Spread& spread);

// One variant: the rows that differ only in train.seed (and come from one source).
struct VariantResult {
  std::string name;
  std::vector<std::pair<std::string, std::string>> overrides;  // without train.seed
  std::vector<size_t> rows;  // indices into the rows given to aggregate_results, in their order
  std::vector<size_t> measured_rows;  // rows whose figures count: finished (or a single run still running)
  std::string status;  // "finished", "failed: <reason>", "does_not_fit: <reason>", "2/3 finished; seed 3 failed: ..."
  bool reused = false;  // at least one of its runs was reused
  std::map<Metric, Spread> metrics;  // over the measured rows that have the metric
  std::set<Metric> best;           // primary metrics for which it is the best variant
  std::set<Metric> overlaps_best;  // primary metrics whose spread overlaps the best variant's (not itself the best)
};

struct ResultsTable {
  std::vector<std::string> differing_keys;  // override keys whose values differ across variants (train.seed never)
  std::vector<VariantResult> variants;      // in order of first appearance
  std::vector<Metric> metrics;              // metrics some variant has other than 0, in column order
  bool any_seeds = false;                   // some row has a seed
  bool any_unfinished = false;              // some row did not finish, or was reused: a status column is shown
};
ResultsTable aggregate_results(const std::vector<ResultRow>& rows);
// A variant's value of an override key, or "-" when it does not set it.
std::string override_value(const VariantResult& variant, const std::string& key);
// The seeds of a variant's rows, "1, 2, 3" ("-" when none has one).
std::string variant_seeds(const VariantResult& variant, const std::vector<ResultRow>& rows);

// The sentence printed under a table: what its markers and spreads mean.
std::string results_table_legend();

// results.csv: a header, then one line per row (RFC 4180 quoting): variant, index, seed, every override key, status,
// reason, run_dir, reused, each metric in base units, planned bytes per category.
std::string results_csv(const std::vector<ResultRow>& rows);
// results.md: one line per variant (differing keys, seeds, status when needed, the metrics some variant measured) and the
// legend.
std::string results_markdown(const std::vector<ResultRow>& rows, const ResultsTable& table);

// Reads <grid_dir>/results.jsonl and writes <grid_dir>/results.csv and results.md, each atomically.
Status write_results_tables(const std::filesystem::path& grid_dir);

}  // namespace loft
