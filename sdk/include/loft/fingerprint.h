// The build fingerprint of the translation unit that includes this header (host and plugins compute it alike).
#pragma once

#include <torch/headeronly/version.h>

#include "loft/abi.h"

#if defined(__has_include)
#if __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#endif
#endif

#ifdef CUDART_VERSION
#define LOFT_CUDA_RUNTIME_VERSION CUDART_VERSION
#else
#define LOFT_CUDA_RUNTIME_VERSION 0
#endif

#define LOFT_STRINGIFY_IMPL(x) #x
#define LOFT_STRINGIFY(x) LOFT_STRINGIFY_IMPL(x)

#if defined(__clang__)
#define LOFT_COMPILER_ID "clang " LOFT_STRINGIFY(__clang_major__) "." LOFT_STRINGIFY(__clang_minor__)
#elif defined(__GNUC__)
#define LOFT_COMPILER_ID "gcc " LOFT_STRINGIFY(__GNUC__) "." LOFT_STRINGIFY(__GNUC_MINOR__)
#else
#define LOFT_COMPILER_ID "unknown"
#endif

#ifndef _GLIBCXX_USE_CXX11_ABI
#define LOFT_CXX11_ABI_VALUE -1
#else
#define LOFT_CXX11_ABI_VALUE _GLIBCXX_USE_CXX11_ABI
#endif

#define LOFT_BUILD_FINGERPRINT \
  loft_build_fingerprint { LOFT_SDK_ABI_VERSION, TORCH_VERSION, LOFT_CUDA_RUNTIME_VERSION, LOFT_CXX11_ABI_VALUE, LOFT_COMPILER_ID }
