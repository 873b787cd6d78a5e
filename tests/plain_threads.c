/*
 * plain_threads.c — the library used from many threads at once, as a plain
 * program (no Criterion: its runtime cannot start under ThreadSanitizer, and
 * this test exists to run under it). Prints "N passed, M failed".
 *
 * Threads concurrently: create tracked and untracked blocks (registering
 * with the tracker while others map and unmap), attach, write and verify,
 * close, unlink, and fail on purpose, checking that each thread's error
 * message is its own; add atomically to one list item; get and set list
 * items of unchanging types (the lock-free path, with pshm_value and with
 * the typed calls) and see only whole values;
 * share one manager handle for block requests and releases.
 *
 * The tracker is started from the main thread first. Under ThreadSanitizer
 * a raw clone() while other threads run leaves the child in TSan's runtime
 * with locks held by threads that no longer exist, and it hangs; the
 * library's own code in that child makes only system calls, which is why a
 * normal build does not (the tracker tests start it from 8 threads).
 */
#include "pshm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { THREADS = 8, ROUNDS = 200 };

static atomic_int failures;
static int passed;

#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            atomic_fetch_add(&failures, 1);                                                  \
            return NULL;                                                                     \
        }                                                                                    \
    } while (0)

static void *churn(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        char name[64];
        snprintf(name, sizeof name, "pshmt_thr_%d_%d_%d", (int)getpid(), id, r);
        pshm_block *a, *b;
        unsigned flags = (r % 2) ? PSHM_UNTRACKED : 0;
        CHECK(pshm_block_create(&a, name, 4096, flags) == 0, "%s", pshm_last_error());
        memset(pshm_block_buf(a), id, 4096);
        CHECK(pshm_block_attach(&b, name, flags) == 0, "%s", pshm_last_error());
        const unsigned char *p = pshm_block_buf(b);
        CHECK(p[0] == id && p[4095] == id, "bytes differ in %s", name);
        pshm_block_free(b);
        CHECK(pshm_block_unlink(a) == 0, "%s", pshm_last_error());
        pshm_block_free(a);

        char missing[64];
        snprintf(missing, sizeof missing, "pshmt_missing_%d_%d", id, r);
        CHECK(pshm_block_attach(&b, missing, 0) == PSHM_ENOENT, "attach of a missing block");
        CHECK(strstr(pshm_last_error(), missing) != NULL, "message of another thread: %s",
              pshm_last_error());
    }
    return NULL;
}

/* One manager handle shared by every thread: requests are serialised. */
static pshm_manager *shared_manager;

static void *manager_requests(void *arg)
{
    (void)arg;
    for (int r = 0; r < 20; r++) {
        pshm_block *b;
        CHECK(pshm_manager_block(shared_manager, 1024, &b) == 0, "%s", pshm_last_error());
        char name[PSHM_NAME_MAX + 1];
        strcpy(name, pshm_block_name(b));
        memset(pshm_block_buf(b), 0x33, 1024);
        pshm_block_free(b);
        CHECK(pshm_manager_release(shared_manager, name) == 0, "%s", pshm_last_error());
    }
    return NULL;
}

/* Lists: concurrent atomic adds on one item must all count. */
static pshm_list *shared_list;

static void *list_adds(void *arg)
{
    (void)arg;
    for (int r = 0; r < 1000; r++)
        CHECK(pshm_list_add(shared_list, 0, 1, NULL) == 0, "%s", pshm_last_error());
    return NULL;
}

/* Same-type sets and gets race on 8 int and 8 float items: every value
 * read must be one some thread wrote whole (thread t writes t times
 * 0x0101010101010101 and t + 0.5), never a mix of two. */
enum { MIXED_ITEMS = 16 };
static const int64_t INT_PATTERN = 0x0101010101010101;

static void *same_type_sets(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < 2000; r++) {
        int64_t index = (r * 7 + id) % MIXED_ITEMS;
        pshm_value v = index % 2 ? pshm_float(id + 0.5) : pshm_int(id * INT_PATTERN);
        CHECK(pshm_list_set(shared_list, index, v) == 0, "%s", pshm_last_error());
        pshm_value got;
        index = (r * 5 + id + 1) % MIXED_ITEMS;
        CHECK(pshm_list_get(shared_list, index, &got) == 0, "%s", pshm_last_error());
        if (index % 2) {
            double whole = got.u.f - 0.5;
            CHECK(got.type == PSHM_FLOAT && whole == (int)whole && whole >= 0 &&
                      whole < THREADS,
                  "item %lld read %g", (long long)index, got.u.f);
        } else {
            CHECK(got.type == PSHM_INT && got.u.i % INT_PATTERN == 0 && got.u.i >= 0 &&
                      got.u.i / INT_PATTERN < THREADS,
                  "item %lld read %llx", (long long)index, (unsigned long long)got.u.i);
        }
    }
    return NULL;
}

