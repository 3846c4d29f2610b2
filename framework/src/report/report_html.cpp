// `loft report`'s page: the charts as inline SVG and the results table, one self-contained HTML file.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "loft/framework/atomic_file.h"
#include "loft/framework/report.h"
#include "report/svg_writer.h"

namespace loft {

namespace {

using report_detail::Attributes;
using report_detail::coordinate;
using report_detail::LinearScale;
using report_detail::MarkupWriter;

// Variants (one colour each, the same in every chart) and planner categories.
constexpr const char* kVariantColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                          "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
constexpr const char* kCategoryColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr double kWidth = 760;
constexpr double kRight = 24;
constexpr double kFontPx = 11;

const char* variant_color(size_t i) { return kVariantColors[i % std::size(kVariantColors)]; }

std::string num(double v) { return coordinate(v); }

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Layout only: the chart font's average advance is about 0.6 em.
double text_width(const std::string& s) { return static_cast<double>(code_points(s)) * kFontPx * 0.6; }

// At most `max_points` code points, the rest replaced by an ellipsis (the full text stays in a <title>).
std::string shorten(const std::string& s, size_t max_points) {
  if (code_points(s) <= max_points) return s;
  size_t kept = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && kept++ == max_points - 1) break;
  }
  return s.substr(0, i) + "\u2026";
}

struct LegendItem {
  std::string label;
  std::string color;
  std::string swatch_class;  // "swatch" or "swatch planned"
};

// Items laid out left to right, wrapping; returns the height used.
double legend_height(const std::vector<LegendItem>& items, double left, double width) {
  if (items.empty()) return 0;
  double x = left, rows = 1;
  for (const auto& item : items) {
    const double w = 18 + text_width(shorten(item.label, 40)) + 16;
    if (x + w > left + width && x > left) {
      x = left;
      ++rows;
    }
    x += w;
  }
  return rows * 18;
}

void draw_legend(MarkupWriter& w, const std::vector<LegendItem>& items, double left, double top, double width) {
  if (items.empty()) return;
  w.open("g", {{"class", "legend"}});
  double x = left, y = top;
  for (const auto& item : items) {
    const std::string label = shorten(item.label, 40);
    const double item_width = 18 + text_width(label) + 16;
    if (x + item_width > left + width && x > left) {
      x = left;
      y += 18;
    }
    w.open("g", {{"class", "legend-item"}, {"data-label", item.label}});
    w.element("title", {}, item.label);
    w.element("rect", {{"class", item.swatch_class}, {"x", num(x)}, {"y", num(y + 3)}, {"width", "12"},
                       {"height", "10"}, {"fill", item.color}, {"stroke", item.color}});
    w.element("text", {{"class", "legend-label"}, {"x", num(x + 18)}, {"y", num(y + 12)}}, label);
    w.close();
    x += item_width;
  }
  w.close();
}

void open_chart(MarkupWriter& w, const std::string& id, const std::string& caption, const std::string& description,
                double height) {
  w.open("figure", {{"id", id}, {"class", "chart"}});
  w.element("figcaption", {}, caption);
  w.open("svg", {{"class", "chart-svg"},
                 {"viewBox", fmt::format("0 0 {} {}", num(kWidth), num(height))},
                 {"width", num(kWidth)},
                 {"height", num(height)},
                 {"role", "img"},
                 {"aria-labelledby", id + "-title " + id + "-desc"}});
  w.element("title", {{"id", id + "-title"}}, caption);
  w.element("desc", {{"id", id + "-desc"}}, description);
}

void close_chart(MarkupWriter& w) {
  w.close();  // svg
  w.close();  // figure
}

