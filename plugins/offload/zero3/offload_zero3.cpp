// offload/zero3: ZeRO-3-style offload through the SDK's offload contract, each part on or off.
//  - params: every decoder block's frozen storage (QuantizedLinear::visit_storage: dense, int8, nf4; biases, norms)
//    lives in its own exactly-sized PinnedArena; place() fills them block by block, letting go of each block as built
//    once it is copied, so the model is never whole in host memory twice (a single arena for all blocks was: pinned,
//    it is resident from its allocation on). prefetch_blocks + 1 reusable device buffers, each the size of the largest
//    block, take turns (block b uses buffer b % buffers). A block is copied host -> device on a side stream when the
//    block `prefetch_blocks` before it in execution order reaches its Pre stage (forward: b - k, backward: b + k); the
//    compute stream waits on the copy's event before the block reads it, and a buffer is refilled only after an
//    event recorded on the compute stream at its previous block's Post stage. The model's tensors are pointed at the
//    buffer (refill_storage) at the Pre stage and released at the Post stage.
//  - activations (with recompute): a block's saved input goes to pinned host memory at kForwardPost (side stream,
//    event) and comes back at kRecomputePre, the next block's (index - 1) copy issued then, so two are on the device.
//  - optimizer: the state and step on the host, by optimizer/adamw_cpu; validation refuses another optimizer (the
//    manifest's `requires`), since a plugin sees only its own section.
//  - recompute: blocks run kRecompute; without it, streamed blocks run kBoundary (weights streamed again in
//    backward), resident ones kPlain.
// No host synchronisation inside a step: copies are asynchronous and ordered by events only. On a CPU run the same
// logic runs with plain copies. The embedding, final norm and lm_head stay on the run device (the contract gives
// them no callbacks yet).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <fmt/format.h>

#include "loft/memory_cost.h"
#include "loft/offload.h"
#include "loft/pinned_arena.h"
#include "loft/plugin.h"
#include "loft/resident_offload.h"
#include "zero3_stats.h"

namespace {

struct Parts {
  bool params = true;
  bool activations = true;
  bool optimizer = false;
  bool recompute = true;
  int64_t prefetch_blocks = 1;
};

Parts parse_parts(const loft::Options& o) {
  Parts p;
  p.params = o.boolean("params");
  p.activations = o.boolean("activations");
  p.optimizer = o.boolean("optimizer");
  p.recompute = o.boolean("recompute");
  p.prefetch_blocks = o.integer("prefetch_blocks");
  if (p.activations && !p.recompute) {
    throw std::invalid_argument(
        "offload/zero3: option 'activations' = true needs 'recompute' = true (only a recomputed block keeps nothing but "
        "its input, which is what goes to the host); set offload.recompute = true or offload.activations = false");
  }
  return p;
}

class Zero3Offload final : public loft::OffloadStrategy, public loft::OffloadMemoryPlan {
 public:
  // Touches no device: `loft plan` creates the strategy to ask for its layout, maybe on a machine without a GPU.
  Zero3Offload(c10::Device device, Parts parts, const loft::LogSink& log) : device_(device), parts_(parts), log_(&log) {}

  // Outside any step: the side streams may still be reading the arena or writing buffers that die with us.
  ~Zero3Offload() override {
    if (h2d_) (void)cudaStreamSynchronize(h2d_->stream());
    if (d2h_) (void)cudaStreamSynchronize(d2h_->stream());
  }

  // The side streams, made when the strategy first takes hold of the model (place()).
  void make_streams() {
    if (!device_.is_cuda() || h2d_) return;
    if (!device_.has_index()) device_ = c10::Device(c10::kCUDA, c10::cuda::current_device());
    h2d_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
    d2h_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
  }

