/*
 * win_lock — the locks on Windows, with real processes (this program run
 * again as a child): a holder killed by TerminateProcess while another
 * process waits (WAIT_ABANDONED) and while none does (its mutex dies with
 * it); repair and "not recoverable"; exact counts from 4 processes; the
 * readers-writer lock's sharing, a dead reader and a dead writer; named
 * locks; misuse with Linux's messages.
 *
 * The block: a mutex at 0, counters at 64, a readers-writer lock at 128.
 */
#include "check.h"
#include "child.h"
#include "pshm.h"

#include <windows.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MUTEX_AT = 0, COUNT_AT = 64, RW_AT = 128, BLOCK_SIZE = 4096 };

/* Start this program again as `child ARGS`. */
static bool spawn(child *c, const char *args)
{
    char child_args[MAX_PATH];
    snprintf(child_args, sizeof child_args, "child %s", args);
    return spawn_exe(c, NULL, child_args);
}

/* Spawn `child ARGS` and wait for its first line. */
static void start(child *c, const char *args, char *line, size_t cap)
{
    line[0] = '\0';
    if (spawn(c, args))
        read_line(c, line, cap);
}

/* ---- the child side ---------------------------------------------------------- */

static volatile int64_t *counter(pshm_block *b)
{
    return (volatile int64_t *)((char *)pshm_block_buf(b) + COUNT_AT);
}

/* A read-modify-write that loses updates unless the lock excludes others. */
static void bump(pshm_block *b)
{
    int64_t v = *counter(b);
    if ((v & 15) == 0)
        Sleep(0); /* give a racing process its chance to interleave */
    *counter(b) = v + 1;
}

static int child_main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    const char *mode = argv[2];
    pshm_block *b;
    if (pshm_block_attach(&b, argv[3], 0) < 0) {
        printf("attach: %s\n", pshm_last_error());
        return 1;
    }
    int n = argc > 4 ? atoi(argv[4]) : 0, rc = 0;
    if (strcmp(mode, "hold-mutex") == 0)
        rc = pshm_mutex_lock(b, MUTEX_AT, 10000);
    else if (strcmp(mode, "hold-read") == 0)
        rc = pshm_rwlock_rdlock(b, RW_AT, 10000);
    else if (strcmp(mode, "hold-write") == 0)
        rc = pshm_rwlock_wrlock(b, RW_AT, 10000);
    else if (strcmp(mode, "try-mutex") == 0)
        rc = pshm_mutex_lock(b, MUTEX_AT, 0);
    else if (strcmp(mode, "count-mutex") == 0) {
        for (int i = 0; i < n && rc >= 0; i++)
            if ((rc = pshm_mutex_lock(b, MUTEX_AT, PSHM_FOREVER)) >= 0) {
                bump(b);
                rc = pshm_mutex_unlock(b, MUTEX_AT);
            }
    } else if (strcmp(mode, "count-write") == 0) {
        for (int i = 0; i < n && rc >= 0; i++)
            if ((rc = pshm_rwlock_wrlock(b, RW_AT, PSHM_FOREVER)) >= 0) {
                bump(b);
                rc = pshm_rwlock_wrunlock(b, RW_AT);
            }
    }
    if (rc < 0)
        printf("%d %s\n", rc, pshm_last_error());
    else
        printf("%s\n", strncmp(mode, "hold", 4) == 0 ? "held" : "done");
    fflush(stdout);
    if (strncmp(mode, "hold", 4) == 0)
        Sleep(INFINITE); /* until killed */
    return 0;
}

/* ---- the tests --------------------------------------------------------------- */

static pshm_block *fresh_block(const char *what)
{
    char name[64];
    snprintf(name, sizeof name, "pshm_winlock_%lu_%s", (unsigned long)GetCurrentProcessId(),
             what);
    pshm_block *b = NULL;
    CHECK(pshm_block_create(&b, name, BLOCK_SIZE, 0) == 0, "create: %s", pshm_last_error());
    CHECK(pshm_mutex_init(b, MUTEX_AT) == 0, "mutex init: %s", pshm_last_error());
    CHECK(pshm_rwlock_init(b, RW_AT) == 0, "rwlock init: %s", pshm_last_error());
    return b;
}

static void want_line(child *c, const char *args, const char *want)
{
    char line[256];
    start(c, args, line, sizeof line);
    CHECK(strcmp(line, want) == 0, "child %s said \"%s\" (want \"%s\")", args, line, want);
}