// A value axis with round ticks: gridlines across the plot and labels. Horizontal: along x at the bottom.
void draw_value_axis(MarkupWriter& w, const std::vector<double>& ticks, const LinearScale& scale, bool horizontal,
                     double cross_low, double cross_high, const std::string& label) {
  const double spacing = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  w.open("g", {{"class", horizontal ? "axis x-axis" : "axis y-axis"}});
  for (double t : ticks) {
    const double p = scale(t);
    const std::string text = report_detail::tick_label(t, spacing);
    if (horizontal) {
      w.element("line", {{"class", "grid"}, {"x1", num(p)}, {"x2", num(p)}, {"y1", num(cross_low)}, {"y2", num(cross_high)}});
      w.element("text", {{"class", "tick-label"}, {"x", num(p)}, {"y", num(cross_high + 14)}, {"text-anchor", "middle"}}, text);
    } else {
      w.element("line", {{"class", "grid"}, {"x1", num(cross_low)}, {"x2", num(cross_high)}, {"y1", num(p)}, {"y2", num(p)}});
      w.element("text", {{"class", "tick-label"}, {"x", num(cross_low - 6)}, {"y", num(p + 4)}, {"text-anchor", "end"}}, text);
    }
  }
  if (horizontal) {
    w.element("line", {{"class", "axis-line"}, {"x1", num(scale.range_low)}, {"x2", num(scale.range_high)},
                       {"y1", num(cross_high)}, {"y2", num(cross_high)}});
    w.element("text", {{"class", "axis-label"}, {"x", num((scale.range_low + scale.range_high) / 2)},
                       {"y", num(cross_high + 30)}, {"text-anchor", "middle"}}, label);
  } else {
    w.element("line", {{"class", "axis-line"}, {"x1", num(cross_low)}, {"x2", num(cross_low)},
                       {"y1", num(scale.range_low)}, {"y2", num(scale.range_high)}});
    const double mid = (scale.range_low + scale.range_high) / 2;
    w.element("text", {{"class", "axis-label"}, {"x", "14"}, {"y", num(mid)}, {"text-anchor", "middle"},
                       {"transform", fmt::format("rotate(-90 14 {})", num(mid))}}, label);
  }
  w.close();
}

// ---- loss curves ----

struct CurveSeries {
  std::string variant;
  std::string color;
  int runs = 0;  // runs with a curve: a band is drawn for two or more
  std::vector<int64_t> steps;
  std::vector<double> mean, low, high;
};

// Per step: mean, min and max over the variant's runs that logged the step.
CurveSeries combine_curves(const std::string& variant, const std::string& color,
                           const std::vector<const std::vector<CurvePoint>*>& runs) {
  CurveSeries s;
  s.variant = variant;
  s.color = color;
  std::map<int64_t, std::vector<double>> by_step;
  for (const auto* run : runs) {
    if (run->empty()) continue;
    ++s.runs;
    for (const CurvePoint& p : *run) by_step[p.step].push_back(p.value);
  }
  for (const auto& [step, values] : by_step) {
    double sum = 0;
    for (double v : values) sum += v;
    s.steps.push_back(step);
    s.mean.push_back(sum / static_cast<double>(values.size()));
    s.low.push_back(*std::min_element(values.begin(), values.end()));
    s.high.push_back(*std::max_element(values.begin(), values.end()));
  }
  return s;
}

