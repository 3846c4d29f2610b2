// Reference data written by a Python script (transformers, PEFT, bitsandbytes) for a C++ parity test: the script runs
// once per version of its text into <build>/tests/<cache_name>/<hash>/, published by rename, with an flock so that
// concurrent ctest processes wait for one run. No std::filesystem::remove_all: libtorch exports a crashing copy.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace loft::testing {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `LOFT_PYTHON script <folder>` unless its output (a reference.json in the folder) exists for this script text;
// returns the folder, or an empty path after an ADD_FAILURE with the script's log and `hint`. A non-empty `input` is
// written to <folder>.input (removed after a successful run) and passed as the script's second argument (`script <folder> <input>`); the cache is then
// per script text and input.
inline std::filesystem::path python_reference_dir(const std::filesystem::path& script, const std::string& cache_name,
                                                  const std::string& hint = "", const std::string& input = "") {
  namespace fs = std::filesystem;
  const std::string text = read_text(script);
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the script's text, then of the input
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  for (unsigned char c : input) h = (h ^ c) * 1099511628211ull;
  const fs::path root = fs::path(LOFT_BINARY_DIR) / "tests" / cache_name;
  const fs::path dir = root / fmt::format("{:016x}", h);
  fs::create_directories(root);
  const std::string lock_path = (root / "lock").string();
  const int lock = ::open(lock_path.c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
    ADD_FAILURE() << "cannot lock " << lock_path;
    return {};
  }
  if (!fs::exists(dir / "reference.json")) {
    const fs::path tmp = root / fmt::format("tmp-{}", ::getpid());
    const std::string log = tmp.string() + ".log";
    std::string input_arg;
    if (!input.empty()) {
      const std::string input_path = dir.string() + ".input";
      std::ofstream(input_path, std::ios::binary) << input;
      input_arg = fmt::format(" \"{}\"", input_path);
    }
    const std::string cmd = fmt::format("\"{}\" \"{}\" \"{}\"{} > \"{}\" 2>&1", LOFT_PYTHON, script.string(),
                                        tmp.string(), input_arg, log);
    const int rc = std::system(cmd.c_str());
    if (rc != 0 || ::rename(tmp.c_str(), dir.c_str()) != 0) {
      ADD_FAILURE() << "reference script failed (" << rc << "): " << cmd << "\n" << read_text(log) << hint;
      ::close(lock);
      return {};
    }
    ::unlink(log.c_str());
    if (!input.empty()) ::unlink((dir.string() + ".input").c_str());
  }
  ::close(lock);  // releases the flock
  return dir;
}

}  // namespace loft::testing
