#!/usr/bin/env bash
# Installs the Debian packages pshm needs to build, test, fuzz and benchmark,
# and to lint its manual pages and build and check its Debian packages.
# With --windows, instead, what the Windows build and its tests need (make
# windows, make windows-test): Debian's mingw-w64 cross compiler and Wine,
# which the Linux build never needs.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

if [ "${1:-}" = --windows ]; then
  packages=(cmake make gcc-mingw-w64-x86-64 wine64)
else
  packages=(cmake make gcc clang libclang-rt-dev pkg-config python3
            libcriterion-dev libsodium-dev libunistring-dev
            gnuplot-nox valgrind
            python3-dev python3-setuptools python3-wheel python3-numpy
            mandoc man-db bash-completion clang-format
            dpkg-dev fakeroot file lintian)
fi

missing=()
for p in "${packages[@]}"; do
  # python3 itself may come from elsewhere (pyenv): any working one will do.
  [ "$p" = python3 ] && command -v python3 >/dev/null 2>&1 && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
