// Subcommands of `loft`: option parsing (Boost.Program_options) and the glue between recipe, registry and run.
#include "loft/framework/files.h"
#include "commands.h"

#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "loft/framework/ablate.h"
#include "loft/framework/evaluate.h"
#include "loft/framework/examples.h"
#include "loft/framework/host.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/memory_plan.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "loft/framework/run.h"
#include "loft/framework/stop_signals.h"
#include "loft/framework/tokenizer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace loft::cli {

namespace {

struct Common {
  std::vector<std::string> plugin_paths;
  std::string log_level = "info";
  std::vector<std::string> positional;
  bool help = false;
};

po::options_description common_options(Common& c) {
  po::options_description d("options");
  d.add_options()("help,h", po::bool_switch(&c.help), "describe this command")(
      "plugin-path", po::value(&c.plugin_paths)->composing(),
      "also look for plugins below this folder (repeatable; searched before $LOFT_PLUGIN_PATH and the built-in folder)")(
      "log-level", po::value(&c.log_level)->default_value("info"), "trace, debug, info, warn or error");
  return d;
}

// Parses argv for one command; returns false (after printing why) on a usage error.
bool parse(const std::vector<std::string>& args, po::options_description& visible, Common& c, const char* usage) {
  po::options_description all;
  all.add(visible);
  all.add_options()("args", po::value(&c.positional)->composing(), "");
  po::positional_options_description pos;
  pos.add("args", -1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "loft: %s\nusage: %s\n", e.what(), usage);
    return false;
  }
  if (c.help) {
    std::cout << "usage: " << usage << "\n\n" << visible << "\n";
  }
  setup_logging(c.log_level);
  return true;
}

std::vector<fs::path> to_paths(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

bool is_override(const std::string& arg) { return arg.find('=') != std::string::npos; }

// Parses a recipe, applies overrides, validates it and (unless `inputs` is null) checks the files and plugins it
// names; prints each error on one line. Returns false on error.
bool load_recipe(const std::string& file, const std::vector<std::string>& overrides, PluginRegistry& registry,
                 ResolvedRecipe* resolved, const RecipeInputChecks* inputs) {
  auto recipe = parse_recipe_file(file);
  if (!recipe.ok()) {
    std::fprintf(stderr, "%s\n", recipe.status().message().c_str());
    return false;
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    if (auto st = apply_override(recipe.value(), overrides[i], static_cast<int>(i + 1)); !st.ok()) {
      std::fprintf(stderr, "loft: %s\n", st.message().c_str());
      return false;
    }
  }
  ResolvedRecipe valid;
  auto diags = validate_recipe(recipe.value(), registry, &valid);
  // The files and plugins are checked only once the recipe itself is valid: their keys are then known to be right.
  if (diags.empty() && inputs) diags = check_recipe_inputs(recipe.value(), valid, registry, *inputs);
  for (const auto& d : diags) std::fprintf(stderr, "%s\n", d.str().c_str());
  if (diags.size() > 1) std::fprintf(stderr, "%s: %zu errors\n", file.c_str(), diags.size());
  if (diags.empty() && resolved) *resolved = std::move(valid);
  return diags.empty();
}

// For commands on one recipe: the single recipe argument with its overrides, validated against the plugins
// found. Returns false (after printing why) on a usage or recipe error.
bool load_one_recipe(const char* command, const Common& c, const char* usage, PluginRegistry& registry,
                     ResolvedRecipe* recipe, const RecipeInputChecks& inputs = {}) {
  std::vector<std::string> recipes, overrides;
  for (const auto& a : c.positional) (is_override(a) ? overrides : recipes).push_back(a);
  if (recipes.size() != 1) {
    std::fprintf(stderr, "loft %s: name exactly one recipe\nusage: %s\n", command, usage);
    return false;
  }
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  return load_recipe(recipes[0], overrides, registry, recipe, &inputs);
}

}  // namespace

