/*
 * lock.c — locks inside blocks that survive a killed holder (Linux with
 * glibc only: it rests on the kernel's robust futex list, shared with
 * glibc; a build for another system leaves this file out).
 *
 * Every lock area starts with a tag word (magic, version, kind), published
 * last by init with a release store and checked by every call, so an area
 * never initialised or overwritten is a clear PSHM_EBADLOCK. The other
 * checks cost a compare each: the handle's lock_end stands for open,
 * writable and in bounds (lock_fast).
 *
 * The mutex is one robust mutex of robust.h (glibc's robust-mutex protocol,
 * written out for speed): the kernel releases it when its holder dies
 * (EOWNERDEAD to the next locker), and pthread's consistent /
 * ENOTRECOVERABLE states are the repair protocol.
 *
 * The readers-writer lock (POSIX has no robust one) is built from the same
 * robust mutexes only, so the kernel releases everything a dead process held:
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
#include "robust.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

struct mutex_area {
    _Atomic uint64_t tag;
    struct rmutex m;
};

#define RW_SLOTS 32
enum { RW_WRITER = 1, RW_DIED = 2, RW_REPAIR = 4, RW_BROKEN = 8 };

struct rw_slot {
    alignas(64) struct rmutex m;
};

struct rw_area {
    _Atomic uint64_t tag;
    _Atomic uint32_t state;
    _Atomic int32_t writer_tid; /* the write lock's holder, 0 if none */
    struct rmutex w;
    struct rw_slot slot[RW_SLOTS];
};

_Static_assert(sizeof(struct mutex_area) <= PSHM_MUTEX_SIZE, "PSHM_MUTEX_SIZE too small");
_Static_assert(sizeof(struct rw_area) == PSHM_RWLOCK_SIZE, "PSHM_RWLOCK_SIZE is wrong");
_Static_assert(alignof(struct rw_area) <= PSHM_LOCK_ALIGN, "PSHM_LOCK_ALIGN too small");

/* ---- the area: bounds, alignment, tag ------------------------------------ */

/* The lock of `kind` at offset if it passes every check of lock_at, else
 * NULL: the handle's lock_end (its size while open and writable, else 0)
 * stands for open, writable and in bounds, so a good call costs four
 * compares and the tag's. */
static inline void *lock_fast(const pshm_block *b, size_t offset, enum lock_kind kind)
{
    size_t size = kind == KIND_MUTEX ? PSHM_MUTEX_SIZE : PSHM_RWLOCK_SIZE;
    if (b == NULL || offset % PSHM_LOCK_ALIGN != 0 || offset >= b->lock_end ||
        b->lock_end - offset < size)
        return NULL;
    _Atomic uint64_t *tag = (_Atomic uint64_t *)((char *)b->buf + offset);
    return atomic_load_explicit(tag, memory_order_acquire) == LOCK_TAG(kind) ? tag : NULL;
}

/* lock_fast, else lock_at for the error. */
static inline void *lock_find(pshm_block *b, size_t offset, enum lock_kind kind,
                              const char *what, int *rc)
{
    void *a = lock_fast(b, offset, kind);
    return a != NULL ? a : lock_at(b, offset, kind, what, rc);
}

/* ---- waits and errors ------------------------------------------------------ */

/* wait_make for a timeout other than PSHM_FOREVER. */
static __attribute__((noinline)) int wait_timed(int64_t timeout_ms, wait_for *w,
                                                const char *what, const pshm_block *b,
                                                size_t offset)
{
    if (timeout_ms < 0)
        return err_set(PSHM_EINVAL,
                       "%s \"%s\" at offset %zu: timeout %lld ms is negative (PSHM_FOREVER "
                       "is -1)",
                       what, b->name, offset, (long long)timeout_ms);
    w->mode = timeout_ms == 0 ? WAIT_TRY : WAIT_UNTIL;
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

/* The wait timeout_ms asks for, or PSHM_EINVAL. Inline for PSHM_FOREVER,
 * so the common call goes straight to rm_lock. */
static inline int wait_make(int64_t timeout_ms, wait_for *w, const char *what,
                            const pshm_block *b, size_t offset)
{
    if (timeout_ms != PSHM_FOREVER)
        return wait_timed(timeout_ms, w, what, b, offset);
    w->mode = WAIT_FOREVER;
    return 0;
}

/* A failed lock call's code and message. */
static __attribute__((noinline, cold)) int lock_error(int e, const char *what,
                                                      const pshm_block *b, size_t offset)
{
    if (e & RM_ESETUP)
        return err_set(PSHM_ESYS,
                       "%s \"%s\" at offset %zu: cannot set this thread up for robust locks: "
                       "%s: %s",
                       what, b->name, offset, rm_setup_step(e),
                       strerror(e & ((1 << RM_STAGE_SHIFT) - 1)));
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
    default: return err_errno(e, what, b->name, "the robust futex list");
    }
}

