// Named crash points for fault tests. LOFT_FAULT_POINT=<name>[@<step>][:stop] makes the process kill itself with
// SIGKILL (or stop itself with SIGSTOP, with ":stop") when it reaches that point (at that checkpoint step, with
// "@<step>"); it first prints "loft: fault point <name> reached" to stderr. Unset, a point costs one getenv. The points
// are listed in the README (section "Run folders and checkpoints").
#pragma once

#include <cstdint>

namespace loft {

// `step`: the checkpoint step the point belongs to, or -1 for points without one.
void fault_point(const char* name, int64_t step = -1);

}  // namespace loft
