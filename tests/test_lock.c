/*
 * test_lock.c — robust locks inside blocks, with real processes: what each
 * call does, every misuse's error, holders killed with SIGKILL, timeouts,
 * writer preference, named locks, and 8 processes incrementing one
 * counter. (The 1,000-round kill runs are test_lock_kill.c.)
 */
#include "support.h"

#include "pshm.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One kind of lock as the tests drive it; READER has no consistent call. */
typedef struct lock_ops {
    const char *kind;
    int (*init)(pshm_block *, size_t);
    int (*lock)(pshm_block *, size_t, int64_t);
    int (*unlock)(pshm_block *, size_t);
    int (*consistent)(pshm_block *, size_t);
} lock_ops;

static const lock_ops MUTEX = {"mutex", pshm_mutex_init, pshm_mutex_lock, pshm_mutex_unlock,
                               pshm_mutex_consistent};
static const lock_ops WRITER = {"writer", pshm_rwlock_init, pshm_rwlock_wrlock,
                                pshm_rwlock_wrunlock, pshm_rwlock_consistent};
static const lock_ops READER = {"reader", pshm_rwlock_init, pshm_rwlock_rdlock,
                                pshm_rwlock_rdunlock, NULL};

static pshm_block *new_block(size_t size)
{
    char name[64];
    t_name(name, sizeof name, "lock");
    pshm_block *b = NULL;
    cr_assert_eq(pshm_block_create(&b, name, size, PSHM_UNTRACKED), 0, "%s",
                 pshm_last_error());
    return b;
}

static void destroy(pshm_block *b)
{
    cr_assert_eq(pshm_block_unlink(b), 0, "%s", pshm_last_error());
    pshm_block_free(b);
}

/* A block with a lock of o's kind at offset 0. */
static pshm_block *new_lock(const lock_ops *o)
{
    pshm_block *b = new_block(8192);
    cr_assert_eq(o->init(b, 0), 0, "%s", pshm_last_error());
    return b;
}

/* A child process that locks, says so, and holds until told or killed. */
typedef struct holder {
    pid_t pid;
    int cmd; /* we write: 'u' unlock and exit */
    int res; /* it writes: the lock's return, then the unlock's */
} holder;

static holder hold(pshm_block *b, const lock_ops *o, int64_t timeout_ms)
{
    int to[2], from[2];
    cr_assert_eq(pipe(to), 0);
    cr_assert_eq(pipe(from), 0);
    holder h = {fork(), to[1], from[0]};
    cr_assert_geq(h.pid, 0);
    if (h.pid == 0) {
        int rc = o->lock(b, 0, timeout_ms);
        char c;
        if (write(from[1], &rc, sizeof rc) != sizeof rc || read(to[0], &c, 1) != 1)
            _exit(2);
        rc = o->unlock(b, 0);
        _exit(write(from[1], &rc, sizeof rc) == sizeof rc ? 0 : 2);
    }
    close(to[0]);
    close(from[1]);
    return h;
}

/* The holder's next reported return code (fails the test after 10 s). */
static int holder_rc(holder *h)
{
    int rc;
    struct pollfd pfd = {.fd = h->res, .events = POLLIN};
    cr_assert(poll(&pfd, 1, 10000) == 1 && read(h->res, &rc, sizeof rc) == sizeof rc,
              "holder %d said nothing in 10 s", (int)h->pid);
    return rc;
}

