// The registrar the host hands a plugin at load time: named factories, one table per plugin kind.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "loft/host_context.h"
#include "loft/options.h"

namespace loft {

class Quantizer;
class PeftMethod;
class OffloadStrategy;
class Dataset;

// A factory builds a component from the host context and the plugin's resolved options. It may throw
// (std::exception or c10::Error); the host turns that into an error naming the plugin and the recipe section.
template <typename T>
using Factory = std::function<std::unique_ptr<T>(const HostContext&, const Options&)>;

// Implemented by the host. A name is the plugin's name without its kind ("int8", not "quantizer/int8").
class Registrar {
 public:
  virtual ~Registrar();
  virtual void add_quantizer(const std::string& name, Factory<Quantizer> factory) = 0;
  virtual void add_peft(const std::string& name, Factory<PeftMethod> factory) = 0;
  virtual void add_offload(const std::string& name, Factory<OffloadStrategy> factory) = 0;
  virtual void add_dataset(const std::string& name, Factory<Dataset> factory) = 0;
};

}  // namespace loft
