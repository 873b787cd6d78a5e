/*
 * lock.c — locks inside blocks that survive a killed holder (Linux only:
 * it rests on glibc's robust process-shared mutexes and the kernel's robust
 * futex list; a build for another system leaves this file out).
 *
 * Every lock area starts with a tag word (magic, version, kind), published
 * last by init with a release store and checked by every call, so an area
 * never initialised or overwritten is a clear PSHM_EBADLOCK.
 *
 * The mutex is one robust, process-shared, error-checking pthread mutex:
 * the kernel releases it when its holder dies (EOWNERDEAD to the next
 * locker), and pthread's own consistent / ENOTRECOVERABLE states are the
 * documented repair protocol, untouched.
 *
 * The readers-writer lock (POSIX has no robust one) is built from robust
 * mutexes only, so the kernel releases everything a dead process held:
 *   - W, the writer mutex, held by a writer for its whole write lock, and
 *     by a reader on the slow path for a moment;
 *   - RW_SLOTS reader slots, one mutex each on its own cache line. A
 *     reader holds one slot; a writer holds them all.
 *   - `state`, written only by W's holder: RW_WRITER while a writer holds
 *     W, RW_DIED when a writer died and no writer was told yet, RW_REPAIR
 *     while the writer told has not called consistent, RW_BROKEN after it
 *     unlocked without.
 * Fast read: see no writer in state, trylock a slot, fence, see still no
 * writer. A writer sets RW_WRITER, fences, then locks every slot: one of
 * the two sees the other (the fences order the flag against the slot's
 * lock word), so a reader either backs off or the writer waits for its
 * slot. Readers that see a writer queue on W (slow path), so a waiting
 * writer is not starved. A dead reader's slot comes back EOWNERDEAD and is
 * simply made consistent (a reader changed nothing); W coming back
 * EOWNERDEAD with RW_WRITER set means a writer died: RW_DIED, reported to
 * the next writer.
 */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct mutex_area {
    _Atomic uint64_t tag;
    pthread_mutex_t m;
};

#define RW_SLOTS 32
enum { RW_WRITER = 1, RW_DIED = 2, RW_REPAIR = 4, RW_BROKEN = 8 };

struct rw_slot {
    alignas(64) pthread_mutex_t m;
};

struct rw_area {
    _Atomic uint64_t tag;
    _Atomic uint32_t state;
    _Atomic int32_t writer_tid; /* the write lock's holder, 0 if none */
    pthread_mutex_t w;
    struct rw_slot slot[RW_SLOTS];
};

_Static_assert(sizeof(struct mutex_area) <= PSHM_MUTEX_SIZE, "PSHM_MUTEX_SIZE too small");
_Static_assert(sizeof(struct rw_area) == PSHM_RWLOCK_SIZE, "PSHM_RWLOCK_SIZE is wrong");
_Static_assert(alignof(struct rw_area) <= PSHM_LOCK_ALIGN, "PSHM_LOCK_ALIGN too small");

/* ---- the area: bounds, alignment, tag ------------------------------------ */

/* The area of `size` bytes at `offset`, checked for everything but its tag. */
static void *area_at(pshm_block *b, size_t offset, size_t size, const char *what, int *rc)
{
    *rc = 0;
    if (b == NULL)
        *rc = err_set(PSHM_EINVAL, "%s: NULL block handle", what);
    else if (b->buf == NULL)
        *rc = err_set(PSHM_ECLOSED, "%s \"%s\" at offset %zu: %s", what, b->name, offset,
                      pshm_strerror(PSHM_ECLOSED));
    else if (b->flags & PSHM_READONLY)
        *rc = err_set(PSHM_EINVAL,
                      "%s \"%s\" at offset %zu: the handle is read-only (PSHM_READONLY); "
                      "a lock needs a writable mapping",
                      what, b->name, offset);
    else if (offset % PSHM_LOCK_ALIGN != 0)
        *rc = err_set(PSHM_EINVAL,
                      "%s \"%s\" at offset %zu: the offset is not a multiple of "
                      "PSHM_LOCK_ALIGN (%d)",
                      what, b->name, offset, PSHM_LOCK_ALIGN);
    else if (offset > b->size || size > b->size - offset)
        *rc = err_set(PSHM_EINVAL,
                      "%s \"%s\" at offset %zu: the lock's %zu bytes run past the end of "
                      "the block (size %zu)",
                      what, b->name, offset, size, b->size);
    return *rc == 0 ? (char *)b->buf + offset : NULL;
}

