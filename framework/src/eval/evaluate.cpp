// Generation + MATH grading for `loft eval`.
#include "loft/framework/evaluate.h"


#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "loft/framework/atomic_file.h"
#include "loft/framework/generation.h"
#include "loft/framework/math_answer.h"
#include "loft/framework/run.h"
#include "loft/framework/tokenizer.h"
#include "loft/framework/trainer.h"

namespace fs = std::filesystem;

namespace loft {

EvalItem grade_generation(const std::string& generated, const Sample& sample) {
  EvalItem item;
  auto field = [&](const char* key) {
    auto it = sample.fields.find(key);
    return it == sample.fields.end() ? std::string() : it->second;
  };
  item.level = field("level").empty() ? "(none)" : field("level");
  item.type = field("type").empty() ? "(none)" : field("type");
  item.reference = field("answer");
  if (item.reference.empty() && !sample.messages.empty()) {
    item.reference = extract_boxed_answer(sample.messages.back().content).value_or("");
  }
  item.predicted = extract_boxed_answer(generated);
  item.correct = item.predicted && !item.reference.empty() && math_answers_match(*item.predicted, item.reference);
  return item;
}

EvalSummary summarize(const std::vector<EvalItem>& items) {
  EvalSummary s;
  for (const auto& it : items) {
    ++s.total;
    s.correct += it.correct;
    auto& level = s.by_level[it.level];
    auto& type = s.by_type[it.type];
    level.first += it.correct;
    type.first += it.correct;
    ++level.second;
    ++type.second;
  }
  return s;
}

std::string EvalSummary::table() const {
  std::string out = fmt::format("accuracy {}/{} = {:.1f}%\n", correct, total, 100.0 * accuracy());
  for (const auto* group : {&by_level, &by_type}) {
    for (const auto& [name, ct] : *group) {
      out += fmt::format("  {:<28} {:>5}/{:<5} {:5.1f}%\n", name, ct.first, ct.second,
                         ct.second ? 100.0 * static_cast<double>(ct.first) / static_cast<double>(ct.second) : 0.0);
    }
  }
  return out;
}

std::string EvalSummary::to_json() const {
  nlohmann::json j = {{"total", total}, {"correct", correct}, {"accuracy", accuracy()}};
  for (const auto& [name, ct] : by_level) j["by_level"][name] = {{"correct", ct.first}, {"total", ct.second}};
  for (const auto& [name, ct] : by_type) j["by_type"][name] = {{"correct", ct.first}, {"total", ct.second}};
  return j.dump(2) + "\n";
}

Status eval_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const EvalOptions& options) {
  SessionOptions session_options;
  session_options.trained_run = options.run_dir;
  auto session = open_session(recipe, registry, session_options);
  if (!session.ok()) return session.status();
  Session& s = session.value();
  auto& c = s.components;
  auto& lm = *s.model;
  if (!s.trained_file.empty()) spdlog::info("evaluating the tensors trained in {}", s.trained_file.string());
  const Tokenizer& tok = *s.tokenizer;
  GenerationConfig gen;
  gen.max_new_tokens = options.max_new_tokens;
  if (auto eos = tok.eos_id()) gen.stop_token_ids.push_back(*eos);
  gen.pad_token_id = tok.pad_id().value_or(tok.eos_id().value_or(0));
  const int64_t n = options.limit > 0 ? std::min(options.limit, c.dataset->size()) : c.dataset->size();
  std::vector<EvalItem> items;
  for (int64_t start = 0; start < n; start += options.batch_size) {
    std::vector<Sample> samples;
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t i = start; i < std::min(n, start + options.batch_size); ++i) {
      samples.push_back(c.dataset->get(i));
      std::vector<ChatMessage> prompt(samples.back().messages.begin(), samples.back().messages.end() - 1);
      auto ids = tok.encode(tok.apply_chat_template(prompt, /*add_generation_prompt=*/true));
      prompts.emplace_back(ids.begin(), ids.end());
    }
    auto out = generate(lm, prompts, gen);
    if (!out.ok()) return out.status().code() == StatusCode::kInvalidArgument ? Status::Internal(out.status().message())
                                                                               : out.status();
    for (size_t k = 0; k < samples.size(); ++k) {
      const auto& ids = out.value()[k];
      items.push_back(grade_generation(tok.decode(std::vector<int32_t>(ids.begin(), ids.end()), true), samples[k]));
    }
    spdlog::info("graded {}/{}", items.size(), n);
  }
  const EvalSummary summary = summarize(items);
  std::printf("%s", summary.table().c_str());
  if (!options.run_dir.empty()) {
    if (auto st = write_file_atomically(options.run_dir / "eval.json", summary.to_json()); !st.ok()) return st;
    spdlog::info("wrote {}", (options.run_dir / "eval.json").string());
  }
  return Status::Ok();
}

}  // namespace loft
