// The training loop when things go wrong: non-finite losses and gradients, a stop request, metrics.jsonl that cannot
// be written or holds records from after the checkpoint, and the SIGINT/SIGTERM flag.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "loft/adamw.h"
#include "loft/framework/files.h"
#include "loft/framework/param_groups.h"
#include "loft/framework/stop_signals.h"
#include "loft/framework/trainer.h"
#include "toy_lm.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

fs::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("loft_trainer_fault_test_" + std::to_string(::getpid())) / name;
  EXPECT_TRUE(remove_tree(d).ok());
  EXPECT_TRUE(loft::fs::create_directories(d).ok());
  return d;
}

TrainConfig config(int64_t steps) {
  TrainConfig c;
  c.batch_size = 4;
  c.lr = 5e-2;
  c.max_steps = steps;
  c.warmup_steps = 1;
  c.seed = 11;
  return c;
}

std::vector<std::pair<std::string, at::Tensor>> snapshot(const NamedTensors& tensors) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : tensors) out.emplace_back(name, t.detach().clone());
  return out;
}

void expect_equal(const NamedTensors& a, const NamedTensors& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << what << ": " << a[i].first << " changed";
  }
}

std::vector<nlohmann::json> read_metrics(const fs::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A trainer over `model` whose AdamW the test can look into.
struct Harness {
  Harness(const TrainConfig& c, ToyLM& model, const std::vector<TokenizedExample>& data, const fs::path& dir) {
    auto adamw = std::make_unique<AdamW>();
    optimizer = adamw.get();
    ParamGroup all;
    all.name = "default";
    all.tensors = model.trainable_parameters();
    auto groups = resolve_param_groups(all.tensors, {all}, c.weight_decay, "test");
    EXPECT_TRUE(groups.ok());
    trainer = std::make_unique<Trainer>(c, model, data, dir, c10::Device(c10::kCPU), std::move(adamw),
                                        std::move(groups).value());
  }
  AdamW* optimizer = nullptr;
  std::unique_ptr<Trainer> trainer;
};

// The ways a step goes non-finite: NaN in the forward pass (loss and gradients), Inf in the gradients only (the loss
// stays finite), NaN in one micro-batch of an accumulated step.
struct Poison {
  const char* name;
  int64_t grad_accum;
  bool loss_finite;
  std::function<at::Tensor(const at::Tensor&)> apply;
};

std::vector<Poison> poisons() {
  return {
      {"nan_forward", 1, false, [](const at::Tensor& h) { return h * kNaN; }},
      {"inf_gradient", 1, true,
       [](const at::Tensor& h) {
         at::Tensor out = h * 1.0;
         out.register_hook([](const at::Tensor& g) { return g * kInf; });
         return out;
       }},
      {"nan_in_one_micro_batch", 2, false, [](const at::Tensor& h) { return h * kNaN; }},
  };
}

class NonFiniteStep : public ::testing::TestWithParam<Poison> {};

// A skipped step leaves every weight and all optimizer state (the step counts included) as they were; the next
// finite step trains on.
TEST_P(NonFiniteStep, ChangesNoWeightNorOptimizerState) {
  const Poison& poison = GetParam();
  ToyLM model(1);
  auto data = counting_data(64);
  TrainConfig c = config(4);
  c.grad_accum = poison.grad_accum;
  // Poison the last forward of step 3.
  const int64_t poisoned_call = 3 * poison.grad_accum;
  model.tamper = [&](const at::Tensor& h, int64_t call) { return call == poisoned_call ? poison.apply(h) : h; };
  const fs::path dir = temp_dir(std::string("skip_") + poison.name);
  Harness h(c, model, data, dir);
  std::vector<StepMetrics> steps;
  auto record = [&](const StepMetrics& m) { steps.push_back(m); };
  ASSERT_TRUE(h.trainer->train_until(2, record).ok());
  const auto weights = snapshot(model.trainable_parameters());
  const auto state = snapshot(h.optimizer->state_dict());

  ASSERT_TRUE(h.trainer->train_until(3, record).ok());
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[2].nonfinite);
  EXPECT_TRUE(steps[2].skipped);
  EXPECT_EQ(std::isfinite(steps[2].loss), poison.loss_finite) << steps[2].loss;
  EXPECT_FALSE(std::isfinite(steps[2].grad_norm));
  expect_equal(weights, model.trainable_parameters(), "weights after the skipped step");
  expect_equal(state, h.optimizer->state_dict(), "optimizer state after the skipped step");
  EXPECT_TRUE(first_nonfinite_tensor(model.trainable_parameters()).empty());

  ASSERT_TRUE(h.trainer->train().ok());
  EXPECT_FALSE(steps[3].nonfinite);
  EXPECT_TRUE(first_nonfinite_tensor(model.trainable_parameters()).empty());
  EXPECT_FALSE(torch::equal(weights[0].second, model.trainable_parameters()[0].second)) << "step 4 did not train";
  for (const auto& [key, t] : h.optimizer->state_dict()) {
    if (key.rfind("step.", 0) == 0) EXPECT_EQ(t.item<double>(), 3.0) << key << ": the skipped step was counted";
  }
  const auto records = read_metrics(dir / "metrics.jsonl");
  ASSERT_EQ(records.size(), 4u);
  EXPECT_TRUE(records[2]["nonfinite"].get<bool>());
  EXPECT_FALSE(records[3]["nonfinite"].get<bool>());
}

