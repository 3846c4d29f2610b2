// dataset/math and dataset/jsonl on good input: messages, fields, answers, filters, limits, shapes, and reading
// through a recipe as a run does.
#include <atomic>
#include <thread>

#include "dataset_test_support.h"
#include "loft/framework/recipe.h"

namespace loft::dataset_test {
namespace {

using Strings = std::vector<std::string>;
const std::string kInstruction = "Please reason step by step, and put your final answer within \\boxed{}.";

// JSON escapes: "\\frac" in the file is \frac in the text; "\u00e9" is é.
const std::string kMath =
    R"({"problem": "What is $\\frac{1}{2} + \\frac{1}{3}$?", "solution": "Add: $\\frac{1}{2}+\\frac{1}{3} = \\boxed{\\frac{5}{6}}$.", "level": "Level 1", "type": "Algebra"})"
    "\n"
    R"({"problem": "Find the set $\\{x : x^2 = 1\\}$.", "solution": "Try $\\boxed{1}$? No: $x = \\pm 1$, so $\\boxed{\\{-1, 1\\}}$.", "level": "Level 3", "type": "Intermediate Algebra", "unique_id": "test/intermediate_algebra/7.json"})"
    "\n\n   \n"
    R"({"problem": "Café prices: π ≈ 3.14, 日本. Halve $1$.", "solution": "Half is $\\boxed{\\frac{1}{2}}$ \u00e9.", "level": "Level 5", "type": "Prealgebra"})"
    "\n"
    R"({"problem": "Count the edges of a cube.", "solution": "A cube has 12 edges.", "level": "Level 2", "type": "Geometry", "answer": "12"})"
    "\n"
    R"({"problem": "Is $n^2 - n$ even?", "solution": "Always: $\\boxed{\\text{yes}}$", "level": "Level 3", "type": "Number Theory"})"
    "\n";

TEST(DatasetManifests, MathInstructionMatchesSynthetic) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  auto instruction = [&](const std::string& name) -> std::string {
    const auto* m = registry.find("dataset", name);
    if (!m) return "dataset/" + name + " missing";
    const auto* spec = find_option(m->options, "instruction");
    return spec && spec->default_value ? std::get<std::string>(*spec->default_value) : "no default";
  };
  EXPECT_EQ(instruction("math"), kInstruction);
  EXPECT_EQ(instruction("math"), instruction("synthetic"));
  for (const char* name : {"math", "jsonl"}) {
    const auto* m = registry.find("dataset", name);
    ASSERT_NE(m, nullptr) << name;
    const auto* path = find_option(m->options, "path");
    ASSERT_NE(path, nullptr) << name;
    EXPECT_FALSE(path->default_value.has_value()) << name << ": `path` must be required";
  }
}

class MathDataset : public DatasetPluginTest {};

TEST_F(MathDataset, ReadsMessagesAndFieldsUntouched) {
  auto d = load("math", {{"path", write("train.jsonl", kMath)}});
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), 5);  // blank lines skipped
  auto s = d->get(0);
  ASSERT_EQ(s.messages.size(), 2u);
  EXPECT_EQ(s.messages[0].role, "user");
  EXPECT_EQ(s.messages[0].content, "What is $\\frac{1}{2} + \\frac{1}{3}$?\n" + kInstruction);
  EXPECT_EQ(s.messages[1].role, "assistant");
  EXPECT_EQ(s.messages[1].content, "Add: $\\frac{1}{2}+\\frac{1}{3} = \\boxed{\\frac{5}{6}}$.");
  EXPECT_EQ(s.fields.at("problem"), "What is $\\frac{1}{2} + \\frac{1}{3}$?");
  EXPECT_EQ(s.fields.at("solution"), s.messages[1].content);
  EXPECT_EQ(s.fields.at("level"), "Level 1");
  EXPECT_EQ(s.fields.at("type"), "Algebra");
  EXPECT_EQ(s.fields.at("answer"), "\\frac{5}{6}");

  auto unicode = d->get(2);
  EXPECT_EQ(unicode.fields.at("problem"), "Café prices: π ≈ 3.14, 日本. Halve $1$.");
  EXPECT_EQ(unicode.messages[1].content, "Half is $\\boxed{\\frac{1}{2}}$ é.");
  EXPECT_EQ(unicode.fields.at("answer"), "\\frac{1}{2}");
}

