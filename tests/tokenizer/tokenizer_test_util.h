// Shared by the tokenizer tests: where the generated fixtures live, and a tiny byte-level BPE tokenizer.json written
// from C++ (for unit and fault tests that must not depend on Python).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <ftw.h>
#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "byte_level.h"

namespace loft::testing_util {

// make_goldens.py's output: $LOFT_TOKENIZER_FIXTURES, else the build-tree folder CMake compiled in.
inline std::filesystem::path fixture_dir() {
  if (const char* env = std::getenv("LOFT_TOKENIZER_FIXTURES")) return env;
  return LOFT_TOKENIZER_FIXTURE_DIR;
}

// Deletes a folder tree. Not std::filesystem::remove_all: libtorch.so exports its own copy of it, which crashes
// (null call) in any process that loads libtorch before libstdc++, as loft_framework does.
inline void remove_tree(const std::filesystem::path& dir) {
  ::nftw(
      dir.c_str(), [](const char* path, const struct stat*, int, struct FTW*) { return std::remove(path); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

// A fresh, empty folder under the system temp dir for one test.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("loft_tokenizer_test_" + name + "_" + std::to_string(::getpid()));
  remove_tree(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Byte tokens at ids 0..255 (id == byte), merges "Ġ t", "Ġt h", "Ġth e", "h e", "l l", "ll o", "he llo" at 256..,
// added tokens after them, Qwen2's pipeline. Good enough to exercise every stage.
inline nlohmann::json tiny_tokenizer_json() {
  using nlohmann::json;
  const auto& table = tokenizer_detail::ByteLevelTable::get();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[table.byte_to_utf8(static_cast<unsigned char>(b))] = b;
  const char* merges[][2] = {{"Ġ", "t"}, {"Ġt", "h"}, {"Ġth", "e"}, {"h", "e"}, {"l", "l"}, {"ll", "o"}, {"he", "llo"}};
  json merge_list = json::array();
  int next = 256;
  for (auto& m : merges) {
    merge_list.push_back(json::array({m[0], m[1]}));
    vocab[std::string(m[0]) + m[1]] = next++;
  }
  auto added = [](int id, const char* content, bool special) {
    return json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                {"normalized", !special}, {"special", special}};
  };
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array({added(next, "<｜end▁of▁sentence｜>", true), added(next + 1, "<｜User｜>", false),
                                   added(next + 2, "<｜Assistant｜>", false),
                                   added(next + 3, "<｜begin▁of▁sentence｜>", true), added(next + 4, "<think>", false),
                                   added(next + 5, "</think>", false)});
  j["normalizer"] = json{{"type", "NFC"}};
  j["pre_tokenizer"] = json{
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({json{{"type", "Split"},
                         {"pattern", json{{"Regex", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                                    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                         {"behavior", "Isolated"}, {"invert", false}},
                    json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                         {"use_regex", false}}})}};
  j["post_processor"] = nullptr;
  j["decoder"] = json{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                    {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                    {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", merge_list}};
  return j;
}

inline const char* kTinyConfig = R"({"bos_token": {"__type": "AddedToken", "content": "<｜begin▁of▁sentence｜>"},
  "eos_token": "<｜end▁of▁sentence｜>", "pad_token": "<｜end▁of▁sentence｜>"})";

}  // namespace loft::testing_util