static void holder_end(holder *h, bool killed)
{
    if (killed)
        kill(h->pid, SIGKILL);
    else
        cr_assert_eq(write(h->cmd, "u", 1), 1);
    if (!killed)
        cr_assert_eq(holder_rc(h), 0, "the holder's unlock");
    int st = t_wait(h->pid, 10);
    cr_assert(killed ? WIFSIGNALED(st) : WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(h->cmd);
    close(h->res);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the basics ---------------------------------------------------------- */

static void lock_unlock_relock(const lock_ops *o)
{
    pshm_block *b = new_lock(o);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(o->lock(b, 0, PSHM_FOREVER), 0, "%s: %s", o->kind, pshm_last_error());
        cr_assert_eq(o->unlock(b, 0), 0, "%s: %s", o->kind, pshm_last_error());
    }
    destroy(b);
}

Test(lock, lock_unlock_relock)
{
    lock_unlock_relock(&MUTEX);
    lock_unlock_relock(&WRITER);
    lock_unlock_relock(&READER);
}

/* A held lock excludes another process: try (0) and a timed wait fail with
 * PSHM_ETIMEDOUT, the timed one only after its timeout; released, it is
 * taken at once. */
static void excludes(const lock_ops *holder_ops, const lock_ops *o)
{
    pshm_block *b = new_lock(holder_ops);
    holder h = hold(b, holder_ops, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&h), 0);
    cr_assert_eq(o->lock(b, 0, 0), PSHM_ETIMEDOUT, "%s after %s", o->kind, holder_ops->kind);
    cr_assert(strstr(pshm_last_error(), pshm_block_name(b)) != NULL, "%s", pshm_last_error());
    double t0 = now_s();
    cr_assert_eq(o->lock(b, 0, 300), PSHM_ETIMEDOUT);
    cr_assert_geq(now_s() - t0, 0.29, "the timeout was cut short");
    holder_end(&h, false);
    cr_assert_eq(o->lock(b, 0, 0), 0, "%s", pshm_last_error());
    cr_assert_eq(o->unlock(b, 0), 0);
    destroy(b);
}

Test(lock, a_held_lock_excludes_and_timeouts_are_honoured)
{
    excludes(&MUTEX, &MUTEX);
    excludes(&WRITER, &WRITER);
    excludes(&WRITER, &READER);
    excludes(&READER, &WRITER);
}

Test(lock, readers_share)
{
    pshm_block *b = new_lock(&READER);
    holder h1 = hold(b, &READER, PSHM_FOREVER), h2 = hold(b, &READER, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&h1), 0);
    cr_assert_eq(holder_rc(&h2), 0);
    cr_assert_eq(pshm_rwlock_rdlock(b, 0, 0), 0, "a third reader: %s", pshm_last_error());
    cr_assert_eq(pshm_rwlock_rdunlock(b, 0), 0);
    holder_end(&h1, false);
    holder_end(&h2, false);
    destroy(b);
}

/* Readers hold; a writer waits; a new reader must now wait too (else a
 * stream of readers starves the writer). Once the readers leave, the
 * writer gets it before the late reader. */
Test(lock, a_waiting_writer_holds_off_new_readers)
{
    pshm_block *b = new_lock(&READER);
    holder r = hold(b, &READER, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&r), 0);
    holder w = hold(b, &WRITER, PSHM_FOREVER);
    /* The writer is waiting once a reader can no longer get in. */
    bool blocked = false;
    for (int i = 0; i < 1000 && !blocked; i++) {
        int rc = pshm_rwlock_rdlock(b, 0, 0);
        if (rc == 0)
            cr_assert_eq(pshm_rwlock_rdunlock(b, 0), 0);
        else {
            cr_assert_eq(rc, PSHM_ETIMEDOUT, "%s", pshm_last_error());
            blocked = true;
        }
        usleep(5000);
    }
    cr_assert(blocked, "readers still got in past a waiting writer after 5 s");
    holder_end(&r, false);
    cr_assert_eq(holder_rc(&w), 0, "the writer, once the reader left");
    cr_assert_eq(pshm_rwlock_rdlock(b, 0, 0), PSHM_ETIMEDOUT, "the writer holds it");
    holder_end(&w, false);
    cr_assert_eq(pshm_rwlock_rdlock(b, 0, 0), 0);
    cr_assert_eq(pshm_rwlock_rdunlock(b, 0), 0);
    destroy(b);
}

/* ---- misuse ---------------------------------------------------------------- */

static void check_error(int rc, int want, const char *name, const char *fragment)
{
    cr_assert_eq(rc, want, "got %d, want %d: %s", rc, want, pshm_last_error());
    if (name != NULL)
        cr_assert(strstr(pshm_last_error(), name) != NULL, "%s", pshm_last_error());
    cr_assert(strstr(pshm_last_error(), fragment) != NULL, "want \"%s\" in: %s", fragment,
              pshm_last_error());
}