void line_chart(MarkupWriter& w, const std::string& id, const std::string& caption, const std::string& y_label,
                const std::vector<CurveSeries>& series) {
  double x_min = 1e300, x_max = -1e300, y_min = 1e300, y_max = -1e300;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.steps.size(); ++i) {
      x_min = std::min(x_min, static_cast<double>(s.steps[i]));
      x_max = std::max(x_max, static_cast<double>(s.steps[i]));
      y_min = std::min(y_min, s.low[i]);
      y_max = std::max(y_max, s.high[i]);
    }
  }
  const auto x_ticks = report_detail::nice_ticks(x_min, x_max, 8);
  const auto y_ticks = report_detail::nice_ticks(y_min, y_max, 6);
  const double left = 70, top = 14, plot_height = 250;
  const double right = kWidth - kRight, bottom = top + plot_height;
  std::vector<LegendItem> legend;
  for (const auto& s : series) {
    legend.push_back({s.runs > 1 ? fmt::format("{} ({} seeds, band: min\u2013max)", s.variant, s.runs) : s.variant,
                      s.color, "swatch"});
  }
  const double legend_top = bottom + 42;
  const double height = legend_top + legend_height(legend, left, right - left) + 8;
  open_chart(w, id, caption,
             fmt::format("{} against optimizer step, one line per variant (the mean over its seeds, with a band from "
                         "the lowest to the highest seed)", y_label),
             height);
  const LinearScale x{x_ticks.front(), x_ticks.back(), left, right};
  const LinearScale y{y_ticks.front(), y_ticks.back(), bottom, top};
  draw_value_axis(w, y_ticks, y, false, left, right, y_label);
  draw_value_axis(w, x_ticks, x, true, top, bottom, "step");
  w.open("g", {{"class", "plot"}});
  for (const auto& s : series) {
    if (s.steps.empty()) continue;
    w.open("g", {{"class", "series"}, {"data-variant", s.variant}});
    if (s.runs > 1) {
      std::string d;
      for (size_t i = 0; i < s.steps.size(); ++i) {
        d += fmt::format("{}{},{} ", i ? "L" : "M", num(x(static_cast<double>(s.steps[i]))), num(y(s.high[i])));
      }
      for (size_t i = s.steps.size(); i-- > 0;) {
        d += fmt::format("L{},{} ", num(x(static_cast<double>(s.steps[i]))), num(y(s.low[i])));
      }
      w.element("path", {{"class", "band"}, {"d", d + "Z"}, {"fill", s.color}, {"data-variant", s.variant}});
    }
    std::string d;
    for (size_t i = 0; i < s.steps.size(); ++i) {
      d += fmt::format("{}{},{} ", i ? "L" : "M", num(x(static_cast<double>(s.steps[i]))), num(y(s.mean[i])));
    }
    w.open("path", {{"class", "curve"}, {"d", d}, {"stroke", s.color}, {"data-variant", s.variant}});
    w.element("title", {}, fmt::format("{}: {:.4f} at step {}", s.variant, s.mean.back(), s.steps.back()));
    w.close();
    w.element("circle", {{"class", "last-point"}, {"cx", num(x(static_cast<double>(s.steps.back())))},
                         {"cy", num(y(s.mean.back()))}, {"r", "2.5"}, {"fill", s.color}});
    w.close();
  }
  w.close();
  draw_legend(w, legend, left, legend_top, right - left);
  close_chart(w);
}

// ---- horizontal bars ----

struct BarSpec {
  std::string series;  // "measured", "planned", a category, ...
  double value = 0;    // in the axis unit
  std::optional<double> error_low, error_high;
  std::string text;  // printed after the bar
  std::string color;
  std::string css;  // extra classes
};

struct BarRow {
  std::string variant;
  std::vector<BarSpec> bars;  // side by side, or stacked
};

double label_column_width(const std::vector<BarRow>& rows) {
  double widest = 40;
  for (const auto& r : rows) widest = std::max(widest, text_width(shorten(r.variant, 32)));
  return std::min(widest, 230.0) + 16;
}

void draw_variant_label(MarkupWriter& w, const std::string& variant, double x, double y) {
  w.open("text", {{"class", "variant-label"}, {"x", num(x)}, {"y", num(y)}, {"text-anchor", "end"}});
  w.element("title", {}, variant);
  w.text(shorten(variant, 32));
  w.close();
}