  // loft plan: blocks homed on the pinned host (params) and streamed through prefetch + 1 buffers, every block
  // recomputed (recompute), saved inputs on the host with two on the device at once (activations), the optimizer on
  // the host (optimizer).
  loft::OffloadMemoryLayout layout(const std::vector<loft::ModelUnit>& units) const override {
    loft::OffloadMemoryLayout l;
    int64_t blocks = 0;
    for (const auto& u : units) {
      const bool block = u.kind == loft::UnitKind::kBlock;
      l.homes.push_back(parts_.params && block ? loft::Home::kPinnedHost : loft::Home::kRunDevice);
      if (!block) continue;
      ++blocks;
      l.execution.push_back(parts_.recompute ? loft::BlockExecution::kRecompute : loft::BlockExecution::kPlain);
    }
    l.device_weight_buffers = parts_.params ? std::min<int64_t>(parts_.prefetch_blocks + 1, blocks) : 0;
    l.saved_inputs_on_host = parts_.activations;
    l.device_saved_inputs = parts_.activations ? std::min<int64_t>(2, blocks) : 0;
    l.optimizer_on_host = parts_.optimizer;
    return l;
  }

  std::vector<loft::Home> plan(const std::vector<loft::ModelUnit>& units) override {
    std::vector<loft::Home> homes;
    for (const auto& u : units) {
      homes.push_back(parts_.params && u.kind == loft::UnitKind::kBlock ? loft::Home::kPinnedHost
                                                                        : loft::Home::kRunDevice);
    }
    return homes;
  }

  void place(const std::vector<loft::BlockResidency>& units) override {
    // Said here, not at creation: `loft plan --fit` creates one strategy per candidate layout and places none.
    log_->info("offload/zero3: params {}, activations {}, optimizer {}, recompute {}, prefetch {} block(s)",
               parts_.params ? "streamed from pinned host" : "resident", parts_.activations ? "to pinned host" : "kept",
               parts_.optimizer ? "on host (optimizer/adamw_cpu)" : "not offloaded", parts_.recompute ? "on" : "off",
               parts_.prefetch_blocks);
    make_streams();
    std::vector<loft::BlockResidency> resident;
    int64_t streamed = 0;
    for (const auto& u : units) {
      if (u.kind == loft::UnitKind::kBlock && u.home == loft::Home::kPinnedHost) {
        take_block(u);
        ++streamed;
      } else {
        resident.push_back(u);
      }
    }
    loft::place_all_on(resident, device_);
    int64_t last_index = -1;
    for (const auto& u : units) {
      if (u.kind == loft::UnitKind::kBlock) last_index = std::max(last_index, u.index);
    }
    if (static_cast<int64_t>(blocks_.size()) < last_index + 1) blocks_.resize(static_cast<size_t>(last_index + 1));
    inputs_.resize(static_cast<size_t>(last_index + 1));
    if (streamed == 0) return;

    int64_t buffer_bytes = 0;
    for (const Block& block : blocks_) buffer_bytes = std::max(buffer_bytes, block.bytes);
    const int64_t buffers = std::min<int64_t>(parts_.prefetch_blocks + 1, streamed);
    for (int64_t i = 0; i < buffers; ++i) {
      Buffer b;
      b.bytes = at::empty({std::max<int64_t>(buffer_bytes, 1)}, at::TensorOptions().dtype(at::kByte).device(device_));
      buffers_.push_back(std::move(b));
    }
    // Each block's tensors as views of each buffer, made once so that a step allocates nothing for them.
    for (Block& block : blocks_) {
      if (!block.streamed) continue;
      for (const Buffer& b : buffers_) {
        std::vector<at::Tensor> views;
        for (const Entry& e : block.entries) {
          views.push_back(b.bytes.narrow(0, e.offset, static_cast<int64_t>(e.master.nbytes()))
                              .view(e.master.scalar_type())
                              .view(e.master.sizes()));
        }
        block.views.push_back(std::move(views));
      }
    }
    stats_.arena_bytes = 0;
    for (const Block& block : blocks_) stats_.arena_bytes += block.arena ? block.arena->capacity_bytes() : 0;
    stats_.device_buffers = buffers;
    stats_.device_buffer_bytes = buffer_bytes;
  }

