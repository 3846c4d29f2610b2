# The host's [quantizer] keys (skip lists, the quantized-weight cache), compiled into loft_framework. Included by
# framework/CMakeLists.txt after the loft_framework target exists.
target_sources(loft_framework PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src/quantizer_host.cpp)
