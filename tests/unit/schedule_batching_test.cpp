// Learning-rate schedules against transformers' formulas; right-padded collation and label-token counting.
#include <ATen/ATen.h>
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

TEST(Batching, PacksFirstFitWithSequenceBoundaries) {
  TokenizedExample a{{5, 6, 7}, {kIgnoreLabel, 6, 7}};
  TokenizedExample b{{8, 9, 10, 11}, {kIgnoreLabel, kIgnoreLabel, 10, 11}};
  TokenizedExample c{{12, 13}, {12, 13}};
  auto batch = collate_packed({&a, &b, &c}, /*pad_id=*/0, /*row_length=*/6);
  // a (3) + c (2) share the first row; b (4) does not fit after a, so it opens row two.
  ASSERT_EQ(batch.input_ids.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_TRUE(batch.input_ids.equal(at::tensor({5, 6, 7, 12, 13, 8, 9, 10, 11, 0}, at::kLong).view({2, 5})));
  EXPECT_TRUE(batch.position_ids.equal(at::tensor({0, 1, 2, 0, 1, 0, 1, 2, 3, 0}, at::kLong).view({2, 5})));
  // Each example's first label is dropped: it would be the target of the previous example's last token.
  const int64_t I = kIgnoreLabel;
  EXPECT_TRUE(batch.labels.equal(at::tensor(std::vector<int64_t>{I, 6, 7, I, 13, I, I, 10, 11, I}, at::kLong).view({2, 5})));
  EXPECT_TRUE(batch.cu_seqlens.equal(at::tensor({0, 3, 5, 9, 10}, at::kInt)));
  EXPECT_EQ(batch.max_seqlen, 4);
  EXPECT_EQ(batch.label_tokens, collate({&a, &b, &c}, 0).label_tokens);
  EXPECT_EQ(batch.label_tokens, 5);
  EXPECT_TRUE(batch.lengths.equal(at::tensor({5, 4}, at::kLong)));
  EXPECT_TRUE(batch.packed());
  EXPECT_FALSE(collate({&a}, 0).packed());
  try {
    collate_packed({&b}, 0, 3);
    FAIL() << "an example longer than the row must be refused";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit a packed row of 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loft