static child *victim;
static DWORD WINAPI kill_later(void *arg)
{
    (void)arg;
    Sleep(300);
    TerminateProcess(victim->pi.hProcess, 9);
    return 0;
}

static void test_mutex_holder_killed_while_waiting(void)
{
    pshm_block *b = fresh_block("waiting");
    char args[128];
    child c;
    snprintf(args, sizeof args, "hold-mutex %s", pshm_block_name(b));
    want_line(&c, args, "held");
    char want[256];
    snprintf(want, sizeof want, "mutex lock \"%s\" at offset 0: %s", pshm_block_name(b),
             pshm_strerror(PSHM_ETIMEDOUT));
    CHECK_ERR(pshm_mutex_lock(b, MUTEX_AT, 0), PSHM_ETIMEDOUT, want);
    victim = &c;
    HANDLE t = CreateThread(NULL, 0, kill_later, NULL, 0, NULL);
    int rc = pshm_mutex_lock(b, MUTEX_AT, 10000);
    CHECK(rc == PSHM_OWNERDEAD, "a waiter whose holder was killed got %d: %s", rc,
          pshm_last_error());
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    reap(&c);
    CHECK(pshm_mutex_consistent(b, MUTEX_AT) == 0, "consistent: %s", pshm_last_error());
    CHECK(pshm_mutex_unlock(b, MUTEX_AT) == 0, "unlock: %s", pshm_last_error());
    CHECK(pshm_mutex_lock(b, MUTEX_AT, 0) == 0, "after repair: %s", pshm_last_error());
    CHECK(pshm_mutex_unlock(b, MUTEX_AT) == 0, "unlock: %s", pshm_last_error());
    pshm_block_free(b);
}

static void test_mutex_holder_killed_alone(void)
{
    pshm_block *b = fresh_block("alone");
    char args[128], want[256];
    child c;
    snprintf(args, sizeof args, "hold-mutex %s", pshm_block_name(b));
    want_line(&c, args, "held");
    kill_child(&c); /* no other handle: its kernel mutex dies with it */
    CHECK(pshm_mutex_lock(b, MUTEX_AT, 0) == PSHM_OWNERDEAD, "after the lone holder died: %s",
          pshm_last_error());
    /* Unlocked without repair: broken, for everyone. */
    CHECK(pshm_mutex_unlock(b, MUTEX_AT) == 0, "unlock: %s", pshm_last_error());
    snprintf(want, sizeof want,
             "mutex lock \"%s\" at offset 0: a holder died and the next one unlocked without "
             "marking it consistent; the lock refuses everyone",
             pshm_block_name(b));
    CHECK_ERR(pshm_mutex_lock(b, MUTEX_AT, PSHM_FOREVER), PSHM_ENOTRECOVERABLE, want);
    snprintf(args, sizeof args, "try-mutex %s", pshm_block_name(b));
    char child_want[300];
    snprintf(child_want, sizeof child_want, "%d %s", PSHM_ENOTRECOVERABLE, want);
    want_line(&c, args, child_want);
    reap(&c);
    pshm_block_free(b);
}

static void test_counts_exact(const char *mode, const char *what)
{
    pshm_block *b = fresh_block(what);
    enum { PROCS = 4, EACH = 300 };
    child c[PROCS];
    char args[128];
    snprintf(args, sizeof args, "%s %s %d", mode, pshm_block_name(b), EACH);
    for (int i = 0; i < PROCS; i++)
        CHECK(spawn(&c[i], args), "spawn");
    for (int i = 0; i < PROCS; i++) {
        char line[256];
        read_line(&c[i], line, sizeof line);
        CHECK(strcmp(line, "done") == 0, "counter %d said \"%s\"", i, line);
        reap(&c[i]);
    }
    CHECK(*counter(b) == PROCS * EACH, "%s: %lld increments, want %d", mode,
          (long long)*counter(b), PROCS * EACH);
    pshm_block_free(b);
}

