// Learning-rate schedules against transformers' formulas; right-padded collation and label-token counting.
#include <gtest/gtest.h>

#include <cmath>

#include "loft/framework/batching.h"
#include "loft/framework/chunked_loss.h"
#include "loft/framework/schedule.h"

namespace loft {
namespace {

TEST(Schedule, WarmupThenDecayLikeTransformers) {
  EXPECT_DOUBLE_EQ(learning_rate(ScheduleKind::kCosine, 1.0, 0, 10, 110), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate(ScheduleKind::kCosine, 1.0, 5, 10, 110), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(ScheduleKind::kCosine, 1.0, 10, 10, 110), 1.0);
  EXPECT_NEAR(learning_rate(ScheduleKind::kCosine, 1.0, 60, 10, 110), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(ScheduleKind::kCosine, 1.0, 110, 10, 110), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate(ScheduleKind::kLinear, 2.0, 60, 10, 110), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(ScheduleKind::kConstant, 3.0, 100, 10, 110), 3.0);
  EXPECT_DOUBLE_EQ(learning_rate(ScheduleKind::kConstant, 3.0, 0, 0, 110), 3.0);
  EXPECT_FALSE(parse_schedule("cosin").ok());
}

TEST(Batching, RightPadsAndCountsShiftedTargets) {
  TokenizedExample a{{5, 6, 7, 8}, {kIgnoreLabel, kIgnoreLabel, 7, 8}};
  TokenizedExample b{{9, 10}, {kIgnoreLabel, 10}};
  auto batch = collate({&a, &b}, /*pad_id=*/0);
  ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(batch.input_ids[1][2].item<int64_t>(), 0);
  EXPECT_EQ(batch.labels[1][2].item<int64_t>(), kIgnoreLabel);
  EXPECT_EQ(batch.lengths[0].item<int64_t>(), 4);
  EXPECT_EQ(batch.lengths[1].item<int64_t>(), 2);
  EXPECT_EQ(batch.label_tokens, 3);
  TokenizedExample bad{{1, 2}, {1}};
  EXPECT_THROW(collate({&bad}, 0), c10::Error);
}

}  // namespace
}  // namespace loft