static void misuse(const lock_ops *o, const lock_ops *other)
{
    pshm_block *b = new_block(4096);
    const char *name = pshm_block_name(b);
    check_error(o->lock(b, 0, 0), PSHM_EBADLOCK, name, "never initialised");
    check_error(o->unlock(b, 0), PSHM_EBADLOCK, name, "at offset 0");
    check_error(o->init(b, 8), PSHM_EINVAL, name, "PSHM_LOCK_ALIGN");
    check_error(o->lock(b, 72, 0), PSHM_EINVAL, name, "at offset 72");
    check_error(o->init(b, 4096), PSHM_EINVAL, name, "past the end");
    if (o != &MUTEX) /* a mutex fits in the last 64 bytes */
        check_error(o->init(b, 4032), PSHM_EINVAL, name, "past the end");
    check_error(o->lock(b, SIZE_MAX - 63, 0), PSHM_EINVAL, name, "past the end");
    check_error(o->init(NULL, 0), PSHM_EINVAL, NULL, "NULL");
    cr_assert_eq(o->init(b, 64), 0, "%s", pshm_last_error());
    check_error(o->init(b, 64), PSHM_EEXIST, name, "already holds");
    check_error(other->lock(b, 64, 0), PSHM_EBADLOCK, name, "another kind");
    check_error(o->lock(b, 64, -2), PSHM_EINVAL, name, "negative");
    check_error(o->unlock(b, 64), PSHM_ENOTHELD, name, "does not hold");
    cr_assert_eq(o->lock(b, 64, PSHM_FOREVER), 0);
    if (o != &READER)
        check_error(o->lock(b, 64, PSHM_FOREVER), PSHM_EDEADLK, name, "already holds");
    check_error(pshm_block_close(b), PSHM_EBUSY, name, "holds a lock");
    cr_assert(pshm_block_is_open(b), "close refused: still mapped");
    cr_assert_eq(o->unlock(b, 64), 0);
    check_error(o->unlock(b, 64), PSHM_ENOTHELD, name, "does not hold");
    if (o->consistent != NULL)
        check_error(o->consistent(b, 64), PSHM_EINVAL, name, "PSHM_OWNERDEAD");
    /* Overwritten by a stray write: refused, never undefined behaviour. */
    memset(pshm_block_buf(b), 0xab, 4096);
    check_error(o->lock(b, 64, 0), PSHM_EBADLOCK, name, "overwritten");
    memset(pshm_block_buf(b), 0, 4096);
    cr_assert_eq(pshm_block_close(b), 0);
    check_error(o->lock(b, 64, 0), PSHM_ECLOSED, name, "closed");
    destroy(b);
}

Test(lock, misuse_is_a_clear_error)
{
    misuse(&MUTEX, &WRITER);
    misuse(&WRITER, &MUTEX);
    misuse(&READER, &MUTEX);
}

Test(lock, a_read_only_handle_is_refused)
{
    pshm_block *b = new_lock(&MUTEX), *ro = NULL;
    cr_assert_eq(pshm_block_attach(&ro, pshm_block_name(b), PSHM_READONLY | PSHM_UNTRACKED),
                 0);
    check_error(pshm_mutex_lock(ro, 0, 0), PSHM_EINVAL, pshm_block_name(b), "read-only");
    pshm_block_free(ro);
    destroy(b);
}

