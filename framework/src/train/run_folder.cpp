// Run folders: the lock, creation with --overwrite and unique default names, and the checks and record of --resume.
#include "loft/framework/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "fault_point.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/files.h"
#include "loft/framework/plugin_registry.h"

namespace fs = std::filesystem;

namespace loft {

namespace {

std::string os_error(int err) { return std::strerror(err); }

bool is_run_folder(const fs::path& dir) {
  return fs::is_regular_file(dir / "recipe.toml") || fs::is_directory(dir / "checkpoints") ||
         fs::exists(dir / kRunLockFileName);
}

std::string in_use(const fs::path& run_dir, std::string holder) {
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ' || holder.back() == '\0')) holder.pop_back();
  return fmt::format("run folder {} is in use by another loft process (pid {}); wait for it to end, or use another "
                     "folder", run_dir.string(), holder.empty() ? "unknown" : holder);
}

std::string read_holder(int fd) {
  std::string holder(32, '\0');
  const ssize_t n = ::pread(fd, holder.data(), holder.size(), 0);
  holder.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return holder;
}

std::string exists_message(const fs::path& dir, bool earlier_run) {
  if (!earlier_run) {
    return fmt::format("run folder {} already exists, is not empty and is no loft run folder; choose another "
                       "output.name, or move it away", dir.string());
  }
  return fmt::format("run folder {} already exists and is not empty (an earlier run); continue that run with "
                     "--resume {}, replace it with --overwrite, or choose another output.name", dir.string(),
                     dir.string());
}

std::string not_a_run_folder_message(const fs::path& dir) {
  return fmt::format("{} is not a loft run folder (no recipe.toml, no checkpoints/): --overwrite replaces only a run "
                     "folder; move it away or choose another output.name", dir.string());
}

// The folder's entries but the lock file.
std::vector<fs::path> contents_of(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::list_directory(dir)) {
    if (entry.filename() != kRunLockFileName) out.push_back(entry);
  }
  return out;
}

}  // namespace

StatusOr<RunFolderLock> RunFolderLock::acquire(const fs::path& run_dir) {
  const fs::path file = run_dir / kRunLockFileName;
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError(fmt::format("cannot open the run folder's lock file {}: {}", file.string(), os_error(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = read_holder(fd);
    ::close(fd);
    if (err != EWOULDBLOCK) return Status::IoError(fmt::format("cannot lock {}: {}", file.string(), os_error(err)));
    return Status::InvalidArgument(in_use(run_dir, holder));
  }
  // The holder's pid, for the message above; the lock itself is the flock, which the kernel drops with the process.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd);
    return Status::IoError(fmt::format("cannot write {}: {}", file.string(), os_error(err)));
  }
  RunFolderLock lock;
  lock.fd_ = fd;
  lock.folder_ = run_dir;
  return StatusOr<RunFolderLock>(std::move(lock));
}

RunFolderLock::RunFolderLock(RunFolderLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), folder_(std::move(other.folder_)) {}

RunFolderLock& RunFolderLock::operator=(RunFolderLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    folder_ = std::move(other.folder_);
  }
  return *this;
}

// The lock file stays: deleting it would let a process that opened it before the unlink lock a file nobody else sees.
RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);
}

Status check_new_run_folder(const fs::path& dir, RunFolderMode mode) {
  if (!fs::exists(dir)) return Status::Ok();
  if (!fs::is_directory(dir)) {
    return Status::InvalidArgument(fmt::format("{} exists and is not a folder; choose another output.name", dir.string()));
  }
  // A probe of the lock: opened read-only (nothing created), released at once.
  const int fd = ::open((dir / kRunLockFileName).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    const std::string holder = held ? read_holder(fd) : "";
    ::close(fd);
    if (held) return Status::InvalidArgument(in_use(dir, holder));
  }
  if (contents_of(dir).empty()) return Status::Ok();
  if (mode == RunFolderMode::kNew) return Status::InvalidArgument(exists_message(dir, is_run_folder(dir)));
  if (!is_run_folder(dir)) return Status::InvalidArgument(not_a_run_folder_message(dir));
  return Status::Ok();
}

