// Fuzzes the safetensors reader: any bytes as a .safetensors file either open with every tensor inside the file
// (each byte of each tensor is read) or fail with a Status; never a crash, an escaping exception or a read outside
// the mapping.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <ATen/core/Tensor.h>

#include "fuzz_support.h"
#include "loft/framework/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = loft::fuzz::write_scratch_file("input.safetensors", data, size);
  auto file = loft::SafetensorsFile::open(path);
  if (!file.ok()) {
    (void)file.status().message();
    return 0;
  }
  uint64_t checksum = 0;
  for (const auto& info : file.value()->tensors()) {
    if (info.end < info.begin || info.end > file.value()->file_size_bytes()) {
      std::fprintf(stderr, "tensor %s lies outside the file\n", info.name.c_str());
      std::abort();
    }
    const at::Tensor t = file.value()->tensor(info.name);
    if (t.nbytes() != info.size_bytes()) {
      std::fprintf(stderr, "tensor %s: %zu bytes, header says %llu\n", info.name.c_str(), t.nbytes(),
                   static_cast<unsigned long long>(info.size_bytes()));
      std::abort();
    }
    const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
    for (size_t i = 0; i < t.nbytes(); ++i) checksum += bytes[i];
  }
  (void)checksum;
  return 0;
}
