// Bad safetensors files and checkpoint indexes: each is refused with one line that names the file, the tensor (where
// there is one) and the problem.
#include <gtest/gtest.h>

#include "formats_test_support.h"
#include "loft/framework/safetensors.h"

namespace loft {
namespace {

using formats_test::safetensors_bytes;
using formats_test::ScratchDir;
using formats_test::write_bytes;

// Opens `bytes` written to `bad.safetensors` and checks the error names the file, `tensor` (unless empty) and `what`.
void expect_rejected(const std::string& bytes, const std::string& tensor, const std::string& what) {
  ScratchDir dir;
  const auto path = dir / "bad.safetensors";
  write_bytes(path, bytes);
  auto file = SafetensorsFile::open(path);
  ASSERT_FALSE(file.ok()) << "accepted; expected: " << what;
  const std::string& m = file.status().message();
  EXPECT_EQ(m.rfind(path.string() + ": ", 0), 0u) << m;
  if (!tensor.empty()) {
    EXPECT_NE(m.find("tensor '" + tensor + "'"), std::string::npos) << m;
  }
  EXPECT_NE(m.find(what), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
  // Through a checkpoint too: the same message.
  auto ckpt = CheckpointReader::open(path);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().message(), m);
}

std::string f32_entry(const std::string& name, uint64_t begin, uint64_t end, const std::string& shape = "[2]") {
  return "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

TEST(SafetensorsFault, ShorterThanEightBytes) { expect_rejected("abc", "", "shorter than the 8-byte header length"); }

TEST(SafetensorsFault, HeaderLengthPastEndOfFile) {
  expect_rejected(safetensors_bytes("{}", "", 4096), "", "runs past the end");
}

TEST(SafetensorsFault, HeaderLengthOverLimit) {
  expect_rejected(safetensors_bytes("{}", "", 200'000'000), "", "exceeds the 100 MB limit");
  expect_rejected(safetensors_bytes("{}", "", ~uint64_t{1}), "", "exceeds the 100 MB limit");
}

TEST(SafetensorsFault, HeaderNotUtf8) { expect_rejected(safetensors_bytes("{\"a\xff\":1}", ""), "", "not valid UTF-8"); }

TEST(SafetensorsFault, HeaderNotJson) {
  expect_rejected(safetensors_bytes("{\"a\":", ""), "", "not valid JSON");
  expect_rejected(safetensors_bytes(std::string("{}\0\0\0\0\0\0", 8), ""), "", "not valid JSON");
  expect_rejected(safetensors_bytes("{} // c", ""), "", "not valid JSON");
  expect_rejected(safetensors_bytes(std::string("{}\0x", 4), ""), "", "NUL byte");
}

TEST(SafetensorsFault, HeaderNotObject) {
  expect_rejected(safetensors_bytes("[1,2]   ", ""), "", "not a JSON object");
  expect_rejected(safetensors_bytes("\"x\"", ""), "", "not a JSON object");
}

TEST(SafetensorsFault, DeeplyNestedHeader) {
  expect_rejected(safetensors_bytes(std::string(100, '[') + std::string(100, ']'), ""), "", "nests deeper");
}

TEST(SafetensorsFault, EntryNotObject) { expect_rejected(safetensors_bytes("{\"w\":[1]}", ""), "w", "must be an object"); }

TEST(SafetensorsFault, MissingFields) {
  expect_rejected(safetensors_bytes(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, 0)), "w",
                  "missing \"dtype\"");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", std::string(8, 0)), "w",
                  "missing \"shape\"");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", std::string(8, 0)), "w",
                  "missing \"data_offsets\"");
}

TEST(SafetensorsFault, FieldsOfWrongType) {
  const std::string data(8, 0);
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", data), "w",
                  "\"dtype\" must be a string");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", data), "w",
                  "\"shape\" must be an array");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", data), "w",
                  "\"data_offsets\" must be [begin, end]");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}})", data), "w",
                  "\"data_offsets\" must be [begin, end]");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}})", data), "w",
                  "\"data_offsets\" must be [begin, end]");
}

TEST(SafetensorsFault, UnknownAndUnsupportedDtypes) {
  const std::string data(8, 0);
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", data), "w",
                  "unknown dtype 'F33'");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F4","shape":[16],"data_offsets":[0,8]}})", data), "w",
                  "sub-byte");
}

TEST(SafetensorsFault, BadShapes) {
  const std::string data(8, 0);
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "w",
                  "non-negative integers, found a negative number");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", data), "w",
                  "non-negative integers, found a non-integer number");
  expect_rejected(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})",
                                    ""),
                  "w", "overflows the element count");
  expect_rejected(
      safetensors_bytes(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", ""), "w",
      "overflows the byte count");
}

TEST(SafetensorsFault, SizeDoesNotMatchShape) {
  expect_rejected(safetensors_bytes("{" + f32_entry("w", 0, 12) + "}", std::string(12, 0)), "w",
                  "hold 12 bytes but shape [2] of F32 needs 8");
}

TEST(SafetensorsFault, OffsetsOutsideTheDataArea) {
  expect_rejected(safetensors_bytes("{" + f32_entry("w", 8, 16) + "}", std::string(8, 0)), "w",
                  "outside the data area of 8 bytes");
}