/* lock_at, and the wait its timeout asks for: what every lock call does
 * first. */
static inline void *lock_begin(pshm_block *b, size_t offset, enum lock_kind kind,
                               const char *what, int64_t timeout_ms, wait_for *w, int *rc)
{
    void *a = lock_find(b, offset, kind, what, rc);
    if (a != NULL && (*rc = wait_make(timeout_ms, w, what, b, offset)) < 0)
        return NULL;
    return a;
}

/* ---- mutex ---------------------------------------------------------------- */

/* The last step of init: from here on, lock_at accepts the area (zeroed
 * by lock_init_area: every mutex free and sound). */
static void init_finish(_Atomic uint64_t *tag, enum lock_kind kind)
{
    atomic_store_explicit(tag, LOCK_TAG(kind), memory_order_release);
}

int pshm_mutex_init(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_init_area(b, offset, KIND_MUTEX, "mutex init", &rc);
    if (a == NULL)
        return rc;
    init_finish(&a->tag, KIND_MUTEX);
    return 0;
}

/* A mutex lock's return, given rm_lock's error. */
static int mutex_locked(int e, const pshm_block *b, size_t offset)
{
    if (e == EOWNERDEAD)
        return PSHM_OWNERDEAD; /* held; inconsistent until pshm_mutex_consistent */
    return e == 0 ? 0 : lock_error(e, "mutex lock", b, offset);
}

/* pshm_mutex_lock but for its fast path: errors, and waits with a timeout. */
static __attribute__((noinline)) int mutex_lock_slow(pshm_block *b, size_t offset,
                                                     int64_t timeout_ms)
{
    int rc;
    wait_for w;
    struct mutex_area *a =
        lock_begin(b, offset, KIND_MUTEX, "mutex lock", timeout_ms, &w, &rc);
    return a == NULL ? rc : mutex_locked(rm_lock(&a->m, &w), b, offset);
}

int pshm_mutex_lock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    struct mutex_area *a = lock_fast(b, offset, KIND_MUTEX);
    if (a == NULL || timeout_ms != PSHM_FOREVER)
        return mutex_lock_slow(b, offset, timeout_ms);
    static const wait_for forever = {WAIT_FOREVER, {0, 0}};
    int e = rm_lock(&a->m, &forever);
    return e == 0 ? 0 : mutex_locked(e, b, offset);
}

int pshm_mutex_unlock(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_find(b, offset, KIND_MUTEX, "mutex unlock", &rc);
    if (a == NULL)
        return rc;
    int e = rm_unlock(&a->m);
    return e == 0 ? 0 : lock_error(e, "mutex unlock", b, offset);
}

int pshm_mutex_consistent(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_find(b, offset, KIND_MUTEX, "mutex consistent", &rc);
    if (a == NULL)
        return rc;
    if (rm_consistent(&a->m) != 0)
        return err_set(PSHM_EINVAL,
                       "mutex consistent \"%s\" at offset %zu: the mutex is not held after "
                       "PSHM_OWNERDEAD",
                       b->name, offset);
    return 0;
}

/* ---- readers-writer lock --------------------------------------------------- */

/* The slot a thread tries first: its thread ID hashed, computed once (a
 * forked child keeps its parent's, which only costs it a second try). */
static _Thread_local int slot_hint = -1;

static inline int first_slot(void)
{
    if (slot_hint < 0)
        slot_hint = (int)((rm_tid() * 2654435761u) >> 27) % RW_SLOTS;
    return slot_hint;
}

/* Take slot m: a dead holder (reader, or a writer that W reports) changed
 * nothing the slot guards, so it is made consistent and taken. */
