# The Qwen2 model (config, layers, KV-cache generation), compiled into loft_framework. Included by
# framework/CMakeLists.txt after the loft_framework target exists (which links torch, loft_sdk, nlohmann_json).
target_sources(loft_framework PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/src/model/qwen2_config.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/model/qwen2_model.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/model/attention.cpp
  ${CMAKE_CURRENT_LIST_DIR}/src/model/generation.cpp
)
