# Debian packages (`make deb`, CPack's DEB generator), one per component:
#   libpshm0     runtime: the shared library with its SONAME
#   libpshm-dev  dev: header, static library, .so link, pkg-config file,
#                CMake package, section 3 and 7 pages
#   pshm         tools: the CLI, its page and its bash completion
# Dependencies on other Debian packages are computed by dpkg-shlibdeps from
# the binaries; only the -dev package's build-time needs are named here.
set(PSHM_DEB_DOC_FILES
  ${PROJECT_BINARY_DIR}/packaging/copyright
  ${PROJECT_BINARY_DIR}/packaging/changelog.Debian.gz)
configure_file(${PROJECT_SOURCE_DIR}/packaging/copyright
  ${PROJECT_BINARY_DIR}/packaging/copyright COPYONLY)
configure_file(${PROJECT_SOURCE_DIR}/packaging/changelog.Debian.in
  ${PROJECT_BINARY_DIR}/packaging/changelog.Debian @ONLY)
execute_process(COMMAND ${GZIP_EXECUTABLE} -9nc ${PROJECT_BINARY_DIR}/packaging/changelog.Debian
  OUTPUT_FILE ${PROJECT_BINARY_DIR}/packaging/changelog.Debian.gz COMMAND_ERROR_IS_FATAL ANY)
foreach(pair "runtime;libpshm0" "dev;libpshm-dev" "tools;pshm")
  list(GET pair 0 component)
  list(GET pair 1 package)
  install(FILES ${PSHM_DEB_DOC_FILES} DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${package}
    COMPONENT ${component} EXCLUDE_FROM_ALL)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tools)
set(CPACK_PACKAGE_NAME pshm)
set(CPACK_PACKAGE_VENDOR "pshm")
set(CPACK_PACKAGE_CONTACT "pshm maintainers <maintainers@users.noreply.r-seed-ccaa68c9.example>")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)

# Each description: the synopsis line, then paragraphs (CPack indents them
# and turns empty lines into Debian's " .").
set(PSHM_DEB_LONG "pshm is a C library and command-line tool for named POSIX shared memory\nblocks: a C implementation of Python's multiprocessing.shared_memory, with\na resource tracker, a manager server and lists laid out byte for byte as\nCPython's ShareableList.")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libpshm0)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
# A shlibs file (libpshm 0 libpshm0 (>= VERSION)), for the packages built
# against this one, and the ldconfig trigger Debian wants. (CPack also puts
# ldconfig calls in postinst and postrm, redundant with the trigger but
# harmless; lintian warns maintscript-calls-ldconfig.)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
file(WRITE ${PROJECT_BINARY_DIR}/packaging/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/packaging/triggers)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "named POSIX shared memory blocks - runtime library\n${PSHM_DEB_LONG}\n\nThis package holds the shared library.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpshm-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libpshm0 (= ${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}), libsodium-dev, libunistring-dev, pkgconf | pkg-config")
set(CPACK_COMPONENT_DEV_DESCRIPTION "named POSIX shared memory blocks - development files\n${PSHM_DEB_LONG}\n\nThis package holds the header, the static library, the pkg-config file,\nthe CMake package and the manual pages of the C API.")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME pshm)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION "named POSIX shared memory blocks - command-line tool\n${PSHM_DEB_LONG}\n\nThis package holds the pshm command, which creates, inspects, reads,\nwrites and removes blocks and lists and runs or talks to a manager.")
include(CPack)
