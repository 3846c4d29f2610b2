// Parity of loft's Unicode normalisation with HF tokenizers' normalizers over every code point (label parity).
//
// For each code point X (U+0000..U+10FFFF without surrogates; U+000A is the separator between probes, so it is tested
// between every pair of them) the probes are X, "x" X U+0301, X U+0334, "x" U+0345 X, "x" U+0301 X, "A" X U+0308 (each
// reorders or composes when X has a combining class or composes), and utf8proc's NFD(X) and NFKD(X) where they differ
// from X (so every composition utf8proc knows is tried). hf_normalization_reference.py normalises them with HF
// tokenizers' NFC, NFD, NFKC and NFKD and encodes the probes of every code point utf8proc gives normalisation
// behaviour with models/demo/tokenizer.json (Qwen2's pipeline, normalizer NFC); loft must produce the same strings and
// ids.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "../support/python_reference.h"
#include "loft/framework/tokenizer.h"
#include "text_utf8.h"

namespace loft {
namespace {

using tokenizer_detail::append_code_point;
using tokenizer_detail::decode_code_point;
using tokenizer_detail::NormalizationForm;
using tokenizer_detail::normalize_utf8;

constexpr char kSeparator = '\n';

std::string utf8(char32_t cp) {
  std::string s;
  append_code_point(s, cp);
  return s;
}

std::string hex(std::string_view s) {
  std::string out;
  for (size_t pos = 0; pos < s.size();) {
    char32_t cp = 0;
    pos += static_cast<size_t>(decode_code_point(s, pos, &cp));
    out += fmt::format("{}U+{:04X}", out.empty() ? "" : " ", static_cast<uint32_t>(cp));
  }
  return out.empty() ? "(empty)" : out;
}

// utf8proc alone, with the options loft passes: what loft did before it knew HF's older tables.
std::string plain_utf8proc(std::string_view text, NormalizationForm form) {
  int options = UTF8PROC_STABLE;
  if (form == NormalizationForm::kNFC || form == NormalizationForm::kNFKC) options |= UTF8PROC_COMPOSE;
  else options |= UTF8PROC_DECOMPOSE;
  if (form == NormalizationForm::kNFKC || form == NormalizationForm::kNFKD) options |= UTF8PROC_COMPAT;
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) throw std::runtime_error("utf8proc_map failed");
  std::string s(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return s;
}

struct Probes {
  std::vector<std::string> texts;
  std::vector<char32_t> code_point;  // the code point each probe is about
  size_t n_encode = 0;               // the first n_encode probes are also encoded
};

Probes make_probes() {
  std::vector<char32_t> all;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == static_cast<char32_t>(kSeparator)) continue;
    all.push_back(cp);
  }
  // Code points with normalisation behaviour in utf8proc: a combining class, a decomposition, or a place in a
  // canonical decomposition (which is what can compose).
  std::vector<bool> active(0x110000, false);
  std::vector<std::string> nfd(0x110000), nfkd(0x110000);
  for (char32_t cp : all) {
    const std::string x = utf8(cp);
    nfd[cp] = plain_utf8proc(x, NormalizationForm::kNFD);
    nfkd[cp] = plain_utf8proc(x, NormalizationForm::kNFKD);
    if (utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class != 0 || nfkd[cp] != x) {
      active[cp] = true;
    }
    if (nfd[cp] != x) {
      for (size_t pos = 0; pos < nfd[cp].size();) {
        char32_t part = 0;
        pos += static_cast<size_t>(decode_code_point(nfd[cp], pos, &part));
        active[part] = true;
      }
    }
  }
  Probes p;
  auto add = [&](char32_t cp) {
    const std::string x = utf8(cp);
    for (std::string text : {x, "x" + x + "\u0301", x + "\u0334", "x\u0345" + x, "x\u0301" + x, "A" + x + "\u0308"}) {
      p.texts.push_back(std::move(text));
      p.code_point.push_back(cp);
    }
    if (nfd[cp] != x) {
      p.texts.push_back(nfd[cp]);
      p.code_point.push_back(cp);
    }
    if (nfkd[cp] != x && nfkd[cp] != nfd[cp]) {
      p.texts.push_back(nfkd[cp]);
      p.code_point.push_back(cp);
    }
  };
  for (char32_t cp : all) {
    if (active[cp]) add(cp);
  }
  p.n_encode = p.texts.size();
  for (char32_t cp : all) {
    if (!active[cp]) add(cp);
  }
  return p;
}

// HF's output for the probes <form>.tsv lists (index -> text); every other probe HF leaves as it is.
std::unordered_map<size_t, std::string> changed_by_hf(const std::filesystem::path& tsv) {
  std::unordered_map<size_t, std::string> out;
  const std::string data = loft::testing::read_text(tsv);
  for (size_t pos = 0; pos < data.size();) {
    size_t end = data.find(kSeparator, pos);
    if (end == std::string::npos) end = data.size();
    const size_t tab = data.find('\t', pos);
    out[std::stoull(data.substr(pos, tab - pos))] = data.substr(tab + 1, end - tab - 1);
    pos = end + 1;
  }
  return out;
}

