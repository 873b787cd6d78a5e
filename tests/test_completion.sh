#!/usr/bin/env bash
# The bash completion (completions/pshm) completes commands, subcommands,
# options and, where a command takes a block NAME, the names `pshm ls` shows.
# It is driven as bash drives it: COMP_WORDS/COMP_CWORD set, the function
# that `complete -p pshm` names called, COMPREPLY read.
set -euo pipefail
pshm=${PSHM:?run through ctest}
src=${PSHM_SOURCE:?run through ctest}
block=cmpl_$$
# shellcheck source=/dev/null
source "$src/completions/pshm"
func=$(complete -p pshm | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
[ -n "$func" ] || { echo "FAIL: no completion function registered for pshm"; exit 1; }

"$pshm" create --name "$block" --size 64 >/dev/null
trap '"$pshm" rm "$block" >/dev/null 2>&1 || true' EXIT

passed=0 failed=0
# expect "WORDS ..." "WANTED ...": completing the line WORDS (the last word
# is the one being completed; "" for a new word) offers exactly WANTED.
expect() {
  local line=$1 wanted=$2 got
  read -ra COMP_WORDS <<<"$line"
  [ "${line: -1}" = " " ] && COMP_WORDS+=("")
  COMP_WORDS[0]=$pshm
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  "$func" pshm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | xargs)
  if [ "$got" = "$(tr ' ' '\n' <<<"$wanted" | sort | xargs)" ]; then
    passed=$((passed + 1))
  else
    echo "FAIL: '$line' completed to '$got', wanted '$wanted'"
    failed=$((failed + 1))
  fi
}
expect "pshm " "create attach info ls read write rm list manager lock --help --version"
expect "pshm l" "ls list lock"
expect "pshm lock --sh" "--shared"
expect "pshm lock $block" "$block"
expect "pshm lock x --timeout " ""
expect "pshm lock x -- --sh" ""   # the command's words, not ours
expect "pshm create --s" "--size"
expect "pshm create --size " ""
expect "pshm info $block" "$block"
expect "pshm rm x cmpl_$$" "$block"
expect "pshm rm NAM" ""                 # not the header line of pshm ls
expect "pshm attach --no" "--no-track"
expect "pshm list " "new show get set format --help"
expect "pshm list show $block" "$block"
expect "pshm list new --n" "--name"
expect "pshm manager " "serve block list ls release shutdown --address --authkey-file --help"
expect "pshm manager --address unix:/x s" "serve shutdown"
expect "pshm manager --address unix:/x block --" "--size --help"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
