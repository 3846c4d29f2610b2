// Reading a whole small text file (results.jsonl, summary.json, metrics.jsonl) for the report and the tables.
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "loft/framework/files.h"
#include "loft/status.h"

namespace loft::report_detail {

// The file's bytes; kNotFound when it is not a regular file, kIoError when it cannot be read.
inline StatusOr<std::string> read_text_file(const std::filesystem::path& file) {
  if (!fs::is_regular_file(file)) return Status::NotFound("no such file: " + file.string());
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::IoError("cannot read " + file.string() + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) return Status::IoError("cannot read " + file.string());
  return text;
}

}  // namespace loft::report_detail