Test(lock, read_and_write_unlock_are_not_interchangeable)
{
    pshm_block *b = new_lock(&WRITER);
    cr_assert_eq(pshm_rwlock_wrlock(b, 0, 0), 0);
    check_error(pshm_rwlock_rdunlock(b, 0), PSHM_ENOTHELD, NULL, "write lock");
    cr_assert_eq(pshm_rwlock_wrunlock(b, 0), 0);
    cr_assert_eq(pshm_rwlock_rdlock(b, 0, 0), 0);
    check_error(pshm_rwlock_wrunlock(b, 0), PSHM_ENOTHELD, NULL, "does not hold");
    check_error(pshm_rwlock_wrlock(b, 0, PSHM_FOREVER), PSHM_EDEADLK, NULL, "already holds");
    cr_assert_eq(pshm_rwlock_rdunlock(b, 0), 0);
    cr_assert_eq(pshm_rwlock_wrlock(b, 0, 0), 0, "nothing left behind: %s",
                 pshm_last_error());
    cr_assert_eq(pshm_rwlock_wrunlock(b, 0), 0);
    destroy(b);
}

/* pshm_block_free on a handle whose lock the thread holds keeps the
 * mapping, so a lock taken later in another block still unlocks (glibc
 * walks the robust list through every held mutex). */
Test(lock, free_while_holding_keeps_the_lock_mapped)
{
    pshm_block *a = new_lock(&MUTEX), *c = new_lock(&MUTEX);
    char name[PSHM_NAME_MAX + 1];
    strcpy(name, pshm_block_name(a));
    cr_assert_eq(pshm_mutex_lock(c, 0, 0), 0);
    cr_assert_eq(pshm_mutex_lock(a, 0, 0), 0);
    pshm_block_free(a);
    cr_assert_eq(pshm_mutex_unlock(c, 0), 0, "%s", pshm_last_error());
    destroy(c);
    cr_assert_eq(pshm_unlink(name), 0);
}

/*
 * pshm's mutexes share each thread's robust list with glibc's robust
 * mutexes (src/robust.h links them the way glibc does). A child takes
 * glibc and pshm mutexes in turn, unlocks some in the middle of the list
 * (so glibc rewrites pshm's links and pshm rewrites glibc's), and is
 * killed: the kernel's walk must still reach every mutex it held.
 */
Test(lock, shares_the_robust_list_with_glibc_mutexes)
{
    pshm_block *b = new_lock(&MUTEX);
    cr_assert_eq(pshm_mutex_init(b, 64), 0, "%s", pshm_last_error());
    pthread_mutex_t *g = (pthread_mutex_t *)((char *)pshm_block_buf(b) + 4096);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_mutex_init(&g[i], &attr), 0);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        bool ok = pthread_mutex_lock(&g[0]) == 0 && pshm_mutex_lock(b, 0, 0) == 0 &&
                  pthread_mutex_lock(&g[1]) == 0 && pshm_mutex_lock(b, 64, 0) == 0 &&
                  pthread_mutex_lock(&g[2]) == 0;
        /* The list, first to last: g2 m64 g1 m0 g0. */
        ok = ok && pthread_mutex_unlock(&g[1]) == 0 && pshm_mutex_unlock(b, 0) == 0 &&
             pthread_mutex_lock(&g[1]) == 0; /* now g1 g2 m64 g0 */
        if (write(ready[1], &ok, sizeof ok) != sizeof ok)
            _exit(2);
        pause();
        _exit(0);
    }
    bool ok = false;
    cr_assert_eq(read(ready[0], &ok, sizeof ok), (ssize_t)sizeof ok);
    cr_assert(ok, "the child could not take its locks");
    kill(pid, SIGKILL);
    t_wait(pid, 10);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_mutex_trylock(&g[i]), EOWNERDEAD, "glibc mutex %d", i);
    cr_assert_eq(pshm_mutex_lock(b, 64, 0), PSHM_OWNERDEAD, "%s", pshm_last_error());
    cr_assert_eq(pshm_mutex_lock(b, 0, 0), 0, "the mutex the child unlocked: %s",
                 pshm_last_error());
    cr_assert_eq(pshm_mutex_consistent(b, 64), 0);
    cr_assert_eq(pshm_mutex_unlock(b, 64), 0);
    cr_assert_eq(pshm_mutex_unlock(b, 0), 0);
    for (int i = 0; i < 3; i++) {
        pthread_mutex_consistent(&g[i]);
        pthread_mutex_unlock(&g[i]);
    }
    close(ready[0]);
    close(ready[1]);
    destroy(b);
}