  loft::BlockExecution execution(int64_t index) override {
    if (parts_.recompute) return loft::BlockExecution::kRecompute;
    return streamed(index) ? loft::BlockExecution::kBoundary : loft::BlockExecution::kPlain;
  }

  void on_block(const loft::BlockEvent& event) override {
    const int64_t b = event.index;
    switch (event.stage) {
      case loft::BlockStage::kForwardPre:
        acquire(b, +1);
        break;
      case loft::BlockStage::kForwardPost:
        finish(b);
        if (parts_.activations && event.saved_input != nullptr) offload_input(b, *event.saved_input);
        break;
      case loft::BlockStage::kRecomputePre:
        if (parts_.activations && event.saved_input != nullptr) restore_input(b, *event.saved_input);
        acquire(b, -1);
        break;
      case loft::BlockStage::kRecomputePost:
        break;
      case loft::BlockStage::kBackwardPre:
        acquire(b, -1);  // after kRecomputePre the block is bound already: only the prefetch is (re)considered
        break;
      case loft::BlockStage::kBackwardPost:
        finish(b);
        break;
    }
  }

  const void* extension(std::string_view id) const override {
    if (id == loft::kOffloadMemoryPlanId) return static_cast<const loft::OffloadMemoryPlan*>(this);
    return id == loft::kZero3StatsId ? &stats_ : nullptr;
  }

 private:
  struct Entry {
    at::Tensor tensor;   // the model's tensor object (its bytes are refilled and released)
    at::Tensor master;   // its home: a view into the pinned arena
    int64_t offset = 0;  // where it sits in a device buffer
  };
  struct Block {
    bool streamed = false;
    std::unique_ptr<loft::PinnedArena> arena;  // its frozen storage, exactly sized (streamed blocks)
    int64_t bytes = 0;                          // what it takes in a device buffer
    bool bound = false;                        // the model's tensors point at buffers_[index % buffers]
    std::vector<Entry> entries;
    std::vector<std::vector<at::Tensor>> views;  // [buffer][entry]
  };
  struct Buffer {
    at::Tensor bytes;
    int64_t holds = -1;          // the block whose bytes it holds (or is receiving)
    at::cuda::CUDAEvent ready;   // recorded on h2d_ after its copy
    at::cuda::CUDAEvent free;    // recorded on the compute stream after its block's last use
  };
  struct SavedInput {
    at::Tensor host;    // the pinned copy made at kForwardPost
    at::Tensor device;  // on its way back (or back), before kRecomputePre hands it over
    at::cuda::CUDAEvent produced, offloaded, ready;
  };

  // Block u's frozen storage (quantized linears' tensors, biases, norms) into a pinned arena of exactly its size. The
  // model's tensors as built are let go of at once: they become empty tensors of the same sizes on the run device,
  // refilled from a device buffer while the block runs (allocating their bytes only to release them would cost the
  // run device the largest tensor).
  void take_block(const loft::BlockResidency& u) {
    TORCH_CHECK(u.index >= 0, "offload/zero3: block index ", u.index, " is negative");
    if (static_cast<int64_t>(blocks_.size()) <= u.index) blocks_.resize(static_cast<size_t>(u.index + 1));
    Block& block = blocks_[static_cast<size_t>(u.index)];
    TORCH_CHECK(!block.streamed, "offload/zero3: block ", u.index, " was offered twice");
    std::vector<at::Tensor*> mine;
    for (loft::QuantizedLinear* linear : u.frozen_linears) {
      const bool visited = linear->visit_storage([&](std::string_view, at::Tensor& t) { mine.push_back(&t); });
      TORCH_CHECK(visited, "offload/zero3: a frozen linear of block ", u.index,
                  " does not expose its storage (QuantizedLinear::visit_storage), so it cannot be streamed; set "
                  "offload.params = false or use a quantizer whose linears do");
    }
    for (at::Tensor* t : u.frozen_tensors) {
      if (t->defined()) mine.push_back(t);
    }
    std::vector<int64_t> sizes;
    int64_t offset = 0;
    for (at::Tensor* t : mine) {
      TORCH_CHECK(t->is_contiguous(), "offload/zero3: a frozen tensor of block ", u.index, " is not contiguous");
      Entry e;
      e.offset = offset;
      offset += loft::PinnedArena::slot_bytes(static_cast<int64_t>(t->nbytes()));
      block.entries.push_back(std::move(e));
      sizes.push_back(static_cast<int64_t>(t->nbytes()));
    }
    block.bytes = offset;
    block.arena = std::make_unique<loft::PinnedArena>(loft::PinnedArena::capacity_for(sizes));
    for (size_t i = 0; i < mine.size(); ++i) {
      at::Tensor* t = mine[i];
      Entry& e = block.entries[i];
      e.master = block.arena->copy_in(*t);
      at::Tensor placed = at::empty({0}, t->options().device(device_));
      placed.unsafeGetTensorImpl()->set_sizes_contiguous(t->sizes());
      *t = placed;  // the model's tensor as built was its only holder: freed here
      e.tensor = std::move(placed);
      loft::release_storage(e.tensor);
    }
    block.streamed = true;
  }

