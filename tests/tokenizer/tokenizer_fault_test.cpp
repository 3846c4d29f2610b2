// Bad tokenizer files: every refusal is a Status whose one-line message names the file and the problem.
#include <gtest/gtest.h>

#include "loft/framework/tokenizer.h"
#include "tokenizer_test_util.h"

namespace loft {
namespace {

using nlohmann::json;

class TokenizerFault : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = dir_ / "tokenizer.json";
  }
  void TearDown() override { testing_util::remove_tree(dir_); }

  // Loads `text` as tokenizer.json and returns the error message (failing the test if it loads).
  std::string error_for(const std::string& text) {
    testing_util::write_file(path_, text);
    auto tok = Tokenizer::from_file(path_);
    EXPECT_FALSE(tok.ok()) << "loaded although it should not";
    if (tok.ok()) return "";
    const std::string& m = tok.status().message();
    EXPECT_EQ(m.find('\n'), std::string::npos) << "not one line: " << m;
    return m;
  }
  std::string error_for(const json& j) { return error_for(std::string(j.dump())); }

  std::filesystem::path dir_, path_;
};

#define EXPECT_HAS(message, part) EXPECT_NE((message).find(part), std::string::npos) << (message)

TEST_F(TokenizerFault, MissingFile) {
  auto tok = Tokenizer::from_file(dir_ / "nope" / "tokenizer.json");
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kNotFound);
  EXPECT_HAS(tok.status().message(), (dir_ / "nope" / "tokenizer.json").string());
}

TEST_F(TokenizerFault, MalformedJson) {
  const std::string m = error_for(std::string(R"({"model": {"type": "BPE", "vocab": {"a": 0,}})"));
  EXPECT_HAS(m, path_.string() + ": malformed JSON");
  EXPECT_HAS(m, "column");
}

TEST_F(TokenizerFault, MissingModel) {
  auto j = testing_util::tiny_tokenizer_json();
  j.erase("model");
  EXPECT_HAS(error_for(j), path_.string() + ": no \"model\" object");
}

TEST_F(TokenizerFault, UnsupportedModelType) {
  auto j = testing_util::tiny_tokenizer_json();
  j["model"]["type"] = "WordPiece";
  EXPECT_HAS(error_for(j), "unsupported model type \"WordPiece\"");
}

TEST_F(TokenizerFault, MergeNamingUnknownToken) {
  auto j = testing_util::tiny_tokenizer_json();
  j["model"]["merges"].push_back(json::array({"Ġth", "zzz"}));
  const std::string m = error_for(j);
  EXPECT_HAS(m, path_.string());
  EXPECT_HAS(m, "merge #7 (\"Ġth\" \"zzz\") names \"zzz\", which is not in the vocab");
}

TEST_F(TokenizerFault, MergeMakingUnknownToken) {
  auto j = testing_util::tiny_tokenizer_json();
  j["model"]["merges"].push_back("a b");  // "ab" is not in the vocab
  EXPECT_HAS(error_for(j), "makes \"ab\", which is not in the vocab");
}

TEST_F(TokenizerFault, MalformedMerge) {
  auto j = testing_util::tiny_tokenizer_json();
  j["model"]["merges"].push_back("nospace");
  EXPECT_HAS(error_for(j), "merge #7 \"nospace\" is not \"left right\"");
  j["model"]["merges"].back() = 42;
  EXPECT_HAS(error_for(j), "must be \"left right\" or [left, right]");
}

TEST_F(TokenizerFault, BadVocabId) {
  auto j = testing_util::tiny_tokenizer_json();
  j["model"]["vocab"]["x"] = -3;
  EXPECT_HAS(error_for(j), "vocab entry \"x\" has id -3");
}

TEST_F(TokenizerFault, UnsupportedPipelineParts) {
  auto j = testing_util::tiny_tokenizer_json();
  j["normalizer"] = json{{"type", "Lowercase"}};
  EXPECT_HAS(error_for(j), "unsupported normalizer type \"Lowercase\"");

  j = testing_util::tiny_tokenizer_json();
  j["pre_tokenizer"] = json{{"type", "Whitespace"}};
  EXPECT_HAS(error_for(j), "unsupported pre_tokenizer type \"Whitespace\"");

  j = testing_util::tiny_tokenizer_json();
  j["pre_tokenizer"] = j["pre_tokenizer"]["pretokenizers"][0];  // Split alone: not byte-level
  EXPECT_HAS(error_for(j), "no ByteLevel step");

  j = testing_util::tiny_tokenizer_json();
  j["decoder"] = json{{"type", "WordPiece"}};
  EXPECT_HAS(error_for(j), "unsupported decoder type \"WordPiece\"");

  j = testing_util::tiny_tokenizer_json();
  j["model"]["dropout"] = 0.1;
  EXPECT_HAS(error_for(j), "dropout is not supported");
}

TEST_F(TokenizerFault, BadRegex) {
  auto j = testing_util::tiny_tokenizer_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_HAS(error_for(j), "Split regex \"(unclosed\" does not compile");
}

TEST_F(TokenizerFault, AddedTokenWithoutContent) {
  auto j = testing_util::tiny_tokenizer_json();
  j["added_tokens"].push_back(json{{"id", 999}});
  EXPECT_HAS(error_for(j), "added_tokens[6] has no \"content\" string");
}

TEST_F(TokenizerFault, MalformedConfigNamesTheConfigFile) {
  testing_util::write_file(dir_ / "tokenizer_config.json", "{\"bos_token\": ");
  const std::string m = error_for(testing_util::tiny_tokenizer_json().dump());
  EXPECT_HAS(m, (dir_ / "tokenizer_config.json").string() + ": malformed JSON");
}

}  // namespace
}  // namespace loft