int cmd_validate(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  bool schema_only = false;
  opts.add_options()("schema-only", po::bool_switch(&schema_only),
                     "check the recipe against the schemas only, not the files and plugins it names (model.path, "
                     "dataset files, plugin libraries): for a recipe meant for another machine");
  const char* usage = "loft validate RECIPE... [section.key=value ...] [--schema-only] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  std::vector<std::string> recipes, overrides;
  for (const auto& a : c.positional) (is_override(a) ? overrides : recipes).push_back(a);
  if (recipes.empty()) {
    std::fprintf(stderr, "loft validate: name at least one recipe\nusage: %s\n", usage);
    return kExitUsage;
  }
  PluginRegistry registry;
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  int failed = 0;
  for (const auto& r : recipes) {
    ResolvedRecipe resolved;
    const RecipeInputChecks inputs;
    if (load_recipe(r, overrides, registry, &resolved, schema_only ? nullptr : &inputs)) {
      if (std::string warning = eval_not_held_out_warning(resolved); !warning.empty()) {
        std::fprintf(stderr, "%s: warning: %s\n", r.c_str(), warning.c_str());
      }
      std::printf("%s: ok\n", r.c_str());
    } else {
      ++failed;
    }
  }
  return failed ? kExitUsage : kExitOk;
}

int cmd_plugins(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  const char* usage = "loft plugins list | describe KIND/NAME | describe SECTION [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  PluginRegistry registry;
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  const std::string action = c.positional.empty() ? "list" : c.positional[0];
  if (action == "list" && c.positional.size() <= 1) {
    std::printf("%-10s %-20s %-8s %s\n", "KIND", "NAME", "VERSION", "SUMMARY");
    for (const char* kind : kPluginKinds) {
      for (const auto& m : registry.plugins()) {
        if (m.kind == kind) std::printf("%-10s %-20s %-8s %s\n", m.kind.c_str(), m.name.c_str(), m.version.c_str(), m.summary.c_str());
      }
    }
    for (const auto& p : registry.problems()) std::fprintf(stderr, "warning: %s\n", p.c_str());
    return kExitOk;
  }
  if (action == "describe" && c.positional.size() == 2) {
    const std::string& what = c.positional[1];
    // A recipe section (model, train, ... or a plugin kind): its keys from the framework schema.
    if (framework_schema().count(what)) {
      std::printf("%s", describe_section(what, registry).value().c_str());
      return kExitOk;
    }
    std::vector<const PluginManifest*> matches;
    for (const auto& m : registry.plugins()) {
      if (m.qualified_name() == what || m.name == what) matches.push_back(&m);
    }
    if (matches.size() != 1) {
      std::string sections;
      for (const auto& [name, _] : framework_schema()) sections += (sections.empty() ? "" : ", ") + name;
      std::fprintf(stderr, "loft plugins describe: %s '%s'; write it as KIND/NAME (see `loft plugins list`) or name "
                   "a recipe section (%s)\n",
                   matches.empty() ? "no plugin or section named" : "more than one plugin named", what.c_str(),
                   sections.c_str());
      return kExitUsage;
    }
    const PluginManifest& m = *matches[0];
    std::printf("%s %s (SDK ABI %u)\n%s\nmanifest: %s\nlibrary:  %s\noptions:\n", m.qualified_name().c_str(),
                m.version.c_str(), m.sdk_abi, m.summary.c_str(), m.manifest_path.c_str(), m.library_path.c_str());
    if (m.options.empty()) std::printf("  (none)\n");
    for (const auto& s : m.options) std::printf("%s\n", describe_option(s).c_str());
    // The keys loft itself reads in this plugin's section, whichever plugin is chosen.
    if (auto host = framework_schema().find(m.kind); host != framework_schema().end() && host->second.size() > 1) {
      std::printf("host options of [%s] (any %s plugin):\n", m.kind.c_str(), m.kind.c_str());
      for (size_t i = 1; i < host->second.size(); ++i) std::printf("%s\n", describe_option(host->second[i]).c_str());
    }
    return kExitOk;
  }
  std::fprintf(stderr, "usage: %s\n", usage);
  return kExitUsage;
}

// The CLI alone turns a Status into an exit code: 0 ok, 2 when the user's input is at fault (kInvalidArgument,
// kNotFound), 1 for any other failure. The message is logged once, here.
static int finish(const Status& status) {
  if (status.ok()) return kExitOk;
  spdlog::error("{}", status.message());
  const bool bad_input = status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound;
  return bad_input ? kExitUsage : kExitFailure;
}

