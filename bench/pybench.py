"""pybench.py — the timing helpers the bench/py_*.py scripts share.

The Python side of bench/bench.h: the same bench contract (one line
"BENCH <figure> <impl> <ns_per_op>" per measurement) and the same method
(double a batch until it lasts CALIBRATE_NS, which warms up too, then time
one batch of the measuring time). PSHM_BENCH_SCALE multiplies the measuring
time, MIN_MEASURE_NS (0.2 s) per figure.

measure_paired times two or more implementations of one figure in
interleaved rounds instead, for figures whose speed follows the machine's
state (system calls, wake-ups of other processes): each round times every
implementation once, back to back, so both see the same state, and the
ratio is taken within each round ("PAIRED" lines, which bench/report.py
sums up as the median over rounds).

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


def calibrate(timer, measure_ns):
    """Double the count until timer(count) lasts CALIBRATE_NS (which warms
    up too); the count whose timing lasts about measure_ns."""
    count = 1
    while timer(count) < CALIBRATE_NS:
        count *= 2
    return int(measure_ns * count / CALIBRATE_NS) + 1


def calibrated(timer):
    """Calibrate, then time one batch long enough for the measuring time; ns
    per count."""
    n = calibrate(timer, MIN_MEASURE_NS * bench_scale())
    return timer(n) / n


def measure_op(op):
    """ns per call of op()."""
    return calibrated(lambda count: time_ops(op, count))


def measure_batch(batch, ops_per_call=1):
    """ns per operation of batch(count), which runs count * ops_per_call
    operations."""
    return calibrated(lambda count: time_batch(batch, count)) / ops_per_call


PAIRED_ROUNDS = 5


def measure_paired(figure, ops, reference="pshm"):
    """Time each op of ops (impl -> callable) in PAIRED_ROUNDS interleaved
    rounds of MIN_MEASURE_NS (times the scale) each, the order of the impls
    alternating between rounds. Reports each impl's median ns per call over
    the rounds (BENCH) and, per round, every other impl's time over the
    reference's time in that round (PAIRED)."""
    measure_ns = MIN_MEASURE_NS * bench_scale()
    counts = {impl: calibrate(lambda c, op=op: time_ops(op, c), measure_ns)
              for impl, op in ops.items()}
    times = {impl: [] for impl in ops}
    for round_ in range(PAIRED_ROUNDS):
        order = list(ops) if round_ % 2 == 0 else list(reversed(list(ops)))
        for impl in order:
            times[impl].append(time_ops(ops[impl], counts[impl]) / counts[impl])
        for impl in ops:
            if impl != reference:
                ratio = times[impl][-1] / times[reference][-1]
                print(f"PAIRED {figure} {impl} {ratio:.3f}", flush=True)
    for impl, ns in times.items():
        report(figure, impl, sorted(ns)[len(ns) // 2])


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