/* A forked child is another holder, not its parent: it cannot unlock the
 * parent's lock, and trying it is a timeout, not a relock. (A child that
 * kept its parent's thread ID, which pshm caches per thread, would do
 * both, and the kernel would never release what the child holds.) */
Test(lock, a_forked_child_is_not_its_parent)
{
    pshm_block *b = new_lock(&MUTEX);
    cr_assert_eq(pshm_mutex_lock(b, 0, 0), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int unlock = pshm_mutex_unlock(b, 0), lock = pshm_mutex_lock(b, 0, 0);
        _exit(unlock == PSHM_ENOTHELD && lock == PSHM_ETIMEDOUT ? 0 : 1);
    }
    int st = t_wait(pid, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child acted as its parent");
    cr_assert_eq(pshm_mutex_unlock(b, 0), 0, "%s", pshm_last_error());
    destroy(b);
}

/* Make get_robust_list(2) fail with EPERM in this process, as a seccomp
 * sandbox might. */
static bool forbid_get_robust_list(void)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_get_robust_list, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof *filter, filter};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/* A thread that cannot be set up for robust locks gets PSHM_ESYS saying
 * so, never a lock's own answer (EPERM read as "not held"). */
Test(lock, a_thread_that_cannot_be_set_up_is_told_why)
{
    pshm_block *b = new_lock(&MUTEX);
    pid_t pid = fork(); /* a fresh process: nothing set up yet */
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (!forbid_get_robust_list())
            _exit(2);
        char want[256];
        snprintf(want, sizeof want,
                 "mutex lock \"%s\" at offset 0: cannot set this thread up for robust locks: "
                 "get_robust_list: %s",
                 pshm_block_name(b), strerror(EPERM));
        int rc = pshm_mutex_lock(b, 0, 0);
        if (rc == PSHM_ESYS && strcmp(pshm_last_error(), want) == 0)
            _exit(0);
        fprintf(stderr, "got %d \"%s\"\nwant %d \"%s\"\n", rc, pshm_last_error(), PSHM_ESYS,
                want);
        _exit(1);
    }
    int st = t_wait(pid, 10);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 2)
        cr_skip_test("seccomp filters are not permitted here");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child was not told PSHM_ESYS");
    destroy(b);
}

static void *lock_and_return(void *arg)
{
    return (void *)(intptr_t)pshm_mutex_lock(arg, 0, 0);
}

/* A thread that ends while holding a lock releases it as a dying process
 * does: the next locker is told. */
Test(lock, a_thread_that_ends_holding_is_reported)
{
    pshm_block *b = new_lock(&MUTEX);
    pthread_t t;
    void *rc;
    cr_assert_eq(pthread_create(&t, NULL, lock_and_return, b), 0);
    cr_assert_eq(pthread_join(t, &rc), 0);
    cr_assert_eq((intptr_t)rc, 0, "the thread's lock");
    cr_assert_eq(pshm_mutex_lock(b, 0, 0), PSHM_OWNERDEAD, "%s", pshm_last_error());
    cr_assert_eq(pshm_mutex_consistent(b, 0), 0);
    cr_assert_eq(pshm_mutex_unlock(b, 0), 0);
    destroy(b);
}

/* ---- dead holders ------------------------------------------------------------ */

/* Killed holding it: the next locker gets it at once, told once. */
static void dead_holder_reported_once(const lock_ops *o)
{
    pshm_block *b = new_lock(o);
    holder h = hold(b, o, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&h), 0);
    holder_end(&h, true);
    cr_assert_eq(o->lock(b, 0, 2000), PSHM_OWNERDEAD, "%s: %s", o->kind, pshm_last_error());
    cr_assert_eq(o->consistent(b, 0), 0, "%s", pshm_last_error());
    cr_assert_eq(o->unlock(b, 0), 0);
    cr_assert_eq(o->lock(b, 0, 0), 0, "%s: reported twice", o->kind);
    cr_assert_eq(o->unlock(b, 0), 0);
    destroy(b);
}

