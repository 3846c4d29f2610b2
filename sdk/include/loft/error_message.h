// The user-facing text of an exception: c10::Error (TORCH_CHECK) without the C++ backtrace that what() appends.
#pragma once

#include <exception>
#include <string>

#if defined(__has_include)
#if __has_include(<c10/util/Exception.h>)
#include <c10/util/Exception.h>
#define LOFT_ERROR_MESSAGE_HAS_C10 1
#endif
#endif

namespace loft {

// Never throws; allocates. For c10::Error (and its subclasses) this is what_without_backtrace(): users see the
// message a TORCH_CHECK wrote, never a stack of frames. Header-only, so torch-free plugins can include it too.
inline std::string error_message(const std::exception& e) noexcept {
  try {
#ifdef LOFT_ERROR_MESSAGE_HAS_C10
    if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
#endif
    return e.what();
  } catch (...) {
    return "(an error whose message could not be read)";
  }
}

}  // namespace loft
