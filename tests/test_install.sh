#!/usr/bin/env bash
# `cmake --install` then use the result the two documented ways: a CMake
# project with find_package(pshm) (shared and static targets) and a plain
# compile with `pkg-config --cflags --libs pshm`. Each program must run.
# And the Python package, importable from where it was installed.
set -euo pipefail
src=${PSHM_SOURCE:?run through ctest}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake -S "$src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DPSHM_PYTHON_INSTALL_DIR="$prefix/python" -DPSHM_TESTS=OFF -DPSHM_BENCH=OFF >/dev/null
cmake --build "$work/build" -j "$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libpshm.so' | head -n 1)")
# The manual pages (one by a link to a shared page) and the bash completion.
for page in "1 pshm" "3 pshm_block_create" "3 pshm_block_attach" "7 pshm"; do
  MANPATH=$prefix/share/man MANPAGER=cat man $page | grep pshm >/dev/null  # not -q: SIGPIPE
done
test -f "$prefix/share/bash-completion/completions/pshm"

cmake -S "$src/tests/install" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/consumer/app" | grep -q '^made psm_'
"$work/consumer/app_static" | grep -q '^made psm_'

export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046
cc "$src/tests/install/app.c" $(pkg-config --cflags --libs pshm) -o "$work/app_pc"
LD_LIBRARY_PATH=$libdir "$work/app_pc" | grep -q '^made psm_'
(cd "$work" && PYTHONPATH="$prefix/python" python3 -c '
import pshm
s = pshm.SharedMemory(create=True, size=8, track=False)
s.buf[0] = 7
print("python: made", s.name, s.buf[0])
s.close()
s.unlink()' | grep -q '^python: made psm_.* 7$')
echo "install: find_package (shared, static), pkg-config and Python consumers ran"
echo "4 passed, 0 failed"
