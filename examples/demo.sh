#!/usr/bin/env bash
# make demo: processes sharing blocks and a list through a manager, and the
# tracker cleaning up after a process killed with SIGKILL.
set -euo pipefail
build=${1:-build}
before=$(ls /dev/shm | sort)

step() { printf '\n== %s\n' "$*"; }

step "Two processes share an int64 array (examples/two_processes.c)"
"$build/example_two_processes"

step "A shareable list, C side (examples/shareable_list.c)"
"$build/example_shareable_list"

step "A manager, two workers, one 2,000-item list (examples/manager_workers.c)"
"$build/example_manager_workers"

step "C and Python share one list"
name=$("$build/pshm" list new -- 42 -273.154 "'howdy'" "b'HoWdY'" None True)
echo "pshm list new -> $name"
python3 - "$name" <<'PY'
import sys
from multiprocessing import resource_tracker, shared_memory
sl = shared_memory.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")  # pshm owns it
print("python sees:", sl)
sl[0] = 4242
sl.shm.close()
PY
echo "pshm list show -> $("$build/pshm" list show "$name")"
"$build/pshm" rm "$name"

step "The tracker: a process holding a tracked block is killed with SIGKILL"
exec 3< <(sleep 60)            # the holder's stdin: keeps it holding
sleeper=$!
"$build/pshm" create --size 4096 --track --hold <&3 >/tmp/pshm_demo_name.$$ &
holder=$!
for _ in $(seq 100); do [ -s /tmp/pshm_demo_name.$$ ] && break; sleep 0.05; done
leaked=$(cat /tmp/pshm_demo_name.$$); rm -f /tmp/pshm_demo_name.$$
echo "holder $holder made $leaked; pshm ls shows: $("$build/pshm" ls | grep -c "$leaked") entry"
kill -9 "$holder"; wait "$holder" 2>/dev/null || true
exec 3<&-; kill "$sleeper" 2>/dev/null || true
for _ in $(seq 100); do [ -e "/dev/shm/$leaked" ] || break; sleep 0.05; done
if [ -e "/dev/shm/$leaked" ]; then echo "LEAK: $leaked is still there"; exit 1; fi
echo "after kill -9: $leaked is gone (the tracker removed it)"

step "Check: no block left behind"
after=$(ls /dev/shm | sort)
left=$(comm -13 <(echo "$before") <(echo "$after"))
if [ -n "$left" ]; then echo "left behind: $left"; exit 1; fi
echo "none — /dev/shm holds exactly what it held before the demo"
