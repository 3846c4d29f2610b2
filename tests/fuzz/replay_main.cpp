// The fuzz targets' entry point in builds without libFuzzer (GCC): runs LLVMFuzzerTestOneInput on every file named
// on the command line or found in a named folder (the corpus and the regressions of past crashes), in name order.
// A crash, sanitizer report or uncaught exception fails the test as it would under libFuzzer.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// POSIX, not std::filesystem: libtorch exports its own copies of some std::filesystem functions (files.h).
bool is_folder(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (is_folder(arg)) {
      DIR* dir = ::opendir(arg.c_str());
      if (dir == nullptr) {
        std::fprintf(stderr, "replay: cannot read the folder %s\n", argv[i]);
        return 2;
      }
      while (const dirent* entry = ::readdir(dir)) {
        const std::string path = arg + "/" + entry->d_name;
        if (entry->d_name[0] != '.' && is_file(path)) inputs.push_back(path);
      }
      ::closedir(dir);
    } else if (is_file(arg)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "replay: %s is neither a file nor a folder\n", argv[i]);
      return 2;
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no inputs found in the folders given\n");
    return 2;
  }
  for (const auto& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("replayed %zu inputs without a failure\n", inputs.size());
  return 0;
}
