// checkpoints/ through crashes and over time: a step is never written twice, older checkpoints are pruned to
// train.keep_last only after `latest` names the new one, and resume finds the newest complete checkpoint when
// `latest` is missing or names a missing or incomplete folder.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include <torch/torch.h>

#include "loft/framework/chunked_loss.h"
#include "loft/framework/checkpoint_folder.h"
#include "loft/framework/files.h"
#include "loft/framework/trainer.h"

namespace loft {
namespace {

// Embedding -> lm_head, both trainable.
class TinyLM : public CausalLM {
 public:
  TinyLM() {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
    embed_ = torch::randn({kVocab, 8}, gen).requires_grad_();
    head_ = torch::randn({kVocab, 8}, gen).mul_(0.3).requires_grad_();
  }
  at::Tensor hidden_states(const at::Tensor& ids, const at::Tensor&, bool) override { return torch::embedding(embed_, ids); }
  at::Tensor lm_head_weight() override { return head_; }
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override {
    return {{"embed", embed_}, {"head", head_}};
  }
  static constexpr int64_t kVocab = 11;

 private:
  at::Tensor embed_, head_;
};

std::vector<TokenizedExample> data() {
  std::vector<TokenizedExample> out;
  for (int i = 0; i < 16; ++i) {
    TokenizedExample e;
    for (int j = 0; j < 5; ++j) {
      e.input_ids.push_back((i + j) % TinyLM::kVocab);
      e.labels.push_back(j == 0 ? kIgnoreLabel : (i + j) % TinyLM::kVocab);
    }
    out.push_back(e);
  }
  return out;
}

class CheckpointFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/loft_checkpoint_folder_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { EXPECT_TRUE(remove_tree(root_).ok()); }

  TrainConfig config(int64_t steps, int64_t save_every, int64_t keep_last) {
    TrainConfig c;
    c.batch_size = 2;
    c.max_steps = steps;
    c.save_every = save_every;
    c.keep_last = keep_last;
    return c;
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& p : fs::list_directory(root_ / "checkpoints")) names.push_back(p.filename().string());
    return names;
  }
  std::string latest() const {
    std::ifstream in(root_ / "checkpoints" / "latest");
    std::string name;
    in >> name;
    return name;
  }
  // A file that the trainer never writes: it disappears when the folder is written again.
  void mark(const std::string& checkpoint) const { std::ofstream(root_ / "checkpoints" / checkpoint / "marker") << "x"; }
  bool marked(const std::string& checkpoint) const { return fs::exists(root_ / "checkpoints" / checkpoint / "marker"); }

  fs::path root_;
  std::vector<TokenizedExample> data_ = data();
};

TEST_F(CheckpointFolder, KeepLastPrunesOlderCheckpointsAfterLatestMovesOn) {
  for (int64_t keep : {1, 2, 3}) {
    SCOPED_TRACE("keep_last " + std::to_string(keep));
    ASSERT_TRUE(remove_tree(root_ / "checkpoints").ok());
    TinyLM model;
    Trainer t(config(6, 1, keep), model, data_, root_, c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train().ok());
    std::vector<std::string> want = {"latest"};
    for (int64_t s = 6 - keep + 1; s <= 6; ++s) want.push_back(checkpoint_folder_name(s));
    EXPECT_EQ(entries(), want);
    EXPECT_EQ(latest(), "step-000006");
    for (int64_t s = 6 - keep + 1; s <= 6; ++s) EXPECT_TRUE(is_complete_checkpoint(root_ / "checkpoints" / checkpoint_folder_name(s)));
  }
}

TEST_F(CheckpointFolder, PruningRemovesStalePartialFoldersAndLeavesLaterSteps) {
  ASSERT_TRUE(fs::create_directories(root_ / "checkpoints" / "step-000001.partial").ok());
  ASSERT_TRUE(fs::create_directories(root_ / "checkpoints" / "step-000009").ok());  // a later step: not ours to judge
  TinyLM model;
  Trainer t(config(2, 1, 1), model, data_, root_, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.train().ok());
  EXPECT_EQ(entries(), (std::vector<std::string>{"latest", "step-000002", "step-000009"}));
}

