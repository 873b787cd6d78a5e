#!/usr/bin/env bash
# A full /dev/shm is a clean error, never a SIGBUS, and leaves nothing
# half-made: create refuses a block that cannot fit; lists, the manager's
# blocks and lists, `pshm write` and PSHM_POPULATE reserve their pages
# first; `pshm read` reads never-written pages without needing new ones.
# Runs in a private mount namespace with a 4 MiB tmpfs on /dev/shm (a
# 64 MiB Docker /dev/shm, scaled down), so the machine's own /dev/shm is
# never filled. The C API's side is the helper full_shm (same namespace).
set -euo pipefail
pshm=${PSHM:?run through ctest}
helper=${PSHM_HELPER_full_shm:?run through ctest}
if ! unshare -m true 2>/dev/null; then
  echo "unshare -m is not permitted here: nothing tested"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi
unshare -m bash -uo pipefail -c '
  pshm=$1 helper=$2
  mount -t tmpfs -o size=4m tmpfs /dev/shm
  work=$(mktemp -d) && cd "$work" && trap "rm -rf \"$work\"" EXIT
  passed=0 failed=0
  result() { # result OK DESCRIPTION
    if [ "$1" = 0 ]; then echo "ok   $2"; passed=$((passed + 1))
    else echo "FAIL $2"; sed "s/^/     stderr: /" err; failed=$((failed + 1)); fi
  }
  shm_free() { echo $(( $(stat -f -c "%a * %S" /dev/shm) )); }
  # Fill /dev/shm until about $1 bytes are free (0: none).
  fill_leaving() {
    local room; room=$(shm_free)
    [ "$room" -le "$1" ] || fallocate -l $((room - $1)) /dev/shm/filler
    [ "$1" != 0 ] || dd if=/dev/zero of=/dev/shm/filler2 bs=4k status=none 2>/dev/null || true
  }
  unfill() { rm -f /dev/shm/filler /dev/shm/filler2; }
  big_str="'\''$(head -c 100000 /dev/zero | tr "\0" x)'\''"

  # 1 MiB free: a 2 MiB block is refused with a clear message.
  fill_leaving $((1024 * 1024))
  "$pshm" create --name big --size 2M 2>err; rc=$?
  [ $rc = 1 ] && grep -q "do not fit" err && [ ! -e /dev/shm/big ]
  result $? "create of 2 MiB with 1 MiB free: refused"
  # Full: still refused, not created for a later SIGBUS.
  unfill; fill_leaving 0
  "$pshm" create --name big --size 2M 2>err; rc=$?
  [ $rc = 1 ] && grep -q "do not fit" err && [ ! -e /dev/shm/big ]
  result $? "create of 2 MiB on a full tmpfs: refused"
  unfill

  # pshm list new, named or not, on a full tmpfs: exit 1, no space, nothing left.
  fill_leaving $((60 * 1024))
  before=$(ls /dev/shm)
  "$pshm" list new --name full_list "$big_str" >out 2>err; rc=$?
  [ $rc = 1 ] && grep -q "full_list.*no space left in /dev/shm" err && [ "$(ls /dev/shm)" = "$before" ]
  result $? "list new --name of a 100 kB str with 60 KiB free: exit 1, no space, nothing left"
  "$pshm" list new "$big_str" >out 2>err; rc=$?
  [ $rc = 1 ] && grep -q "no space left in /dev/shm" err && [ "$(ls /dev/shm)" = "$before" ]
  result $? "list new of the same, random name: the same"
  unfill

  # pshm write into the second of two 3 MiB blocks (each passed the check).
  "$pshm" create --name w1 --size 3M >/dev/null && "$pshm" create --name w2 --size 3M >/dev/null
  head -c 3M /dev/urandom >data
  "$pshm" write w1 <data 2>err
  result $? "write 3 MiB into the first 3 MiB block"
  "$pshm" write w2 <data 2>err; rc=$?
  [ $rc = 1 ] && grep -q "w2.*no space left in /dev/shm.*nothing written" err
  result $? "write 3 MiB into the second: exit 1, no space, nothing written"

  # Reading never-written pages on a full tmpfs: zeros, not EFAULT.
  fill_leaving 0
  "$pshm" read w2 2>err | cmp -s - <(head -c 3M /dev/zero); rc=$?
  [ $rc = 0 ] && ! grep -q "Bad address" err
  result $? "read of a never-written 3 MiB block on a full tmpfs: zeros"
  "$pshm" read w1 2>err | cmp -s - data
  result $? "read of the written block on a full tmpfs: its bytes"
  unfill
  "$pshm" rm w1 w2

  # A size error names no block the user never saw; nothing is made.
  before=$(ls /dev/shm)
  "$pshm" create --size 0 >out 2>err; rc=$?
  [ $rc = 1 ] && [ "$(cat err)" = "pshm: create (random name): size must be greater than 0" ] &&
    [ "$(ls /dev/shm)" = "$before" ]
  result $? "create --size 0: names no random block, makes nothing"

  # The C API, the manager included.
  "$helper" check 2>err
  result $? "full_shm check (C API and manager)"
  [ -z "$(ls /dev/shm)" ]
  result $? "nothing is left in /dev/shm"

  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
' _ "$pshm" "$helper"
