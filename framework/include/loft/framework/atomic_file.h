// Atomic file replacement: write a temporary file beside the target, fsync it, rename it over the target, fsync the
// folder. A crash leaves either the old file or the complete new one, never a torn mix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "loft/status.h"

namespace loft {

// Streams bytes into `<dir>/.<name>.tmp.XXXXXX` and publishes them at `target` on commit(). Destroying the writer
// without a successful commit() deletes the temporary file and leaves `target` untouched. Move-only; not thread-safe.
class AtomicFileWriter {
 public:
  // Creates the temporary file in target's folder (which must exist). Errors name the path and the OS reason.
  static StatusOr<AtomicFileWriter> create(const std::filesystem::path& target);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  // Appends bytes (buffered). After an error every later call fails with the same status.
  Status write(const void* data, std::size_t size_bytes);
  Status write(std::string_view bytes) { return write(bytes.data(), bytes.size()); }
  // Flushes, fsyncs the file, gives it mode 0644 (or the replaced file's mode), renames it over the target and
  // fsyncs the folder. The writer is finished afterwards, whatever the outcome.
  Status commit();

  const std::filesystem::path& target() const { return target_; }
  std::uint64_t bytes_written() const { return bytes_written_; }

 private:
  AtomicFileWriter() = default;
  Status flush_buffer();
  void abandon();

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::string buffer_;
  std::uint64_t bytes_written_ = 0;
  Status error_;
};

// Replaces `target` with `bytes` atomically (see AtomicFileWriter).
Status write_file_atomically(const std::filesystem::path& target, std::string_view bytes);

}  // namespace loft
