"""pybench.py — the timing helpers the bench/py_*.py scripts share.

The Python side of bench/bench.h: the same bench contract (one line
"BENCH <figure> <impl> <ns_per_op>" per measurement) and the same method
(double a batch until it lasts CALIBRATE_NS, which warms up too, then time
one batch of the measuring time). PSHM_BENCH_SCALE multiplies the measuring
time, MIN_MEASURE_NS (0.2 s) per figure.

The scripts run as `python3 bench/py_x.py`; Python puts the script's own
folder first on sys.path, so `import pybench` works from any directory.
Not a benchmark itself: bench/run.sh runs only py_*.py.
"""
import os
import time

MIN_MEASURE_NS = 200_000_000
CALIBRATE_NS = 20_000_000


def bench_scale():
    """PSHM_BENCH_SCALE as a positive number; 1.0 if unset, bad or not positive."""
    try:
        value = float(os.environ.get("PSHM_BENCH_SCALE", "1"))
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def time_ops(op, count):
    """ns for `count` calls of op() in a loop."""
    start = time.perf_counter_ns()
    for _ in range(count):
        op()
    return time.perf_counter_ns() - start


def time_batch(batch, count):
    """ns for one call batch(count), which runs its own loop."""
    start = time.perf_counter_ns()
    batch(count)
    return time.perf_counter_ns() - start


def calibrated(timer):
    """Double the count until timer(count) lasts CALIBRATE_NS, then time one
    batch long enough for the measuring time; ns per count."""
    count = 1
    while timer(count) < CALIBRATE_NS:
        count *= 2
    per_op = CALIBRATE_NS / count
    n = int(MIN_MEASURE_NS * bench_scale() / per_op) + 1
    return timer(n) / n


def measure_op(op):
    """ns per call of op()."""
    return calibrated(lambda count: time_ops(op, count))


def measure_batch(batch, ops_per_call=1):
    """ns per operation of batch(count), which runs count * ops_per_call
    operations."""
    return calibrated(lambda count: time_batch(batch, count)) / ops_per_call


def report(figure, impl, ns, decimals=1):
    """Print one BENCH line, ns to `decimals` decimals."""
    print(f"BENCH {figure} {impl} {ns:.{decimals}f}", flush=True)


def item_batches(ints, strs, cycle):
    """The per-item list batches both list benchmarks time, each running
    `cycle` operations per round: sl[i] and sl[i] = v over int items and
    over str items (that fit their storage)."""
    def get_int(rounds):
        for _ in range(rounds):
            for i in range(cycle):
                ints[i]

    def set_int(rounds):
        for _ in range(rounds):
            for i in range(cycle):
                ints[i] = i

    def get_str(rounds):
        for _ in range(rounds):
            for i in range(cycle):
                strs[i]

    def set_str(rounds):
        for _ in range(rounds):
            for i in range(cycle):
                strs[i] = "value 1"

    return {"get_int": get_int, "set_int": set_int, "get_str": get_str, "set_str": set_str}
