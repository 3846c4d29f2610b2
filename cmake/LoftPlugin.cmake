# loft_add_plugin(<target> MANIFEST <plugin.toml> SOURCES <...> [OUTPUT_DIR <dir>] [LINK <libs...>] [TORCH_FREE])
#
# Builds a loft plugin: a MODULE library with hidden visibility and no undefined symbols, linked to the SDK and
# LibTorch, with its plugin.toml copied beside the .so. TORCH_FREE (dataset plugins): linked to the torch-free
# libloft_sdk_core only, compiled without any torch or CUDA header (its fingerprint says torch "none"). The
# manifest's `library` key names the file (lib<target>.so). Installed with the SDK as part of the `loft` CMake package, so out-of-tree plugins use it too.
#
# A plugin with CUDA sources (.cu in SOURCES) declares the architectures its device code was built for (the
# descriptor's cuda_architectures, see loft/abi.h): the host refuses it at load on a GPU it has no code for. The
# list comes from the -gencode flags torch's CMake put in CMAKE_CUDA_FLAGS (from TORCH_CUDA_ARCH_LIST), and is
# passed to the C++ sources as LOFT_PLUGIN_CUDA_ARCHS, so LOFT_PLUGIN(...) must be in a .cpp file. A plugin without
# CUDA sources declares none and is never refused for architectures.
function(loft_add_plugin target)
  cmake_parse_arguments(ARG "TORCH_FREE" "MANIFEST;OUTPUT_DIR" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_TORCH_FREE AND LOFT_SDK_CORE_ONLY)
    message(FATAL_ERROR "loft_add_plugin(${target}): the loft package was found with COMPONENTS core (no LibTorch); "
                        "pass TORCH_FREE (dataset plugins) or find_package(loft) without components")
  endif()
  if(NOT ARG_MANIFEST OR NOT ARG_SOURCES)
    message(FATAL_ERROR "loft_add_plugin(${target}): MANIFEST and SOURCES are required")
  endif()
  get_filename_component(_manifest "${ARG_MANIFEST}" ABSOLUTE)
  file(READ "${_manifest}" _text)
  string(REGEX MATCH "(^|\n)kind *= *\"([a-z0-9_]+)\"" _ "${_text}")
  set(_kind "${CMAKE_MATCH_2}")
  string(REGEX MATCH "(^|\n)name *= *\"([a-z0-9_]+)\"" _ "${_text}")
  set(_name "${CMAKE_MATCH_2}")
  if(NOT _kind OR NOT _name)
    message(FATAL_ERROR "loft_add_plugin(${target}): ${_manifest} needs top-level `kind` and `name`")
  endif()
  if(ARG_TORCH_FREE AND NOT _kind STREQUAL "dataset")
    message(FATAL_ERROR "loft_add_plugin(${target}): TORCH_FREE is for dataset plugins; a ${_kind} plugin's "
                        "interface carries tensors")
  endif()
  if(ARG_OUTPUT_DIR)
    set(_dir "${ARG_OUTPUT_DIR}/${_kind}/${_name}")
  elseif(DEFINED LOFT_PLUGIN_OUTPUT_DIR)
    set(_dir "${LOFT_PLUGIN_OUTPUT_DIR}/${_kind}/${_name}")
  else()
    set(_dir "${CMAKE_CURRENT_BINARY_DIR}/plugin/${_kind}/${_name}")
  endif()

  add_library(${target} MODULE ${ARG_SOURCES})
  loft_fmt_include_override(_override)
  target_include_directories(${target} BEFORE PRIVATE "${_override}")
  if(ARG_TORCH_FREE)
    if(TARGET loft_sdk_core)
      target_link_libraries(${target} PRIVATE loft_sdk_core ${ARG_LINK})
    else()
      target_link_libraries(${target} PRIVATE loft::sdk_core ${ARG_LINK})
    endif()
  elseif(TARGET loft_sdk)
    target_link_libraries(${target} PRIVATE loft_sdk torch ${ARG_LINK})
  else()
    target_link_libraries(${target} PRIVATE loft::sdk torch ${ARG_LINK})
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX "lib" OUTPUT_NAME "${target}"
    LIBRARY_OUTPUT_DIRECTORY "${_dir}"
    CXX_VISIBILITY_PRESET hidden CUDA_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  target_link_options(${target} PRIVATE "LINKER:-z,defs")
  set(_cuda_sources "${ARG_SOURCES}")
  list(FILTER _cuda_sources INCLUDE REGEX "\\.cu$")
  if(_cuda_sources)
    loft_plugin_cuda_architectures(_archs)
    if(_archs)
      # C++ only: nvcc would split the comma-separated value of a -D into several definitions.
      string(REPLACE "," "$<COMMA>" _archs_genex "${_archs}")
      target_compile_definitions(${target} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:LOFT_PLUGIN_CUDA_ARCHS=\"${_archs_genex}\">")
    else()
      message(WARNING "loft_add_plugin(${target}): has CUDA sources but neither CMAKE_CUDA_FLAGS (-gencode) nor "
                      "TORCH_CUDA_ARCH_LIST (X.Y[+PTX];...) name an architecture; the plugin declares none, so the "
                      "host cannot refuse it on a GPU it has no code for")
    endif()
  endif()
  if(COMMAND loft_target_warnings)
    loft_target_warnings(${target})
  endif()
  # The manifest travels beside the library; `library` in it must name this file.
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -E copy_if_different "${_manifest}" "${_dir}/plugin.toml"
    COMMENT "loft plugin ${_kind}/${_name}")
  set_property(TARGET ${target} PROPERTY LOFT_PLUGIN_DIR "${_dir}")
