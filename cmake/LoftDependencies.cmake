# Every third-party dependency, found with find_package. LibTorch comes from the torch==2.11.0 wheel that
# scripts/setup.sh installs once into /opt/loft/venv (outside the checkout, so fresh clones reuse it).
set(LOFT_PYTHON "/opt/loft/venv/bin/python" CACHE FILEPATH "Python with torch 2.11 (LibTorch) and the reference stack")
if(NOT Torch_DIR AND EXISTS "${LOFT_PYTHON}")
  execute_process(COMMAND "${LOFT_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _loft_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _loft_rc)
  if(_loft_rc EQUAL 0)
    list(APPEND CMAKE_PREFIX_PATH "${_loft_torch_prefix}")
  endif()
endif()

find_package(CUDAToolkit REQUIRED)
find_package(Torch 2.11 REQUIRED)
# TORCH_CXX_FLAGS (the libstdc++ ABI) reach every target that links torch through its INTERFACE_COMPILE_OPTIONS;
# nothing is set globally.

find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(tomlplusplus 3 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(PCRE2 REQUIRED)
find_package(utf8proc REQUIRED)
find_package(xxhash REQUIRED)
find_package(Threads REQUIRED)
if(LOFT_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(LOFT_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
