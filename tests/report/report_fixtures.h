// Fixtures of the report tests: a temporary folder, and the files of issue 12's contract written directly
// (results.jsonl lines, summary.json, metrics.jsonl) as `loft ablate` and `loft run` write them.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "loft/framework/files.h"

namespace loft::testing_report {

struct TempFolder {
  TempFolder() {
    char pattern[] = "/tmp/loft_report_test_XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    path = pattern;
  }
  ~TempFolder() { (void)remove_tree(path); }
  std::filesystem::path path;
};

// A summary.json body of the contract.
inline std::string summary_json(double final_loss, double tokens_per_s, double eval_accuracy = -1) {
  return fmt::format(
      R"({{"format":"loft-run-summary","version":1,"status":"finished","steps":20,"wall_s":42.5,)"
      R"("tokens_per_s":{},"step_time_s":0.5,"peak_gpu_bytes":3221225472,"peak_host_bytes":2147483648,)"
      R"("planned":{{"gpu_bytes":3435973837,"host_bytes":2500000000,)"
      R"("gpu_by_category":{{"context":536870912,"weights":1932735283,"adapters":70000000,"activations":800000000,"workspace":33554432}},)"
      R"("host_by_category":{{"data":100000000,"other":1342177280}}}},)"
      R"("final_loss":{},"val_loss":{},"eval_accuracy":{},"trainable_params":18464768,"adapter_bytes":73859072}})",
      tokens_per_s, final_loss, final_loss + 0.1, eval_accuracy < 0 ? std::string("null") : fmt::format("{}", eval_accuracy));
}

// One results.jsonl line; a finished one carries a summary, others a reason.
inline std::string result_line(const std::string& variant, int index, int seed, const std::string& overrides_json,
                               const std::string& status, double final_loss, double tokens_per_s,
                               double eval_accuracy = -1) {
  const bool done = status == "finished";
  return fmt::format(R"({{"variant":"{}","index":{},"seed":{},"overrides":{},"status":"{}","reason":"{}",)"
                     R"("run_dir":"runs/{}-{}","reused":false,"summary":{}}})",
                     variant, index, seed, overrides_json, status,
                     done ? "" : "predicted 20.1 GiB > budget.gpu_memory 15 GiB", variant, seed,
                     done ? summary_json(final_loss, tokens_per_s, eval_accuracy) : "null");
}

// metrics.jsonl of `steps` training records (loss falling from `start`), a validation record every 5 steps.
inline std::string metrics_jsonl(int steps, double start, double tokens_per_s) {
  std::string out;
  for (int s = 1; s <= steps; ++s) {
    const double loss = start / (1.0 + 0.2 * s);
    out += fmt::format(R"({{"step":{},"loss":{},"lr":0.001,"grad_norm":1.5,"tokens_per_s":{},"label_tokens":300,)"
                       R"("peak_gpu_bytes":0,"peak_host_bytes":{},"skipped":false,"nonfinite":false}})",
                       s, loss, tokens_per_s + s, 1e9 + s) + "\n";
    if (s % 5 == 0) out += fmt::format(R"({{"step":{},"val_loss":{},"val_label_tokens":900}})", s, loss * 1.1) + "\n";
  }
  return out;
}

inline void write_text(const std::filesystem::path& file, const std::string& text) {
  (void)fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

}  // namespace loft::testing_report
