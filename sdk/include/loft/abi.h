// The C door of every loft plugin: the ABI version the host checks first, then the build fingerprint and descriptor.
//
// Version rule: LOFT_SDK_ABI_VERSION is bumped whenever a struct below or an interface in loft/*.h changes layout
// or meaning. Fields are only ever appended to loft_plugin_descriptor (the host reads struct_size), and new
// optional callbacks default to null; appending alone does not need a bump.
#pragma once

#include <stdint.h>

#define LOFT_SDK_ABI_VERSION 1u

#ifdef __cplusplus
extern "C" {
#endif

/* What a plugin was built with. The host refuses a plugin whose fingerprint differs from its own in any field:
 * C++ interfaces (at::Tensor, std::string) cross the boundary, so every one of these must agree. */
typedef struct loft_build_fingerprint {
  uint32_t sdk_abi;           /* LOFT_SDK_ABI_VERSION */
  const char* torch_version;  /* TORCH_VERSION, e.g. "2.11.0" */
  int32_t cuda_runtime;       /* CUDART_VERSION of the headers built against, e.g. 13000; 0 without CUDA */
  int32_t cxx11_abi;          /* _GLIBCXX_USE_CXX11_ABI */
  const char* compiler;       /* "gcc 12.2", compared by major version only */
} loft_build_fingerprint;

/* Returned by loft_plugin_describe(); `registrar` is a loft::Registrar* on the C++ side. */
typedef struct loft_plugin_descriptor {
  uint32_t abi_version;  /* LOFT_SDK_ABI_VERSION, repeated so a descriptor can be checked alone */
  uint32_t struct_size;  /* sizeof(loft_plugin_descriptor) as the plugin saw it */
  const char* name;      /* "kind/name", must match the manifest */
  loft_build_fingerprint fingerprint;
  /* Registers the plugin's factories. Returns 0, or non-zero with a message in *error (static storage). */
  int32_t (*register_plugin)(void* registrar, const char** error);
} loft_plugin_descriptor;

/* The two symbols a plugin exports. loft_plugin_abi_version runs no other plugin code. */
typedef uint32_t (*loft_plugin_abi_version_fn)(void);
typedef const loft_plugin_descriptor* (*loft_plugin_describe_fn)(void);

#define LOFT_PLUGIN_ABI_SYMBOL "loft_plugin_abi_version"
#define LOFT_PLUGIN_DESCRIBE_SYMBOL "loft_plugin_describe"

#ifdef __cplusplus
}
#endif