// `stacked`: each row's bars are segments of one bar (the row's total printed after it); otherwise side by side.
void bar_chart(MarkupWriter& w, const std::string& id, const std::string& caption, const std::string& description,
               const std::string& axis_label, const std::vector<BarRow>& rows, const std::vector<LegendItem>& legend,
               bool stacked, const std::function<std::string(double)>& total_text = {}) {
  double max_value = 0;
  for (const auto& r : rows) {
    double total = 0;
    for (const auto& b : r.bars) {
      total += b.value;
      max_value = std::max(max_value, std::max(b.value, b.error_high.value_or(0)));
    }
    if (stacked) max_value = std::max(max_value, total);
  }
  const auto ticks = report_detail::nice_ticks(0, max_value > 0 ? max_value : 1, 6);
  // Room on the right for the longest value printed after a bar.
  double value_width = stacked ? text_width("000.00 GiB") : 0;
  for (const auto& r : rows) {
    for (const auto& b : r.bars) value_width = std::max(value_width, text_width(b.text));
  }
  const double left = label_column_width(rows), right = kWidth - kRight - std::max(60.0, value_width + 16), top = 10;
  const double bar_height = 14, bar_gap = 3, row_gap = 12;
  double bottom = top;
  for (const auto& r : rows) {
    const size_t n = stacked ? 1 : std::max<size_t>(1, r.bars.size());
    bottom += static_cast<double>(n) * (bar_height + bar_gap) + row_gap;
  }
  const double legend_top = bottom + 42;
  const double height = legend_top + legend_height(legend, left, right - left) + 8;
  open_chart(w, id, caption, description, height);
  const LinearScale x{ticks.front(), ticks.back(), left, right};
  draw_value_axis(w, ticks, x, true, top, bottom, axis_label);
  w.open("g", {{"class", "plot"}});
  double y = top + row_gap / 2;
  for (const auto& r : rows) {
    const size_t n = stacked ? 1 : std::max<size_t>(1, r.bars.size());
    const double row_height = static_cast<double>(n) * (bar_height + bar_gap);
    w.open("g", {{"class", "bar-row"}, {"data-variant", r.variant}});
    draw_variant_label(w, r.variant, left - 8, y + row_height / 2 + 4);
    double stack_x = x(0), total = 0;
    for (size_t i = 0; i < r.bars.size(); ++i) {
      const BarSpec& b = r.bars[i];
      const double bar_y = stacked ? y : y + static_cast<double>(i) * (bar_height + bar_gap);
      const double x0 = stacked ? stack_x : x(0);
      const double width = std::max(0.0, x(b.value) - x(0));
      const std::string cls = (stacked ? std::string("segment") : std::string("bar")) + (b.css.empty() ? "" : " " + b.css);
      Attributes attributes = {{"class", cls}, {"x", num(x0)}, {"y", num(bar_y)}, {"width", num(width)},
                               {"height", num(bar_height)}, {"fill", b.color}, {"stroke", b.color},
                               {"data-variant", r.variant}, {"data-series", b.series},
                               {"data-value", fmt::format("{}", b.value)}};
      if (stacked) attributes.emplace_back("data-category", b.series);
      w.open("rect", attributes);
      w.element("title", {}, fmt::format("{} \u00b7 {}: {}", r.variant, b.series, b.text));
      w.close();
      if (b.error_low && b.error_high) {
        const double lo = x(*b.error_low), hi = x(*b.error_high), mid = bar_y + bar_height / 2;
        w.element("path", {{"class", "error-bar"}, {"data-variant", r.variant},
                           {"d", fmt::format("M{0},{1} H{2} M{0},{3} V{4} M{2},{3} V{4}", num(lo), num(mid), num(hi),
                                             num(mid - 4), num(mid + 4))}});
      }
      if (!stacked) {
        const double end = std::max(x(b.value), b.error_high ? x(*b.error_high) : 0.0);
        w.element("text", {{"class", "bar-value"}, {"x", num(end + 5)}, {"y", num(bar_y + bar_height - 3)}}, b.text);
      }
      stack_x += width;
      total += b.value;
    }
    if (stacked && total_text) {
      w.element("text", {{"class", "bar-value"}, {"x", num(stack_x + 5)}, {"y", num(y + bar_height - 3)}},
                total_text(total));
    }
    w.close();
    y += row_height + row_gap;
  }
  w.close();
  draw_legend(w, legend, left, legend_top, right - left);
  close_chart(w);
}

// Bytes shown in GiB when the largest is at least 1 GiB, else MiB.
std::pair<double, std::string> byte_unit(double largest) {
  if (largest >= 1024.0 * 1024 * 1024) return {1024.0 * 1024 * 1024, "GiB"};
  return {1024.0 * 1024, "MiB"};
}

void set_error(BarSpec& bar, const Spread& s, double divisor) {
  if (s.count < 2) return;
  bar.error_low = s.low / divisor;
  bar.error_high = s.high / divisor;
}

