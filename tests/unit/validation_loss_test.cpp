// [eval]'s validation loss: equal to the loss computed directly (demo-size Qwen2 and a toy model with dropout), in
// eval mode, leaving the RNG as it was; the trainer's val records at the right steps, training bit-identical with and
// without them, and a crashed run resumed to the same metrics.jsonl.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "loft/framework/files.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/trainer.h"
#include "loft/framework/validation_loss.h"
#include "model_test_support.h"
#include "toy_lm.h"

namespace fs = std::filesystem;

namespace loft {
namespace {

fs::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("loft_validation_test_" + std::to_string(::getpid())) / name;
  EXPECT_TRUE(remove_tree(d).ok());
  return d;
}

// Examples of `vocab` ids, lengths 5..(5 + n), the first `prompt` tokens masked out of the labels.
std::vector<TokenizedExample> random_examples(int n, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<TokenizedExample> out;
  for (int i = 0; i < n; ++i) {
    TokenizedExample e;
    const int64_t len = 5 + i, prompt = 2 + i % 3;
    auto ids = at::randint(vocab, {len}, gen, at::kLong);
    for (int64_t j = 0; j < len; ++j) {
      e.input_ids.push_back(static_cast<int32_t>(ids[j].item<int64_t>()));
      e.labels.push_back(j < prompt ? kIgnoreLabel : ids[j].item<int64_t>());
    }
    out.push_back(e);
  }
  return out;
}

// The mean over label tokens of -log softmax(logits)[next token], one example at a time, in float64: the loss
// without batching, padding or chunking.
ValidationLoss direct_loss(const std::function<at::Tensor(const at::Tensor& ids)>& logits_of,
                           const std::vector<TokenizedExample>& examples) {
  at::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  for (const auto& e : examples) {
    auto ids = at::tensor(std::vector<int64_t>(e.input_ids.begin(), e.input_ids.end())).unsqueeze(0);
    auto logp = at::log_softmax(logits_of(ids)[0].to(at::kDouble), -1);
    for (size_t t = 0; t + 1 < e.labels.size(); ++t) {
      if (e.labels[t + 1] == kIgnoreLabel) continue;
      sum -= logp[static_cast<int64_t>(t)][e.labels[t + 1]].item<double>();
      ++count;
    }
  }
  return {sum / static_cast<double>(count), count};
}

TEST(ValidationLoss, EqualsTheDirectLossOnTheDemoModel) {
  auto config = read_qwen2_config(LOFT_SOURCE_DIR "/models/demo/config.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto model = Qwen2Model::create_random(config.value(), 5, testing::cpu_options(at::kFloat));
  ASSERT_TRUE(model.ok()) << model.status().message();
  Qwen2Model& lm = *model.value();
  const auto examples = random_examples(7, config.value().vocab_size, 3);
  const ValidationLoss want = direct_loss(
      [&](const at::Tensor& ids) { return lm.logits(ids, at::tensor({ids.size(1)}), /*training=*/false); }, examples);
  for (int64_t batch : {1, 3, 7}) {
    for (int64_t pack : {int64_t{0}, int64_t{32}}) {
      SCOPED_TRACE("batch " + std::to_string(batch) + ", pack_length " + std::to_string(pack));
      const ValidationLoss got = validation_loss(lm, examples, batch, /*pad_id=*/0, pack, c10::Device(c10::kCPU));
      EXPECT_EQ(got.label_tokens, want.label_tokens);
      EXPECT_NEAR(got.loss, want.loss, 1e-5 * want.loss);
    }
  }
}

// No dropout (eval mode), no gradient, and the generators as they were: a model that draws random numbers in every
// forward, training or not, leaves no trace.
TEST(ValidationLoss, RunsInEvalModeAndLeavesTheGeneratorsAlone) {
  ToyLM model(3, /*dropout=*/0.5);
  model.tamper = [](const at::Tensor& h, int64_t) { return h + 0 * at::rand({1}); };
  const auto examples = counting_data(9);
  const ValidationLoss want = direct_loss(
      [&](const at::Tensor& ids) {
        return at::matmul(model.hidden_states(ids, at::tensor({ids.size(1)}), /*training=*/false),
                          model.lm_head_weight().t());
      },
      examples);
  at::manual_seed(17);
  const at::Tensor before = at::globalContext().defaultGenerator(c10::kCPU).get_state();
  const ValidationLoss got = validation_loss(model, examples, 4, 0, 0, c10::Device(c10::kCPU));
  EXPECT_TRUE(at::equal(at::globalContext().defaultGenerator(c10::kCPU).get_state(), before));
  EXPECT_EQ(got.label_tokens, want.label_tokens);
  EXPECT_NEAR(got.loss, want.loss, 1e-6 * want.loss);
  for (const auto& [name, t] : model.trainable_parameters()) EXPECT_FALSE(t.grad().defined()) << name;
}

TrainConfig config(int64_t steps) {
  TrainConfig c;
  c.batch_size = 4;
  c.lr = 5e-2;
  c.max_steps = steps;
  c.warmup_steps = 2;
  c.seed = 11;
  return c;
}

std::vector<nlohmann::json> records(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    for (const char* timing : {"tokens_per_s", "peak_gpu_bytes", "peak_host_bytes"}) j.erase(timing);
    out.push_back(j);
  }
  return out;
}

std::vector<int64_t> val_steps(const std::vector<nlohmann::json>& records) {
  std::vector<int64_t> steps;
  for (const auto& r : records) {
    if (r.contains("val_loss")) steps.push_back(r["step"].get<int64_t>());
  }
  return steps;
}

// Dropout and a model that draws random numbers in every forward: the training losses and the weights are the same
// bit for bit with [eval]; its records come after their step's record, every `every` steps and at the last step.
TEST(TrainerValidation, RecordsAtTheirStepsAndTrainingIsBitIdentical) {
  const auto data = counting_data(40), held_out = counting_data(13);
  auto drawing = [](const at::Tensor& h, int64_t) { return h + 0 * at::rand({1}); };
  ToyLM plain_model(2, 0.3), eval_model(2, 0.3);
  plain_model.tamper = eval_model.tamper = drawing;
  std::vector<double> plain_losses, eval_losses;
  {
    at::manual_seed(5);
    Trainer t(config(10), plain_model, data, temp_dir("plain"), c10::Device(c10::kCPU));
    ASSERT_TRUE(t.train([&](const StepMetrics& m) { plain_losses.push_back(m.loss); }).ok());
  }
  const fs::path dir = temp_dir("with_eval");
  {
    at::manual_seed(5);
    Trainer t(config(10), eval_model, data, dir, c10::Device(c10::kCPU));
    t.set_validation(&held_out, 3);
    ASSERT_TRUE(t.train([&](const StepMetrics& m) { eval_losses.push_back(m.loss); }).ok());
  }
  ASSERT_EQ(plain_losses.size(), 10u);
  EXPECT_EQ(eval_losses, plain_losses);  // exact
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(at::equal(plain_model.trainable_parameters()[i].second, eval_model.trainable_parameters()[i].second))
        << eval_model.trainable_parameters()[i].first;
  }
  const auto written = records(dir / "metrics.jsonl");
  EXPECT_EQ(val_steps(written), (std::vector<int64_t>{3, 6, 9, 10}));
  for (size_t i = 0; i < written.size(); ++i) {
    if (!written[i].contains("val_loss")) continue;
    EXPECT_FALSE(written[i].contains("loss")) << written[i].dump();
    ASSERT_GT(i, 0u);
    EXPECT_EQ(written[i - 1]["step"], written[i]["step"]) << "a val record follows its step's training record";
    EXPECT_EQ(written[i]["val_label_tokens"], written.back()["val_label_tokens"]) << "always the whole held-out set";
  }
  // The last record is the loss of the trained model over the held-out examples.
  const ValidationLoss final_loss = validation_loss(eval_model, held_out, 4, 0, 0, c10::Device(c10::kCPU));
  EXPECT_EQ(written.back()["step"], 10);
  EXPECT_EQ(written.back()["val_loss"].get<double>(), final_loss.loss);
  EXPECT_EQ(written.back()["val_label_tokens"].get<int64_t>(), final_loss.label_tokens);