StatusOr<RunFolderLock> open_run_folder(const fs::path& dir, RunFolderMode mode) {
  if (mode == RunFolderMode::kResume) {
    if (!fs::is_directory(dir)) {
      return Status::NotFound(fmt::format("--resume {}: no such folder; name the folder of a run that `loft run` "
                                          "created", dir.string()));
    }
    auto lock = RunFolderLock::acquire(dir);
    if (!lock.ok()) return lock.status();
    if (!fs::is_regular_file(dir / "recipe.toml")) {
      return Status::InvalidArgument(fmt::format("--resume {}: not a loft run folder (no recipe.toml)", dir.string()));
    }
    return lock;
  }
  if (dir.has_parent_path()) {
    if (auto st = fs::create_directories(dir.parent_path()); !st.ok()) {
      return Status::IoError("cannot create the run folder: " + st.message());
    }
  }
  const bool created = ::mkdir(dir.c_str(), 0777) == 0;
  if (!created && errno != EEXIST) {
    return Status::IoError(fmt::format("cannot create the run folder {}: {}", dir.string(), os_error(errno)));
  }
  if (!created && !fs::is_directory(dir)) {
    return Status::InvalidArgument(fmt::format("{} exists and is not a folder; choose another output.name", dir.string()));
  }
  const bool earlier_run = !created && is_run_folder(dir);  // before acquire() creates the lock file
  auto lock = RunFolderLock::acquire(dir);
  if (!lock.ok()) return lock.status();
  const std::vector<fs::path> contents = contents_of(dir);
  if (contents.empty()) return lock;
  if (mode == RunFolderMode::kNew) return Status::InvalidArgument(exists_message(dir, earlier_run));
  if (!earlier_run) return Status::InvalidArgument(not_a_run_folder_message(dir));
  // Locked: no other loft process is writing here while the earlier run is deleted.
  for (const auto& entry : contents) {
    fault_point("overwrite.clearing");
    if (auto st = remove_tree(entry); !st.ok()) return st;
  }
  if (auto st = fs::sync_directory(dir); !st.ok()) return st;
  spdlog::info("--overwrite: deleted the earlier run in {}", dir.string());
  return lock;
}

StatusOr<RunFolderLock> create_unique_run_folder(const fs::path& parent, const std::string& base) {
  if (auto st = fs::create_directories(parent); !st.ok()) return Status::IoError("cannot create the run folder: " + st.message());
  for (int i = 1; i <= 1000; ++i) {
    const fs::path dir = parent / (i == 1 ? base : fmt::format("{}-{}", base, i));
    if (::mkdir(dir.c_str(), 0777) == 0) return RunFolderLock::acquire(dir);
    if (errno != EEXIST) {
      return Status::IoError(fmt::format("cannot create the run folder {}: {}", dir.string(), os_error(errno)));
    }
  }
  return Status::IoError(fmt::format("no free run folder name {}-N below {}; set output.name", base, parent.string()));
}

// What --resume may change. The checkpoint holds the trainable tensors, optimizer state, RNG and step; the data order
// is a function of (train.seed, batch_size, grad_accum, dataset). Everything that shapes what the remaining steps
// compute from that state must stay, or the run becomes a mix of two runs that no recipe describes. Allowed:
// - train.max_steps, train.epochs: how long the run goes on (the usual reason to resume). The schedule's horizon
//   moves with them from the resumed step on; the change is recorded in resumes.jsonl.
// - train.save_every, train.keep_last: when checkpoints are written and how many stay; the state saved is the same.
// - train.log_every, train.profile_step: what is reported (metrics.jsonl, a profiler trace); the step is the same.
// - quantizer.cache_dir: where quantized weights are cached; the cache's key makes a hit equal to quantizing.
// - budget.gpu_memory, budget.host_memory: caps on memory, not on what is computed (raising one is how a run that
//   hit its budget goes on).
// - eval.every, eval.accuracy, eval.limit, eval.max_new_tokens: when the held-out loss is measured and whether the
//   run ends with a graded generation; neither touches the weights nor the RNG (trainer.h). The held-out set itself
//   ([eval.dataset]) stays, or the validation losses before and after the resume would not be comparable.
// [output] is not compared at all: --resume names the folder.
constexpr const char* kResumeMayChange[] = {"train.max_steps",    "train.epochs",      "train.save_every",
                                             "train.keep_last",    "train.log_every",   "train.profile_step",
                                             "quantizer.cache_dir", "budget.gpu_memory", "budget.host_memory",
                                             "eval.every",         "eval.accuracy",     "eval.limit",
                                             "eval.max_new_tokens"};

bool resume_may_change(const std::string& key) {
  for (const char* k : kResumeMayChange) {
    if (key == k) return true;
  }
  return false;
}