INSTANTIATE_TEST_SUITE_P(Poisons, NonFiniteStep, ::testing::ValuesIn(poisons()),
                         [](const auto& info) { return std::string(info.param.name); });

// A non-finite step is recorded in metrics.jsonl even between log_every records.
TEST(TrainerFaults, NonFiniteStepIsRecordedWhateverLogEvery) {
  ToyLM model(2);
  auto data = counting_data(32);
  model.tamper = [](const at::Tensor& h, int64_t call) { return call == 3 ? h * kNaN : h; };
  TrainConfig c = config(6);
  c.log_every = 5;
  const fs::path dir = temp_dir("log_every");
  Trainer t(c, model, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.train().ok());
  const auto records = read_metrics(dir / "metrics.jsonl");
  std::vector<int64_t> logged;
  for (const auto& r : records) logged.push_back(r["step"].get<int64_t>());
  EXPECT_EQ(logged, (std::vector<int64_t>{3, 5, 6}));
  EXPECT_TRUE(records[0]["nonfinite"].get<bool>());
}

// More than max_nonfinite_steps in a row: an error naming the step, and a checkpoint at that step holding the weights
// of the last finite step. 0 stops at the first one.
TEST(TrainerFaults, TooManyNonFiniteStepsStopWithACheckpointOfTheLastGoodWeights) {
  for (int64_t limit : {0, 1, 2}) {
    SCOPED_TRACE("max_nonfinite_steps = " + std::to_string(limit));
    ToyLM model(3);
    auto data = counting_data(64);
    model.tamper = [](const at::Tensor& h, int64_t call) { return call >= 3 ? h * kNaN : h; };
    TrainConfig c = config(10);
    c.max_nonfinite_steps = limit;
    const fs::path dir = temp_dir("stop_" + std::to_string(limit));
    Trainer t(c, model, data, dir, c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train_until(2).ok());
    const auto good = snapshot(model.trainable_parameters());
    const int64_t stop_step = 3 + limit;
    Status st = t.train();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kInternal);
    EXPECT_NE(st.message().find("step " + std::to_string(stop_step) + ":"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("train.max_nonfinite_steps = " + std::to_string(limit)), std::string::npos)
        << st.message();
    EXPECT_NE(st.message().find("weights of step 2"), std::string::npos) << st.message();
    EXPECT_EQ(t.step(), stop_step);
    auto latest = latest_checkpoint(dir);
    ASSERT_TRUE(latest.ok());
    EXPECT_EQ(latest.value().filename().string(), "step-00000" + std::to_string(stop_step));
    ToyLM reread(99);
    ASSERT_TRUE(load_trainable_tensors(reread.trainable_parameters(), latest.value() / "trainable.pt").ok());
    expect_equal(good, reread.trainable_parameters(), "the stop checkpoint");
    EXPECT_EQ(read_metrics(dir / "metrics.jsonl").size(), static_cast<size_t>(stop_step));
  }
}

