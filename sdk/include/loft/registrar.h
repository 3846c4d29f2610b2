// The registrar the host hands a plugin at load time: named factories, one table per plugin kind (plugin_kinds.h).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "loft/host_context.h"
#include "loft/options.h"
#include "loft/plugin_kinds.h"

namespace loft {

// A factory builds a component from the host context and the plugin's resolved options. It may throw
// (std::exception or c10::Error); the host turns that into an error naming the plugin and the recipe section.
// Throw std::invalid_argument when the options or the files they name are wrong (the user's input: `loft` exits
// 2); any other exception is a failure of the run (exit 1).
template <typename T>
using Factory = std::function<std::unique_ptr<T>(const HostContext&, const Options&)>;

// std::type_identity (C++20): keeps a parameter out of template argument deduction.
template <typename T>
struct NonDeduced {
  using type = T;
};

// A factory with its interface type erased: returns a T* (owned by the caller) as void*. Built only by
// Registrar::add<T>, so the kind it is filed under always matches T.
using ErasedFactory = std::function<void*(const HostContext&, const Options&)>;

// Implemented by the host. A name is the plugin's name without its kind ("int8", not "quantizer/int8").
// Called only from a plugin's register function, on the loading thread; never throws (a clash is reported by the
// host after registration).
class Registrar {
 public:
  virtual ~Registrar();

  // Files `factory` under kind KindTraits<T>::name: add<Quantizer>("int8", ...).
  template <typename T>
  void add(const std::string& name, Factory<T> factory) {
    add_erased(KindTraits<T>::name, name, [f = std::move(factory)](const HostContext& ctx, const Options& options) -> void* {
      return static_cast<void*>(f(ctx, options).release());
    });
  }

  // add_quantizer, add_peft, add_offload, add_dataset, add_optimizer: add<T> under the kind's name. Templates only
  // so that a plugin needs the complete type of its own kind's interface alone.
#define LOFT_REGISTRAR_ADD(Interface, kind, default_type, doc)                                       \
  template <typename T = Interface>                                                                 \
  void add_##kind(const std::string& name, typename NonDeduced<Factory<T>>::type factory) {              \
    add<T>(name, std::move(factory));                                                               \
  }
  LOFT_PLUGIN_KINDS(LOFT_REGISTRAR_ADD)
#undef LOFT_REGISTRAR_ADD

 protected:
  virtual void add_erased(const char* kind, const std::string& name, ErasedFactory factory) = 0;
};

}  // namespace loft