// The step saved by save_every (or loaded by a resume) is not written again at the end: a second write would replace
// the folder `latest` names, which is where a kill used to leave a run that could not be resumed.
TEST_F(CheckpointFolder, TheLastStepIsWrittenOnce) {
  TinyLM model;
  Trainer t(config(4, 2, 2), model, data_, root_, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.train_until(2).ok());  // --stop-after 2 on a save_every step
  mark("step-000002");
  ASSERT_TRUE(t.train_until(2).ok());
  EXPECT_TRUE(marked("step-000002")) << "step 2 was written a second time";
  ASSERT_TRUE(t.train().ok());  // max_steps a multiple of save_every
  mark("step-000004");
  EXPECT_TRUE(marked("step-000002"));
  // --resume of a finished run.
  TinyLM again;
  Trainer resumed(config(4, 2, 2), again, data_, root_, c10::Device(c10::kCPU));
  auto checkpoint = latest_checkpoint(root_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().message();
  ASSERT_TRUE(resumed.load_checkpoint(checkpoint.value()).ok());
  ASSERT_TRUE(resumed.train().ok());
  EXPECT_TRUE(marked("step-000004")) << "a resumed, finished run wrote its last step again";
}

// Writing a step that exists (a resume from an earlier `latest` retrains past it): the folder is exchanged whole,
// and `latest` names a complete folder all along.
TEST_F(CheckpointFolder, RepublishingAStepReplacesTheFolderWhole) {
  const fs::path dir = root_ / "checkpoints" / "step-000003";
  const std::vector<std::pair<std::string, std::string>> first = {
      {"trainable.pt", "a"}, {"optimizer.pt", "a"}, {"rng_cpu.pt", "a"},
      {"trainer.json", R"({"format": "loft-checkpoint", "version": 2, "step": 3})"}, {"old-only", "a"}};
  ASSERT_TRUE(publish_checkpoint(dir, first, 2).ok());
  auto second = first;
  second.pop_back();
  second[0].second = "b";
  ASSERT_TRUE(publish_checkpoint(dir, second, 2).ok());
  EXPECT_FALSE(fs::exists(dir / "old-only"));
  std::ifstream in(dir / "trainable.pt");
  std::string text;
  in >> text;
  EXPECT_EQ(text, "b");
  EXPECT_EQ(entries(), (std::vector<std::string>{"latest", "step-000003"}));
}

class LatestCheckpoint : public CheckpointFolder {
 protected:
  void SetUp() override {
    CheckpointFolder::SetUp();
    TinyLM model;
    Trainer t(config(3, 1, 3), model, data_, root_, c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train().ok());
  }
  std::string found() const {
    auto c = latest_checkpoint(root_);
    return c.ok() ? c.value().filename().string() : "error: " + c.status().message();
  }
};

TEST_F(LatestCheckpoint, FollowsLatestWhenItNamesACompleteFolder) {
  EXPECT_EQ(found(), "step-000003");
  std::ofstream(root_ / "checkpoints" / "latest") << "step-000002\n";  // a crash after the folder was placed
  EXPECT_EQ(found(), "step-000002");
}

TEST_F(LatestCheckpoint, FallsBackToTheNewestCompleteCheckpoint) {
  const fs::path checkpoints = root_ / "checkpoints";
  ASSERT_TRUE(remove_tree(checkpoints / "latest").ok());
  EXPECT_EQ(found(), "step-000003") << "latest missing";
  std::ofstream(checkpoints / "latest") << "step-000007\n";
  EXPECT_EQ(found(), "step-000003") << "latest names a missing folder";
  std::ofstream(checkpoints / "latest") << "step-000003\n";
  for (const char* file : {"optimizer.pt", "trainer.json", "rng_cpu.pt", "trainable.pt"}) {
    SCOPED_TRACE(file);
    const fs::path damaged = root_ / "damaged";
    ASSERT_TRUE(remove_tree(damaged).ok());
    ASSERT_TRUE(fs::rename(checkpoints / "step-000003", damaged).ok());
    ASSERT_TRUE(fs::create_directories(checkpoints / "step-000003").ok());
    for (const auto& f : fs::list_directory(damaged)) {
      if (f.filename() != file) ASSERT_TRUE(fs::rename(f, checkpoints / "step-000003" / f.filename()).ok());
    }
    EXPECT_EQ(found(), "step-000002") << "step 3 lacks " << file;
    ASSERT_TRUE(fs::rename(damaged / file, checkpoints / "step-000003" / file).ok());
    EXPECT_EQ(found(), "step-000003");
  }
  std::ofstream(checkpoints / "step-000003" / "trainer.json", std::ios::trunc) << R"({"format": "loft-checkpoint", "step": 2})";
  EXPECT_EQ(found(), "step-000002") << "trainer.json of another step";
  std::ofstream(checkpoints / "step-000003" / "trainer.json", std::ios::trunc) << "{ truncated";
  EXPECT_EQ(found(), "step-000002") << "unreadable trainer.json";
}

// A resume tidies what a kill left: `latest` names the checkpoint it loaded, older ones are pruned to keep_last.
TEST_F(LatestCheckpoint, AdoptingTheResumedCheckpointRepairsLatestAndPrunes) {
  const fs::path checkpoints = root_ / "checkpoints";
  ASSERT_TRUE(remove_tree(checkpoints / "latest").ok());
  ASSERT_TRUE(fs::create_directories(checkpoints / "step-000003.partial").ok());
  auto found = latest_checkpoint(root_);
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(adopt_checkpoint(found.value(), 2).ok());
  EXPECT_EQ(latest(), "step-000003");
  EXPECT_EQ(entries(), (std::vector<std::string>{"latest", "step-000002", "step-000003"}));
}

TEST_F(LatestCheckpoint, NoCompleteCheckpointIsAClearError) {
  const fs::path checkpoints = root_ / "checkpoints";
  for (const char* step : {"step-000001", "step-000002", "step-000003"}) ASSERT_TRUE(remove_tree(checkpoints / step).ok());
  ASSERT_TRUE(fs::create_directories(checkpoints / "step-000004.partial").ok());
  const std::string message = found();
  EXPECT_NE(message.find("no complete checkpoint"), std::string::npos) << message;
  EXPECT_NE(message.find("--overwrite"), std::string::npos) << message;
  ASSERT_TRUE(remove_tree(checkpoints).ok());
  EXPECT_NE(found().find("is it a loft run folder"), std::string::npos) << found();
}

}  // namespace
}  // namespace loft