TEST(SafetensorsFault, EndBeforeBegin) {
  expect_rejected(safetensors_bytes("{" + f32_entry("w", 8, 0) + "}", std::string(8, 0)), "w", "end before they begin");
}

TEST(SafetensorsFault, OverlappingTensors) {
  expect_rejected(safetensors_bytes("{" + f32_entry("a", 0, 8) + "," + f32_entry("b", 4, 12) + "}", std::string(12, 0)),
                  "b", "overlap tensor 'a'");
}

TEST(SafetensorsFault, GapBetweenTensors) {
  expect_rejected(safetensors_bytes("{" + f32_entry("a", 0, 8) + "," + f32_entry("b", 12, 20) + "}", std::string(20, 0)),
                  "b", "without gaps");
  expect_rejected(safetensors_bytes("{" + f32_entry("a", 4, 12) + "}", std::string(12, 0)), "a", "without gaps");
}

TEST(SafetensorsFault, TrailingBytesAfterTheLastTensor) {
  expect_rejected(safetensors_bytes("{" + f32_entry("a", 0, 8) + "}", std::string(9, 0)), "",
                  "1 bytes after the last tensor");
  expect_rejected(safetensors_bytes("{}", "x"), "", "bytes after the last tensor");
}

TEST(SafetensorsFault, DuplicateNamesAndKeys) {
  expect_rejected(safetensors_bytes("{" + f32_entry("a", 0, 8) + "," + f32_entry("a", 0, 8) + "}", std::string(8, 0)),
                  "a", "duplicate name");
  expect_rejected(safetensors_bytes(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                    std::string(8, 0)),
                  "a", "duplicate key 'dtype'");
}

TEST(SafetensorsFault, MetadataNotStringToString) {
  expect_rejected(safetensors_bytes(R"({"__metadata__":["pt"]})", ""), "", "__metadata__ must be an object");
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"format":1}})", ""), "",
                  "__metadata__ must map strings to strings, but 'format' holds a number");
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"a":{"b":"c"}}})", ""), "", "'a' holds an object");
}

TEST(SafetensorsFault, NotAFile) {
  ScratchDir dir;
  auto missing = SafetensorsFile::open(dir / "absent.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("absent.safetensors: cannot open"), std::string::npos);
  auto folder = SafetensorsFile::open(dir.path());
  ASSERT_FALSE(folder.ok());
  EXPECT_NE(folder.status().message().find("not a regular file"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------------------
// Sharded checkpoints

class CheckpointFault : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(write_safetensors(dir_ / "s1.safetensors", {{"a", formats_test::pattern_tensor(at::kFloat, {2}, 0)}}).ok());
  }
  void expect_rejected(const std::string& index, const std::string& tensor, const std::string& what) {
    write_bytes(dir_ / "model.safetensors.index.json", index);
    auto ckpt = CheckpointReader::open(dir_.path());
    ASSERT_FALSE(ckpt.ok()) << "accepted; expected: " << what;
    const std::string& m = ckpt.status().message();
    EXPECT_NE(m.find("model.safetensors.index.json"), std::string::npos) << m;
    if (!tensor.empty()) {
    EXPECT_NE(m.find("tensor '" + tensor + "'"), std::string::npos) << m;
  }
    EXPECT_NE(m.find(what), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  ScratchDir dir_;
};

TEST_F(CheckpointFault, MissingShardFile) {
  expect_rejected(R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})", "b", "s2.safetensors is missing");
}

TEST_F(CheckpointFault, TensorAbsentFromItsShard) {
  expect_rejected(R"({"weight_map":{"a":"s1.safetensors","zz":"s1.safetensors"}})", "zz",
                  "listed in weight_map but absent from shard");
}

TEST_F(CheckpointFault, MalformedIndex) {
  expect_rejected(R"({"weight_map":{"a":"s1.safetensors"})", "", "not valid JSON");
  expect_rejected(R"([])", "", "not a JSON object");
  expect_rejected(R"({"metadata":{}})", "", "needs a \"weight_map\" object");
  expect_rejected(R"({"weight_map":{"a":1}})", "a", "must be a shard file name");
  expect_rejected(R"({"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}})", "a", "listed twice in weight_map");
  expect_rejected(R"({"weight_map":{"a":"s1.safetensors"},"weight_map":{}})", "", "duplicate key 'weight_map'");
  expect_rejected(R"({"weight_map":{"a":"../s1.safetensors"}})", "a", "inside the checkpoint folder");
  expect_rejected(R"({"weight_map":{"a":"/etc/passwd"}})", "a", "inside the checkpoint folder");
}

TEST_F(CheckpointFault, CorruptShardNamesTheShard) {
  write_bytes(dir_ / "s2.safetensors", "garbage");
  write_bytes(dir_ / "model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  auto ckpt = CheckpointReader::open(dir_.path());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_NE(ckpt.status().message().find("s2.safetensors: file is 7 bytes"), std::string::npos) << ckpt.status().message();
}

TEST(CheckpointFaultFolder, FolderWithoutCheckpoint) {
  ScratchDir dir;
  auto ckpt = CheckpointReader::open(dir.path());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ckpt.status().message().find("no model.safetensors or model.safetensors.index.json"), std::string::npos);
  auto missing = CheckpointReader::open(dir / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope: no such file or folder"), std::string::npos);
}

}  // namespace
}  // namespace loft