std::vector<RecipeChange> recipe_changes(const ResolvedRecipe& saved, const ResolvedRecipe& now) {
  // Every section as section.key -> value spelled as in a recipe, the plugin type as section.type. A section whose
  // plugin changed shows only its type: the options of two different plugins are not a list of edits.
  auto type_of = [](const ResolvedRecipe& r, const std::string& kind) {
    auto it = r.plugin_types.find(kind);
    return it == r.plugin_types.end() ? std::string() : it->second;
  };
  auto flatten = [&](const ResolvedRecipe& r) {
    std::map<std::string, std::string> out;
    for (const auto& [kind, type] : r.plugin_types) out[kind + ".type"] = format_option_value(type);
    for (const auto& [section, options] : r.sections) {
      if (section == "output" || type_of(saved, section) != type_of(now, section)) continue;
      for (const auto& [key, value] : options.values()) out[section + "." + key] = format_option_value(value);
    }
    return out;
  };
  const auto before = flatten(saved), after = flatten(now);
  std::map<std::string, RecipeChange> changes;
  for (const auto& [key, value] : before) {
    auto it = after.find(key);
    if (it == after.end() || it->second != value) changes[key] = {key, value, it == after.end() ? "(unset)" : it->second};
  }
  for (const auto& [key, value] : after) {
    if (!before.count(key)) changes[key] = {key, "(unset)", value};
  }
  std::vector<RecipeChange> out;
  for (auto& [key, change] : changes) out.push_back(std::move(change));
  return out;
}

StatusOr<std::vector<RecipeChange>> check_resume_recipe(const fs::path& run_dir, const ResolvedRecipe& now,
                                                        const PluginRegistry& registry, ResolvedRecipe* saved) {
  const fs::path file = run_dir / "recipe.toml";
  auto parsed = parse_recipe_file(file);
  if (!parsed.ok()) {
    return Status::InvalidArgument(fmt::format("--resume {}: cannot read the run's recipe: {}", run_dir.string(),
                                               parsed.status().message()));
  }
  ResolvedRecipe old;
  const auto diags = validate_recipe(parsed.value(), registry, &old);
  if (!diags.empty()) {
    std::string all;
    for (const auto& d : diags) all += "\n  " + d.str();
    return Status::InvalidArgument(fmt::format("--resume {}: the run's recipe does not validate with the plugins "
                                               "found now:{}", run_dir.string(), all));
  }
  auto changes = recipe_changes(old, now);
  std::string refused;
  for (const auto& c : changes) {
    if (!resume_may_change(c.key)) refused += fmt::format("\n  {}: {} -> {}", c.key, c.before, c.after);
  }
  if (!refused.empty()) {
    return Status::InvalidArgument(fmt::format(
        "--resume {}: the recipe differs from the run's own ({}) in keys that change what the remaining steps "
        "compute:{}\nresume with the run's recipe (changing at most {}), or start a new run", run_dir.string(),
        file.string(), refused, fmt::join(kResumeMayChange, ", ")));
  }
  if (saved != nullptr) *saved = std::move(old);
  return changes;
}

Status record_resume(const fs::path& run_dir, int64_t step, const std::vector<RecipeChange>& changes,
                     const ResolvedRecipe& saved, const ResolvedRecipe& now) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : changes) list.push_back({{"key", c.key}, {"old", c.before}, {"new", c.after}});
  std::time_t t = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  const nlohmann::json entry = {{"step", step}, {"time", stamp}, {"resume_changes", list}};
  // The record first: a crash before the recipe is replaced leaves the change recorded, and the next resume sees and
  // records it again.
  const fs::path record = run_dir / "resumes.jsonl";
  std::string text;
  if (std::ifstream in(record, std::ios::binary); in) text.assign(std::istreambuf_iterator<char>(in), {});
  if (!text.empty() && text.back() != '\n') text += '\n';
  text += entry.dump() + "\n";
  if (auto st = write_file_atomically(record, text); !st.ok()) return st;
  if (changes.empty()) return Status::Ok();
  ResolvedRecipe updated = now;
  if (auto it = saved.sections.find("output"); it != saved.sections.end()) updated.sections["output"] = it->second;
  for (const auto& c : changes) spdlog::info("--resume changes {}: {} -> {}", c.key, c.before, c.after);
  return write_file_atomically(run_dir / "recipe.toml", updated.to_toml());
}

}  // namespace loft