static const wait_for try_once = {WAIT_TRY, {0, 0}};

static inline int slot_take(struct rmutex *m, const wait_for *w)
{
    int e = rm_lock(m, w);
    if (e == EOWNERDEAD)
        e = rm_consistent(m);
    return e;
}

/* Try every slot once from `first`: the index taken, or -1. */
static __attribute__((noinline)) int slot_try_any(struct rw_area *a, int first)
{
    for (int i = 0; i < RW_SLOTS; i++) {
        int k = (int)((unsigned)(first + i) % RW_SLOTS);
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
    int e = rm_lock(&a->w, w);
    if (e == EOWNERDEAD) {
        uint32_t st = atomic_load(&a->state);
        if (st & RW_WRITER)
            atomic_store(&a->state, (st & ~(uint32_t)(RW_WRITER | RW_REPAIR)) | RW_DIED);
        atomic_store(&a->writer_tid, 0);
        e = rm_consistent(&a->w);
    }
    if (e != 0)
        return lock_error(e, what, b, offset);
    if (atomic_load(&a->state) & RW_BROKEN) {
        rm_unlock(&a->w);
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

/*
 * The reader's half of the pairing with a writer (see the top): the slot's
 * lock word, just set by rm_lock's compare-and-swap, must be seen by all before
 * this thread reads `state`. On x86 the locked instruction that set it is
 * already a full barrier (no later load passes it), so only the compiler
 * must keep its order; elsewhere it takes a fence.
 */
static inline void fence_after_lock(void)
{
#if defined(__x86_64__) || defined(__i386__)
    atomic_signal_fence(memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

int pshm_rwlock_init(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_init_area(b, offset, KIND_RWLOCK, "rwlock init", &rc);
    if (a == NULL)
        return rc;
    init_finish(&a->tag, KIND_RWLOCK);
    return 0;
}

/* The fast read lock: no writer, a slot free. */
static inline __attribute__((always_inline)) bool rdlock_fast(struct rw_area *a)
{
    if (readers_wait(a))
        return false;
    int k = first_slot();
    if (slot_take(&a->slot[k].m, &try_once) != 0 && (k = slot_try_any(a, k)) < 0)
        return false;
    fence_after_lock();
    if (!readers_wait(a))
        return true;
    rm_unlock(&a->slot[k].m);
    return false;
}

/* pshm_rwlock_rdlock but for its fast path: errors, and queueing on W. */
static __attribute__((noinline)) int rdlock_slow(pshm_block *b, size_t offset,
                                                 int64_t timeout_ms)
{
    int rc;
    wait_for w;
    struct rw_area *a =
        lock_begin(b, offset, KIND_RWLOCK, "rwlock rdlock", timeout_ms, &w, &rc);
    if (a == NULL)
        return rc;
    if (rdlock_fast(a))
        return 0;
    if ((rc = w_take(a, &w, "rwlock rdlock", b, offset)) < 0)
        return rc;
    int e = slot_try_any(a, first_slot()) >= 0 ? 0 : slot_take(&a->slot[first_slot()].m, &w);
    rm_unlock(&a->w);
    return e == 0 ? 0 : lock_error(e, "rwlock rdlock", b, offset);
}

int pshm_rwlock_rdlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    struct rw_area *a = lock_fast(b, offset, KIND_RWLOCK);
    if (a != NULL && timeout_ms >= PSHM_FOREVER && rdlock_fast(a))
        return 0;
    return rdlock_slow(b, offset, timeout_ms);
}

/* Undo a write lock that got W and slots [0, taken) but not the rest. */
static void wrlock_undo(struct rw_area *a, int taken, uint32_t died)
{
    while (taken > 0)
        rm_unlock(&a->slot[--taken].m);
    atomic_store(&a->state,
                 (atomic_load(&a->state) & ~(uint32_t)(RW_WRITER | RW_REPAIR)) | died);
    rm_unlock(&a->w);
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
    atomic_store(&a->writer_tid, (int32_t)rm_tid());
    return died ? PSHM_OWNERDEAD : 0;
}

int pshm_rwlock_wrunlock(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_find(b, offset, KIND_RWLOCK, "rwlock wrunlock", &rc);
    if (a == NULL)
        return rc;
    if (atomic_load(&a->writer_tid) != (int32_t)rm_tid())
        return lock_error(EPERM, "rwlock wrunlock", b, offset);
    atomic_store(&a->writer_tid, 0);
    for (int i = RW_SLOTS - 1; i >= 0; i--)
        rm_unlock(&a->slot[i].m);
    uint32_t st = atomic_load(&a->state);
    /* Told of a dead writer and never said the data is sound: broken. */
    atomic_store(&a->state, (st & ~(uint32_t)(RW_WRITER | RW_REPAIR)) |
                                ((st & RW_REPAIR) ? RW_BROKEN : 0));
    rm_unlock(&a->w);
    return 0;
}

/* Unlock the slot this thread holds, when it is not its first choice. */
static __attribute__((noinline)) int rdunlock_search(struct rw_area *a, int first,
                                                     const pshm_block *b, size_t offset)
{
    for (int i = 1; i < RW_SLOTS; i++)
        if (rm_unlock(&a->slot[(unsigned)(first + i) % RW_SLOTS].m) == 0)
            return 0;
    return lock_error(EPERM, "rwlock rdunlock", b, offset);
}

int pshm_rwlock_rdunlock(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_find(b, offset, KIND_RWLOCK, "rwlock rdunlock", &rc);
    if (a == NULL)
        return rc;
    /* The writer holds every slot: its unlock is wrunlock, never this. */
    if (atomic_load_explicit(&a->writer_tid, memory_order_relaxed) != 0 &&
        atomic_load(&a->writer_tid) == (int32_t)rm_tid())
        return err_set(PSHM_ENOTHELD,
                       "rwlock rdunlock \"%s\" at offset %zu: the calling thread holds the "
                       "write lock, not a read lock (use pshm_rwlock_wrunlock)",
                       b->name, offset);
    int first = first_slot();
    if (rm_unlock(&a->slot[first].m) == 0)
        return 0;
    return rdunlock_search(a, first, b, offset);
}

int pshm_rwlock_consistent(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_find(b, offset, KIND_RWLOCK, "rwlock consistent", &rc);
    if (a == NULL)
        return rc;
    uint32_t st = atomic_load(&a->state);
    if (!(st & RW_REPAIR) || atomic_load(&a->writer_tid) != (int32_t)rm_tid())
        return err_set(PSHM_EINVAL,
                       "rwlock consistent \"%s\" at offset %zu: the calling thread does not "
                       "hold the write lock after PSHM_OWNERDEAD",
                       b->name, offset);
    atomic_store(&a->state, st & ~(uint32_t)RW_REPAIR);
    return 0;
}

/* ---- named locks -------------------------------------------------------------- */

/* A named lock is meant to be removed by the tracker once no one has it
 * open, so its tracker does that without a word: b registers again,
 * marked quiet. */
int lock_named_quiet(pshm_block *b)
{
    b->quiet = true;
    return (b->flags & PSHM_UNTRACKED) ? 0 : tracker_register(b, "lock open");
}

/* ---- the close check ---------------------------------------------------------- */

/* The kernel stops walking a robust list after this many entries. */
#define ROBUST_LIST_MAX 2048

/*
 * The calling thread's robust list (glibc's, which rm_self knows once the
 * thread has taken a pshm lock): every robust mutex the thread holds, as
 * the address of the list link inside the mutex. A thread that rm_self
 * does not know in this process has never taken a pshm lock here, so it
 * holds none, and close asks the kernel nothing. Only this thread changes
 * its list, so the walk is safe; it stops at the kernel's own limit.
 */
ptrdiff_t lock_held_in(const void *buf, size_t size)
{
    if (!rm_self_ok())
        return -1;
    uintptr_t lo = (uintptr_t)buf, hi = lo + size;
    const struct robust_list *e = rm_self.head->list.next;
    for (int n = 0; e != &rm_self.head->list && n < ROBUST_LIST_MAX; n++) {
        uintptr_t at = (uintptr_t)e & ~(uintptr_t)1; /* bit 0 marks a PI futex */
        if (at >= lo && at < hi)
            return (ptrdiff_t)(at - lo);
        e = ((const struct robust_list *)at)->next;
    }
    return -1;
}
