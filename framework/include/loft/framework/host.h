// The host side of the plugin contract: the HostContext a run hands to plugin factories, and logging setup.
#pragma once

#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "loft/host_context.h"
#include "loft/options.h"
#include "loft/status.h"

namespace loft {

// Log lines from plugins and the framework go to spdlog's default logger, prefixed with their source.
class SpdlogSink : public LogSink {
 public:
  explicit SpdlogSink(std::string source) : source_(std::move(source)) {}
  void log(LogLevel level, std::string_view message) const override;

 private:
  std::string source_;
};

// The run's process state: device, dtype, seed. Immutable after construction.
class RunContext : public HostContext {
 public:
  RunContext(c10::Device device, c10::ScalarType dtype, uint64_t seed, std::string log_source = "loft");
  c10::Device device() const override { return device_; }
  c10::ScalarType compute_dtype() const override { return dtype_; }
  uint64_t seed() const override { return seed_; }
  const LogSink& log() const override { return sink_; }

 private:
  c10::Device device_;
  c10::ScalarType dtype_;
  uint64_t seed_;
  SpdlogSink sink_;
};

// Builds the run's context from the recipe's [model] and [train] sections. "auto" picks CUDA when a GPU is
// visible. Error: "cuda" asked for without a GPU.
StatusOr<std::unique_ptr<RunContext>> make_run_context(const Options& model, const Options& train);

// Configures spdlog's default logger (level from "trace".."error"; plain format when stderr is not a terminal).
void setup_logging(const std::string& level);

}  // namespace loft
