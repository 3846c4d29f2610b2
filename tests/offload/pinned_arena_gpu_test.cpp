// PinnedArena on CUDA (label gpu): the arena is page-locked (cudaHostRegister), its tensors count as pinned, and
// asynchronous copies to and from a reusable device buffer on a side stream round-trip exactly. Skips with a printed
// reason where no CUDA device is visible.
#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>
#include <torch/torch.h>

#include "loft/pinned_arena.h"

namespace loft {
namespace {

#define LOFT_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

TEST(PinnedArenaGpu, ArenaIsPinnedAndCopiesRoundTripOnASideStream) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  auto w1 = torch::randint(-128, 127, {300, 257}, torch::kChar);
  auto w2 = torch::randn({300}, torch::kFloat);
  PinnedArena arena(PinnedArena::capacity_for({static_cast<int64_t>(w1.nbytes()), static_cast<int64_t>(w2.nbytes())}));
  ASSERT_TRUE(arena.pinned());
  auto h1 = arena.copy_in(w1);
  auto h2 = arena.copy_in(w2);
  // Page-locked as the driver sees it (torch's is_pinned() knows only its own caching host allocator's blocks).
  for (const auto& h : {h1, h2}) {
    cudaPointerAttributes attributes{};
    ASSERT_EQ(cudaPointerGetAttributes(&attributes, h.data_ptr()), cudaSuccess);
    EXPECT_EQ(attributes.type, cudaMemoryTypeHost) << "arena memory is not registered with CUDA";
  }
  EXPECT_EQ(arena.tensor_bytes(), static_cast<int64_t>(w1.nbytes() + w2.nbytes()));

  // Reusable device buffers, filled on a side stream; the compute stream waits on an event.
  auto d1 = torch::empty_like(w1, torch::TensorOptions().device(dev));
  auto d2 = torch::empty_like(w2, torch::TensorOptions().device(dev));
  auto side = c10::cuda::getStreamFromPool(false, 0);
  c10::cuda::CUDAEvent copied;
  {
    c10::cuda::CUDAStreamGuard guard(side);
    d1.copy_(h1, /*non_blocking=*/true);
    d2.copy_(h2, /*non_blocking=*/true);
    copied.record(side);
  }
  copied.block(c10::cuda::getCurrentCUDAStream(0));
  EXPECT_TRUE(torch::equal(d1.cpu(), w1));
  EXPECT_TRUE(torch::equal(d2.cpu(), w2));

  // And back into the arena, asynchronously, then synchronised.
  h1.zero_();
  h1.copy_(d1, /*non_blocking=*/true);
  torch::cuda::synchronize();
  EXPECT_TRUE(torch::equal(h1, w1));
}

}  // namespace
}  // namespace loft
