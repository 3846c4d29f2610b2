// File-system helpers that are safe in a process that has loaded libtorch.
#pragma once

#include <filesystem>

#include "loft/status.h"

namespace loft {

// Deletes `path` and everything below it (no error if absent). Use this, never std::filesystem::remove_all:
// libtorch.so exports its own copy of std::filesystem's remove_all, which crashes (null call) in a process that
// loads it (shared/notes; reproduced with torch 2.11's wheel).
Status remove_tree(const std::filesystem::path& path);

}  // namespace loft
