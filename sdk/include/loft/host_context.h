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
// (c10::cuda::getCurrentCUDAStream()), which the host sets. The host owns it and keeps it alive for the whole run,
// longer than every component a factory makes from it, so a component may keep a reference. Read-only for plugins.
// Every method is const, thread-safe, never throws, never blocks and runs no CUDA work.
class HostContext {
 public:
  virtual ~HostContext();
  virtual c10::Device device() const = 0;             // where the run computes (cuda:N or cpu)
  virtual c10::ScalarType compute_dtype() const = 0;  // dtype of activations and frozen weights
  virtual uint64_t seed() const = 0;                   // the run's seed; derive per-plugin streams from it
  virtual const LogSink& log() const = 0;              // owned by the context, valid as long as it is
};

}  // namespace loft
