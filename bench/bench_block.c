/*
 * bench_block.c — the cost of a block's life cycle, beside the bare POSIX
 * calls it wraps.
 *
 *   block.create_close_unlink  a 4096-byte block: create, close, unlink
 *   block.attach_close         attach to an existing 4096-byte block, close
 *   block.populate_256MiB.*    a 256 MiB block with and without
 *                              PSHM_POPULATE: create, first touch of every
 *                              page, and both (ns per whole 256 MiB block)
 *
 * Impls: posix (shm_open/ftruncate/mmap/munmap/close/shm_unlink by hand),
 * pshm_untracked (PSHM_UNTRACKED), pshm_tracked (default flags),
 * pshm_tracked_nomap (PSHM_NOMAP: never mapped, what a handle whose bytes
 * are never touched costs; the Python package opens every block so), and
 * for the populate figures pshm / pshm_populate.
 *
 * Output follows the bench contract: "BENCH <figure> <impl> <ns_per_op>".
 * PSHM_BENCH_SCALE multiplies the measuring time (0.2 s per figure).
 */
#include "pshm.h"

#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SMALL_SIZE 4096
#define BIG_SIZE ((size_t)256 << 20)

/* The fixed names this program uses; atexit removes any that are left. */
static char name_cycle[64], name_attach[64], name_big[64];

static void remove_leftovers(void)
{
    shm_unlink(name_cycle);
    shm_unlink(name_attach);
    shm_unlink(name_big);
}

static void make_names(void)
{
    int pid = (int)getpid();
    snprintf(name_cycle, sizeof name_cycle, "/pshmbench_%d_cycle", pid);
    snprintf(name_attach, sizeof name_attach, "/pshmbench_%d_attach", pid);
    snprintf(name_big, sizeof name_big, "/pshmbench_%d_big", pid);
    atexit(remove_leftovers);
}

static void fail_sys(const char *call)
{
    fprintf(stderr, "bench_block: %s: %s\n", call, strerror(errno));
    exit(1);
}

static void check_sys(int rc, const char *call)
{
    if (rc < 0)
        fail_sys(call);
}

static void check_pshm(int rc, const char *call)
{
    if (rc < 0) {
        fprintf(stderr, "bench_block: %s: %s\n", call, pshm_last_error());
        exit(1);
    }
}

/* ---- block.create_close_unlink ---------------------------------------- */