static const char *kind_name(enum lock_kind kind)
{
    return kind == KIND_MUTEX ? "mutex" : "readers-writer lock";
}

/* The area, if it holds an initialised lock of `kind`. The acquire load
 * pairs with init's release store: the pthread objects are whole. */
static void *lock_at(pshm_block *b, size_t offset, enum lock_kind kind, const char *what,
                     int *rc)
{
    size_t size = kind == KIND_MUTEX ? PSHM_MUTEX_SIZE : PSHM_RWLOCK_SIZE;
    _Atomic uint64_t *tag = area_at(b, offset, size, what, rc);
    if (tag == NULL)
        return NULL;
    uint64_t seen = atomic_load_explicit(tag, memory_order_acquire);
    if (seen == LOCK_TAG(kind))
        return tag;
    *rc = err_set(PSHM_EBADLOCK,
                  "%s \"%s\" at offset %zu: no %s there (tag %#018llx): never initialised, "
                  "overwritten, or another kind or version of lock",
                  what, b->name, offset, kind_name(kind), (unsigned long long)seen);
    return NULL;
}

/* ---- pthread mutexes ------------------------------------------------------ */

/* A robust, process-shared, error-checking mutex at m. */
static int mutex_make(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int e = pthread_mutexattr_init(&attr);
    if (e == 0)
        e = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (e == 0)
        e = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (e == 0)
        e = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    if (e == 0)
        e = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return e;
}

/* How long a lock call may wait: for ever, not at all, or until `at`
 * (CLOCK_MONOTONIC), one deadline for every mutex the call takes. */
typedef struct wait_for {
    enum { WAIT_FOREVER, WAIT_TRY, WAIT_UNTIL } mode;
    struct timespec at;
} wait_for;

static int wait_make(int64_t timeout_ms, wait_for *w, const char *what, const pshm_block *b,
                     size_t offset)
{
    if (timeout_ms < 0 && timeout_ms != PSHM_FOREVER)
        return err_set(PSHM_EINVAL,
                       "%s \"%s\" at offset %zu: timeout %lld ms is negative (PSHM_FOREVER "
                       "is -1)",
                       what, b->name, offset, (long long)timeout_ms);
    w->mode = timeout_ms < 0 ? WAIT_FOREVER : timeout_ms == 0 ? WAIT_TRY : WAIT_UNTIL;
    if (w->mode == WAIT_UNTIL) {
        clock_gettime(CLOCK_MONOTONIC, &w->at);
        w->at.tv_sec += (time_t)(timeout_ms / 1000);
        w->at.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (w->at.tv_nsec >= 1000000000) {
            w->at.tv_sec++;
            w->at.tv_nsec -= 1000000000;
        }
    }
    return 0;
}

/* The pthread error of taking m as w says (EBUSY from a try is ETIMEDOUT). */
static int acquire(pthread_mutex_t *m, const wait_for *w)
{
    int e;
    switch (w->mode) {
    case WAIT_FOREVER: return pthread_mutex_lock(m);
    case WAIT_TRY: e = pthread_mutex_trylock(m); return e == EBUSY ? ETIMEDOUT : e;
    default: return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &w->at);
    }
}

/* A failed lock call's code and message. */
static int lock_error(int e, const char *what, const pshm_block *b, size_t offset)
{
    switch (e) {
    case ETIMEDOUT:
        return err_set(PSHM_ETIMEDOUT, "%s \"%s\" at offset %zu: %s", what, b->name, offset,
                       pshm_strerror(PSHM_ETIMEDOUT));
    case EDEADLK:
        return err_set(PSHM_EDEADLK, "%s \"%s\" at offset %zu: %s", what, b->name, offset,
                       pshm_strerror(PSHM_EDEADLK));
    case ENOTRECOVERABLE:
        return err_set(PSHM_ENOTRECOVERABLE,
                       "%s \"%s\" at offset %zu: a holder died and the next one unlocked "
                       "without marking it consistent; the lock refuses everyone",
                       what, b->name, offset);
    case EPERM:
        return err_set(PSHM_ENOTHELD, "%s \"%s\" at offset %zu: %s", what, b->name, offset,
                       pshm_strerror(PSHM_ENOTHELD));
    default: return err_errno(e, what, b->name, "pthread_mutex_lock");
    }
}

