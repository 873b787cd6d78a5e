/*
 * bench_manager.c — a manager-owned block's life cycle as a client sees it.
 *
 *   manager.block_create  pshm_manager_block(m, 4096) (the server creates
 *                         the block and the client attaches), close the
 *                         client's handle, pshm_manager_release (the server
 *                         unlinks it): two round trips on the handle's one
 *                         authenticated connection.
 *
 * Impl pshm, against a server started by pshm_manager_start on its default
 * Unix socket. bench/py_manager.py measures the same cycle with CPython's
 * SharedMemoryManager (impl cpython).
 *
 * Output follows the bench contract: "BENCH <figure> <impl> <ns_per_op>".
 * PSHM_BENCH_SCALE multiplies the measuring time (0.2 s per figure).
 */
#include "pshm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SIZE 4096
#define MIN_MEASURE_NS 200000000.0 /* 0.2 s per figure, times the scale */
#define CALIBRATE_NS 20000000ull   /* a batch this long fixes the count */

static pshm_manager *manager;

static void check_pshm(int rc, const char *call)
{
    if (rc < 0) {
        fprintf(stderr, "bench_manager: %s: %s\n", call, pshm_last_error());
        exit(1); /* the server sees us exit and unlinks what it owns */
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double bench_scale(void)
{
    const char *s = getenv("PSHM_BENCH_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

static void block_cycle(void)
{
    pshm_block *b;
    char name[PSHM_NAME_MAX + 1];
    check_pshm(pshm_manager_block(manager, SIZE, &b), "manager block");
    snprintf(name, sizeof name, "%s", pshm_block_name(b));
    pshm_block_free(b);
    check_pshm(pshm_manager_release(manager, name), "manager release");
}

static uint64_t run_batch(uint64_t count)
{
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++)
        block_cycle();
    return now_ns() - t0;
}

/* Warm up by doubling a batch until it lasts CALIBRATE_NS, then time one
 * batch long enough for the measuring time. */
static double measure(void)
{
    uint64_t count = 1;
    while (run_batch(count) < CALIBRATE_NS)
        count *= 2;
    double per_op = (double)CALIBRATE_NS / (double)count;
    uint64_t n = (uint64_t)(MIN_MEASURE_NS * bench_scale() / per_op) + 1;
    return (double)run_batch(n) / (double)n;
}

int main(void)
{
    check_pshm(pshm_manager_start(&manager, NULL, NULL, 0), "manager start");
    double ns = measure();
    char **names;
    size_t left;
    check_pshm(pshm_manager_names(manager, &names, &left), "manager names");
    pshm_names_free(names, left);
    check_pshm(pshm_manager_shutdown(manager), "manager shutdown");
    if (left != 0) {
        fprintf(stderr, "bench_manager: %zu blocks were not released\n", left);
        return 1;
    }
    printf("BENCH manager.block_create pshm %.1f\n", ns);
    return 0;
}