Test(lock, a_killed_holder_is_reported_once)
{
    dead_holder_reported_once(&MUTEX);
    dead_holder_reported_once(&WRITER);
}

/* Told, but unlocked without consistent: refused for good, never a hang. */
static void not_repaired_is_refused(const lock_ops *o)
{
    pshm_block *b = new_lock(o);
    holder h = hold(b, o, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&h), 0);
    holder_end(&h, true);
    cr_assert_eq(o->lock(b, 0, 2000), PSHM_OWNERDEAD);
    cr_assert_eq(o->unlock(b, 0), 0);
    check_error(o->lock(b, 0, PSHM_FOREVER), PSHM_ENOTRECOVERABLE, pshm_block_name(b),
                "consistent");
    holder other = hold(b, o, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&other), PSHM_ENOTRECOVERABLE, "in another process too");
    holder_end(&other, true);
    if (o == &WRITER)
        check_error(pshm_rwlock_rdlock(b, 0, PSHM_FOREVER), PSHM_ENOTRECOVERABLE, NULL,
                    "consistent");
    destroy(b);
}

Test(lock, unlock_without_consistent_refuses_everyone)
{
    not_repaired_is_refused(&MUTEX);
    not_repaired_is_refused(&WRITER);
}

/* Told, then killed before repairing: the next one is told again. */
Test(lock, a_repairer_killed_passes_the_news_on)
{
    const lock_ops *kinds[] = {&MUTEX, &WRITER};
    for (int k = 0; k < 2; k++) {
        pshm_block *b = new_lock(kinds[k]);
        holder h = hold(b, kinds[k], PSHM_FOREVER);
        cr_assert_eq(holder_rc(&h), 0);
        holder_end(&h, true);
        holder r = hold(b, kinds[k], PSHM_FOREVER);
        cr_assert_eq(holder_rc(&r), PSHM_OWNERDEAD);
        holder_end(&r, true);
        cr_assert_eq(kinds[k]->lock(b, 0, 2000), PSHM_OWNERDEAD, "%s", kinds[k]->kind);
        cr_assert_eq(kinds[k]->consistent(b, 0), 0);
        cr_assert_eq(kinds[k]->unlock(b, 0), 0);
        destroy(b);
    }
}

/* A dead reader leaves no count behind: a writer gets in at once, and no
 * one is told (a reader changed nothing). A dead writer blocks no reader;
 * readers are not told, the next writer is. */
Test(lock, dead_readers_and_writers_on_the_rwlock)
{
    pshm_block *b = new_lock(&READER);
    for (int i = 0; i < 3; i++) {
        holder r = hold(b, &READER, PSHM_FOREVER);
        cr_assert_eq(holder_rc(&r), 0);
        holder_end(&r, true);
    }
    cr_assert_eq(pshm_rwlock_wrlock(b, 0, 2000), 0, "%s", pshm_last_error());
    cr_assert_eq(pshm_rwlock_wrunlock(b, 0), 0);
    holder w = hold(b, &WRITER, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&w), 0);
    holder_end(&w, true);
    cr_assert_eq(pshm_rwlock_rdlock(b, 0, 2000), 0, "%s", pshm_last_error());
    cr_assert_eq(pshm_rwlock_rdunlock(b, 0), 0);
    cr_assert_eq(pshm_rwlock_wrlock(b, 0, 2000), PSHM_OWNERDEAD);
    cr_assert_eq(pshm_rwlock_consistent(b, 0), 0);
    cr_assert_eq(pshm_rwlock_wrunlock(b, 0), 0);
    destroy(b);
}

/* A writer that times out keeps the news of a dead writer for the next. */
Test(lock, a_writer_timing_out_keeps_the_news)
{
    pshm_block *b = new_lock(&WRITER);
    holder w = hold(b, &WRITER, PSHM_FOREVER);
    cr_assert_eq(holder_rc(&w), 0);
    holder_end(&w, true);
    holder r = hold(b, &READER, PSHM_FOREVER); /* takes W's news to RW_DIED */
    cr_assert_eq(holder_rc(&r), 0);
    cr_assert_eq(pshm_rwlock_wrlock(b, 0, 100), PSHM_ETIMEDOUT);
    holder_end(&r, false);
    cr_assert_eq(pshm_rwlock_wrlock(b, 0, 2000), PSHM_OWNERDEAD);
    cr_assert_eq(pshm_rwlock_consistent(b, 0), 0);
    cr_assert_eq(pshm_rwlock_wrunlock(b, 0), 0);
    destroy(b);
}