static void test_rwlock_readers_and_dead_holders(void)
{
    pshm_block *b = fresh_block("rw");
    char args[128];
    child c;
    snprintf(args, sizeof args, "hold-read %s", pshm_block_name(b));
    want_line(&c, args, "held");
    CHECK(pshm_rwlock_rdlock(b, RW_AT, 0) == 0, "a second reader: %s", pshm_last_error());
    CHECK(pshm_rwlock_rdunlock(b, RW_AT) == 0, "rdunlock: %s", pshm_last_error());
    DWORD t0 = GetTickCount();
    CHECK(pshm_rwlock_wrlock(b, RW_AT, 200) == PSHM_ETIMEDOUT, "a writer beside a reader: %s",
          pshm_last_error());
    CHECK(GetTickCount() - t0 >= 190, "the 200 ms wait ended after %lu ms",
          (unsigned long)(GetTickCount() - t0));
    kill_child(&c);
    CHECK(pshm_rwlock_wrlock(b, RW_AT, 5000) == 0, "after the reader died (no report): %s",
          pshm_last_error());
    CHECK(pshm_rwlock_wrunlock(b, RW_AT) == 0, "wrunlock: %s", pshm_last_error());

    snprintf(args, sizeof args, "hold-write %s", pshm_block_name(b));
    want_line(&c, args, "held");
    CHECK(pshm_rwlock_rdlock(b, RW_AT, 0) == PSHM_ETIMEDOUT, "a reader beside a writer: %s",
          pshm_last_error());
    kill_child(&c);
    CHECK(pshm_rwlock_rdlock(b, RW_AT, 5000) == 0, "a reader after the writer died: %s",
          pshm_last_error());
    CHECK(pshm_rwlock_rdunlock(b, RW_AT) == 0, "rdunlock: %s", pshm_last_error());
    CHECK(pshm_rwlock_wrlock(b, RW_AT, 5000) == PSHM_OWNERDEAD, "the next writer is told: %s",
          pshm_last_error());
    CHECK(pshm_rwlock_consistent(b, RW_AT) == 0, "consistent: %s", pshm_last_error());
    CHECK(pshm_rwlock_wrunlock(b, RW_AT) == 0, "wrunlock: %s", pshm_last_error());
    CHECK(pshm_rwlock_wrlock(b, RW_AT, 0) == 0, "told once only: %s", pshm_last_error());
    CHECK(pshm_rwlock_wrunlock(b, RW_AT) == 0, "wrunlock: %s", pshm_last_error());
    pshm_block_free(b);
}

