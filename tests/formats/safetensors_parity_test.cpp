// Parity with the Python safetensors library (0.8) and transformers' save_pretrained: loft reads what Python wrote
// (values compared byte for byte with the torch tensors), re-writes it byte-identically, and Python reads what loft
// wrote. Fixtures come from make_fixtures.py (ctest fixture formats.fixtures); check_loft_files.py does the Python side.
#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats_test_support.h"
#include "loft/framework/safetensors.h"

#ifndef LOFT_FORMATS_FIXTURE_DIR
#error "LOFT_FORMATS_FIXTURE_DIR must name the folder make_fixtures.py writes"
#endif

namespace loft {
namespace {

using formats_test::hex_to_bytes;
using formats_test::pattern_tensor;
using formats_test::read_bytes;
using formats_test::ScratchDir;
using formats_test::tensor_bytes;
using json = nlohmann::json;

const std::filesystem::path kFixtures = LOFT_FORMATS_FIXTURE_DIR;

class SafetensorsParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string text = read_bytes(kFixtures / "reference.json");
    if (text.empty()) GTEST_SKIP() << "no " << (kFixtures / "reference.json") << ": run ctest (formats.fixtures) first";
    reference_ = json::parse(text);
  }
  json reference_;
};

std::shared_ptr<SafetensorsFile> open_ok(const std::filesystem::path& p) {
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? f.value() : nullptr;
}

void expect_matches_reference(const at::Tensor& got, const TensorInfo& info, const json& want) {
  SCOPED_TRACE(want["name"].get<std::string>());
  EXPECT_EQ(safetensors_dtype_name(got.scalar_type()), want["dtype"].get<std::string>());
  EXPECT_EQ(info.shape, want["shape"].get<std::vector<int64_t>>());
  EXPECT_EQ(got.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
  EXPECT_TRUE(tensor_bytes(got) == hex_to_bytes(want["hex"].get<std::string>())) << "values differ";
}

TEST_F(SafetensorsParity, ReadsPythonFiles) {
  ASSERT_GE(reference_["single"].size(), 10u);
  for (const auto& [name, c] : reference_["single"].items()) {
    SCOPED_TRACE(name);
    auto file = open_ok(kFixtures / "single" / (name + ".safetensors"));
    ASSERT_TRUE(file);
    EXPECT_EQ(file->metadata(), (c["metadata"].get<std::map<std::string, std::string>>()));
    ASSERT_EQ(file->tensors().size(), c["tensors"].size());
    for (const json& t : c["tensors"]) {
      const std::string tname = t["name"].get<std::string>();
      ASSERT_NE(file->find(tname), nullptr) << tname;
      expect_matches_reference(file->tensor(tname), *file->find(tname), t);
    }
  }
}

TEST_F(SafetensorsParity, RewritesPythonFilesByteIdentically) {
  ScratchDir dir;
  int identical = 0;
  for (const auto& [name, c] : reference_["single"].items()) {
    SCOPED_TRACE(name);
    const auto python_path = kFixtures / "single" / (name + ".safetensors");
    auto file = open_ok(python_path);
    ASSERT_TRUE(file);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const json& t : c["tensors"]) tensors.emplace_back(t["name"].get<std::string>(), file->tensor(t["name"]));
    const auto loft_path = dir / (name + ".safetensors");
    ASSERT_TRUE(write_safetensors(loft_path, tensors, file->metadata()).ok());
    if (c["byte_identical"].get<bool>()) {
      EXPECT_TRUE(read_bytes(loft_path) == read_bytes(python_path)) << "bytes differ from save_file's";
      ++identical;
    } else {  // several metadata keys: Rust writes them in hash order; compare the content instead
      auto again = open_ok(loft_path);
      ASSERT_TRUE(again);
      EXPECT_EQ(again->metadata(), file->metadata());
      for (const auto& [tname, t] : tensors) EXPECT_EQ(tensor_bytes(again->tensor(tname)), tensor_bytes(t));
    }
  }
  EXPECT_GE(identical, 10);
}

std::vector<std::pair<std::string, at::Tensor>> qwen_state_dict(const CheckpointReader& ckpt, const json& reference) {
  std::vector<std::pair<std::string, at::Tensor>> out;  // in the model's state_dict order, as save_pretrained sees it
  for (const json& t : reference["qwen"]["tensors"]) {
    out.emplace_back(t["name"].get<std::string>(), ckpt.tensor(t["name"].get<std::string>()));
  }
  return out;
}

TEST_F(SafetensorsParity, ReadsTransformersShardedCheckpoint) {
  auto ckpt = CheckpointReader::open(kFixtures / "qwen");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  std::vector<std::string> names;
  for (const json& t : reference_["qwen"]["tensors"]) names.push_back(t["name"].get<std::string>());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(ckpt.value().names(), names);
  EXPECT_GT(ckpt.value().files().size(), 1u) << "the fixture should be sharded";
  for (const json& t : reference_["qwen"]["tensors"]) {
    const std::string name = t["name"].get<std::string>();
    expect_matches_reference(ckpt.value().tensor(name), ckpt.value().info(name), t);
  }
}

