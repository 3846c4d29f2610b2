// One variant of an ablation grid as a child process: its own process group (a terminal's Ctrl-C reaches only
// `loft ablate`, which forwards it once), its output appended to a log file, and SIGTERM when `loft ablate` dies.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "loft/status.h"

namespace loft {

// While alive, SIGINT and SIGTERM of this process are caught: the first is recorded (stop_requested()) and sent on
// to the running child, which then finishes its step, writes a checkpoint and exits 130 / 143; a second one kills
// the child with SIGKILL (its last checkpoint stays). The destructor restores the previous handlers. One at a time,
// on the main thread; the handler only uses atomics, kill(2) and write(2).
class ForwardStopSignals {
 public:
  ForwardStopSignals();
  ~ForwardStopSignals();
  ForwardStopSignals(const ForwardStopSignals&) = delete;
  ForwardStopSignals& operator=(const ForwardStopSignals&) = delete;
  // The first signal caught (SIGINT, SIGTERM), or 0.
  static int stop_requested();
};

struct ChildExit {
  bool exited = false;  // ended through exit(): `code` holds its status
  int code = 0;
  int signal = 0;       // ended by this signal (exited == false)
};

// Runs `argv` (argv[0] the executable's path) and waits for it. Its stdin is /dev/null; stdout and stderr are
// appended to `log` (created when missing). kInternal when it cannot be started (the log then says why).
StatusOr<ChildExit> run_child(const std::vector<std::string>& argv, const std::filesystem::path& log);

// The child's last error line in `log`, after `from_byte`: the last line logged at error level (its level and time
// stamp removed), else the last one that says "error", else the last non-empty line; at most 400 characters.
std::string last_error_line(const std::filesystem::path& log, uint64_t from_byte);

}  // namespace loft
