// Results of runs and grids: summary.json and results.jsonl parsed, rows aggregated over seeds, results.csv/.md.
#include "loft/framework/results_table.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loft/framework/atomic_file.h"
#include "report/text_file.h"

namespace loft {

namespace {

using json = nlohmann::json;

std::optional<double> number_at(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// Categories in the order the file lists them (nlohmann sorts object keys, so the planner's order is restored).
std::vector<std::pair<std::string, double>> categories_at(const json& object, const char* key) {
  static const std::vector<std::string> kOrder = {"context",    "weights",    "adapters", "gradients", "optimizer",
                                                  "activations", "loss chunk", "workspace", "data",     "other"};
  std::vector<std::pair<std::string, double>> out;
  auto it = object.find(key);
  if (it == object.end() || !it->is_object()) return out;
  for (const auto& [name, value] : it->items()) {
    if (value.is_number()) out.emplace_back(name, value.get<double>());
  }
  auto rank = [&](const std::string& name) {
    auto pos = std::find(kOrder.begin(), kOrder.end(), name);
    return static_cast<size_t>(pos - kOrder.begin());
  };
  std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  return out;
}

StatusOr<RunSummary> summary_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": the summary is not a JSON object");
  RunSummary s;
  if (auto it = j.find("status"); it != j.end() && it->is_string()) s.status = it->get<std::string>();
  if (auto v = number_at(j, "steps")) s.steps = static_cast<int64_t>(*v);
  s.wall_s = number_at(j, "wall_s");
  s.tokens_per_s = number_at(j, "tokens_per_s");
  s.step_time_s = number_at(j, "step_time_s");
  s.peak_gpu_bytes = number_at(j, "peak_gpu_bytes");
  s.peak_host_bytes = number_at(j, "peak_host_bytes");
  s.final_loss = number_at(j, "final_loss");
  s.val_loss = number_at(j, "val_loss");
  s.eval_accuracy = number_at(j, "eval_accuracy");
  s.trainable_params = number_at(j, "trainable_params");
  s.adapter_bytes = number_at(j, "adapter_bytes");
  if (auto it = j.find("planned"); it != j.end() && it->is_object()) {
    PlannedMemory p;
    p.gpu_bytes = number_at(*it, "gpu_bytes").value_or(0);
    p.host_bytes = number_at(*it, "host_bytes").value_or(0);
    p.gpu_by_category = categories_at(*it, "gpu_by_category");
    p.host_by_category = categories_at(*it, "host_by_category");
    s.planned = std::move(p);
  }
  return s;
}

// A JSON override value as a person reads it: strings without quotes.
std::string display_value(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  return v.dump();
}

// Numbers in a human unit: value / divisor with `decimals`, then `suffix`.
struct Scale {
  double divisor = 1;
  int decimals = 0;
  std::string suffix;
};

Scale scale_for(Metric metric, double reference) {
  const double r = std::fabs(reference);
  switch (metric) {
    case Metric::kTokensPerS:
      if (r >= 1e4) return {1e3, 1, "k tok/s"};
      if (r >= 1e3) return {1e3, 2, "k tok/s"};
      return {1, r >= 10 ? 0 : 1, " tok/s"};
    case Metric::kStepTime:
      if (r >= 1) return {1, 2, " s"};
      return {1e-3, r >= 0.1 ? 0 : (r >= 0.01 ? 1 : 2), " ms"};
    case Metric::kPeakGpu:
    case Metric::kPlannedGpu:
    case Metric::kPeakHost:
    case Metric::kPlannedHost:
    case Metric::kAdapterBytes:
      if (r >= 1024.0 * 1024 * 1024) return {1024.0 * 1024 * 1024, 2, " GiB"};
      if (r >= 1024.0 * 1024) return {1024.0 * 1024, 1, " MiB"};
      if (r >= 1024) return {1024, 0, " KiB"};
      return {1, 0, " B"};
    case Metric::kFinalLoss:
    case Metric::kValLoss:
      return {1, 4, ""};
    case Metric::kEvalAccuracy:
      return {0.01, 1, "%"};
    case Metric::kTrainableParams:
      if (r >= 1e9) return {1e9, 2, "B"};
      if (r >= 1e6) return {1e6, 2, "M"};
      if (r >= 1e3) return {1e3, 1, "k"};
      return {1, 0, ""};
    case Metric::kWallTime:
      if (r >= 3600) return {3600, 2, " h"};
      if (r >= 120) return {60, 1, " min"};
      return {1, 1, " s"};
  }
  return {};
}

std::string scaled(double value, const Scale& s) { return fmt::format("{:.{}f}", value / s.divisor, s.decimals); }

// Shortest exact text of a number for the CSV; integral values without a fraction or exponent.
std::string csv_number(double v) {
  if (std::fabs(v) < 9e15 && v == std::floor(v)) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// A Markdown table cell: pipes escaped, line breaks flattened.
std::string md_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n' || c == '\r') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string key_of_overrides(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::string key;
  for (const auto& [k, v] : overrides) key += k + "=" + v + "\x1f";
  return key;
}

constexpr const char* kSeedKey = "train.seed";

}  // namespace