TEST_F(MathDataset, AnswerIsTheRecordsOwnOrTheLastBoxed) {
  auto d = load("math", {{"path", write("train.jsonl", kMath)}});
  ASSERT_TRUE(d);
  auto set = d->get(1);
  EXPECT_EQ(set.fields.at("answer"), "\\{-1, 1\\}");  // the last \boxed, escaped braces kept whole
  EXPECT_EQ(set.fields.at("unique_id"), "test/intermediate_algebra/7.json");  // extra fields kept
  EXPECT_EQ(d->get(3).fields.at("answer"), "12");  // the record's own, though the solution has no \boxed
  EXPECT_EQ(d->get(4).fields.at("answer"), "\\text{yes}");

  auto none = load("math", {{"path", write("nobox.jsonl", R"({"problem": "p", "solution": "no box here", )"
                                                          R"("level": "Level 1", "type": "Algebra"})")}});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->get(0).fields.count("answer"), 0u);
}

TEST_F(MathDataset, FiltersByLevelAndType) {
  const std::string path = write("train.jsonl", kMath);
  auto level3 = load("math", {{"path", path}, {"levels", Strings{"Level 3"}}});
  ASSERT_TRUE(level3);
  ASSERT_EQ(level3->size(), 2);
  EXPECT_EQ(level3->get(0).fields.at("type"), "Intermediate Algebra");
  EXPECT_EQ(level3->get(1).fields.at("type"), "Number Theory");

  auto typed = load("math", {{"path", path}, {"types", Strings{"Geometry", "Algebra"}}});
  ASSERT_TRUE(typed);
  ASSERT_EQ(typed->size(), 2);
  EXPECT_EQ(typed->get(0).fields.at("level"), "Level 1");  // file order, not filter order
  EXPECT_EQ(typed->get(1).fields.at("level"), "Level 2");

  auto both = load("math", {{"path", path}, {"levels", Strings{"Level 3", "Level 5"}},
                            {"types", Strings{"Number Theory", "Prealgebra"}}});
  ASSERT_TRUE(both);
  ASSERT_EQ(both->size(), 2);
  EXPECT_EQ(both->get(0).fields.at("type"), "Prealgebra");
  EXPECT_EQ(both->get(1).fields.at("type"), "Number Theory");
}

TEST_F(MathDataset, LimitAppliesAfterFilteringInFileOrder) {
  const std::string path = write("train.jsonl", kMath);
  auto first2 = load("math", {{"path", path}, {"limit", int64_t{2}}});
  ASSERT_TRUE(first2);
  ASSERT_EQ(first2->size(), 2);
  EXPECT_EQ(first2->get(1).fields.at("level"), "Level 3");

  auto filtered = load("math", {{"path", path}, {"levels", Strings{"Level 3", "Level 2"}}, {"limit", int64_t{2}}});
  ASSERT_TRUE(filtered);
  ASSERT_EQ(filtered->size(), 2);
  EXPECT_EQ(filtered->get(0).fields.at("level"), "Level 3");
  EXPECT_EQ(filtered->get(1).fields.at("level"), "Level 2");

  auto more_than_there = load("math", {{"path", path}, {"limit", int64_t{100}}});
  ASSERT_TRUE(more_than_there);
  EXPECT_EQ(more_than_there->size(), 5);
}

TEST_F(MathDataset, InstructionIsConfigurable) {
  const std::string path = write("train.jsonl", kMath);
  auto none = load("math", {{"path", path}, {"instruction", std::string()}});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->get(0).messages[0].content, "What is $\\frac{1}{2} + \\frac{1}{3}$?");
  auto custom = load("math", {{"path", path}, {"instruction", std::string("Answer in \\boxed{}.")}});
  ASSERT_TRUE(custom);
  EXPECT_EQ(custom->get(0).messages[0].content, "What is $\\frac{1}{2} + \\frac{1}{3}$?\nAnswer in \\boxed{}.");
}

