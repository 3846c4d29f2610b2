// Pure C++ tokenizer checks: the byte table, UTF-8 repair, the two BPE merge loops against a naive reference, the
// chat template's text, and encode/decode on a tiny tokenizer.json written here.
#include <random>

#include <gtest/gtest.h>

#include "bpe.h"
#include "byte_level.h"
#include "loft/framework/tokenizer.h"
#include "regex_splitter.h"
#include "text_utf8.h"
#include "tokenizer_test_util.h"

namespace loft {
namespace {

using tokenizer_detail::BpeModel;
using tokenizer_detail::ByteLevelTable;
using tokenizer_detail::MergeMap;

TEST(TokenizerUnit, ByteLevelTableIsGpt2s) {
  const auto& t = ByteLevelTable::get();
  EXPECT_EQ(t.byte_to_utf8(' '), "Ġ");
  EXPECT_EQ(t.byte_to_utf8('\n'), "Ċ");
  EXPECT_EQ(t.byte_to_utf8('a'), "a");
  EXPECT_EQ(t.byte_to_utf8(0x00), "Ā");
  EXPECT_EQ(t.byte_to_utf8(0xAD), "Ń");  // soft hyphen is not printable: shifted
  EXPECT_EQ(t.bytes_to_token(" the"), "Ġthe");
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(t.token_to_bytes(t.bytes_to_token(one)), one) << b;
  }
  EXPECT_FALSE(t.token_to_bytes("<｜User｜>").has_value());
}

TEST(TokenizerUnit, LossyUtf8MatchesRust) {
  auto lossy = [](std::string_view s) {
    std::string out;
    tokenizer_detail::append_utf8_lossy(out, s);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("abc"), "abc");
  EXPECT_EQ(lossy("\xE2\x82" "A"), r + "A");         // truncated 3-byte sequence: one replacement
  EXPECT_EQ(lossy("\xC0\x80"), r + r);               // overlong lead byte
  EXPECT_EQ(lossy("\xED\xA0\x80"), r + r + r);       // surrogate
  EXPECT_EQ(lossy("\xF0\x9F\x99"), r);               // truncated at the end
  EXPECT_EQ(lossy("\xF0\x9F\x99\x82"), "🙂");
  EXPECT_EQ(lossy("\x80\xBF"), r + r);
  EXPECT_TRUE(tokenizer_detail::is_valid_utf8("é🙂"));
  EXPECT_FALSE(tokenizer_detail::is_valid_utf8("\xE2\x82"));
}

TEST(TokenizerUnit, NormalizationForms) {
  using tokenizer_detail::NormalizationForm;
  using tokenizer_detail::normalize_utf8;
  EXPECT_EQ(normalize_utf8("e\u0301", NormalizationForm::kNFC), "é");
  EXPECT_EQ(normalize_utf8("\u212B", NormalizationForm::kNFC), "Å");
  EXPECT_EQ(normalize_utf8("é", NormalizationForm::kNFD), "e\u0301");
  EXPECT_EQ(normalize_utf8("ﬁ", NormalizationForm::kNFC), "ﬁ");
  EXPECT_EQ(normalize_utf8("ﬁ", NormalizationForm::kNFKC), "fi");
}

// Issue 10 item 18: HF tokenizers' tables predate U+0899 (class 220 since Unicode 14) and the Dives Akuru vowel
// U+11938 (= U+11935 U+11930 since Unicode 13): HF leaves them as plain starters, where utf8proc alone would give
// "x\u0899\u0301", "\u00C4\u0899" and U+11938. Expected values are HF's (tokenizers 0.23.3 NFC().normalize_str);
// tokenizer.parity.normalization checks every code point against HF itself.
TEST(TokenizerUnit, NormalizationKeepsMarksHfTablesDoNotKnow) {
  using tokenizer_detail::hf_normalizes_as_plain_starter;
  using tokenizer_detail::NormalizationForm;
  using tokenizer_detail::normalize_utf8;
  EXPECT_EQ(normalize_utf8("x\u0301\u0899", NormalizationForm::kNFC), "x\u0301\u0899");
  EXPECT_EQ(normalize_utf8("A\u0899\u0308", NormalizationForm::kNFC), "A\u0899\u0308");
  EXPECT_EQ(normalize_utf8("e\u0301\u0899\u0301", NormalizationForm::kNFC), "\u00E9\u0899\u0301");
  EXPECT_EQ(normalize_utf8("a\u0899\u0301\u0316", NormalizationForm::kNFC), "a\u0899\u0316\u0301");
  EXPECT_EQ(normalize_utf8("\U00011935\U00011930", NormalizationForm::kNFC), "\U00011935\U00011930");
  EXPECT_EQ(normalize_utf8("\U00011938", NormalizationForm::kNFD), "\U00011938");
  EXPECT_TRUE(hf_normalizes_as_plain_starter(0x0899, NormalizationForm::kNFC));
  EXPECT_FALSE(hf_normalizes_as_plain_starter(0x0301, NormalizationForm::kNFC));
  EXPECT_FALSE(hf_normalizes_as_plain_starter(0x1E030, NormalizationForm::kNFC));  // compatibility only
  EXPECT_TRUE(hf_normalizes_as_plain_starter(0x1E030, NormalizationForm::kNFKC));
}

TEST(TokenizerUnit, RegexWhiteSpaceIsOniguruma) {
  using tokenizer_detail::onig_compatible_pattern;
  const std::string ws = "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
                         "\\x{205f}\\x{3000}";
  EXPECT_EQ(onig_compatible_pattern(R"(\s+(?!\S))"), "[" + ws + "]+(?![^" + ws + "])");
  EXPECT_EQ(onig_compatible_pattern(R"([^\s\p{L}])"), "[^" + ws + R"(\p{L}])");
  EXPECT_EQ(onig_compatible_pattern(R"(\\s[]\s])"), R"(\\s[])" + ws + "]");  // escaped backslash; ']' first
  EXPECT_EQ(onig_compatible_pattern(R"([[:alpha:]\s])"), "[[:alpha:]" + ws + "]");
  std::string error;
  auto re = tokenizer_detail::RegexSplitter::compile(R"(\s+)", &error);
  ASSERT_TRUE(re) << error;
  std::vector<std::pair<size_t, size_t>> matches;
  re->for_each_match("a \u180e\u3000b", [&](size_t b, size_t e) { matches.emplace_back(b, e); });
  // U+180E (3 bytes at 2..5) is not White_Space: two separate runs.
  EXPECT_EQ(matches, (std::vector<std::pair<size_t, size_t>>{{1, 2}, {5, 8}}));
}

// The textbook loop: merge the leftmost occurrence of the lowest-ranked pair until none is left.
std::vector<int32_t> naive_bpe(std::vector<int32_t> ids, const MergeMap& merges) {
  while (ids.size() > 1) {
    int best_rank = INT32_MAX, best = -1, new_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      if (auto* m = merges.find(ids[i], ids[i + 1]); m && m->rank < best_rank) {
        best_rank = m->rank;
        best = static_cast<int>(i);
        new_id = m->new_id;
      }
    }
    if (best < 0) break;
    ids[best] = new_id;
    ids.erase(ids.begin() + best + 1);
  }
  return ids;
}