StatusOr<RunSummary> parse_run_summary(std::string_view json_text, const std::string& where) {
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(where + ": not valid JSON; the run that wrote it may not have finished (delete it to read the run from metrics.jsonl)");
  return summary_from_json(j, where);
}

StatusOr<std::vector<ResultRow>> read_results_jsonl(const std::filesystem::path& file) {
  auto text = report_detail::read_text_file(file);
  if (!text.ok()) return text.status();
  std::vector<ResultRow> rows;
  const std::string& t = text.value();
  int line_number = 0;
  for (size_t start = 0; start < t.size();) {
    size_t end = t.find('\n', start);
    if (end == std::string::npos) end = t.size();
    const std::string_view line(t.data() + start, end - start);
    start = end + 1;
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = fmt::format("{}:{}", file.string(), line_number);
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      return Status::InvalidArgument(where + ": not a JSON object (a torn or edited line); `loft ablate` rewrites "
                                     "this file whole, so re-run the grid to restore it");
    }
    ResultRow row;
    auto variant = j.find("variant");
    auto status = j.find("status");
    if (variant == j.end() || !variant->is_string() || status == j.end() || !status->is_string()) {
      return Status::InvalidArgument(where + ": a result needs \"variant\" and \"status\" strings");
    }
    row.variant = variant->get<std::string>();
    row.status = status->get<std::string>();
    if (auto v = number_at(j, "index")) row.index = static_cast<int64_t>(*v);
    if (auto it = j.find("seed"); it != j.end() && it->is_number_integer()) row.seed = it->get<int64_t>();
    if (auto it = j.find("reason"); it != j.end() && it->is_string()) row.reason = it->get<std::string>();
    if (auto it = j.find("run_dir"); it != j.end() && it->is_string()) row.run_dir = it->get<std::string>();
    if (auto it = j.find("reused"); it != j.end() && it->is_boolean()) row.reused = it->get<bool>();
    if (auto it = j.find("overrides"); it != j.end() && it->is_object()) {
      // nlohmann's object is ordered by key, which is also a stable column order.
      for (const auto& [k, v] : it->items()) row.overrides.emplace_back(k, display_value(v));
    }
    if (auto it = j.find("summary"); it != j.end() && it->is_object()) {
      auto summary = summary_from_json(*it, where);
      if (!summary.ok()) return summary.status();
      row.summary = std::move(summary).value();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

const std::vector<MetricInfo>& result_metrics() {
  static const std::vector<MetricInfo> kMetrics = {
      {Metric::kTokensPerS, "tokens/s", "tokens_per_s", true, true},
      {Metric::kStepTime, "step time", "step_time_s", false, false},
      {Metric::kPeakGpu, "peak GPU", "peak_gpu_bytes", false, false},
      {Metric::kPlannedGpu, "planned GPU", "planned_gpu_bytes", false, false},
      {Metric::kPeakHost, "peak host", "peak_host_bytes", false, false},
      {Metric::kPlannedHost, "planned host", "planned_host_bytes", false, false},
      {Metric::kFinalLoss, "final loss", "final_loss", false, true},
      {Metric::kValLoss, "val loss", "val_loss", false, true},
      {Metric::kEvalAccuracy, "eval accuracy", "eval_accuracy", true, true},
      {Metric::kTrainableParams, "trainable params", "trainable_params", false, false},
      {Metric::kAdapterBytes, "adapter size", "adapter_bytes", false, false},
      {Metric::kWallTime, "wall time", "wall_s", false, false},
  };
  return kMetrics;
}

const MetricInfo& metric_info(Metric metric) {
  for (const auto& m : result_metrics()) {
    if (m.metric == metric) return m;
  }
  return result_metrics().front();  // unreachable: every Metric is listed
}

std::optional<double> metric_value(const RunSummary& s, Metric metric) {
  switch (metric) {
    case Metric::kTokensPerS: return s.tokens_per_s;
    case Metric::kStepTime: return s.step_time_s;
    case Metric::kPeakGpu: return s.peak_gpu_bytes;
    case Metric::kPlannedGpu: return s.planned ? std::optional<double>(s.planned->gpu_bytes) : std::nullopt;
    case Metric::kPeakHost: return s.peak_host_bytes;
    case Metric::kPlannedHost: return s.planned ? std::optional<double>(s.planned->host_bytes) : std::nullopt;
    case Metric::kFinalLoss: return s.final_loss;
    case Metric::kValLoss: return s.val_loss;
    case Metric::kEvalAccuracy: return s.eval_accuracy;
    case Metric::kTrainableParams: return s.trainable_params;
    case Metric::kAdapterBytes: return s.adapter_bytes;
    case Metric::kWallTime: return s.wall_s;
  }
  return std::nullopt;
}

std::string format_metric(Metric metric, double value) {
  const Scale s = scale_for(metric, value);
  return scaled(value, s) + s.suffix;
}

std::optional<Spread> spread_of(const std::vector<double>& values) {
  if (values.empty()) return std::nullopt;
  Spread s;
  s.count = static_cast<int>(values.size());
  double sum = 0;
  s.min = s.max = values[0];
  for (double v : values) {
    sum += v;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  s.mean = sum / s.count;
  if (s.count >= 2) {
    double squares = 0;
    for (double v : values) squares += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(squares / (s.count - 1));
  }
  if (s.count >= 3) {
    s.low = s.mean - s.stddev;
    s.high = s.mean + s.stddev;
  } else {
    s.low = s.min;
    s.high = s.max;
  }
  return s;
}

bool spreads_overlap(const Spread& a, const Spread& b) { return a.low <= b.high && b.low <= a.high; }

std::string format_spread(Metric metric, const Spread& spread) {
  const Scale s = scale_for(metric, spread.mean);
  if (spread.count <= 1) return scaled(spread.mean, s) + s.suffix;
  if (spread.count == 2) {
    return fmt::format("{} ({}\u2013{}){}", scaled(spread.mean, s), scaled(spread.min, s), scaled(spread.max, s), s.suffix);
  }
  return fmt::format("{} \u00b1 {}{}", scaled(spread.mean, s), scaled(spread.stddev, s), s.suffix);
}

ResultsTable aggregate_results(const std::vector<ResultRow>& rows) {
  ResultsTable table;
  std::map<std::string, size_t> variant_of_key;
  for (size_t i = 0; i < rows.size(); ++i) {
    const ResultRow& row = rows[i];
    std::vector<std::pair<std::string, std::string>> overrides;
    for (const auto& kv : row.overrides) {
      if (kv.first != kSeedKey) overrides.push_back(kv);
    }
    const std::string key = row.source + "\x1e" + key_of_overrides(overrides);
    auto [it, inserted] = variant_of_key.emplace(key, table.variants.size());
    if (inserted) {
      VariantResult v;
      v.name = row.variant;
      v.overrides = std::move(overrides);
      table.variants.push_back(std::move(v));
    }
    VariantResult& v = table.variants[it->second];
    v.rows.push_back(i);
    if (row.status == "finished" || row.status == "running") v.measured_rows.push_back(i);
    v.reused = v.reused || row.reused;
    table.any_seeds = table.any_seeds || row.seed.has_value();
    table.any_unfinished = table.any_unfinished || row.status != "finished" || row.reused;
  }

  for (VariantResult& v : table.variants) {
    // Status: finished, one shared failure, or which seeds did what.
    size_t finished = 0;
    for (size_t r : v.rows) finished += rows[r].status == "finished";
    if (finished == v.rows.size()) {
      v.status = "finished";
    } else if (v.rows.size() == 1) {
      const ResultRow& r = rows[v.rows[0]];
      v.status = r.reason.empty() ? r.status : r.status + ": " + r.reason;
    } else {
      v.status = fmt::format("{}/{} finished", finished, v.rows.size());
      for (size_t r : v.rows) {
        const ResultRow& row = rows[r];
        if (row.status == "finished") continue;
        v.status += "; " + (row.seed ? fmt::format("seed {} ", *row.seed) : std::string()) + row.status;
        if (!row.reason.empty()) v.status += ": " + row.reason;
      }
    }
    for (const MetricInfo& m : result_metrics()) {
      std::vector<double> values;
      for (size_t r : v.measured_rows) {
        if (!rows[r].summary) continue;
        if (auto value = metric_value(*rows[r].summary, m.metric)) values.push_back(*value);
      }
      if (auto s = spread_of(values)) v.metrics[m.metric] = *s;
    }
  }

  // Keys that differ: a key some variant does not set counts as "-".
  std::vector<std::string> keys;
  for (const VariantResult& v : table.variants) {
    for (const auto& [k, _] : v.overrides) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
  }
  for (const std::string& k : keys) {
    for (const VariantResult& v : table.variants) {
      if (override_value(v, k) != override_value(table.variants.front(), k)) {
        table.differing_keys.push_back(k);
        break;
      }
    }
  }

  // A variant's seeds may carry names of their own (run folders, a seed suffix): then it is named by the keys that
  // set it apart, or by what its names share.
  // Once one variant of a source is named so, all of its source are (one naming scheme per grid or set of runs).
  std::set<std::string> renamed_sources;
  for (const VariantResult& v : table.variants) {
    for (size_t r : v.rows) {
      if (rows[r].variant != v.name) renamed_sources.insert(rows[v.rows[0]].source);
    }
  }
  for (VariantResult& v : table.variants) {
    if (!renamed_sources.count(rows[v.rows[0]].source)) continue;
    std::string name;
    for (const auto& k : table.differing_keys) name += (name.empty() ? "" : " ") + k + "=" + override_value(v, k);
    if (name.empty()) {
      name = v.name;
      for (size_t r : v.rows) {
        const std::string& other = rows[r].variant;
        size_t n = 0;
        while (n < name.size() && n < other.size() && name[n] == other[n]) ++n;
        name.resize(n);
      }
      while (!name.empty() && std::string_view("-_. ").find(name.back()) != std::string_view::npos) name.pop_back();
    }
    if (!name.empty()) v.name = name;
  }

  for (const MetricInfo& m : result_metrics()) {
    std::vector<VariantResult*> having;
    for (VariantResult& v : table.variants) {
      if (v.metrics.count(m.metric)) having.push_back(&v);
    }
    if (having.empty()) continue;
    // All zero: nothing measured there (the GPU columns of CPU runs).
    bool any_nonzero = false;
    for (VariantResult* v : having) any_nonzero = any_nonzero || v->metrics[m.metric].max != 0 || v->metrics[m.metric].min != 0;
    if (!any_nonzero) continue;
    table.metrics.push_back(m.metric);
    if (!m.primary || having.size() < 2) continue;
    VariantResult* best = having[0];
    for (VariantResult* v : having) {
      const double a = v->metrics[m.metric].mean, b = best->metrics[m.metric].mean;
      if (m.higher_is_better ? a > b : a < b) best = v;
    }
    best->best.insert(m.metric);
    for (VariantResult* v : having) {
      if (v != best && spreads_overlap(v->metrics[m.metric], best->metrics[m.metric])) v->overlaps_best.insert(m.metric);
    }
  }
  return table;
}

std::string override_value(const VariantResult& variant, const std::string& key) {
  for (const auto& [k, v] : variant.overrides) {
    if (k == key) return v;
  }
  return "-";
}

std::string variant_seeds(const VariantResult& variant, const std::vector<ResultRow>& rows) {
  std::string seeds;
  for (size_t r : variant.rows) {
    if (rows[r].seed) seeds += (seeds.empty() ? "" : ", ") + std::to_string(*rows[r].seed);
  }
  return seeds.empty() ? "-" : seeds;
}

std::string results_table_legend() {
  return "Each value is the mean over the variant's finished seeds: one seed shows its value, two show (min\u2013max), "
         "three or more show \u00b1 the sample standard deviation. Bold: the best variant for tokens/s, final loss, "
         "val loss and eval accuracy. \u2248: this variant's spread (the value, min\u2013max, or mean \u00b1 std) "
         "overlaps the best variant's, so the difference is within seed noise. -: not measured.";
}

std::string results_csv(const std::vector<ResultRow>& rows) {
  std::vector<std::string> keys, gpu_categories, host_categories;
  auto add = [](std::vector<std::string>& list, const std::string& name) {
    if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
  };
  for (const ResultRow& row : rows) {
    for (const auto& [k, _] : row.overrides) {
      if (k != kSeedKey) add(keys, k);
    }
    if (row.summary && row.summary->planned) {
      for (const auto& [c, _] : row.summary->planned->gpu_by_category) add(gpu_categories, c);
      for (const auto& [c, _] : row.summary->planned->host_by_category) add(host_categories, c);
    }
  }
  auto column_name = [](std::string prefix, std::string category) {
    std::replace(category.begin(), category.end(), ' ', '_');
    return prefix + category + "_bytes";
  };
  std::vector<std::string> header = {"variant", "index", "seed"};
  for (const auto& k : keys) header.push_back(k);
  for (const char* h : {"status", "reason", "run_dir", "reused", "steps"}) header.push_back(h);
  for (const MetricInfo& m : result_metrics()) header.push_back(m.csv_name);
  for (const auto& c : gpu_categories) header.push_back(column_name("planned_gpu_", c));
  for (const auto& c : host_categories) header.push_back(column_name("planned_host_", c));

  std::string out;
  auto emit = [&](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + csv_field(fields[i]);
    out += "\n";
  };
  emit(header);
  for (const ResultRow& row : rows) {
    std::vector<std::string> f = {row.variant, std::to_string(row.index), row.seed ? std::to_string(*row.seed) : ""};
    for (const auto& k : keys) {
      std::string value;
      for (const auto& [rk, rv] : row.overrides) {
        if (rk == k) value = rv;
      }
      f.push_back(value);
    }
    f.insert(f.end(), {row.status, row.reason, row.run_dir, row.reused ? "true" : "false"});
    const RunSummary* s = row.summary ? &*row.summary : nullptr;
    f.push_back(s && s->steps ? std::to_string(*s->steps) : "");
    for (const MetricInfo& m : result_metrics()) {
      const auto v = s ? metric_value(*s, m.metric) : std::nullopt;
      f.push_back(v ? csv_number(*v) : "");
    }
    auto category_fields = [&](const std::vector<std::string>& names, bool host) {
      for (const auto& c : names) {
        std::string value;
        if (s && s->planned) {
          for (const auto& [name, bytes] : host ? s->planned->host_by_category : s->planned->gpu_by_category) {
            if (name == c) value = csv_number(bytes);
          }
        }
        f.push_back(value);
      }
    };
    category_fields(gpu_categories, false);
    category_fields(host_categories, true);
    emit(f);
  }
  return out;
}

std::string results_markdown(const std::vector<ResultRow>& rows, const ResultsTable& table) {
  std::vector<std::string> header = {"variant"};
  std::vector<std::string> align = {"---"};
  for (const auto& k : table.differing_keys) {
    header.push_back(k);
    align.push_back("---");
  }
  if (table.any_seeds) {
    header.push_back("seeds");
    align.push_back("---");
  }
  if (table.any_unfinished) {
    header.push_back("status");
    align.push_back("---");
  }
  for (Metric m : table.metrics) {
    header.push_back(metric_info(m).column);
    align.push_back("---:");
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& cells) {
    out += "|";
    for (const auto& c : cells) out += " " + md_cell(c) + " |";
    out += "\n";
  };
  emit(header);
  emit(align);
  for (const VariantResult& v : table.variants) {
    std::vector<std::string> cells = {v.name};
    for (const auto& k : table.differing_keys) cells.push_back(override_value(v, k));
    if (table.any_seeds) cells.push_back(variant_seeds(v, rows));
    if (table.any_unfinished) cells.push_back(v.reused ? v.status + " (reused)" : v.status);
    for (Metric m : table.metrics) {
      auto it = v.metrics.find(m);
      if (it == v.metrics.end()) {
        cells.push_back("-");
        continue;
      }
      std::string cell = format_spread(m, it->second);
      if (v.best.count(m)) cell = "**" + cell + "**";
      if (v.overlaps_best.count(m)) cell += " \u2248";
      cells.push_back(cell);
    }
    emit(cells);
  }
  out += "\n" + results_table_legend() + "\n";
  return out;
}

Status write_results_tables(const std::filesystem::path& grid_dir) {
  auto rows = read_results_jsonl(grid_dir / "results.jsonl");
  if (!rows.ok()) return rows.status();
  const ResultsTable table = aggregate_results(rows.value());
  if (auto st = write_file_atomically(grid_dir / "results.csv", results_csv(rows.value())); !st.ok()) return st;
  return write_file_atomically(grid_dir / "results.md", results_markdown(rows.value(), table));
}

}  // namespace loft
