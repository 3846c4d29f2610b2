// safetensors writer/reader round trips, header layout, zero-copy lifetime, sharded checkpoints and atomic writes.
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include <ATen/Context.h>
#include <ATen/ops/empty.h>
#include <gtest/gtest.h>

#include "formats_test_support.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/safetensors.h"

namespace loft {
namespace {

using formats_test::pattern_tensor;
using formats_test::read_bytes;
using formats_test::safetensors_bytes;
using formats_test::ScratchDir;
using formats_test::tensor_bytes;
using formats_test::write_bytes;

std::shared_ptr<SafetensorsFile> open_ok(const std::filesystem::path& p) {
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? f.value() : nullptr;
}

std::string header_of(const std::filesystem::path& p) {
  const std::string bytes = read_bytes(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return bytes.substr(8, n);
}

const c10::ScalarType kAllDtypes[] = {
    at::kBool, at::kByte, at::kChar, at::kShort, at::kUInt16, at::kInt, at::kUInt32, at::kLong, at::kUInt64,
    at::kHalf, at::kBFloat16, at::kFloat, at::kDouble, at::kComplexFloat, at::kFloat8_e4m3fn, at::kFloat8_e5m2};

TEST(SafetensorsRoundTrip, AllDtypes) {
  ScratchDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  int salt = 0;
  for (c10::ScalarType t : kAllDtypes) {
    tensors.emplace_back("t_" + safetensors_dtype_name(t), pattern_tensor(t, {3, 5}, ++salt));
  }
  ASSERT_TRUE(write_safetensors(dir / "all.safetensors", tensors).ok());
  auto file = open_ok(dir / "all.safetensors");
  ASSERT_TRUE(file);
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    const at::Tensor got = file->tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type());
    EXPECT_EQ(got.sizes(), expected.sizes());
    EXPECT_EQ(tensor_bytes(got), tensor_bytes(expected));
    EXPECT_EQ(safetensors_dtype_from_name(safetensors_dtype_name(expected.scalar_type())).value(), expected.scalar_type());
  }
}

TEST(SafetensorsRoundTrip, ScalarEmptyShapesAndMetadata) {
  ScratchDir dir;
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"scalar", pattern_tensor(at::kFloat, {}, 1)},
      {"empty", at::empty({0}, at::kFloat)},
      {"empty3d", at::empty({3, 0, 2}, at::kBFloat16)},
      {"cube", pattern_tensor(at::kDouble, {2, 3, 4}, 2)},
      {"one", pattern_tensor(at::kLong, {1}, 3)},
  };
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"quote\"back\\slash", "line\nbreak\ttab\x01"}, {"unicode é☃", "😀"}};
  ASSERT_TRUE(write_safetensors(dir / "x.safetensors", tensors, metadata).ok());
  auto file = open_ok(dir / "x.safetensors");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->metadata(), metadata);
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    const at::Tensor got = file->tensor(name);
    EXPECT_EQ(got.sizes(), expected.sizes());
    EXPECT_EQ(got.dim(), expected.dim());
    EXPECT_EQ(tensor_bytes(got), tensor_bytes(expected));
  }
  EXPECT_EQ(file->find("scalar")->shape.size(), 0u);
  EXPECT_EQ(file->find("empty3d")->size_bytes(), 0u);
}

TEST(SafetensorsLayout, SortedByDtypeAlignmentThenNameAndPaddedTo8) {
  ScratchDir dir;
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"b", pattern_tensor(at::kHalf, {1}, 0)},  {"a", pattern_tensor(at::kHalf, {1}, 0)},
      {"c", pattern_tensor(at::kLong, {1}, 0)},  {"d", pattern_tensor(at::kBool, {2}, 0)},
      {"e", pattern_tensor(at::kFloat, {0}, 0)},
  };
  ASSERT_TRUE(write_safetensors(dir / "l.safetensors", tensors, {{"format", "pt"}}).ok());
  const std::string expected_json =
      R"({"__metadata__":{"format":"pt"},"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"a":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},)"
      R"("b":{"dtype":"F16","shape":[1],"data_offsets":[10,12]},"d":{"dtype":"BOOL","shape":[2],"data_offsets":[12,14]}})";
  const std::string header = header_of(dir / "l.safetensors");
  EXPECT_EQ(header.size() % 8, 0u);
  EXPECT_EQ(header.substr(0, expected_json.size()), expected_json);
  EXPECT_EQ(header.substr(expected_json.size()), std::string(header.size() - expected_json.size(), ' '));
  auto file = open_ok(dir / "l.safetensors");
  ASSERT_TRUE(file);
  std::vector<std::string> order;
  for (const TensorInfo& t : file->tensors()) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"c", "e", "a", "b", "d"}));  // data order
}

