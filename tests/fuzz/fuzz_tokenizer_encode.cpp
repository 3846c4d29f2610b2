// Fuzzes encoding with the demo model's tokenizer (a Qwen2-style byte-level BPE): any bytes encode to known ids;
// for NFC-normalised valid UTF-8, decode(encode(s)) == s (the round trip tokenizer.h promises).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <utf8proc.h>

#include "loft/framework/tokenizer.h"

namespace {

const loft::Tokenizer& tokenizer() {
  static const loft::Tokenizer* t = [] {
    auto loaded = loft::Tokenizer::from_file(LOFT_SOURCE_DIR "/models/demo/tokenizer.json");
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().message().c_str());
      std::abort();
    }
    return new loft::Tokenizer(std::move(loaded).value());
  }();
  return *t;
}

// True when `text` is valid UTF-8 without NUL and already in NFC.
bool is_nfc_utf8(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return false;
  utf8proc_uint8_t* normalised = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &normalised,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return false;
  const bool same = std::string_view(reinterpret_cast<const char*>(normalised), static_cast<size_t>(n)) == text;
  std::free(normalised);
  return same;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ids = tokenizer().encode(text);
  for (int32_t id : ids) {
    if (!tokenizer().id_to_token(id)) {
      std::fprintf(stderr, "encode produced id %d, which the vocabulary does not have\n", id);
      std::abort();
    }
  }
  const std::string back = tokenizer().decode(ids);
  if (is_nfc_utf8(text) && back != text) {
    std::fprintf(stderr, "decode(encode(s)) != s for NFC UTF-8 input of %zu bytes\n", size);
    std::abort();
  }
  return 0;
}
