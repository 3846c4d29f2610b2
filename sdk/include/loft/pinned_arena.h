// PinnedArena: one plain host allocation, page-locked with cudaHostRegister when a CUDA device is visible, that hands
// out tensors as views. For offload strategies that keep frozen storage on the host and copy it to the device
// asynchronously: torch's pinned allocator (pin_memory(), pinned_memory(true)) rounds every request up to a power of
// two (1.1 GiB costs 2.0 GiB); an arena sized to the exact sum of its tensors costs its size, rounded up to a page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

namespace loft {

class PinnedArena {
 public:
  // Every tensor starts at a multiple of this many bytes (what copy engines and vectorised kernels like).
  static constexpr int64_t kAlignment = 256;
  // The arena's allocation is a whole number of pages of this size.
  static constexpr int64_t kPageBytes = 4096;

  enum class Pinning : uint8_t {
    kIfCudaAvailable,  // cudaHostRegister when a CUDA device is visible, plain memory otherwise (a CPU run)
    kNever,            // plain memory
  };

  // Bytes one tensor of `nbytes` takes in an arena (rounded up to kAlignment), and the capacity an arena needs to
  // hold tensors of these sizes, allocated in any order: size an arena with it, then allocate exactly those.
  static int64_t slot_bytes(int64_t nbytes);
  static int64_t capacity_for(const std::vector<int64_t>& tensor_nbytes);

  // Allocates max(capacity_bytes, 1) rounded up to kPageBytes, page-aligned, and pins it as `pinning` says. Throws
  // c10::Error when the allocation or the registration fails (the message names the size). Blocks (cudaHostRegister
  // is synchronous and takes time proportional to the size).
  explicit PinnedArena(int64_t capacity_bytes, Pinning pinning = Pinning::kIfCudaAvailable);
  // Unregisters and frees the memory once every tensor handed out has been destroyed as well (views keep it alive).
  ~PinnedArena();
  PinnedArena(const PinnedArena&) = delete;
  PinnedArena& operator=(const PinnedArena&) = delete;

  // A contiguous CPU tensor of `sizes` and `dtype` in the arena's next free slot (uninitialised). Throws c10::Error
  // when it does not fit in capacity_bytes(), naming the request and what is left. Not thread-safe; never blocks.
  at::Tensor allocate(c10::IntArrayRef sizes, c10::ScalarType dtype);
  // allocate() of `source`'s sizes and dtype, then a copy of its values (from any device; blocks until copied).
  at::Tensor copy_in(const at::Tensor& source);

  // The host bytes every arena of the process holds now (allocations still alive through an arena or its views).
  // Thread-safe; for memory reports.
  static int64_t live_bytes();

  int64_t capacity_bytes() const;  // what the constructor was asked for
  int64_t reserved_bytes() const;  // what the arena holds: capacity rounded up to a page
  int64_t used_bytes() const;      // slots handed out, alignment padding included
  int64_t tensor_bytes() const;    // the bytes of the tensors handed out, without padding
  bool pinned() const;             // registered with CUDA (page-locked)

 private:
  struct Block;
  std::shared_ptr<Block> block_;
  int64_t capacity_bytes_ = 0;
  int64_t used_bytes_ = 0;
  int64_t tensor_bytes_ = 0;
};

}  // namespace loft
