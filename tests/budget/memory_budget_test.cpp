// [budget] on the CPU: sizes, the report's order and wording, host measurements and the host cap.
#include <gtest/gtest.h>

#include <vector>

#include "loft/framework/memory_budget.h"
#include "loft/pinned_arena.h"

namespace loft {
namespace {

TEST(MemoryBudget, ReadsBothCapsAndTreatsEmptyAsNone) {
  Options given("budget", {{"gpu_memory", std::string("15GiB")}, {"host_memory", std::string("")}});
  auto b = MemoryBudget::from_options(given);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b.value().gpu_bytes, uint64_t{15} << 30);
  EXPECT_EQ(b.value().host_bytes, 0u);
  Options bad("budget", {{"gpu_memory", std::string("lots")}, {"host_memory", std::string("")}});
  auto refused = MemoryBudget::from_options(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("budget.gpu_memory"), std::string::npos);
}

TEST(MemoryBudget, ReportListsTheLargestFirstAndSkipsEmptyCategories) {
  const std::string m = over_budget_message("GPU memory", "gpu_memory", uint64_t{1} << 30, uint64_t{3} << 29,
                                            {{"context", 500u << 20}, {"weights", uint64_t{1} << 30},
                                             {"optimizer", 0}, {"activations", 2u << 20}},
                                            "Lower the batch.");
  EXPECT_EQ(m, "GPU memory over budget.gpu_memory = 1.00 GiB: 1.50 GiB in use; largest: weights 1.00 GiB, "
               "context 500.0 MiB, activations 2.0 MiB. Lower the batch.");
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(MemoryBudget, FormatsEveryMagnitude) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(4096), "4 KiB");
  EXPECT_EQ(format_bytes(3u << 20), "3.0 MiB");
  EXPECT_EQ(format_bytes(uint64_t{12} << 30), "12.00 GiB");
}

TEST(MemoryBudget, MeasuresThisProcess) {
  const HostMemoryNow now = host_memory_now();
  EXPECT_GT(now.resident_bytes, 0u);
  EXPECT_GT(now.anon_bytes, 0u);
  EXPECT_LE(now.anon_bytes, now.resident_bytes);
}

TEST(MemoryBudget, HostCapNamesPinnedArenasAndTheOptimizer) {
  PinnedArena arena(64 << 20, PinnedArena::Pinning::kNever);
  at::Tensor filled = arena.allocate({64 << 20}, c10::kByte);
  filled.fill_(1);  // touch the pages so they are resident
  EXPECT_GE(PinnedArena::live_bytes(), int64_t{64} << 20);
  MemoryGuard guard(MemoryBudget{0, 16u << 20}, c10::Device(c10::kCPU));
  ASSERT_TRUE(guard.arm(/*explicit_cpu=*/false).ok());
  MemoryLedgerSources sources;
  sources.optimizer = [](c10::Device d) -> uint64_t { return d.is_cpu() ? 3u << 20 : 0; };
  guard.set_sources(sources);
  const Status st = guard.check_host("after step 7");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  const std::string& m = st.message();
  EXPECT_NE(m.find("host memory after step 7: over budget.host_memory = 16.0 MiB"), std::string::npos) << m;
  EXPECT_NE(m.find("pinned arenas (offloaded weights) 64.0 MiB"), std::string::npos) << m;
  EXPECT_NE(m.find("optimizer (host) 3.0 MiB"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);

  MemoryGuard roomy(MemoryBudget{0, uint64_t{1} << 40}, c10::Device(c10::kCPU));
  EXPECT_TRUE(roomy.check_host("after step 1").ok());
  MemoryGuard none(MemoryBudget{}, c10::Device(c10::kCPU));
  EXPECT_TRUE(none.check_host("after step 1").ok());
}

TEST(MemoryBudget, GpuCapOnAnExplicitCpuRunIsRefused) {
  MemoryGuard guard(MemoryBudget{uint64_t{8} << 30, 0}, c10::Device(c10::kCPU));
  const Status st = guard.arm(/*explicit_cpu=*/true);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("budget.gpu_memory"), std::string::npos);
  MemoryGuard fallback(MemoryBudget{uint64_t{8} << 30, 0}, c10::Device(c10::kCPU));
  EXPECT_TRUE(fallback.arm(/*explicit_cpu=*/false).ok());  // device = "auto" on a machine without a GPU: a warning
}

}  // namespace
}  // namespace loft