/* lock_at, and the wait its timeout asks for: what every lock call does
 * first. */
static void *lock_begin(pshm_block *b, size_t offset, enum lock_kind kind, const char *what,
                        int64_t timeout_ms, wait_for *w, int *rc)
{
    void *a = lock_at(b, offset, kind, what, rc);
    if (a != NULL && (*rc = wait_make(timeout_ms, w, what, b, offset)) < 0)
        return NULL;
    return a;
}

/* ---- mutex ---------------------------------------------------------------- */

/* The last step of init, given the pthread error of making the mutexes:
 * from here on, lock_at accepts the area. */
static int init_finish(int e, _Atomic uint64_t *tag, enum lock_kind kind, const pshm_block *b,
                       const char *what)
{
    if (e != 0)
        return err_errno(e, what, b->name, "pthread_mutex_init");
    atomic_store_explicit(tag, LOCK_TAG(kind), memory_order_release);
    return 0;
}

/* The area for init: checked, holding no lock yet, and zeroed (the tag
 * with it, so no call accepts it until init_finish). */
static void *init_area(pshm_block *b, size_t offset, enum lock_kind kind, const char *what,
                       int *rc)
{
    size_t size = kind == KIND_MUTEX ? PSHM_MUTEX_SIZE : PSHM_RWLOCK_SIZE;
    _Atomic uint64_t *tag = area_at(b, offset, size, what, rc);
    if (tag == NULL)
        return NULL;
    uint64_t seen = atomic_load_explicit(tag, memory_order_acquire);
    if (seen == LOCK_TAG(KIND_MUTEX) || seen == LOCK_TAG(KIND_RWLOCK)) {
        *rc = err_set(PSHM_EEXIST,
                      "%s \"%s\" at offset %zu: the area already holds a %s (zero it first "
                      "to replace a lock no process uses)",
                      what, b->name, offset,
                      kind_name(seen == LOCK_TAG(KIND_MUTEX) ? KIND_MUTEX : KIND_RWLOCK));
        return NULL;
    }
    memset((void *)tag, 0, size);
    return tag;
}

int pshm_mutex_init(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = init_area(b, offset, KIND_MUTEX, "mutex init", &rc);
    if (a == NULL)
        return rc;
    return init_finish(mutex_make(&a->m), &a->tag, KIND_MUTEX, b, "mutex init");
}

int pshm_mutex_lock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    int rc;
    wait_for w;
    struct mutex_area *a =
        lock_begin(b, offset, KIND_MUTEX, "mutex lock", timeout_ms, &w, &rc);
    if (a == NULL)
        return rc;
    int e = acquire(&a->m, &w);
    if (e == EOWNERDEAD)
        return PSHM_OWNERDEAD; /* held; inconsistent until pshm_mutex_consistent */
    return e == 0 ? 0 : lock_error(e, "mutex lock", b, offset);
}

int pshm_mutex_unlock(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_at(b, offset, KIND_MUTEX, "mutex unlock", &rc);
    if (a == NULL)
        return rc;
    int e = pthread_mutex_unlock(&a->m);
    return e == 0 ? 0 : lock_error(e, "mutex unlock", b, offset);
}

int pshm_mutex_consistent(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_at(b, offset, KIND_MUTEX, "mutex consistent", &rc);
    if (a == NULL)
        return rc;
    if (pthread_mutex_consistent(&a->m) != 0)
        return err_set(PSHM_EINVAL,
                       "mutex consistent \"%s\" at offset %zu: the mutex is not held after "
                       "PSHM_OWNERDEAD",
                       b->name, offset);
    return 0;
}

/* ---- readers-writer lock --------------------------------------------------- */

static pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

/* The slot a thread tries first: its thread ID hashed, computed once (a
 * forked child keeps its parent's, which only costs it a second try). */
static _Thread_local int slot_hint = -1;

static int first_slot(void)
{
    if (slot_hint < 0)
        slot_hint = (int)(((uint32_t)my_tid() * 2654435761u) >> 27) % RW_SLOTS;
    return slot_hint;
}

/* Take slot m: a dead holder (reader, or a writer that W reports) changed
 * nothing the slot guards, so it is made consistent and taken. */
