// `loft ablate`: the grid's variants validated and planned up front, each variant's run folder inspected (reuse,
// resume, start over), then one `loft run` child per variant, results.jsonl rewritten as each ends.
#include "loft/framework/ablate.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ablate/child_process.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/files.h"
#include "loft/framework/memory_plan.h"
#include "loft/framework/results_table.h"
#include "loft/framework/run_folder.h"
#include "loft/framework/run_summary.h"
#include "loft/framework/trainer.h"

namespace loft {

namespace {

using json = nlohmann::ordered_json;

enum class Action {
  kRun,        // a new run
  kResume,     // continue from the run folder's latest checkpoint
  kOverwrite,  // the folder holds a run that never wrote a checkpoint: start it over
  kReuse,      // finished earlier with the same recipe
  kSkip,       // recorded without running: does not fit, or its folder holds another recipe's run
};

struct Variant {
  const GridVariant* grid = nullptr;
  ResolvedRecipe recipe;
  RecipePlan plan;
  Action action = Action::kRun;
  std::string status = "pending";
  std::string reason;
  std::vector<std::string> dropped;  // base keys dropped by a change of plugin (drop_replaced_options)
  bool reused = false;
  json summary = nullptr;
  double wall_s = 0;
};

std::string quoted_list(const std::vector<std::string>& names, size_t total) {
  if (names.size() == total && total > 1) return "every variant";
  std::string out = names.size() == 1 ? "variant " : "variants ";
  const size_t shown = std::min<size_t>(names.size(), 4);
  for (size_t i = 0; i < shown; ++i) out += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > shown) out += fmt::format(" and {} more", names.size() - shown);
  return out;
}

// A grid setting applied as `loft run` applies a command-line override, then located at the grid's line.
Status apply_setting(Recipe& recipe, const GridSetting& s, int position) {
  if (auto st = apply_override(recipe, s.assignment(), position); !st.ok()) return st;
  const size_t dot = s.key.find('.');
  RecipeSection& section = recipe.sections[s.key.substr(0, dot)];
  RecipeEntry& entry = section.entries[s.key.substr(dot + 1)];
  if (section.where.file.rfind("<command line", 0) == 0) section.where = s.where;
  entry.where = s.where;
  for (auto& w : entry.item_where) w = s.where;
  return Status::Ok();
}

std::string toml_value(const OptionValue& value) { return GridSetting{"", value, {}}.toml(); }

// The variant's recipe as `loft run` gets it: resolved (defaults filled, paths absolute), every value written so that
// it reads back the same (ResolvedRecipe::to_toml rounds floats to 6 digits).
std::string variant_recipe_toml(const ResolvedRecipe& r, const AblationGrid& grid, const GridVariant& v) {
  std::string out = fmt::format("# variant {} of the ablation grid {} (base {}), written by loft ablate\n", v.name,
                                grid.path.string(), grid.base.string());
  for (const auto& [name, options] : r.sections) {
    out += "\n[" + name + "]\n";
    if (auto t = r.plugin_types.find(name); t != r.plugin_types.end()) out += "type = " + toml_value(t->second) + "\n";
    for (const auto& [key, value] : options.values()) out += key + " = " + toml_value(value) + "\n";
  }
  return out;
}

// A variant that changes a plugin section's `type` (peft.type = "full" over a LoRA base) drops the base's options
// of the old plugin that the new one does not have (peft.r, peft.alpha, ...): a recipe cannot name them for it.
// Keys the grid or the command line set stay (validation then names them), as do loft's own keys of the section.
// Returns one "section.a, section.b (options of kind/old that kind/new does not have)" per section with drops.
std::vector<std::string> drop_replaced_options(Recipe& recipe, const Recipe& base, const std::set<std::string>& set_keys,
                                               const PluginRegistry& registry) {
  std::vector<std::string> dropped;
  for (auto& [section, entries] : recipe.sections) {
    if (!is_plugin_section(section)) continue;
    auto type_of = [&](const Recipe& r) -> std::string {
      if (auto s = r.sections.find(section); s != r.sections.end()) {
        if (auto e = s->second.entries.find("type"); e != s->second.entries.end()) {
          const auto* text = std::get_if<std::string>(&e->second.value);
          return text ? *text : "";
        }
      }
      const auto& spec = framework_schema().at(section).front();
      return spec.default_value ? std::get<std::string>(*spec.default_value) : "";
    };
    const std::string before = type_of(base), now = type_of(recipe);
    const PluginManifest* old_plugin = registry.find(section, before);
    const PluginManifest* new_plugin = registry.find(section, now);
    if (before == now || !old_plugin || !new_plugin) continue;
    auto has = [](const OptionSchema& schema, const std::string& key) {
      return std::any_of(schema.begin(), schema.end(), [&](const OptionSpec& o) { return o.name == key; });
    };
    std::string keys;
    for (auto it = entries.entries.begin(); it != entries.entries.end();) {
      const std::string& key = it->first;
      const bool drop = key != "type" && !set_keys.count(section + "." + key) && has(old_plugin->options, key) &&
                        !has(new_plugin->options, key) && !has(framework_schema().at(section), key);
      if (!drop) {
        ++it;
        continue;
      }
      keys += (keys.empty() ? "" : ", ") + section + "." + key;
      it = entries.entries.erase(it);
    }
    if (!keys.empty()) {
      dropped.push_back(fmt::format("{} (options of {} that {} does not have)", keys, old_plugin->qualified_name(),
                                    new_plugin->qualified_name()));
    }
  }
  return dropped;
}

// The base recipe's output.dir, as a run of it would resolve it (relative to the recipe's folder; default "runs").
fs::path base_output_dir(const Recipe& base) {
  std::string dir = "runs";
  if (auto s = base.sections.find("output"); s != base.sections.end()) {
    if (auto e = s->second.entries.find("dir"); e != s->second.entries.end()) {
      if (const auto* text = std::get_if<std::string>(&e->second.value)) dir = *text;
    }
  }
  fs::path p = dir;
  return p.is_relative() ? (fs::absolute(base.path).parent_path() / p).lexically_normal() : p;
}

std::string duration_text(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

// "predicted GPU peak 16.2 GiB > budget.gpu_memory 15.0 GiB" for each budget the plan exceeds; empty when it fits.
std::string over_budget(const RecipePlan& p) {
  std::string out;
  if (p.memory.device == "cuda" && p.gpu_budget > 0 && p.memory.gpu_total_bytes > p.gpu_budget) {
    out = fmt::format("predicted GPU peak {} > budget.gpu_memory {}", format_plan_bytes(p.memory.gpu_total_bytes),
                      format_plan_bytes(p.gpu_budget));
  }
  if (p.host_budget > 0 && p.memory.host_total_bytes > p.host_budget) {
    out += fmt::format("{}predicted host peak {} > budget.host_memory {}", out.empty() ? "" : ", ",
                       format_plan_bytes(p.memory.host_total_bytes), format_plan_bytes(p.host_budget));
  }
  return out;
}

std::string planned_text(const RecipePlan& p) {
  auto of = [](uint64_t budget) { return budget ? " of " + format_plan_bytes(budget) : std::string(); };
  if (p.memory.device == "cuda") {
    return fmt::format("planned peak GPU {}{}, host {}{}", format_plan_bytes(p.memory.gpu_total_bytes), of(p.gpu_budget),
                       format_plan_bytes(p.memory.host_total_bytes), of(p.host_budget));
  }
  return fmt::format("planned peak host {}{} (CPU run)", format_plan_bytes(p.memory.host_total_bytes), of(p.host_budget));
}

// summary.json of a finished run, or null.
json read_summary(const fs::path& run_dir) {
  std::ifstream in(run_dir / kRunSummaryFileName);
  if (!in.is_open()) return nullptr;
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("format", "") != "loft-run-summary" || j.value("status", "") != "finished") return nullptr;
  return j;
}

// The run folder's state decides what to do: reuse a finished run of the same recipe, resume one with a
// checkpoint, start over one without, or (a run of another recipe, changed beyond what --resume allows) leave it.
void inspect_run_folder(Variant& v, const fs::path& run_dir, const PluginRegistry& registry) {
  if (!fs::exists(run_dir)) return;
  if (!fs::is_regular_file(run_dir / "recipe.toml")) {
    v.action = fs::list_directory(run_dir).empty() ? Action::kRun : Action::kOverwrite;
    return;
  }
  ResolvedRecipe saved;
  auto changes = check_resume_recipe(run_dir, v.recipe, registry, &saved);
  if (!changes.ok()) {
    v.action = Action::kSkip;
    v.status = "failed";
    v.reason = fmt::format("{} holds a run of another recipe: {}; delete that folder to run the variant again",
                           run_dir.string(), changes.status().message());
    return;
  }
  if (changes.value().empty() && !read_summary(run_dir).is_null()) {
    v.action = Action::kReuse;
    return;
  }
  v.action = latest_checkpoint(run_dir).ok() ? Action::kResume : Action::kOverwrite;
}

// The grid folder's lock: one `loft ablate` per grid folder (flock, dropped by the kernel when the process ends).
class GridLock {
 public:
  static StatusOr<GridLock> acquire(const fs::path& grid_dir) {
    const fs::path file = grid_dir / ".ablate.lock";
    GridLock lock;
    lock.fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock.fd_ < 0) return Status::IoError(fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
    if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
      char holder[32] = {};
      const ssize_t n = ::pread(lock.fd_, holder, sizeof holder - 1, 0);
      std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "unknown";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return Status::InvalidArgument(fmt::format("grid folder {} is in use by another loft ablate (pid {}); wait for "
                                                 "it to end, or give this one another folder with --out",
                                                 grid_dir.string(), pid));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock.fd_, 0) != 0 || ::pwrite(lock.fd_, pid.data(), pid.size(), 0) < 0) {
      return Status::IoError(fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
    }
    return StatusOr<GridLock>(std::move(lock));
  }
  GridLock(GridLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  GridLock& operator=(GridLock&&) = delete;
  ~GridLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  GridLock() = default;
  int fd_ = -1;
};

json overrides_json(const GridVariant& v) {
  json out = json::object();
  for (const auto& s : v.overrides) {
    std::visit([&](const auto& value) { out[s.key] = value; }, s.value);
  }
  return out;
}

Status write_results(const fs::path& grid_dir, const std::vector<Variant>& variants) {
  std::string text;
  for (const auto& v : variants) {
    json record = {{"variant", v.grid->name},
                   {"index", v.grid->index},
                   {"seed", v.grid->seed ? json(*v.grid->seed) : json(nullptr)},
                   {"overrides", overrides_json(*v.grid)},
                   {"status", v.status},
                   {"reason", v.reason},
                   {"run_dir", "runs/" + v.grid->name},
                   {"reused", v.reused},
                   {"summary", v.summary}};
    text += record.dump() + "\n";
  }
  if (auto st = write_file_atomically(grid_dir / "results.jsonl", text); !st.ok()) return st;
  // The tables follow results.jsonl, so a grid stopped at any point has tables of what it has.
  return write_results_tables(grid_dir);
}

// The numbers a progress line shows of a finished run.
std::string summary_text(const json& s, const RecipePlan& plan) {
  std::string out;
  auto number = [&](const char* key) -> std::optional<double> {
    if (!s.contains(key) || !s[key].is_number()) return std::nullopt;
    return s[key].get<double>();
  };
  if (auto t = number("tokens_per_s")) out += fmt::format(", {:.0f} tokens/s", *t);
  const bool cuda = plan.memory.device == "cuda";
  if (auto peak = number(cuda ? "peak_gpu_bytes" : "peak_host_bytes")) {
    out += fmt::format(", peak {} {} (planned {})", cuda ? "GPU" : "host", format_plan_bytes(static_cast<uint64_t>(*peak)),
                       format_plan_bytes(cuda ? plan.memory.gpu_total_bytes : plan.memory.host_total_bytes));
  }
  if (auto loss = number("final_loss")) out += fmt::format(", loss {:.4f}", *loss);
  if (auto val = number("val_loss")) out += fmt::format(", val loss {:.4f}", *val);
  if (auto acc = number("eval_accuracy")) out += fmt::format(", accuracy {:.3f}", *acc);
  return out;
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    default: return "a signal";
  }
}

