// A small writer of SVG/HTML markup for `loft report`: elements with attributes, every text and attribute value
// escaped, and the axis arithmetic of the charts (nice tick values, linear scales).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loft::report_detail {

// Text and attribute values with & < > " ' replaced by entities: user strings (variant names, keys, reasons) stay
// text whatever they hold.
std::string escape_markup(std::string_view text);

using Attributes = std::vector<std::pair<std::string, std::string>>;

// Builds markup into a string. open()/close() nest; element() writes one element with escaped text content.
class MarkupWriter {
 public:
  void open(std::string_view tag, const Attributes& attributes = {});
  void close();
  void element(std::string_view tag, const Attributes& attributes, std::string_view text = {});
  void text(std::string_view text);  // escaped
  void raw(std::string_view markup);  // trusted markup written by loft (styles)
  std::string str() const { return out_; }

 private:
  void start_tag(std::string_view tag, const Attributes& attributes);
  std::string out_;
  std::vector<std::string> open_tags_;
};

// About `max_count` round tick values (1, 2 or 5 times a power of ten apart) covering [low, high].
std::vector<double> nice_ticks(double low, double high, int max_count);
// A tick's label, with as many decimals as the tick spacing needs ("0.5", "1200", "2.5e+06" for huge values).
std::string tick_label(double value, double spacing);
// A coordinate: at most two decimals, no trailing zeros.
std::string coordinate(double value);

// Maps [domain_low, domain_high] linearly onto [range_low, range_high].
struct LinearScale {
  double domain_low = 0, domain_high = 1, range_low = 0, range_high = 1;
  double operator()(double v) const {
    const double span = domain_high - domain_low;
    return range_low + (span == 0 ? 0.5 : (v - domain_low) / span) * (range_high - range_low);
  }
};

}  // namespace loft::report_detail
