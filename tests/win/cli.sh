#!/usr/bin/env bash
# cli.sh — pshm.exe under Wine: the commands that make sense on Windows
# (pshm lock among them), and a clear refusal from the one that does not
# (ls). $WINE runs a
# Windows program (wine64 with the build's private prefix), $PSHM_EXE is
# pshm.exe.
set -uo pipefail
fails=0
check() { # check DESCRIPTION WANT GOT
  if [ "$2" != "$3" ]; then
    printf 'FAIL %s:\n  want: %s\n  got:  %s\n' "$1" "$2" "$3"; fails=$((fails + 1))
  fi
}
pshm() { $WINE "$PSHM_EXE" "$@" 2>&1 | tr -d '\r'; return "${PIPESTATUS[0]}"; }

check version "pshm $(sed -n 's/^#define PSHM_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' \
  "$PSHM_SOURCE/include/pshm.h" | paste -sd.)" "$(pshm --version)"

out=$(pshm create --size 100); rc=$?
check "create without --hold refuses: the block would die with pshm" "1 pshm: create: on Windows a block lives only while a process has it open, so without --hold it would be gone when pshm exits; use --hold" "$rc $out"

out=$(pshm list new 1 2); rc=$?
check "list new refuses likewise" "1 pshm: list new: on Windows a list lives only while a process has it open, and pshm cannot hold one; make it from a program that keeps it" "$rc $out"

out=$(pshm create --size 100 --hold </dev/null); rc=$?
check "create --hold: a random name as CPython's" "0 ok" "$rc $([[ $out =~ ^psm_[0-9a-f]{8}$ ]] && echo ok || echo "$out")"

out=$(pshm ls); rc=$?
check "ls refuses clearly" "1 pshm: list blocks: Windows cannot list named file mappings (there is no directory of them to read)" "$rc $out"

out=$(pshm info pshm_wincli_nosuch); rc=$?
check "info of a missing block" "1 pshm: stat \"pshm_wincli_nosuch\": OpenFileMappingW: no such shared memory block" "$rc $out"

out=$(pshm create --name 'a/b' --size 10 --hold </dev/null); rc=$?
check "create with a bad name" "1 pshm: create \"a/b\": block name may not contain '/' (except one leading)" "$rc $out"

out=$(pshm rm pshm_wincli_any); rc=$?
check "rm succeeds and does nothing" "0 " "$rc $out"

# A held block, then info, write and read on it from other processes; the
# holder reads stdin until EOF, which closing fd 3 gives it.
name=pshm_wincli_$$
coproc HOLD { $WINE "$PSHM_EXE" create --name "$name" --size 5000 --hold; }
read -r -t 60 line <&"${HOLD[0]}"
check "create --hold prints the name" "$name" "${line%$'\r'}"
out=$(pshm info "$name" | head -2 | tr '\n' ' ')
check "info on Windows (size in whole pages)" "name:  $name size:  8192 " "$out"
printf 'hello\r\nworld' | pshm write "$name"
check "write then read: bytes as given (no CR LF translation)" \
  "68656c6c6f0d0a776f726c6400" "$($WINE "$PSHM_EXE" read "$name" --length 13 | od -An -tx1 | tr -d ' \n')"
exec {HOLD[1]}>&-
wait "$HOLD_PID"
out=$(pshm info "$name"); rc=$?
check "gone once the holder exits" "1 pshm: stat \"$name\": OpenFileMappingW: no such shared memory block" "$rc $out"

# pshm lock: the command's status; a second exclusive holder times out
# (status 1); shared holders share. The inner pshm is a Windows path.
lock=pshm_wincli_lock_$$
winexe="Z:$(printf '%s' "$PSHM_EXE" | tr / '\\')"
out=$(pshm lock "$lock" -- cmd /c exit 3); rc=$?
check "lock runs the command and gives its status" "3 " "$rc $out"
out=$(pshm lock "$lock" -- "$winexe" lock "$lock" --timeout 0.3 -- cmd /c exit 0); rc=$?
check "a second exclusive holder times out" \
  "1 pshm: rwlock wrlock \"$lock\" at offset 0: the lock was not acquired within the timeout" \
  "$rc $out"
out=$(pshm lock "$lock" --shared -- "$winexe" lock "$lock" --shared --timeout 0.3 -- cmd /c exit 5); rc=$?
check "shared holders share" "5 " "$rc $out"

# The manager from the CLI: `manager serve` on a pipe with a key file, then
# block, ls, release, a wrong key and shutdown from other pshm processes.
# Relative paths: Wine maps the working directory, not absolute Unix paths.
work=$(mktemp -d)
cd "$work" || exit 1
printf 'cli key' >key
printf 'not the key' >badkey
addr=pipe:pshm-wincli-$$
coproc SERVE { $WINE "$PSHM_EXE" manager serve --address "$addr" --authkey-file key 2>&1; }
serve_pid=$SERVE_PID # bash unsets SERVE_PID once it has reaped the coproc
read -r -t 60 line <&"${SERVE[0]}"
check "manager serve prints its address" "$addr" "${line%$'\r'}"
mgr() { pshm manager --address "$addr" --authkey-file key "$@"; }
blk=$(mgr block --size 100); rc=$?
check "manager block prints a name" "0 ok" "$rc $([[ $blk =~ ^psm_[0-9a-f]{8}$ ]] && echo ok || echo "$blk")"
out=$(pshm info "$blk" | head -1)
check "the server holds the block after pshm exits" "name:  $blk" "$out"
check "manager ls" "$blk" "$(mgr ls)"
out=$(pshm manager --address "$addr" --authkey-file badkey ls); rc=$?
check "a wrong key is refused" "1 refused" "$rc $([[ $out == *"authentication failed"* ]] && echo refused || echo "$out")"
out=$(mgr release "$blk"); rc=$?
check "manager release" "0 " "$rc $out"
out=$(pshm info "$blk"); rc=$?
check "released: gone" "1 pshm: stat \"$blk\": OpenFileMappingW: no such shared memory block" "$rc $out"
blk=$(mgr block --size 100)
out=$(mgr shutdown); rc=$?
check "manager shutdown" "0 " "$rc $out"
wait "$serve_pid"
check "serve exits 0 after shutdown" "0" "$?"
out=$(pshm info "$blk"); rc=$?
check "shutdown frees what the server held" "1 pshm: stat \"$blk\": OpenFileMappingW: no such shared memory block" "$rc $out"
cd / && rm -rf "$work"

[ "$fails" -eq 0 ] && echo "cli.sh: all passed" || echo "cli.sh: $fails failed"
[ "$fails" -eq 0 ]