// Tokens/s, accuracy: one bar per variant with its seed spread.
void metric_bars(MarkupWriter& w, const ResultsTable& table, Metric metric, double divisor, const std::string& id,
                 const std::string& caption, const std::string& axis_label) {
  std::vector<BarRow> rows;
  for (size_t i = 0; i < table.variants.size(); ++i) {
    const VariantResult& v = table.variants[i];
    auto it = v.metrics.find(metric);
    if (it == v.metrics.end()) continue;
    BarSpec bar{metric_info(metric).column, it->second.mean / divisor, {}, {}, format_spread(metric, it->second),
                variant_color(i), ""};
    set_error(bar, it->second, divisor);
    rows.push_back({v.name, {bar}});
  }
  bar_chart(w, id, caption,
            fmt::format("{} per variant: the mean over its seeds, with an error bar over the seed spread (min\u2013max "
                        "for two seeds, \u00b1 std for three or more)",
                        axis_label),
            axis_label, rows, {}, false);
}

// Peak memory measured beside planned, per variant.
void memory_bars(MarkupWriter& w, const ResultsTable& table, Metric measured, Metric planned, const std::string& id,
                 const std::string& caption) {
  double largest = 0;
  for (const auto& v : table.variants) {
    for (Metric m : {measured, planned}) {
      if (auto it = v.metrics.find(m); it != v.metrics.end()) largest = std::max(largest, it->second.high);
    }
  }
  const auto [divisor, unit] = byte_unit(largest);
  std::vector<BarRow> rows;
  for (size_t i = 0; i < table.variants.size(); ++i) {
    const VariantResult& v = table.variants[i];
    BarRow row{v.name, {}};
    if (auto it = v.metrics.find(measured); it != v.metrics.end()) {
      BarSpec bar{"measured", it->second.mean / divisor, {}, {}, format_spread(measured, it->second), variant_color(i),
                  "measured"};
      set_error(bar, it->second, divisor);
      row.bars.push_back(bar);
    }
    if (auto it = v.metrics.find(planned); it != v.metrics.end()) {
      row.bars.push_back({"planned", it->second.mean / divisor, {}, {}, format_metric(planned, it->second.mean),
                          variant_color(i), "planned"});
    }
    if (!row.bars.empty()) rows.push_back(std::move(row));
  }
  bar_chart(w, id, caption,
            "Peak memory per variant: measured (solid, with the seed spread) beside what loft plan predicted "
            "(hatched)",
            unit, rows, {{"measured peak", "#555555", "swatch"}, {"planned peak", "#555555", "swatch planned"}}, false);
}

// Planned run-device memory by the planner's categories, one stacked bar per variant.
void breakdown_bars(MarkupWriter& w, const ResultsTable& table, const std::vector<ResultRow>& rows) {
  // A CPU run's run device is the host: its summary plans everything under host_by_category.
  auto run_device = [](const PlannedMemory& p) -> const auto& {
    return p.gpu_by_category.empty() ? p.host_by_category : p.gpu_by_category;
  };
  std::vector<std::string> categories;
  std::vector<std::pair<size_t, const PlannedMemory*>> planned;
  double largest = 0;
  for (size_t i = 0; i < table.variants.size(); ++i) {
    for (size_t r : table.variants[i].measured_rows) {
      const auto& s = rows[r].summary;
      if (!s || !s->planned || run_device(*s->planned).empty()) continue;
      planned.emplace_back(i, &*s->planned);
      double total = 0;
      for (const auto& [c, bytes] : run_device(*s->planned)) {
        total += bytes;
        if (std::find(categories.begin(), categories.end(), c) == categories.end()) categories.push_back(c);
      }
      largest = std::max(largest, total);
      break;  // seeds plan alike: the first one stands for the variant
    }
  }
  if (planned.empty()) return;
  const auto [divisor, unit] = byte_unit(largest);
  auto color_of = [&](const std::string& c) {
    const size_t k = static_cast<size_t>(std::find(categories.begin(), categories.end(), c) - categories.begin());
    return std::string(kCategoryColors[k % std::size(kCategoryColors)]);
  };
  std::vector<BarRow> bar_rows;
  for (const auto& [i, p] : planned) {
    BarRow row{table.variants[i].name, {}};
    for (const auto& [c, bytes] : run_device(*p)) {
      if (bytes <= 0) continue;
      row.bars.push_back({c, bytes / divisor, {}, {}, format_metric(Metric::kPlannedGpu, bytes), color_of(c),
                          "category"});
    }
    bar_rows.push_back(std::move(row));
  }
  std::vector<LegendItem> legend;
  for (const auto& c : categories) legend.push_back({c, color_of(c), "swatch"});
  bar_chart(w, "chart-memory-breakdown", "Planned peak memory on the run device, by category",
            "What loft plan predicts each variant holds on its run device at the peak, stacked by category", unit,
            bar_rows, legend, true, [divisor = divisor](double total) {
              return format_metric(Metric::kPlannedGpu, total * divisor);
            });
}

