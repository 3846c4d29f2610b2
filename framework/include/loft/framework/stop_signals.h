// Stopping a run cleanly on SIGINT/SIGTERM: the first signal asks the training loop to stop after its current step
// (it then writes a checkpoint); a second one ends the process at once.
#pragma once

namespace loft {

// While alive, SIGINT and SIGTERM set a process-wide flag instead of killing the process, and the first one prints a
// line saying so on stderr; a second signal restores the default action and re-raises it (the process dies at once).
// A signal that was ignored when it is created (nohup, `cmd &` in a script) stays ignored.
// The destructor restores the previous handlers; the flag keeps its value. One at a time; create it on the main
// thread. The handler only stores to a lock-free atomic and calls write(2), signal(2) and raise(3).
class StopOnSignals {
 public:
  StopOnSignals();
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;
};

// The signal that asked to stop (SIGINT, SIGTERM), or 0. Thread-safe, cheap (one atomic load).
int stop_signal();

// The conventional exit code of a process stopped by `signal`: 128 + signal (130 for SIGINT, 143 for SIGTERM).
inline int exit_code_for_signal(int signal) { return 128 + signal; }

}  // namespace loft
