/*
 * bench_lock.c — the locks' cost, beside a bare process-shared pthread
 * mutex and flock(2) on a file.
 *
 *   lock.uncontended    lock + unlock by one thread, nobody else around
 *   lock.contended_4    4 processes each locking, adding 1 to a shared
 *                       counter and unlocking in a loop; ns per operation
 *                       of the whole (wall time / total operations)
 *
 * Impls: pthread_mutex (PTHREAD_PROCESS_SHARED, not robust: the floor),
 * pthread_robust (the same, robust: the protocol pshm_mutex implements, see
 * src/robust.h), pshm_mutex, pshm_rwlock_read, pshm_rwlock_write, flock (LOCK_EX on a
 * file, contended figure only, as the issue asks).
 *
 * Output follows the bench contract: "BENCH <figure> <impl> <ns_per_op>".
 */
#include "pshm.h"

#include "bench.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    PROCS = 4,
    MUTEX_AT = 0,
    RWLOCK_AT = 64 * 64,
    PTHREAD_AT = 64 * 128,
    COUNT_AT = 64 * 160
};

static pshm_block *block;
static pthread_mutex_t *bare, *robust;
static int lock_fd = -1;
static volatile int64_t *counter;

static void op_pthread(void)
{
    pthread_mutex_lock(bare);
    pthread_mutex_unlock(bare);
}
static void op_robust(void)
{
    pthread_mutex_lock(robust);
    pthread_mutex_unlock(robust);
}
static void op_mutex(void)
{
    pshm_mutex_lock(block, MUTEX_AT, PSHM_FOREVER);
    pshm_mutex_unlock(block, MUTEX_AT);
}
static void op_read(void)
{
    pshm_rwlock_rdlock(block, RWLOCK_AT, PSHM_FOREVER);
    pshm_rwlock_rdunlock(block, RWLOCK_AT);
}
static void op_write(void)
{
    pshm_rwlock_wrlock(block, RWLOCK_AT, PSHM_FOREVER);
    pshm_rwlock_wrunlock(block, RWLOCK_AT);
}
static void op_flock(void)
{
    flock(lock_fd, LOCK_EX);
    flock(lock_fd, LOCK_UN);
}

/* One increment under the lock `op` takes apart: lock, add, unlock. */
static void inc_pthread(void)
{
    pthread_mutex_lock(bare);
    (*counter)++;
    pthread_mutex_unlock(bare);
}
static void inc_mutex(void)
{
    pshm_mutex_lock(block, MUTEX_AT, PSHM_FOREVER);
    (*counter)++;
    pshm_mutex_unlock(block, MUTEX_AT);
}
static void inc_write(void)
{
    pshm_rwlock_wrlock(block, RWLOCK_AT, PSHM_FOREVER);
    (*counter)++;
    pshm_rwlock_wrunlock(block, RWLOCK_AT);
}
static void inc_flock(void)
{
    flock(lock_fd, LOCK_EX);
    (*counter)++;
    flock(lock_fd, LOCK_UN);
}

/* PROCS processes run `inc` `each` times; wall ns per increment. The
 * counter must come out exact, or the lock failed. */
static double contended(bench_op_fn inc, int64_t each)
{
    *counter = 0;
    uint64_t t0 = bench_now_ns();
    for (int p = 0; p < PROCS; p++)
        if (fork() == 0) {
            if (inc == inc_flock) /* its own open file description */
                lock_fd = open(getenv("PSHM_BENCH_LOCKFILE"), O_RDWR);
            for (int64_t i = 0; i < each; i++)
                inc();
            _exit(0);
        }
    for (int p = 0; p < PROCS; p++)
        wait(NULL);
    double ns = (double)(bench_now_ns() - t0) / (double)(each * PROCS);
    if (*counter != each * PROCS) {
        fprintf(stderr, "bench_lock: counter %lld, want %lld\n", (long long)*counter,
                (long long)(each * PROCS));
        exit(1);
    }
    return ns;
}

int main(void)
{
    char name[64], path[] = "/tmp/pshm-bench-lock.XXXXXX";
    snprintf(name, sizeof name, "pshm_bench_lock_%d", (int)getpid());
    lock_fd = mkstemp(path);
    setenv("PSHM_BENCH_LOCKFILE", path, 1);
    if (lock_fd < 0 || pshm_block_create(&block, name, 64 * 192, PSHM_UNTRACKED) < 0 ||
        pshm_mutex_init(block, MUTEX_AT) < 0 || pshm_rwlock_init(block, RWLOCK_AT) < 0) {
        fprintf(stderr, "bench_lock: %s\n", pshm_last_error());
        return 1;
    }
    pshm_block_unlink(block);
    char *buf = pshm_block_buf(block);
    bare = (pthread_mutex_t *)(buf + PTHREAD_AT);
    counter = (volatile int64_t *)(buf + COUNT_AT);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(bare, &attr);
    robust = bare + 1;
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(robust, &attr);

    printf(
        "DESC lock.uncontended lock + unlock by one thread, nobody else around "
        "(issue 10's targets: pshm_mutex within 1.5x, pshm_rwlock_read within 2x of "
        "pthread_mutex)\n");
    printf(
        "DESC lock.contended_4 4 processes each lock, add 1 to a shared counter and "
        "unlock in a loop; wall ns per increment\n");
    bench_report("lock.uncontended", "pthread_mutex", bench_measure_op(op_pthread));
    bench_report("lock.uncontended", "pthread_robust", bench_measure_op(op_robust));
    bench_report("lock.uncontended", "pshm_mutex", bench_measure_op(op_mutex));
    bench_report("lock.uncontended", "pshm_rwlock_read", bench_measure_op(op_read));
    bench_report("lock.uncontended", "pshm_rwlock_write", bench_measure_op(op_write));
    bench_report("lock.uncontended", "flock", bench_measure_op(op_flock));

    int64_t each = (int64_t)(200000 * bench_scale());
    bench_report("lock.contended_4", "pthread_mutex", contended(inc_pthread, each));
    bench_report("lock.contended_4", "pshm_mutex", contended(inc_mutex, each));
    bench_report("lock.contended_4", "pshm_rwlock_write", contended(inc_write, each / 10));
    bench_report("lock.contended_4", "flock", contended(inc_flock, each / 10));
    pshm_block_free(block);
    unlink(path);
    return 0;
}
