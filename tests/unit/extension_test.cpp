// The versioned capability query of loft/extension.h: an implementation answers the ids it knows and nullptr for
// the rest, and a caller finds an extension through find_extension and falls back without it.
#include <gtest/gtest.h>

#include <string>

#include "loft/dataset.h"
#include "loft/extension.h"

namespace loft {
namespace {

// An extension as a header would define one: an id constant and the type the pointer points to. Its operation
// changes nothing, so it takes no owner.
constexpr std::string_view kShardHintId = "test.dataset.shard_hint/1";
struct ShardHint {
  int64_t samples_per_shard;
};

class ShardedDataset final : public Dataset {
 public:
  int64_t size() const override { return 10; }
  Sample get(int64_t index) const override { return Sample{{{"user", std::to_string(index)}}, {}}; }
  const void* extension(std::string_view id) const override {
    if (id == kShardHintId) return &hint_;
    return nullptr;
  }

 private:
  ShardHint hint_{4};  // owned by the dataset, valid for its lifetime
};

class PlainDataset final : public Dataset {
 public:
  int64_t size() const override { return 3; }
  Sample get(int64_t) const override { return {}; }
};

// What a host would do: use the extension when offered, the base interface otherwise.
int64_t shard_count(const Dataset& dataset) {
  const auto* hint = find_extension<ShardHint>(dataset, kShardHintId);
  const int64_t per_shard = hint ? hint->samples_per_shard : dataset.size();
  return (dataset.size() + per_shard - 1) / per_shard;
}

TEST(Extension, AnImplementationAnswersItsIdAndNullptrForOthers) {
  ShardedDataset sharded;
  const auto* hint = find_extension<ShardHint>(sharded, kShardHintId);
  ASSERT_NE(hint, nullptr);
  EXPECT_EQ(hint->samples_per_shard, 4);
  EXPECT_EQ(find_extension<ShardHint>(sharded, "test.dataset.shard_hint/2"), nullptr);  // other version
  EXPECT_EQ(sharded.extension("loft.dataset.unknown/1"), nullptr);
  // The same pointer each time: owned by the object, not made per query.
  EXPECT_EQ(find_extension<ShardHint>(sharded, kShardHintId), hint);
}

TEST(Extension, TheDefaultAnswersNothingAndCallersFallBack) {
  PlainDataset plain;
  EXPECT_EQ(plain.extension(kShardHintId), nullptr);
  EXPECT_EQ(shard_count(plain), 1);
  ShardedDataset sharded;
  EXPECT_EQ(shard_count(sharded), 3);  // 10 samples in shards of 4
}

}  // namespace
}  // namespace loft
