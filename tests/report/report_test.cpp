// `loft report`: reading metrics.jsonl (torn last line tolerated), grids and run folders, bad input, the SVG
// writer's escaping and ticks, and which charts the page holds.
#include <gtest/gtest.h>

#include <regex>

#include "loft/framework/report.h"
#include "report/svg_writer.h"
#include "report_fixtures.h"

namespace loft {
namespace {

using testing_report::metrics_jsonl;
using testing_report::result_line;
using testing_report::summary_json;
using testing_report::TempFolder;
using testing_report::write_text;

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(MetricsCurves, TrainingAndValidationRecordsAreToldApartAndATornLastLineIsSkipped) {
  TempFolder dir;
  std::string text = metrics_jsonl(10, 6.0, 1000);
  text += R"({"step":11,"loss":null,"lr":0.001,"grad_norm":null,"tokens_per_s":5,"label_tokens":300,"nonfinite":true})"
          "\n";
  text += R"({"step":12,"loss":0.4,"lr":0.0)";  // being written
  write_text(dir.path / "metrics.jsonl", text);
  auto curves = read_metrics_curves(dir.path / "metrics.jsonl");
  ASSERT_TRUE(curves.ok()) << curves.status().message();
  const RunCurves& c = curves.value();
  ASSERT_EQ(c.train_loss.size(), 10u);  // the non-finite step has no point, the torn one is not there
  EXPECT_EQ(c.train_loss.front().step, 1);
  EXPECT_DOUBLE_EQ(c.train_loss.front().value, 6.0 / 1.2);
  ASSERT_EQ(c.val_loss.size(), 2u);
  EXPECT_EQ(c.val_loss[1].step, 10);
  EXPECT_EQ(c.measured.steps, 11);
  EXPECT_DOUBLE_EQ(*c.measured.final_loss, 6.0 / 3.0);
  EXPECT_DOUBLE_EQ(*c.measured.val_loss, 6.0 / 3.0 * 1.1);
  // The median of the steps after the first: 1002..1010 and the non-finite step's 5, whose middle two are 1005, 1006.
  EXPECT_DOUBLE_EQ(*c.measured.tokens_per_s, 1005.5);
  EXPECT_DOUBLE_EQ(*c.measured.peak_host_bytes, 1e9 + 10);
}

TEST(MetricsCurves, AMalformedLineBeforeTheLastIsAnErrorNamingFileAndLine) {
  TempFolder dir;
  for (const std::string& bad : {std::string(R"({"step":2,"loss":)"), std::string("garbage"), std::string("[]")}) {
    write_text(dir.path / "metrics.jsonl", R"({"step":1,"loss":2.0})" "\n" + bad + "\n" R"({"step":3,"loss":1.0})" "\n");
    auto curves = read_metrics_curves(dir.path / "metrics.jsonl");
    ASSERT_FALSE(curves.ok()) << bad;
    EXPECT_EQ(curves.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(curves.status().message().find("metrics.jsonl:2:"), std::string::npos) << curves.status().message();
  }
}

TEST(ReportData, BadFoldersAreRefusedWithWhatAFolderMustHold) {
  TempFolder dir;
  auto missing = load_report_data({dir.path / "nowhere"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nowhere: no such folder"), std::string::npos);

  (void)fs::create_directories(dir.path / "empty");
  auto empty = load_report_data({dir.path / "empty"});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("neither results.jsonl"), std::string::npos) << empty.status().message();

  write_text(dir.path / "file", "x");
  EXPECT_EQ(load_report_data({dir.path / "file"}).status().code(), StatusCode::kInvalidArgument);

  write_text(dir.path / "fresh" / "metrics.jsonl", "");
  auto fresh = load_report_data({dir.path / "fresh"});
  ASSERT_FALSE(fresh.ok());
  EXPECT_NE(fresh.status().message().find("no training step logged yet"), std::string::npos);

  write_text(dir.path / "grid" / "results.jsonl", "{\"variant\":\n");
  auto grid = load_report_data({dir.path / "grid"});
  ASSERT_FALSE(grid.ok());
  EXPECT_NE(grid.status().message().find("results.jsonl:1:"), std::string::npos) << grid.status().message();

  EXPECT_FALSE(load_report_data({}).ok());
}

// Two run folders that differ in peft.r, and a third that differs from the first in train.seed only.
void write_run(const std::filesystem::path& dir, int r, int seed, double start) {
  write_text(dir / "recipe.toml", fmt::format("[model]\npath = \"/models/demo\"\n[peft]\ntype = \"lora\"\nr = {}\n"
                                              "[train]\nseed = {}\nlr = 2e-3\n[output]\nname = \"{}\"\n",
                                              r, seed, dir.filename().string()));
  write_text(dir / "metrics.jsonl", metrics_jsonl(20, start, 1000 + r));
  (void)fs::create_directories(dir / "adapter");
  write_text(dir / "adapter" / "adapter_model.safetensors", std::string(1000, 'x'));
}

TEST(ReportData, RunFoldersAreGroupedByTheirRecipesLessSeedAndOutput) {
  TempFolder dir;
  write_run(dir.path / "r4-a", 4, 1, 6.0);
  write_run(dir.path / "r8", 8, 1, 5.0);
  write_run(dir.path / "r4-b", 4, 2, 6.5);
  auto data = load_report_data({dir.path / "r4-a", dir.path / "r8", dir.path / "r4-b"});
  ASSERT_TRUE(data.ok()) << data.status().message();
  ASSERT_EQ(data.value().rows.size(), 3u);
  EXPECT_EQ(data.value().rows[0].seed, 1);
  EXPECT_EQ(data.value().rows[0].status, "finished");  // its adapter/ was saved
  EXPECT_DOUBLE_EQ(*data.value().rows[0].summary->adapter_bytes, 1000);
  const ResultsTable t = aggregate_results(data.value().rows);
  ASSERT_EQ(t.variants.size(), 2u);
  EXPECT_EQ(t.differing_keys, std::vector<std::string>{"peft.r"});
  EXPECT_EQ(t.variants[0].rows, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(t.variants[0].name, "peft.r=4");
  EXPECT_EQ(t.variants[1].name, "peft.r=8");  // named as its neighbour is
  EXPECT_EQ(t.variants[0].metrics.at(Metric::kFinalLoss).count, 2);
  EXPECT_FALSE(data.value().notes.empty());  // no summary.json: said so
}

TEST(ReportData, AGridReadsItsRowsAndEachRunsCurves) {
  TempFolder dir;
  const std::string lora = R"({"peft.type":"lora"})", dora = R"({"peft.type":"dora"})";
  write_text(dir.path / "results.jsonl",
             result_line("lora", 0, 1, lora, "finished", 1.2, 1500, 0.25) + "\n" +
                 result_line("lora", 1, 2, lora, "finished", 1.3, 1400, 0.30) + "\n" +
                 result_line("dora", 2, 1, dora, "does_not_fit", 0, 0) + "\n");
  write_text(dir.path / "runs" / "lora-1" / "metrics.jsonl", metrics_jsonl(20, 6, 1500));
  write_text(dir.path / "runs" / "lora-2" / "metrics.jsonl", metrics_jsonl(20, 6.3, 1400));
  auto data = load_report_data({dir.path});
  ASSERT_TRUE(data.ok()) << data.status().message();
  ASSERT_EQ(data.value().curves.size(), 3u);
  EXPECT_TRUE(data.value().curves[0].has_value());
  EXPECT_FALSE(data.value().curves[2].has_value());
  const std::string html = render_report_html(data.value());
  for (const char* id : {"chart-train-loss", "chart-val-loss", "chart-throughput", "chart-gpu-memory",
                         "chart-host-memory", "chart-memory-breakdown", "chart-accuracy", "results-table"}) {
    EXPECT_NE(html.find(fmt::format("id=\"{}\"", id)), std::string::npos) << id;
  }
  EXPECT_EQ(count_of(html, "class=\"band\""), 2u);  // lora's two seeds, training and validation
  EXPECT_EQ(count_of(html, "class=\"curve\""), 2u);
  EXPECT_EQ(count_of(html, "class=\"error-bar\""), 4u);  // tokens/s, GPU, host (measured), accuracy: lora only
  EXPECT_NE(html.find("does_not_fit: predicted 20.1 GiB"), std::string::npos);
  EXPECT_NE(html.find("data-category=\"weights\""), std::string::npos);
}

TEST(ReportHtml, ASingleRunIsAReportAndNothingLoadsFromOutside) {
  TempFolder dir;
  write_text(dir.path / "run" / "metrics.jsonl", metrics_jsonl(12, 5.0, 800));
  write_text(dir.path / "run" / "summary.json", summary_json(0.9, 810, 0.5));
  auto data = load_report_data({dir.path / "run"});
  ASSERT_TRUE(data.ok()) << data.status().message();
  const std::string html = render_report_html(data.value());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("id=\"chart-train-loss\""), std::string::npos);
  EXPECT_NE(html.find("id=\"chart-accuracy\""), std::string::npos);
  EXPECT_EQ(count_of(html, "class=\"band\""), 0u);  // one seed: no band
  // Self-contained: no script, no external reference of any kind.
  for (const char* banned : {"<script", "http:", "https:", "src=", "href=", "@import", "url("}) {
    EXPECT_EQ(html.find(banned), std::string::npos) << banned;
  }
  // Every <svg> is an image with a title for assistive technology (and for DOM tests).
  EXPECT_EQ(count_of(html, "<svg "), count_of(html, "role=\"img\""));
  EXPECT_GE(count_of(html, "<svg "), 5u);
}

TEST(ReportHtml, UserStringsStayTextWhateverTheyHold) {
  TempFolder dir;
  const std::string evil = "<script>alert(\\\"x\\\")</script>&'";
  write_text(dir.path / "results.jsonl",
             result_line(evil, 0, 1, R"({"peft.type":"<b>lora</b>"})", "finished", 1.2, 1500) + "\n" +
                 result_line("plain", 1, 1, R"({"peft.type":"dora"})", "failed", 0, 0) + "\n");
  auto data = load_report_data({dir.path});
  ASSERT_TRUE(data.ok()) << data.status().message();
  const std::string html = render_report_html(data.value());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;lora&lt;/b&gt;"), std::string::npos);
  // Every tag the page holds is one loft writes.
  static const std::set<std::string> kTags = {
      "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "section", "figure", "figcaption",
      "svg", "desc", "g", "line", "text", "path", "rect", "circle", "table", "thead", "tbody", "tr", "th", "td",
      "span", "ul", "li", "div"};
  const std::regex tag("<([a-zA-Z][a-zA-Z0-9]*)");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), tag); it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(kTags.count((*it)[1].str())) << (*it)[1].str();
  }
}

TEST(SvgWriter, EscapesTextAndAttributes) {
  report_detail::MarkupWriter w;
  w.element("text", {{"data-variant", "a\"b<c>&'"}}, "</text><script>x</script>");
  EXPECT_EQ(w.str(), "<text data-variant=\"a&quot;b&lt;c&gt;&amp;&#39;\">&lt;/text&gt;&lt;script&gt;x&lt;/script&gt;"
                     "</text>\n");
}

TEST(SvgWriter, NiceTicksAreRoundAndCoverTheRange) {
  struct Case {
    double low, high;
  };
  for (const Case c : {Case{0, 1}, Case{0.78, 6.4}, Case{1, 120}, Case{0, 40600}, Case{3.2e9, 3.3e9}, Case{5, 5},
                       Case{-2.5, 0.3}, Case{0.0012, 0.0031}}) {
    const auto ticks = report_detail::nice_ticks(c.low, c.high, 6);
    ASSERT_GE(ticks.size(), 2u) << c.low << ".." << c.high;
    EXPECT_LE(ticks.size(), 12u);
    EXPECT_LE(ticks.front(), c.low);
    EXPECT_GE(ticks.back(), c.high);
    const double step = ticks[1] - ticks[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 || std::fabs(mantissa - 5) < 1e-6)
        << step;
    for (size_t i = 1; i < ticks.size(); ++i) EXPECT_NEAR(ticks[i] - ticks[i - 1], step, step * 1e-6);
  }
  EXPECT_EQ(report_detail::tick_label(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(report_detail::tick_label(1200, 200), "1200");
  EXPECT_EQ(report_detail::tick_label(0.0025, 0.0005), "0.0025");
  EXPECT_EQ(report_detail::coordinate(12.0), "12");
  EXPECT_EQ(report_detail::coordinate(-0.001), "0");
}

}  // namespace
}  // namespace loft
