// fault_point: LOFT_FAULT_POINT parsed at each call (points are passed a few times per run, never per step).
#include "fault_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace loft {

void fault_point(const char* name, int64_t step) {
  const char* env = std::getenv("LOFT_FAULT_POINT");
  if (env == nullptr || *env == '\0') return;
  std::string want = env;
  int sig = SIGKILL;
  if (const auto colon = want.rfind(':'); colon != std::string::npos) {
    if (want.substr(colon + 1) == "stop") sig = SIGSTOP;
    want.erase(colon);
  }
  if (const auto at = want.find('@'); at != std::string::npos) {
    if (step < 0 || want.substr(at + 1) != std::to_string(step)) return;
    want.erase(at);
  }
  if (want != name) return;
  std::fprintf(stderr, "loft: fault point %s reached (LOFT_FAULT_POINT=%s)\n", name, env);
  std::fflush(nullptr);
  ::kill(::getpid(), sig);
}

}  // namespace loft
