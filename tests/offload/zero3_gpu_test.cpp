// offload/zero3 on CUDA (label gpu): every combination of parts gives offload/none's losses and gradients within
// 1e-6 relative (dense, int8, nf4; math attention); with params streamed the GPU holds the weights of at most two
// blocks, by the caching allocator's statistics; the forward and backward of a warm step make no host
// synchronisation. Each case skips with a printed reason where no CUDA device is visible.
#include <iostream>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "storage_watch.h"
#include "zero3_conformance.h"

namespace loft {
namespace {

#define LOFT_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

using testing_offload::all_zero3_combinations;
using testing_offload::StorageWatch;
using testing_offload::Zero3Parts;
using Zero3Gpu = testing_offload::Zero3Fixture;

TEST_F(Zero3Gpu, CudaEveryCombinationOfPartsMatchesNoOffload) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    const Steps with_adamw = train(reference(dev, quantizer, Zero3Parts{true, false, false, true}));
    const Steps with_adamw_cpu = train(reference(dev, quantizer, Zero3Parts{true, false, true, true}));
    for (const Zero3Parts& parts : all_zero3_combinations()) {
      SCOPED_TRACE("quantizer/" + quantizer + ", " + parts.label());
      const Steps got = train(zero3(dev, quantizer, parts));
      expect_same_steps(parts.optimizer ? with_adamw_cpu : with_adamw, got, /*rel=*/1e-6);
      ASSERT_TRUE(got.stats.has_value());
      EXPECT_EQ(got.stats->inputs_restored, parts.activations ? 8 : 0);
      // In backward each input but the last block's was copied back one block ahead.
      EXPECT_EQ(got.stats->inputs_prefetched, parts.activations ? 6 : 0);
    }
  }
}

int64_t allocated_bytes(bool peak) {
  torch::cuda::synchronize();
  const auto& stat = c10::cuda::CUDACachingAllocator::getDeviceStats(0)
                         .allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
  return peak ? stat.peak : stat.current;
}

// Streamed vs resident (zero3 with params off: the same execution, recompute included), on a model whose blocks
// dominate its memory: what the GPU holds after building and at the peak of a step differ by the weights of all
// blocks but the two buffers. Reported in MiB for the record.
TEST_F(Zero3Gpu, CudaHoldsTheWeightsOfAtMostTwoBlocks) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  const int64_t blocks = 8;
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    SCOPED_TRACE("quantizer/" + quantizer);
    struct Measured {
      int64_t built = 0, peak = 0;
    };
    auto measure = [&](bool params, Measured& m) {
      Zero3Parts parts;
      parts.params = params;
      auto setup = zero3(dev, quantizer, parts);
      setup.layers = blocks;
      setup.configure = [](Qwen2Config& c) {
        c.hidden_size = 512;
        c.num_attention_heads = 8;
        c.num_key_value_heads = 2;
        c.head_dim = 64;
        c.intermediate_size = 2048;
      };
      setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
        if (step == 1) {
          m.built = allocated_bytes(false);
          c10::cuda::CUDACachingAllocator::resetPeakStats(0);
        }
        forward_backward();
        if (step == 1) m.peak = allocated_bytes(true);
      };
      return train(setup);
    };
    Measured resident, streamed;
    measure(false, resident);
    const Steps got = measure(true, streamed);
    ASSERT_TRUE(got.stats.has_value());
    const Zero3Stats& st = *got.stats;
    const double mib = 1024.0 * 1024.0;
    std::cout << quantizer << ": block " << st.device_buffer_bytes / mib << " MiB; held between steps: resident "
              << resident.built / mib << " MiB, streamed " << streamed.built / mib << " MiB; peak in a step: resident "
              << resident.peak / mib << " MiB, streamed " << streamed.peak / mib << " MiB\n";
    EXPECT_EQ(st.device_buffers, 2);
    EXPECT_LE(st.max_bound_blocks, 2);
    EXPECT_EQ(st.arena_bytes, blocks * st.device_buffer_bytes);
    const int64_t saved = (blocks - 2) * st.device_buffer_bytes;
    const int64_t slack = 2 * 1024 * 1024;  // allocator rounding, the side streams' small allocations
    EXPECT_GE(resident.built - streamed.built, saved - slack);
    EXPECT_GE(resident.peak - streamed.peak, saved - slack);
  }
}

