// Dataset plugins: training and evaluation samples as conversations; the host templates, tokenizes and masks them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "loft/extension.h"

namespace loft {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// One sample. The last assistant message is what training learns; everything before it is masked out of the labels.
struct Sample {
  std::vector<ChatMessage> messages;
  std::map<std::string, std::string> fields;  // the source record (MATH: problem, solution, level, type, answer)
};

// A fixed, indexable collection, made by its factory once per run and owned by the host. Everything it exchanges
// with the host is std types (no torch, no CUDA): a dataset plugin may be built without either. Host-side only;
// no method runs CUDA work. Const methods are thread-safe (the host may read from several threads).
class Dataset {
 public:
  virtual ~Dataset();
  // Number of samples, fixed for the object's lifetime. Never throws; does not block (count at construction).
  virtual int64_t size() const = 0;
  // Sample `index` in [0, size()), returned by value (the caller owns it). Deterministic: the same index gives the
  // same sample. May block on file I/O. Throws std::exception naming the source and record for a record it
  // cannot read. The host never passes an index outside [0, size()); a plugin may throw std::out_of_range for one.
  virtual Sample get(int64_t index) const = 0;
  // Versioned capability query (loft/extension.h): ids "loft.dataset.<feature>/<n>". Never throws or blocks.
  virtual const void* extension(std::string_view /*id*/) const { return nullptr; }
};

}  // namespace loft
