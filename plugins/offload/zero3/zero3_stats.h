// What offload/zero3 did, for tests and benchmarks: OffloadStrategy::extension(kZero3StatsId) returns a
// const Zero3Stats* owned by the strategy, valid while it lives, updated as blocks run (read it between steps, on the
// thread that drives the model). Counts only grow.
#pragma once

#include <cstdint>

namespace loft {

inline constexpr const char* kZero3StatsId = "loft.offload.zero3.stats.v1";

struct Zero3Stats {
  int64_t struct_size = sizeof(Zero3Stats);  // grows by appending
  // params
  int64_t arena_bytes = 0;            // the pinned arena's capacity: every streamed tensor, 256-byte aligned
  int64_t device_buffers = 0;         // reusable device buffers (prefetch_blocks + 1, at most the block count)
  int64_t device_buffer_bytes = 0;    // each one's size: the largest block's streamed storage, aligned
  int64_t block_copies = 0;           // host -> device copies of a whole block issued
  int64_t max_bound_blocks = 0;       // most blocks whose tensors pointed at device buffers at once
  // activations
  int64_t inputs_offloaded = 0;       // block inputs moved to host memory at kForwardPost
  int64_t inputs_restored = 0;        // block inputs given back at kRecomputePre
  int64_t inputs_prefetched = 0;      // of those, copies issued one block ahead (before their kRecomputePre)
};

}  // namespace loft
