// Single-threaded tokenizer throughput: encodes every document of a corpus (documents separated by 0x1E) with
// loft::Tokenizer and prints one JSON line with the time, token count and an FNV-1a checksum of the ids, which
// bench_tokenizer.py checks against HF tokenizers before comparing speeds.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loft/framework/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_JSON CORPUS_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  using clock = std::chrono::steady_clock;
  const auto load_start = clock::now();
  auto tok = loft::Tokenizer::from_file(argv[1]);
  const double load_s = std::chrono::duration<double>(clock::now() - load_start).count();
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().message().c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", argv[2]);
    return 1;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string corpus = buffer.str();
  std::vector<std::string_view> docs;
  for (size_t start = 0; start <= corpus.size();) {
    size_t end = corpus.find('\x1e', start);
    if (end == std::string::npos) end = corpus.size();
    docs.emplace_back(corpus.data() + start, end - start);
    start = end + 1;
  }

  double best_s = 1e30;
  uint64_t tokens = 0, fnv = 0;
  for (int r = 0; r < repeats; ++r) {
    tokens = 0;
    fnv = 1469598103934665603ULL;
    const auto t0 = clock::now();
    for (std::string_view doc : docs) {
      const std::vector<int32_t> ids = tok.value().encode(doc);
      tokens += ids.size();
      for (int32_t id : ids) fnv = (fnv ^ static_cast<uint32_t>(id)) * 1099511628211ULL;
    }
    best_s = std::min(best_s, std::chrono::duration<double>(clock::now() - t0).count());
  }
  std::printf("{\"docs\": %zu, \"bytes\": %zu, \"tokens\": %llu, \"fnv\": %llu, \"load_s\": %.3f, \"encode_s\": %.4f}\n",
              docs.size(), corpus.size(), static_cast<unsigned long long>(tokens), static_cast<unsigned long long>(fnv),
              load_s, best_s);
  return 0;
}
