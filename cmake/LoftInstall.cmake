# Installs the SDK as the CMake package `loft`: headers, libloft_sdk, and loft_add_plugin(), so an out-of-tree plugin
# builds with find_package(loft) exactly as in-tree ones do.
include(CMakePackageConfigHelpers)
install(TARGETS loft_sdk_core loft_sdk EXPORT loftTargets LIBRARY DESTINATION lib ARCHIVE DESTINATION lib)
install(DIRECTORY sdk/include/loft DESTINATION include)
install(EXPORT loftTargets NAMESPACE loft:: DESTINATION lib/cmake/loft)
configure_package_config_file(cmake/loftConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/loftConfig.cmake
                              INSTALL_DESTINATION lib/cmake/loft)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/loftConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/loftConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/loftConfigVersion.cmake
              cmake/LoftPlugin.cmake DESTINATION lib/cmake/loft)
