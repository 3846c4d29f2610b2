// summary.json: what it takes from metrics.jsonl (training and validation records), eval.json, the process's own
// step timings, the plan and the saved folder.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "loft/framework/files.h"
#include "loft/framework/run_summary.h"

namespace loft {
namespace {

class RunSummaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/loft_summary_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    run_ = pattern;
  }
  void TearDown() override { EXPECT_TRUE(remove_tree(run_).ok()); }
  nlohmann::json written() {
    std::ifstream in(run_ / "summary.json");
    return nlohmann::json::parse(in);
  }
  fs::path run_;
};

TEST(MedianAfterFirst, LeavesTheWarmUpStepOut) {
  EXPECT_FALSE(median_after_first({}).has_value());
  EXPECT_EQ(median_after_first({5}), 5);
  EXPECT_EQ(median_after_first({100, 3}), 3);
  EXPECT_EQ(median_after_first({100, 3, 1, 2}), 2);
  EXPECT_EQ(median_after_first({100, 4, 1, 2, 3}), 2.5);
}

TEST_F(RunSummaryTest, CombinesTheRunsFilesWithWhatTheProcessMeasured) {
  std::ofstream(run_ / "metrics.jsonl")
      << R"({"step":1,"loss":6.0,"tokens_per_s":10,"peak_gpu_bytes":100,"peak_host_bytes":900})" "\n"
      << R"({"step":2,"loss":5.0,"tokens_per_s":50,"peak_gpu_bytes":300,"peak_host_bytes":700})" "\n"
      << R"({"step":2,"val_loss":5.5,"val_label_tokens":40})" "\n"
      << R"({"step":3,"loss":4.0,"tokens_per_s":70,"peak_gpu_bytes":200,"peak_host_bytes":800})" "\n"
      << R"({"step":3,"val_loss":4.5,"val_label_tokens":40})" "\n";
  std::ofstream(run_ / "eval.json") << R"({"total": 4, "correct": 1, "accuracy": 0.25})";
  ASSERT_TRUE(fs::create_directories(run_ / "adapter" / "sub").ok());
  std::ofstream(run_ / "adapter" / "a.safetensors") << std::string(1000, 'x');
  std::ofstream(run_ / "adapter" / "sub" / "b.json") << std::string(24, 'y');
  RunSummaryFacts facts;
  facts.steps = 3;
  facts.wall_s = 12.5;
  facts.tokens_per_s = {1, 40, 60};  // the process's own: the first (warm-up) is left out
  facts.step_time_s = {9, 0.2, 0.4};
  facts.trainable_params = 1234;
  facts.saved = run_ / "adapter";
  MemoryPrediction plan;
  plan.device = "cuda";
  plan.gpu = {{"weights", 10, ""}, {"activations", 20, ""}};
  plan.host = {{"other", 5, ""}};
  plan.gpu_total_bytes = 30;
  plan.host_total_bytes = 5;
  facts.planned = plan;
  ASSERT_TRUE(write_run_summary(run_, facts).ok());
  const auto s = written();
  EXPECT_EQ(s["format"], "loft-run-summary");
  EXPECT_EQ(s["version"], 1);
  EXPECT_EQ(s["status"], "finished");
  EXPECT_EQ(s["steps"], 3);
  EXPECT_EQ(s["wall_s"], 12.5);
  EXPECT_EQ(s["tokens_per_s"], 50.0);
  EXPECT_DOUBLE_EQ(s["step_time_s"].get<double>(), 0.3);
  EXPECT_EQ(s["peak_gpu_bytes"], 300);
  EXPECT_EQ(s["peak_host_bytes"], 900);
  EXPECT_EQ(s["final_loss"], 4.0);
  EXPECT_EQ(s["val_loss"], 4.5);
  EXPECT_EQ(s["eval_accuracy"], 0.25);
  EXPECT_EQ(s["trainable_params"], 1234);
  EXPECT_EQ(s["adapter_bytes"], 1024);
  EXPECT_EQ(s["planned"]["gpu_bytes"], 30);
  EXPECT_EQ(s["planned"]["host_bytes"], 5);
  EXPECT_EQ(s["planned"]["gpu_by_category"], (nlohmann::json{{"weights", 10}, {"activations", 20}}));
  EXPECT_EQ(s["planned"]["host_by_category"], (nlohmann::json{{"other", 5}}));
}

TEST_F(RunSummaryTest, WithoutValidationEvalPlanOrStepsOfItsOwnTheFieldsAreNullOrFromTheMetrics) {
  std::ofstream(run_ / "metrics.jsonl")
      << R"({"step":1,"loss":6.0,"tokens_per_s":10,"peak_gpu_bytes":0,"peak_host_bytes":900})" "\n"
      << R"({"step":2,"loss":5.0,"tokens_per_s":30,"peak_gpu_bytes":0,"peak_host_bytes":700})" "\n";
  RunSummaryFacts facts;  // a resumed run that had nothing left to train
  facts.steps = 2;
  ASSERT_TRUE(write_run_summary(run_, facts).ok());
  const auto s = written();
  EXPECT_EQ(s["tokens_per_s"], 30.0);
  EXPECT_TRUE(s["step_time_s"].is_null());
  EXPECT_TRUE(s["val_loss"].is_null());
  EXPECT_TRUE(s["eval_accuracy"].is_null());
  EXPECT_TRUE(s["planned"].is_null());
  EXPECT_EQ(s["adapter_bytes"], 0);
  EXPECT_EQ(s["final_loss"], 5.0);
}

TEST_F(RunSummaryTest, ACpuPlanIsAllHostMemory) {
  std::ofstream(run_ / "metrics.jsonl") << R"({"step":1,"loss":6.0,"tokens_per_s":10})" "\n";
  RunSummaryFacts facts;
  MemoryPrediction plan;
  plan.device = "cpu";
  plan.gpu = {{"weights", 10, ""}, {"activations", 20, ""}};  // the run device's table: host bytes on a CPU run
  plan.host = {{"weights", 1, ""}, {"other", 5, ""}};
  plan.gpu_total_bytes = 30;
  plan.host_total_bytes = 36;
  facts.planned = plan;
  ASSERT_TRUE(write_run_summary(run_, facts).ok());
  const auto s = written();
  EXPECT_EQ(s["planned"]["gpu_bytes"], 0);
  EXPECT_EQ(s["planned"]["host_bytes"], 36);
  EXPECT_TRUE(s["planned"]["gpu_by_category"].empty());
  EXPECT_EQ(s["planned"]["host_by_category"], (nlohmann::json{{"weights", 11}, {"activations", 20}, {"other", 5}}));
}

TEST_F(RunSummaryTest, UnreadableMetricsAreAnErrorAndRemoveDeletesTheSummary) {
  EXPECT_FALSE(write_run_summary(run_, {}).ok());  // no metrics.jsonl
  std::ofstream(run_ / "metrics.jsonl") << "{\"step\":1,\"loss\":6.0}\nnot json\n";
  auto st = write_run_summary(run_, {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("metrics.jsonl:2"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(run_ / "summary.json"));
  std::ofstream(run_ / "summary.json") << "{}";
  ASSERT_TRUE(remove_run_summary(run_).ok());
  EXPECT_FALSE(fs::exists(run_ / "summary.json"));
  EXPECT_TRUE(remove_run_summary(run_).ok());  // absent: nothing to do
}

}  // namespace
}  // namespace loft
