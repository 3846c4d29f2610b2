// Offload plugins: where frozen tensors live and how each decoder block executes (recompute, streaming, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loft/quantizer.h"

namespace loft {

// What one decoder block holds that an offload strategy may move. Pointers stay valid for the run; a strategy
// moves a tensor by assigning through the pointer and a QuantizedLinear through its `to`.
struct BlockResidency {
  int64_t index = 0;
  std::vector<QuantizedLinear*> frozen_linears;
  std::vector<at::Tensor*> frozen_tensors;  // norms, biases
};

// The forward of one decoder block on the hidden states; everything else it needs is captured.
using BlockFunction = std::function<at::Tensor(const at::Tensor& hidden)>;

// Decides residency and executes blocks. Created once per run; not thread-safe.
class OffloadStrategy {
 public:
  virtual ~OffloadStrategy();
  // Called once after the quantizer and PEFT method have run: put every block's frozen tensors where they live.
  virtual void place(const std::vector<BlockResidency>& blocks) = 0;
  // Runs block `index` forward (and shapes its backward: recompute, prefetch, activation offload).
  // Must return exactly block(hidden)'s value, with gradients reaching `hidden` and every trainable tensor.
  virtual at::Tensor run_block(int64_t index, const BlockFunction& block, const at::Tensor& hidden) = 0;
};

}  // namespace loft
