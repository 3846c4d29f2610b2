// One training step under the Kineto profiler: a Chrome trace for Perfetto and a table of where the time went.
#pragma once

#include <filesystem>
#include <string>

#include "loft/status.h"

namespace loft {

// Records CPU operators and, on CUDA, GPU kernels between start() and stop(). One at a time per process.
class StepProfiler {
 public:
  explicit StepProfiler(bool cuda);
  void start();
  // Stops, writes `trace_path` (Chrome trace JSON) and beside it the table (same name, .txt), and returns the table:
  // GPU kernels (or CPU operators without CUDA) grouped by name, by total time, the top `rows` of them.
  StatusOr<std::string> stop(const std::filesystem::path& trace_path, int rows = 25);

 private:
  bool cuda_;
  bool running_ = false;
};

}  // namespace loft
