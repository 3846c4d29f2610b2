// Run folders: the lock (exclusive, named holder, released when its process dies), what a new run may do to an
// existing folder, unique default names, and which recipe keys --resume may change.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "loft/framework/files.h"
#include "loft/framework/run_folder.h"

namespace loft {
namespace {

class RunFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/loft_run_folder_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { EXPECT_TRUE(remove_tree(root_).ok()); }
  // A folder as a finished run leaves it.
  fs::path earlier_run(const std::string& name) {
    const fs::path dir = root_ / name;
    EXPECT_TRUE(fs::create_directories(dir / "checkpoints" / "step-000001").ok());
    std::ofstream(dir / "recipe.toml") << "[train]\n";
    std::ofstream(dir / "metrics.jsonl") << "{}\n";
    return dir;
  }
  fs::path root_;
};

TEST_F(RunFolder, ASecondLockIsRefusedWithTheFolderAndTheHoldersPid) {
  auto first = RunFolderLock::acquire(root_);
  ASSERT_TRUE(first.ok()) << first.status().message();
  auto second = RunFolderLock::acquire(root_);  // another open file description: flock refuses it like another process
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = second.status().message();
  EXPECT_NE(message.find(root_.string()), std::string::npos) << message;
  EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
  { RunFolderLock released = std::move(first).value(); }
  EXPECT_TRUE(RunFolderLock::acquire(root_).ok()) << "the lock outlived its holder";
}

TEST_F(RunFolder, TheLockDiesWithItsProcess) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = RunFolderLock::acquire(root_);
    const char byte = lock.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &byte, 1);
    ::pause();  // killed while holding the lock
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  auto held = RunFolderLock::acquire(root_);
  ASSERT_FALSE(held.ok());
  EXPECT_NE(held.status().message().find("pid " + std::to_string(child)), std::string::npos) << held.status().message();
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(RunFolderLock::acquire(root_).ok()) << "a killed run's lock file blocks the folder";
}

TEST_F(RunFolder, ANewRunRefusesAnExistingFolderThatHoldsAnything) {
  const fs::path dir = earlier_run("named");
  // The early check (before the model is built) refuses alike and leaves no trace.
  const Status early = check_new_run_folder(dir, RunFolderMode::kNew);
  EXPECT_EQ(early.code(), StatusCode::kInvalidArgument) << early.message();
  EXPECT_FALSE(fs::exists(dir / kRunLockFileName));
  EXPECT_TRUE(check_new_run_folder(root_ / "absent", RunFolderMode::kNew).ok());
  EXPECT_FALSE(fs::exists(root_ / "absent"));
  auto refused = open_run_folder(dir, RunFolderMode::kNew);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  for (const char* hint : {"already exists", "--resume", "--overwrite", "output.name"}) {
    EXPECT_NE(refused.status().message().find(hint), std::string::npos) << refused.status().message();
  }
  EXPECT_TRUE(fs::exists(dir / "metrics.jsonl"));
  std::ofstream(root_ / "stranger") << "x";
  ASSERT_TRUE(fs::create_directories(root_ / "other").ok());
  std::ofstream(root_ / "other" / "notes.txt") << "x";
  auto other = open_run_folder(root_ / "other", RunFolderMode::kNew);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("no loft run folder"), std::string::npos) << other.status().message();
  EXPECT_EQ(other.status().message().find("--overwrite"), std::string::npos) << "--overwrite would refuse it";
  EXPECT_FALSE(open_run_folder(root_ / "stranger", RunFolderMode::kNew).ok()) << "a file where the folder goes";
  // Absent or empty: taken.
  ASSERT_TRUE(fs::create_directories(root_ / "empty").ok());
  EXPECT_TRUE(open_run_folder(root_ / "empty", RunFolderMode::kNew).ok());
  EXPECT_TRUE(open_run_folder(root_ / "deep" / "new", RunFolderMode::kNew).ok());
}

TEST_F(RunFolder, OverwriteEmptiesAnEarlierRunAndNothingElse) {
  const fs::path dir = earlier_run("named");
  auto lock = open_run_folder(dir, RunFolderMode::kOverwrite);
  ASSERT_TRUE(lock.ok()) << lock.status().message();
  std::vector<std::string> left;
  for (const auto& p : fs::list_directory(dir)) left.push_back(p.filename().string());
  EXPECT_EQ(left, std::vector<std::string>{kRunLockFileName});
  // While it is locked, nobody else may overwrite (or resume, or start) it.
  const fs::path again = earlier_run("named");
  for (auto mode : {RunFolderMode::kOverwrite, RunFolderMode::kResume, RunFolderMode::kNew}) {
    auto busy = open_run_folder(dir, mode);
    ASSERT_FALSE(busy.ok());
    EXPECT_NE(busy.status().message().find("in use by another loft process"), std::string::npos) << busy.status().message();
  }
  const Status early = check_new_run_folder(dir, RunFolderMode::kOverwrite);
  EXPECT_NE(early.message().find("in use by another loft process (pid " + std::to_string(::getpid())),
            std::string::npos) << early.message();
  EXPECT_TRUE(fs::exists(again / "metrics.jsonl")) << "a refused --overwrite deleted something";
  // A folder that is no run folder is never emptied.
  ASSERT_TRUE(fs::create_directories(root_ / "documents").ok());
  std::ofstream(root_ / "documents" / "thesis.tex") << "x";
  EXPECT_NE(check_new_run_folder(root_ / "documents", RunFolderMode::kOverwrite).message().find("not a loft run folder"),
            std::string::npos);
  auto refused = open_run_folder(root_ / "documents", RunFolderMode::kOverwrite);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not a loft run folder"), std::string::npos) << refused.status().message();
  EXPECT_TRUE(fs::exists(root_ / "documents" / "thesis.tex"));
}