TEST_F(MathDataset, AcceptsCrlfByteOrderMarkAndMath500Spelling) {
  // MATH-500 spells the type "subject" and the level as an integer.
  const std::string text = "\xEF\xBB\xBF" R"({"problem": "p1", "solution": "$\\boxed{3}$", "level": "Level 4", "type": "Precalculus"})"
                           "\r\n\r\n"
                           R"({"problem": "p2", "solution": "s", "answer": "7", "subject": "Geometry", "level": 2, "unique_id": "u"})"
                           "\r\n";
  auto d = load("math", {{"path", write("crlf.jsonl", text)}, {"levels", Strings{"Level 2", "Level 4"}}});
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(d->get(0).fields.at("problem"), "p1");
  EXPECT_EQ(d->get(0).fields.at("answer"), "3");
  EXPECT_EQ(d->get(1).fields.at("level"), "Level 2");
  EXPECT_EQ(d->get(1).fields.at("type"), "Geometry");
  EXPECT_EQ(d->get(1).fields.at("answer"), "7");
  EXPECT_EQ(d->get(1).messages[1].content, "s");
}

TEST_F(MathDataset, GetIsDeterministicThreadSafeAndBounded) {
  auto d = load("math", {{"path", write("train.jsonl", kMath)}});
  ASSERT_TRUE(d);
  std::vector<Sample> reference;
  for (int64_t i = 0; i < d->size(); ++i) reference.push_back(d->get(i));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        for (int64_t i = 0; i < d->size(); ++i) {
          auto s = d->get(i);
          if (s.messages[1].content != reference[i].messages[1].content || s.fields != reference[i].fields) {
            ++mismatches;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_THROW(d->get(d->size()), std::exception);
  EXPECT_THROW(d->get(-1), std::exception);
}

TEST_F(MathDataset, RecipeResolvesRelativePathAndChecksChoices) {
  // As `loft run` does: the recipe's [dataset] validated against the manifest, `path` made absolute against the
  // recipe's folder, then the factory.
  write("train.jsonl", kMath);
  const std::string recipe = write("recipe.toml", "[model]\npath = \"model\"\n\n[peft]\ntype = \"full\"\n\n"
                                                  "[dataset]\ntype = \"math\"\npath = \"train.jsonl\"\n"
                                                  "levels = [\"Level 3\"]\nlimit = 1\n");
  auto parsed = parse_recipe_file(recipe);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ResolvedRecipe resolved;
  auto problems = validate_recipe(parsed.value(), registry_, &resolved);
  for (const auto& p : problems) ADD_FAILURE() << p.str();
  ASSERT_TRUE(problems.empty());
  ASSERT_EQ(resolved.plugin_types.at("dataset"), "math");
  EXPECT_EQ(resolved.sections.at("dataset").string("path"), (dir_ / "train.jsonl").string());
  auto d = registry_.create_dataset("math", ctx_, resolved.sections.at("dataset"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d.value()->size(), 1);
  EXPECT_EQ(d.value()->get(0).fields.at("type"), "Intermediate Algebra");

  auto bad = parse_recipe_text("[model]\npath = \"m\"\n[peft]\ntype = \"full\"\n[dataset]\ntype = \"math\"\n"
                               "path = \"x.jsonl\"\nlevels = [\"Level 9\"]\ntypes = [\"Algebra\", \"Calculus\"]\n",
                               (dir_ / "bad.toml").string());
  ASSERT_TRUE(bad.ok());
  std::string all;
  for (const auto& p : validate_recipe(bad.value(), registry_, nullptr)) all += p.str() + "\n";
  EXPECT_NE(all.find("Level 9"), std::string::npos) << all;
  EXPECT_NE(all.find("Calculus"), std::string::npos) << all;
}

class JsonlDataset : public DatasetPluginTest {};

TEST_F(JsonlDataset, PromptResponsePairs) {
  const std::string text = R"({"prompt": "Simplify $\\sqrt{8}$. Größe 日本", "response": "$2\\sqrt{2}$ \u2713", "id": 7, "ok": true})"
                           "\n\n"
                           R"({"prompt": "Say {hi}", "response": "{hi}", "note": null})" "\n";
  auto d = load("jsonl", {{"path", write("pairs.jsonl", text)}});
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), 2);
  auto s = d->get(0);
  ASSERT_EQ(s.messages.size(), 2u);
  EXPECT_EQ(s.messages[0].role, "user");
  EXPECT_EQ(s.messages[0].content, "Simplify $\\sqrt{8}$. Größe 日本");  // no instruction added
  EXPECT_EQ(s.messages[1].role, "assistant");
  EXPECT_EQ(s.messages[1].content, "$2\\sqrt{2}$ ✓");
  EXPECT_EQ(s.fields.at("prompt"), s.messages[0].content);
  EXPECT_EQ(s.fields.at("id"), "7");
  EXPECT_EQ(s.fields.at("ok"), "true");
  EXPECT_EQ(d->get(1).fields.count("note"), 0u);
  EXPECT_THROW(d->get(2), std::exception);
}

TEST_F(JsonlDataset, ConfigurableFieldNames) {
  const std::string text = R"({"question": "1+1?", "answer": "2"})" "\n";
  auto d = load("jsonl", {{"path", write("qa.jsonl", text)},
                          {"prompt_field", std::string("question")},
                          {"response_field", std::string("answer")},
                          {"format", std::string("prompt_response")}});
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), 1);
  EXPECT_EQ(d->get(0).messages[0].content, "1+1?");
  EXPECT_EQ(d->get(0).messages[1].content, "2");
}