// ---- the table ----

void results_table_html(MarkupWriter& w, const ResultsTable& table, const std::vector<ResultRow>& rows) {
  w.open("section", {{"id", "results"}});
  w.element("h2", {}, "Results");
  w.open("div", {{"class", "table-wrap"}});
  w.open("table", {{"id", "results-table"}});
  w.open("thead");
  w.open("tr");
  w.element("th", {{"scope", "col"}}, "variant");
  for (const auto& k : table.differing_keys) w.element("th", {{"scope", "col"}, {"class", "key"}}, k);
  if (table.any_seeds) w.element("th", {{"scope", "col"}}, "seeds");
  if (table.any_unfinished) w.element("th", {{"scope", "col"}}, "status");
  for (Metric m : table.metrics) w.element("th", {{"scope", "col"}, {"class", "metric"}}, metric_info(m).column);
  w.close();
  w.close();
  w.open("tbody");
  for (size_t i = 0; i < table.variants.size(); ++i) {
    const VariantResult& v = table.variants[i];
    w.open("tr", {{"data-variant", v.name}});
    w.open("th", {{"scope", "row"}});
    w.element("span", {{"class", "swatch-inline"}, {"style", std::string("background:") + variant_color(i)}});
    w.text(v.name);
    w.close();
    for (const auto& k : table.differing_keys) w.element("td", {{"class", "key"}}, override_value(v, k));
    if (table.any_seeds) w.element("td", {}, variant_seeds(v, rows));
    if (table.any_unfinished) {
      w.element("td", {{"class", v.status == "finished" ? "status" : "status unfinished"}},
                v.reused ? v.status + " (reused)" : v.status);
    }
    for (Metric m : table.metrics) {
      auto it = v.metrics.find(m);
      if (it == v.metrics.end()) {
        w.element("td", {{"class", "metric missing"}}, "-");
        continue;
      }
      std::string cls = "metric";
      if (v.best.count(m)) cls += " best";
      if (v.overlaps_best.count(m)) cls += " overlaps-best";
      w.open("td", {{"class", cls}, {"data-metric", metric_info(m).csv_name}});
      w.text(format_spread(m, it->second));
      if (v.overlaps_best.count(m)) {
        w.element("span", {{"class", "marker"}, {"title", "spread overlaps the best variant's"}}, " \u2248");
      }
      w.close();
    }
    w.close();
  }
  w.close();  // tbody
  w.close();  // table
  w.close();  // div
  w.element("p", {{"class", "table-legend"}}, results_table_legend());
  w.close();
}