/* The same race through pshm_list_get_int/_float and set_int/_float. */
static void *typed_sets(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int r = 0; r < 2000; r++) {
        int64_t index = (r * 7 + id) % MIXED_ITEMS;
        int rc = index % 2 ? pshm_list_set_float(shared_list, index, id + 0.5)
                           : pshm_list_set_int(shared_list, index, id * INT_PATTERN);
        CHECK(rc == 0, "%s", pshm_last_error());
        index = (r * 5 + id + 1) % MIXED_ITEMS;
        int64_t i;
        double f;
        if (index % 2) {
            CHECK(pshm_list_get_float(shared_list, index, &f) == 0, "%s", pshm_last_error());
            double whole = f - 0.5;
            CHECK(whole == (int)whole && whole >= 0 && whole < THREADS, "item %lld read %g",
                  (long long)index, f);
        } else {
            CHECK(pshm_list_get_int(shared_list, index, &i) == 0, "%s", pshm_last_error());
            CHECK(i % INT_PATTERN == 0 && i >= 0 && i / INT_PATTERN < THREADS,
                  "item %lld read %llx", (long long)index, (unsigned long long)i);
        }
    }
    return NULL;
}

static void run(const char *what, void *(*fn)(void *))
{
    pthread_t t[THREADS];
    int before = atomic_load(&failures);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, fn, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&failures) == before)
        passed++;
    printf("%s: %s\n", what, atomic_load(&failures) == before ? "ok" : "FAILED");
}

/* See the top comment: the tracker starts before any thread does. */
static int start_tracker(void)
{
    pshm_block *b;
    if (pshm_block_create(&b, NULL, 1, 0) < 0) {
        fprintf(stderr, "FAIL: %s\n", pshm_last_error());
        return -1;
    }
    pshm_block_unlink(b);
    pshm_block_free(b);
    return 0;
}

int main(void)
{
    if (start_tracker() < 0)
        return 1;
    run("blocks from 8 threads", churn);

    pshm_value zero = pshm_int(0);
    if (pshm_list_create(&shared_list, NULL, &zero, 1, 0) < 0) {
        fprintf(stderr, "FAIL: %s\n", pshm_last_error());
        return 1;
    }
    run("atomic adds from 8 threads", list_adds);
    pshm_value total;
    if (pshm_list_get(shared_list, 0, &total) < 0 || total.u.i != THREADS * 1000) {
        fprintf(stderr, "FAIL: the adds summed to %lld\n", (long long)total.u.i);
        atomic_fetch_add(&failures, 1);
    }
    pshm_block_unlink(pshm_list_block(shared_list));
    pshm_list_free(shared_list);

    pshm_value mixed[MIXED_ITEMS];
    for (int i = 0; i < MIXED_ITEMS; i++)
        mixed[i] = i % 2 ? pshm_float(0.5) : pshm_int(0);
    if (pshm_list_create(&shared_list, NULL, mixed, MIXED_ITEMS, 0) < 0) {
        fprintf(stderr, "FAIL: %s\n", pshm_last_error());
        return 1;
    }
    run("same-type gets and sets from 8 threads", same_type_sets);
    run("typed gets and sets from 8 threads", typed_sets);
    pshm_block_unlink(pshm_list_block(shared_list));
    pshm_list_free(shared_list);

    fflush(stdout); /* under TSan the forked server's exit flushed a copy */
    if (pshm_manager_start(&shared_manager, NULL, NULL, 0) < 0) {
        fprintf(stderr, "FAIL: %s\n", pshm_last_error());
        return 1;
    }
    run("one manager handle shared by 8 threads", manager_requests);
    pshm_manager_shutdown(shared_manager);
    printf("%d passed, %d failed\n", passed, atomic_load(&failures) ? 1 : 0);
    return atomic_load(&failures) ? 1 : 0;
}
