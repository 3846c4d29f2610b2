// Quantizer plugins: compact storage of frozen linear weights and the matmul that reads it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

namespace loft {

// Called once per tensor of a QuantizedLinear's storage with its state() name and the member itself, by reference.
using StorageVisitor = std::function<void(std::string_view name, at::Tensor& tensor)>;

// One frozen weight W [out_features, in_features] in a quantizer's storage. Not thread-safe to move (`to`) while
// another thread runs forward.
class QuantizedLinear {
 public:
  virtual ~QuantizedLinear();
  // y = x W^T without bias. x: [..., in_features] in the compute dtype. Differentiable w.r.t. x only.
  virtual at::Tensor forward(const at::Tensor& x) const = 0;
  // W as a dense [out_features, in_features] tensor of `dtype` on the storage's device.
  virtual at::Tensor dequantize(c10::ScalarType dtype) const = 0;
  // Bytes of the compact storage, all of its tensors together.
  virtual int64_t storage_bytes() const = 0;
  // The compact form by name ("weight", "absmax", ...): what checkpoints save and offload strategies move.
  virtual std::map<std::string, at::Tensor> state() const = 0;
  // Moves the storage (offload strategies call this; non_blocking from pinned host memory).
  virtual void to(c10::Device device, bool non_blocking) = 0;
  // Offload strategies: calls `visit` with every defined tensor of the storage (the state() tensors, by reference),
  // so a strategy can re-home it (assign a tensor of the same sizes, dtype and values: a view into a pinned arena, a
  // device buffer) or swap its bytes in place (loft::refill_storage). All of them must be on one device whenever
  // forward or dequantize runs. Returns false when the storage cannot be visited (the default): the strategy falls
  // back to to(). May throw what `visit` throws; never blocks by itself.
  virtual bool visit_storage(const StorageVisitor& visit);
  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;
};

// Turns dense frozen weights into QuantizedLinear storage. Created once per run; const methods are thread-safe.
class Quantizer {
 public:
  virtual ~Quantizer();
  // `weight` [out, in] dense (any float dtype, any device); `site` names the module ("model.layers.0.mlp.up_proj").
  virtual std::unique_ptr<QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const = 0;
  // Rebuilds storage from a state() saved earlier, so a run need not quantize again.
  virtual std::unique_ptr<QuantizedLinear> load(const std::map<std::string, at::Tensor>& state,
                                                int64_t out_features, int64_t in_features) const = 0;
};

}  // namespace loft
