// offload/zero3 lets go of what it streams (label unit): once place() has copied a host-homed block's frozen storage
// (quantized storage through QuantizedLinear::visit_storage, biases and norms through the residency pointers) into
// its arena, nothing may still hold the storage those tensors had when the model built them: every such storage has
// expired or holds no bytes, after place() and after each training step, for dense, int8 and nf4 storage, with LoRA
// and DoRA adapters, recomputed or not. A holder the strategy cannot see (an adapter's copy of a bias, a cache, a
// view) keeps a second copy of every streamed block; on a CUDA run, on the GPU. Between steps the model's streamed
// tensors hold no bytes either (each block is released at its last use). And, by a counting CPU allocator (the CPU
// analogue of CudaHoldsTheWeightsOfAtMostTwoBlocks): streamed, the memory held between steps and the peak of a step
// are lower than resident's by the weights of all blocks but the two buffers.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/pinned_arena.h"
#include "storage_watch.h"
#include "zero3_conformance.h"

namespace loft {
namespace {

using testing_offload::StorageWatch;
using testing_offload::Zero3Parts;
using Zero3Release = testing_offload::Zero3Fixture;

TEST_F(Zero3Release, NothingHoldsTheBuiltStorageOfAStreamedBlock) {
  for (const std::string peft : {"lora", "dora"}) {
    for (const std::string quantizer : {"none", "int8", "nf4"}) {
      for (const bool recompute : {true, false}) {
        Zero3Parts parts;
        parts.recompute = recompute;
        parts.activations = recompute;
        SCOPED_TRACE("quantizer/" + quantizer + ", peft/" + peft + ", " + parts.label());
        Setup setup = zero3(c10::kCPU, quantizer, parts);
        setup.peft = peft;
        StorageWatch* watch = nullptr;
        setup.wrap = [&](OffloadStrategy& inner) {
          auto w = std::make_unique<StorageWatch>(inner);
          watch = w.get();
          return w;
        };
        // Every block is host-homed (params = true): every linear the quantizer makes belongs to a streamed block.
        setup.made = [&](const std::string& site, QuantizedLinear& linear) { watch->watch_made(site, linear); };
        int64_t checked = 0;
        size_t built = 0, placed = 0;
        int64_t streamed_blocks = 0;
        setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
          ASSERT_NE(watch, nullptr);
          built = watch->built.size();
          placed = watch->placed.size();
          streamed_blocks = watch->streamed_blocks;
          if (step == 0) EXPECT_EQ(watch->still_held(), std::vector<std::string>{}) << "after place()";
          forward_backward();
          EXPECT_EQ(watch->still_held(), std::vector<std::string>{}) << "after step " << step;
          EXPECT_EQ(watch->placed_holding_bytes(), 0) << "streamed tensors still bound after step " << step;
          ++checked;
        };
        (void)train(setup);  // the watch is gone with the strategy: what it saw was noted in checked_step
        EXPECT_EQ(checked, setup.steps);
        EXPECT_EQ(streamed_blocks, setup.layers);
        // Per block: 7 linears (at least one storage tensor each, watched as made and as offered), q/k/v biases,
        // two norms.
        EXPECT_GE(built, static_cast<size_t>(setup.layers * (2 * 7 + 5)))
            << "the watch saw no streamed storage: this test would see nothing";
        EXPECT_EQ(placed * 2 - static_cast<size_t>(setup.layers * 5), built);
      }
    }
  }
}

// Counts the bytes live through it (current and peak), allocating through the allocator it replaces. Installed for
// its scope; memory allocated before is not counted, memory freed after is (the counts outlive it).
class CountingCpuAllocator final : public c10::Allocator {
 public:
  CountingCpuAllocator() : inner_(c10::GetCPUAllocator()) { c10::SetCPUAllocator(this, kPriority); }
  ~CountingCpuAllocator() override { c10::SetCPUAllocator(inner_, kPriority); }

