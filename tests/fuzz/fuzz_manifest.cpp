// Fuzzes the plugin manifest reader (plugin.toml): any bytes give a manifest or a Status naming the file; never a
// crash or an escaping exception.
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "fuzz_support.h"
#include "loft/framework/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string folder = loft::fuzz::scratch_folder() + "/plugin";
  ::mkdir(folder.c_str(), 0700);
  const std::string path = loft::fuzz::write_scratch_file("plugin/plugin.toml", data, size);
  auto manifest = loft::read_manifest(path);
  if (!manifest.ok()) (void)manifest.status().message();
  return 0;
}
