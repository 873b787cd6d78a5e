#!/usr/bin/env bash
# A block that cannot fit in a full /dev/shm is refused at create (tmpfs
# reserves pages lazily: without the check the first write dies of SIGBUS).
# Runs in a private mount namespace with a 4 MiB tmpfs on /dev/shm, so the
# machine's own /dev/shm is never filled.
set -euo pipefail
pshm=${PSHM:?run through ctest}
if ! unshare -m true 2>/dev/null; then
  echo "unshare -m is not permitted here: nothing tested"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
unshare -m bash -euo pipefail -c '
  pshm=$1
  mount -t tmpfs -o size=4m tmpfs /dev/shm
  passed=0
  # 1 MiB free: a 2 MiB block is refused with a clear message.
  dd if=/dev/zero of=/dev/shm/filler bs=1M count=3 status=none
  if "$pshm" create --name big --size 2M 2>err; then echo "FAIL: 2 MiB fit in 1 MiB"; exit 1; fi
  grep -q "do not fit" err && [ ! -e /dev/shm/big ] && passed=$((passed + 1))
  # Full: still refused, not created for a later SIGBUS.
  dd if=/dev/zero of=/dev/shm/filler2 bs=1M count=1 status=none 2>/dev/null || true
  if "$pshm" create --name big --size 2M 2>err; then echo "FAIL: created on a full tmpfs"; exit 1; fi
  grep -q "do not fit" err && [ ! -e /dev/shm/big ] && passed=$((passed + 1))
  echo "$passed passed, $((2 - passed)) failed"
  [ "$passed" = 2 ]
' _ "$pshm"