// `--fit` of plan and run: the recipe as written (with the command line's overrides) fitted to its [budget].
static StatusOr<FitResult> fit_loaded_recipe(const Common& c, const ResolvedRecipe& recipe, PluginRegistry& registry) {
  auto parsed = parse_recipe_file(recipe.path);
  if (!parsed.ok()) return Status::InvalidArgument(parsed.status().message());
  int position = 0;
  for (const auto& a : c.positional) {
    if (!is_override(a)) continue;
    if (auto st = apply_override(parsed.value(), a, ++position); !st.ok()) return st;
  }
  return fit_recipe(parsed.value(), recipe, registry);
}

int cmd_run(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  std::string resume;
  int64_t stop_after = 0;
  bool overwrite = false, fit = false;
  opts.add_options()("resume", po::value(&resume),
                     "continue the run in this folder from its latest checkpoint (the recipe may change only "
                     "train.max_steps, epochs, save_every, keep_last, log_every, profile_step, quantizer.cache_dir, "
                     "[budget] and [eval] but its dataset)")(
      "stop-after", po::value(&stop_after)->default_value(0),
      "stop after this optimizer step with a checkpoint (the schedule still spans the whole run); --resume continues")(
      "overwrite", po::bool_switch(&overwrite),
      "replace an earlier run's folder of the same output.name (its contents are deleted); without it such a folder "
      "is refused")(
      "fit", po::bool_switch(&fit),
      "first choose the memory knobs that fit [budget] at the best predicted throughput (as `loft plan --fit`), then "
      "run that recipe; the run folder's recipe.toml is the fitted one");
  const char* usage = "loft run RECIPE [section.key=value ...] [--fit] [--resume RUN_DIR | --overwrite] "
                      "[--stop-after STEP] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  PluginRegistry registry;
  ResolvedRecipe recipe;
  if (!load_one_recipe("run", c, usage, registry, &recipe)) return kExitUsage;
  if (stop_after < 0) {
    std::fprintf(stderr, "loft run: --stop-after must be >= 1 (0: run to the end)\nusage: %s\n", usage);
    return kExitUsage;
  }
  if (overwrite && !resume.empty()) {
    std::fprintf(stderr, "loft run: --overwrite and --resume exclude each other: --resume continues the run in the "
                         "folder, --overwrite deletes it\nusage: %s\n", usage);
    return kExitUsage;
  }
  if (fit && !resume.empty()) {
    std::fprintf(stderr, "loft run: --fit starts a new run; --resume continues one with the recipe it was started "
                         "with (drop one of them)\nusage: %s\n", usage);
    return kExitUsage;
  }
  if (fit) {
    auto fitted = fit_loaded_recipe(c, recipe, registry);
    if (!fitted.ok()) return finish(fitted.status());
    spdlog::info("--fit: {} ({}); predicted peak {} GPU, {} host", fitted.value().choice,
                 fmt::format("{}", fmt::join(fitted.value().overrides, " ")),
                 format_plan_bytes(fitted.value().plan.memory.gpu_total_bytes),
                 format_plan_bytes(fitted.value().plan.memory.host_total_bytes));
    recipe = fitted.value().resolved;
  }
  RunOptions run_options;
  run_options.resume_dir = resume;
  run_options.stop_after_step = stop_after;
  run_options.overwrite = overwrite;
  for (const auto& p : c.plugin_paths) run_options.resume_flags.insert(run_options.resume_flags.end(), {"--plugin-path", p});
  const Status status = run_recipe(recipe, registry, run_options);
  // Stopped by SIGINT/SIGTERM with a checkpoint: the shell's convention for a process ended by that signal.
  if (status.ok() && stop_signal() != 0) return exit_code_for_signal(stop_signal());
  return finish(status);
}

