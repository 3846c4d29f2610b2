// `loft report`: grids (results.jsonl) and run folders (metrics.jsonl, summary.json, eval.json) read into rows and
// loss curves, and drawn as one self-contained HTML file: inline SVG charts (loss curves with seed bands, throughput,
// peak memory measured beside planned, planned memory by category, accuracy with seed error bars) and the results
// table. No script, no external resource.
//
// Thread-compatible; nothing here throws (beyond std::bad_alloc).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "loft/framework/results_table.h"
#include "loft/status.h"

namespace loft {

struct CurvePoint {
  int64_t step = 0;
  double value = 0;
};

// The curves of one run's metrics.jsonl: training records ("loss") and validation records ("val_loss", no "loss").
struct RunCurves {
  std::vector<CurvePoint> train_loss;
  std::vector<CurvePoint> val_loss;
  // Summary figures when the run has no summary.json: median tokens/s of the logged steps after the first, peak
  // memory, the last losses and step.
  RunSummary measured;
};

// Reads metrics.jsonl. A torn last line (a run still writing) is skipped; a malformed line before it is an error
// naming file:line (kInvalidArgument). Non-finite steps (loss null) are left out of the curve.
StatusOr<RunCurves> read_metrics_curves(const std::filesystem::path& metrics_jsonl);

// What a report shows: rows (one per run) with their curves, and notes about what was missing.
struct ReportData {
  std::vector<std::string> inputs;  // the paths as given
  std::vector<ResultRow> rows;
  std::vector<std::optional<RunCurves>> curves;  // per row; empty when the run left no metrics.jsonl
  std::vector<std::string> notes;
};

// The planned memory of a run folder whose summary.json does not hold it (e.g. by planning its recipe.toml), or
// nothing.
using PlanForRun = std::function<std::optional<PlannedMemory>(const std::filesystem::path& run_dir)>;

// Reads each path: a grid folder (results.jsonl; each row's run_dir/metrics.jsonl when present) or a run folder
// (metrics.jsonl required; summary.json and eval.json when present; its recipe.toml's keys, less [output], are its
// overrides, so runs given together are grouped by what differs and their seeds aggregated). Several grids stay
// apart (each row's source). Errors (kNotFound, kInvalidArgument) name the path and say what a folder must hold.
StatusOr<ReportData> load_report_data(const std::vector<std::filesystem::path>& paths, const PlanForRun& plan = {});

// The HTML page. Every element a test or a reader looks for has a stable id or class: figures "chart-train-loss",
// "chart-val-loss", "chart-throughput", "chart-gpu-memory", "chart-host-memory", "chart-memory-breakdown",
// "chart-accuracy" (each an <svg role="img"> with a <title>), and the table "results-table".
std::string render_report_html(const ReportData& data);

// load_report_data + render_report_html, written atomically to `out`.
Status write_report(const std::vector<std::filesystem::path>& paths, const std::filesystem::path& out,
                    const PlanForRun& plan = {});

}  // namespace loft
