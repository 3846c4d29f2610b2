// Fuzzes the sharded-checkpoint index (model.safetensors.index.json): any bytes as the index beside one valid shard
// give a reader whose every name resolves to a tensor, or a Status; never a crash or an escaping exception.
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include <ATen/core/Tensor.h>

#include "fuzz_support.h"
#include "loft/framework/safetensors.h"

namespace {

// A valid two-tensor shard, written once: 8-byte little-endian header length, JSON header, data.
void write_shard_once() {
  static bool written = false;
  if (written) return;
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}})";
  std::string bytes(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  bytes += header;
  bytes += std::string(11, '\x01');
  loft::fuzz::write_scratch_file("ckpt/model-00001-of-00001.safetensors",
                                 reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  written = true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string folder = loft::fuzz::scratch_folder() + "/ckpt";
  ::mkdir(folder.c_str(), 0700);
  write_shard_once();
  loft::fuzz::write_scratch_file("ckpt/model.safetensors.index.json", data, size);
  auto reader = loft::CheckpointReader::open(folder);
  if (!reader.ok()) return 0;
  for (const auto& name : reader.value().names()) {
    const at::Tensor t = reader.value().tensor(name);
    if (t.nbytes() != reader.value().info(name).size_bytes()) std::abort();
  }
  return 0;
}
