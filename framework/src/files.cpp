// remove_tree through nftw (see files.h for why not std::filesystem::remove_all).
#include "loft/framework/files.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace loft {

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return std::remove(path) == 0 ? 0 : errno; }
}  // namespace

Status remove_tree(const std::filesystem::path& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return Status::Ok();  // nothing there
  const int rc = ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (rc != 0) {
    return Status::IoError(fmt::format("cannot delete {}: {}", path.string(), std::strerror(rc > 0 ? rc : errno)));
  }
  return Status::Ok();
}

}  // namespace loft