// Normalises the probes in chunks (joined by the separator, which no normaliser touches) and counts those whose
// output differs from HF's (`changed`, else the probe itself); describes the first few.
template <typename Normalize>
size_t count_mismatches(const Probes& probes, const std::unordered_map<size_t, std::string>& changed, Normalize normalize,
                        std::vector<std::string>* first, std::vector<char32_t>* code_points) {
  constexpr size_t kChunk = 1 << 16;
  size_t mismatches = 0;
  for (size_t begin = 0; begin < probes.texts.size(); begin += kChunk) {
    const size_t end = std::min(probes.texts.size(), begin + kChunk);
    std::string joined;
    for (size_t i = begin; i < end; ++i) {
      if (i > begin) joined += kSeparator;
      joined += probes.texts[i];
    }
    const std::string result = normalize(joined);
    size_t pos = 0;
    for (size_t i = begin; i < end; ++i) {
      size_t stop = result.find(kSeparator, pos);
      if (stop == std::string::npos) stop = result.size();
      const std::string_view got(result.data() + pos, stop - pos);
      const auto hf = changed.find(i);
      const std::string& expected = hf == changed.end() ? probes.texts[i] : hf->second;
      if (got != expected) {
        ++mismatches;
        if (code_points && (code_points->empty() || code_points->back() != probes.code_point[i])) {
          code_points->push_back(probes.code_point[i]);
        }
        if (first && first->size() < 10) {
          first->push_back(fmt::format("U+{:04X}: probe {} -> loft {}, HF {}", static_cast<uint32_t>(probes.code_point[i]),
                                       hex(probes.texts[i]), hex(got), hex(expected)));
        }
      }
      pos = stop + 1;
    }
  }
  return mismatches;
}

class HfNormalization : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    probes_ = new Probes(make_probes());
    std::string input = std::to_string(probes_->n_encode);
    for (const auto& t : probes_->texts) {
      input += kSeparator;
      input += t;
    }
    dir_ = new std::filesystem::path(loft::testing::python_reference_dir(
        std::filesystem::path(LOFT_SOURCE_DIR) / "tests/tokenizer/hf_normalization_reference.py", "hf_normalization",
        "\n(needs the tokenizers package in LOFT_PYTHON's environment)", input));
  }
  static void TearDownTestSuite() {
    delete probes_;
    delete dir_;
  }
  static Probes* probes_;
  static std::filesystem::path* dir_;
};
Probes* HfNormalization::probes_ = nullptr;
std::filesystem::path* HfNormalization::dir_ = nullptr;

TEST_F(HfNormalization, EveryCodePointNormalisesAsHfTokenizers) {
  ASSERT_FALSE(dir_->empty());
  ASSERT_GT(probes_->texts.size(), 6u * 1000000u);
  const std::pair<NormalizationForm, const char*> forms[] = {{NormalizationForm::kNFC, "NFC"},
                                                             {NormalizationForm::kNFD, "NFD"},
                                                             {NormalizationForm::kNFKC, "NFKC"},
                                                             {NormalizationForm::kNFKD, "NFKD"}};
  for (const auto& [form, name] : forms) {
    SCOPED_TRACE(name);
    const auto expected = changed_by_hf(*dir_ / (std::string(name) + ".tsv"));
    ASSERT_FALSE(expected.empty()) << name << ".tsv";
    std::vector<std::string> first;
    const size_t loft_mismatches = count_mismatches(
        *probes_, expected, [form = form](const std::string& s) { return normalize_utf8(s, form); }, &first, nullptr);
    std::string described;
    for (const auto& line : first) described += "\n  " + line;
    EXPECT_EQ(loft_mismatches, 0u) << "of " << probes_->texts.size() << " probes" << described;

    // What the table fixes: utf8proc alone disagrees with HF on the marks HF's tables do not know.
    std::vector<char32_t> plain_code_points;
    const size_t plain_mismatches = count_mismatches(
        *probes_, expected, [form = form](const std::string& s) { return plain_utf8proc(s, form); }, nullptr,
        &plain_code_points);
    std::cout << name << ": " << probes_->texts.size() << " probes; loft differs from HF tokenizers on "
              << loft_mismatches << "; utf8proc alone on " << plain_mismatches << " probes of "
              << plain_code_points.size() << " code points\n";
  }
}

TEST_F(HfNormalization, EncodingMatchesHfTokenizers) {
  ASSERT_FALSE(dir_->empty());
  // The demo tokenizer has Qwen2's normalizer, NFC, as HF read it.
  const auto meta = nlohmann::json::parse(loft::testing::read_text(*dir_ / "reference.json"));
  EXPECT_EQ(meta["normalizer"], nlohmann::json({{"type", "NFC"}}));
  auto tok = Tokenizer::from_file(std::filesystem::path(LOFT_SOURCE_DIR) / "models/demo/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  std::ifstream in(*dir_ / "encode.txt");
  std::string line;
  size_t i = 0, mismatches = 0;
  bool issue_example = false;  // issue 10 item 18: "x\u0301\u0899"
  for (; i < probes_->n_encode && std::getline(in, line); ++i) {
    std::vector<int32_t> expected;
    std::istringstream ids(line);
    for (int32_t id = 0; ids >> id;) expected.push_back(id);
    const std::string& text = probes_->texts[i];
    issue_example |= text == "x\u0301\u0899";
    const auto got = tok.value().encode(text);
    if (got != expected && ++mismatches <= 10) {
      ADD_FAILURE() << "U+" << fmt::format("{:04X}", static_cast<uint32_t>(probes_->code_point[i])) << " probe "
                    << hex(text) << "\n  loft: " << ::testing::PrintToString(got)
                    << "\n  HF:   " << ::testing::PrintToString(expected);
    }
  }
  EXPECT_EQ(i, probes_->n_encode) << "encode.txt is short";
  EXPECT_EQ(mismatches, 0u) << "of " << probes_->n_encode << " probes";
  EXPECT_GT(probes_->n_encode, 100000u);
  EXPECT_TRUE(issue_example);
}

}  // namespace
}  // namespace loft
