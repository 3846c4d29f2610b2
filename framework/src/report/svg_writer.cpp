// The markup writer and axis arithmetic of `loft report`.
#include "report/svg_writer.h"

#include <cmath>

#include <fmt/format.h>

namespace loft::report_detail {

std::string escape_markup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

void MarkupWriter::start_tag(std::string_view tag, const Attributes& attributes) {
  out_ += "<";
  out_ += tag;
  for (const auto& [name, value] : attributes) out_ += " " + name + "=\"" + escape_markup(value) + "\"";
  out_ += ">";
}

void MarkupWriter::open(std::string_view tag, const Attributes& attributes) {
  start_tag(tag, attributes);
  open_tags_.emplace_back(tag);
  out_ += "\n";
}

void MarkupWriter::close() {
  if (open_tags_.empty()) return;
  out_ += "</" + open_tags_.back() + ">\n";
  open_tags_.pop_back();
}

void MarkupWriter::element(std::string_view tag, const Attributes& attributes, std::string_view text) {
  start_tag(tag, attributes);
  out_ += escape_markup(text);
  out_ += "</";
  out_ += tag;
  out_ += ">\n";
}

void MarkupWriter::text(std::string_view text) { out_ += escape_markup(text); }

void MarkupWriter::raw(std::string_view markup) { out_ += markup; }

std::vector<double> nice_ticks(double low, double high, int max_count) {
  if (!std::isfinite(low) || !std::isfinite(high)) return {};
  if (high < low) std::swap(low, high);
  if (high == low) {
    const double pad = low == 0 ? 1 : std::fabs(low) * 0.1;
    low -= pad;
    high += pad;
  }
  const double rough = (high - low) / std::max(1, max_count - 1);
  const double power = std::pow(10.0, std::floor(std::log10(rough)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= rough) break;
  }
  std::vector<double> ticks;
  const double first = std::floor(low / step) * step;
  for (double t = first; t <= high + step * 0.5 && ticks.size() < 64; t += step) {
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  }
  if (!ticks.empty() && ticks.back() < high) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::string tick_label(double value, double spacing) {
  if (std::fabs(value) >= 1e7) return fmt::format("{:.3g}", value);
  const int decimals = spacing >= 1 || spacing <= 0 ? 0 : static_cast<int>(std::ceil(-std::log10(spacing) - 1e-9));
  return fmt::format("{:.{}f}", value, std::min(decimals, 6));
}

std::string coordinate(double value) {
  std::string s = fmt::format("{:.2f}", value);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

}  // namespace loft::report_detail