/* Misuse, with the messages Linux gives (tests/test_lock.c). */
static void test_misuse(void)
{
    pshm_block *b = fresh_block("misuse");
    const char *n = pshm_block_name(b);
    char want[300];
#define WANT(...) snprintf(want, sizeof want, __VA_ARGS__)
    WANT(
        "mutex lock \"%s\" at offset 8: the offset is not a multiple of PSHM_LOCK_ALIGN (64)",
        n);
    CHECK_ERR(pshm_mutex_lock(b, 8, 0), PSHM_EINVAL, want);
    WANT(
        "rwlock init \"%s\" at offset 3968: the lock's 2112 bytes run past the end of the "
        "block (size 4096)",
        n);
    CHECK_ERR(pshm_rwlock_init(b, 3968), PSHM_EINVAL, want);
    WANT(
        "mutex lock \"%s\" at offset 3968: no mutex there (tag 0000000000000000): never "
        "initialised, overwritten, or another kind or version of lock",
        n);
    /* %#018llx of 0 prints 0 without "0x", as glibc does. */
    CHECK(pshm_mutex_lock(b, 3968, 0) == PSHM_EBADLOCK, "uninitialised: %s",
          pshm_last_error());
    WANT(
        "mutex init \"%s\" at offset 0: the area already holds a mutex (zero it first to "
        "replace a lock no process uses)",
        n);
    CHECK_ERR(pshm_mutex_init(b, MUTEX_AT), PSHM_EEXIST, want);
    WANT("mutex unlock \"%s\" at offset 0: %s", n, pshm_strerror(PSHM_ENOTHELD));
    CHECK_ERR(pshm_mutex_unlock(b, MUTEX_AT), PSHM_ENOTHELD, want);
    CHECK(pshm_mutex_lock(b, MUTEX_AT, 0) == 0, "lock: %s", pshm_last_error());
    WANT("mutex lock \"%s\" at offset 0: %s", n, pshm_strerror(PSHM_EDEADLK));
    CHECK_ERR(pshm_mutex_lock(b, MUTEX_AT, 0), PSHM_EDEADLK, want);
    WANT(
        "close \"%s\": the calling thread holds a lock in the block (its mutex near offset "
        "0); unlock it first, or the lock could never be released if this process died",
        n);
    CHECK_ERR(pshm_block_close(b), PSHM_EBUSY, want);
    WANT("mutex consistent \"%s\" at offset 0: the mutex is not held after PSHM_OWNERDEAD",
         n);
    CHECK_ERR(pshm_mutex_consistent(b, MUTEX_AT), PSHM_EINVAL, want);
    CHECK(pshm_mutex_unlock(b, MUTEX_AT) == 0, "unlock: %s", pshm_last_error());

    CHECK(pshm_rwlock_rdlock(b, RW_AT, 0) == 0, "rdlock: %s", pshm_last_error());
    WANT("rwlock wrlock \"%s\" at offset 128: %s", n, pshm_strerror(PSHM_EDEADLK));
    CHECK_ERR(pshm_rwlock_wrlock(b, RW_AT, 0), PSHM_EDEADLK, want);
    CHECK(pshm_rwlock_rdunlock(b, RW_AT) == 0, "rdunlock: %s", pshm_last_error());
    WANT("rwlock rdunlock \"%s\" at offset 128: %s", n, pshm_strerror(PSHM_ENOTHELD));
    CHECK_ERR(pshm_rwlock_rdunlock(b, RW_AT), PSHM_ENOTHELD, want);
    CHECK(pshm_rwlock_wrlock(b, RW_AT, 0) == 0, "wrlock: %s", pshm_last_error());
    WANT(
        "rwlock rdunlock \"%s\" at offset 128: the calling thread holds the write lock, not "
        "a read lock (use pshm_rwlock_wrunlock)",
        n);
    CHECK_ERR(pshm_rwlock_rdunlock(b, RW_AT), PSHM_ENOTHELD, want);
    CHECK(pshm_rwlock_wrunlock(b, RW_AT) == 0, "wrunlock: %s", pshm_last_error());
    WANT("mutex lock \"%s\" at offset 0: timeout -5 ms is negative (PSHM_FOREVER is -1)", n);
    CHECK_ERR(pshm_mutex_lock(b, MUTEX_AT, -5), PSHM_EINVAL, want);
    WANT(
        "rwlock rdlock \"%s\" at offset 0: no readers-writer lock there (tag "
        "0x70736d6c00000201): never initialised, overwritten, or another kind or version of "
        "lock",
        n);
    CHECK_ERR(pshm_rwlock_rdlock(b, MUTEX_AT, 0), PSHM_EBADLOCK, want);
    CHECK(pshm_block_close(b) == 0, "close once nothing is held: %s", pshm_last_error());
    WANT("mutex lock \"%s\" at offset 0: %s", n, pshm_strerror(PSHM_ECLOSED));
    CHECK_ERR(pshm_mutex_lock(b, MUTEX_AT, 0), PSHM_ECLOSED, want);
#undef WANT
    pshm_block_free(b);
}

static void test_named_lock(void)
{
    char name[64];
    snprintf(name, sizeof name, "pshm_winlock_%lu_named",
             (unsigned long)GetCurrentProcessId());
    pshm_block *l1, *l2;
    CHECK(pshm_lock_open(&l1, name, 0) == 0, "open (create): %s", pshm_last_error());
    CHECK(pshm_lock_open(&l2, name, 0) == 0, "open (attach): %s", pshm_last_error());
    CHECK(pshm_rwlock_wrlock(l1, 0, 0) == 0, "wrlock: %s", pshm_last_error());
    CHECK(pshm_rwlock_wrlock(l2, 0, 0) == PSHM_EDEADLK,
          "the same thread through a second handle: %s", pshm_last_error());
    CHECK(pshm_rwlock_wrunlock(l2, 0) == 0, "wrunlock through the other handle: %s",
          pshm_last_error());
    pshm_block_free(l1);
    pshm_block_free(l2);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        return child_main(argc, argv);
    setvbuf(stdout, NULL, _IONBF, 0); /* a hang still shows what went before */
    test_misuse();
    test_mutex_holder_killed_while_waiting();
    test_mutex_holder_killed_alone();
    test_counts_exact("count-mutex", "cmutex");
    test_counts_exact("count-write", "cwrite");
    test_rwlock_readers_and_dead_holders();
    test_named_lock();
    return check_report("win_lock");
}
