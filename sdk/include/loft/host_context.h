// What the host hands every plugin factory: device, compute dtype, seed and the log sink.
#pragma once

#include <cstdint>

#include "loft/log.h"

// Declared, not defined: this header (and so every dataset plugin) needs no torch header. A plugin that calls
// device() or compute_dtype() includes <c10/core/Device.h> / <c10/core/ScalarType.h> (any ATen header does).
namespace c10 {
struct Device;
enum class ScalarType : int8_t;
}  // namespace c10

namespace loft {

// Process state belongs to the host. Plugins read it here; CUDA work launches on the current stream
// (c10::cuda::getCurrentCUDAStream()), which the host sets. Lives as long as the run; read-only for plugins.
// Every method is const, thread-safe, never throws, never blocks; the host owns the object and the sink.
class HostContext {
 public:
  virtual ~HostContext();
  virtual c10::Device device() const = 0;
  virtual c10::ScalarType compute_dtype() const = 0;  // dtype of activations and frozen weights
  virtual uint64_t seed() const = 0;                   // the run's seed; derive per-plugin streams from it
  virtual const LogSink& log() const = 0;
};

}  // namespace loft
