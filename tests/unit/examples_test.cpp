// Samples -> training examples: the prompt is the chat template with the generation prompt and is masked; the
// response ends in eos; long examples keep the prompt and cut the response.
#include <gtest/gtest.h>

#include "loft/framework/chunked_loss.h"
#include "loft/framework/examples.h"

namespace loft {
namespace {

class TwoSamples : public Dataset {
 public:
  int64_t size() const override { return 2; }
  Sample get(int64_t i) const override {
    if (i == 0) return {{{"user", "What is 2 + 3?"}, {"assistant", "2 + 3 = 5, so $\\boxed{5}$."}}, {}};
    return {{{"user", std::string(400, 'x')}, {"assistant", "no room"}}, {}};
  }
};

TEST(Examples, PromptMaskedResponseTrainedWithEos) {
  auto tok = Tokenizer::from_file(LOFT_SOURCE_DIR "/models/demo/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const Tokenizer& t = tok.value();
  TokenizeStats stats;
  auto examples = tokenize_dataset(t, TwoSamples(), 64, &stats);
  ASSERT_TRUE(examples.ok()) << examples.status().message();
  ASSERT_EQ(examples.value().size(), 1u);
  EXPECT_EQ(stats.dropped, 1);  // the 400-character prompt fills max_length
  const auto& e = examples.value()[0];
  auto prompt = t.encode(t.apply_chat_template({{"user", "What is 2 + 3?"}}, true));
  ASSERT_LT(prompt.size(), e.input_ids.size());
  for (size_t i = 0; i < e.input_ids.size(); ++i) {
    if (i < prompt.size()) {
      EXPECT_EQ(e.input_ids[i], prompt[i]);
      EXPECT_EQ(e.labels[i], kIgnoreLabel);
    } else {
      EXPECT_EQ(e.labels[i], e.input_ids[i]);
    }
  }
  EXPECT_EQ(e.input_ids.back(), *t.eos_id());
  std::vector<int32_t> response(e.input_ids.begin() + static_cast<long>(prompt.size()), e.input_ids.end() - 1);
  EXPECT_EQ(t.decode(response), "2 + 3 = 5, so $\\boxed{5}$.");

  auto tight = tokenize_dataset(t, TwoSamples(), static_cast<int64_t>(prompt.size()) + 3, &stats);
  ASSERT_TRUE(tight.ok());
  EXPECT_EQ(tight.value()[0].input_ids.size(), prompt.size() + 3);
  EXPECT_EQ(stats.truncated, 1);
}

class NoSamples : public Dataset {
 public:
  int64_t size() const override { return 0; }
  Sample get(int64_t) const override { return {}; }
};

// Nothing left to train on is the user's input (exit 2), said in one line with the counts and the fix.
TEST(Examples, AllDroppedOrNoSamplesIsBadInputWithCountsAndTheFix) {
  auto tok = Tokenizer::from_file(LOFT_SOURCE_DIR "/models/demo/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const auto shortest = tok.value().encode(tok.value().apply_chat_template({{"user", "What is 2 + 3?"}}, true)).size();
  for (int64_t max_length : {int64_t{8}, static_cast<int64_t>(shortest), static_cast<int64_t>(shortest) + 1}) {
    SCOPED_TRACE(max_length);
    auto examples = tokenize_dataset(tok.value(), TwoSamples(), max_length, nullptr);
    ASSERT_FALSE(examples.ok());
    const std::string& m = examples.status().message();
    EXPECT_EQ(examples.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    const std::vector<std::string> parts = {"2 samples read, all 2 dropped",
                                            "dataset.max_length = " + std::to_string(max_length),
                                            "raise dataset.max_length to at least " + std::to_string(shortest + 2)};
    for (const auto& part : parts) {
      EXPECT_NE(m.find(part), std::string::npos) << "no '" << part << "' in: " << m;
    }
  }
  ASSERT_TRUE(tokenize_dataset(tok.value(), TwoSamples(), static_cast<int64_t>(shortest) + 2, nullptr).ok());
  auto none = tokenize_dataset(tok.value(), NoSamples(), 64, nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("no samples"), std::string::npos) << none.status().message();
}

}  // namespace
}  // namespace loft
