// Include once in a plugin's main source and write LOFT_PLUGIN("kind/name", register_fn): it defines the two
// exported C symbols and the plugin's descriptor (loft/abi.h), with this build's fingerprint and, for plugins with
// CUDA sources, the architectures loft_add_plugin passes.
//
// register_fn has the signature void(loft::Registrar&). The host calls it once, on the loading thread, before any
// factory runs; no CUDA work belongs there (no stream is set up yet). It may throw std::exception: the trampoline
// turns that into the descriptor's error and the host refuses the plugin with the message. It must register
// exactly the plugin's own name under its manifest's kind (more names of any kind are allowed); the host keeps
// nothing from a plugin whose registration fails.
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
                                                   &loft_plugin_register_trampoline,                   \
                                                   LOFT_BUILD_CUDA_ARCHITECTURES};                     \
    return &descriptor;                                                                               \
  }
