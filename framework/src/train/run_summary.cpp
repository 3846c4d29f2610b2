// summary.json of a finished run: the process's own timings and plan, plus what metrics.jsonl and eval.json hold.
#include "loft/framework/run_summary.h"

#include <algorithm>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "loft/framework/atomic_file.h"
#include "loft/framework/files.h"

namespace loft {

namespace {

// Bytes of every regular file below `dir` (symbolic links not followed into folders).
uint64_t tree_bytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& entry : fs::list_directory(dir)) {
    if (auto size = fs::file_size(entry)) {
      total += *size;
    } else if (fs::is_directory(entry)) {
      total += tree_bytes(entry);
    }
  }
  return total;
}

// Bytes by category; a category in both lists (a CPU run's device and host tables) is summed.
nlohmann::ordered_json by_category(const std::vector<MemoryTerm>& terms, const std::vector<MemoryTerm>& more = {}) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto* list : {&terms, &more}) {
    for (const auto& t : *list) out[t.category] = out.value(t.category, uint64_t{0}) + t.bytes;
  }
  return out;
}

nlohmann::ordered_json or_null(const std::optional<double>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

}  // namespace

std::optional<double> median_after_first(const std::vector<double>& values) {
  if (values.empty()) return std::nullopt;
  std::vector<double> v(values.size() > 1 ? values.begin() + 1 : values.begin(), values.end());
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Status write_run_summary(const fs::path& run_dir, const RunSummaryFacts& facts) {
  const fs::path metrics_path = run_dir / "metrics.jsonl";
  std::ifstream metrics(metrics_path);
  if (!metrics.is_open()) return Status::IoError(fmt::format("{}: cannot read it for {}", metrics_path.string(), kRunSummaryFileName));
  std::optional<double> final_loss, val_loss;
  double peak_gpu = 0, peak_host = 0;
  std::vector<double> logged_tokens_per_s;
  std::string line;
  for (int64_t number = 1; std::getline(metrics, line); ++number) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) {
      return Status::IoError(fmt::format("{}:{}: not a JSON object", metrics_path.string(), number));
    }
    auto number_at = [&](const char* key) -> std::optional<double> {
      auto it = record.find(key);
      if (it == record.end() || !it->is_number()) return std::nullopt;
      return it->get<double>();
    };
    if (auto v = number_at("val_loss")) val_loss = v;
    if (auto loss = number_at("loss")) {  // a training record (validation records carry val_loss instead)
      final_loss = loss;
      peak_gpu = std::max(peak_gpu, number_at("peak_gpu_bytes").value_or(0));
      peak_host = std::max(peak_host, number_at("peak_host_bytes").value_or(0));
      if (auto t = number_at("tokens_per_s")) logged_tokens_per_s.push_back(*t);
    }
  }
  std::optional<double> accuracy;
  if (std::ifstream eval(run_dir / "eval.json"); eval.is_open()) {
    const auto j = nlohmann::json::parse(eval, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("accuracy") && j["accuracy"].is_number()) accuracy = j["accuracy"].get<double>();
  }
  nlohmann::ordered_json planned = nullptr;
  if (facts.planned) {
    const MemoryPrediction& p = *facts.planned;
    // On a CPU run the run device is the host: nothing is planned on a GPU, and the host holds both tables.
    const bool cuda = p.device == "cuda";
    planned = {{"gpu_bytes", cuda ? p.gpu_total_bytes : 0},
               {"host_bytes", p.host_total_bytes},
               {"gpu_by_category", cuda ? by_category(p.gpu) : nlohmann::ordered_json::object()},
               {"host_by_category", cuda ? by_category(p.host) : by_category(p.gpu, p.host)}};
  }
  const auto tokens_per_s =
      facts.tokens_per_s.empty() ? median_after_first(logged_tokens_per_s) : median_after_first(facts.tokens_per_s);
  nlohmann::ordered_json summary = {
      {"format", "loft-run-summary"},
      {"version", 1},
      {"status", "finished"},
      {"steps", facts.steps},
      {"wall_s", facts.wall_s},
      {"tokens_per_s", or_null(tokens_per_s)},
      {"step_time_s", or_null(median_after_first(facts.step_time_s))},
      {"peak_gpu_bytes", static_cast<uint64_t>(peak_gpu)},
      {"peak_host_bytes", static_cast<uint64_t>(peak_host)},
      {"planned", planned},
      {"final_loss", or_null(final_loss)},
      {"val_loss", or_null(val_loss)},
      {"eval_accuracy", or_null(accuracy)},
      {"trainable_params", facts.trainable_params},
      {"adapter_bytes", facts.saved.empty() ? 0 : tree_bytes(facts.saved)},
  };
  return write_file_atomically(run_dir / kRunSummaryFileName, summary.dump(2) + "\n");
}

Status remove_run_summary(const fs::path& run_dir) { return remove_tree(run_dir / kRunSummaryFileName); }

}  // namespace loft