TEST(TrainerFaults, FirstNonFiniteTensorNamesIt) {
  NamedTensors tensors = {{"a", torch::ones({3})}, {"ids", torch::arange(4)}, {"b", torch::ones({2, 2})},
                          {"empty", torch::empty({0})}};
  EXPECT_EQ(first_nonfinite_tensor(tensors), "");
  tensors[2].second[1][0] = kInf;
  EXPECT_EQ(first_nonfinite_tensor(tensors), "b");
  tensors[0].second[2] = kNaN;
  EXPECT_EQ(first_nonfinite_tensor(tensors), "a");
}

// Weights that went non-finite are never checkpointed: the error names the tensor, the previous checkpoint stays.
TEST(TrainerFaults, CheckpointRefusesNonFiniteWeights) {
  ToyLM model(4);
  auto data = counting_data(16);
  const fs::path dir = temp_dir("refuse");
  Trainer t(config(3), model, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.train_until(2).ok());
  {
    at::NoGradGuard no_grad;
    model.trainable_parameters()[1].second[0][0] = kInf;
  }
  Status st = t.train();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("'w' holds NaN or Inf"), std::string::npos) << st.message();
  EXPECT_EQ(read_text(dir / "checkpoints" / "latest"), "step-000002\n");
  EXPECT_FALSE(loft::fs::exists(dir / "checkpoints" / "step-000003"));
}

// The stop check ends training after the step in progress, with a checkpoint of it; resuming from there ends where
// an uninterrupted run does.
TEST(TrainerFaults, StopCheckEndsTrainingWithACheckpointOfThatStep) {
  auto data = counting_data(48);
  ToyLM straight(5, 0.1), stopped(5, 0.1), resumed(5, 0.1);
  torch::manual_seed(7);
  Trainer ts(config(8), straight, data, temp_dir("straight"), c10::Device(c10::kCPU));
  ASSERT_TRUE(ts.train().ok());

  torch::manual_seed(7);
  const fs::path dir = temp_dir("stopped");
  {
    Trainer t(config(8), stopped, data, dir, c10::Device(c10::kCPU));
    t.set_stop_check([&] { return t.step() >= 3; });
    ASSERT_TRUE(t.train().ok());
    EXPECT_EQ(t.step(), 3);
  }
  EXPECT_EQ(read_text(dir / "checkpoints" / "latest"), "step-000003\n");
  EXPECT_EQ(read_metrics(dir / "metrics.jsonl").size(), 3u);
  Trainer t2(config(8), resumed, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t2.load_checkpoint(dir / "checkpoints" / "step-000003").ok());
  ASSERT_TRUE(t2.train().ok());
  expect_equal(straight.trainable_parameters(), resumed.trainable_parameters(), "stopped + resumed vs straight");
}

// metrics.jsonl on a full device (/dev/full: every write fails with ENOSPC), from the first record or in mid-run:
// training stops with an IoError naming the file and the cause, and the last checkpoint stays the latest.
TEST(TrainerFaults, MetricsWriteFailureStopsTraining) {
  if (!loft::fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  const std::string enospc = std::strerror(ENOSPC);
  {
    ToyLM model(6);
    auto data = counting_data(16);
    const fs::path dir = temp_dir("full_from_start");
    ASSERT_EQ(::symlink("/dev/full", (dir / "metrics.jsonl").c_str()), 0);
    Trainer t(config(4), model, data, dir, c10::Device(c10::kCPU));
    Status st = t.train();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kIoError);
    EXPECT_NE(st.message().find("metrics.jsonl: " + enospc), std::string::npos) << st.message();
    EXPECT_EQ(t.step(), 1);
    EXPECT_FALSE(loft::fs::exists(dir / "checkpoints" / "latest"));
  }
  {
    ToyLM model(6);
    auto data = counting_data(16);
    const fs::path dir = temp_dir("full_mid_run");
    TrainConfig c = config(6);
    c.save_every = 2;
    Trainer t(c, model, data, dir, c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train_until(3).ok());  // checkpoints 2 and 3
    ASSERT_EQ(::unlink((dir / "metrics.jsonl").c_str()), 0);
    ASSERT_EQ(::symlink("/dev/full", (dir / "metrics.jsonl").c_str()), 0);
    Status st = t.train();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("metrics.jsonl: " + enospc), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("training stopped after step 4"), std::string::npos) << st.message();
    EXPECT_EQ(read_text(dir / "checkpoints" / "latest"), "step-000003\n");
  }
}

