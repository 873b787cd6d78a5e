#!/usr/bin/env bash
# run.sh BUILD_DIR — run every benchmark REPEATS times and write
# bench/results.md (medians, ratios, machine) and bench/results.png.
#
# Runs each executable BUILD_DIR/bench/bench_* and each bench/py_*.py found
# at run time (other areas add their own), PSHM_BENCH_REPEATS times
# (default 5), interleaved so slow drift in the machine hits every program
# alike. A program that exits non-zero, times out (PSHM_BENCH_TIMEOUT
# seconds, default 300) or prints no BENCH line is reported as failed;
# everything else is still written, then the script exits non-zero.
set -uo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: bash bench/run.sh BUILD_DIR" >&2
    exit 2
fi
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: no build directory $1" >&2; exit 2; }
REPEATS=${PSHM_BENCH_REPEATS:-5}
TIMEOUT=${PSHM_BENCH_TIMEOUT:-300}
PYTHON=${PYTHON:-python3}

# The Python package (bench/py_package.py) as the build laid it out.
export PYTHONPATH="$BUILD/python${PYTHONPATH:+:$PYTHONPATH}"

RAW=$(mktemp -d "${TMPDIR:-/tmp}/pshm-bench.XXXXXX")
trap 'rm -rf "$RAW"' EXIT

programs=()
for exe in "$BUILD"/bench/bench_*; do
    [[ -f $exe && -x $exe ]] && programs+=("$exe")
done
for py in "$BENCH_DIR"/py_*.py; do
    [[ -f $py ]] && programs+=("$py")
done
if [[ ${#programs[@]} -eq 0 ]]; then
    echo "run.sh: no benchmark programs in $BUILD/bench or $BENCH_DIR" >&2
    exit 1
fi

# One run: stdout, stderr and exit status go to RAW/<program>.<repeat>.*
run_one() {
    local prog=$1 rep=$2 base
    base="$RAW/$(basename "$prog").$rep"
    local cmd=("$prog")
    [[ $prog == *.py ]] && cmd=("$PYTHON" "$prog")
    timeout "$TIMEOUT" "${cmd[@]}" >"$base.out" 2>"$base.err" </dev/null
    echo $? >"$base.rc"
}

for ((rep = 1; rep <= REPEATS; rep++)); do
    for prog in "${programs[@]}"; do
        printf 'run.sh: [%d/%d] %s\n' "$rep" "$REPEATS" "$(basename "$prog")" >&2
        run_one "$prog" "$rep"
    done
done

"$PYTHON" "$BENCH_DIR/report.py" --raw "$RAW" --repeats "$REPEATS" --build "$BUILD" \
    --markdown "$BENCH_DIR/results.md" --plot "$BENCH_DIR/results.png"