int cmd_data(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  int64_t limit = 10;
  bool tokens = false;
  opts.add_options()("limit", po::value(&limit)->default_value(10), "samples to print (0: all)")(
      "tokens", po::bool_switch(&tokens),
      "print the training examples instead, as `loft run` tokenizes them: {\"input_ids\": [...], \"labels\": [...]} "
      "with -100 where the loss ignores a token (the prompt), in dataset order");
  const char* usage = "loft data RECIPE [section.key=value ...] [--limit N] [--tokens] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  PluginRegistry registry;
  ResolvedRecipe recipe;
  RecipeInputChecks inputs;
  inputs.model = inputs.tokenizer = tokens;  // samples alone need no model
  if (!load_one_recipe("data", c, usage, registry, &recipe, inputs)) return kExitUsage;
  auto ctx = make_run_context(recipe.sections.at("model"), recipe.sections.at("train"));
  if (!ctx.ok()) return finish(ctx.status());
  auto dataset = registry.create_dataset(recipe.plugin_types.at("dataset"), *ctx.value(), recipe.sections.at("dataset"));
  if (!dataset.ok()) return finish(Status::Error(dataset.status().code(), "[dataset] " + dataset.status().message()));
  if (tokens) {
    auto tokenizer = Tokenizer::from_file(fs::path(recipe.sections.at("model").string("path")) / "tokenizer.json");
    if (!tokenizer.ok()) {
      spdlog::error("{}", tokenizer.status().message());
      return kExitUsage;
    }
    auto examples = tokenize_dataset(tokenizer.value(), *dataset.value(),
                                     recipe.sections.at("dataset").integer("max_length"), nullptr);
    if (!examples.ok()) return finish(examples.status());
    const auto& all = examples.value();
    const size_t count = limit > 0 ? std::min(static_cast<size_t>(limit), all.size()) : all.size();
    for (size_t i = 0; i < count; ++i) {
      std::printf("%s\n", nlohmann::json{{"input_ids", all[i].input_ids}, {"labels", all[i].labels}}.dump().c_str());
    }
    return kExitOk;
  }
  const int64_t n = limit > 0 ? std::min(limit, dataset.value()->size()) : dataset.value()->size();
  for (int64_t i = 0; i < n; ++i) {
    Sample s = dataset.value()->get(i);
    nlohmann::json j(s.fields);
    for (const auto& m : s.messages) j["messages"].push_back({{"role", m.role}, {"content", m.content}});
    std::printf("%s\n", j.dump().c_str());
  }
  return kExitOk;
}

int cmd_eval(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  EvalOptions eval;
  std::string run_dir;
  bool limit_given = false, budget_given = false;
  opts.add_options()("run", po::value(&run_dir), "evaluate what this run folder trained (its latest checkpoint)")(
      "limit", po::value(&eval.limit)->notifier([&](int64_t) { limit_given = true; }),
      "problems to evaluate (0: all; default: the recipe's eval.limit with eval.accuracy = true, else 100)")(
      "max-new-tokens", po::value(&eval.max_new_tokens)->notifier([&](int64_t) { budget_given = true; }),
      "generation budget per problem (default: the recipe's eval.max_new_tokens with eval.accuracy = true, else 512)")(
      "batch-size", po::value(&eval.batch_size)->default_value(8), "prompts generated together");
  const char* usage = "loft eval RECIPE [section.key=value ...] [--run RUN_DIR] [--limit N] [--max-new-tokens N]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  if (eval.batch_size < 1 || eval.max_new_tokens < 1 || eval.limit < 0) {
    std::fprintf(stderr, "loft eval: --batch-size and --max-new-tokens must be >= 1, --limit >= 0\n");
    return kExitUsage;
  }
  eval.run_dir = run_dir;
  PluginRegistry registry;
  ResolvedRecipe recipe;
  if (!load_one_recipe("eval", c, usage, registry, &recipe)) return kExitUsage;
  // Without the flags, what the recipe's [eval] grades at the end of a run (the keys exist with accuracy = true).
  if (auto section = recipe.sections.find("eval"); section != recipe.sections.end()) {
    if (!limit_given && section->second.has("limit")) eval.limit = section->second.integer("limit");
    if (!budget_given && section->second.has("max_new_tokens")) {
      eval.max_new_tokens = section->second.integer("max_new_tokens");
    }
  }
  if (std::string warning = eval_not_held_out_warning(recipe); !warning.empty()) spdlog::warn("{}", warning);
  return finish(eval_recipe(recipe, registry, eval));
}

