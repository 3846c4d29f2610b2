// dataset/math and dataset/jsonl on bad input: each error names the file and line, says what is wrong and how to
// fix it, and reaches the caller as "plugin dataset/<name> failed to start: ...".
#include "dataset_test_support.h"

namespace loft::dataset_test {
namespace {

using Strings = std::vector<std::string>;

// Expects `message` to contain every one of `parts`.
void expect_mentions(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "no '" << part << "' in: " << message;
}

const std::string kGoodMath = R"({"problem": "p", "solution": "$\\boxed{1}$", "level": "Level 1", "type": "Algebra"})";
const std::string kGoodPair = R"({"prompt": "p", "response": "r"})";

class DatasetFaults : public DatasetPluginTest {};

TEST_F(DatasetFaults, MissingPathOptionSaysPath) {
  for (const char* name : {"math", "jsonl"}) {
    SCOPED_TRACE(name);
    expect_mentions(error(name, {}), {"plugin dataset/" + std::string(name) + " failed to start", "`path`",
                                      "[dataset]"});
    expect_mentions(error(name, {{"path", std::string()}}), {"`path` is empty"});
  }
}

TEST_F(DatasetFaults, MissingFileOrDirectoryNamesIt) {
  for (const char* name : {"math", "jsonl"}) {
    SCOPED_TRACE(name);
    const std::string missing = (dir_ / "nope.jsonl").string();
    expect_mentions(error(name, {{"path", missing}}), {missing + ": no such file", "`path`"});
    expect_mentions(error(name, {{"path", dir_.string()}}), {dir_.string() + " is a directory"});
  }
}

TEST_F(DatasetFaults, EmptyOrBlankFileSaysSo) {
  for (const char* name : {"math", "jsonl"}) {
    SCOPED_TRACE(name);
    const std::string empty = write("empty.jsonl", "");
    expect_mentions(error(name, {{"path", empty}}), {empty + ": the file has no records (it is empty)"});
    const std::string blank = write("blank.jsonl", "\n  \n\t\r\n");
    expect_mentions(error(name, {{"path", blank}}), {blank + ": the file has no records (it holds only blank lines)"});
  }
}

TEST_F(DatasetFaults, MalformedJsonNamesFileAndLine) {
  const std::string math = write("bad.jsonl", kGoodMath + "\n\n" + R"({"problem": "p", "solution": )" + "\n");
  expect_mentions(error("math", {{"path", math}}), {math + ":3:", "malformed JSON", "one complete JSON object"});

  const std::string unquoted = write("unquoted.jsonl", kGoodPair + "\n{prompt: 1}\n");
  expect_mentions(error("jsonl", {{"path", unquoted}}), {unquoted + ":2:", "malformed JSON"});

  const std::string two = write("two.jsonl", kGoodPair + kGoodPair + "\n");
  expect_mentions(error("jsonl", {{"path", two}}), {two + ":1:", "malformed JSON"});

  const std::string array = write("array.json", "[\n  " + kGoodPair + "\n]\n");
  expect_mentions(error("jsonl", {{"path", array}}), {array + ":1:", "looks like one JSON array", "jq -c"});

  const std::string bad_utf8 = write("utf8.jsonl", std::string(R"({"prompt": "caf)") + "\xC3\x28" +
                                                       R"(", "response": "r"})" + "\n");
  expect_mentions(error("jsonl", {{"path", bad_utf8}}), {bad_utf8 + ":1:", "malformed JSON"});
}

TEST_F(DatasetFaults, LineThatIsNotAnObject) {
  const std::string path = write("array.jsonl", kGoodMath + "\n[1, 2]\n");
  expect_mentions(error("math", {{"path", path}}), {path + ":2: expected a JSON object", "got an array"});
}

TEST_F(DatasetFaults, MissingFieldIsNamed) {
  const std::string math = write("math.jsonl", kGoodMath + "\n" + R"({"problem": "p", "level": "Level 1", "type": "Algebra"})");
  expect_mentions(error("math", {{"path", math}}),
                  {math + ":2: the record has no \"solution\" field", "\"problem\"", "dataset/jsonl"});
  const std::string level = write("level.jsonl", R"({"problem": "p", "solution": "s", "type": "Algebra"})");
  expect_mentions(error("math", {{"path", level}}), {level + ":1: the record has no \"level\" field"});

  const std::string pair = write("pair.jsonl", kGoodPair + "\n" + R"({"prompt": "p", "reply": "r"})");
  expect_mentions(error("jsonl", {{"path", pair}}),
                  {pair + ":2: the record has no \"response\" field", "\"reply\"", "response_field"});
  const std::string renamed = write("renamed.jsonl", kGoodPair);
  expect_mentions(error("jsonl", {{"path", renamed}, {"prompt_field", std::string("question")}}),
                  {renamed + ":1: the record has no \"question\" field"});
  expect_mentions(error("jsonl", {{"path", renamed}, {"format", std::string("messages")}}),
                  {renamed + ":1: the record has no \"messages\" field", "format = \"messages\""});
}

TEST_F(DatasetFaults, WrongFieldTypeIsNamed) {
  const std::string math = write("math.jsonl", R"({"problem": 5, "solution": "s", "level": "Level 1", "type": "Algebra"})");
  expect_mentions(error("math", {{"path", math}}), {math + ":1: field \"problem\" must be a string, got a number"});
  const std::string answer = write("answer.jsonl", R"({"problem": "p", "solution": "s", "level": "Level 1", "type": "Algebra", "answer": [1]})");
  expect_mentions(error("math", {{"path", answer}}), {answer + ":1: field \"answer\" must be a string, got an array"});
  const std::string pair = write("pair.jsonl", R"({"prompt": "p", "response": {"text": "r"}})");
  expect_mentions(error("jsonl", {{"path", pair}}), {pair + ":1: field \"response\" must be a string, got an object"});
}

TEST_F(DatasetFaults, BadMessagesAreExplained) {
  auto chat = [&](const std::string& name, const std::string& messages) {
    return write(name, kGoodPair + "\n" + R"({"messages": )" + messages + "}\n");
  };
  std::string p = chat("last.jsonl", R"([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "again"}])");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: the last message is from \"user\"", "must be from \"assistant\""});

  p = chat("role.jsonl", R"([{"role": "user", "content": "u"}, {"role": "tool", "content": "t"}, {"role": "assistant", "content": "a"}])");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: messages[1]: unknown role \"tool\"", "\"system\", \"user\" and \"assistant\""});

  p = chat("notlist.jsonl", R"("hello")");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: field \"messages\" must be an array", "got a string"});

  p = chat("short.jsonl", R"([{"role": "assistant", "content": "a"}])");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: \"messages\" has 1 message(s)"});

  p = chat("nocontent.jsonl", R"([{"role": "user"}, {"role": "assistant", "content": "a"}])");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: messages[0] has no \"content\" field; each message is"});

  p = chat("parts.jsonl", R"([{"role": "user", "content": [{"type": "text", "text": "u"}]}, {"role": "assistant", "content": "a"}])");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: messages[0]: \"content\" must be a string, got an array", "join the text"});

  p = chat("notobject.jsonl", R"(["user", "assistant"])");
  expect_mentions(error("jsonl", {{"path", p}}), {p + ":2: messages[0] must be an object"});
}