TEST(SafetensorsLayout, EmptyMetadataIsOmittedAndEmptyFileIsValid) {
  ScratchDir dir;
  ASSERT_TRUE(write_safetensors(dir / "e.safetensors", {}).ok());
  EXPECT_EQ(read_bytes(dir / "e.safetensors"), safetensors_bytes("{}      ", ""));
  auto file = open_ok(dir / "e.safetensors");
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->tensors().empty());
  EXPECT_TRUE(file->metadata().empty());
}

TEST(SafetensorsFile, TensorsOutliveTheFileObjectAndShareTheMapping) {
  ScratchDir dir;
  const at::Tensor expected = pattern_tensor(at::kFloat, {64, 33}, 5);
  ASSERT_TRUE(write_safetensors(dir / "w.safetensors", {{"w", expected}}).ok());
  at::Tensor a, b;
  {
    auto file = open_ok(dir / "w.safetensors");
    ASSERT_TRUE(file);
    a = file->tensor("w");
    b = file->tensor("w");
    EXPECT_EQ(a.data_ptr(), b.data_ptr());  // zero-copy views of one mapping
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % 4, 0u);
  }
  EXPECT_EQ(tensor_bytes(a), tensor_bytes(expected));  // mapping still alive through the tensor
  b = at::Tensor();
  EXPECT_EQ(tensor_bytes(a), tensor_bytes(expected));
}

TEST(SafetensorsFile, MisalignedTensorIsCopiedToAlignedMemory) {
  ScratchDir dir;
  // Header of 61 bytes (no padding): the F32 data starts at file offset 69, not a multiple of 4.
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const float values[2] = {1.5f, -2.25f};
  const std::string data(reinterpret_cast<const char*>(values), 8);
  write_bytes(dir / "m.safetensors", safetensors_bytes(header, data));
  auto file = open_ok(dir / "m.safetensors");
  ASSERT_TRUE(file);
  ASSERT_NE((8 + header.size()) % 4, 0u);
  const at::Tensor x = file->tensor("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data_ptr()) % 4, 0u);
  EXPECT_EQ(x.data_ptr<float>()[0], 1.5f);
  EXPECT_EQ(x.data_ptr<float>()[1], -2.25f);
}

TEST(SafetensorsFile, AbsentTensorThrowsOutOfRangeNamingFileAndTensor) {
  ScratchDir dir;
  ASSERT_TRUE(write_safetensors(dir / "a.safetensors", {{"w", pattern_tensor(at::kFloat, {2}, 0)}}).ok());
  auto file = open_ok(dir / "a.safetensors");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->find("nope"), nullptr);
  try {
    (void)file->tensor("nope");
    FAIL() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("a.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsFile, ConcurrentReadsAgree) {
  ScratchDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (int i = 0; i < 16; ++i) tensors.emplace_back("t" + std::to_string(i), pattern_tensor(at::kFloat, {128, 7}, i));
  ASSERT_TRUE(write_safetensors(dir / "c.safetensors", tensors).ok());
  auto file = open_ok(dir / "c.safetensors");
  ASSERT_TRUE(file);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 8; ++k) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep) {
        for (const auto& [name, expected] : tensors) {
          if (tensor_bytes(file->tensor(name)) != tensor_bytes(expected)) ++mismatches;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(SafetensorsWriter, NonContiguousInputIsWrittenInCOrder) {
  ScratchDir dir;
  const at::Tensor base = pattern_tensor(at::kFloat, {4, 6}, 9);
  const at::Tensor transposed = base.t();
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_TRUE(write_safetensors(dir / "t.safetensors", {{"t", transposed}}).ok());
  auto file = open_ok(dir / "t.safetensors");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->tensor("t").sizes(), transposed.sizes());
  EXPECT_EQ(tensor_bytes(file->tensor("t")), tensor_bytes(transposed.contiguous()));
}

TEST(SafetensorsWriter, CudaTensorsAreCopiedToTheHost) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
  ScratchDir dir;
  const at::Tensor host = pattern_tensor(at::kBFloat16, {33, 17}, 4);
  const at::Tensor device = host.to(at::kCUDA).t();  // non-contiguous on the GPU
  ASSERT_TRUE(write_safetensors(dir / "g.safetensors", {{"g", device}}).ok());
  auto file = open_ok(dir / "g.safetensors");
  ASSERT_TRUE(file);
  EXPECT_EQ(tensor_bytes(file->tensor("g")), tensor_bytes(host.t().contiguous()));
}

TEST(SafetensorsWriter, RejectsBadInputWithoutTouchingTheTarget) {
  ScratchDir dir;
  const auto p = dir / "r.safetensors";
  const at::Tensor ok = pattern_tensor(at::kFloat, {2}, 0);
  const auto expect_error = [&](const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& what) {
    const Status s = write_safetensors(p, tensors);
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("r.safetensors"), std::string::npos) << s.message();
  };
  expect_error({{"a", ok}, {"a", ok}}, "duplicate name");
  expect_error({{"__metadata__", ok}}, "reserved");
  expect_error({{"u", at::Tensor()}}, "undefined");
  expect_error({{"c128", at::empty({2}, at::kComplexDouble)}}, "no safetensors equivalent");
  expect_error({{std::string("bad\xff"), ok}}, "UTF-8");
  struct stat st {};
  EXPECT_NE(::stat(p.c_str(), &st), 0) << "a failed write must not create the file";
}

