# File formats (safetensors reader/writer, sharded checkpoints, atomic file writes), compiled into loft_framework.
# Included by framework/CMakeLists.txt after the loft_framework target exists.
target_sources(loft_framework PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/src/formats/atomic_file.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/formats/safetensors.cpp
)
target_link_libraries(loft_framework PRIVATE nlohmann_json::nlohmann_json)
