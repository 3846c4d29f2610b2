// A run's checkpoints/ folder: step-NNNNNN folders published so that a crash at any moment leaves a resumable run
// (`latest` always names a complete folder, or is found again by a scan), and older ones pruned to train.keep_last.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "loft/status.h"

namespace loft {

// "step-000040": the folder name of the checkpoint after optimizer step `step`.
std::string checkpoint_folder_name(int64_t step);

// Whether `dir` holds a complete checkpoint: a trainer.json of loft's format whose step matches the folder's name,
// and trainable.pt, optimizer.pt and rng_cpu.pt. Reads only trainer.json.
bool is_complete_checkpoint(const std::filesystem::path& dir);

// Publishes a checkpoint at `dir` (<run>/checkpoints/step-NNNNNN), in this order, each step durable before the next:
// the files are written into <dir>.partial (each fsynced), the folder is put at `dir` (replace_directory: an existing
// one is exchanged atomically, never deleted first), checkpoints/latest is replaced atomically to name it, and only
// then are older checkpoints pruned: the `keep_last` newest up to this one stay (keep_last >= 1), together with
// stale *.partial folders the older ones are deleted. Folders of later steps (left by a run that was resumed
// from an earlier checkpoint) are not touched. Fault points: checkpoint.staged, .placed, .published, .pruning.
Status publish_checkpoint(const std::filesystem::path& dir,
                          const std::vector<std::pair<std::string, std::string>>& files, int64_t keep_last);

// Makes the complete checkpoint `dir` (the one a resume loaded) the one checkpoints/latest names, then prunes as
// publish_checkpoint does: a run killed between publishing and pruning, or resumed from the newest complete
// checkpoint because `latest` was broken, is tidied before it goes on.
Status adopt_checkpoint(const std::filesystem::path& dir, int64_t keep_last);

}  // namespace loft
