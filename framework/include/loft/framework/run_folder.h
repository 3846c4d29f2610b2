// Run folders: one process owns a run folder at a time (a lock file inside it, held for the whole run), a new run
// never writes into an earlier run's folder unless told to (--overwrite), default names never collide, and a
// --resume may change only the recipe keys that keep the run exact, with a record of each change.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "loft/framework/recipe.h"
#include "loft/status.h"

namespace loft {

class PluginRegistry;

// The lock file inside a run folder: flock(2)ed exclusively by the process that runs in the folder; holds its pid.
inline constexpr const char* kRunLockFileName = ".loft.lock";

// An exclusive lock on a run folder, held until destruction or the end of the process (the kernel releases it on
// exit, crash or kill, so a stale lock file never blocks). Move-only.
class RunFolderLock {
 public:
  // Takes the lock on `run_dir` (an existing folder) without waiting. kInvalidArgument when another process holds
  // it: the message names the folder and that process's pid.
  static StatusOr<RunFolderLock> acquire(const std::filesystem::path& run_dir);

  RunFolderLock(RunFolderLock&& other) noexcept;
  RunFolderLock& operator=(RunFolderLock&& other) noexcept;
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;
  ~RunFolderLock();

  const std::filesystem::path& folder() const { return folder_; }

 private:
  RunFolderLock() = default;
  int fd_ = -1;
  std::filesystem::path folder_;
};

enum class RunFolderMode {
  kNew,        // create the folder; an existing one must be empty
  kOverwrite,  // as kNew, but an earlier run's folder is emptied first (a folder that is no run folder is refused)
  kResume,     // the folder must be a run folder (recipe.toml)
};

// What open_run_folder(dir, kNew or kOverwrite) would refuse now, found without creating or changing anything: run
// before the slow setup so that a refusal comes at once (open_run_folder checks again, under the lock).
Status check_new_run_folder(const std::filesystem::path& dir, RunFolderMode mode);

// Creates (kNew, kOverwrite) or opens (kResume) the run folder `dir` and locks it. Refusals are kInvalidArgument or
// kNotFound with the folder named and the way out (`--resume`, `--overwrite`, another output.name). Fault point
// overwrite.clearing: before each entry of an earlier run is deleted.
StatusOr<RunFolderLock> open_run_folder(const std::filesystem::path& dir, RunFolderMode mode);

// A new, locked folder below `parent` named `base`, or `base`-2, `base`-3, ... when that name is taken: each try is
// one mkdir(2), which fails on an existing name, so two runs started in the same second get different folders.
StatusOr<RunFolderLock> create_unique_run_folder(const std::filesystem::path& parent, const std::string& base);

// One difference between the recipe a run was started with and the one given to --resume.
struct RecipeChange {
  std::string key;     // section.key
  std::string before;  // as a recipe spells it; "(unset)" when absent
  std::string after;
};

// Whether --resume may change `key` (section.key) without breaking the run's exactness; see run_folder.cpp.
bool resume_may_change(const std::string& key);

// The differences between `saved` and `now` (every section but [output]: --resume names the folder), sorted by key.
// Where a plugin section's type differs, that is its one difference.
std::vector<RecipeChange> recipe_changes(const ResolvedRecipe& saved, const ResolvedRecipe& now);

// The resumed run's saved recipe (<run>/recipe.toml), validated with `registry`, and what `now` changes in it.
// kInvalidArgument when a change is not allowed (resume_may_change): the message lists every difference as
// "key: old -> new", the refused ones marked. `saved` receives the validated saved recipe.
StatusOr<std::vector<RecipeChange>> check_resume_recipe(const std::filesystem::path& run_dir,
                                                        const ResolvedRecipe& now, const PluginRegistry& registry,
                                                        ResolvedRecipe* saved);

// Records a resume at checkpoint step `step`: one JSON line appended to <run>/resumes.jsonl
// ({"step", "time", "resume_changes": [{"key", "old", "new"}]}), then, when there are changes, <run>/recipe.toml
// replaced atomically by `now` with the saved [output] section. Both files are replaced atomically.
Status record_resume(const std::filesystem::path& run_dir, int64_t step, const std::vector<RecipeChange>& changes,
                     const ResolvedRecipe& saved, const ResolvedRecipe& now);

}  // namespace loft
