// SIGINT/SIGTERM -> a flag the training loop polls after each step (sigaction; async-signal-safe handler).
#include "loft/framework/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <utility>

namespace loft {

namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");

struct sigaction g_previous_int, g_previous_term;

void write_stderr(const char* text) {
  // Best effort: nothing to do in a signal handler when stderr is gone.
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

extern "C" void on_stop_signal(int signal) {
  int expected = 0;
  if (g_stop_signal.compare_exchange_strong(expected, signal)) {
    write_stderr(signal == SIGINT
                     ? "\nloft: SIGINT: finishing the current step, then writing a checkpoint (send it again to stop at once)\n"
                     : "\nloft: SIGTERM: finishing the current step, then writing a checkpoint (send it again to stop at once)\n");
    return;
  }
  write_stderr("\nloft: second signal: stopping at once, without a checkpoint of this step\n");
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

}  // namespace

StopOnSignals::StopOnSignals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // file and socket calls in flight carry on; the loop polls the flag
  for (auto [signal, previous] : {std::pair{SIGINT, &g_previous_int}, std::pair{SIGTERM, &g_previous_term}}) {
    sigaction(signal, nullptr, previous);
    // A signal the parent chose to ignore (nohup, a background job of a script) stays ignored, as shells expect.
    if (previous->sa_handler != SIG_IGN) sigaction(signal, &action, nullptr);
  }
}

StopOnSignals::~StopOnSignals() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int stop_signal() { return g_stop_signal.load(std::memory_order_relaxed); }

}  // namespace loft
