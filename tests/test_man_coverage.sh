#!/usr/bin/env bash
# Functions and section 3 pages never drift apart:
#   - every function libpshm.so exports (nm -D) is named in the NAME section
#     (.Nm) of a page in man/man3, so `man FUNCTION` finds it;
#   - every name a page documents, and every page file but the overview
#     pshm.3, is a function libpshm.so exports;
#   - every page of ours that a page cross-references (.Xr pshm... N) exists.
set -euo pipefail
src=${PSHM_SOURCE:?run through ctest}
lib=${PSHM_BUILD:?run through ctest}/libpshm.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' \
  | sort -u >"$work/exported"
[ -s "$work/exported" ] || { echo "no function exported by $lib"; exit 1; }
# NAME-section names: the ".Nm name ," lines before the first .Nd.
for page in "$src"/man/man3/*.3; do
  [ "$(basename "$page")" = pshm.3 ] && continue
  awk '/^\.Nd/ { exit } /^\.Nm [a-z_0-9]+/ { print $2 }' "$page"
  basename "$page" .3
done | sort -u >"$work/documented"

failed=0
while read -r f; do
  echo "FAIL: $f is exported by libpshm.so but has no manual page (add it to a page's NAME section in man/man3)"
  failed=$((failed + 1))
done < <(comm -23 "$work/exported" "$work/documented")
while read -r f; do
  echo "FAIL: man/man3 documents $f, which libpshm.so does not export"
  failed=$((failed + 1))
done < <(comm -13 "$work/exported" "$work/documented")

# Cross-references to our own pages: each must be a page file or a name in
# one (the links the build makes).
for section in 1 3 7; do
  ls "$src/man/man$section" | sed -n "s/\.$section\$/ $section/p"
done >"$work/pages"
sed 's/$/ 3/' "$work/documented" >>"$work/pages"
while read -r name section; do
  grep -qxF "$name $section" "$work/pages" || {
    echo "FAIL: a page refers to $name($section), which does not exist"
    failed=$((failed + 1))
  }
done < <(cat "$src"/man/man?/*.[137] | awk '/^\.Xr pshm/ { print $2, $3 }' | sort -u)

echo "$(wc -l <"$work/exported") exported functions, $(wc -l <"$work/documented") documented names: $failed failures"
[ "$failed" -eq 0 ]