TEST(TokenizerUnit, MergeLoopsAgreeWithNaiveBpe) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    // Alphabet 0..3; each merge joins two existing tokens into a new id, ranks in creation order.
    BpeModel model;
    std::vector<int32_t> tokens = {0, 1, 2, 3};
    for (int32_t rank = 0; rank < 40; ++rank) {
      const int32_t l = tokens[rng() % tokens.size()], r = tokens[rng() % tokens.size()];
      if (model.merges().find(l, r)) continue;
      const auto id = static_cast<int32_t>(tokens.size());
      model.merges().insert(l, r, MergeMap::Merge{rank, id});
      tokens.push_back(id);
    }
    for (int len : {0, 1, 2, 3, 5, 17, 48, 49, 120, 400}) {
      std::vector<int32_t> word(static_cast<size_t>(len));
      for (auto& x : word) x = static_cast<int32_t>(rng() % 4);
      auto a = word, b = word;
      model.merge_short(a);
      model.merge_long(b);
      const auto expected = naive_bpe(word, model.merges());
      EXPECT_EQ(a, expected) << "trial " << trial << " len " << len;
      EXPECT_EQ(b, expected) << "trial " << trial << " len " << len;
    }
  }
}

class TinyTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    testing_util::write_file(dir_ / "tokenizer.json", testing_util::tiny_tokenizer_json().dump());
    testing_util::write_file(dir_ / "tokenizer_config.json", testing_util::kTinyConfig);
    auto tok = Tokenizer::from_file(dir_ / "tokenizer.json");
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    tok_.emplace(std::move(tok).value());
  }
  void TearDown() override { testing_util::remove_tree(dir_); }
  std::filesystem::path dir_;
  std::optional<Tokenizer> tok_;
};

