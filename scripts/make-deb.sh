#!/usr/bin/env bash
# make-deb.sh [BUILD]: build the Debian packages libpshm0, libpshm-dev and
# pshm (cmake/packaging.cmake) in their own build directory (default
# build-deb), with Debian's compiler and linker flags (dpkg-buildflags:
# every hardening option, -O2 -g). The .deb files end up in BUILD/.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-deb}
jobs=${JOBS:-$(nproc)}
rm -f "$build"/*.deb
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
# PSHM_PYTHON=OFF: the packages hold no Python module (an option of the
# Python package's branch; unused options are fine).
# CMAKE_BUILD_TYPE=None: only the flags dpkg-buildflags gives, as Debian
# builds every CMake package; given on the command line, so a reused build
# directory gets them too.
ldflags=$(dpkg-buildflags --get LDFLAGS)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX=/usr \
      -DCMAKE_C_FLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)" \
      -DCMAKE_EXE_LINKER_FLAGS="$ldflags" -DCMAKE_SHARED_LINKER_FLAGS="$ldflags" \
      -DPSHM_TESTS=OFF -DPSHM_BENCH=OFF -DPSHM_PYTHON=OFF --no-warn-unused-cli >/dev/null
cmake --build "$build" -j "$jobs" >/dev/null
(cd "$build" && cpack -G DEB >/dev/null)
ls "$build"/*.deb
