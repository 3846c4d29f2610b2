// Results tables: seed statistics, grouping into variants, the keys that differ, the overlap marker, failed
// variants, and the CSV / Markdown written from results.jsonl.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "loft/framework/files.h"
#include "loft/framework/results_table.h"
#include "report_fixtures.h"

namespace loft {
namespace {

using testing_report::result_line;
using testing_report::TempFolder;

ResultRow finished(const std::string& variant, std::vector<std::pair<std::string, std::string>> overrides,
                   int64_t seed, double loss, double tokens_per_s) {
  ResultRow r;
  r.variant = variant;
  r.seed = seed;
  r.overrides = std::move(overrides);
  r.overrides.emplace_back("train.seed", std::to_string(seed));
  r.status = "finished";
  RunSummary s;
  s.status = "finished";
  s.final_loss = loss;
  s.tokens_per_s = tokens_per_s;
  s.peak_gpu_bytes = 3.0 * (1 << 30);
  r.summary = s;
  return r;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Spread, OneValueIsItselfTwoAreMinMaxThreeAreMeanPlusMinusStd) {
  EXPECT_FALSE(spread_of({}).has_value());
  const Spread one = *spread_of({2.5});
  EXPECT_EQ(one.count, 1);
  EXPECT_DOUBLE_EQ(one.low, 2.5);
  EXPECT_DOUBLE_EQ(one.high, 2.5);
  const Spread two = *spread_of({1.0, 3.0});
  EXPECT_DOUBLE_EQ(two.mean, 2.0);
  EXPECT_DOUBLE_EQ(two.low, 1.0);
  EXPECT_DOUBLE_EQ(two.high, 3.0);
  const Spread three = *spread_of({1.0, 2.0, 6.0});  // mean 3, sample std sqrt((4 + 1 + 9) / 2) = sqrt(7)
  EXPECT_DOUBLE_EQ(three.mean, 3.0);
  EXPECT_NEAR(three.stddev, std::sqrt(7.0), 1e-12);
  EXPECT_NEAR(three.low, 3.0 - std::sqrt(7.0), 1e-12);
  EXPECT_NEAR(three.high, 3.0 + std::sqrt(7.0), 1e-12);
  EXPECT_DOUBLE_EQ(three.min, 1.0);
  EXPECT_DOUBLE_EQ(three.max, 6.0);
}

TEST(Spread, OverlapIncludesTouchingEndsAndExcludesAGap) {
  const Spread a = *spread_of({1.0, 2.0}), touching = *spread_of({2.0, 3.0}), apart = *spread_of({2.1, 3.0});
  EXPECT_TRUE(spreads_overlap(a, touching));
  EXPECT_TRUE(spreads_overlap(touching, a));
  EXPECT_FALSE(spreads_overlap(a, apart));
  EXPECT_FALSE(spreads_overlap(apart, a));
  EXPECT_TRUE(spreads_overlap(*spread_of({1.5}), a));  // a point inside an interval
}

TEST(Spread, FormatsInHumanUnitsWithTheSpreadOfItsSeedCount) {
  EXPECT_EQ(format_spread(Metric::kFinalLoss, *spread_of({0.78125})), "0.7812");
  EXPECT_EQ(format_spread(Metric::kFinalLoss, *spread_of({0.5, 0.7})), "0.6000 (0.5000\u20130.7000)");
  EXPECT_EQ(format_spread(Metric::kFinalLoss, *spread_of({1.0, 2.0, 3.0})), "2.0000 \u00b1 1.0000");
  const double gib = 1024.0 * 1024 * 1024;
  EXPECT_EQ(format_spread(Metric::kPeakGpu, *spread_of({2 * gib, 3 * gib})), "2.50 (2.00\u20133.00) GiB");
  EXPECT_EQ(format_metric(Metric::kPeakHost, 300.0 * 1024 * 1024), "300.0 MiB");
  EXPECT_EQ(format_metric(Metric::kTokensPerS, 40600), "40.6k tok/s");
  EXPECT_EQ(format_metric(Metric::kTokensPerS, 850), "850 tok/s");
  EXPECT_EQ(format_metric(Metric::kStepTime, 0.085), "85.0 ms");
  EXPECT_EQ(format_metric(Metric::kStepTime, 2.5), "2.50 s");
  EXPECT_EQ(format_metric(Metric::kEvalAccuracy, 0.4125), "41.2%");
  EXPECT_EQ(format_metric(Metric::kTrainableParams, 18464768), "18.46M");
  EXPECT_EQ(format_metric(Metric::kWallTime, 300), "5.0 min");
}

TEST(AggregateResults, SeedsOfAVariantAreGroupedAndOnlyDifferingKeysAreColumns) {
  std::vector<ResultRow> rows;
  for (int64_t seed : {1, 2, 3}) {
    rows.push_back(finished("r8", {{"peft.r", "8"}, {"quantizer.type", "none"}}, seed, 1.0 + 0.01 * seed, 1000));
    rows.push_back(finished("r16", {{"peft.r", "16"}, {"quantizer.type", "none"}}, seed, 2.0 + 0.01 * seed, 900));
  }
  const ResultsTable t = aggregate_results(rows);
  ASSERT_EQ(t.variants.size(), 2u);
  EXPECT_EQ(t.variants[0].name, "r8");
  EXPECT_EQ(t.variants[1].name, "r16");
  EXPECT_EQ(t.differing_keys, std::vector<std::string>{"peft.r"});  // quantizer.type is the same, train.seed never
  EXPECT_EQ(t.variants[0].rows, (std::vector<size_t>{0, 2, 4}));
  EXPECT_EQ(t.variants[0].metrics.at(Metric::kFinalLoss).count, 3);
  EXPECT_NEAR(t.variants[0].metrics.at(Metric::kFinalLoss).mean, 1.02, 1e-12);
  EXPECT_TRUE(t.any_seeds);
  EXPECT_FALSE(t.any_unfinished);
  EXPECT_EQ(variant_seeds(t.variants[1], rows), "1, 2, 3");
  // Metrics no variant has are not columns.
  EXPECT_EQ(std::count(t.metrics.begin(), t.metrics.end(), Metric::kValLoss), 0);
  EXPECT_EQ(std::count(t.metrics.begin(), t.metrics.end(), Metric::kFinalLoss), 1);
}

TEST(AggregateResults, MarksTheBestAndEachVariantWhoseSpreadOverlapsIt) {
  std::vector<ResultRow> rows;
  // a: loss 1.00..1.10 (best); b: 1.05..1.20 overlaps a; c: 2.0..2.1 does not. Tokens/s: c best, a and b far below.
  for (auto [seed, la, lb, lc] : std::vector<std::tuple<int64_t, double, double, double>>{{1, 1.00, 1.05, 2.0}, {2, 1.10, 1.20, 2.1}}) {
    rows.push_back(finished("a", {{"peft.type", "lora"}}, seed, la, 100));
    rows.push_back(finished("b", {{"peft.type", "dora"}}, seed, lb, 110));
    rows.push_back(finished("c", {{"peft.type", "full"}}, seed, lc, 500));
  }
  const ResultsTable t = aggregate_results(rows);
  ASSERT_EQ(t.variants.size(), 3u);
  EXPECT_TRUE(t.variants[0].best.count(Metric::kFinalLoss));
  EXPECT_FALSE(t.variants[0].overlaps_best.count(Metric::kFinalLoss));
  EXPECT_TRUE(t.variants[1].overlaps_best.count(Metric::kFinalLoss));
  EXPECT_FALSE(t.variants[2].overlaps_best.count(Metric::kFinalLoss));
  EXPECT_TRUE(t.variants[2].best.count(Metric::kTokensPerS));  // higher is better
  EXPECT_FALSE(t.variants[0].overlaps_best.count(Metric::kTokensPerS));
  // Not a primary metric: never marked.
  for (const auto& v : t.variants) {
    EXPECT_FALSE(v.best.count(Metric::kPeakGpu));
    EXPECT_FALSE(v.overlaps_best.count(Metric::kPeakGpu));
  }
  const std::string md = results_markdown(rows, t);
  EXPECT_NE(md.find("**1.0500 (1.0000\u20131.1000)**"), std::string::npos) << md;
  EXPECT_NE(md.find("1.1250 (1.0500\u20131.2000) \u2248"), std::string::npos) << md;
  EXPECT_EQ(md.find("2.0500 (2.0000\u20132.1000) \u2248"), std::string::npos) << md;
  EXPECT_NE(md.find("\u2248: this variant's spread"), std::string::npos) << md;  // the marker explained
}

TEST(AggregateResults, FailedAndUnfittingVariantsKeepTheirStatusAndReason) {
  std::vector<ResultRow> rows;
  rows.push_back(finished("ok", {{"quantizer.type", "int8"}}, 1, 1.0, 100));
  ResultRow no_fit;
  no_fit.variant = "big";
  no_fit.overrides = {{"quantizer.type", "none"}};
  no_fit.status = "does_not_fit";
  no_fit.reason = "predicted 20.1 GiB > budget.gpu_memory 15 GiB";
  rows.push_back(no_fit);
  for (int64_t seed : {1, 2}) rows.push_back(finished("nf4", {{"quantizer.type", "nf4"}}, seed, 1.2, 90));
  ResultRow crashed;
  crashed.variant = "nf4";
  crashed.seed = 3;
  crashed.overrides = {{"quantizer.type", "nf4"}, {"train.seed", "3"}};
  crashed.status = "failed";
  crashed.reason = "exit 1: CUDA out of memory";
  rows.push_back(crashed);
  const ResultsTable t = aggregate_results(rows);
  ASSERT_EQ(t.variants.size(), 3u);
  EXPECT_TRUE(t.any_unfinished);
  EXPECT_EQ(t.variants[1].status, "does_not_fit: predicted 20.1 GiB > budget.gpu_memory 15 GiB");
  EXPECT_TRUE(t.variants[1].metrics.empty());
  EXPECT_EQ(t.variants[2].status, "2/3 finished; seed 3 failed: exit 1: CUDA out of memory");
  EXPECT_EQ(t.variants[2].metrics.at(Metric::kFinalLoss).count, 2);  // the finished seeds only
  const std::string md = results_markdown(rows, t);
  EXPECT_NE(md.find("| status |"), std::string::npos) << md;
  EXPECT_NE(md.find("does_not_fit: predicted 20.1 GiB > budget.gpu_memory 15 GiB"), std::string::npos) << md;
  EXPECT_NE(md.find("2/3 finished; seed 3 failed"), std::string::npos) << md;
}

TEST(AggregateResults, SeedRowsWithTheirOwnNamesAreNamedByWhatSetsThemApart) {
  std::vector<ResultRow> rows;
  for (int64_t seed : {1, 2}) {
    rows.push_back(finished("lora-s" + std::to_string(seed), {{"peft.type", "lora"}}, seed, 1, 1));
    rows.push_back(finished("dora-s" + std::to_string(seed), {{"peft.type", "dora"}}, seed, 1, 1));
  }
  const ResultsTable t = aggregate_results(rows);
  ASSERT_EQ(t.variants.size(), 2u);
  EXPECT_EQ(t.variants[0].name, "peft.type=lora");
  EXPECT_EQ(t.variants[1].name, "peft.type=dora");
  // One variant alone: what the names share.
  const ResultsTable single = aggregate_results({rows[0], rows[2]});
  ASSERT_EQ(single.variants.size(), 1u);
  EXPECT_EQ(single.variants[0].name, "lora-s");
}

TEST(AggregateResults, RowsOfDifferentSourcesNeverMerge) {
  ResultRow a = finished("v", {{"peft.r", "8"}}, 1, 1, 1), b = a;
  a.source = "grid1";
  b.source = "grid2";
  EXPECT_EQ(aggregate_results({a, b}).variants.size(), 2u);
}

TEST(ResultsFiles, CsvHasOneRowPerRunAndEveryColumnQuotedWhereNeeded) {
  std::vector<ResultRow> rows = {finished("a", {{"peft.r", "8"}}, 1, 0.5, 1000),
                                 finished("a", {{"peft.r", "8"}}, 2, 0.6, 1100)};
  rows[0].summary->planned = PlannedMemory{1024, 2048, {{"weights", 1000}, {"loss chunk", 24}}, {{"data", 2048}}};
  ResultRow failed;
  failed.variant = "b, \"quoted\"";
  failed.overrides = {{"peft.r", "16"}, {"quantizer.type", "nf4"}};
  failed.status = "failed";
  failed.reason = "line one\nline two";
  rows.push_back(failed);
  const std::string csv = results_csv(rows);
  // Records: a quoted field may hold a newline, so count records by parsing.
  std::vector<std::vector<std::string>> records(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < csv.size(); ++i) {
    const char c = csv[i];
    if (quoted) {
      if (c == '"' && i + 1 < csv.size() && csv[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      records.back().push_back(field);
      field.clear();
    } else if (c == '\n') {
      records.back().push_back(field);
      field.clear();
      records.emplace_back();
    } else {
      field += c;
    }
  }
  records.pop_back();  // after the last newline
  ASSERT_EQ(records.size(), 4u) << csv;
  const auto& header = records[0];
  for (const auto& r : records) EXPECT_EQ(r.size(), header.size()) << csv;
  auto column = [&](const std::string& name) {
    return static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  for (const char* name : {"variant", "seed", "peft.r", "quantizer.type", "status", "reason", "tokens_per_s",
                           "final_loss", "peak_gpu_bytes", "planned_gpu_bytes", "planned_gpu_loss_chunk_bytes",
                           "planned_host_data_bytes", "wall_s", "adapter_bytes", "eval_accuracy"}) {
    EXPECT_LT(column(name), header.size()) << name << " missing from " << records[0].size() << " columns";
  }
  EXPECT_EQ(column("train.seed"), header.size());  // the seed column holds it
  EXPECT_EQ(records[1][column("peak_gpu_bytes")], "3221225472");  // base units, integral
  EXPECT_EQ(records[2][column("final_loss")], "0.6");
  EXPECT_EQ(records[1][column("planned_gpu_loss_chunk_bytes")], "24");
  EXPECT_EQ(records[3][column("variant")], "b, \"quoted\"");
  EXPECT_EQ(records[3][column("reason")], "line one\nline two");
  EXPECT_EQ(records[3][column("final_loss")], "");
  EXPECT_EQ(records[1][column("quantizer.type")], "");
}

TEST(ResultsFiles, MarkdownHasOneLinePerVariantAndEscapesPipes) {
  std::vector<ResultRow> rows = {finished("a|b", {{"peft.r", "8"}}, 1, 0.5, 1000),
                                 finished("c", {{"peft.r", "16"}}, 1, 0.6, 1100)};
  const std::string md = results_markdown(rows, aggregate_results(rows));
  const auto lines = split_lines(md);
  ASSERT_GE(lines.size(), 4u) << md;
  EXPECT_EQ(lines[0].rfind("| variant | peft.r | seeds | tokens/s | peak GPU | final loss |", 0), 0u) << md;
  EXPECT_EQ(lines[1].rfind("| --- | --- | --- | ---: |", 0), 0u) << md;
  EXPECT_EQ(lines[2].rfind("| a\\|b | 8 | 1 | 1.00k tok/s |", 0), 0u) << md;
  EXPECT_EQ(lines[3].rfind("| c | 16 | 1 |", 0), 0u) << md;
  EXPECT_EQ(lines[4], "");
  EXPECT_EQ(lines[5], results_table_legend());
  // Every table line has as many cells as the header.
  auto cells = [](const std::string& line) {
    size_t n = 0;
    for (size_t i = 0; i < line.size(); ++i) n += line[i] == '|' && (i == 0 || line[i - 1] != '\\');
    return n;
  };
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(cells(lines[i]), cells(lines[0])) << lines[i];
}

TEST(ResultsFiles, WriteResultsTablesReadsResultsJsonlAndWritesBothFiles) {
  TempFolder dir;
  std::ofstream(dir.path / "results.jsonl")
      << result_line("lora", 0, 1, R"({"peft.type":"lora","peft.r":8})", "finished", 1.25, 1200) << "\n"
      << result_line("lora", 1, 2, R"({"peft.type":"lora","peft.r":8})", "finished", 1.35, 1300) << "\n"
      << result_line("dora", 2, 1, R"({"peft.type":"dora","peft.r":8})", "does_not_fit", 0, 0) << "\n";
  ASSERT_TRUE(write_results_tables(dir.path).ok());
  std::ifstream csv(dir.path / "results.csv"), md(dir.path / "results.md");
  const std::string csv_text((std::istreambuf_iterator<char>(csv)), {}), md_text((std::istreambuf_iterator<char>(md)), {});
  EXPECT_EQ(split_lines(csv_text).size(), 4u) << csv_text;
  EXPECT_NE(md_text.find("| variant | peft.type | seeds | status |"), std::string::npos) << md_text;
  EXPECT_NE(md_text.find("| lora | lora | 1, 2 | finished |"), std::string::npos) << md_text;
  EXPECT_NE(md_text.find("does_not_fit: predicted"), std::string::npos) << md_text;
  EXPECT_NE(md_text.find("1.3000 (1.2500\u20131.3500)"), std::string::npos) << md_text;
  // No temporary file is left beside them.
  for (const auto& entry : fs::list_directory(dir.path)) {
    EXPECT_EQ(entry.filename().string().find(".tmp"), std::string::npos) << entry;
  }
}

TEST(ResultsFiles, ATornOrMalformedResultsLineIsAnErrorNamingFileAndLine) {
  TempFolder dir;
  const std::string good = result_line("a", 0, 1, "{}", "finished", 1, 1);
  for (const std::string& bad : {std::string(good.substr(0, good.size() / 2)), std::string("[1, 2]"),
                                 std::string(R"({"variant": 3, "status": "finished"})")}) {
    std::ofstream(dir.path / "results.jsonl") << good << "\n" << bad << "\n";
    auto rows = read_results_jsonl(dir.path / "results.jsonl");
    ASSERT_FALSE(rows.ok()) << bad;
    EXPECT_EQ(rows.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(rows.status().message().find("results.jsonl:2:"), std::string::npos) << rows.status().message();
    EXPECT_FALSE(write_results_tables(dir.path).ok());
  }
  auto missing = read_results_jsonl(dir.path / "absent.jsonl");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(ResultsFiles, SummaryFieldsAreReadFromTheContractFormat) {
  auto s = parse_run_summary(
      R"({"format":"loft-run-summary","version":1,"status":"finished","steps":40,"wall_s":12.5,
          "tokens_per_s":1500.5,"step_time_s":0.25,"peak_gpu_bytes":0,"peak_host_bytes":1e9,
          "planned":{"gpu_bytes":0,"host_bytes":2e9,"gpu_by_category":{"workspace":5,"weights":100,"context":1},
                     "host_by_category":{"other":7,"data":3}},
          "final_loss":0.8,"val_loss":null,"eval_accuracy":0.25,"trainable_params":1234,"adapter_bytes":4096})",
      "summary.json");
  ASSERT_TRUE(s.ok()) << s.status().message();
  const RunSummary& r = s.value();
  EXPECT_EQ(r.status, "finished");
  EXPECT_EQ(r.steps, 40);
  EXPECT_DOUBLE_EQ(*r.tokens_per_s, 1500.5);
  EXPECT_FALSE(r.val_loss.has_value());
  EXPECT_DOUBLE_EQ(*r.eval_accuracy, 0.25);
  ASSERT_TRUE(r.planned.has_value());
  // The planner's category order, not the file's alphabetical one.
  ASSERT_EQ(r.planned->gpu_by_category.size(), 3u);
  EXPECT_EQ(r.planned->gpu_by_category[0].first, "context");
  EXPECT_EQ(r.planned->gpu_by_category[1].first, "weights");
  EXPECT_EQ(r.planned->gpu_by_category[2].first, "workspace");
  EXPECT_EQ(r.planned->host_by_category[0].first, "data");
  EXPECT_FALSE(parse_run_summary("{\"steps\": 4", "summary.json").ok());
}

}  // namespace
}  // namespace loft