  bool cuda() const { return device_.is_cuda(); }
  c10::cuda::CUDAStream compute() const { return c10::cuda::getCurrentCUDAStream(device_.index()); }
  bool streamed(int64_t b) const {
    return b >= 0 && b < static_cast<int64_t>(blocks_.size()) && blocks_[static_cast<size_t>(b)].streamed;
  }
  int64_t buffer_of(int64_t b) const { return b % static_cast<int64_t>(buffers_.size()); }

  // Makes block b readable on the run device, then starts the copies of the blocks after it in `direction`.
  void acquire(int64_t b, int64_t direction) {
    if (!streamed(b)) return;
    Block& block = blocks_[static_cast<size_t>(b)];
    const int64_t i = buffer_of(b);
    issue(b);
    if (!block.bound) {
      if (cuda()) buffers_[static_cast<size_t>(i)].ready.block(compute());
      for (size_t e = 0; e < block.entries.size(); ++e) {
        loft::refill_storage(block.entries[e].tensor, block.views[static_cast<size_t>(i)][e]);
      }
      block.bound = true;
      ++bound_;
      stats_.max_bound_blocks = std::max(stats_.max_bound_blocks, bound_);
    }
    const int64_t ahead = std::min<int64_t>(parts_.prefetch_blocks, static_cast<int64_t>(buffers_.size()) - 1);
    for (int64_t k = 1; k <= ahead; ++k) {
      if (streamed(b + direction * k)) issue(b + direction * k);
    }
  }

  // Starts copying block b into its buffer unless the buffer holds it already.
  void issue(int64_t b) {
    const int64_t i = buffer_of(b);
    Buffer& buffer = buffers_[static_cast<size_t>(i)];
    if (buffer.holds == b) return;
    // A holder still bound here means a pass stopped between its Pre and Post (an exception): unbind it first.
    if (buffer.holds >= 0) finish(buffer.holds);
    Block& block = blocks_[static_cast<size_t>(b)];
    const auto& views = block.views[static_cast<size_t>(i)];
    if (cuda()) {
      buffer.free.block(*h2d_);
      c10::cuda::CUDAStreamGuard guard(*h2d_);
      for (size_t e = 0; e < block.entries.size(); ++e) views[e].copy_(block.entries[e].master, /*non_blocking=*/true);
      buffer.ready.record(*h2d_);
    } else {
      for (size_t e = 0; e < block.entries.size(); ++e) views[e].copy_(block.entries[e].master);
    }
    buffer.holds = b;
    ++stats_.block_copies;
  }

  // Block b is not read again in this pass: its buffer may be refilled once the compute stream is past this point.
  void finish(int64_t b) {
    if (!streamed(b)) return;
    Block& block = blocks_[static_cast<size_t>(b)];
    if (!block.bound) return;
    if (cuda()) buffers_[static_cast<size_t>(buffer_of(b))].free.record(compute());
    for (Entry& e : block.entries) loft::release_storage(e.tensor);
    block.bound = false;
    --bound_;
  }

