// dataset/math: the MATH benchmark as JSONL (problem, solution, level, type), filtered by level and type, loaded
// whole at creation.
//
// Each sample is a user turn (problem, a newline, the instruction) and an assistant turn (the solution). Its
// fields are the record's scalar fields (extra ones such as "unique_id" kept) with "level" and "type" normalised,
// plus "answer": the record's own "answer" when it has one (curated copies such as MATH-500 do), otherwise the
// content of the solution's last \boxed{} (absent when the solution has none).
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>


#include "jsonl_records.h"
#include <fmt/format.h>

#include "loft/dataset.h"
#include "loft/plugin.h"

namespace {

using loft::jsonl::Record;
using Fields = std::map<std::string, std::string>;

const std::vector<std::string> kLevels = {"Level 1", "Level 2", "Level 3", "Level 4", "Level 5"};
const std::vector<std::string> kTypes = {"Algebra",       "Counting & Probability", "Geometry", "Intermediate Algebra",
                                         "Number Theory", "Prealgebra",             "Precalculus"};

class MathDataset final : public loft::Dataset {
 public:
  MathDataset(std::vector<Fields> records, std::string instruction)
      : records_(std::move(records)), instruction_(std::move(instruction)) {}
  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  loft::Sample get(int64_t index) const override {
    if (index < 0 || index >= size()) {
      throw std::out_of_range(fmt::format("dataset/math: index {} outside [0, {})", index, size()));
    }
    loft::Sample s;
    s.fields = records_[static_cast<size_t>(index)];
    const std::string& problem = s.fields.at("problem");
    s.messages = {{"user", instruction_.empty() ? problem : problem + "\n" + instruction_},
                  {"assistant", s.fields.at("solution")}};
    return s;
  }

 private:
  std::vector<Fields> records_;  // the samples' fields; messages are built from them on demand
  std::string instruction_;
};

// The content of the last \boxed{...} (or \fbox{...}) of `text`. Braces are counted as in the MATH benchmark's
// reference (last_boxed_only_string), so \boxed{\{1,2\}} and \boxed{\frac{1}{2}} come out whole. "\boxed 5" gives
// "5". Empty when there is none or its braces never close.
std::string last_boxed_content(const std::string& text) {
  size_t at = std::string::npos, skip = 0;
  for (const std::string marker : {"\\boxed", "\\fbox"}) {
    const size_t found = text.rfind(marker);
    if (found != std::string::npos && (at == std::string::npos || found > at)) {
      at = found;
      skip = marker.size();
    }
  }
  if (at == std::string::npos) return "";
  size_t i = at + skip;
  if (i < text.size() && text[i] == ' ') {
    const size_t end = text.find_first_of("$ \n", i + 1);
    return text.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
  }
  if (i >= text.size() || text[i] != '{') return "";
  int depth = 0;
  for (size_t j = i; j < text.size(); ++j) {
    if (text[j] == '{') ++depth;
    if (text[j] == '}' && --depth == 0) return text.substr(i + 1, j - i - 1);
  }
  return "";
}

// "Level 3" as MATH spells it; an integer 3 (some copies) is accepted and spelled the same way.
std::string read_level(const Record& r) {
  auto it = r.value.find("level");
  if (it != r.value.end() && it->is_number_integer()) return "Level " + std::to_string(it->get<int64_t>());
  return loft::jsonl::required_string(r, "level", "MATH records carry \"level\" (\"Level 1\"..\"Level 5\")");
}

// "type"; copies such as MATH-500 call it "subject".
std::string read_type(const Record& r) {
  if (!r.value.contains("type") && r.value.contains("subject")) return loft::jsonl::required_string(r, "subject", "");
  return loft::jsonl::required_string(r, "type", "MATH records carry \"type\" (\"Algebra\", \"Geometry\", ...)");
}

Fields read_record(const Record& r) {
  const std::string hint =
      "MATH records are {\"problem\", \"solution\", \"level\", \"type\"}; for other shapes use dataset/jsonl";
  Fields f = loft::jsonl::scalar_fields(r.value);
  f["problem"] = loft::jsonl::required_string(r, "problem", hint);
  f["solution"] = loft::jsonl::required_string(r, "solution", hint);
  f["level"] = read_level(r);
  f["type"] = read_type(r);
  auto answer = r.value.find("answer");
  if (answer != r.value.end() && !answer->is_string()) {
    throw std::invalid_argument(r.where() + ": field \"answer\" must be a string, got " +
                             loft::jsonl::describe_json_type(*answer));
  }
  if (answer == r.value.end()) {
    std::string boxed = last_boxed_content(f["solution"]);
    if (boxed.empty()) {
      f.erase("answer");
    } else {
      f["answer"] = std::move(boxed);
    }
  }
  return f;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& item : items) out += (out.size() > 1 ? ", \"" : "\"") + item + "\"";
  return out + "]";
}

