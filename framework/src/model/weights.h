// The tensors a Qwen2 checkpoint must hold, with the shapes its config implies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loft/framework/qwen2.h"

namespace loft::model {

struct ExpectedTensor {
  std::string name;            // Hugging Face key
  std::vector<int64_t> shape;
  std::string rule;            // how the config implies the shape, for error messages
};

// Every tensor of a Qwen2ForCausalLM in a fixed order (embedding, layers, final norm, lm_head when untied).
std::vector<ExpectedTensor> expected_tensors(const Qwen2Config& config);

}  // namespace loft::model
