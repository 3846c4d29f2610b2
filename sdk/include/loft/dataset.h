// Dataset plugins: training and evaluation samples as conversations; the host templates, tokenizes and masks them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

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

// A fixed, indexable collection. get() is deterministic and thread-safe.
class Dataset {
 public:
  virtual ~Dataset();
  virtual int64_t size() const = 0;
  virtual Sample get(int64_t index) const = 0;
};

}  // namespace loft