/* ---- contention ---------------------------------------------------------------- */

enum { PROCS = 8, INCREMENTS = 20000 };

/* PROCS processes add 1 INCREMENTS times each, as a read, a pause and a
 * write (so any overlap loses updates); readers meanwhile check that they
 * never see a half-done update. The total is exact. */
static void contend(const lock_ops *o, int readers)
{
    pshm_block *b = new_lock(o);
    volatile int64_t *data = (volatile int64_t *)((char *)pshm_block_buf(b) + 4096);
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            bool reader = p < readers;
            const lock_ops *mine = reader ? &READER : o;
            for (int i = 0; i < INCREMENTS; i++) {
                if (mine->lock(b, 0, PSHM_FOREVER) != 0)
                    _exit(3);
                if (reader) {
                    if (data[0] != data[1])
                        _exit(4);
                } else {
                    int64_t v = data[0];
                    data[1] = v + 1; /* the half-done state readers must not see */
                    for (volatile int spin = 0; spin < 20; spin++)
                        ;
                    data[0] = v + 1;
                }
                if (mine->unlock(b, 0) != 0)
                    _exit(5);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st = t_wait(pids[p], 120);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "process %d: status %#x", p, st);
    }
    cr_assert_eq(data[0], (int64_t)(PROCS - readers) * INCREMENTS);
    destroy(b);
}

Test(lock, eight_processes_exact_total, .timeout = 240)
{
    contend(&MUTEX, 0);
    contend(&WRITER, 0);
    contend(&WRITER, 4);
}

/* ---- named locks ------------------------------------------------------------------ */

Test(lock, named_locks_race_to_open_and_are_tracked)
{
    char name[64];
    t_name(name, sizeof name, "named");
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            pshm_block *b;
            int rc = pshm_lock_open(&b, name, 0);
            if (rc == 0)
                rc = pshm_rwlock_wrlock(b, 0, 5000);
            if (rc == 0)
                rc = pshm_rwlock_wrunlock(b, 0);
            pshm_block_free(b);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st = t_wait(pids[p], 30);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "opener %d", p);
    }
    /* Tracked: gone once no process has it open. */
    cr_assert(t_wait_gone(name, 10), "the tracker did not remove %s", name);
}

Test(lock, a_block_that_is_no_named_lock_is_refused)
{
    pshm_block *b = new_block(PSHM_RWLOCK_SIZE), *l = NULL;
    check_error(pshm_lock_open(&l, pshm_block_name(b), PSHM_UNTRACKED), PSHM_EBADLOCK,
                pshm_block_name(b), "no initialised lock");
    cr_assert_null(l);
    destroy(b);
    /* A named lock of version 1 (glibc's mutexes): refused at once, saying so. */
    b = new_block(PSHM_RWLOCK_SIZE);
    *(uint64_t *)pshm_block_buf(b) = 0x70736d6c00000102ull;
    check_error(pshm_lock_open(&l, pshm_block_name(b), PSHM_UNTRACKED), PSHM_EBADLOCK,
                pshm_block_name(b), "another kind or pshm version (tag 0x70736d6c00000102)");
    destroy(b);
    b = new_block(64);
    check_error(pshm_lock_open(&l, pshm_block_name(b), PSHM_UNTRACKED), PSHM_EBADLOCK,
                pshm_block_name(b), "too small");
    destroy(b);
    check_error(pshm_lock_open(&l, "a/b", 0), PSHM_EBADNAME, NULL, "a/b");
    check_error(pshm_lock_open(NULL, "x", 0), PSHM_EINVAL, NULL, "NULL");
}
