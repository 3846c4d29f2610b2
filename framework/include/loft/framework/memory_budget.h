// [budget] enforced: a cap on the run's whole GPU use (the CUDA caching allocator is capped so that it plus the CUDA
// context measured at start stays under gpu_memory) and on its host memory (resident set, pinned arenas and mapped
// checkpoint pages included), with one message naming the largest consumers by category when a cap is hit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "loft/options.h"
#include "loft/status.h"

namespace loft {

// The [budget] section; 0 means no cap.
struct MemoryBudget {
  uint64_t gpu_bytes = 0;
  uint64_t host_bytes = 0;
  // kInvalidArgument naming the key for a size that does not parse (validation refuses those earlier too).
  static StatusOr<MemoryBudget> from_options(const Options& budget);
};

// How much one category of memory holds ("weights", "adapters", "optimizer", ...).
struct MemoryUse {
  std::string category;
  uint64_t bytes = 0;
};

// The process's host memory now, from /proc/self/status (zeros where the kernel does not say).
struct HostMemoryNow {
  uint64_t resident_bytes = 0;  // VmRSS
  uint64_t anon_bytes = 0;      // RssAnon: heap, tensors, pinned arenas
  uint64_t file_bytes = 0;      // RssFile: mapped files in use (shared libraries, safetensors pages of the checkpoint)
  uint64_t shmem_bytes = 0;     // RssShmem
};
HostMemoryNow host_memory_now();

// "1.50 GiB" / "512.0 MiB" / "12 KiB": sizes in messages.
std::string format_bytes(uint64_t bytes);

// One line: "<what> over budget.<key> = <cap>: <in use> in use; largest: a 1.2 GiB, b 300 MiB, ... <fix>". Categories
// are sorted by size, the largest first; zero-sized ones are left out.
std::string over_budget_message(const std::string& what, const std::string& key, uint64_t cap, uint64_t in_use,
                                std::vector<MemoryUse> uses, const std::string& fix);

// What the trainer and the run know about where memory went; each returns the bytes of tensors on `device` (the
// run device for GPU reports, the CPU for host reports). Any may be empty (counted as zero).
struct MemoryLedgerSources {
  std::function<uint64_t(c10::Device)> adapters;    // trainable tensors
  std::function<uint64_t(c10::Device)> gradients;   // their .grad
  std::function<uint64_t(c10::Device)> optimizer;   // optimizer state
};

// Enforces a MemoryBudget for one run. Create it before the model is built; arm() caps the GPU; check_host() is
// called between steps (and after loading); describe_gpu_oom() turns an allocator OOM into the one-line report.
// Not thread-safe; one per run.
class MemoryGuard {
 public:
  MemoryGuard(MemoryBudget budget, c10::Device device);

  // On a CUDA device with budget.gpu_bytes set: initialises the context, measures what the process already uses on
  // the device (cudaMemGetInfo: total - free, the CUDA context and libraries; on a shared GPU other processes count
  // too) and caps the caching allocator at gpu_bytes minus that. kInvalidArgument when the context alone does not
  // fit. On the CPU with gpu_bytes set: nothing to cap; `explicit_cpu` (model.device = "cpu") makes that an error
  // (a key that cannot act), otherwise (device = "auto" fell back to the CPU) a warning. Blocks (device queries).
  Status arm(bool explicit_cpu);

  // Called once the model is built: the allocator's bytes then, less the adapters, are what "weights" reports.
  void note_model_built(const MemoryLedgerSources& sources);
  // Points the ledger at the optimizer and gradients once the trainer owns them.
  void set_sources(const MemoryLedgerSources& sources) { sources_ = sources; }

  // kFailedPrecondition with over_budget_message when the host memory in use exceeds budget.host_bytes.
  // `where` says when ("after loading the model", "after step 12"). Cheap (reads /proc/self/status).
  Status check_host(const std::string& where) const;
  // kFailedPrecondition when the process's whole GPU use (cudaMemGetInfo) exceeds budget.gpu_bytes: the allocator cap
  // bounds tensors at every allocation, this catches what grows outside it (lazily loaded kernels, libraries).
  Status check_gpu(const std::string& where) const;

  // The one-line report for a c10::OutOfMemoryError (its text is mined only for the failing request's size).
  std::string describe_gpu_oom(const std::string& allocator_message) const;

  uint64_t context_bytes() const { return context_bytes_; }
  uint64_t allocator_cap_bytes() const { return allocator_cap_bytes_; }
  const MemoryBudget& budget() const { return budget_; }

 private:
  std::vector<MemoryUse> gpu_uses() const;
  std::vector<MemoryUse> host_uses(const HostMemoryNow& now) const;

  MemoryBudget budget_;
  c10::Device device_;
  uint64_t context_bytes_ = 0;
  uint64_t allocator_cap_bytes_ = 0;
  uint64_t headroom_bytes_ = 0;
  uint64_t weights_gpu_bytes_ = 0;
  MemoryLedgerSources sources_;
};

}  // namespace loft