TEST_F(RunFolder, ResumeNeedsAnExistingRunFolder) {
  auto missing = open_run_folder(root_ / "nowhere", RunFolderMode::kResume);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no such folder"), std::string::npos);
  ASSERT_TRUE(fs::create_directories(root_ / "plain").ok());
  auto plain = open_run_folder(root_ / "plain", RunFolderMode::kResume);
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.status().message().find("not a loft run folder"), std::string::npos) << plain.status().message();
  EXPECT_TRUE(open_run_folder(earlier_run("named"), RunFolderMode::kResume).ok());
}

TEST_F(RunFolder, DefaultNamesNeverCollide) {
  std::vector<RunFolderLock> locks;
  std::vector<std::string> names;
  std::ofstream(root_ / "demo-20260101-000000-3") << "a file takes the name too";
  for (int i = 0; i < 4; ++i) {
    auto lock = create_unique_run_folder(root_, "demo-20260101-000000");  // the same second, four times
    ASSERT_TRUE(lock.ok()) << lock.status().message();
    names.push_back(lock.value().folder().filename().string());
    locks.push_back(std::move(lock).value());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"demo-20260101-000000", "demo-20260101-000000-2",
                                              "demo-20260101-000000-4", "demo-20260101-000000-5"}));
}

ResolvedRecipe recipe(int64_t max_steps, double lr, const std::string& peft, const std::string& out_name) {
  ResolvedRecipe r;
  r.sections["train"] = Options("train", {{"max_steps", max_steps}, {"lr", lr}, {"save_every", int64_t{0}}});
  r.sections["peft"] = Options("peft", {{"r", int64_t{8}}});
  r.sections["output"] = Options("output", {{"name", out_name}});
  r.plugin_types["peft"] = peft;
  return r;
}

TEST(ResumeRecipe, EveryDifferenceIsListedAndOnlySafeKeysMayChange) {
  const ResolvedRecipe saved = recipe(40, 2e-4, "lora", "a");
  EXPECT_TRUE(recipe_changes(saved, recipe(40, 2e-4, "lora", "b")).empty()) << "[output] is --resume's business";
  ResolvedRecipe other_plugin = recipe(60, 1e-4, "dora", "a");
  other_plugin.sections["peft"] = Options("peft", {{"r", int64_t{8}}, {"use_magnitude", true}});  // dora's own key
  const auto changes = recipe_changes(saved, other_plugin);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].key, "peft.type");
  EXPECT_EQ(changes[0].before, "\"lora\"");
  EXPECT_EQ(changes[0].after, "\"dora\"");
  EXPECT_EQ(changes[1].key, "train.lr");
  EXPECT_EQ(changes[2].key, "train.max_steps");
  EXPECT_EQ(changes[2].before, "40");
  EXPECT_EQ(changes[2].after, "60");
  ResolvedRecipe extra = saved;
  extra.sections["peft"] = Options("peft", {{"r", int64_t{8}}, {"alpha", int64_t{16}}});
  const auto added = recipe_changes(saved, extra);
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].key, "peft.alpha");
  EXPECT_EQ(added[0].before, "(unset)");

  for (const char* key : {"train.max_steps", "train.epochs", "train.save_every", "train.keep_last", "train.log_every",
                          "train.profile_step", "quantizer.cache_dir", "budget.gpu_memory", "budget.host_memory"}) {
    EXPECT_TRUE(resume_may_change(key)) << key;
  }
  for (const char* key : {"train.lr", "train.batch_size", "train.grad_accum", "train.seed", "train.schedule",
                          "train.warmup_steps", "train.packing", "model.dtype", "model.path", "model.device",
                          "dataset.type", "dataset.limit", "dataset.max_length", "peft.type", "peft.r",
                          "optimizer.type", "quantizer.type", "offload.type"}) {
    EXPECT_FALSE(resume_may_change(key)) << key;
  }
}

}  // namespace
}  // namespace loft