  // every = 0: only the last step.
  ToyLM once_model(2, 0.3);
  const fs::path once = temp_dir("once");
  Trainer t(config(4), once_model, data, once, c10::Device(c10::kCPU));
  t.set_validation(&held_out, 0);
  ASSERT_TRUE(t.train().ok());
  EXPECT_EQ(val_steps(records(once / "metrics.jsonl")), (std::vector<int64_t>{4}));
}

// A run that fails after step 9 (checkpoint at step 6): the resumed run drops the records after step 6, val records
// included, and writes what a run without the failure writes.
TEST(TrainerValidation, AResumedRunWritesTheSameRecords) {
  const auto data = counting_data(40), held_out = counting_data(11);
  TrainConfig c = config(10);
  c.save_every = 3;
  const fs::path straight = temp_dir("straight"), crashed = temp_dir("crashed");
  {
    ToyLM model(4, 0.2);
    at::manual_seed(8);
    Trainer t(c, model, data, straight, c10::Device(c10::kCPU));
    t.set_validation(&held_out, 2);
    ASSERT_TRUE(t.train().ok());
  }
  {
    ToyLM model(4, 0.2);
    at::manual_seed(8);
    Trainer t(c, model, data, crashed, c10::Device(c10::kCPU));
    t.set_validation(&held_out, 2);
    t.set_step_check([](int64_t step) { return step == 9 ? Status::Internal("injected") : Status::Ok(); });
    ASSERT_FALSE(t.train().ok());
  }
  EXPECT_EQ(val_steps(records(crashed / "metrics.jsonl")), (std::vector<int64_t>{2, 4, 6, 8}));
  {
    ToyLM model(4, 0.2);
    Trainer t(c, model, data, crashed, c10::Device(c10::kCPU));
    t.set_validation(&held_out, 2);
    ASSERT_TRUE(t.load_checkpoint(crashed / "checkpoints" / "step-000006").ok());
    ASSERT_TRUE(t.train().ok());
  }
  const auto want = records(straight / "metrics.jsonl"), got = records(crashed / "metrics.jsonl");
  EXPECT_EQ(val_steps(got), (std::vector<int64_t>{2, 4, 6, 8, 10}));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << i;
}

}  // namespace
}  // namespace loft