  // kForwardPost of a recomputed block: its kept input moves to pinned host memory.
  void offload_input(int64_t b, at::Tensor& saved) {
    if (!saved.defined() || b < 0 || b >= static_cast<int64_t>(inputs_.size())) return;
    SavedInput& in = inputs_[static_cast<size_t>(b)];
    in.device = at::Tensor();
    ++stats_.inputs_offloaded;
    if (!saved.is_cuda()) {
      in.host = saved.clone();  // a CPU run: the same hand-over, as a plain copy
      saved = in.host;
      return;
    }
    const at::Tensor dev = saved;
    in.host = at::empty(dev.sizes(), dev.options().device(c10::kCPU).pinned_memory(true));
    in.produced.record(compute());
    in.produced.block(*d2h_);
    {
      c10::cuda::CUDAStreamGuard guard(*d2h_);
      in.host.copy_(dev, /*non_blocking=*/true);
    }
    in.offloaded.record(*d2h_);
    // The device copy is freed when the boundary lets go of it below: not reusable before the copy has read it.
    c10::cuda::CUDACachingAllocator::recordStream(dev.storage().data_ptr(), *d2h_);
    saved = in.host;
  }

  // kRecomputePre: the input goes back to the run device (prefetched at the previous block's kRecomputePre when
  // possible), and the next one's copy starts.
  void restore_input(int64_t b, at::Tensor& saved) {
    if (!saved.defined() || b < 0 || b >= static_cast<int64_t>(inputs_.size())) return;
    SavedInput& in = inputs_[static_cast<size_t>(b)];
    if (saved.device() == device_) {  // a CPU run, or the second pass of a retained graph
      if (in.host.defined() && in.host.is_same(saved)) {
        in.host = at::Tensor();
        ++stats_.inputs_restored;
      }
      return;
    }
    TORCH_CHECK(in.host.defined() && in.host.is_same(saved), "offload/zero3: block ", b,
                ": the input to recompute is not the one moved to the host at its forward");
    if (!in.device.defined()) {
      fetch_input(in);
    } else {
      ++stats_.inputs_prefetched;
    }
    in.ready.block(compute());
    saved = in.device;
    in.device = at::Tensor();
    in.host = at::Tensor();
    ++stats_.inputs_restored;
    if (b >= 1) {
      SavedInput& prev = inputs_[static_cast<size_t>(b - 1)];
      if (prev.host.defined() && !prev.device.defined()) fetch_input(prev);
    }
  }

  void fetch_input(SavedInput& in) {
    // Allocated for the compute stream, which may have just freed that memory: the copy waits for it.
    in.device = at::empty(in.host.sizes(), in.host.options().device(device_));
    in.produced.record(compute());
    in.produced.block(*h2d_);
    in.offloaded.block(*h2d_);
    {
      c10::cuda::CUDAStreamGuard guard(*h2d_);
      in.device.copy_(in.host, /*non_blocking=*/true);
    }
    in.ready.record(*h2d_);
    c10::cuda::CUDACachingAllocator::recordStream(in.device.storage().data_ptr(), *h2d_);
  }

  c10::Device device_;
  Parts parts_;
  const loft::LogSink* log_;  // the host context's; it outlives every plugin object
  std::optional<c10::cuda::CUDAStream> h2d_, d2h_;  // CUDA runs: host -> device, device -> host
  std::vector<Block> blocks_;                        // by block index
  std::vector<Buffer> buffers_;
  std::vector<SavedInput> inputs_;                   // by block index
  int64_t bound_ = 0;
  loft::Zero3Stats stats_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_offload("zero3", [](const loft::HostContext& ctx, const loft::Options& options) {
    const Parts parts = parse_parts(options);
    return std::make_unique<Zero3Offload>(ctx.device(), parts, ctx.log());
  });
}

}  // namespace

LOFT_PLUGIN("offload/zero3", register_plugin)
