// Logging from plugins, routed to the host's sink (plugins never touch spdlog's registry).
#pragma once

#include <string_view>

#include <fmt/format.h>

namespace loft {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

// Where log lines go. The host implements and owns it (HostContext::log()); thread-safe. Host-side only: no CUDA
// work, no stream.
class LogSink {
 public:
  virtual ~LogSink();
  // Writes one line; `message` is borrowed for the call. May block briefly on the log's file or terminal. Never
  // throws (a sink that cannot write drops the line).
  virtual void log(LogLevel level, std::string_view message) const = 0;

  // fmt-formatted shorthands for log(). The format string is checked at compile time; an argument whose
  // formatter throws (fmt::format_error) propagates to the caller.
  template <typename... Args>
  void info(fmt::format_string<Args...> f, Args&&... args) const {
    log(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) const {
    log(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> f, Args&&... args) const {
    log(LogLevel::kDebug, fmt::format(f, std::forward<Args>(args)...));
  }
};

}  // namespace loft
