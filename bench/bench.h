/*
 * bench.h — the timing helpers every bench/bench_*.c program shares.
 *
 * Static inline functions only, so each program includes it and nothing
 * else changes in the build (bench/CMakeLists.txt makes every bench_*.c a
 * program of its own; this header's name keeps it out of that glob).
 *
 * The bench contract: a program prints one line "BENCH <figure> <impl>
 * <ns_per_op>" per measurement (bench_report); PSHM_BENCH_SCALE multiplies
 * the measuring time, BENCH_MEASURE_NS (0.2 s) per figure.
 *
 * Two ways to measure:
 *   - cheap operations: bench_measure_op / bench_measure_batch double a
 *     batch until it lasts BENCH_CALIBRATE_NS (which warms up too), then
 *     time one batch long enough for the measuring time; ns per operation;
 *   - long rounds (tens of ms each): the program runs a warm-up round, then
 *     rounds while bench_more_rounds(n, spent) says so (at least
 *     BENCH_MIN_ROUNDS and the measuring time) and averages them itself.
 */
#ifndef PSHM_BENCH_H
#define PSHM_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_MEASURE_NS 200000000.0   /* 0.2 s per figure, times the scale */
#define BENCH_CALIBRATE_NS 20000000ull /* a batch this long fixes the count */
#define BENCH_MIN_ROUNDS 3             /* long rounds: at least this many */

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* PSHM_BENCH_SCALE as a positive number; 1 if unset or not positive. */
static inline double bench_scale(void)
{
    const char *s = getenv("PSHM_BENCH_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

/* The measuring time of one figure in ns: BENCH_MEASURE_NS times the scale. */
static inline double bench_measure_time_ns(void) { return BENCH_MEASURE_NS * bench_scale(); }

/* Print one "BENCH <figure> <impl> <ns>" line with `decimals` decimals. */
static inline void bench_report_decimals(const char *figure, const char *impl, double ns,
                                         int decimals)
{
    printf("BENCH %s %s %.*f\n", figure, impl, decimals, ns);
    fflush(stdout);
}

/* Print one "BENCH <figure> <impl> <ns>" line, ns to one decimal. */
static inline void bench_report(const char *figure, const char *impl, double ns)
{
    bench_report_decimals(figure, impl, ns, 1);
}

/* ---- cheap operations ---------------------------------------------------- */

/* One operation, called `count` times in a loop per batch. */
typedef void (*bench_op_fn)(void);
/* A whole batch: runs `count` operations in its own tight loop. */
typedef void (*bench_batch_fn)(uint64_t count);

/* The duration of one batch of `count`: `batch` if set, else `op` in a loop. */
static inline uint64_t bench_time_batch(bench_op_fn op, bench_batch_fn batch, uint64_t count)
{
    if (batch != NULL) {
        uint64_t t0 = bench_now_ns();
        batch(count);
        return bench_now_ns() - t0;
    }
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < count; i++)
        op();
    return bench_now_ns() - t0;
}

/*
 * Double the count until a batch takes BENCH_CALIBRATE_NS (the doubling
 * doubles as warm-up: it starts the tracker and faults in the code), then
 * time one batch long enough for the measuring time; ns per operation.
 */
static inline double bench_calibrated(bench_op_fn op, bench_batch_fn batch)
{
    uint64_t count = 1;
    while (bench_time_batch(op, batch, count) < BENCH_CALIBRATE_NS)
        count *= 2;
    double per_op = (double)BENCH_CALIBRATE_NS / (double)count;
    uint64_t n = (uint64_t)(bench_measure_time_ns() / per_op) + 1;
    return (double)bench_time_batch(op, batch, n) / (double)n;
}

/* ns per call of `op`, measured as bench_calibrated says. */
static inline double bench_measure_op(bench_op_fn op) { return bench_calibrated(op, NULL); }

/* ns per operation of `batch`, measured as bench_calibrated says. */
static inline double bench_measure_batch(bench_batch_fn batch)
{
    return bench_calibrated(NULL, batch);
}

/* ---- long rounds --------------------------------------------------------- */

/* Whether to run another round after `rounds` rounds that took `spent_ns`
 * (as the caller counts it): until BENCH_MIN_ROUNDS and the measuring time. */
static inline bool bench_more_rounds(int rounds, double spent_ns)
{
    return rounds < BENCH_MIN_ROUNDS || spent_ns < bench_measure_time_ns();
}

#endif
