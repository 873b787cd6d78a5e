#!/usr/bin/env bash
# test-deb.sh [BUILD]: check the Debian packages `make deb` left in BUILD
# (default build-deb):
#   1. lintian finds no error in them;
#   2. they install on this machine (dpkg -i, as root) with the dependencies
#      their control files name;
#   3. the installed files work: pshm runs, it and pkg-config report the
#      package's version, the examples compile against the installed header
#      and library with pkg-config and with CMake's find_package (shared and
#      static) and run, `man` finds every page and link, bash completion
#      loads for pshm;
#   4. dpkg --purge removes them leaving none of their files behind.
# The packages are always removed on the way out (trap), also after a
# failure. Refuses to run if any of them is already installed: that
# installation is not ours to replace or remove. Its blocks in /dev/shm are
# the examples' own, each removed by the program that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-deb}
packages=(libpshm0 libpshm-dev pshm)
debs=()
for p in "${packages[@]}"; do
  debs+=("$(ls "$build/${p}_"*.deb)")
done
version=$(sed -n 's/^Version: \(.*\)-[0-9]*$/\1/p' <(dpkg-deb -f "${debs[0]}"))
[ "$(id -u)" -eq 0 ] || { echo "test-deb: run as root (it installs the packages)"; exit 1; }
# Whether dpkg has any trace of package $1 (installed, unpacked, config files).
present() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  [ "${status##* }" != not-installed ]
}
for p in "${packages[@]}"; do
  if present "$p"; then
    echo "test-deb: $p is already installed; remove it first"; exit 1
  fi
done

work=$(mktemp -d)
remove() {
  dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap remove EXIT
trap 'echo "test-deb: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
step() { printf -- '-- %s\n' "$*"; }
# Output is searched with `grep PATTERN >/dev/null`, never `grep -q`: -q
# stops reading at the first match, and the writer's SIGPIPE would then fail
# the pipeline (pipefail).

step "lintian"
# Errors fail; warnings are shown (the ones kept are listed in README.md).
status=0
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" >"$work/lintian" 2>&1 || status=$?
grep -v 'root privileges' "$work/lintian" || true
[ "$status" -eq 0 ]

step "install"
dpkg -i "${debs[@]}" >/dev/null
for p in "${packages[@]}"; do
  dpkg-query -L "$p" >>"$work/files"
done

step "pshm runs"
[ "$(command -v pshm)" = /usr/bin/pshm ]
[ "$(pshm --version)" = "pshm $version" ]
[ "$(pkg-config --modversion pshm)" = "$version" ]
block=debtest_$$
pshm create --name "$block" --size 4K >/dev/null
pshm info "$block" | grep "$block" >/dev/null
pshm rm "$block"

step "examples compile against the installed files (pkg-config, find_package)"
# shellcheck disable=SC2046
cc tests/install/app.c $(pkg-config --cflags --libs pshm) -o "$work/app_pc"
"$work/app_pc" | grep '^made psm_' >/dev/null
ldd "$work/app_pc" | grep '/libpshm.so.0 ' >/dev/null
cmake -S tests/install -B "$work/consumer" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/app" | grep '^made psm_' >/dev/null
"$work/consumer/app_static" | grep '^made psm_' >/dev/null
for ex in examples/*.c; do
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Werror "$ex" $(pkg-config --cflags --libs pshm) -o "$work/$(basename "$ex" .c)"
done

step "manual pages and links"
export MANPAGER=cat MANWIDTH=80
man 1 pshm | grep 'pshm create' >/dev/null
man 7 pshm | grep 'The tracker' >/dev/null
for f in $(nm -D --defined-only /usr/lib/*/libpshm.so.0 | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }'); do
  man 3 "$f" 2>/dev/null | grep "$f" >/dev/null || { echo "man 3 $f: no page"; exit 1; }
done

step "bash completion"
bash -c 'source /usr/share/bash-completion/bash_completion
         _completion_loader pshm; complete -p pshm' | grep ' pshm$' >/dev/null

step "remove"
dpkg --purge "${packages[@]}" >/dev/null
for p in "${packages[@]}"; do
  if present "$p"; then echo "test-deb: $p is still known to dpkg"; exit 1; fi
done
left=0
while read -r f; do
  # Directories are shared with other packages (/usr/share/man/man3, ...);
  # every file and link of ours must be gone.
  if [ -e "$f" ] && [ ! -d "$f" ] || [ -L "$f" ]; then
    echo "left behind: $f"; left=$((left + 1))
  fi
done <"$work/files"
[ "$left" -eq 0 ]
if ldconfig -p | grep libpshm; then echo "test-deb: libpshm is still in the ldconfig cache"; exit 1; fi
echo "deb packages: lintian clean of errors, installed, used, removed leaving nothing"
