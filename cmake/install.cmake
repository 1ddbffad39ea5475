# Install rules: headers, the static library libmcnn.a and a CMake package, so that another project
# writes find_package(ManualCNN CONFIG REQUIRED) and target_link_libraries(app PRIVATE mcnn::mcnn).
#   cmake --install build --prefix /opt/manualcnn
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(MCNN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ManualCNN)

install(TARGETS mcnn EXPORT ManualCNNTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY lib/include/mcnn DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
install(EXPORT ManualCNNTargets NAMESPACE mcnn:: DESTINATION ${MCNN_CMAKE_DIR})

# A static library leaves its private dependencies (Boost's compiled parts) to the consumer's link.
get_target_property(MCNN_LIBRARY_TYPE mcnn TYPE)
configure_package_config_file(cmake/ManualCNNConfig.cmake.in ${PROJECT_BINARY_DIR}/ManualCNNConfig.cmake
                              INSTALL_DESTINATION ${MCNN_CMAKE_DIR})
# 0.x: a minor version may change the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ManualCNNConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ManualCNNConfig.cmake ${PROJECT_BINARY_DIR}/ManualCNNConfigVersion.cmake
        DESTINATION ${MCNN_CMAKE_DIR})
