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

#include "loft/framework/evaluate.h"
#include "loft/framework/examples.h"
#include "loft/framework/host.h"
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

// Parses a recipe and applies overrides; prints errors. Returns false on error.
bool load_recipe(const std::string& file, const std::vector<std::string>& overrides, const PluginRegistry& registry,
                 ResolvedRecipe* resolved) {
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
  auto diags = validate_recipe(recipe.value(), registry, resolved);
  for (const auto& d : diags) std::fprintf(stderr, "%s\n", d.str().c_str());
  if (!diags.empty()) {
    std::fprintf(stderr, "%s: %zu error%s\n", file.c_str(), diags.size(), diags.size() == 1 ? "" : "s");
  }
  return diags.empty();
}

// For commands on one recipe: the single recipe argument with its overrides, validated against the plugins
// found. Returns false (after printing why) on a usage or recipe error.
bool load_one_recipe(const char* command, const Common& c, const char* usage, PluginRegistry& registry,
                     ResolvedRecipe* recipe) {
  std::vector<std::string> recipes, overrides;
  for (const auto& a : c.positional) (is_override(a) ? overrides : recipes).push_back(a);
  if (recipes.size() != 1) {
    std::fprintf(stderr, "loft %s: name exactly one recipe\nusage: %s\n", command, usage);
    return false;
  }
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  return load_recipe(recipes[0], overrides, registry, recipe);
}

std::string describe_spec(const OptionSpec& s) {
  std::string out = fmt::format("  {:<16} {:<12}", s.name, option_type_name(s.type));
  out += s.default_value ? fmt::format(" default {}", format_option_value(*s.default_value)) : std::string(" required");
  if (s.min) out += fmt::format(", >= {}", *s.min);
  if (s.max) out += fmt::format(", <= {}", *s.max);
  if (!s.choices.empty()) out += fmt::format(", one of {}", fmt::join(s.choices, "|"));
  if (!s.doc.empty()) out += "\n      " + s.doc;
  return out;
}

}  // namespace

int cmd_validate(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  const char* usage = "loft validate RECIPE... [section.key=value ...] [--plugin-path DIR]";
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
    if (load_recipe(r, overrides, registry, &resolved)) {
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
  const char* usage = "loft plugins list | describe KIND/NAME [--plugin-path DIR]";
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
    std::vector<const PluginManifest*> matches;
    for (const auto& m : registry.plugins()) {
      if (m.qualified_name() == what || m.name == what) matches.push_back(&m);
    }
    if (matches.size() != 1) {
      std::fprintf(stderr, "loft plugins describe: %s '%s'; write it as KIND/NAME, see `loft plugins list`\n",
                   matches.empty() ? "no plugin named" : "more than one plugin named", what.c_str());
      return kExitUsage;
    }
    const PluginManifest& m = *matches[0];
    std::printf("%s %s (SDK ABI %u)\n%s\nmanifest: %s\nlibrary:  %s\noptions:\n", m.qualified_name().c_str(),
                m.version.c_str(), m.sdk_abi, m.summary.c_str(), m.manifest_path.c_str(), m.library_path.c_str());
    if (m.options.empty()) std::printf("  (none)\n");
    for (const auto& s : m.options) std::printf("%s\n", describe_spec(s).c_str());
    // The keys loft itself reads in this plugin's section, whichever plugin is chosen.
    if (auto host = framework_schema().find(m.kind); host != framework_schema().end() && host->second.size() > 1) {
      std::printf("host options of [%s] (any %s plugin):\n", m.kind.c_str(), m.kind.c_str());
      for (size_t i = 1; i < host->second.size(); ++i) std::printf("%s\n", describe_spec(host->second[i]).c_str());
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

int cmd_run(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  std::string resume;
  int64_t stop_after = 0;
  opts.add_options()("resume", po::value(&resume), "continue the run in this folder from its latest checkpoint")(
      "stop-after", po::value(&stop_after)->default_value(0),
      "stop after this optimizer step with a checkpoint (the schedule still spans the whole run); --resume continues");
  const char* usage =
      "loft run RECIPE [section.key=value ...] [--resume RUN_DIR] [--stop-after STEP] [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  PluginRegistry registry;
  ResolvedRecipe recipe;
  if (!load_one_recipe("run", c, usage, registry, &recipe)) return kExitUsage;
  if (stop_after < 0) {
    std::fprintf(stderr, "loft run: --stop-after must be >= 1 (0: run to the end)\nusage: %s\n", usage);
    return kExitUsage;
  }
  RunOptions run_options;
  run_options.resume_dir = resume;
  run_options.stop_after_step = stop_after;
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
  if (!load_one_recipe("data", c, usage, registry, &recipe)) return kExitUsage;
  auto ctx = make_run_context(recipe.sections.at("model"), recipe.sections.at("train"));
  if (!ctx.ok()) {
    spdlog::error("{}", ctx.status().message());
    return kExitFailure;
  }
  auto dataset = registry.create_dataset(recipe.plugin_types.at("dataset"), *ctx.value(), recipe.sections.at("dataset"));
  if (!dataset.ok()) {
    spdlog::error("[dataset] {}", dataset.status().message());
    return kExitFailure;
  }
  if (tokens) {
    auto tokenizer = Tokenizer::from_file(fs::path(recipe.sections.at("model").string("path")) / "tokenizer.json");
    if (!tokenizer.ok()) {
      spdlog::error("{}", tokenizer.status().message());
      return kExitUsage;
    }
    auto examples = tokenize_dataset(tokenizer.value(), *dataset.value(),
                                     recipe.sections.at("dataset").integer("max_length"), nullptr);
    if (!examples.ok()) {
      spdlog::error("{}", examples.status().message());
      return kExitFailure;
    }
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
  opts.add_options()("run", po::value(&run_dir), "evaluate what this run folder trained (its latest checkpoint)")(
      "limit", po::value(&eval.limit)->default_value(100), "problems to evaluate (0: all)")(
      "max-new-tokens", po::value(&eval.max_new_tokens)->default_value(512), "generation budget per problem")(
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
  return finish(eval_recipe(recipe, registry, eval));
}

int cmd_merge(const std::vector<std::string>& args) {
  Common c;
  auto opts = common_options(c);
  std::string out;
  opts.add_options()("out", po::value(&out), "folder to write the merged Hugging Face model into");
  const char* usage = "loft merge RUN_DIR --out DIR | loft merge RECIPE [section.key=value ...] --out DIR "
                      "(with peft.adapter_path) [--plugin-path DIR]";
  if (!parse(args, opts, c, usage)) return kExitUsage;
  if (c.help) return kExitOk;
  if (c.positional.empty() || out.empty()) {
    std::fprintf(stderr, "loft merge: name one run folder and --out (or a recipe and --out)\nusage: %s\n", usage);
    return kExitUsage;
  }
  PluginRegistry registry;
  if (loft::fs::is_regular_file(c.positional[0])) {
    ResolvedRecipe recipe;
    if (!load_one_recipe("merge", c, usage, registry, &recipe)) return kExitUsage;
    return finish(merge_recipe(recipe, registry, {}, out));
  }
  if (c.positional.size() != 1) {
    std::fprintf(stderr, "loft merge: name one run folder and --out\nusage: %s\n", usage);
    return kExitUsage;
  }
  registry.discover(plugin_search_path(to_paths(c.plugin_paths)));
  return finish(merge_run(c.positional[0], registry, out));
}

}  // namespace loft::cli
