// AtomicFileWriter: temp file beside the target, fsync, rename, fsync the folder (POSIX calls throughout; the
// std::filesystem operations are avoided because libtorch exports a broken copy of some of them, see files.h).
#include "loft/framework/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

namespace loft {

namespace {

constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

std::string os_error(const std::string& what, const std::filesystem::path& path, int err) {
  return "cannot " + what + " " + path.string() + ": " + std::strerror(err);
}

// write(2) until done, retrying short writes and EINTR.
int write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

StatusOr<AtomicFileWriter> AtomicFileWriter::create(const std::filesystem::path& target) {
  if (target.filename().empty()) return Status::InvalidArgument("cannot write " + target.string() + ": not a file name");
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::string pattern = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  const int fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (fd < 0) return Status::IoError(os_error("create a temporary file for", target, errno));
  AtomicFileWriter w;
  w.target_ = target;
  w.temp_ = std::filesystem::path(buf.data());
  w.fd_ = fd;
  w.buffer_.reserve(kBufferBytes);
  return StatusOr<AtomicFileWriter>(std::move(w));
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : target_(std::move(other.target_)),
      temp_(std::move(other.temp_)),
      fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      bytes_written_(other.bytes_written_),
      error_(std::move(other.error_)) {}

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& other) noexcept {
  if (this != &other) {
    abandon();
    target_ = std::move(other.target_);
    temp_ = std::move(other.temp_);
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    bytes_written_ = other.bytes_written_;
    error_ = std::move(other.error_);
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_.c_str());
  }
}

Status AtomicFileWriter::flush_buffer() {
  if (buffer_.empty()) return Status::Ok();
  if (const int err = write_all(fd_, buffer_.data(), buffer_.size())) {
    error_ = Status::IoError(os_error("write", temp_, err));
    return error_;
  }
  buffer_.clear();
  return Status::Ok();
}

Status AtomicFileWriter::write(const void* data, std::size_t size_bytes) {
  if (!error_.ok()) return error_;
  if (fd_ < 0) return Status::FailedPrecondition("write to " + target_.string() + " after commit");
  const char* bytes = static_cast<const char*>(data);
  bytes_written_ += size_bytes;
  if (buffer_.size() + size_bytes <= kBufferBytes) {
    buffer_.append(bytes, size_bytes);
    return Status::Ok();
  }
  if (Status s = flush_buffer(); !s.ok()) return s;
  if (size_bytes < kBufferBytes) {
    buffer_.append(bytes, size_bytes);
    return Status::Ok();
  }
  if (const int err = write_all(fd_, bytes, size_bytes)) {  // large payloads skip the copy into the buffer
    error_ = Status::IoError(os_error("write", temp_, err));
    return error_;
  }
  return Status::Ok();
}

Status AtomicFileWriter::commit() {
  if (!error_.ok()) {
    abandon();
    return error_;
  }
  if (fd_ < 0) return Status::FailedPrecondition("commit of " + target_.string() + " twice");
  if (Status s = flush_buffer(); !s.ok()) {
    abandon();
    return s;
  }
  // Keep the mode of a file we replace; new files get rw-r--r-- (mkstemp creates 0600).
  struct stat old {};
  const mode_t mode = ::stat(target_.c_str(), &old) == 0 ? (old.st_mode & 07777) : 0644;
  if (::fchmod(fd_, mode) != 0 || ::fsync(fd_) != 0) {
    const int err = errno;
    abandon();
    return Status::IoError(os_error("sync", temp_, err));
  }
  if (::close(std::exchange(fd_, -1)) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    return Status::IoError(os_error("close", temp_, err));
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    return Status::IoError(os_error("rename a temporary file onto", target_, err));
  }
  // The rename is durable only once the folder's entry is on disk.
  const std::filesystem::path dir = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::IoError(os_error("open folder", dir, errno));
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0 && err != EINVAL) return Status::IoError(os_error("sync folder", dir, err));  // EINVAL: fs without dir fsync
  return Status::Ok();
}

Status write_file_atomically(const std::filesystem::path& target, std::string_view bytes) {
  StatusOr<AtomicFileWriter> w = AtomicFileWriter::create(target);
  if (!w.ok()) return w.status();
  if (Status s = w.value().write(bytes); !s.ok()) return s;
  return w.value().commit();
}

}  // namespace loft
