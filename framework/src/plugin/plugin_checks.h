// The loader's decisions as pure functions (no library loading, no device queries), so each one has a unit test:
// reading a size-versioned descriptor, comparing build fingerprints, and whether a plugin's CUDA code runs on a GPU.
#pragma once

#include <string>
#include <vector>

#include "loft/abi.h"
#include "loft/status.h"

namespace loft {

// The descriptor as this host reads it (the growth rule of loft/abi.h): `d`'s first struct_size bytes, at most
// sizeof(loft_plugin_descriptor), copied into a zeroed struct, so fields the plugin's layout lacks read as null.
// Errors (null descriptor, wrong abi_version, struct_size below LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE) say what is
// wrong with both values; the caller adds the plugin and file.
StatusOr<loft_plugin_descriptor> read_descriptor(const loft_plugin_descriptor* d);

// Every field where `plugin` differs from `host`, "; "-joined ("fmt major 10 vs host 9; ..."), or "" when they
// agree. CUDA runtime and compiler compare by major version. `kind` is the plugin's manifest kind: a dataset plugin
// may be built without torch (torch_version "none", then also CUDA runtime 0), since the dataset interface carries
// no torch or CUDA types; any other kind must match exactly.
std::string fingerprint_mismatch(const loft_build_fingerprint& host, const loft_build_fingerprint& plugin,
                                 const std::string& kind);

// One entry of a descriptor's cuda_architectures: "sm_86" (SASS), "compute_90" (PTX), with an optional "a"
// (architecture-specific: that exact GPU only) or "f" (family: same major) suffix.
struct CudaCode {
  std::string text;  // as declared, e.g. "sm_75"
  int major = 0;
  int minor = 0;
  bool ptx = false;            // compute_XY
  bool arch_specific = false;  // ...a
  bool family = false;         // ...f
};

// Parses a comma-separated list ("sm_75,sm_90,compute_90"). An empty or malformed list is an error naming the entry.
StatusOr<std::vector<CudaCode>> parse_cuda_architectures(const std::string& list);

// Whether `code` runs on a GPU of compute capability major.minor:
//   SASS sm_XY runs on major X with minor >= Y (cubins are forward compatible within one major only);
//   PTX compute_XY is JIT-compiled by the driver for any GPU at or above X.Y;
//   an "a" suffix (sm_90a, compute_90a) runs on exactly X.Y;
//   an "f" suffix (sm_100f, compute_100f) runs on major X with minor >= Y, for PTX too.
bool cuda_code_runs_on(const CudaCode& code, int major, int minor);

// "" when some entry of `codes` runs on the GPU, else "built for sm_75, sm_90; this GPU is sm_80".
std::string cuda_architecture_refusal(const std::vector<CudaCode>& codes, int major, int minor);

}  // namespace loft