int cmd_generate(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  CompletionOptions completion;
  std::string run_dir;
  bool has_prompt = false;
  opts.add_options()("run", po::value(&run_dir), "use what this run folder trained (its latest checkpoint), as eval does")(
      "prompt", po::value(&completion.prompt)->notifier([&](const std::string&) { has_prompt = true; }),
      "the user message, sent through the tokenizer's chat template")(
      "max-new-tokens", po::value(&completion.max_new_tokens)->default_value(512), "generation budget, as eval's");
  const char* usage = "loft generate RECIPE [section.key=value ...] [--run RUN_DIR] --prompt TEXT [--max-new-tokens N]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  if (!has_prompt || completion.prompt.empty() || completion.max_new_tokens < 1) {
    std::fprintf(stderr, "loft generate: %s\nusage: %s\n",
                 !has_prompt ? "--prompt TEXT is required"
                 : completion.prompt.empty() ? "--prompt is empty; give the text of the user message"
                                             : "--max-new-tokens must be >= 1",
                 usage);
    return kExitUsage;
  }
  completion.run_dir = run_dir;
  PluginRegistry registry;
  ResolvedRecipe recipe;
  if (!load_one_recipe("generate", c, usage, registry, &recipe)) return kExitUsage;
  auto text = complete_prompt(recipe, registry, completion);
  if (!text.ok()) return finish(text.status());
  std::printf("%s\n", text.value().c_str());
  return kExitOk;
}

int cmd_merge(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  std::string out;
  bool overwrite = false;
  opts.add_options()("out", po::value(&out), "folder to write the merged Hugging Face model into (absent or empty)")(
      "overwrite", po::bool_switch(&overwrite),
      "replace the model folder at --out (never the base model's folder or the run folder)");
  const char* usage = "loft merge RUN_DIR --out DIR | loft merge RECIPE [section.key=value ...] --out DIR "
                      "(with peft.adapter_path) [--overwrite] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  if (c.positional.empty() || out.empty()) {
    std::fprintf(stderr, "loft merge: name one run folder and --out (or a recipe and --out)\nusage: %s\n", usage);
    return kExitUsage;
  }
  PluginRegistry registry;
  if (loft::fs::is_regular_file(c.positional[0])) {
    ResolvedRecipe recipe;
    RecipeInputChecks inputs;
    inputs.tokenizer = false;  // merge copies tokenizer.json when there is one
    if (!load_one_recipe("merge", c, usage, registry, &recipe, inputs)) return kExitUsage;
    return finish(merge_recipe(recipe, registry, {}, out, overwrite));
  }
  if (c.positional.size() != 1) {
    std::fprintf(stderr, "loft merge: name one run folder and --out\nusage: %s\n", usage);
    return kExitUsage;
  }
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  return finish(merge_run(c.positional[0], registry, out, overwrite));
}