endfunction()

# The CUDA code nvcc emits for this directory's .cu files, as a comma-separated list for the plugin descriptor:
# "sm_75,sm_90" (SASS) and "compute_90" (PTX), read from the code= part of every -gencode/--generate-code flag in
# CMAKE_CUDA_FLAGS and CMAKE_CUDA_FLAGS_<CONFIG> (where torch's CMake puts TORCH_CUDA_ARCH_LIST), or, when those
# have none, converted from TORCH_CUDA_ARCH_LIST ("7.5;8.6+PTX;9.0a"). Empty when neither names one.
function(loft_plugin_cuda_architectures out_var)
  set(_flags "${CMAKE_CUDA_FLAGS}")
  if(CMAKE_BUILD_TYPE)
    string(TOUPPER "${CMAKE_BUILD_TYPE}" _config)
    string(APPEND _flags " ${CMAKE_CUDA_FLAGS_${_config}}")
  endif()
  set(_archs "")
  string(REGEX MATCHALL "code=\\[?[a-z0-9_,]+\\]?" _codes "${_flags}")
  foreach(_code ${_codes})
    string(REGEX REPLACE "^code=\\[?([a-z0-9_,]+)\\]?$" "\\1" _code "${_code}")
    string(REPLACE "," ";" _code "${_code}")
    list(APPEND _archs ${_code})
  endforeach()
  if(NOT _archs)
    set(_list "${TORCH_CUDA_ARCH_LIST}")
    if(NOT _list AND DEFINED ENV{TORCH_CUDA_ARCH_LIST})
      set(_list "$ENV{TORCH_CUDA_ARCH_LIST}")
    endif()
    string(REPLACE " " ";" _list "${_list}")
    foreach(_entry ${_list})
      if(_entry MATCHES "^([0-9]+)\\.([0-9])([af]?)(\\+PTX)?$")
        list(APPEND _archs "sm_${CMAKE_MATCH_1}${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
        if(CMAKE_MATCH_4)
          list(APPEND _archs "compute_${CMAKE_MATCH_1}${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
        endif()
      elseif(_entry)
        message(WARNING "loft: TORCH_CUDA_ARCH_LIST entry '${_entry}' is not X.Y[+PTX]; plugins do not declare it")
      endif()
    endforeach()
  endif()
  list(REMOVE_DUPLICATES _archs)
  string(REPLACE ";" "," _archs "${_archs}")
  set(${out_var} "${_archs}" PARENT_SCOPE)
endfunction()

# LibTorch ships its own fmt (v12) headers in its include folder, which would shadow the system fmt that spdlog and
# libfmt.so were built with. A folder of links to the system fmt and spdlog headers, put first on the include path,
# makes every loft target (and every plugin) see one fmt. Returns the folder in `out_var`.
function(loft_fmt_include_override out_var)
  set(_dir "${CMAKE_BINARY_DIR}/loft-include-override")
  foreach(_lib fmt spdlog)
    if(NOT EXISTS "${_dir}/${_lib}")
      find_path(_loft_${_lib}_root NAMES ${_lib}/format.h ${_lib}/spdlog.h PATHS /usr/include /usr/local/include NO_DEFAULT_PATH)
      if(_loft_${_lib}_root)
        file(MAKE_DIRECTORY "${_dir}")
        file(CREATE_LINK "${_loft_${_lib}_root}/${_lib}" "${_dir}/${_lib}" SYMBOLIC)
      endif()
    endif()
  endforeach()
  set(${out_var} "${_dir}" PARENT_SCOPE)
endfunction()
