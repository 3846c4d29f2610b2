// `loft report PATH... [--out FILE]`: grids and runs drawn into one self-contained HTML file.
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include "commands.h"
#include "loft/error_message.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/files.h"
#include "loft/framework/host.h"
#include "loft/framework/memory_plan.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"
#include "loft/framework/report.h"

namespace po = boost::program_options;

namespace loft::cli {

namespace {

// The planned memory of a run that has no summary.json saying it: `loft plan` of its recipe.toml, when the recipe
// still validates here (its model and plugins at hand); otherwise nothing, and the report shows no plan for it.
std::optional<PlannedMemory> plan_run_recipe(const std::filesystem::path& run_dir, PluginRegistry& registry) {
  try {
    auto recipe = parse_recipe_file(run_dir / "recipe.toml");
    if (!recipe.ok()) return std::nullopt;
    ResolvedRecipe resolved;
    if (!validate_recipe(recipe.value(), registry, &resolved).empty()) return std::nullopt;
    auto plan = plan_recipe(resolved, registry);
    if (!plan.ok()) return std::nullopt;
    const MemoryPrediction& m = plan.value().memory;
    PlannedMemory p;
    // A CPU run uses no GPU: its run-device categories are host memory (kept as the breakdown).
    p.gpu_bytes = m.device == "cpu" ? 0 : static_cast<double>(m.gpu_total_bytes);
    p.host_bytes = static_cast<double>(m.host_total_bytes);
    for (const auto& t : m.gpu) p.gpu_by_category.emplace_back(t.category, static_cast<double>(t.bytes));
    for (const auto& t : m.host) p.host_by_category.emplace_back(t.category, static_cast<double>(t.bytes));
    return p;
  } catch (const std::exception& e) {
    spdlog::debug("no plan for {}: {}", run_dir.string(), error_message(e));
    return std::nullopt;
  }
}

}  // namespace

int cmd_report(const std::vector<std::string>& args) {
  po::options_description opts("options");
  bool help = false;
  std::string out, log_level = "warn";
  std::vector<std::string> plugin_paths, positional;
  opts.add_options()("help,h", po::bool_switch(&help), "describe this command")(
      "out", po::value(&out), "the HTML file to write (default: <first PATH>/report.html)")(
      "plugin-path", po::value(&plugin_paths)->composing(),
      "also look for plugins below this folder (to plan the memory of runs whose summary.json does not hold it)")(
      "log-level", po::value(&log_level)->default_value("warn"), "trace, debug, info, warn or error");
  const char* usage = "loft report GRID_OR_RUN_DIR... [--out FILE.html] [--plugin-path DIR]";
  po::options_description all;
  all.add(opts);
  all.add_options()("paths", po::value(&positional)->composing(), "");
  po::positional_options_description pos;
  pos.add("paths", -1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "loft report: %s\nusage: %s\n", e.what(), usage);
    return kExitUsage;
  }
  if (help) {
    std::cout << "usage: " << usage << "\n\n"
              << "Each PATH is a grid folder (results.jsonl, from `loft ablate`) or a run folder (metrics.jsonl, from "
                 "`loft run`);\nseveral are compared in one report. Writes one self-contained HTML file (inline SVG, "
                 "no script).\n\n"
              << opts << "\n";
    return kExitOk;
  }
  setup_logging(log_level);
  if (positional.empty()) {
    std::fprintf(stderr, "loft report: name at least one grid or run folder\nusage: %s\n", usage);
    return kExitUsage;
  }
  std::vector<std::filesystem::path> paths(positional.begin(), positional.end());
  const std::filesystem::path target = out.empty() ? paths.front() / "report.html" : std::filesystem::path(out);

  PluginRegistry registry;
  bool discovered = false;
  const PlanForRun plan = [&](const std::filesystem::path& run_dir) -> std::optional<PlannedMemory> {
    if (!loft::fs::is_regular_file(run_dir / "recipe.toml")) return std::nullopt;
    if (!discovered) {
      std::vector<std::filesystem::path> extra(plugin_paths.begin(), plugin_paths.end());
      registry.discover(plugin_search_path(extra));
      discovered = true;
    }
    return plan_run_recipe(run_dir, registry);
  };
  auto data = load_report_data(paths, plan);
  if (!data.ok()) {
    std::fprintf(stderr, "loft report: %s\n", data.status().message().c_str());
    const StatusCode code = data.status().code();
    return code == StatusCode::kInvalidArgument || code == StatusCode::kNotFound ? kExitUsage : kExitFailure;
  }
  const std::filesystem::path folder = target.parent_path().empty() ? "." : target.parent_path();
  if (!loft::fs::is_directory(folder)) {
    std::fprintf(stderr, "loft report: %s: no such folder for the report; create it or name another --out\n",
                 folder.string().c_str());
    return kExitUsage;
  }
  if (auto st = write_file_atomically(target, render_report_html(data.value())); !st.ok()) {
    std::fprintf(stderr, "loft report: %s\n", st.message().c_str());
    return kExitFailure;
  }
  std::printf("wrote %s\n", target.string().c_str());
  return kExitOk;
}

}  // namespace loft::cli