static void posix_cycle(void)
{
    int fd = shm_open(name_cycle, O_CREAT | O_EXCL | O_RDWR, 0600);
    check_sys(fd, "shm_open");
    check_sys(ftruncate(fd, SMALL_SIZE), "ftruncate");
    void *p = mmap(NULL, SMALL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        fail_sys("mmap");
    check_sys(munmap(p, SMALL_SIZE), "munmap");
    check_sys(close(fd), "close");
    check_sys(shm_unlink(name_cycle), "shm_unlink");
}

/* The order CPython users write: close, then unlink. */
static void pshm_cycle(unsigned flags)
{
    pshm_block *b;
    check_pshm(pshm_block_create(&b, name_cycle, SMALL_SIZE, flags), "create");
    check_pshm(pshm_block_close(b), "close");
    check_pshm(pshm_block_unlink(b), "unlink");
    pshm_block_free(b);
}

static void pshm_untracked_cycle(void) { pshm_cycle(PSHM_UNTRACKED); }
static void pshm_tracked_cycle(void) { pshm_cycle(0); }
static void pshm_tracked_nomap_cycle(void) { pshm_cycle(PSHM_NOMAP); }

/* ---- block.attach_close ------------------------------------------------ */

static void posix_attach(void)
{
    int fd = shm_open(name_attach, O_RDWR, 0);
    check_sys(fd, "shm_open");
    struct stat st;
    check_sys(fstat(fd, &st), "fstat");
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        fail_sys("mmap");
    check_sys(munmap(p, (size_t)st.st_size), "munmap");
    check_sys(close(fd), "close");
}

static void pshm_attach(unsigned flags)
{
    pshm_block *b;
    check_pshm(pshm_block_attach(&b, name_attach, flags), "attach");
    check_pshm(pshm_block_close(b), "close");
    pshm_block_free(b);
}

static void pshm_untracked_attach(void) { pshm_attach(PSHM_UNTRACKED); }
static void pshm_tracked_attach(void) { pshm_attach(0); }
static void pshm_tracked_nomap_attach(void) { pshm_attach(PSHM_NOMAP); }

/* The block every attach opens; made with bare calls so no impl owns it. */
static void make_attach_target(void)
{
    int fd = shm_open(name_attach, O_CREAT | O_EXCL | O_RDWR, 0600);
    check_sys(fd, "shm_open");
    check_sys(ftruncate(fd, SMALL_SIZE), "ftruncate");
    close(fd);
}

/* ---- block.populate_256MiB --------------------------------------------- */

struct populate_times {
    double create_ns, touch_ns;
};

/* Write one byte per page: each write is the page's first touch. */
static void touch_pages(unsigned char *p, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    volatile unsigned char *v = p;
    for (size_t off = 0; off < size; off += page)
        v[off] = 1;
}

/* One create + touch, timed separately; close and unlink are not timed. */
static struct populate_times populate_once(unsigned flags)
{
    pshm_block *b;
    uint64_t t0 = bench_now_ns();
    check_pshm(pshm_block_create(&b, name_big, BIG_SIZE, flags), "create 256 MiB");
    uint64_t t1 = bench_now_ns();
    touch_pages(pshm_block_buf(b), BIG_SIZE);
    uint64_t t2 = bench_now_ns();
    check_pshm(pshm_block_close(b), "close");
    check_pshm(pshm_block_unlink(b), "unlink");
    pshm_block_free(b);
    return (struct populate_times){(double)(t1 - t0), (double)(t2 - t1)};
}

/* Each iteration is tens of ms, so run whole iterations for the measuring
 * time (at least BENCH_MIN_ROUNDS) and average; the first is a warm-up. */
static void bench_populate(const char *impl, unsigned flags)
{
    populate_once(flags);
    struct populate_times sum = {0, 0};
    int n = 0;
    uint64_t start = bench_now_ns();
    while (bench_more_rounds(n, (double)(bench_now_ns() - start))) {
        struct populate_times t = populate_once(flags);
        sum.create_ns += t.create_ns;
        sum.touch_ns += t.touch_ns;
        n++;
    }
    bench_report("block.populate_256MiB.create", impl, sum.create_ns / n);
    bench_report("block.populate_256MiB.touch", impl, sum.touch_ns / n);
    bench_report("block.populate_256MiB.create_touch", impl,
                 (sum.create_ns + sum.touch_ns) / n);
}

/* Measure one cheap operation and print its line. */
static void measure_figure(const char *figure, const char *impl, bench_op_fn op)
{
    bench_report(figure, impl, bench_measure_op(op));
}

int main(void)
{
    make_names();
    /* The first tracked call starts the tracker: the calibration's warm-up pays it. */
    measure_figure("block.create_close_unlink", "posix", posix_cycle);
    measure_figure("block.create_close_unlink", "pshm_untracked", pshm_untracked_cycle);
    measure_figure("block.create_close_unlink", "pshm_tracked", pshm_tracked_cycle);
    measure_figure("block.create_close_unlink", "pshm_tracked_nomap",
                   pshm_tracked_nomap_cycle);

    make_attach_target();
    measure_figure("block.attach_close", "posix", posix_attach);
    measure_figure("block.attach_close", "pshm_untracked", pshm_untracked_attach);
    measure_figure("block.attach_close", "pshm_tracked", pshm_tracked_attach);
    measure_figure("block.attach_close", "pshm_tracked_nomap", pshm_tracked_nomap_attach);
    check_sys(shm_unlink(name_attach), "shm_unlink");

    bench_populate("pshm", 0);
    bench_populate("pshm_populate", PSHM_POPULATE);
    return 0;
}
