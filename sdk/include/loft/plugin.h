// Include once in a plugin's main source and write LOFT_PLUGIN("kind/name", register_fn): it defines the two
// exported C symbols. register_fn has the signature void(loft::Registrar&).
#pragma once

#include <exception>
#include <string>

#include "loft/abi.h"
#include "loft/error_message.h"
#include "loft/fingerprint.h"
#include "loft/registrar.h"

#define LOFT_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

#define LOFT_PLUGIN(PLUGIN_NAME, REGISTER_FN)                                                         \
  LOFT_PLUGIN_EXPORT uint32_t loft_plugin_abi_version(void) { return LOFT_SDK_ABI_VERSION; }         \
  namespace {                                                                                         \
  int32_t loft_plugin_register_trampoline(void* registrar, const char** error) {                     \
    static std::string message;                                                                       \
    try {                                                                                             \
      REGISTER_FN(*static_cast<::loft::Registrar*>(registrar));                                      \
      return 0;                                                                                       \
    } catch (const std::exception& e) {                                                               \
      message = ::loft::error_message(e);                                                             \
    } catch (...) {                                                                                   \
      message = "unknown exception";                                                                  \
    }                                                                                                 \
    *error = message.c_str();                                                                         \
    return 1;                                                                                         \
  }                                                                                                   \
  }                                                                                                   \
  LOFT_PLUGIN_EXPORT const loft_plugin_descriptor* loft_plugin_describe(void) {                      \
    static const loft_plugin_descriptor descriptor{LOFT_SDK_ABI_VERSION, sizeof(loft_plugin_descriptor), \
                                                   PLUGIN_NAME, LOFT_BUILD_FINGERPRINT,                \
                                                   &loft_plugin_register_trampoline};                  \
    return &descriptor;                                                                               \
  }