TEST_F(TinyTokenizer, EncodesWithMergesAndAddedTokens) {
  const auto ids = tok_->encode("hello the<think>");
  // "hello" -> "he"+"llo" merged (id 262); " the" -> "Ġthe" (258); "<think>" -> its added id.
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], *tok_->token_to_id("hello"));
  EXPECT_EQ(ids[1], *tok_->token_to_id("Ġthe"));
  EXPECT_EQ(ids[2], *tok_->token_to_id("<think>"));
  EXPECT_EQ(tok_->decode(ids), "hello the<think>");
  EXPECT_EQ(tok_->vocab_size(), 256 + 7 + 6);
  EXPECT_EQ(tok_->id_to_token(ids[1]), "Ġthe");
}

TEST_F(TinyTokenizer, SpecialIdsFromConfig) {
  EXPECT_EQ(tok_->bos_id(), tok_->token_to_id("<｜begin▁of▁sentence｜>"));
  EXPECT_EQ(tok_->eos_id(), tok_->token_to_id("<｜end▁of▁sentence｜>"));
  EXPECT_EQ(tok_->pad_id(), tok_->eos_id());
  EXPECT_TRUE(tok_->is_special(*tok_->eos_id()));
  EXPECT_FALSE(tok_->is_special(*tok_->token_to_id("<think>")));
  const auto ids = tok_->encode("<｜begin▁of▁sentence｜>hi<think>x<｜end▁of▁sentence｜>");
  EXPECT_EQ(tok_->decode(ids, /*skip_special_tokens=*/true), "hi<think>x");
}

TEST_F(TinyTokenizer, RoundTripsArbitraryUnicodeAndRepairsInvalidUtf8) {
  for (const std::string& s : std::vector<std::string>{"", " ", "a\r\n\tb  ", "解方程 x² = 4 🙂👍🏽", "don't I'M", std::string(5000, ' ') + "x",
                              std::string(100000, 'a')}) {
    EXPECT_EQ(tok_->decode(tok_->encode(s)), s);
  }
  EXPECT_EQ(tok_->decode(tok_->encode("a\xE2\x82" "b")), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(tok_->decode(tok_->encode("e\u0301")), "é");  // NFC
}

TEST_F(TinyTokenizer, LongWhitespaceRunDoesNotExhaustTheRegexStack) {
  const std::string spaces(1 << 20, ' ');
  EXPECT_EQ(tok_->decode(tok_->encode(spaces + "x" + spaces)), spaces + "x" + spaces);
}

TEST_F(TinyTokenizer, ChatTemplateText) {
  const std::string bos = "<｜begin▁of▁sentence｜>";
  EXPECT_EQ(tok_->apply_chat_template({{"user", "Q"}}, true), bos + "<｜User｜>Q<｜Assistant｜><think>\n");
  EXPECT_EQ(tok_->apply_chat_template({{"user", "Q"}}, false), bos + "<｜User｜>Q");
  EXPECT_EQ(tok_->apply_chat_template({{"system", "S1"}, {"user", "Q"}, {"system", "S2"},
                                       {"assistant", "<think>\nwork</think>\n\nA"}},
                                      false),
            bos + "S2<｜User｜>Q<｜Assistant｜>\n\nA<｜end▁of▁sentence｜>");
  EXPECT_EQ(tok_->apply_chat_template({{"user", "Q"}, {"tool", "o1"}, {"tool", "o2"}}, true),
            bos + "<｜User｜>Q<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>o1<｜tool▁output▁end｜>\n"
                  "<｜tool▁output▁begin｜>o2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>");
}

}  // namespace
}  // namespace loft
