// offload/checkpoint: every frozen tensor on the run's device; selected decoder blocks keep only their input (and
// their captured state) and are recomputed inside the backward pass, through the SDK's block boundary
// (BlockExecution::kRecompute: reentrant checkpointing that gives every gradient under backward() and
// autograd::grad, even when a block's input does not require grad; see loft/block_boundary.h).
#include <cctype>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "loft/memory_cost.h"
#include "loft/offload.h"
#include "loft/resident_offload.h"
#include "loft/plugin.h"

namespace {

// ---- which blocks recompute -------------------------------------------------------------------------------------

// The parsed `blocks` option.
struct BlockSelection {
  enum class Kind { kAll, kNone, kEveryN, kList } kind = Kind::kAll;
  int64_t every_n = 1;
  std::set<int64_t> indices;

  bool selects(int64_t index) const {
    switch (kind) {
      case Kind::kAll: return true;
      case Kind::kNone: return false;
      case Kind::kEveryN: return index % every_n == 0;
      case Kind::kList: return indices.count(index) != 0;
    }
    return false;
  }
};

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// A non-negative decimal integer, or nothing.
std::optional<int64_t> parse_index(const std::string& s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

[[noreturn]] void bad_blocks(const std::string& value, const std::string& why) {
  throw std::invalid_argument(fmt::format(
      "offload/checkpoint: option 'blocks' = \"{}\": {}; write \"all\", \"none\", \"every_n:K\" with K >= 1, "
      "or a comma list of block indices such as \"0,2,5\"",
      value, why));
}

BlockSelection parse_blocks(const std::string& value) {
  BlockSelection sel;
  const std::string v = trim(value);
  if (v == "all") return sel;
  if (v == "none") {
    sel.kind = BlockSelection::Kind::kNone;
    return sel;
  }
  const std::string prefix = "every_n:";
  if (v.compare(0, prefix.size(), prefix) == 0) {
    auto k = parse_index(trim(v.substr(prefix.size())));
    if (!k || *k < 1) bad_blocks(value, "K must be an integer >= 1");
    sel.kind = BlockSelection::Kind::kEveryN;
    sel.every_n = *k;
    return sel;
  }
  if (v.empty()) bad_blocks(value, "empty");
  sel.kind = BlockSelection::Kind::kList;
  size_t start = 0;
  while (true) {
    const size_t comma = v.find(',', start);
    const std::string item = trim(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    auto index = parse_index(item);
    if (!index) bad_blocks(value, fmt::format("\"{}\" is not a block index (a non-negative integer)", item));
    if (!sel.indices.insert(*index).second) bad_blocks(value, fmt::format("block {} is listed twice", *index));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return sel;
}

// ---- the strategy -----------------------------------------------------------------------------------------------

class CheckpointOffload final : public loft::OffloadStrategy, public loft::OffloadMemoryPlan {
 public:
  CheckpointOffload(c10::Device device, BlockSelection selection) : device_(device), selection_(std::move(selection)) {}

  std::vector<loft::Home> plan(const std::vector<loft::ModelUnit>& units) override {
    return loft::plan_all_resident(units);
  }

  void place(const std::vector<loft::BlockResidency>& units) override { loft::place_all_on(units, device_); }

  loft::BlockExecution execution(int64_t index) override {
    return selection_.selects(index) ? loft::BlockExecution::kRecompute : loft::BlockExecution::kPlain;
  }

  // loft plan: everything resident; the selected blocks keep only their input.
  loft::OffloadMemoryLayout layout(const std::vector<loft::ModelUnit>& units) const override {
    loft::OffloadMemoryLayout l;
    l.homes = loft::plan_all_resident(units);
    for (const auto& u : units) {
      if (u.kind != loft::UnitKind::kBlock) continue;
      l.execution.push_back(selection_.selects(u.index) ? loft::BlockExecution::kRecompute : loft::BlockExecution::kPlain);
    }
    return l;
  }
  const void* extension(std::string_view id) const override {
    return id == loft::kOffloadMemoryPlanId ? static_cast<const loft::OffloadMemoryPlan*>(this) : nullptr;
  }

 private:
  c10::Device device_;
  BlockSelection selection_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_offload("checkpoint", [](const loft::HostContext& ctx, const loft::Options& options) {
    return std::make_unique<CheckpointOffload>(ctx.device(), parse_blocks(options.string("blocks")));
  });
}

}  // namespace

LOFT_PLUGIN("offload/checkpoint", register_plugin)
