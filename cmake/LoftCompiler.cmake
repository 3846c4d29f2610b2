# Compiler launcher (ccache) and warnings shared by every loft target.
if(LOFT_USE_CCACHE)
  find_program(LOFT_CCACHE ccache)
  if(LOFT_CCACHE)
    # Precompiled headers need these sloppiness settings or ccache never hits.
    set(_loft_launcher "${CMAKE_COMMAND};-E;env;CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime;CCACHE_MAXSIZE=5G;${LOFT_CCACHE}")
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