// What CudaHoldsTheWeightsOfAtMostTwoBlocks measures, explained: nothing keeps the storage a streamed block's frozen
// tensors had when they were quantized on the GPU or offered to place() (dense, int8, nf4); between steps no streamed
// tensor holds bytes. Prints the allocator's count at every callback of the measured step, streamed and resident.
TEST_F(Zero3Gpu, CudaNothingHoldsTheBuiltStorageOfAStreamedBlock) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  for (const std::string quantizer : {"none", "int8", "nf4"}) {
    for (const bool params : {true, false}) {
      SCOPED_TRACE("quantizer/" + quantizer + (params ? ", streamed" : ", resident"));
      Zero3Parts parts;
      parts.params = params;
      auto setup = zero3(dev, quantizer, parts);
      setup.layers = 8;
      StorageWatch* watch = nullptr;
      setup.wrap = [&](OffloadStrategy& inner) {
        auto w = std::make_unique<StorageWatch>(inner);
        watch = w.get();
        return w;
      };
      setup.made = [&](const std::string& site, QuantizedLinear& linear) {
        if (params) watch->watch_made(site, linear);
      };
      setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
        if (step == 0) EXPECT_EQ(watch->still_held(), std::vector<std::string>{}) << "after place()";
        if (step == 1) {
          std::cout << quantizer << (params ? " streamed" : " resident") << ": held before step 1 "
                    << allocated_bytes(false) << "\n";
          c10::cuda::CUDACachingAllocator::resetPeakStats(0);
          watch->probe = [] { return allocated_bytes(false); };
        }
        forward_backward();
        if (step == 1) {
          std::cout << "  peak " << allocated_bytes(true) << "\n";
          for (const std::string& line : watch->trace) std::cout << "  " << line << "\n";
          watch->probe = nullptr;
        }
        EXPECT_EQ(watch->still_held(), std::vector<std::string>{}) << "after step " << step;
        if (params) EXPECT_EQ(watch->placed_holding_bytes(), 0) << "after step " << step;
      };
      (void)train(setup);
      ASSERT_NE(watch, nullptr);
      if (params) EXPECT_EQ(watch->streamed_blocks, 8);
    }
  }
}

// The method: PyTorch's CUDA sync debug mode set to "error" (torch.cuda.set_sync_debug_mode) makes every
// synchronising call made through c10 throw: stream and device synchronisation, blocking copies (a non-pinned or
// non_blocking=false transfer, .item(), .cpu()), which is how ATen, the SDK's boundary, this plugin and
// optimizer/adamw_cpu's gradient hooks would synchronise. It does not see a raw CUDA runtime call that bypasses c10
// (cudaEventSynchronize, cudaStreamSynchronize called directly): offload/zero3 makes one only in its destructor. A
// warm step is checked (the first allocates its pinned host buffers and CUDA memory); a control checks the mode is
// live.
class SyncDebugError {
 public:
  SyncDebugError() : before_(c10::cuda::warning_state().get_sync_debug_mode()) {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  }
  ~SyncDebugError() { c10::cuda::warning_state().set_sync_debug_mode(before_); }

 private:
  c10::cuda::SyncDebugMode before_;
};

TEST_F(Zero3Gpu, CudaForwardAndBackwardMakeNoHostSynchronisation) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  {
    SyncDebugError mode;
    EXPECT_THROW((void)at::ones({1}, at::TensorOptions().device(dev)).sum().item<float>(), c10::Error)
        << "the sync debug mode did not catch .item(): this test would see nothing";
  }
  for (const std::string quantizer : {"int8", "nf4"}) {
    for (const int64_t prefetch : {1, 2}) {
      for (const Zero3Parts& parts : all_zero3_combinations()) {
        if (!parts.params && !parts.activations) continue;
        Zero3Parts p = parts;
        p.prefetch_blocks = prefetch;
        SCOPED_TRACE("quantizer/" + quantizer + ", " + p.label());
        auto setup = zero3(dev, quantizer, p);
        setup.steps = 3;
        int64_t checked = 0;
        setup.checked_step = [&](int64_t step, const std::function<void()>& forward_backward) {
          if (step == 0) return forward_backward();
          SyncDebugError mode;
          try {
            forward_backward();
            ++checked;
          } catch (const c10::Error& e) {
            ADD_FAILURE() << "a host synchronisation inside the step: " << e.what_without_backtrace();
            throw;
          }
        };
        const Steps got = train(setup);
        EXPECT_EQ(checked, 2);
        EXPECT_EQ(got.steps.size(), 3u);
      }
    }
  }
}

}  // namespace
}  // namespace loft
