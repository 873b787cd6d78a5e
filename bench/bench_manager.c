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

#include "bench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SIZE 4096

static pshm_manager *manager;

static void check_pshm(int rc, const char *call)
{
    if (rc < 0) {
        fprintf(stderr, "bench_manager: %s: %s\n", call, pshm_last_error());
        exit(1); /* the server sees us exit and unlinks what it owns */
    }
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

int main(void)
{
    check_pshm(pshm_manager_start(&manager, NULL, NULL, 0), "manager start");
    double ns = bench_measure_op(block_cycle);
    char **names;
    size_t left;
    check_pshm(pshm_manager_names(manager, &names, &left), "manager names");
    pshm_names_free(names, left);
    check_pshm(pshm_manager_shutdown(manager), "manager shutdown");
    if (left != 0) {
        fprintf(stderr, "bench_manager: %zu blocks were not released\n", left);
        return 1;
    }
    bench_report("manager.block_create", "pshm", ns);
    return 0;
}
