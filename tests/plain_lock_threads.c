/*
 * plain_lock_threads.c — the locks used by 8 threads of one process, as a
 * plain program so that it runs under ThreadSanitizer (.ci/run): a mutex
 * and the rwlock's write lock each guard a counter that every thread adds
 * to with a plain read and write, and readers check under the read lock
 * that they never see a half-done update. Totals must be exact; TSan must
 * see no race. Prints "N passed, M failed".
 */
#include "pshm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { THREADS = 8, ROUNDS = 5000, DATA_AT = 4096 };

static pshm_block *block;
static atomic_int failures;

struct data {
    int64_t counter, shadow;
};

static struct data *data_at(size_t offset)
{
    return (struct data *)((char *)pshm_block_buf(block) + offset);
}

static void *mutex_worker(void *arg)
{
    (void)arg;
    struct data *d = data_at(DATA_AT);
    for (int i = 0; i < ROUNDS; i++) {
        if (pshm_mutex_lock(block, 0, PSHM_FOREVER) != 0) {
            atomic_fetch_add(&failures, 1);
            return NULL;
        }
        d->counter++;
        pshm_mutex_unlock(block, 0);
    }
    return NULL;
}

/* Even threads write, odd ones read. */
static void *rwlock_worker(void *arg)
{
    bool writes = (intptr_t)arg % 2 == 0;
    struct data *d = data_at(DATA_AT + 64);
    for (int i = 0; i < ROUNDS; i++) {
        int rc = writes ? pshm_rwlock_wrlock(block, 128, PSHM_FOREVER)
                        : pshm_rwlock_rdlock(block, 128, PSHM_FOREVER);
        if (rc != 0) {
            atomic_fetch_add(&failures, 1);
            return NULL;
        }
        if (writes) {
            d->shadow = d->counter + 1;
            d->counter = d->shadow;
            pshm_rwlock_wrunlock(block, 128);
        } else {
            if (d->shadow != d->counter)
                atomic_fetch_add(&failures, 1);
            pshm_rwlock_rdunlock(block, 128);
        }
    }
    return NULL;
}

static int run(void *(*fn)(void *))
{
    pthread_t t[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, fn, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return atomic_load(&failures);
}

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "pshmt_lockthr_%d", (int)getpid());
    if (pshm_block_create(&block, name, 8192, PSHM_UNTRACKED) != 0 ||
        pshm_mutex_init(block, 0) != 0 || pshm_rwlock_init(block, 128) != 0) {
        fprintf(stderr, "setup: %s\n", pshm_last_error());
        return 1;
    }
    int passed = 0, failed = 0;
    if (run(mutex_worker) == 0 && data_at(DATA_AT)->counter == THREADS * ROUNDS)
        passed++;
    else {
        fprintf(stderr, "FAIL mutex: counter %lld\n", (long long)data_at(DATA_AT)->counter);
        failed++;
    }
    if (run(rwlock_worker) == 0 && data_at(DATA_AT + 64)->counter == THREADS / 2 * ROUNDS)
        passed++;
    else {
        fprintf(stderr, "FAIL rwlock: counter %lld, failures %d\n",
                (long long)data_at(DATA_AT + 64)->counter, atomic_load(&failures));
        failed++;
    }
    pshm_block_unlink(block);
    pshm_block_free(block);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