  c10::DataPtr allocate(size_t n) override {
    auto* held = new Held{inner_->allocate(n), n, counts_};
    void* data = held->inner.get();
    const int64_t now = counts_->current += static_cast<int64_t>(n);
    raise(counts_->peak, now);
    raise(counts_->host_peak, now + PinnedArena::live_bytes());
    return c10::DataPtr(data, held, &Held::release, c10::Device(c10::kCPU));
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  int64_t current() const { return counts_->current.load(); }
  int64_t peak() const { return counts_->peak.load(); }
  void reset_peak() { counts_->peak = counts_->current.load(); }
  // The peak of what it counts plus every PinnedArena's bytes, as seen at each allocation and release through it.
  int64_t host_peak() const { return counts_->host_peak.load(); }

 private:
  static constexpr uint8_t kPriority = 255;
  struct Counts {
    std::atomic<int64_t> current{0}, peak{0}, host_peak{0};
  };
  static void raise(std::atomic<int64_t>& peak, int64_t now) {
    int64_t seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
  }
  struct Held {
    c10::DataPtr inner;
    size_t bytes;
    std::shared_ptr<Counts> counts;
    static void release(void* p) {
      auto* h = static_cast<Held*>(p);
      // Before the bytes go: the moment a strategy has copied a tensor into its arena and lets go of the original.
      raise(h->counts->host_peak, h->counts->current.load() + PinnedArena::live_bytes());
      h->counts->current -= static_cast<int64_t>(h->bytes);
      delete h;
    }
  };
  c10::Allocator* inner_;
  std::shared_ptr<Counts> counts_ = std::make_shared<Counts>();
};

TEST_F(Zero3Release, StreamedBlocksCostOnlyTheirBuffersBetweenStepsAndAtAStepsPeak) {
  const int64_t blocks = 8;
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    for (const bool recompute : {true, false}) {
      SCOPED_TRACE("quantizer/" + quantizer + (recompute ? ", recompute" : ", no recompute"));
      struct Measured {
        int64_t held = 0, peak = 0, offered = 0;
      };
      auto measure = [&](bool params, Measured& m) {
        CountingCpuAllocator counting;
        StorageWatch* watch = nullptr;
        Zero3Parts parts;
        parts.params = params;
        parts.recompute = recompute;
        parts.activations = recompute;
        Setup setup = zero3(c10::kCPU, quantizer, parts);
        setup.layers = blocks;
        setup.wrap = [&](OffloadStrategy& inner) {
          auto w = std::make_unique<StorageWatch>(inner);
          watch = w.get();
          return w;
        };
        setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
          if (step == 1) {
            m.held = counting.current();
            m.offered = watch->offered_bytes;
            counting.reset_peak();
          }
          forward_backward();
          if (step == 1) m.peak = counting.peak();
        };
        return train(setup);
      };
      Measured resident, streamed;
      (void)measure(false, resident);
      const Steps got = measure(true, streamed);
      ASSERT_TRUE(got.stats.has_value());
      EXPECT_EQ(got.stats->device_buffers, 2);
      // All blocks' frozen bytes as the resident model holds them, less the two buffers (padded to the arena's
      // alignment); a little slack for nothing in particular (the two runs allocate the same otherwise).
      const int64_t saved = streamed.offered - 2 * got.stats->device_buffer_bytes - 4096;
      EXPECT_GT(saved, 4 * got.stats->device_buffer_bytes) << "this model's blocks do not dominate: a vacuous test";
      EXPECT_GE(resident.held - streamed.held, saved) << "held between steps: resident " << resident.held
                                                      << ", streamed " << streamed.held;
      // Without recompute the two runs execute differently (streamed blocks kBoundary, whose backward hands back a
      // block's trainable gradients at once; resident ones kPlain): the peaks compare only with recompute.
      if (recompute) {
        EXPECT_GE(resident.peak - streamed.peak, saved) << "peak of a step: resident " << resident.peak
                                                        << ", streamed " << streamed.peak;
      }
    }
  }
}

// Loading never holds a host-homed model twice in host memory: place() moves the blocks into their pinned arenas one
// at a time, letting go of each block as built once copied, so the host's peak while building (CPU tensors + arenas,
// counted at their size: pinned memory is resident from its registration) stays within what it holds once built plus
// one block. One arena for every block, allocated before the copies, peaked at about twice the blocks.
TEST_F(Zero3Release, BuildingHoldsAtMostOneBuiltBlockBesideTheArenas) {
  const int64_t blocks = 8;
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    SCOPED_TRACE("quantizer/" + quantizer);
    CountingCpuAllocator counting;
    Zero3Parts parts;  // params, activations and recompute on
    Setup setup = zero3(c10::kCPU, quantizer, parts);
    setup.layers = blocks;
    setup.steps = 1;
    int64_t build_peak = 0, built = 0;
    setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
      if (step == 0) {
        build_peak = counting.host_peak();
        built = counting.current() + PinnedArena::live_bytes();
      }
      forward_backward();
    };
    const Steps got = train(setup);
    ASSERT_TRUE(got.stats.has_value());
    const int64_t block = got.stats->device_buffer_bytes;
    EXPECT_GT(got.stats->arena_bytes, 4 * block) << "this model's blocks do not dominate: a vacuous test";
    EXPECT_LE(build_peak, built + block + 64 * 1024) << "peak while building " << build_peak << ", held once built "
                                                      << built << ", one block " << block;
  }
}

}  // namespace
}  // namespace loft
