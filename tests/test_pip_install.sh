#!/usr/bin/env bash
# `pip install --no-build-isolation .` builds and installs the Python
# package from a checkout (pyproject.toml + setup.py), downloading nothing,
# and the installed package works and reports the header's version.
# Uses Debian's python3 (its setuptools and wheel come from Debian's
# packages); the pyenv Pythons have setuptools without wheel.
set -euo pipefail
src=${PSHM_SOURCE:?run through ctest}
python=/usr/bin/python3
if ! "$python" -c 'import setuptools, wheel, pip' 2>/dev/null; then
  echo "$python lacks setuptools, wheel or pip (scripts/install-deps.sh installs them)"
  echo "0 passed, 1 failed"
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy of the checkout (what git tracks, and new files it does not
# ignore): setuptools writes build/ and *.egg-info where it builds.
git -C "$src" ls-files -z --cached --others --exclude-standard |
  (cd "$src" && xargs -0 cp --parents -t "$work/")
mkdir -p "$work/site"
(cd "$work" && "$python" -m pip install --no-build-isolation --no-deps --no-index \
   --target "$work/site" . >"$work/pip.log" 2>&1) || { tail -20 "$work/pip.log"; exit 1; }
want=$(sed -n 's/#define PSHM_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' \
       "$src/include/pshm.h" | paste -sd.)
got=$(cd "$work" && PYTHONPATH="$work/site" "$python" -c '
import pshm
s = pshm.SharedMemory(create=True, size=16, track=False)
s.buf[:2] = b"ok"
t = pshm.SharedMemory(s.name)
assert bytes(t.buf[:2]) == b"ok"
t.close(); s.close(); s.unlink()
print(pshm.__version__)')
[ "$got" = "$want" ] || { echo "installed pshm reports version '$got', the header '$want'"; exit 1; }
echo "pip install --no-build-isolation: built, installed, works, version $got"
echo "1 passed, 0 failed"