constexpr const char* kStyle = R"(
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1280px; padding: 0 16px; }
.table-wrap { overflow-x: auto; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.inputs { color: #555; font-size: 13px; margin-top: 0; }
figure.chart { margin: 18px 0; } figcaption { font-weight: bold; font-size: 14px; margin-bottom: 4px; }
.chart-svg { font-size: 11px; max-width: 100%; height: auto; }
.chart-svg text { fill: #333; }
.grid { stroke: #e6e6e6; } .axis-line { stroke: #555; }
.axis-label { font-size: 12px; fill: #444; }
.curve { fill: none; stroke-width: 2; } .band { fill-opacity: 0.18; stroke: none; }
.bar.planned { fill-opacity: 0.25; stroke-dasharray: 3 2; } .swatch.planned { fill-opacity: 0.25; stroke-dasharray: 2 1; }
.error-bar { stroke: #222; stroke-width: 1.2; fill: none; }
.segment { stroke: #fff; stroke-width: 0.5; }
table#results-table { border-collapse: collapse; font-size: 12.5px; margin-top: 8px; }
#results-table th, #results-table td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
#results-table td.metric { text-align: right; white-space: nowrap; }
#results-table td.best { font-weight: bold; } #results-table .marker { color: #b35900; }
#results-table td.status { max-width: 260px; } #results-table td.unfinished { color: #a00; }
.swatch-inline { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; }
.table-legend, .notes { font-size: 12px; color: #555; max-width: 900px; }
)";

}  // namespace

std::string render_report_html(const ReportData& data) {
  const ResultsTable table = aggregate_results(data.rows);
  MarkupWriter w;
  w.raw("<!DOCTYPE html>\n");
  w.open("html", {{"lang", "en"}});
  w.open("head");
  w.raw("<meta charset=\"utf-8\">\n");
  w.element("title", {}, "loft report");
  w.open("style");
  w.raw(kStyle);
  w.close();
  w.close();
  w.open("body");
  w.open("header");
  w.element("h1", {}, "loft report");
  size_t runs = 0;
  for (const auto& r : data.rows) runs += r.status == "finished" || r.status == "running";
  std::string inputs;
  for (const auto& p : data.inputs) inputs += (inputs.empty() ? "" : ", ") + p;
  w.element("p", {{"class", "inputs"}},
            fmt::format("{} \u00b7 {} variant{}, {} measured run{} of {}", inputs, table.variants.size(),
                        table.variants.size() == 1 ? "" : "s", runs, runs == 1 ? "" : "s", data.rows.size()));
  w.close();

  w.open("section", {{"id", "charts"}});
  // Loss curves: the variants' runs combined per step.
  auto curves_of = [&](bool validation) {
    std::vector<CurveSeries> series;
    for (size_t i = 0; i < table.variants.size(); ++i) {
      std::vector<const std::vector<CurvePoint>*> runs_of_variant;
      for (size_t r : table.variants[i].rows) {
        if (data.curves[r]) runs_of_variant.push_back(validation ? &data.curves[r]->val_loss : &data.curves[r]->train_loss);
      }
      CurveSeries s = combine_curves(table.variants[i].name, variant_color(i), runs_of_variant);
      if (!s.steps.empty()) series.push_back(std::move(s));
    }
    return series;
  };
  if (auto train = curves_of(false); !train.empty()) line_chart(w, "chart-train-loss", "Training loss", "loss", train);
  if (auto val = curves_of(true); !val.empty()) {
    line_chart(w, "chart-val-loss", "Validation loss", "validation loss", val);
  }
  auto any = [&](Metric m, bool positive) {
    for (const auto& v : table.variants) {
      if (auto it = v.metrics.find(m); it != v.metrics.end() && (!positive || it->second.max > 0)) return true;
    }
    return false;
  };
  if (any(Metric::kTokensPerS, false)) {
    metric_bars(w, table, Metric::kTokensPerS, 1, "chart-throughput", "Throughput", "tokens/s");
  }
  // A CPU run measures no GPU memory: its planned run-device memory is host memory (the host chart shows it).
  if (any(Metric::kPeakGpu, true)) {
    memory_bars(w, table, Metric::kPeakGpu, Metric::kPlannedGpu, "chart-gpu-memory", "Peak GPU memory");
  }
  if (any(Metric::kPeakHost, true) || any(Metric::kPlannedHost, true)) {
    memory_bars(w, table, Metric::kPeakHost, Metric::kPlannedHost, "chart-host-memory", "Peak host memory");
  }
  breakdown_bars(w, table, data.rows);
  if (any(Metric::kEvalAccuracy, false)) {
    metric_bars(w, table, Metric::kEvalAccuracy, 0.01, "chart-accuracy", "Eval accuracy", "accuracy (%)");
  }
  w.close();

  results_table_html(w, table, data.rows);
  if (!data.notes.empty()) {
    w.open("section", {{"id", "notes"}, {"class", "notes"}});
    w.element("h2", {}, "Notes");
    w.open("ul");
    for (const auto& n : data.notes) w.element("li", {}, n);
    w.close();
    w.close();
  }
  w.close();  // body
  w.close();  // html
  return w.str();
}

Status write_report(const std::vector<std::filesystem::path>& paths, const std::filesystem::path& out,
                    const PlanForRun& plan) {
  auto data = load_report_data(paths, plan);
  if (!data.ok()) return data.status();
  return write_file_atomically(out, render_report_html(data.value()));
}

}  // namespace loft