TEST(SafetensorsWriter, ReplacingAFileKeepsEarlierViewsIntact) {
  ScratchDir dir;
  const auto p = dir / "v.safetensors";
  const at::Tensor first = pattern_tensor(at::kFloat, {1000}, 1);
  ASSERT_TRUE(write_safetensors(p, {{"w", first}}).ok());
  auto file = open_ok(p);
  ASSERT_TRUE(file);
  const at::Tensor view = file->tensor("w");
  // Rename-over keeps the old inode (and so the mapping) alive; truncating in place would have zeroed it.
  ASSERT_TRUE(write_safetensors(p, {{"w", pattern_tensor(at::kFloat, {1000}, 2)}}).ok());
  EXPECT_EQ(tensor_bytes(view), tensor_bytes(first));
  auto reopened = open_ok(p);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(tensor_bytes(reopened->tensor("w")), tensor_bytes(pattern_tensor(at::kFloat, {1000}, 2)));
}

TEST(SafetensorsDtype, NamesAndErrors) {
  EXPECT_EQ(safetensors_dtype_name(at::kBFloat16), "BF16");
  EXPECT_EQ(safetensors_dtype_name(at::kComplexDouble), "");
  EXPECT_EQ(safetensors_dtype_from_name("F8_E4M3").value(), at::kFloat8_e4m3fn);
  auto f4 = safetensors_dtype_from_name("F4");
  ASSERT_FALSE(f4.ok());
  EXPECT_NE(f4.status().message().find("sub-byte"), std::string::npos);
  auto unknown = safetensors_dtype_from_name("F128");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown dtype 'F128'"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------------------

std::vector<std::pair<std::string, at::Tensor>> sized_tensors(const std::vector<int64_t>& floats) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < floats.size(); ++i) {
    out.emplace_back("layer" + std::to_string(i) + ".weight", pattern_tensor(at::kFloat, {floats[i]}, int64_t(i)));
  }
  return out;
}

TEST(CheckpointReader, OpensFolderSingleFileAndIndexPath) {
  ScratchDir dir;
  const auto tensors = sized_tensors({3, 4});
  ASSERT_TRUE(write_sharded_checkpoint(dir.path(), tensors, 1 << 20).ok());
  for (const auto& p : {dir.path(), dir / "model.safetensors"}) {
    auto ckpt = CheckpointReader::open(p);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
    EXPECT_EQ(ckpt.value().names(), (std::vector<std::string>{"layer0.weight", "layer1.weight"}));
    EXPECT_TRUE(ckpt.value().contains("layer1.weight"));
    EXPECT_EQ(tensor_bytes(ckpt.value().tensor("layer1.weight")), tensor_bytes(tensors[1].second));
    EXPECT_EQ(ckpt.value().info("layer0.weight").shape, (std::vector<int64_t>{3}));
    EXPECT_THROW(ckpt.value().tensor("missing"), std::out_of_range);
    EXPECT_THROW(ckpt.value().info("missing"), std::out_of_range);
  }
  EXPECT_EQ(open_ok(dir / "model.safetensors")->metadata().at("format"), "pt");
}