int cmd_plan(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  bool json = false, fit = false;
  std::string out;
  opts.add_options()("json", po::bool_switch(&json), "print the prediction as JSON (bytes per category, totals, budgets)")(
      "fit", po::bool_switch(&fit),
      "choose train.batch_size/grad_accum (same effective batch), recompute, offload parts and train.pack_length to "
      "fit [budget] with the highest predicted throughput, and write the resolved recipe")(
      "out", po::value(&out), "with --fit: where to write the resolved recipe (default: RECIPE's folder, <name>.fit.toml)");
  const char* usage = "loft plan RECIPE [section.key=value ...] [--json] [--fit [--out FILE]] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  if (!out.empty() && !fit) {
    std::fprintf(stderr, "loft plan: --out goes with --fit (it names where the fitted recipe is written)\nusage: %s\n",
                 usage);
    return kExitUsage;
  }
  PluginRegistry registry;
  ResolvedRecipe recipe;
  if (!load_one_recipe("plan", c, usage, registry, &recipe)) return kExitUsage;
  if (!fit) {
    auto plan = plan_recipe(recipe, registry);
    if (!plan.ok()) return finish(plan.status());
    const RecipePlan& p = plan.value();
    if (json) {
      std::printf("%s\n", prediction_json(p.memory, p.gpu_budget, p.host_budget, p.tokens_per_second).c_str());
    } else {
      std::printf("loft plan %s: predicted peak memory (%lld tokens per micro-batch, %lld blocks recomputed)\n%s"
                  "predicted throughput: %.0f tokens/s (a model for comparing configurations, not a measurement)\n",
                  recipe.path.string().c_str(), static_cast<long long>(p.memory.tokens_per_micro_batch),
                  static_cast<long long>(p.memory.recomputed_blocks),
                  format_prediction(p.memory, p.gpu_budget, p.host_budget).c_str(), p.tokens_per_second);
    }
    return kExitOk;
  }
  auto fitted = fit_loaded_recipe(c, recipe, registry);
  if (!fitted.ok()) return finish(fitted.status());
  const FitResult& f = fitted.value();
  fs::path target = out;
  if (target.empty()) target = recipe.path.parent_path() / (recipe.path.stem().string() + ".fit.toml");
  if (auto st = write_file_atomically(target, f.resolved.to_toml()); !st.ok()) return finish(st);
  const RecipePlan& p = f.plan;
  if (json) {
    auto j = nlohmann::ordered_json::parse(prediction_json(p.memory, p.gpu_budget, p.host_budget, p.tokens_per_second));
    j["fit"] = {{"choice", f.choice}, {"overrides", f.overrides}, {"candidates", f.candidates},
                {"recipe", target.string()}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("loft plan --fit %s: %s (best of %lld configurations)\n  %s\n%s"
                "predicted throughput: %.0f tokens/s (a model for comparing configurations, not a measurement)\n"
                "wrote %s\n",
                recipe.path.string().c_str(), f.choice.c_str(), static_cast<long long>(f.candidates),
                fmt::format("{}", fmt::join(f.overrides, " ")).c_str(),
                format_prediction(p.memory, p.gpu_budget, p.host_budget).c_str(), p.tokens_per_second,
                target.string().c_str());
  }
  return kExitOk;
}

int cmd_ablate(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  std::string out;
  bool dry_run = false;
  opts.add_options()("out", po::value(&out),
                     "the grid folder (default: <base recipe's output.dir>/ablate/<grid name>); holds grid.toml, "
                     "results.jsonl, runs/<variant>/ and logs/<variant>.log")(
      "dry-run", po::bool_switch(&dry_run),
      "validate and plan every variant, list them with their overrides, predicted peaks and what a run would do "
      "(run, resume, reuse, skip); run and write nothing");
  const char* usage = "loft ablate GRID.toml [section.key=value ...] [--out DIR] [--dry-run] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  std::vector<std::string> grids, overrides;
  for (const auto& a : c.positional) (is_override(a) ? overrides : grids).push_back(a);
  if (grids.size() != 1) {
    std::fprintf(stderr, "loft ablate: name exactly one grid file\nusage: %s\n", usage);
    return kExitUsage;
  }
  auto grid = parse_ablation_grid(grids[0]);
  if (!grid.ok()) {
    std::fprintf(stderr, "%s\n", grid.status().message().c_str());
    return kExitUsage;
  }
  PluginRegistry registry;
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  AblateOptions options;
  options.grid_dir = out;
  options.dry_run = dry_run;
  options.overrides = overrides;
  options.rerun_command = "loft ablate " + grids[0];
  for (const auto& o : overrides) options.rerun_command += " '" + o + "'";
  if (!out.empty()) options.rerun_command += " --out " + out;
  for (const auto& p : c.plugin_paths) {
    options.run_flags.insert(options.run_flags.end(), {"--plugin-path", p});
    options.rerun_command += " --plugin-path " + p;
  }
  if (c.log_level != "info") options.run_flags.insert(options.run_flags.end(), {"--log-level", c.log_level});
  auto outcome = run_ablation(grid.value(), registry, options);
  if (!outcome.ok()) {
    const StatusCode code = outcome.status().code();
    if (code != StatusCode::kInvalidArgument && code != StatusCode::kNotFound) return finish(outcome.status());
    std::fprintf(stderr, "%s\n", outcome.status().message().c_str());  // one line per problem
    return kExitUsage;
  }
  if (outcome.value().stop_signal != 0) return exit_code_for_signal(outcome.value().stop_signal);
  return outcome.value().failed > 0 || outcome.value().interrupted > 0 ? kExitFailure : kExitOk;
}

}  // namespace loft::cli
