// Helpers shared by the formats tests: scratch folders in the build tree, raw file bytes, tensor bytes.
#pragma once

#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <gtest/gtest.h>

#ifndef LOFT_FORMATS_WORK_DIR
#define LOFT_FORMATS_WORK_DIR "/tmp"
#endif

namespace loft::formats_test {

// A fresh folder under the build tree, deleted (through nftw, not std::filesystem::remove_all) when the test ends.
class ScratchDir {
 public:
  ScratchDir() {
    ::mkdir(LOFT_FORMATS_WORK_DIR, 0755);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(LOFT_FORMATS_WORK_DIR) + "/" + (info ? info->name() : "suite") + ".XXXXXX";
    std::vector<char> buf(name.begin(), name.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << name << ": " << std::strerror(errno);
    path_ = buf.data();
  }
  ~ScratchDir() {
    ::nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return std::remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Entries in a folder other than . and .. (POSIX; std::filesystem's out-of-line functions are avoided near libtorch).
inline int count_entries(const std::filesystem::path& folder) {
  int n = 0;
  if (DIR* d = ::opendir(folder.c_str())) {
    while (const dirent* e = ::readdir(d)) n += std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0;
    ::closedir(d);
  }
  return n;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// u64 little-endian length + header + data, the safetensors layout, with an optional forged length.
inline std::string safetensors_bytes(const std::string& header, const std::string& data,
                                     std::optional<uint64_t> length = std::nullopt) {
  const uint64_t n = length.value_or(header.size());
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// The tensor's bytes in C order (what safetensors stores).
inline std::string tensor_bytes(const at::Tensor& t) {
  const at::Tensor c = t.cpu().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

inline std::string hex_to_bytes(const std::string& hex) {
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

// Deterministic values that Python regenerates exactly: v_i = ((i * 37 + salt) % 251) - 125, as double v/8 for
// floating types, v > 0 for BOOL, v cast (wrapping) for integers. Casts run in libtorch on both sides.
inline at::Tensor pattern_tensor(c10::ScalarType dtype, std::vector<int64_t> shape, int64_t salt) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::vector<int64_t> ints(static_cast<size_t>(numel));
  std::vector<double> reals(static_cast<size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    ints[i] = ((i * 37 + salt) % 251) - 125;
    reals[i] = static_cast<double>(ints[i]) / 8.0;
  }
  const at::Tensor as_int = at::from_blob(ints.data(), {numel}, at::TensorOptions().dtype(at::kLong)).clone();
  const at::Tensor as_real = at::from_blob(reals.data(), {numel}, at::TensorOptions().dtype(at::kDouble)).clone();
  at::Tensor out;
  if (dtype == at::kBool) {
    out = as_int.gt(0);
  } else if (c10::isFloatingType(dtype) || c10::isComplexType(dtype)) {
    out = as_real.to(dtype);
  } else {
    out = as_int.to(dtype);
  }
  return out.reshape(shape);
}

}  // namespace loft::formats_test
