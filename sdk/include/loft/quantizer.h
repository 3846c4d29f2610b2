// Quantizer plugins: compact storage of frozen linear weights and the matmul that reads it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

#include "loft/extension.h"

namespace loft {

// Conventions for every method below unless it says otherwise:
//   Streams: CUDA work is enqueued on the current stream of the tensors' device (c10::cuda::getCurrentCUDAStream(),
//     which the host or the offload strategy sets); nothing synchronises the device unless stated.
//   Errors: a method may throw c10::Error (or std::exception) for inputs that break its stated contract (shape,
//     dtype, device); the host reports it naming the layer. Plugins never exit or abort.
//   Ownership: returned tensors share nothing mutable with the storage unless stated (state() returns views).

// Called once per tensor of a QuantizedLinear's storage with its state() name and the member itself, by reference.
using StorageVisitor = std::function<void(std::string_view name, at::Tensor& tensor)>;

// One frozen weight W [out_features, in_features] in a quantizer's storage. The host's model owns it for the run
// (longer than any autograd graph that uses it). Const methods may run concurrently; `to` must not run while
// another thread uses the object.
class QuantizedLinear {
 public:
  virtual ~QuantizedLinear();
  // y = x W^T without bias. x: [..., in_features] in the compute dtype, on the storage's device. Differentiable
  // w.r.t. x only; the autograd graph may refer to this object until backward ran. Does not block.
  virtual at::Tensor forward(const at::Tensor& x) const = 0;
  // W as a new dense [out_features, in_features] tensor of `dtype` on the storage's device; the caller owns it.
  // Does not block.
  virtual at::Tensor dequantize(c10::ScalarType dtype) const = 0;
  // Bytes of the compact storage, all of its tensors together. Host-side arithmetic only; never throws or blocks.
  virtual int64_t storage_bytes() const = 0;
  // The compact form by name ("weight", "absmax", ...): what checkpoints save and offload strategies move. The
  // tensors alias the storage (no copy); the caller must not write to them. Does not block.
  virtual std::map<std::string, at::Tensor> state() const = 0;
  // Moves the storage to `device` (offload strategies call this). non_blocking: the copy is enqueued on the current
  // stream and returns at once when the source is pinned host memory or the device; otherwise it may block until
  // the copy is done. Throws c10::Error when out of memory on the target.
  virtual void to(c10::Device device, bool non_blocking) = 0;
  // Offload strategies: calls `visit` with every defined tensor of the storage (the state() tensors, by reference),
  // so a strategy can re-home it (assign a tensor of the same sizes, dtype and values: a view into a pinned arena, a
  // device buffer) or swap its bytes in place (loft::refill_storage). All of them must be on one device whenever
  // forward or dequantize runs. Returns false when the storage cannot be visited (the default): the strategy falls
  // back to to(). May throw what `visit` throws; never blocks by itself.
  virtual bool visit_storage(const StorageVisitor& visit);
  // Shape of W. Never throw or block.
  virtual int64_t out_features() const = 0;
  virtual int64_t in_features() const = 0;
  // Versioned capability query (loft/extension.h): ids "loft.quantized_linear.<feature>/<n>". Never throws or blocks.
  virtual const void* extension(std::string_view /*id*/) const { return nullptr; }
};

// Turns dense frozen weights into QuantizedLinear storage. Made by its factory once per run and owned by the host;
// const methods are thread-safe.
class Quantizer {
 public:
  virtual ~Quantizer();
  // `weight` [out, in] dense (any float dtype, any device), borrowed; `site` names the module. The result (owned by
  // the caller) lives on `weight`'s device; kernels run on the current stream (may block on a CPU weight). Throws,
  // naming the site, on a shape the format cannot store (e.g. in_features not a multiple of its block size) and on a
  // weight with NaN or Inf: never made finite (the host refuses those first, pointing at quantizer.skip).
  virtual std::unique_ptr<QuantizedLinear> quantize(const at::Tensor& weight, const std::string& site) const = 0;
  // Rebuilds storage from a state() saved earlier (tensors borrowed; the result may alias them), so a run need not
  // quantize again. Throws std::exception naming the key when `state` lacks a tensor or has a wrong shape.
  virtual std::unique_ptr<QuantizedLinear> load(const std::map<std::string, at::Tensor>& state,
                                                int64_t out_features, int64_t in_features) const = 0;
  // Versioned capability query (loft/extension.h): ids "loft.quantizer.<feature>/<n>". Never throws or blocks.
  virtual const void* extension(std::string_view /*id*/) const { return nullptr; }
};

}  // namespace loft
