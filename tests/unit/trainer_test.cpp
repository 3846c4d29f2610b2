// The training loop on a toy causal LM: loss falls, accumulation equals one large batch, resume is exact.
#include <gtest/gtest.h>

#include <fstream>

#include <torch/torch.h>

#include "loft/framework/chunked_loss.h"
#include "loft/framework/files.h"
#include "loft/framework/trainer.h"
#include "toy_lm.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

fs::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("loft_trainer_test_" + std::to_string(::getpid())) / name;
  EXPECT_TRUE(remove_tree(d).ok());
  return d;
}

TrainConfig config(int64_t steps) {
  TrainConfig c;
  c.batch_size = 4;
  c.lr = 5e-2;
  c.max_steps = steps;
  c.warmup_steps = 2;
  c.schedule = ScheduleKind::kCosine;
  c.seed = 11;
  return c;
}

TEST(Trainer, LossFallsAndMetricsAreWritten) {
  ToyLM model(1);
  auto data = counting_data(64);
  auto dir = temp_dir("falls");
  Trainer t(config(40), model, data, dir, c10::Device(c10::kCPU));
  std::vector<double> losses;
  ASSERT_TRUE(t.train([&](const StepMetrics& m) { losses.push_back(m.loss); }).ok());
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  EXPECT_TRUE(fs::exists(dir / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "step-000040" / "trainable.pt"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "latest"));
}

// train.profile_step: that one step runs under Kineto; its trace and table land in <run>/profile/ and the table
// names the operators the step ran.
TEST(Trainer, ProfiledStepWritesTraceAndTable) {
  ToyLM model(1);
  auto data = counting_data(16);
  auto dir = temp_dir("profile");
  TrainConfig c = config(3);
  c.profile_step = 2;
  Trainer t(c, model, data, dir, c10::Device(c10::kCPU));
  std::vector<std::string> tables;
  ASSERT_TRUE(t.train([&](const StepMetrics& m) { tables.push_back(m.profile); }).ok());
  ASSERT_EQ(tables.size(), 3u);
  EXPECT_TRUE(tables[0].empty());
  EXPECT_TRUE(tables[2].empty());
  EXPECT_NE(tables[1].find("CPU operator time"), std::string::npos) << tables[1];
  EXPECT_NE(tables[1].find("aten::"), std::string::npos) << tables[1];
  EXPECT_TRUE(fs::exists(dir / "profile" / "step-000002.json"));
  EXPECT_GT(fs::file_size(dir / "profile" / "step-000002.json"), 1000u);
  EXPECT_TRUE(fs::exists(dir / "profile" / "step-000002.txt"));
}

TEST(Trainer, AccumulationEqualsOneLargeBatch) {
  auto data = counting_data(32);
  ToyLM a(2), b(2);
  TrainConfig one = config(3), two = config(3);
  one.batch_size = 4;
  two.batch_size = 2;
  two.grad_accum = 2;
  Trainer ta(one, a, data, temp_dir("acc1"), c10::Device(c10::kCPU));
  Trainer tb(two, b, data, temp_dir("acc2"), c10::Device(c10::kCPU));
  ASSERT_TRUE(ta.train().ok());
  ASSERT_TRUE(tb.train().ok());
  auto pa = a.trainable_parameters(), pb = b.trainable_parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    // Micro-batches pad to their own lengths, so only float rounding differs.
    EXPECT_TRUE(torch::allclose(pa[i].second, pb[i].second, 1e-5, 1e-6)) << pa[i].first;
  }
}

TEST(Trainer, ResumeIsBitExactWithDropout) {
  auto data = counting_data(48);
  ToyLM straight(3, 0.1), resumed(3, 0.1);
  torch::manual_seed(99);
  Trainer t1(config(20), straight, data, temp_dir("straight"), c10::Device(c10::kCPU));
  ASSERT_TRUE(t1.train().ok());

  torch::manual_seed(99);
  auto dir = temp_dir("resumed");
  {
    // Train 10 of the 20 steps (the schedule still spans 20), checkpoint, and abandon this trainer.
    ToyLM first_half(3, 0.1);
    Trainer t(config(20), first_half, data, dir, c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train_until(10).ok());
  }
  torch::manual_seed(12345);  // whatever the RNG did in between, the checkpoint restores it
  Trainer t2(config(20), resumed, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t2.load_checkpoint(dir / "checkpoints" / "step-000010").ok());
  EXPECT_EQ(t2.step(), 10);
  ASSERT_TRUE(t2.train().ok());
  auto ps = straight.trainable_parameters(), pr = resumed.trainable_parameters();
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(torch::equal(ps[i].second, pr[i].second)) << ps[i].first;
}

TEST(Trainer, RemoveTreeDeletesNestedFolders) {
  auto d = temp_dir("tree");
  fs::create_directories(d / "a" / "b");
  std::ofstream(d / "a" / "b" / "f") << "x";
  ASSERT_TRUE(remove_tree(d).ok());
  EXPECT_FALSE(fs::exists(d));
  EXPECT_TRUE(remove_tree(d).ok());  // absent is fine
}

TEST(Trainer, RewritingACheckpointReplacesIt) {
  ToyLM model(5);
  auto data = counting_data(8);
  auto dir = temp_dir("rewrite");
  Trainer t(config(2), model, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.train().ok());
  const auto ckpt = dir / "checkpoints" / "step-000002";
  std::ofstream(ckpt / "stale-marker") << "written before the rewrite";
  // Another state under the same name: the rewrite must hold it, and nothing of the old folder may survive.
  {
    at::NoGradGuard no_grad;
    for (auto& [name, t] : model.trainable_parameters()) t.fill_(0.25);
  }
  ASSERT_TRUE(t.save_checkpoint(ckpt).ok());  // over an existing, full folder
  EXPECT_FALSE(fs::exists(ckpt / "stale-marker")) << "the old checkpoint folder was not replaced";
  ToyLM fresh(6);
  Trainer reader(config(2), fresh, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(reader.load_checkpoint(ckpt).ok());
  for (auto& [name, t] : fresh.trainable_parameters()) {
    EXPECT_TRUE(torch::equal(t, torch::full_like(t, 0.25))) << name << " was not rewritten";
  }
  EXPECT_EQ(reader.step(), 2);
}

TEST(Trainer, BrokenCheckpointIsAClearError) {
  ToyLM model(4);
  auto data = counting_data(8);
  auto dir = temp_dir("broken");
  Trainer t(config(1), model, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.train().ok());
  auto ckpt = dir / "checkpoints" / "step-000001";
  std::ofstream(ckpt / "trainable.pt", std::ios::trunc) << "garbage";
  auto st = t.load_checkpoint(ckpt);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unreadable"), std::string::npos) << st.message();
  EXPECT_FALSE(t.load_checkpoint(dir / "nope").ok());
}

}  // namespace
}  // namespace loft
