// The versioned capability query every interface a plugin implements carries, so features arrive without breaking
// built plugins (the growth rule is in loft/abi.h). Header-only, no torch: dataset.h uses it too.
//
// Every interface (QuantizedLinear, Quantizer, Dataset, Adapter, PeftMethod, OffloadStrategy, the optimizer) has
//
//   virtual const void* extension(std::string_view id) const { return nullptr; }
//
// as its last virtual method. The convention:
//   - An id names one interface and one version: "loft.<interface>.<feature>/<version>", e.g.
//     "loft.quantized_linear.visit/1". The header that defines the id defines, next to it, a constant for the id
//     and the C++ type the returned pointer points to. A changed meaning or type is a new id ("/2"); an id's type
//     never changes. A plugin may answer several versions of one feature.
//   - Answering: return a pointer to an object of that type, or nullptr for ids the object does not know (the
//     default). Never throws, never blocks, no CUDA work; thread-safe (it is const and should only compare ids).
//   - Ownership: the object that answered owns the returned object; it stays valid for that object's lifetime.
//     Callers never delete it.
//   - Mutation: the pointer is const. An extension whose operations change its owner takes the owner as a non-const
//     parameter (`void visit(QuantizedLinear& owner, ...) const`), so only a caller holding a non-const owner can.
//   - The host (or a plugin) asks with find_extension<T>(object, id) and falls back to the behaviour of the base
//     interface when it gets nullptr. Ids beginning "loft." are reserved for the SDK; a plugin's private ids use its
//     own prefix ("acme.quantizer.fast_path/1").
#pragma once

#include <string_view>

namespace loft {

// The extension `id` of `object` as a `const T*`, or nullptr when `object` does not provide it. T must be the
// type documented with `id`. Never throws.
template <typename T, typename Interface>
const T* find_extension(const Interface& object, std::string_view id) {
  return static_cast<const T*>(object.extension(id));
}

}  // namespace loft
