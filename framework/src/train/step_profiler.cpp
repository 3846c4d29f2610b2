// StepProfiler: Kineto through LibTorch's C++ profiler API (the same traces torch.profiler writes in Python).
#include "loft/framework/files.h"
#include "loft/framework/step_profiler.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "loft/framework/atomic_file.h"

namespace loft {
namespace {

namespace prof = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

std::set<ActivityType> activities(bool cuda) {
  std::set<ActivityType> a{ActivityType::CPU};
  if (cuda) a.insert(ActivityType::CUDA);
  return a;
}

}  // namespace

StepProfiler::StepProfiler(bool cuda) : cuda_(cuda) {}

void StepProfiler::start() {
  const ProfilerConfig config(ProfilerState::KINETO);
  prof::prepareProfiler(config, activities(cuda_));
  prof::enableProfiler(config, activities(cuda_));
  running_ = true;
}

StatusOr<std::string> StepProfiler::stop(const std::filesystem::path& trace_path, int rows) {
  if (!running_) return Status::FailedPrecondition("StepProfiler::stop without start");
  running_ = false;
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  if (auto st = fs::create_directories(trace_path.parent_path()); !st.ok()) return st;
  result->save(trace_path.string());

  // GPU kernels when there are any (their time is the step's), otherwise top-level CPU operators.
  struct Row {
    uint64_t ns = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Row> by_name;
  uint64_t total_ns = 0;
  const auto device = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  for (const auto& e : result->events()) {
    if (e.deviceType() != device) continue;
    if (!cuda_ && e.name().rfind("aten::", 0) != 0) continue;
    auto& row = by_name[e.name()];
    row.ns += e.durationNs();
    ++row.calls;
    total_ns += e.durationNs();
  }
  std::vector<std::pair<std::string, Row>> sorted(by_name.begin(), by_name.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  std::string table = fmt::format("{} time {:.2f} ms in {} {} ({} distinct); top {}:\n", cuda_ ? "GPU kernel" : "CPU operator",
                                  total_ns / 1e6, std::accumulate(sorted.begin(), sorted.end(), int64_t{0},
                                                                  [](int64_t s, const auto& r) { return s + r.second.calls; }),
                                  cuda_ ? "kernels" : "operators (nested ones counted too)", sorted.size(), rows);
  table += fmt::format("{:>9} {:>6} {:>7}  {}\n", "ms", "%", "calls", "name");
  for (size_t i = 0; i < sorted.size() && static_cast<int>(i) < rows; ++i) {
    const auto& [name, row] = sorted[i];
    table += fmt::format("{:9.3f} {:6.2f} {:7}  {}\n", row.ns / 1e6, 100.0 * static_cast<double>(row.ns) / std::max<double>(1.0, static_cast<double>(total_ns)),
                         row.calls, name.size() > 120 ? name.substr(0, 117) + "..." : name);
  }
  std::filesystem::path text_path = trace_path;
  text_path.replace_extension(".txt");
  if (auto st = write_file_atomically(text_path, table); !st.ok()) return st;
  return table;
}

}  // namespace loft
