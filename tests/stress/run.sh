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

# The build directory must be configured with PSHM_TESTS=ON (the default).
cmake --build "$build" --target pshm_stress -j "$(nproc)"
prog="$build/tests/stress/pshm_stress"

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