static int slot_take(pthread_mutex_t *m, const wait_for *w)
{
    int e = acquire(m, w);
    if (e == EOWNERDEAD)
        e = pthread_mutex_consistent(m);
    return e;
}

/* Try every slot once from `first`: the index taken, or -1. */
static int slot_try_any(struct rw_area *a, int first)
{
    static const wait_for try_once = {WAIT_TRY, {0, 0}};
    for (int i = 0; i < RW_SLOTS; i++) {
        int k = (first + i) % RW_SLOTS;
        if (slot_take(&a->slot[k].m, &try_once) == 0)
            return k;
    }
    return -1;
}

/*
 * Take W. A previous holder that died with RW_WRITER set was a writer: its
 * death becomes RW_DIED for the next writer. A broken lock is refused.
 */
static int w_take(struct rw_area *a, const wait_for *w, const char *what, pshm_block *b,
                  size_t offset)
{
    int e = acquire(&a->w, w);
    if (e == EOWNERDEAD) {
        uint32_t st = atomic_load(&a->state);
        if (st & RW_WRITER)
            atomic_store(&a->state, (st & ~(uint32_t)(RW_WRITER | RW_REPAIR)) | RW_DIED);
        atomic_store(&a->writer_tid, 0);
        e = pthread_mutex_consistent(&a->w);
    }
    if (e != 0)
        return lock_error(e, what, b, offset);
    if (atomic_load(&a->state) & RW_BROKEN) {
        pthread_mutex_unlock(&a->w);
        return lock_error(ENOTRECOVERABLE, what, b, offset);
    }
    return 0;
}

/* Whether a reader must keep off: a writer holds or wants the lock, or it
 * is broken. */
static bool readers_wait(struct rw_area *a)
{
    return atomic_load_explicit(&a->state, memory_order_relaxed) & (RW_WRITER | RW_BROKEN);
}

/* The slow read path: queue on W behind any writer, then take a slot. */
static int rdlock_slow(struct rw_area *a, const wait_for *w, pshm_block *b, size_t offset)
{
    int rc = w_take(a, w, "rwlock rdlock", b, offset);
    if (rc < 0)
        return rc;
    int e = slot_try_any(a, first_slot()) >= 0 ? 0 : slot_take(&a->slot[first_slot()].m, w);
    pthread_mutex_unlock(&a->w);
    return e == 0 ? 0 : lock_error(e, "rwlock rdlock", b, offset);
}

int pshm_rwlock_init(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = init_area(b, offset, KIND_RWLOCK, "rwlock init", &rc);
    if (a == NULL)
        return rc;
    int e = mutex_make(&a->w);
    for (int i = 0; e == 0 && i < RW_SLOTS; i++)
        e = mutex_make(&a->slot[i].m);
    return init_finish(e, &a->tag, KIND_RWLOCK, b, "rwlock init");
}

int pshm_rwlock_rdlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    int rc;
    wait_for w;
    struct rw_area *a =
        lock_begin(b, offset, KIND_RWLOCK, "rwlock rdlock", timeout_ms, &w, &rc);
    if (a == NULL)
        return rc;
    if (!readers_wait(a)) {
        int k = slot_try_any(a, first_slot());
        if (k >= 0) {
            /* Pairs with the writer's fence between RW_WRITER and its slots. */
            atomic_thread_fence(memory_order_seq_cst);
            if (!readers_wait(a))
                return 0;
            pthread_mutex_unlock(&a->slot[k].m);
        }
    }
    return rdlock_slow(a, &w, b, offset);
}

/* Undo a write lock that got W and slots [0, taken) but not the rest. */
static void wrlock_undo(struct rw_area *a, int taken, uint32_t died)
{
    while (taken > 0)
        pthread_mutex_unlock(&a->slot[--taken].m);
    atomic_store(&a->state,
                 (atomic_load(&a->state) & ~(uint32_t)(RW_WRITER | RW_REPAIR)) | died);
    pthread_mutex_unlock(&a->w);
}

