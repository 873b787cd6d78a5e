#!/usr/bin/env bash
# Installs the Debian packages pshm needs to build, test, fuzz and benchmark,
# and to lint its manual pages and build and check its Debian packages.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

packages=(cmake make gcc clang libclang-rt-dev pkg-config python3
          libcriterion-dev libsodium-dev libunistring-dev
          gnuplot-nox valgrind
          mandoc man-db bash-completion clang-format
          dpkg-dev fakeroot file lintian)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv); the tests only need a working one.
if command -v python3 >/dev/null 2>&1; then
  missing=("${missing[@]/python3}")
fi
read -ra missing <<<"${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
