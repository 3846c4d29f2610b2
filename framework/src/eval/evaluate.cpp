// Generation + MATH grading for `loft eval` (eval.json, eval.jsonl), and one chat completion for `loft generate`.
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
  item.generation = generated;
  return item;
}

std::string eval_record_json(int64_t index, const EvalItem& item) {
  nlohmann::json j = {{"index", index},
                      {"level", item.level},
                      {"type", item.type},
                      {"prompt", item.prompt},
                      {"generation", item.generation},
                      {"predicted", item.predicted ? nlohmann::json(*item.predicted) : nlohmann::json(nullptr)},
                      {"reference", item.reference},
                      {"correct", item.correct}};
  // A generation may stop inside a multi-byte character: replace invalid UTF-8 rather than fail the whole eval.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

namespace {

// Greedy, stopping at the tokenizer's end-of-text token: what eval and generate both run.
GenerationConfig greedy_config(const Tokenizer& tok, int64_t max_new_tokens) {
  GenerationConfig gen;
  gen.max_new_tokens = max_new_tokens;
  if (auto eos = tok.eos_id()) gen.stop_token_ids.push_back(*eos);
  gen.pad_token_id = tok.pad_id().value_or(tok.eos_id().value_or(0));
  return gen;
}

// Generation errors come after the inputs were checked: a failure of the run, not bad input.
Status generation_failure(const Status& st) {
  return st.code() == StatusCode::kInvalidArgument ? Status::Internal(st.message()) : st;
}

std::string decode_text(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()), /*skip_special_tokens=*/true);
}

}  // namespace

StatusOr<std::vector<EvalItem>> generate_and_grade(Qwen2Model& model, const Tokenizer& tok, const Dataset& dataset,
                                                   int64_t limit, int64_t max_new_tokens, int64_t batch_size) {
  const GenerationConfig gen = greedy_config(tok, max_new_tokens);
  const int64_t n = limit > 0 ? std::min(limit, dataset.size()) : dataset.size();
  std::vector<EvalItem> items;
  for (int64_t start = 0; start < n; start += batch_size) {
    std::vector<Sample> samples;
    std::vector<std::string> prompt_texts;
    std::vector<std::vector<int64_t>> prompts;
    for (int64_t i = start; i < std::min(n, start + batch_size); ++i) {
      samples.push_back(dataset.get(i));
      std::vector<ChatMessage> prompt(samples.back().messages.begin(), samples.back().messages.end() - 1);
      prompt_texts.push_back(tok.apply_chat_template(prompt, /*add_generation_prompt=*/true));
      auto ids = tok.encode(prompt_texts.back());
      prompts.emplace_back(ids.begin(), ids.end());
    }
    auto out = generate(model, prompts, gen);
    if (!out.ok()) return generation_failure(out.status());
    for (size_t k = 0; k < samples.size(); ++k) {
      items.push_back(grade_generation(decode_text(tok, out.value()[k]), samples[k]));
      items.back().prompt = std::move(prompt_texts[k]);
    }
    spdlog::info("graded {}/{}", items.size(), n);
  }
  return items;
}

Status write_eval_files(const fs::path& run_dir, const std::vector<EvalItem>& items) {
  std::string records;
  for (size_t i = 0; i < items.size(); ++i) records += eval_record_json(static_cast<int64_t>(i), items[i]) + "\n";
  if (auto st = write_file_atomically(run_dir / "eval.jsonl", records); !st.ok()) return st;
  if (auto st = write_file_atomically(run_dir / "eval.json", summarize(items).to_json()); !st.ok()) return st;
  spdlog::info("wrote {} (summary) and {} (every problem)", (run_dir / "eval.json").string(),
               (run_dir / "eval.jsonl").string());
  return Status::Ok();
}

bool has_reference_answer(const Sample& sample) {
  auto answer = sample.fields.find("answer");
  if (answer != sample.fields.end() && !answer->second.empty()) return true;
  return !sample.messages.empty() && extract_boxed_answer(sample.messages.back().content).has_value();
}

Status eval_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const EvalOptions& options) {
  SessionOptions session_options;
  session_options.trained_run = options.run_dir;
  auto session = open_session(recipe, registry, session_options);
  if (!session.ok()) return session.status();
  Session& s = session.value();
  if (!s.trained_file.empty()) spdlog::info("evaluating the tensors trained in {}", s.trained_file.string());
  // The held-out [eval.dataset] when the recipe has one.
  auto held_out = create_eval_dataset(recipe, registry, *s.components.context);
  if (!held_out.ok()) return held_out.status();
  const Dataset& dataset = held_out.value() ? *held_out.value() : *s.components.dataset;
  if (held_out.value()) spdlog::info("evaluating on [eval.dataset] (dataset/{})", recipe.plugin_types.at(kEvalDatasetSection));
  auto items = generate_and_grade(*s.model, *s.tokenizer, dataset, options.limit, options.max_new_tokens,
                                  options.batch_size);
  if (!items.ok()) return items.status();
  std::printf("%s", summarize(items.value()).table().c_str());
  if (!options.run_dir.empty()) return write_eval_files(options.run_dir, items.value());
  return Status::Ok();
}

StatusOr<std::string> complete_prompt(const ResolvedRecipe& recipe, PluginRegistry& registry,
                                      const CompletionOptions& options) {
  if (options.prompt.empty()) {
    return Status::InvalidArgument("loft generate: --prompt is empty; give the text of the user message");
  }
  if (options.max_new_tokens < 1) {
    return Status::InvalidArgument(
        fmt::format("loft generate: --max-new-tokens must be >= 1, got {}", options.max_new_tokens));
  }
  SessionOptions session_options;
  session_options.trained_run = options.run_dir;
  auto session = open_session(recipe, registry, session_options);
  if (!session.ok()) return session.status();
  Session& s = session.value();
  if (!s.trained_file.empty()) spdlog::info("generating with the tensors trained in {}", s.trained_file.string());
  const Tokenizer& tok = *s.tokenizer;
  const auto ids = tok.encode(tok.apply_chat_template({ChatMessage{"user", options.prompt}}, /*add_generation_prompt=*/true));
  auto out = generate(*s.model, {std::vector<int64_t>(ids.begin(), ids.end())}, greedy_config(tok, options.max_new_tokens));
  if (!out.ok()) return generation_failure(out.status());
  return decode_text(tok, out.value()[0]);
}

}  // namespace loft