TEST_F(SafetensorsParity, WritesShardsAndIndexLikeSavePretrained) {
  ScratchDir dir;
  auto ckpt = CheckpointReader::open(kFixtures / "qwen");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  const auto out = dir / "qwen";
  ASSERT_TRUE(write_sharded_checkpoint(out, qwen_state_dict(ckpt.value(), reference_),
                                       reference_["qwen"]["max_shard_bytes"].get<uint64_t>())
                  .ok());
  int compared = 0;
  for (const json& f : reference_["qwen"]["files"]) {
    const std::string name = f.get<std::string>();
    if (name.find(".safetensors") == std::string::npos) continue;  // config.json etc. are not ours
    SCOPED_TRACE(name);
    const std::string mine = read_bytes(out / name);
    ASSERT_FALSE(mine.empty()) << "loft did not write " << name;
    EXPECT_TRUE(mine == read_bytes(kFixtures / "qwen" / name)) << "bytes differ from transformers'";
    ++compared;
  }
  EXPECT_EQ(compared, formats_test::count_entries(out));
  EXPECT_GT(compared, 2);
}

// The cases loft writes for Python to read; check_loft_files.py regenerates the same values with pattern().
struct WriteCase {
  std::string file;
  std::map<std::string, std::string> metadata;
  std::vector<std::tuple<std::string, c10::ScalarType, std::vector<int64_t>>> tensors;
};

TEST_F(SafetensorsParity, PythonReadsLoftFiles) {
  ScratchDir dir;
  const std::vector<WriteCase> cases = {
      {"fp32", {}, {{"weight", at::kFloat, {4, 5}}, {"bias", at::kFloat, {5}}}},
      {"bf16", {{"format", "pt"}}, {{"w", at::kBFloat16, {3, 7}}}},
      {"fp16", {}, {{"w", at::kHalf, {6, 2}}, {"x", at::kHalf, {1}}}},
      {"int64", {}, {{"ids", at::kLong, {17}}}},
      {"multi_dim", {}, {{"t4", at::kFloat, {2, 3, 4, 5}}, {"t3", at::kFloat, {1, 1, 9}}}},
      {"scalar", {}, {{"s", at::kFloat, {}}, {"i", at::kLong, {}}}},
      {"empty", {}, {{"e0", at::kFloat, {0}}, {"e30", at::kBFloat16, {3, 0}}, {"full", at::kFloat, {2}}}},
      {"mixed", {{"note", "quote\" é"}},
       {{"a", at::kBool, {3}}, {"b", at::kByte, {5}}, {"c", at::kChar, {5}}, {"d", at::kShort, {3}},
        {"e", at::kInt, {3}}, {"f", at::kDouble, {3}}, {"g", at::kHalf, {3}}, {"h", at::kBFloat16, {3}},
        {"i", at::kUInt16, {3}}, {"j", at::kUInt32, {3}}, {"k", at::kUInt64, {3}}, {"l", at::kFloat8_e4m3fn, {5}},
        {"m", at::kFloat8_e5m2, {5}}, {"n", at::kComplexFloat, {2}}, {"o", at::kFloat, {2, 2}}, {"p", at::kLong, {2}},
        {"names.with \"quotes\" and ☃", at::kFloat, {1}}}},
      {"metadata_multi", {{"format", "pt"}, {"b", "2"}, {"a", "1"}}, {{"w", at::kFloat, {3}}}},
  };
  json spec = json::array();
  int64_t salt = 0;
  for (const WriteCase& c : cases) {
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    json entry = {{"file", c.file + ".safetensors"}, {"metadata", c.metadata}, {"tensors", json::array()}};
    for (const auto& [name, dtype, shape] : c.tensors) {
      tensors.emplace_back(name, pattern_tensor(dtype, shape, ++salt));
      entry["tensors"].push_back({{"name", name}, {"dtype", safetensors_dtype_name(dtype)}, {"shape", shape}, {"salt", salt}});
    }
    ASSERT_TRUE(write_safetensors(dir / (c.file + ".safetensors"), tensors, c.metadata).ok()) << c.file;
    spec.push_back(entry);
  }
  formats_test::write_bytes(dir / "spec.json", spec.dump());
  // A sharded Qwen2 written by loft, which transformers must load back.
  auto ckpt = CheckpointReader::open(kFixtures / "qwen");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  ASSERT_TRUE(write_sharded_checkpoint(dir / "qwen", qwen_state_dict(ckpt.value(), reference_), 30'000).ok());

  const std::string log = (dir / "python.log").string();
  const std::string cmd = std::string(LOFT_FORMATS_PYTHON) + " " + LOFT_FORMATS_SCRIPT_DIR + "/check_loft_files.py --dir " +
                          dir.path().string() + " --fixtures " + kFixtures.string() + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << read_bytes(log);
  std::printf("%s", read_bytes(log).c_str());
}

}  // namespace
}  // namespace loft
