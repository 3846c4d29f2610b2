// [budget] gpu_memory on a real GPU: the caching allocator is capped so that the context plus tensors stay under the
// budget, and running into the cap gives the one-line report by category.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>

#include <vector>

#include "loft/framework/memory_budget.h"

namespace loft {
namespace {

TEST(MemoryBudgetGpu, AllocatorStopsAtTheBudgetAndReportsByCategory) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible: GPU test skipped";
  const c10::Device device(c10::kCUDA, 0);
  torch::empty({1}, torch::device(device));  // context up
  size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  const uint64_t budget = (total_bytes - free_bytes) + (uint64_t{1} << 30);  // what is in use now + 1 GiB
  MemoryGuard guard(MemoryBudget{budget, 0}, device);
  ASSERT_TRUE(guard.arm(false).ok());
  EXPECT_GT(guard.context_bytes(), 0u);
  EXPECT_LE(guard.context_bytes() + guard.allocator_cap_bytes(), budget);

  MemoryLedgerSources sources;
  at::Tensor adapter = torch::zeros({16 << 20}, torch::dtype(torch::kFloat32).device(device));  // 64 MiB
  sources.adapters = [&](c10::Device d) -> uint64_t { return d.is_cuda() ? adapter.nbytes() : 0; };
  guard.note_model_built(sources);

  std::vector<at::Tensor> held;
  bool refused = false;
  std::string report;
  try {
    for (int i = 0; i < 64; ++i) held.push_back(torch::empty({64 << 20}, torch::dtype(torch::kByte).device(device)));
  } catch (const c10::OutOfMemoryError& e) {
    refused = true;
    report = guard.describe_gpu_oom(e.what());
  }
  ASSERT_TRUE(refused) << "4 GiB of tensors fit under a 1 GiB allocator cap";
  size_t free_now = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_now, &total_bytes), cudaSuccess);
  EXPECT_LE(total_bytes - free_now, budget) << "the process's whole GPU use exceeds the budget";
  EXPECT_TRUE(guard.check_gpu("after the allocations").ok());
  EXPECT_NE(report.find("over budget.gpu_memory"), std::string::npos) << report;
  EXPECT_NE(report.find("a request for 64.00 MiB failed"), std::string::npos) << report;
  EXPECT_NE(report.find("context"), std::string::npos) << report;
  EXPECT_NE(report.find("adapters 64.0 MiB"), std::string::npos) << report;
  EXPECT_EQ(report.find('\n'), std::string::npos) << report;
  held.clear();
  c10::cuda::CUDACachingAllocator::setMemoryFraction(1.0, 0);
}

}  // namespace
}  // namespace loft
