// PinnedArena on the CPU (label unit): exact byte accounting, alignment, views that share the arena's memory and
// keep it alive, refusal of what does not fit. Without a visible CUDA device the arena is plain memory, same API.
#include <cstdint>
#include <memory>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loft/pinned_arena.h"

namespace loft {
namespace {

TEST(PinnedArena, SizesAreExactUpToAlignment) {
  EXPECT_EQ(PinnedArena::slot_bytes(0), 0);
  EXPECT_EQ(PinnedArena::slot_bytes(1), 256);
  EXPECT_EQ(PinnedArena::slot_bytes(256), 256);
  EXPECT_EQ(PinnedArena::slot_bytes(257), 512);
  EXPECT_EQ(PinnedArena::capacity_for({100, 256, 1000}), 256 + 256 + 1024);

  // A "1.1 GiB"-style odd size costs its size rounded up to a page, not the next power of two.
  const int64_t odd = (int64_t{11} << 20) + 12345;
  PinnedArena arena(odd, PinnedArena::Pinning::kNever);
  EXPECT_EQ(arena.capacity_bytes(), odd);
  EXPECT_EQ(arena.reserved_bytes(), (odd + 4095) / 4096 * 4096);
  EXPECT_FALSE(arena.pinned());
}

TEST(PinnedArena, TensorsAreAlignedViewsAndAccountedExactly) {
  const std::vector<int64_t> sizes{7 * 4, 1000 * 2, 33 * 1};
  PinnedArena arena(PinnedArena::capacity_for(sizes));
  auto a = arena.allocate({7}, torch::kFloat);
  auto b = arena.allocate({10, 100}, torch::kBFloat16);
  auto c = arena.allocate({33}, torch::kChar);
  EXPECT_EQ(arena.tensor_bytes(), 28 + 2000 + 33);
  EXPECT_EQ(arena.used_bytes(), PinnedArena::capacity_for(sizes));
  for (const auto* t : {&a, &b, &c}) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t->data_ptr()) % PinnedArena::kAlignment, 0u);
    EXPECT_TRUE(t->device().is_cpu());
    EXPECT_TRUE(t->is_contiguous());
  }
  EXPECT_EQ(static_cast<char*>(b.data_ptr()) - static_cast<char*>(a.data_ptr()), 256);
  EXPECT_EQ(static_cast<char*>(c.data_ptr()) - static_cast<char*>(b.data_ptr()), 2048);
  // Nothing is left: even one more byte is refused, with the sizes in the message.
  try {
    arena.allocate({1}, torch::kByte);
    ADD_FAILURE() << "a full arena should refuse another tensor";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }
  // Without a visible CUDA device the default pinning falls back to plain memory.
  if (!torch::cuda::is_available()) {
    EXPECT_FALSE(arena.pinned());
  }
}

TEST(PinnedArena, CopyInHoldsTheValuesAndViewsOutliveTheArena) {
  auto source = torch::randn({5, 3}, torch::kFloat);
  at::Tensor copy;
  {
    PinnedArena arena(PinnedArena::capacity_for({static_cast<int64_t>(source.nbytes())}));
    copy = arena.copy_in(source);
    EXPECT_TRUE(torch::equal(copy, source));
    EXPECT_NE(copy.data_ptr(), source.data_ptr());
  }
  // The arena object is gone; its memory lives while a view does.
  EXPECT_TRUE(torch::equal(copy, source));
  copy.add_(1.0);
  EXPECT_TRUE(torch::equal(copy, source + 1.0));
}

TEST(PinnedArena, NegativeSizesAreRefused) {
  EXPECT_THROW(PinnedArena(-1), c10::Error);
  PinnedArena arena(1024);
  EXPECT_THROW(arena.allocate({-2}, torch::kFloat), c10::Error);
}

}  // namespace
}  // namespace loft
