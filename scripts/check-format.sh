#!/usr/bin/env bash
# check-format.sh: is every C file in the tree formatted as .clang-format
# says? Prints each file that is not, with the number of its lines
# clang-format would change, and fails if there is any. `--fix` reformats
# them in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = --fix ]; then
  clang-format -i --style=file "${files[@]}"
  exit 0
fi
bad=0 lines=0
for f in "${files[@]}"; do
  n=$(clang-format --style=file "$f" | diff "$f" - | grep -c '^<' || true)
  if [ "$n" -gt 0 ]; then
    echo "$f: $n lines to reformat"
    bad=$((bad + 1)) lines=$((lines + n))
  fi
done
echo "${#files[@]} files checked: $bad to reformat ($lines lines)"
[ "$bad" -eq 0 ]
