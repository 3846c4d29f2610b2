// loft::fs over POSIX (see files.h for why std::filesystem's operations are not used).
#include "loft/framework/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace loft {

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return std::remove(path) == 0 ? 0 : errno; }

std::string errno_text(int err) { return std::strerror(err); }
}  // namespace

Status remove_tree(const std::filesystem::path& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return Status::Ok();  // nothing there
  const int rc = ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) {
    return Status::IoError(fmt::format("cannot delete {}: {}", path.string(), errno_text(rc > 0 ? rc : errno)));
  }
  return Status::Ok();
}

namespace fs {

bool exists(const path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0;
}

bool is_directory(const path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<uint64_t> file_size(const path& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

Status create_directories(const path& p) {
  if (p.empty() || fs::is_directory(p)) return Status::Ok();
  // The missing folders, outermost first; then mkdir each. A file where a folder must go is reported with the path
  // that was asked for.
  std::vector<path> missing;
  for (path q = p; !q.empty() && !fs::is_directory(q); q = q.parent_path()) {
    missing.push_back(q);
    if (q.parent_path() == q) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0777) != 0 && !(errno == EEXIST && fs::is_directory(*it))) {
      const int err = errno;
      const std::string why = err == EEXIST ? fmt::format("{} exists and is not a folder", it->string())
                                            : fmt::format("{}: {}", it->string(), errno_text(err));
      return Status::IoError(fmt::format("cannot create folder {}: {}", p.string(), why));
    }
  }
  return Status::Ok();
}

Status rename(const path& from, const path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return Status::IoError(fmt::format("cannot move {} to {}: {}", from.string(), to.string(), errno_text(errno)));
  }
  return Status::Ok();
}

Status sync_directory(const path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(fmt::format("cannot open folder {}: {}", dir.string(), errno_text(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) return Status::IoError(fmt::format("cannot sync folder {}: {}", dir.string(), errno_text(err)));
  return Status::Ok();
}

Status replace_directory(const path& staged, const path& target) {
  const path parent = target.has_parent_path() ? target.parent_path() : path(".");
  if (::rename(staged.c_str(), target.c_str()) != 0) {
    if (errno != ENOTEMPTY && errno != EEXIST) {
      return Status::IoError(fmt::format("cannot move {} to {}: {}", staged.string(), target.string(), errno_text(errno)));
    }
    if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS) {
        return Status::IoError(fmt::format("cannot exchange {} and {}: {}", staged.string(), target.string(),
                                           errno_text(errno)));
      }
      // No exchange on this file system: move the old folder aside, then the new one in.
      path aside = staged;
      aside += ".old";
      if (auto st = remove_tree(aside); !st.ok()) return st;
      if (auto st = fs::rename(target, aside); !st.ok()) return st;
      if (auto st = fs::rename(staged, target); !st.ok()) return st;
      if (auto st = sync_directory(parent); !st.ok()) return st;
      return remove_tree(aside);
    }
  }
  if (auto st = sync_directory(parent); !st.ok()) return st;
  return remove_tree(staged);  // the old contents after an exchange; nothing after a plain rename
}

std::vector<path> list_directory(const path& dir) {
  std::vector<path> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    out.push_back(dir / name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
void find_below(const path& dir, const std::string& file_name, int depth, std::vector<path>& out) {
  if (depth > 64) return;  // a bound against pathological trees; plugin folders are a few levels deep
  for (const auto& entry : fs::list_directory(dir)) {
    struct stat st{};
    if (::lstat(entry.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      // A link to a file counts; links to folders are not followed (no cycles).
      if (entry.filename() == file_name && fs::is_regular_file(entry)) out.push_back(entry);
      continue;
    }
    if (S_ISDIR(st.st_mode)) {
      find_below(entry, file_name, depth + 1, out);
    } else if (S_ISREG(st.st_mode) && entry.filename() == file_name) {
      out.push_back(entry);
    }
  }
}
}  // namespace

std::vector<path> find_files_named(const path& dir, const std::string& file_name) {
  std::vector<path> out;
  if (fs::is_directory(dir)) find_below(dir, file_name, 0, out);
  std::sort(out.begin(), out.end());
  return out;
}

path absolute(const path& p) {
  if (p.is_absolute() || p.empty()) return p;
  char buffer[PATH_MAX];
  if (::getcwd(buffer, sizeof buffer) == nullptr) return p;
  return path(buffer) / p;
}

path weakly_canonical(const path& p) {
  const path abs = fs::absolute(p).lexically_normal();
  // Walk up to the longest prefix that exists, resolve it, then append the rest.
  path prefix = abs, rest;
  while (!prefix.empty() && !fs::exists(prefix)) {
    rest = rest.empty() ? prefix.filename() : prefix.filename() / rest;
    const path parent = prefix.parent_path();
    if (parent == prefix) break;
    prefix = parent;
  }
  char* resolved = ::realpath(prefix.c_str(), nullptr);
  if (resolved == nullptr) return abs;
  path out(resolved);
  std::free(resolved);
  if (!rest.empty()) out /= rest;
  return out.lexically_normal();
}

}  // namespace fs
}  // namespace loft
