// What `loft report` reads: grid folders (results.jsonl and each variant's run folder) and run folders
// (metrics.jsonl, summary.json, eval.json, recipe.toml), as rows with loss curves.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loft/framework/files.h"
#include "loft/framework/recipe.h"
#include "loft/framework/report.h"
#include "report/text_file.h"

namespace loft {

namespace {

using json = nlohmann::json;
namespace fsp = std::filesystem;

std::optional<double> finite_number(const json& record, const char* key) {
  auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Bytes of the regular files below `dir` (the saved adapter/ or model/ folder).
std::optional<double> folder_bytes(const fsp::path& dir) {
  if (!fs::is_directory(dir)) return std::nullopt;
  double total = 0;
  std::vector<fsp::path> pending = {dir};
  while (!pending.empty()) {
    const fsp::path d = pending.back();
    pending.pop_back();
    for (const fsp::path& entry : fs::list_directory(d)) {
      if (fs::is_directory(entry)) {
        pending.push_back(entry);
      } else if (auto size = fs::file_size(entry)) {
        total += static_cast<double>(*size);
      }
    }
  }
  return total;
}

// eval.json's accuracy, when the run was evaluated.
StatusOr<std::optional<double>> eval_accuracy(const fsp::path& run_dir) {
  const fsp::path file = run_dir / "eval.json";
  if (!fs::is_regular_file(file)) return std::optional<double>();
  auto text = report_detail::read_text_file(file);
  if (!text.ok()) return text.status();
  const json j = json::parse(text.value(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return Status::InvalidArgument(file.string() + ": not a JSON object; run `loft eval --run " + run_dir.string() +
                                   "` again to rewrite it");
  }
  return finite_number(j, "accuracy");
}

// A run's recipe keys (less [output]: names and folders) as overrides, and its train.seed.
void recipe_overrides(const fsp::path& run_dir, ResultRow& row) {
  const fsp::path file = run_dir / "recipe.toml";
  if (!fs::is_regular_file(file)) return;
  auto recipe = parse_recipe_file(file);
  if (!recipe.ok()) return;  // the report still shows the run, only not what it set
  for (const auto& [section_name, section] : recipe.value().sections) {
    if (section_name == "output") continue;
    for (const auto& [key, entry] : section.entries) {
      const std::string name = section_name + "." + key;
      std::string value;
      if (const auto* s = std::get_if<std::string>(&entry.value)) {
        value = *s;
      } else if (const auto* d = std::get_if<double>(&entry.value)) {
        value = fmt::format("{}", *d);
      } else {
        value = format_option_value(entry.value);
      }
      if (name == "train.seed") {
        if (const auto* i = std::get_if<int64_t>(&entry.value)) row.seed = *i;
      }
      row.overrides.emplace_back(name, value);
    }
  }
}

std::string folder_name(const fsp::path& p) {
  fsp::path clean = p.lexically_normal();
  if (clean.filename().empty()) clean = clean.parent_path();
  const std::string name = clean.filename().string();
  return name.empty() || name == "." ? fs::absolute(p).lexically_normal().filename().string() : name;
}

// Fills what summary.json did not say from the run's own files.
Status complete_summary(const fsp::path& run_dir, RunSummary& summary, const PlanForRun& plan) {
  if (!summary.eval_accuracy) {
    auto accuracy = eval_accuracy(run_dir);
    if (!accuracy.ok()) return accuracy.status();
    summary.eval_accuracy = accuracy.value();
  }
  if (!summary.adapter_bytes) {
    summary.adapter_bytes = folder_bytes(run_dir / "adapter");
    if (!summary.adapter_bytes) summary.adapter_bytes = folder_bytes(run_dir / "model");
  }
  if (!summary.planned && plan) summary.planned = plan(run_dir);
  return Status::Ok();
}

Status add_run_folder(const fsp::path& dir, const PlanForRun& plan, ReportData& data) {
  auto curves = read_metrics_curves(dir / "metrics.jsonl");
  if (!curves.ok()) return curves.status();
  if (curves.value().train_loss.empty()) {
    return Status::InvalidArgument((dir / "metrics.jsonl").string() +
                                   ": no training step logged yet; report the run once it has logged one");
  }
  ResultRow row;
  row.variant = folder_name(dir);
  row.run_dir = dir.string();
  recipe_overrides(dir, row);
  RunSummary summary;
  const fsp::path summary_file = dir / "summary.json";
  if (fs::is_regular_file(summary_file)) {
    auto text = report_detail::read_text_file(summary_file);
    if (!text.ok()) return text.status();
    auto parsed = parse_run_summary(text.value(), summary_file.string());
    if (!parsed.ok()) return parsed.status();
    summary = std::move(parsed).value();
    const RunSummary& m = curves.value().measured;
    if (!summary.final_loss) summary.final_loss = m.final_loss;
    if (!summary.val_loss) summary.val_loss = m.val_loss;
  } else {
    summary = curves.value().measured;
    // Without summary.json (written when a run finishes) the saved model or adapter says that it did.
    summary.status = fs::is_directory(dir / "adapter") || fs::is_directory(dir / "model") ? "finished" : "running";
    data.notes.push_back(fmt::format("{}: no summary.json; tokens/s, peak memory and losses read from metrics.jsonl",
                                     dir.string()));
  }
  if (auto st = complete_summary(dir, summary, plan); !st.ok()) return st;
  row.status = summary.status.empty() ? "finished" : summary.status;
  row.summary = std::move(summary);
  data.rows.push_back(std::move(row));
  data.curves.push_back(std::move(curves).value());
  return Status::Ok();
}

Status add_grid_folder(const fsp::path& dir, const PlanForRun& plan, ReportData& data) {
  auto rows = read_results_jsonl(dir / "results.jsonl");
  if (!rows.ok()) return rows.status();
  if (rows.value().empty()) {
    return Status::InvalidArgument((dir / "results.jsonl").string() + ": no variant recorded yet");
  }
  for (ResultRow& row : rows.value()) {
    row.source = dir.string();
    std::optional<RunCurves> curves;
    const fsp::path run_dir = row.run_dir.empty() ? fsp::path() : dir / row.run_dir;
    if (!run_dir.empty() && fs::is_regular_file(run_dir / "metrics.jsonl")) {
      auto read = read_metrics_curves(run_dir / "metrics.jsonl");
      if (!read.ok()) return read.status();
      curves = std::move(read).value();
    }
    if (row.status == "finished") {
      if (!row.summary && curves) row.summary = curves->measured;
      if (row.summary && !run_dir.empty()) {
        if (auto st = complete_summary(run_dir, *row.summary, plan); !st.ok()) return st;
      }
    }
    data.rows.push_back(std::move(row));
    data.curves.push_back(std::move(curves));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<RunCurves> read_metrics_curves(const std::filesystem::path& metrics_jsonl) {
  auto text = report_detail::read_text_file(metrics_jsonl);
  if (!text.ok()) return text.status();
  const std::string& t = text.value();
  RunCurves curves;
  std::vector<double> tokens_per_s;
  int line_number = 0;
  for (size_t start = 0; start < t.size();) {
    size_t end = t.find('\n', start);
    const bool last_unterminated = end == std::string::npos;
    if (last_unterminated) end = t.size();
    const std::string_view line(t.data() + start, end - start);
    start = end + 1;
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) {
      if (last_unterminated) break;  // a record still being written
      return Status::InvalidArgument(fmt::format(
          "{}:{}: not a JSON record; the file is damaged (a run rewrites its torn records when resumed: `loft run "
          "<run>/recipe.toml --resume <run>`, or delete the line)",
          metrics_jsonl.string(), line_number));
    }
    const auto step = finite_number(record, "step");
    if (!step) continue;
    const auto s = static_cast<int64_t>(*step);
    if (record.contains("loss")) {
      const auto loss = finite_number(record, "loss");  // null on a non-finite step: no point
      if (loss) {
        curves.train_loss.push_back({s, *loss});
        curves.measured.final_loss = *loss;
      }
      if (auto v = finite_number(record, "tokens_per_s")) tokens_per_s.push_back(*v);
      if (auto v = finite_number(record, "peak_gpu_bytes")) {
        curves.measured.peak_gpu_bytes = std::max(curves.measured.peak_gpu_bytes.value_or(0), *v);
      }
      if (auto v = finite_number(record, "peak_host_bytes")) {
        curves.measured.peak_host_bytes = std::max(curves.measured.peak_host_bytes.value_or(0), *v);
      }
      curves.measured.steps = s;
    } else if (auto val = finite_number(record, "val_loss")) {
      curves.val_loss.push_back({s, *val});
      curves.measured.val_loss = *val;
    }
  }
  // The first step's time includes warm-up (allocator, kernels' first launch): left out when there are others.
  if (tokens_per_s.size() > 1) tokens_per_s.erase(tokens_per_s.begin());
  if (!tokens_per_s.empty()) curves.measured.tokens_per_s = median(tokens_per_s);
  return curves;
}

StatusOr<ReportData> load_report_data(const std::vector<std::filesystem::path>& paths, const PlanForRun& plan) {
  ReportData data;
  if (paths.empty()) return Status::InvalidArgument("name at least one grid or run folder");
  for (const fsp::path& p : paths) {
    data.inputs.push_back(p.string());
    if (!fs::exists(p)) {
      return Status::NotFound(p.string() + ": no such folder; name a grid folder (with results.jsonl, from `loft "
                                           "ablate`) or a run folder (with metrics.jsonl, from `loft run`)");
    }
    if (!fs::is_directory(p)) {
      return Status::InvalidArgument(p.string() + ": not a folder; name a grid folder (with results.jsonl) or a run "
                                                  "folder (with metrics.jsonl)");
    }
    Status st;
    if (fs::is_regular_file(p / "results.jsonl")) {
      st = add_grid_folder(p, plan, data);
    } else if (fs::is_regular_file(p / "metrics.jsonl")) {
      st = add_run_folder(p, plan, data);
    } else {
      st = Status::InvalidArgument(p.string() + ": holds neither results.jsonl (a grid folder, from `loft ablate`) "
                                                "nor metrics.jsonl (a run folder, from `loft run`); name one of those");
    }
    if (!st.ok()) return st;
  }
  return data;
}

}  // namespace loft
