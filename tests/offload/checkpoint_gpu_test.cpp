// offload/checkpoint against offload/none on CUDA (label gpu): bit-identical dropout and gradients, and less memory
// held between forward and backward. Each case skips with a printed reason where no CUDA device is visible.
#include <iostream>

#include <c10/cuda/CUDACachingAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "toy_network.h"

namespace loft {
namespace {

#define LOFT_REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped"

using OffloadCheckpointGpu = testing_offload::OffloadFixture;

TEST_F(OffloadCheckpointGpu, CudaDropoutAndGradientsMatchNoOffloadBitForBit) {
  LOFT_REQUIRE_CUDA();
  parity(c10::Device(c10::kCUDA, 0), {"all", "every_n:2"}, /*input_grad=*/true);
  parity(c10::Device(c10::kCUDA, 0), {"all"}, /*input_grad=*/false);
}

TEST_F(OffloadCheckpointGpu, CudaForwardKeepsLessMemoryForBackward) {
  LOFT_REQUIRE_CUDA();
  const c10::Device dev(c10::kCUDA, 0);
  auto opts = torch::TensorOptions().device(dev).dtype(torch::kBFloat16);
  const int64_t blocks = 6, hidden = 512, ffn = 2048;
  std::vector<torch::Tensor> up, down;
  for (int64_t i = 0; i < blocks; ++i) {
    up.push_back((torch::randn({ffn, hidden}, opts) * 0.02).requires_grad_());
    down.push_back((torch::randn({hidden, ffn}, opts) * 0.02).requires_grad_());
  }
  auto input = torch::randn({4, 512, hidden}, opts);
  auto allocated = [&] {
    torch::cuda::synchronize();
    return c10::cuda::CUDACachingAllocator::getDeviceStats(0)
        .allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
        .current;
  };
  auto forward_bytes = [&](OffloadStrategy& s) {
    const int64_t before = allocated();
    auto h = input;
    for (int64_t i = 0; i < blocks; ++i) {
      auto u = up[i], d = down[i];
      h = s.run_block(i, [u, d](const torch::Tensor& x) {
        return x + torch::matmul(torch::silu(torch::matmul(x, u.t())), d.t());
      }, h);
    }
    auto loss = h.to(torch::kFloat).pow(2).mean();
    const int64_t held = allocated() - before;
    loss.backward();
    return held;
  };
  auto none = make("none", "", dev);
  auto ckpt = make("checkpoint", "all", dev);
  const int64_t plain = forward_bytes(*none);
  const int64_t recomputed = forward_bytes(*ckpt);
  std::cout << "bytes held after forward: plain " << plain << ", checkpoint " << recomputed << "\n";
  EXPECT_LT(recomputed * 3, plain);
}

}  // namespace
}  // namespace loft
