// dataset/synthetic: MATH-shaped arithmetic word problems from a seed; the default, self-contained dataset.

#include <stdexcept>

#include <fmt/format.h>

#include "loft/dataset.h"
#include "loft/plugin.h"
#include "synthetic_problems.h"

namespace {

class SyntheticDataset final : public loft::Dataset {
 public:
  SyntheticDataset(int64_t size, uint64_t seed, int max_level, std::vector<std::string> types, std::string instruction)
      : size_(size), seed_(seed), max_level_(max_level), types_(std::move(types)), instruction_(std::move(instruction)) {}
  int64_t size() const override { return size_; }
  loft::Sample get(int64_t index) const override {
    if (index < 0 || index >= size_) {
      throw std::out_of_range(fmt::format("dataset/synthetic: index {} outside [0, {})", index, size_));
    }
    auto p = loft::synthetic::make_problem(seed_, static_cast<uint64_t>(index), max_level_, types_);
    loft::Sample s;
    std::string user = instruction_.empty() ? p.problem : p.problem + "\n" + instruction_;
    s.messages = {{"user", std::move(user)}, {"assistant", p.solution}};
    s.fields = {{"problem", p.problem},
                {"solution", p.solution},
                {"answer", p.answer},
                {"level", "Level " + std::to_string(p.level)},
                {"type", p.type}};
    return s;
  }

 private:
  int64_t size_;
  uint64_t seed_;
  int max_level_;
  std::vector<std::string> types_;
  std::string instruction_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_dataset("synthetic", [](const loft::HostContext& ctx, const loft::Options& o) {
    const int64_t seed = o.integer("seed");
    // Checked here, not at the first sample: a bad option fails the run before the model is built.
    if (o.strings("types").empty()) {
      throw std::invalid_argument("types = [] names no problem type; name at least one (\"Prealgebra\", \"Algebra\", "
                                  "\"Number Theory\", \"Counting & Probability\") or leave `types` out for all");
    }
    return std::make_unique<SyntheticDataset>(o.integer("limit"), seed < 0 ? ctx.seed() : static_cast<uint64_t>(seed),
                                              static_cast<int>(o.integer("max_level")), o.strings("types"),
                                              o.string("instruction"));
  });
}

}  // namespace

LOFT_PLUGIN("dataset/synthetic", register_plugin)
