// Logging from plugins, routed to the host's sink (plugins never touch spdlog's registry).
#pragma once

#include <string_view>

#include <fmt/format.h>

namespace loft {

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

// Where log lines go. The host implements it; thread-safe.
class LogSink {
 public:
  virtual ~LogSink();
  virtual void log(LogLevel level, std::string_view message) const = 0;

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