TEST_F(JsonlDataset, ChatMessages) {
  const std::string text =
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, )"
      R"({"role": "assistant", "content": "Hello."}, {"role": "user", "content": "$\\frac{1}{2}$?"}, )"
      R"({"role": "assistant", "content": "One half.", "name": "bot"}], "source": "chat"})" "\n";
  auto d = load("jsonl", {{"path", write("chat.jsonl", text)}, {"format", std::string("messages")}});
  ASSERT_TRUE(d);
  auto s = d->get(0);
  ASSERT_EQ(s.messages.size(), 5u);
  EXPECT_EQ(s.messages[0].role, "system");
  EXPECT_EQ(s.messages[3].content, "$\\frac{1}{2}$?");
  EXPECT_EQ(s.messages[4].role, "assistant");
  EXPECT_EQ(s.messages[4].content, "One half.");
  EXPECT_EQ(s.fields.at("source"), "chat");
  EXPECT_EQ(s.fields.count("messages"), 0u);
}

TEST_F(JsonlDataset, AutoPicksTheShapePerRecordAndSystemIsPrepended) {
  const std::string text =
      R"({"prompt": "p", "response": "r"})" "\n"
      R"({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]})" "\n"
      R"({"messages": [{"role": "system", "content": "own"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]})" "\n";
  const std::string path = write("mixed.jsonl", text);
  auto plain = load("jsonl", {{"path", path}});
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->size(), 3);
  EXPECT_EQ(plain->get(0).messages.size(), 2u);
  EXPECT_EQ(plain->get(1).messages.size(), 2u);
  EXPECT_EQ(plain->get(1).messages[0].content, "u");

  auto with_system = load("jsonl", {{"path", path}, {"system", std::string("You are a tutor.")}});
  ASSERT_TRUE(with_system);
  for (int64_t i = 0; i < 2; ++i) {
    auto s = with_system->get(i);
    ASSERT_EQ(s.messages.size(), 3u);
    EXPECT_EQ(s.messages[0].role, "system");
    EXPECT_EQ(s.messages[0].content, "You are a tutor.");
    EXPECT_EQ(s.messages[1].role, "user");
  }
  auto own = with_system->get(2);  // a conversation's own system message is kept, not doubled
  ASSERT_EQ(own.messages.size(), 3u);
  EXPECT_EQ(own.messages[0].content, "own");
}

TEST_F(JsonlDataset, LimitKeepsTheFirstRecordsAndSkipsTheRest) {
  // Line 3 is malformed, but a limit of 2 never reads it.
  const std::string text = R"({"prompt": "a", "response": "1"})" "\n"
                           R"({"prompt": "b", "response": "2"})" "\n"
                           "{not json\n";
  auto d = load("jsonl", {{"path", write("limit.jsonl", text)}, {"limit", int64_t{2}}});
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(d->get(1).messages[0].content, "b");
}

}  // namespace
}  // namespace loft::dataset_test
