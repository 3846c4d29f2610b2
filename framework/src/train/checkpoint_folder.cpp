// publish_checkpoint and latest_checkpoint: the write order that keeps checkpoints/latest valid through any crash,
// and the scan that finds the newest complete checkpoint when it is not.
#include "loft/framework/checkpoint_folder.h"

#include <algorithm>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "fault_point.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/files.h"
#include "loft/framework/trainer.h"

namespace fs = std::filesystem;

namespace loft {

namespace {

// The step of a folder named step-NNNNNN (digits only after the dash), or nothing.
std::optional<int64_t> step_of(const std::string& name) {
  const std::string prefix = "step-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() > prefix.size() + 18) {
    return std::nullopt;
  }
  const std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return std::stoll(digits);
}

// The complete checkpoint folders below `checkpoints`, by step.
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& checkpoints) {
  std::vector<std::pair<int64_t, fs::path>> out;
  for (const auto& entry : fs::list_directory(checkpoints)) {
    if (auto step = step_of(entry.filename().string()); step && is_complete_checkpoint(entry)) out.emplace_back(*step, entry);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status prune(const fs::path& checkpoints, int64_t current, int64_t keep_last) {
  std::vector<std::pair<int64_t, fs::path>> older;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::list_directory(checkpoints)) {
    const std::string name = entry.filename().string();
    if (name.find(".partial") != std::string::npos && fs::is_directory(entry)) {  // <step>.partial[.old]
      stale.push_back(entry);
    } else if (auto step = step_of(name); step && *step < current && fs::is_directory(entry)) {
      older.emplace_back(*step, entry);
    }
  }
  std::sort(older.begin(), older.end());
  const size_t keep_older = static_cast<size_t>(std::max<int64_t>(keep_last - 1, 0));
  if (older.size() > keep_older) {
    for (size_t i = 0; i < older.size() - keep_older; ++i) stale.push_back(older[i].second);
  }
  for (const auto& dir : stale) {
    fault_point("checkpoint.pruning", current);
    if (auto st = remove_tree(dir); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace

std::string checkpoint_folder_name(int64_t step) { return fmt::format("step-{:06d}", step); }

bool is_complete_checkpoint(const fs::path& dir) {
  const auto step = step_of(dir.filename().string());
  if (!step || !fs::is_directory(dir)) return false;
  for (const char* f : {"trainable.pt", "optimizer.pt", "rng_cpu.pt"}) {
    if (!fs::is_regular_file(dir / f)) return false;
  }
  std::ifstream in(dir / "trainer.json");
  if (!in) return false;
  const auto meta = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return meta.is_object() && meta.value("format", "") == "loft-checkpoint" && meta.contains("step") &&
         meta["step"].is_number_integer() && meta["step"].get<int64_t>() == *step;
}

Status publish_checkpoint(const fs::path& dir, const std::vector<std::pair<std::string, std::string>>& files,
                          int64_t keep_last) {
  const auto step = step_of(dir.filename().string()).value_or(-1);
  fs::path staged = dir;
  staged += ".partial";
  if (auto st = remove_tree(staged); !st.ok()) return st;
  if (auto st = fs::create_directories(staged); !st.ok()) return st;
  for (const auto& [name, bytes] : files) {
    if (auto st = write_file_atomically(staged / name, bytes); !st.ok()) return st;
  }
  fault_point("checkpoint.staged", step);
  if (auto st = fs::replace_directory(staged, dir); !st.ok()) return st;
  fault_point("checkpoint.placed", step);
  const fs::path checkpoints = dir.parent_path();
  if (auto st = write_file_atomically(checkpoints / "latest", dir.filename().string() + "\n"); !st.ok()) return st;
  fault_point("checkpoint.published", step);
  spdlog::info("checkpoint {} written", dir.string());
  if (step < 0) return Status::Ok();  // not a step-NNNNNN folder: no siblings of ours to prune
  return prune(checkpoints, step, keep_last);
}

Status adopt_checkpoint(const fs::path& dir, int64_t keep_last) {
  const auto step = step_of(dir.filename().string());
  if (!step) return Status::Ok();
  const fs::path checkpoints = dir.parent_path();
  std::ifstream latest(checkpoints / "latest");
  std::string name;
  if (!(latest >> name) || name != dir.filename().string()) {
    if (auto st = write_file_atomically(checkpoints / "latest", dir.filename().string() + "\n"); !st.ok()) return st;
  }
  return prune(checkpoints, *step, keep_last);
}

StatusOr<fs::path> latest_checkpoint(const fs::path& run_dir) {
  const fs::path checkpoints = run_dir / "checkpoints";
  std::ifstream latest(checkpoints / "latest");
  std::string name;
  const bool named = static_cast<bool>(latest >> name);
  if (named && is_complete_checkpoint(checkpoints / name)) return checkpoints / name;
  // A crash between publishing steps, or a damaged folder: the newest complete checkpoint is as good a start.
  const std::string why = named ? fmt::format("names {}, which is missing or incomplete", name) : "is missing";
  const auto found = complete_checkpoints(checkpoints);
  if (found.empty()) {
    if (!fs::is_directory(checkpoints)) {
      return Status::NotFound(fmt::format("{}: no checkpoints/latest in that folder; is it a loft run folder?",
                                          run_dir.string()));
    }
    return Status::NotFound(fmt::format("{}: no complete checkpoint in {} (checkpoints/latest {}); the run saved none "
                                        "before it stopped: start it again with --overwrite",
                                        run_dir.string(), checkpoints.string(), why));
  }
  spdlog::warn("{}/latest {}; using the newest complete checkpoint, {}", checkpoints.string(), why,
               found.back().second.filename().string());
  return found.back().second;
}

}  // namespace loft
