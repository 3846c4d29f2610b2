# Compiler launcher (ccache) and warnings shared by every loft target.
if(LOFT_USE_CCACHE)
  find_program(LOFT_CCACHE ccache)
  if(LOFT_CCACHE)
    # Precompiled headers need these sloppiness settings or ccache never hits.
    # BASEDIR + NOHASHDIR: a fresh clone in another folder (CI) hits the cache filled by earlier builds.
    set(_loft_launcher "${CMAKE_COMMAND};-E;env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;CCACHE_MAXSIZE=5G;CCACHE_BASEDIR=${CMAKE_SOURCE_DIR};CCACHE_NOHASHDIR=1;${LOFT_CCACHE}")
    set(CMAKE_C_COMPILER_LAUNCHER "${_loft_launcher}")
    set(CMAKE_CXX_COMPILER_LAUNCHER "${_loft_launcher}")
    set(CMAKE_CUDA_COMPILER_LAUNCHER "${_loft_launcher}")
    message(STATUS "loft: compiling through ${LOFT_CCACHE}")
  endif()
endif()

# Warnings for loft's own code; torch headers are included as system headers by find_package(Torch).
function(loft_target_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
endfunction()

# One precompiled <torch/torch.h> for test executables whose sources include it: parsing it costs ~12 s per
# translation unit otherwise. The anchor is itself an executable so the PCH is built with the same -fPIE setting as
# the executables that reuse it (GCC rejects a PCH built with other PIC flags).
function(loft_use_torch_pch target)
  if(NOT TARGET loft_torch_pch)
    file(WRITE "${CMAKE_BINARY_DIR}/loft_torch_pch.cpp" "// anchor for the precompiled torch header\nint main() { return 0; }\n")
    add_executable(loft_torch_pch "${CMAKE_BINARY_DIR}/loft_torch_pch.cpp")
    target_link_libraries(loft_torch_pch PRIVATE torch)
    loft_fmt_include_override(_loft_override)
    target_include_directories(loft_torch_pch BEFORE PRIVATE "${_loft_override}")
    target_precompile_headers(loft_torch_pch PRIVATE <torch/torch.h>)
    set_target_properties(loft_torch_pch PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/pch")
  endif()
  target_precompile_headers(${target} REUSE_FROM loft_torch_pch)
endfunction()

# Sanitizers for loft's own code (scripts/sanitize.sh: the CPU suite; scripts/fuzz.sh: libFuzzer targets), e.g.
# LOFT_SANITIZE=address,undefined. Torch and the CUDA code are not instrumented. vptr and function checks are off:
# plugins hide their symbols, so type identity across the plugin boundary is not what those checks expect.
set(LOFT_SANITIZE "" CACHE STRING "Comma-separated -fsanitize= list for loft's C/C++ code (empty: none)")
option(LOFT_FUZZ "Build tests/fuzz as libFuzzer binaries (clang only); loft's code gets coverage instrumentation" OFF)
if(LOFT_SANITIZE)
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=${LOFT_SANITIZE};-fno-sanitize=vptr;-fno-omit-frame-pointer;-fno-sanitize-recover=all>")
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize=function>")
  endif()
  add_link_options("-fsanitize=${LOFT_SANITIZE}")
  message(STATUS "loft: sanitizers ${LOFT_SANITIZE}")
endif()
if(LOFT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LOFT_FUZZ=ON needs clang (libFuzzer): configure with CC=clang CXX=clang++, or run scripts/fuzz.sh")
  endif()
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link>")
endif()
