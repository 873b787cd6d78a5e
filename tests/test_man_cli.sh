#!/usr/bin/env bash
# `pshm --help` and pshm(1) agree: every command and subcommand that the help
# texts list, and every option any help text shows, appears in the page (as
# `Cm command` and `Fl \-option`, which renders as --option: Fl adds one
# hyphen).
set -euo pipefail
pshm=${PSHM:?run through ctest}
page=${PSHM_SOURCE:?run through ctest}/man/man1/pshm.1
# The page's source with mdoc's escaped hyphens plain, for grep.
text=$(sed 's/\\-/-/g' "$page")
failed=0 checked=0

# Command names: the indented first words of a help's "commands:" part or,
# for list and manager, of their help's body.
commands_in() { awk '/^commands:/ { on = 1; next } /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }'; }
subcommands_in() { awk '/^  [a-z]+( |$)/ { print $1 }'; }

helps=$("$pshm" --help)
commands=$(commands_in <<<"$helps")
[ -n "$commands" ] || { echo "FAIL: no commands found in pshm --help"; exit 1; }
for cmd in $commands; do
  helps+=$'\n'$("$pshm" "$cmd" --help)
done
for group in list manager; do
  subs=$("$pshm" "$group" --help | subcommands_in)
  [ -n "$subs" ] || { echo "FAIL: no subcommands found in pshm $group --help"; failed=$((failed + 1)); }
  for sub in $subs; do
    helps+=$'\n'$("$pshm" "$group" "$sub" --help)
    commands+=" $sub"
  done
done

for cmd in $commands; do
  checked=$((checked + 1))
  grep -qE "(^|[ .])Cm ([a-z]+ )*$cmd( |$)" <<<"$text" || {
    echo "FAIL: command '$cmd' is in --help but not in pshm(1)"
    failed=$((failed + 1))
  }
done
for opt in $(grep -oE -- '--[a-z][a-z-]*' <<<"$helps" | sort -u); do
  checked=$((checked + 1))
  grep -qE -- "Fl ${opt#-}( |$)" <<<"$text" || {
    echo "FAIL: option '$opt' is in --help but not in pshm(1)"
    failed=$((failed + 1))
  }
done
echo "$((checked - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
