// Shared by the fuzz targets: inputs that loft reads from files go through one per-process temporary file.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace loft::fuzz {

// The folder for this process's scratch files ($TMPDIR or /tmp), created once.
inline const std::string& scratch_folder() {
  static const std::string folder = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string f = std::string(tmp && *tmp ? tmp : "/tmp") + "/loft-fuzz-" + std::to_string(::getpid());
    ::mkdir(f.c_str(), 0700);
    return f;
  }();
  return folder;
}

// Writes `data` to scratch_folder()/name (replacing it) and returns the path. Aborts if the write fails: a harness
// that silently tests an empty file would find nothing.
inline std::string write_scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_folder() + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

}  // namespace loft::fuzz