int pshm_rwlock_wrlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    int rc;
    wait_for w;
    struct rw_area *a =
        lock_begin(b, offset, KIND_RWLOCK, "rwlock wrlock", timeout_ms, &w, &rc);
    if (a == NULL || (rc = w_take(a, &w, "rwlock wrlock", b, offset)) < 0)
        return rc;
    uint32_t st = atomic_load(&a->state);
    uint32_t died = st & RW_DIED;
    atomic_store(&a->state, (st & ~(uint32_t)RW_DIED) | RW_WRITER | (died ? RW_REPAIR : 0));
    /* Pairs with the fast reader's fence between its slot and the state. */
    atomic_thread_fence(memory_order_seq_cst);
    for (int i = 0; i < RW_SLOTS; i++) {
        int e = slot_take(&a->slot[i].m, &w);
        if (e != 0) {
            wrlock_undo(a, i, died);
            return lock_error(e, "rwlock wrlock", b, offset);
        }
    }
    atomic_store(&a->writer_tid, (int32_t)my_tid());
    return died ? PSHM_OWNERDEAD : 0;
}

int pshm_rwlock_wrunlock(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, "rwlock wrunlock", &rc);
    if (a == NULL)
        return rc;
    if (atomic_load(&a->writer_tid) != (int32_t)my_tid())
        return lock_error(EPERM, "rwlock wrunlock", b, offset);
    atomic_store(&a->writer_tid, 0);
    for (int i = RW_SLOTS - 1; i >= 0; i--)
        pthread_mutex_unlock(&a->slot[i].m);
    uint32_t st = atomic_load(&a->state);
    /* Told of a dead writer and never said the data is sound: broken. */
    atomic_store(&a->state, (st & ~(uint32_t)(RW_WRITER | RW_REPAIR)) |
                                ((st & RW_REPAIR) ? RW_BROKEN : 0));
    pthread_mutex_unlock(&a->w);
    return 0;
}

int pshm_rwlock_rdunlock(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, "rwlock rdunlock", &rc);
    if (a == NULL)
        return rc;
    /* The writer holds every slot: its unlock is wrunlock, never this. */
    if (atomic_load_explicit(&a->writer_tid, memory_order_relaxed) != 0 &&
        atomic_load(&a->writer_tid) == (int32_t)my_tid())
        return err_set(PSHM_ENOTHELD,
                       "rwlock rdunlock \"%s\" at offset %zu: the calling thread holds the "
                       "write lock, not a read lock (use pshm_rwlock_wrunlock)",
                       b->name, offset);
    int first = first_slot();
    for (int i = 0; i < RW_SLOTS; i++)
        if (pthread_mutex_unlock(&a->slot[(first + i) % RW_SLOTS].m) == 0)
            return 0;
    return lock_error(EPERM, "rwlock rdunlock", b, offset);
}

int pshm_rwlock_consistent(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, "rwlock consistent", &rc);
    if (a == NULL)
        return rc;
    uint32_t st = atomic_load(&a->state);
    if (!(st & RW_REPAIR) || atomic_load(&a->writer_tid) != (int32_t)my_tid())
        return err_set(PSHM_EINVAL,
                       "rwlock consistent \"%s\" at offset %zu: the calling thread does not "
                       "hold the write lock after PSHM_OWNERDEAD",
                       b->name, offset);
    atomic_store(&a->state, st & ~(uint32_t)RW_REPAIR);
    return 0;
}

/* ---- the close check ---------------------------------------------------------- */

/* The kernel stops walking a robust list after this many entries. */
#define ROBUST_LIST_MAX 2048

/*
 * The calling thread's robust list as the kernel knows it (glibc registers
 * it at thread start): every robust mutex the thread holds, as the address
 * of the list link inside the mutex. Only this thread changes its list, so
 * the walk is safe; it stops at the kernel's own limit.
 */
ptrdiff_t lock_held_in(const void *buf, size_t size)
{
    struct robust_list_head *head;
    size_t len;
    if (syscall(SYS_get_robust_list, 0, &head, &len) != 0 || head == NULL)
        return -1;
    uintptr_t lo = (uintptr_t)buf, hi = lo + size;
    const struct robust_list *e = head->list.next;
    for (int n = 0; e != &head->list && n < ROBUST_LIST_MAX; n++) {
        uintptr_t at = (uintptr_t)e & ~(uintptr_t)1; /* bit 0 marks a PI futex */
        if (at >= lo && at < hi)
            return (ptrdiff_t)(at - lo);
        e = ((const struct robust_list *)at)->next;
    }
    return -1;
}
