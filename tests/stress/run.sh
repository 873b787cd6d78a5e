#!/usr/bin/env bash
# run.sh BUILD_DIR [--small] — build (if needed) and run the stress program,
# print its report; exit status is the program's.
#
# Sizes: PSHM_STRESS_PROCS, _OPS, _KILLS, _LANES, _DELAY_US, _SECONDS, _SEED
# (see stress.c). --small is the size CI runs: under a minute on 2 cores.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [--small]}
size=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
case "$build" in /*) ;; *) build="$root/$build" ;; esac

prog="$build/tests/stress/pshm_stress"
if [ ! -x "$prog" ] || [ -n "$(find "$here" -newer "$prog" -name '*.[ch]' 2>/dev/null)" ]; then
  if cmake --build "$build" --target help 2>/dev/null | grep -q pshm_stress; then
    cmake --build "$build" --target pshm_stress -j "$(nproc)"
  else
    # Not a target of this build (PSHM_TESTS=OFF): build it by hand.
    cmake --build "$build" --target pshm_static -j "$(nproc)"
    defs=()
    [ -f "$root/src/list.c" ] && defs+=(-DSTRESS_HAVE_LISTS=1)
    [ -f "$root/src/client.c" ] && defs+=(-DSTRESS_HAVE_MANAGER=1)
    if grep -q '^PSHM_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
      defs+=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    fi
    mkdir -p "$(dirname "$prog")"
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g "${defs[@]}" \
      -I"$root/include" "$here"/*.c "$build/libpshm.a" \
      $(pkg-config --libs libsodium) -lunistring -lpthread -lm -o "$prog"
  fi
fi

# Every block of the run carries this prefix, so cleanup is exact even if
# the program is killed by the time limit below.
export PSHM_STRESS_PREFIX="pshmstress_$$_"
seconds=${PSHM_STRESS_SECONDS:-$([ "$size" = --small ] && echo 45 || echo 240)}
export PSHM_STRESS_SECONDS=$seconds

cleanup() {
  local left
  left=$(find /dev/shm -maxdepth 1 -name "${PSHM_STRESS_PREFIX}*" 2>/dev/null | wc -l)
  if [ "$left" -gt 0 ]; then
    echo "run.sh: removing $left leftover blocks of the run" >&2
    find /dev/shm -maxdepth 1 -name "${PSHM_STRESS_PREFIX}*" -delete
  fi
}
trap cleanup EXIT

status=0
timeout --kill-after=10 $((seconds + 60)) "$prog" $size || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "run.sh: the stress program overran its time limit (${seconds} s + 60 s)" >&2
fi
exit "$status"
