// PinnedArena: aligned_alloc + cudaHostRegister, tensors as from_blob views that share ownership of the block.
#include "loft/pinned_arena.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>

namespace loft {

namespace {

int64_t round_up(int64_t value, int64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

bool cuda_device_visible() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: a CPU run, not an error to keep
    return false;
  }
  return count > 0;
}

// Every live arena allocation in the process, for [budget] reports (PinnedArena::live_bytes()).
std::atomic<int64_t> g_live_bytes{0};

}  // namespace

// The memory itself; every view holds a reference, so it outlives the arena object when views do.
struct PinnedArena::Block {
  void* data = nullptr;
  int64_t bytes = 0;
  bool registered = false;

  Block(int64_t size, Pinning pinning) : bytes(size) {
    data = std::aligned_alloc(static_cast<size_t>(kPageBytes), static_cast<size_t>(size));
    TORCH_CHECK(data != nullptr, "loft::PinnedArena: could not allocate ", size, " bytes of host memory");
    if (pinning == Pinning::kIfCudaAvailable && cuda_device_visible()) {
      const cudaError_t status = cudaHostRegister(data, static_cast<size_t>(size), cudaHostRegisterDefault);
      if (status != cudaSuccess) {
        (void)cudaGetLastError();
        std::free(data);
        TORCH_CHECK(false, "loft::PinnedArena: cudaHostRegister of ", size, " bytes failed: ",
                    cudaGetErrorString(status), " (is the locked-memory limit, ulimit -l, too low?)");
      }
      registered = true;
    }
    g_live_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  ~Block() {
    g_live_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    if (registered) {
      if (cudaHostUnregister(data) != cudaSuccess) (void)cudaGetLastError();
    }
    std::free(data);
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
};

int64_t PinnedArena::live_bytes() { return g_live_bytes.load(std::memory_order_relaxed); }

int64_t PinnedArena::slot_bytes(int64_t nbytes) {
  TORCH_CHECK(nbytes >= 0, "loft::PinnedArena: negative size ", nbytes);
  return round_up(nbytes, kAlignment);
}

int64_t PinnedArena::capacity_for(const std::vector<int64_t>& tensor_nbytes) {
  int64_t total = 0;
  for (int64_t n : tensor_nbytes) total += slot_bytes(n);
  return total;
}

PinnedArena::PinnedArena(int64_t capacity_bytes, Pinning pinning) : capacity_bytes_(capacity_bytes) {
  TORCH_CHECK(capacity_bytes >= 0, "loft::PinnedArena: negative capacity ", capacity_bytes);
  block_ = std::make_shared<Block>(round_up(std::max<int64_t>(capacity_bytes, 1), kPageBytes), pinning);
}

PinnedArena::~PinnedArena() = default;

at::Tensor PinnedArena::allocate(c10::IntArrayRef sizes, c10::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t s : sizes) {
    TORCH_CHECK(s >= 0, "loft::PinnedArena: negative size in ", sizes);
    numel *= s;
  }
  const int64_t nbytes = numel * static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t slot = slot_bytes(nbytes);
  // Against the capacity asked for, not the page-rounded reservation: what a strategy sized is what it gets.
  TORCH_CHECK(used_bytes_ + slot <= capacity_bytes_, "loft::PinnedArena: a ", dtype, " tensor of ", sizes, " (", nbytes,
              " bytes, ", slot, " with alignment) does not fit: ", capacity_bytes_ - used_bytes_, " of ",
              capacity_bytes_, " bytes are left; size the arena with PinnedArena::capacity_for");
  void* data = static_cast<char*>(block_->data) + used_bytes_;
  used_bytes_ += slot;
  tensor_bytes_ += nbytes;
  // The deleter holds the block: the memory stays registered while any view lives.
  std::shared_ptr<Block> keep = block_;
  return at::from_blob(data, sizes, [keep](void*) mutable { keep.reset(); },
                       at::TensorOptions().dtype(dtype).device(c10::kCPU));
}

at::Tensor PinnedArena::copy_in(const at::Tensor& source) {
  at::Tensor slot = allocate(source.sizes(), source.scalar_type());
  slot.copy_(source);
  return slot;
}

int64_t PinnedArena::capacity_bytes() const { return capacity_bytes_; }
int64_t PinnedArena::reserved_bytes() const { return block_->bytes; }
int64_t PinnedArena::used_bytes() const { return used_bytes_; }
int64_t PinnedArena::tensor_bytes() const { return tensor_bytes_; }
bool PinnedArena::pinned() const { return block_->registered; }

}  // namespace loft
