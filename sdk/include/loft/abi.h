// The C door of every loft plugin: the ABI version the host checks first, then the build fingerprint and descriptor.
//
// ---- The growth rule (one rule, enforced by the host's loader) ----
//
// Size-versioned structs, as OBS modules do. loft_plugin_descriptor carries its own size (`struct_size`, what the
// plugin's compiler saw). Within one LOFT_SDK_ABI_VERSION:
//   - the host accepts a descriptor whose struct_size >= LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE, the size of this
//     version's first layout; a shorter one is refused with a message naming both sizes;
//   - a field counts as present only if it lies entirely within struct_size (LOFT_DESCRIPTOR_HAS). The host copies
//     the present prefix into a zeroed struct of its own, so an absent field reads as zero / null;
//   - fields after the minimum layout are optional, and zero (or null) must mean "not declared", the behaviour of
//     a plugin built before the field existed. A plugin newer than the host may carry fields the host does not
//     know; the host ignores them.
//
// Appending suffices (no bump) for: a new optional field at the end of loft_plugin_descriptor whose zero value
// means "not declared"; a new extension id answered through `extension()` (loft/extension.h); a new non-virtual
// helper or a new header in the SDK.
//
// LOFT_SDK_ABI_VERSION is bumped (once per release that needs it, and every plugin is rebuilt) for: any change of
// layout or meaning of an existing field here, including loft_build_fingerprint (it is embedded, so it never grows
// within a version: new build facts are appended to the descriptor instead); a field that every plugin must
// provide; any change of a C++ interface a plugin implements or calls (a virtual method added, removed, reordered or
// re-typed, a changed struct passed across the boundary such as BlockResidency or Sample, a changed meaning of a
// method). Interfaces never gain virtual methods within a version; new capabilities arrive as extension ids.
//
// History: 1: first contract. 2: fingerprint gains fmt major and libstdc++ debug modes; struct_size growth rule;
//    CUDA architectures appended; extension() on every interface (plus the offload, optimizer and parameter-group
//    changes of issue 9, all under this one bump).
#pragma once

#include <stddef.h>
#include <stdint.h>

#define LOFT_SDK_ABI_VERSION 2u

#ifdef __cplusplus
extern "C" {
#endif

/* What a plugin was built with. The host refuses a plugin whose fingerprint differs from its own in any field:
 * C++ interfaces (at::Tensor, std::string, fmt::format_string) cross the boundary, so every one of these must agree.
 * Fixed layout for the whole ABI version (see the growth rule above). */
typedef struct loft_build_fingerprint {
  uint32_t sdk_abi;           /* LOFT_SDK_ABI_VERSION */
  const char* torch_version;  /* TORCH_VERSION, e.g. "2.11.0"; "none" when built without torch headers (only
                                 accepted for dataset plugins, whose interface carries no torch types) */
  int32_t cuda_runtime;       /* CUDART_VERSION of the headers built against, e.g. 13000; 0 without CUDA.
                                 Compared by major version */
  int32_t cxx11_abi;          /* _GLIBCXX_USE_CXX11_ABI, -1 when not libstdc++ */
  const char* compiler;       /* "gcc 12.2", compared by major version only */
  int32_t fmt_major;          /* FMT_VERSION / 10000 (fmt types appear in log.h); 0 when built without fmt */
  int32_t glibcxx_assertions; /* 1 if _GLIBCXX_ASSERTIONS was defined (changes libstdc++ inline code), else 0 */
  int32_t glibcxx_debug;      /* 1 if _GLIBCXX_DEBUG was defined (changes std container layouts), else 0 */
} loft_build_fingerprint;

/* Returned by loft_plugin_describe(); `registrar` is a loft::Registrar* on the C++ side. The plugin owns the
 * descriptor (static storage, valid while the library is loaded); the host never writes to it. */
typedef struct loft_plugin_descriptor {
  uint32_t abi_version;  /* LOFT_SDK_ABI_VERSION, repeated so a descriptor can be checked alone */
  uint32_t struct_size;  /* sizeof(loft_plugin_descriptor) as the plugin saw it */
  const char* name;      /* "kind/name", must match the manifest */
  loft_build_fingerprint fingerprint;
  /* Registers the plugin's factories. Runs on the loading thread, once, before any factory; may block (file I/O)
   * but should be quick. Returns 0, or non-zero with a message in *error (static storage of the plugin). Must not
   * throw: LOFT_PLUGIN's trampoline catches every exception. */
  int32_t (*register_plugin)(void* registrar, const char** error);

  /* ---- end of ABI 2's first layout (LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE); optional fields follow ---- */

  /* The CUDA code the plugin carries, comma-separated: "sm_75,sm_90" (SASS), "compute_90" (PTX), "sm_90a" (arch
   * specific). Null or absent: the plugin declares nothing about architectures and is never refused for them
   * (a plugin without CUDA sources). loft_add_plugin fills it from the -gencode flags of plugins with .cu sources. */
  const char* cuda_architectures;
} loft_plugin_descriptor;

/* Size of the first layout of ABI version 2: everything up to and including register_plugin. */
#define LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE \
  (offsetof(loft_plugin_descriptor, register_plugin) + sizeof(((loft_plugin_descriptor*)0)->register_plugin))

/* Whether `field` lies entirely within the `struct_size` bytes a plugin declared for descriptor `d`. */
#define LOFT_DESCRIPTOR_HAS(d, field) \
  ((size_t)(d)->struct_size >= offsetof(loft_plugin_descriptor, field) + sizeof(((loft_plugin_descriptor*)0)->field))

/* The two symbols a plugin exports. loft_plugin_abi_version runs no other plugin code; neither throws nor blocks. */
typedef uint32_t (*loft_plugin_abi_version_fn)(void);
typedef const loft_plugin_descriptor* (*loft_plugin_describe_fn)(void);

#define LOFT_PLUGIN_ABI_SYMBOL "loft_plugin_abi_version"
#define LOFT_PLUGIN_DESCRIBE_SYMBOL "loft_plugin_describe"

#ifdef __cplusplus
}
#endif
