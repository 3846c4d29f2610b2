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

}  // namespace
}  // namespace loft