TEST(CheckpointReader, ShardsFollowTheHuggingFaceRule) {
  ScratchDir dir;
  // Sizes in bytes 24, 24, 8, 24, 8, 8, 48 with a 40-byte limit: [24], [24 8], then the oversized 48 gets a shard of
  // its own at once while [24 8 8] is still open, so it comes last (huggingface_hub's order).
  const auto tensors = sized_tensors({6, 6, 2, 6, 2, 2, 12});
  ASSERT_TRUE(write_sharded_checkpoint(dir.path(), tensors, 40).ok());
  const std::vector<std::vector<int>> expected = {{0}, {1, 2}, {6}, {3, 4, 5}};
  for (size_t s = 0; s < expected.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, expected.size());
    auto shard = open_ok(dir / name);
    ASSERT_TRUE(shard) << name;
    std::vector<std::string> got;
    for (const TensorInfo& t : shard->tensors()) got.push_back(t.name);
    std::sort(got.begin(), got.end());
    std::vector<std::string> want;
    for (int i : expected[s]) want.push_back(tensors[i].first);
    EXPECT_EQ(got, want) << name;
  }
  const std::string index = read_bytes(dir / "model.safetensors.index.json");
  EXPECT_EQ(index.rfind("{\n  \"metadata\": {\n    \"total_parameters\": 36,\n    \"total_size\": 144\n  },\n", 0), 0u)
      << index;
  EXPECT_NE(index.find("\"layer6.weight\": \"model-00003-of-00004.safetensors\"\n  }\n}\n"), std::string::npos) << index;

  auto ckpt = CheckpointReader::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_EQ(ckpt.value().files().size(), 4u);
  ASSERT_EQ(ckpt.value().names().size(), tensors.size());
  for (const auto& [name, t] : tensors) EXPECT_EQ(tensor_bytes(ckpt.value().tensor(name)), tensor_bytes(t)) << name;
  auto via_index = CheckpointReader::open(dir / "model.safetensors.index.json");
  ASSERT_TRUE(via_index.ok()) << via_index.status().message();
  EXPECT_EQ(via_index.value().names(), ckpt.value().names());
}

TEST(CheckpointReader, ResavingRemovesStaleShards) {
  ScratchDir dir;
  const auto tensors = sized_tensors({6, 6, 6});
  ASSERT_TRUE(write_sharded_checkpoint(dir.path(), tensors, 30).ok());
  ASSERT_TRUE(open_ok(dir / "model-00003-of-00003.safetensors"));
  write_bytes(dir / "config.json", "{}");
  ASSERT_TRUE(write_sharded_checkpoint(dir.path(), tensors, 1000).ok());
  struct stat st {};
  EXPECT_NE(::stat((dir / "model-00001-of-00003.safetensors").c_str(), &st), 0);
  EXPECT_NE(::stat((dir / "model.safetensors.index.json").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir / "config.json").c_str(), &st), 0) << "unrelated files stay";
  auto ckpt = CheckpointReader::open(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_EQ(ckpt.value().files().size(), 1u);
  ASSERT_TRUE(write_sharded_checkpoint(dir / "new" / "nested", tensors, 30).ok()) << "creates folders";
}

// ---------------------------------------------------------------------------------------------------------------------

TEST(AtomicFile, CommitPublishesAndLeavesNoTemporaryFile) {
  ScratchDir dir;
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 % 251);
  auto w = AtomicFileWriter::create(dir / "f.bin");
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(w.value().write(big.data(), 10).ok());
  ASSERT_TRUE(w.value().write(big.data() + 10, (2 << 20)).ok());  // past the buffer
  ASSERT_TRUE(w.value().write(big.data() + 10 + (2 << 20), big.size() - 10 - (2 << 20)).ok());
  EXPECT_EQ(w.value().bytes_written(), big.size());
  ASSERT_TRUE(w.value().commit().ok());
  EXPECT_EQ(read_bytes(dir / "f.bin"), big);
  EXPECT_FALSE(w.value().commit().ok()) << "a second commit is an error";
  EXPECT_EQ(formats_test::count_entries(dir.path()), 1);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "f.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(AtomicFile, AbandonedWriterLeavesTheTargetUntouched) {
  ScratchDir dir;
  ASSERT_TRUE(write_file_atomically(dir / "f.txt", "old").ok());
  ::chmod((dir / "f.txt").c_str(), 0600);
  {
    auto w = AtomicFileWriter::create(dir / "f.txt");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w.value().write("new contents").ok());
  }  // destroyed without commit
  EXPECT_EQ(read_bytes(dir / "f.txt"), "old");
  EXPECT_EQ(formats_test::count_entries(dir.path()), 1);
  ASSERT_TRUE(write_file_atomically(dir / "f.txt", "new").ok());
  EXPECT_EQ(read_bytes(dir / "f.txt"), "new");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "f.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the replaced file's mode is kept";
}

TEST(AtomicFile, MissingFolderIsAnErrorNamingThePath) {
  ScratchDir dir;
  const Status s = write_file_atomically(dir / "no" / "such" / "f.txt", "x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("f.txt"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace loft
