// HostContext implementation and logging setup.
#include "loft/framework/host.h"

#include <unistd.h>

#include <torch/cuda.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace loft {

void SpdlogSink::log(LogLevel level, std::string_view message) const {
  spdlog::level::level_enum l = spdlog::level::info;
  switch (level) {
    case LogLevel::kTrace: l = spdlog::level::trace; break;
    case LogLevel::kDebug: l = spdlog::level::debug; break;
    case LogLevel::kInfo: l = spdlog::level::info; break;
    case LogLevel::kWarn: l = spdlog::level::warn; break;
    case LogLevel::kError: l = spdlog::level::err; break;
  }
  spdlog::log(l, "[{}] {}", source_, message);
}

RunContext::RunContext(c10::Device device, c10::ScalarType dtype, uint64_t seed, std::string log_source)
    : device_(device), dtype_(dtype), seed_(seed), sink_(std::move(log_source)) {}

StatusOr<std::unique_ptr<RunContext>> make_run_context(const Options& model, const Options& train) {
  const std::string& want = model.string("device");
  const bool has_cuda = torch::cuda::is_available();
  if (want == "cuda" && !has_cuda) {
    return Status::FailedPrecondition(
        "model.device = \"cuda\" but no CUDA GPU is visible; set model.device = \"cpu\" or \"auto\"");
  }
  c10::Device device = (want == "cpu" || !has_cuda) ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, 0);
  const std::string& dtype_name = model.string("dtype");
  c10::ScalarType dtype = dtype_name == "bf16" ? c10::kBFloat16 : dtype_name == "fp16" ? c10::kHalf : c10::kFloat;
  return std::make_unique<RunContext>(device, dtype, static_cast<uint64_t>(train.integer("seed")));
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("loft");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern(isatty(STDERR_FILENO) ? "%^%L%$ %H:%M:%S %v" : "%L %Y-%m-%dT%H:%M:%S %v");
}

}  // namespace loft
