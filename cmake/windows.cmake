# The Windows build (make windows): pshm.dll with its import library
# libpshm.dll.a, the static library libpshm.a, and pshm.exe; the Windows
# tests (make windows-test) run under Wine through ctest. Included from
# CMakeLists.txt when the toolchain is cmake/mingw-w64.cmake.
#
# The shared files (src/os.h names them) plus the Windows side of the
# platform split, src/win/. No libsodium, libunistring or Criterion: CNG
# (bcrypt) and src/win/os.c stand in for the first two, plain test programs
# for the third.
set(PSHM_SOURCES
  src/block_common.c src/client.c src/errors.c src/list.c src/lock_common.c src/owned.c
  src/protocol.c src/values.c
  src/win/block.c src/win/lock.c src/win/manager.c src/win/os.c src/win/server.c)

add_compile_options(-Wall -Wextra -Werror
  -D__USE_MINGW_ANSI_STDIO=1    # C99 printf: %zu, %lld, %a as on Linux
  -D_WIN32_WINNT=0x0601)        # Windows 7: inet_pton, GetStringTypeW flags
# No DLLs beyond the system's: the C runtime's helpers and winpthreads are
# linked in, so pshm.dll and the .exe files run from anywhere (and Wine
# needs no search path).
add_link_options(-static -static-libgcc)
set(PSHM_LINK_DEPS bcrypt ws2_32 -Wl,-Bstatic pthread)

# Every .exe next to pshm.dll, where Windows looks for it.
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})

# The DLL's objects mark the API __declspec(dllexport) (PSHM_BUILDING), so
# it exports exactly that; the static library's objects do not, or every
# program linking it would export the API too (and CMake would write that
# program's import library over the DLL's).
add_library(pshm_objects OBJECT ${PSHM_SOURCES})
target_compile_definitions(pshm_objects PRIVATE PSHM_BUILDING)
add_library(pshm_static_objects OBJECT ${PSHM_SOURCES})
foreach(objects pshm_objects pshm_static_objects)
  target_include_directories(${objects} PUBLIC ${PROJECT_SOURCE_DIR}/include
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
endforeach()

add_library(pshm SHARED $<TARGET_OBJECTS:pshm_objects>)
target_include_directories(pshm PUBLIC ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(pshm PRIVATE ${PSHM_LINK_DEPS})
# pshm.dll (not libpshm.dll), with the import library libpshm.dll.a.
set_target_properties(pshm PROPERTIES PREFIX "")

add_library(pshm_static STATIC $<TARGET_OBJECTS:pshm_static_objects>)
target_include_directories(pshm_static PUBLIC ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(pshm_static PUBLIC ${PSHM_LINK_DEPS})
set_target_properties(pshm_static PROPERTIES OUTPUT_NAME pshm)

add_executable(pshm_cli tools/pshm.c)
target_link_libraries(pshm_cli PRIVATE pshm_static bcrypt)
set_target_properties(pshm_cli PROPERTIES OUTPUT_NAME pshm)

if(PSHM_TESTS)
  # Tests run under Wine, in a prefix of this build's own (made once by
  # `make windows-test`, which gives Wine's first start its time).
  find_program(PSHM_WINE64 wine64 PATHS /usr/lib/wine REQUIRED)
  set(PSHM_WINEPREFIX ${PROJECT_BINARY_DIR}/wineprefix)
  set(PSHM_WINE env WINEPREFIX=${PSHM_WINEPREFIX} WINEDEBUG=-all ${PSHM_WINE64})
  string(REPLACE ";" " " PSHM_WINE "${PSHM_WINE}")
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PSHM_WINE64})
  enable_testing()
  add_subdirectory(tests/win)
endif()