// How the child ended, as the variant's status and reason.
void record_exit(Variant& v, const ChildExit& exit, const fs::path& run_dir, const std::string& log_name,
                 const std::string& error_line) {
  const std::string see = fmt::format(" (log: {})", log_name);
  if (exit.exited && exit.code == 0) {
    v.summary = read_summary(run_dir);
    if (!v.summary.is_null()) {
      v.status = "finished";
      return;
    }
    v.status = "failed";
    v.reason = "loft run ended without writing summary.json" + see;
    return;
  }
  const int stop = ForwardStopSignals::stop_requested();
  if ((exit.exited && (exit.code == 130 || exit.code == 143)) || (!exit.exited && stop != 0)) {
    v.status = "interrupted";
    v.reason = exit.exited ? fmt::format("stopped by {} after a checkpoint; a re-run continues it",
                                         exit.code == 130 ? "SIGINT" : "SIGTERM")
                           : fmt::format("killed by {}; a re-run continues from its last checkpoint",
                                         signal_name(exit.signal));
    return;
  }
  v.status = "failed";
  if (exit.exited) {
    v.reason = fmt::format("exit {}{}: {}{}", exit.code, exit.code == 2 ? " (bad input)" : "", error_line, see);
  } else if (exit.signal == SIGKILL) {
    v.reason = fmt::format("killed by SIGKILL (the signal of the kernel's out-of-memory killer: memory may have run "
                           "out){}", see);
  } else {
    v.reason = fmt::format("crashed: killed by {} (signal {}){}", signal_name(exit.signal), exit.signal, see);
  }
}

}  // namespace

