// loft::fs: the file-system calls loft makes, over POSIX. std::filesystem::path stays the value type (its path
// arithmetic is used freely), but none of std::filesystem's out-of-line *operations* are called anywhere in the
// framework: libtorch.so exports its own copies of some of them (remove_all, recursive_directory_iterator, ...), and
// in a process that loads it those can crash (shared/notes/libtorch-facts.md; reproduced with torch 2.11's wheel).
//
// Every function here is thread-compatible, never throws, and blocks on the file system.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "loft/status.h"

namespace loft {

// Deletes `path` and everything below it (no error if absent), without following symbolic links.
[[nodiscard]] Status remove_tree(const std::filesystem::path& path);

namespace fs {

using path = std::filesystem::path;

// stat(2) based tests; false when the path does not exist or cannot be read. Symbolic links are followed.
bool exists(const path& p);
bool is_directory(const path& p);
bool is_regular_file(const path& p);
// Size in bytes of a regular file, or nothing.
std::optional<uint64_t> file_size(const path& p);

// mkdir -p: creates `p` and its missing parents (mode 0777 & ~umask). Ok when `p` already is a directory.
[[nodiscard]] Status create_directories(const path& p);
// rename(2): atomic within one file system; replaces an existing file or empty folder at `to`.
[[nodiscard]] Status rename(const path& from, const path& to);

// fsync(2) of a folder, so that the renames and creations inside it are durable. Ok on file systems that cannot
// sync a folder (EINVAL).
[[nodiscard]] Status sync_directory(const path& dir);
// Puts the folder `staged` at `target`, replacing what is there, then syncs their parent folder. `target` absent or
// an empty folder: rename(2). A non-empty folder: the two are exchanged atomically (renameat2 RENAME_EXCHANGE, so
// `target` never disappears) and the old contents, now at `staged`, are deleted. Where the file system cannot
// exchange, the old folder is moved aside first (a moment in which `target` is absent). Both must be on one file
// system.
[[nodiscard]] Status replace_directory(const path& staged, const path& target);

// The entries of a folder (not recursive), sorted by name, without "." and "..". Empty when it cannot be read.
std::vector<path> list_directory(const path& dir);
// Every regular file below `dir` (recursively, not following symbolic links to folders) whose file name is
// `file_name`, sorted. Unreadable sub-folders are skipped.
std::vector<path> find_files_named(const path& dir, const std::string& file_name);

// `p` made absolute against the current working folder (no file-system access beyond getcwd).
path absolute(const path& p);
// realpath(3) of the longest existing prefix of `p`, then the rest appended and lexically normalised: the same
// file reached through different spellings or links gives the same result.
path weakly_canonical(const path& p);

}  // namespace fs
}  // namespace loft