std::string tally(const std::map<std::string, int64_t>& counts) {
  std::string out;
  for (const auto& [name, n] : counts) out += (out.empty() ? "\"" : ", \"") + name + "\" (" + std::to_string(n) + ")";
  return out;
}

// Filter values are checked by the host against the manifest's choices; checked again for direct callers.
std::set<std::string> checked_filter(const loft::Options& o, const std::string& name,
                                     const std::vector<std::string>& allowed) {
  std::set<std::string> values;
  for (const auto& v : o.strings(name)) {
    bool known = false;
    for (const auto& a : allowed) known = known || a == v;
    if (!known) {
      throw std::invalid_argument(name + ": \"" + v + "\" is not one of " + quoted_list(allowed));
    }
    values.insert(v);
  }
  return values;
}

std::unique_ptr<loft::Dataset> create(const loft::HostContext&, const loft::Options& o) {
  const std::string path = loft::jsonl::required_path(o, "a MATH JSONL file (problem, solution, level, type)");
  const std::set<std::string> levels = checked_filter(o, "levels", kLevels);
  const std::set<std::string> types = checked_filter(o, "types", kTypes);
  const int64_t limit = o.integer("limit");
  if (limit < 0) throw std::invalid_argument("limit = " + std::to_string(limit) + " must be >= 0 (0: no limit)");

  std::vector<Fields> kept;
  std::map<std::string, int64_t> level_counts, type_counts;  // over the records read, to explain an empty result
  int64_t level_passes = 0, type_passes = 0;
  loft::jsonl::for_each_record(path, [&](const Record& r) {
    Fields f = read_record(r);
    ++level_counts[f["level"]];
    ++type_counts[f["type"]];
    const bool level_ok = levels.empty() || levels.count(f["level"]) != 0;
    const bool type_ok = types.empty() || types.count(f["type"]) != 0;
    level_passes += level_ok;
    type_passes += type_ok;
    if (level_ok && type_ok) kept.push_back(std::move(f));
    return limit == 0 || static_cast<int64_t>(kept.size()) < limit;
  });
  if (kept.empty()) {
    // The whole file was read (the limit stops reading only once something is kept): say which filter emptied it.
    const std::vector<std::string> level_list(levels.begin(), levels.end()), type_list(types.begin(), types.end());
    std::string why;
    if (level_passes == 0) {
      why = "levels = " + quoted_list(level_list) + " matches none (the file's levels: " + tally(level_counts) + ")";
    } else if (type_passes == 0) {
      why = "types = " + quoted_list(type_list) + " matches none (the file's types: " + tally(type_counts) + ")";
    } else {
      why = "levels = " + quoted_list(level_list) + " and types = " + quoted_list(type_list) +
            " each match some records but never the same one";
    }
    throw std::invalid_argument(path + ": no record is left after filtering: " + why +
                             ". Widen the filter, or leave it empty ([]) for all");
  }
  return std::make_unique<MathDataset>(std::move(kept), o.string("instruction"));
}

void register_plugin(loft::Registrar& registrar) { registrar.add_dataset("math", &create); }

}  // namespace

LOFT_PLUGIN("dataset/math", register_plugin)