StatusOr<AblateOutcome> run_ablation(const AblationGrid& grid, PluginRegistry& registry, const AblateOptions& options) {
  auto base = parse_recipe_file(grid.base);
  if (!base.ok()) return Status::InvalidArgument(base.status().message());
  const fs::path grid_dir =
      fs::absolute(options.grid_dir.empty() ? base_output_dir(base.value()) / "ablate" / grid.name : options.grid_dir);
  const fs::path runs_dir = grid_dir / "runs";

  // The command line's overrides, read as `loft run` reads them; refused where an axis varies the key.
  std::vector<GridSetting> command_line;
  for (size_t i = 0; i < options.overrides.size(); ++i) {
    const std::string& text = options.overrides[i];
    Recipe scratch;
    if (auto st = apply_override(scratch, text, static_cast<int>(i + 1)); !st.ok()) return st;
    const std::string key = text.substr(0, text.find('='));
    const size_t dot = key.find('.');
    const RecipeEntry& entry = scratch.sections.at(key.substr(0, dot)).entries.at(key.substr(dot + 1));
    if (key.rfind("output.", 0) == 0) {
      return Status::InvalidArgument(fmt::format("loft ablate: override '{}': loft ablate runs each variant in <grid "
                                                 "folder>/runs/<variant>; choose the grid folder with --out", text));
    }
    for (const auto& v : grid.variants) {
      const bool varied = (key == "train.seed" && v.seed) ||
                          std::any_of(v.overrides.begin(), v.overrides.end(), [&](const GridSetting& o) { return o.key == key; });
      if (varied) {
        return Status::InvalidArgument(fmt::format("loft ablate: override '{}' sets {}, which the grid {} varies; drop "
                                                   "the override or that axis", text, key, grid.path.string()));
      }
    }
    command_line.push_back(GridSetting{key, entry.value, entry.where});
  }

  // Every variant validated and planned before anything runs or is written; each problem once, with the variants
  // it concerns.
  std::vector<Variant> variants(grid.variants.size());
  std::vector<std::string> problems;
  std::map<std::string, std::vector<std::string>> problem_variants;
  auto problem = [&](const std::string& text, const std::string& variant) {
    auto [it, fresh] = problem_variants.try_emplace(text);
    if (fresh) problems.push_back(text);
    it->second.push_back(variant);
  };
  for (size_t i = 0; i < grid.variants.size(); ++i) {
    const GridVariant& gv = grid.variants[i];
    Variant& v = variants[i];
    v.grid = &gv;
    Recipe recipe = base.value();
    int position = 0;
    bool applied = true;
    for (const auto& s : gv.settings) {
      if (auto st = apply_setting(recipe, s, ++position); !st.ok()) {
        problem(s.where.str() + ": error: " + st.message(), gv.name);
        applied = false;
      }
    }
    for (const auto& s : command_line) (void)apply_setting(recipe, s, ++position);
    if (!applied) continue;
    std::set<std::string> set_keys;
    for (const auto& s : gv.settings) set_keys.insert(s.key);
    for (const auto& s : command_line) set_keys.insert(s.key);
    v.dropped = drop_replaced_options(recipe, base.value(), set_keys, registry);
    (void)apply_override(recipe, GridSetting{"output.dir", runs_dir.string(), {}}.assignment(), ++position);
    (void)apply_override(recipe, GridSetting{"output.name", gv.name, {}}.assignment(), ++position);
    auto diags = validate_recipe(recipe, registry, &v.recipe);
    if (diags.empty()) diags = check_recipe_inputs(recipe, v.recipe, registry);
    for (const auto& d : diags) problem(d.str(), gv.name);
    if (!diags.empty()) continue;
    auto plan = plan_recipe(v.recipe, registry);
    if (!plan.ok()) {
      problem(fmt::format("{}: error: loft plan: {}", grid.path.string(), plan.status().message()), gv.name);
      continue;
    }
    v.plan = plan.value();
  }
  if (!problems.empty()) {
    std::string out;
    for (const auto& p : problems) out += fmt::format("{}: {}\n", quoted_list(problem_variants[p], variants.size()), p);
    out += fmt::format("{}: {} problem{} in the grid's variants; nothing ran", grid.path.string(), problems.size(),
                       problems.size() == 1 ? "" : "s");
    return Status::InvalidArgument(out);
  }

  // One loft ablate per grid folder, from here on (a dry run writes nothing and takes no lock).
  std::optional<GridLock> lock;
  if (!options.dry_run) {
    for (const auto& dir : {grid_dir, runs_dir, grid_dir / "logs", grid_dir / "recipes"}) {
      if (auto st = fs::create_directories(dir); !st.ok()) return st;
    }
    auto locked = GridLock::acquire(grid_dir);
    if (!locked.ok()) return locked.status();
    lock.emplace(std::move(locked).value());
  }

  // What each variant will do.
  AblateOutcome outcome;
  for (auto& v : variants) {
    inspect_run_folder(v, runs_dir / v.grid->name, registry);
    if (v.action == Action::kReuse) {
      v.summary = read_summary(runs_dir / v.grid->name);
      v.status = "finished";
      v.reused = true;
    } else if (v.action != Action::kSkip) {
      if (std::string over = over_budget(v.plan); !over.empty()) {
        v.action = Action::kSkip;
        v.status = "does_not_fit";
        v.reason = over + " (loft plan); not run";
      }
    }
  }
  int64_t to_run = 0;
  for (const auto& v : variants) to_run += v.action != Action::kReuse && v.action != Action::kSkip;
  const size_t total = variants.size();
  std::printf("loft ablate %s: %zu variant%s in %s: %lld to run, %lld reused, %lld not run\n", grid.path.string().c_str(),
              total, total == 1 ? "" : "s", grid_dir.string().c_str(), static_cast<long long>(to_run),
              static_cast<long long>(std::count_if(variants.begin(), variants.end(),
                                                   [](const Variant& v) { return v.action == Action::kReuse; })),
              static_cast<long long>(std::count_if(variants.begin(), variants.end(),
                                                   [](const Variant& v) { return v.action == Action::kSkip; })));
  std::fflush(stdout);

  if (options.dry_run) {
    for (size_t i = 0; i < total; ++i) {
      const Variant& v = variants[i];
      std::string overrides;
      for (const auto& s : v.grid->settings) {  // what varies: the axes' keys and the seed
        if (s.key == "train.seed" || std::any_of(v.grid->overrides.begin(), v.grid->overrides.end(),
                                                 [&](const GridSetting& o) { return o.key == s.key; })) {
          overrides += (overrides.empty() ? "" : " ") + s.assignment();
        }
      }
      const char* what = v.action == Action::kRun         ? "would run"
                         : v.action == Action::kResume    ? "would resume from its checkpoint"
                         : v.action == Action::kOverwrite ? "would start over (no checkpoint yet)"
                         : v.action == Action::kReuse     ? "finished earlier: would be reused"
                                                          : nullptr;
      std::printf("[%zu/%zu] %s\n      %s\n", i + 1, total, v.grid->name.c_str(),
                  overrides.empty() ? "(the base recipe)" : overrides.c_str());
      for (const auto& d : v.dropped) std::printf("      without the base's %s\n", d.c_str());
      std::printf("      %s: %s\n", planned_text(v.plan).c_str(), what ? what : (v.status + ": " + v.reason).c_str());
    }
    for (const auto& v : variants) {
      if (v.action == Action::kReuse) ++outcome.reused;
      else if (v.status == "does_not_fit") ++outcome.does_not_fit;
      else if (v.action == Action::kSkip) ++outcome.failed;
      else ++outcome.pending;
    }
    std::fflush(stdout);
    return outcome;
  }

  {
    std::ifstream in(grid.path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (auto st = write_file_atomically(grid_dir / "grid.toml", text.str()); !st.ok()) return st;
  }
  if (auto st = write_results(grid_dir, variants); !st.ok()) return st;

  ForwardStopSignals forward;
  const auto grid_start = std::chrono::steady_clock::now();
  double run_seconds = 0;
  int64_t runs_done = 0;
  for (size_t i = 0; i < total; ++i) {
    Variant& v = variants[i];
    const std::string& name = v.grid->name;
    const fs::path run_dir = runs_dir / name;
    std::string line = fmt::format("[{}/{}] {}: ", i + 1, total, name);
    if (v.action == Action::kReuse) {
      line += "reused (finished earlier)" + summary_text(v.summary, v.plan);
    } else if (v.action == Action::kSkip) {
      line += v.status + ": " + v.reason;
    } else {
      if (ForwardStopSignals::stop_requested() != 0) break;
      const fs::path recipe_file = grid_dir / "recipes" / (name + ".toml");
      if (auto st = write_file_atomically(recipe_file, variant_recipe_toml(v.recipe, grid, *v.grid)); !st.ok()) return st;
      // /proc/self/exe resolved: the log then names the executable that ran.
      std::vector<std::string> argv = {fs::weakly_canonical(options.loft_executable).string(), "run", recipe_file.string()};
      if (v.action == Action::kResume) argv.insert(argv.end(), {"--resume", run_dir.string()});
      if (v.action == Action::kOverwrite) argv.push_back("--overwrite");
      argv.insert(argv.end(), options.run_flags.begin(), options.run_flags.end());
      const fs::path log = grid_dir / "logs" / (name + ".log");
      const uint64_t log_start = fs::file_size(log).value_or(0);
      {
        std::string header = fmt::format("==== loft ablate: variant {} ({}):", name,
                                         v.action == Action::kResume ? "resumed" : "started");
        for (const auto& a : argv) header += " " + a;
        for (const auto& d : v.dropped) header += "\n==== without the base's " + d;
        std::ofstream(log, std::ios::app) << header << "\n";
      }
      const auto started = std::chrono::steady_clock::now();
      auto exit = run_child(argv, log);
      v.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (!exit.ok()) {
        v.status = "failed";
        v.reason = exit.status().message();
      } else {
        record_exit(v, exit.value(), run_dir, "logs/" + name + ".log", last_error_line(log, log_start));
      }
      run_seconds += v.wall_s;
      ++runs_done;
      --to_run;
      line += fmt::format("{}{} in {}", v.status, v.action == Action::kResume ? " (resumed)" : "",
                          duration_text(v.wall_s));
      line += v.status == "finished" ? summary_text(v.summary, v.plan) : ": " + v.reason;
      if (to_run > 0 && v.status != "interrupted") {
        line += fmt::format("; grid ETA {} ({} left)", duration_text(run_seconds / runs_done * to_run), to_run);
      }
    }
    if (auto st = write_results(grid_dir, variants); !st.ok()) return st;
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (v.status == "interrupted" && ForwardStopSignals::stop_requested() != 0) break;
  }
  for (const auto& v : variants) {
    if (v.status == "finished") ++(v.reused ? outcome.reused : outcome.finished);
    else if (v.status == "failed") ++outcome.failed;
    else if (v.status == "does_not_fit") ++outcome.does_not_fit;
    else if (v.status == "interrupted") ++outcome.interrupted;
    else ++outcome.pending;
  }
  outcome.stop_signal = ForwardStopSignals::stop_requested();
  std::printf("loft ablate: %lld finished, %lld reused, %lld failed, %lld do not fit, %lld interrupted, %lld pending "
              "in %s; results in %s\n",
              static_cast<long long>(outcome.finished), static_cast<long long>(outcome.reused),
              static_cast<long long>(outcome.failed), static_cast<long long>(outcome.does_not_fit),
              static_cast<long long>(outcome.interrupted), static_cast<long long>(outcome.pending),
              duration_text(std::chrono::duration<double>(std::chrono::steady_clock::now() - grid_start).count()).c_str(),
              (grid_dir / "results.jsonl").string().c_str());
  std::printf("tables: %s, %s; charts: loft report %s\n", (grid_dir / "results.md").string().c_str(),
              (grid_dir / "results.csv").string().c_str(), grid_dir.string().c_str());
  if (outcome.stop_signal != 0) {
    std::printf("stopped by %s; continue the grid with:\n  %s\n", signal_name(outcome.stop_signal),
                options.rerun_command.c_str());
  }
  std::fflush(stdout);
  return outcome;
}

}  // namespace loft