TEST_F(DatasetFaults, FilterThatLeavesNothingSaysWhichFilter) {
  const std::string path = write("math.jsonl", kGoodMath + "\n" +
                                                   R"({"problem": "q", "solution": "s", "level": "Level 2", "type": "Geometry"})" + "\n");
  expect_mentions(error("math", {{"path", path}, {"levels", Strings{"Level 5"}}}),
                  {path + ": no record is left after filtering", "levels = [\"Level 5\"] matches none",
                   "\"Level 1\" (1), \"Level 2\" (1)"});
  expect_mentions(error("math", {{"path", path}, {"types", Strings{"Precalculus", "Number Theory"}}}),
                  {"types = [\"Number Theory\", \"Precalculus\"] matches none", "\"Algebra\" (1), \"Geometry\" (1)"});
  expect_mentions(error("math", {{"path", path}, {"levels", Strings{"Level 1"}}, {"types", Strings{"Geometry"}}}),
                  {"levels = [\"Level 1\"] and types = [\"Geometry\"] each match some records but never the same one"});
}

TEST_F(DatasetFaults, FactoryRechecksFilterValuesAndFormat) {
  // The host checks these against the manifest's choices first; the factory still refuses them when called directly.
  const std::string math = write("math.jsonl", kGoodMath);
  expect_mentions(error("math", {{"path", math}, {"levels", Strings{"Level 9"}}}), {"levels: \"Level 9\" is not one of"});
  expect_mentions(error("math", {{"path", math}, {"types", Strings{"Calculus"}}}), {"types: \"Calculus\" is not one of"});
  const std::string pair = write("pair.jsonl", kGoodPair);
  expect_mentions(error("jsonl", {{"path", pair}, {"format", std::string("csv")}}), {"format = \"csv\""});
  expect_mentions(error("jsonl", {{"path", pair}, {"response_field", std::string("prompt")}}),
                  {"must be two different"});
}

}  // namespace
}  // namespace loft::dataset_test
