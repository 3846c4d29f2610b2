// Bounded random mutation of valid safetensors files (fixed seed): open() must never crash and must return either a
// clean one-line error naming the file or a parse whose tensors tile the data area and can all be read.
#include <random>

#include <ATen/ops/empty.h>
#include <gtest/gtest.h>

#include "formats_test_support.h"
#include "loft/framework/safetensors.h"

namespace loft {
namespace {

using formats_test::pattern_tensor;
using formats_test::read_bytes;
using formats_test::ScratchDir;
using formats_test::write_bytes;

constexpr int kMutationsPerSeedFile = 1500;  // 4,500 mutants, about a second

std::vector<std::string> seed_files(const ScratchDir& dir) {
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> sets = {
      {{"w", pattern_tensor(at::kFloat, {3, 4}, 1)}, {"b", pattern_tensor(at::kBFloat16, {4}, 2)}},
      {{"ids", pattern_tensor(at::kLong, {5}, 3)}, {"s", pattern_tensor(at::kHalf, {}, 4)},
       {"e", at::empty({0, 3}, at::kFloat)}, {"m", pattern_tensor(at::kBool, {7}, 5)}},
      {{"model.layers.0.mlp.up_proj.weight", pattern_tensor(at::kFloat8_e4m3fn, {4, 4}, 6)},
       {"x", pattern_tensor(at::kDouble, {2, 1, 2}, 7)}},
  };
  std::vector<std::map<std::string, std::string>> metadata = {{{"format", "pt"}}, {}, {{"a", "b"}, {"format", "pt"}}};
  std::vector<std::string> out;
  for (size_t i = 0; i < sets.size(); ++i) {
    const auto p = dir / ("seed" + std::to_string(i) + ".safetensors");
    EXPECT_TRUE(write_safetensors(p, sets[i], metadata[i]).ok());
    out.push_back(read_bytes(p));
  }
  return out;
}

// One random edit: byte flips, digit and token substitutions inside the header, length-field edits, truncation,
// insertion, deletion, duplication of a range.
std::string mutate(std::string bytes, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  const size_t header_end = static_cast<size_t>(std::min<uint64_t>(8 + header_len, bytes.size()));
  static const char* kTokens[] = {"\"", "{", "}", "[", "]", ",", ":", "-1", "0", "18446744073709551616", "1e3", "null",
                                  "\"F32\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "true",
                                  "\\u0000", "\xff", "\xc3", " ", "2.5", "[]", "{}"};
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 9) {
      case 0:  // flip bits anywhere
        if (!bytes.empty()) bytes[pick(bytes.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // change a digit in the header
        for (int tries = 0; tries < 32; ++tries) {
          const size_t i = 8 + pick(header_end > 8 ? header_end - 8 : 1);
          if (i < bytes.size() && bytes[i] >= '0' && bytes[i] <= '9') {
            bytes[i] = static_cast<char>('0' + rng() % 10);
            break;
          }
        }
        break;
      case 2: {  // replace a header range with a JSON-ish token
        const size_t i = 8 + pick(header_end > 8 ? header_end - 8 : 1);
        if (i <= bytes.size()) bytes.replace(i, std::min<size_t>(pick(6), bytes.size() - i), kTokens[pick(std::size(kTokens))]);
        break;
      }
      case 3: {  // edit the length field
        uint64_t n = header_len;
        const int how = static_cast<int>(rng() % 4);
        n = how == 0 ? n + 1 + pick(16) : how == 1 ? (n > 0 ? n - 1 - pick(std::min<uint64_t>(n, 16)) : 0)
                                   : how == 2 ? rng() : (n ^ (uint64_t{1} << (rng() % 64)));
        if (bytes.size() >= 8) std::memcpy(bytes.data(), &n, 8);
        break;
      }
      case 4:  // truncate
        bytes.resize(pick(bytes.size() + 1));
        break;
      case 5:  // append junk
        bytes.append(pick(24), static_cast<char>(rng()));
        break;
      case 6: {  // delete a range
        const size_t i = pick(bytes.size());
        bytes.erase(i, pick(12));
        break;
      }
      case 7: {  // duplicate a header range (duplicate keys, repeated entries)
        const size_t i = 8 + pick(header_end > 8 ? header_end - 8 : 1);
        if (i < bytes.size()) {
          const std::string piece = bytes.substr(i, 1 + pick(40));
          bytes.insert(std::min(bytes.size(), i + pick(40)), piece);
        }
        break;
      }
      default: {  // insert a token in the header
        const size_t i = std::min(bytes.size(), 8 + pick(header_end > 8 ? header_end - 8 : 1));
        bytes.insert(i, kTokens[pick(std::size(kTokens))]);
        break;
      }
    }
  }
  return bytes;
}

TEST(SafetensorsFuzz, MutatedHeadersNeverCrash) {
  ScratchDir dir;
  const std::vector<std::string> seeds = seed_files(dir);
  std::mt19937_64 rng(0x5AFE7E5u);
  const auto path = dir / "mutant.safetensors";
  int accepted = 0, rejected = 0;
  for (const std::string& seed : seeds) {
    for (int i = 0; i < kMutationsPerSeedFile; ++i) {
      const std::string bytes = mutate(seed, rng);
      write_bytes(path, bytes);
      auto file = SafetensorsFile::open(path);
      if (!file.ok()) {
        ++rejected;
        const std::string& m = file.status().message();
        ASSERT_EQ(m.rfind(path.string() + ": ", 0), 0u) << m;
        ASSERT_EQ(m.find('\n'), std::string::npos) << m;
        continue;
      }
      ++accepted;
      const SafetensorsFile& f = *file.value();
      uint64_t covered = f.data_begin();
      for (const TensorInfo& t : f.tensors()) {
        ASSERT_EQ(t.begin, covered) << t.name;
        covered = t.end;
        const at::Tensor x = f.tensor(t.name);
        ASSERT_EQ(static_cast<uint64_t>(x.nbytes()), t.size_bytes()) << t.name;
        ASSERT_EQ(x.sizes().vec(), t.shape);
        // Touch every byte and compare with the file.
        const at::Tensor c = x.contiguous();
        if (t.size_bytes() > 0) {
          ASSERT_EQ(std::memcmp(c.data_ptr(), bytes.data() + t.begin, t.size_bytes()), 0) << t.name;
        }
      }
      ASSERT_EQ(covered, bytes.size());
    }
  }
  std::printf("fuzz: %d mutants accepted, %d rejected\n", accepted, rejected);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace loft