// A resumed run starts metrics.jsonl over at its checkpoint: records a killed run wrote after the checkpoint (and a
// torn last line) are gone, every step appears once.
TEST(TrainerFaults, ResumeDropsMetricsWrittenAfterTheCheckpoint) {
  auto data = counting_data(32);
  const fs::path dir = temp_dir("resume_metrics");
  {
    ToyLM model(8);
    Trainer t(config(6), model, data, dir, c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train_until(3).ok());
  }
  const std::string before = read_text(dir / "metrics.jsonl");
  std::ofstream(dir / "metrics.jsonl", std::ios::app) << "{\"step\":4,\"loss\":1.0}\n{\"step\":5,\"loss\":1.0}\n{\"step\":6,\"lo";
  ToyLM model(8);
  Trainer t(config(6), model, data, dir, c10::Device(c10::kCPU));
  ASSERT_TRUE(t.load_checkpoint(dir / "checkpoints" / "step-000003").ok());
  ASSERT_TRUE(t.train().ok());
  const std::string after = read_text(dir / "metrics.jsonl");
  EXPECT_EQ(after.substr(0, before.size()), before);
  std::vector<int64_t> steps;
  for (const auto& r : read_metrics(dir / "metrics.jsonl")) steps.push_back(r["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(TrainerFaults, TruncateMetricsKeepsWhatItCannotRead) {
  const fs::path dir = temp_dir("truncate");
  const fs::path file = dir / "metrics.jsonl";
  auto dropped = truncate_metrics(file, 3);  // absent: nothing to do
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped.value(), 0);
  EXPECT_FALSE(loft::fs::exists(file));

  const std::string kept = "{\"step\":1}\nnot json\n{\"no_step\":true}\n{\"step\":3}\n";
  std::ofstream(file) << kept << "{\"step\":4}\n{\"step\":2}\n{\"step\":5";
  dropped = truncate_metrics(file, 3);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped.value(), 2);  // step 4 and the torn last line; a later, lower step stays
  EXPECT_EQ(read_text(file), kept + "{\"step\":2}\n");

  struct stat before {}, after {};
  ASSERT_EQ(::stat(file.c_str(), &before), 0);
  dropped = truncate_metrics(file, 3);  // nothing to drop: the file is not rewritten
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped.value(), 0);
  ASSERT_EQ(::stat(file.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  const fs::path device = dir / "device.jsonl";  // not a regular file: left alone, never read
  ASSERT_EQ(::symlink("/dev/zero", device.c_str()), 0);
  dropped = truncate_metrics(device, 0);
  ASSERT_TRUE(dropped.ok());
  EXPECT_EQ(dropped.value(), 0);
}

void count_signal(int) {}

// The first SIGINT/SIGTERM only sets the flag (the process lives on), a signal the parent ignored stays ignored, and
// the previous handlers come back afterwards.
TEST(StopSignals, FirstSignalSetsTheFlagAndHandlersAreRestored) {
  struct sigaction mine {}, ignore {}, seen {};
  mine.sa_handler = count_signal;
  sigemptyset(&mine.sa_mask);
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ASSERT_EQ(sigaction(SIGTERM, &mine, nullptr), 0);
  ASSERT_EQ(sigaction(SIGINT, &ignore, nullptr), 0);
  EXPECT_EQ(stop_signal(), 0);
  {
    StopOnSignals guard;
    ASSERT_EQ(::raise(SIGINT), 0);
    EXPECT_EQ(stop_signal(), 0) << "an ignored SIGINT asked to stop";
    ASSERT_EQ(::raise(SIGTERM), 0);
    EXPECT_EQ(stop_signal(), SIGTERM);
    EXPECT_EQ(exit_code_for_signal(stop_signal()), 143);
  }
  ASSERT_EQ(sigaction(SIGTERM, nullptr, &seen), 0);
  EXPECT_EQ(seen.sa_handler, count_signal);
  ASSERT_EQ(sigaction(SIGINT, nullptr, &seen), 0);
  EXPECT_EQ(seen.sa_handler, SIG_IGN);
  EXPECT_EQ(exit_code_for_signal(SIGINT), 130);
}

}  // namespace
}  // namespace loft
