// The build fingerprint of the translation unit that includes this header (host and plugins compute it alike).
// Includable without torch and without CUDA headers: a torch-free plugin (a dataset) declares torch "none" and
// CUDA runtime 0. Only macros and constants; nothing here throws, blocks or allocates.
#pragma once

// Any libstdc++ header first, so <bits/c++config.h> has applied its rules (_GLIBCXX_DEBUG implies
// _GLIBCXX_ASSERTIONS) before the checks below read them.
#include <cstddef>

#include "loft/abi.h"

#if defined(__has_include)
#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#endif
#if __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#endif
#if __has_include(<fmt/core.h>)
#include <fmt/core.h>
#endif
#endif

// The torch_version of a plugin built without torch headers.
#define LOFT_TORCH_VERSION_NONE "none"

#ifdef TORCH_VERSION
#define LOFT_TORCH_VERSION TORCH_VERSION
#else
#define LOFT_TORCH_VERSION LOFT_TORCH_VERSION_NONE
#endif

#ifdef CUDART_VERSION
#define LOFT_CUDA_RUNTIME_VERSION CUDART_VERSION
#else
#define LOFT_CUDA_RUNTIME_VERSION 0
#endif

#ifdef FMT_VERSION
#define LOFT_FMT_MAJOR (FMT_VERSION / 10000)
#else
#define LOFT_FMT_MAJOR 0
#endif

#ifdef _GLIBCXX_ASSERTIONS
#define LOFT_GLIBCXX_ASSERTIONS 1
#else
#define LOFT_GLIBCXX_ASSERTIONS 0
#endif

#ifdef _GLIBCXX_DEBUG
#define LOFT_GLIBCXX_DEBUG 1
#else
#define LOFT_GLIBCXX_DEBUG 0
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

// The CUDA architectures of the plugin's device code, as loft_add_plugin passes them (LOFT_PLUGIN_CUDA_ARCHS, a
// string such as "sm_75,sm_90") for plugins with .cu sources; null for plugins without CUDA code.
#ifdef LOFT_PLUGIN_CUDA_ARCHS
#define LOFT_BUILD_CUDA_ARCHITECTURES LOFT_PLUGIN_CUDA_ARCHS
#else
#define LOFT_BUILD_CUDA_ARCHITECTURES nullptr
#endif

#define LOFT_BUILD_FINGERPRINT                                                                                  \
  loft_build_fingerprint {                                                                                      \
    LOFT_SDK_ABI_VERSION, LOFT_TORCH_VERSION, LOFT_CUDA_RUNTIME_VERSION, LOFT_CXX11_ABI_VALUE, LOFT_COMPILER_ID, \
        LOFT_FMT_MAJOR, LOFT_GLIBCXX_ASSERTIONS, LOFT_GLIBCXX_DEBUG                                             \
  }
