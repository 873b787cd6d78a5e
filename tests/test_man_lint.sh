#!/usr/bin/env bash
# Every manual page (man/manN/*.N, mdoc) passes `mandoc -T lint` with no
# warning: a page that renders wrongly or breaks mdoc's conventions fails.
set -euo pipefail
src=${PSHM_SOURCE:?run through ctest}
pages=("$src"/man/man?/*.[137])
failed=0
for page in "${pages[@]}"; do
  if ! out=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$out" ]; then
    echo "$out"
    failed=$((failed + 1))
  fi
done
echo "$((${#pages[@]} - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
