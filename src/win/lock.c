/*
 * lock.c (Windows) — the locks of pshm.h, built on named kernel mutexes.
 *
 * Windows has no process-shared mutex that lives in shared memory, but its
 * kernel mutex objects are robust by nature: when the thread that owns one
 * ends, in whatever way, the kernel releases it to the next waiter
 * (WAIT_ABANDONED). So a lock area in the block holds no mutex itself; it
 * holds a random 64-bit id, from which every process derives the names of
 * the lock's kernel mutexes ("pshm-lock-<id>-<n>": n = 0 for the mutex or
 * the writer mutex W, 1..RW_SLOTS for the reader slots), and the state
 * words that pshm keeps beside them.
 *
 * A kernel object lives only while some process has a handle to it. A
 * lock call opens its mutexes and keeps the handles for as long as it
 * holds them (unlock closes them), so a held mutex always exists, and a
 * waiter's handle keeps it alive for the kernel to hand over. When a dead
 * holder had the only handle, its mutex dies with it and the next locker
 * makes a fresh one. Either way the taker finds the area still marked held
 * (the mutex's `held` word, the rwlock's RW_WRITER), set by the holder
 * right after taking the kernel mutex and cleared right before releasing
 * it; no live thread can be holding it, or the taker would have waited.
 * That mark is the one sign that the previous holder died (a holder that
 * dies before setting it has changed nothing, so nobody need be told).
 *
 * Windows mutexes are recursive; pshm's are not. Each thread keeps a list
 * of what it holds (by lock id, so two mappings of one block agree), which
 * gives relock (PSHM_EDEADLK), unlock-not-held (PSHM_ENOTHELD) and the
 * close check (pshm_block_close refuses while a lock in the block is held:
 * closing the handles of an owned mutex would strand its waiters).
 *
 * The readers-writer lock follows src/lock.c's design (docs/locks.md): a
 * writer takes W, sets RW_WRITER, then takes every slot; a reader takes
 * one slot when no writer holds or wants the lock, else queues on W.
 */
#include "internal.h"

#include <windows.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define RW_SLOTS 32
enum { M_REPAIR = 1, M_BROKEN = 2 };
enum { RW_WRITER = 1, RW_DIED = 2, RW_REPAIR = 4, RW_BROKEN = 8 };

struct mutex_area {
    _Atomic uint64_t tag;
    uint64_t id;            /* names the kernel mutex; written before the tag */
    _Atomic uint32_t held;  /* 1 from taking the kernel mutex to releasing it */
    _Atomic uint32_t state; /* M_REPAIR, M_BROKEN */
};

struct rw_area {
    _Atomic uint64_t tag;
    uint64_t id;
    _Atomic uint32_t state; /* RW_*, changed only by W's holder */
};

_Static_assert(sizeof(struct mutex_area) <= PSHM_MUTEX_SIZE, "PSHM_MUTEX_SIZE too small");
_Static_assert(sizeof(struct rw_area) <= PSHM_RWLOCK_SIZE, "PSHM_RWLOCK_SIZE too small");

/* A failed lock call's code and message, as on Linux. */
static int lock_error(int code, const char *what, const pshm_block *b, size_t offset)
{
    if (code == PSHM_ENOTRECOVERABLE)
        return err_set(code,
                       "%s \"%s\" at offset %zu: a holder died and the next one unlocked "
                       "without marking it consistent; the lock refuses everyone",
                       what, b->name, offset);
    return err_set(code, "%s \"%s\" at offset %zu: %s", what, b->name, offset,
                   pshm_strerror(code));
}

/* ---- deadlines ------------------------------------------------------------- */

/* A lock call's deadline in GetTickCount64 milliseconds: -1 for ever, 0
 * try once (every mutex the call takes is tried once). */
static int deadline_make(int64_t timeout_ms, int64_t *deadline, const char *what,
                         const pshm_block *b, size_t offset)
{
    if (timeout_ms < 0 && timeout_ms != PSHM_FOREVER)
        return err_set(PSHM_EINVAL,
                       "%s \"%s\" at offset %zu: timeout %lld ms is negative (PSHM_FOREVER "
                       "is -1)",
                       what, b->name, offset, (long long)timeout_ms);
    *deadline = timeout_ms <= 0 ? timeout_ms : (int64_t)GetTickCount64() + timeout_ms;
    return 0;
}

static DWORD wait_ms(int64_t deadline)
{
    if (deadline < 0)
        return INFINITE;
    int64_t left = deadline - (int64_t)GetTickCount64();
    return deadline == 0 || left <= 0 ? 0
                                      : (DWORD)(left < INFINITE - 1 ? left : INFINITE - 1);
}

/* ---- kernel mutexes ---------------------------------------------------------- */

/* Take mutex n of lock `id` by `deadline` (an abandoned one too): 0 with
 * *h its open handle; PSHM_ETIMEDOUT; or an error naming the block. */
static int mutex_take(uint64_t id, int n, int64_t deadline, HANDLE *h, const char *what,
                      const pshm_block *b, size_t offset)
{
    wchar_t name[48];
    swprintf(name, sizeof name / sizeof *name, L"pshm-lock-%016llx-%d",
             (unsigned long long)id, n);
    *h = CreateMutexW(NULL, FALSE, name);
    if (*h == NULL)
        return err_win(GetLastError(), what, b->name, "CreateMutexW");
    DWORD got = WaitForSingleObject(*h, wait_ms(deadline));
    if (got == WAIT_OBJECT_0 || got == WAIT_ABANDONED)
        return 0;
    DWORD werr = GetLastError();
    CloseHandle(*h);
    *h = NULL;
    if (got == WAIT_TIMEOUT)
        return lock_error(PSHM_ETIMEDOUT, what, b, offset);
    return err_win(werr, what, b->name, "WaitForSingleObject");
}

static void mutex_give(HANDLE h)
{
    ReleaseMutex(h);
    CloseHandle(h);
}

/* ---- what this thread holds ----------------------------------------------- */

#define HELD_MAX 16
enum held_how { HELD_MUTEX, HELD_READ, HELD_WRITE };

typedef struct held {
    uint64_t id;
    const char *area; /* in this thread's mapping: for the close check */
    size_t size;
    enum held_how how;
    int n;                  /* handles in h */
    HANDLE h[1 + RW_SLOTS]; /* a writer's W first, then its slots */
} held;

static _Thread_local held held_locks[HELD_MAX];
static _Thread_local int held_count;

/* This thread's record of lock `id` held as `how`, or NULL. */
static held *held_find(uint64_t id, enum held_how how)
{
    for (int i = held_count - 1; i >= 0; i--)
        if (held_locks[i].id == id && held_locks[i].how == how)
            return &held_locks[i];
    return NULL;
}

static int held_room(const char *what, const pshm_block *b, size_t offset)
{
    if (held_count < HELD_MAX)
        return 0;
    return err_set(PSHM_ELIMIT,
                   "%s \"%s\" at offset %zu: the calling thread already holds %d locks, "
                   "the most a thread may hold at once on Windows",
                   what, b->name, offset, HELD_MAX);
}

/* Record a lock just taken (held_room said there is room). */
static held *held_push(uint64_t id, const void *area, size_t size, enum held_how how)
{
    held *r = &held_locks[held_count++];
    *r = (held){.id = id, .area = area, .size = size, .how = how, .n = 0};
    return r;
}

static void held_drop(held *r) { *r = held_locks[--held_count]; }

ptrdiff_t lock_held_in(const void *buf, size_t size)
{
    uintptr_t lo = (uintptr_t)buf;
    for (int i = 0; i < held_count; i++) {
        uintptr_t at = (uintptr_t)held_locks[i].area;
        if (at >= lo && at - lo < size)
            return (ptrdiff_t)(at - lo);
    }
    return -1;
}

/* ---- init -------------------------------------------------------------------- */

/* Zero the area, give it a fresh id, publish the tag last. */
static int lock_init(pshm_block *b, size_t offset, enum lock_kind kind, const char *what)
{
    int rc;
    _Atomic uint64_t *tag = lock_init_area(b, offset, kind, what, &rc);
    if (tag == NULL)
        return rc;
    uint64_t id;
    if ((rc = os_random_bytes(&id, sizeof id)) < 0)
        return rc;
    ((struct rw_area *)tag)->id = id; /* both kinds keep the id second */
    atomic_store_explicit(tag, LOCK_TAG(kind), memory_order_release);
    return 0;
}

int pshm_mutex_init(pshm_block *b, size_t offset)
{
    return lock_init(b, offset, KIND_MUTEX, "mutex init");
}

int pshm_rwlock_init(pshm_block *b, size_t offset)
{
    return lock_init(b, offset, KIND_RWLOCK, "rwlock init");
}

_Static_assert(offsetof(struct mutex_area, id) == offsetof(struct rw_area, id),
               "lock_init writes the id at one offset for both kinds");

/* ---- mutex ---------------------------------------------------------------- */

int pshm_mutex_lock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    static const char what[] = "mutex lock";
    int rc;
    int64_t deadline = PSHM_FOREVER;
    struct mutex_area *a = lock_at(b, offset, KIND_MUTEX, what, &rc);
    if (a == NULL || (rc = deadline_make(timeout_ms, &deadline, what, b, offset)) < 0)
        return rc;
    if (held_find(a->id, HELD_MUTEX) != NULL)
        return lock_error(PSHM_EDEADLK, what, b, offset);
    if ((rc = held_room(what, b, offset)) < 0)
        return rc;
    HANDLE h;
    if ((rc = mutex_take(a->id, 0, deadline, &h, what, b, offset)) < 0)
        return rc;
    if (atomic_load(&a->state) & M_BROKEN) {
        mutex_give(h);
        return lock_error(PSHM_ENOTRECOVERABLE, what, b, offset);
    }
    bool died = atomic_load(&a->held) != 0;
    if (died)
        atomic_fetch_or(&a->state, M_REPAIR);
    atomic_store(&a->held, 1);
    held *r = held_push(a->id, a, PSHM_MUTEX_SIZE, HELD_MUTEX);
    r->h[r->n++] = h;
    return died ? PSHM_OWNERDEAD : 0;
}

int pshm_mutex_unlock(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_at(b, offset, KIND_MUTEX, "mutex unlock", &rc);
    if (a == NULL)
        return rc;
    held *r = held_find(a->id, HELD_MUTEX);
    if (r == NULL)
        return lock_error(PSHM_ENOTHELD, "mutex unlock", b, offset);
    /* Told of a dead holder and never said the data is sound: broken. */
    if (atomic_load(&a->state) & M_REPAIR)
        atomic_store(&a->state, M_BROKEN);
    atomic_store(&a->held, 0);
    mutex_give(r->h[0]);
    held_drop(r);
    return 0;
}

int pshm_mutex_consistent(pshm_block *b, size_t offset)
{
    int rc;
    struct mutex_area *a = lock_at(b, offset, KIND_MUTEX, "mutex consistent", &rc);
    if (a == NULL)
        return rc;
    if (held_find(a->id, HELD_MUTEX) == NULL || !(atomic_load(&a->state) & M_REPAIR))
        return err_set(PSHM_EINVAL,
                       "mutex consistent \"%s\" at offset %zu: the mutex is not held after "
                       "PSHM_OWNERDEAD",
                       b->name, offset);
    atomic_fetch_and(&a->state, ~(uint32_t)M_REPAIR);
    return 0;
}

/* ---- readers-writer lock --------------------------------------------------- */

/* Take W. A writer mark found on taking it is a writer that died holding
 * the lock: RW_DIED, for the next writer. A broken lock is refused. */
static int w_take(struct rw_area *a, int64_t deadline, HANDLE *h, const char *what,
                  const pshm_block *b, size_t offset)
{
    int rc = mutex_take(a->id, 0, deadline, h, what, b, offset);
    if (rc < 0)
        return rc;
    uint32_t st = atomic_load(&a->state);
    if (st & RW_WRITER)
        atomic_store(&a->state, (st & ~(uint32_t)(RW_WRITER | RW_REPAIR)) | RW_DIED);
    if (atomic_load(&a->state) & RW_BROKEN) {
        mutex_give(*h);
        return lock_error(PSHM_ENOTRECOVERABLE, what, b, offset);
    }
    return 0;
}

/* The slot a thread tries first: its thread ID hashed. */
static int first_slot(void)
{
    return (int)((GetCurrentThreadId() * 2654435761u) >> 27) % RW_SLOTS;
}

/* Try every slot once: 0 with *h a slot's handle, or PSHM_ETIMEDOUT. */
static int slot_try_any(struct rw_area *a, HANDLE *h, const char *what, const pshm_block *b,
                        size_t offset)
{
    int first = first_slot(), rc = 0;
    for (int i = 0; i < RW_SLOTS; i++) {
        rc = mutex_take(a->id, 1 + (first + i) % RW_SLOTS, 0, h, what, b, offset);
        if (rc != PSHM_ETIMEDOUT)
            return rc;
    }
    return rc;
}

static bool readers_wait(struct rw_area *a)
{
    return atomic_load(&a->state) & (RW_WRITER | RW_BROKEN);
}

/* A read lock's slot, by the fast way (no writer about) or queued on W. */
static int rdlock_slot(struct rw_area *a, int64_t deadline, HANDLE *slot, const char *what,
                       const pshm_block *b, size_t offset)
{
    if (!readers_wait(a) && slot_try_any(a, slot, what, b, offset) == 0) {
        /* Pairs with the writer's fence between RW_WRITER and its slots. */
        atomic_thread_fence(memory_order_seq_cst);
        if (!readers_wait(a))
            return 0;
        mutex_give(*slot);
    }
    HANDLE w;
    int rc = w_take(a, deadline, &w, what, b, offset);
    if (rc < 0)
        return rc;
    rc = slot_try_any(a, slot, what, b, offset);
    if (rc == PSHM_ETIMEDOUT)
        rc = mutex_take(a->id, 1 + first_slot(), deadline, slot, what, b, offset);
    mutex_give(w);
    return rc;
}

int pshm_rwlock_rdlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    static const char what[] = "rwlock rdlock";
    int rc;
    int64_t deadline = PSHM_FOREVER;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, what, &rc);
    if (a == NULL || (rc = deadline_make(timeout_ms, &deadline, what, b, offset)) < 0)
        return rc;
    if (held_find(a->id, HELD_WRITE) != NULL)
        return lock_error(PSHM_EDEADLK, what, b, offset);
    HANDLE slot;
    if ((rc = held_room(what, b, offset)) < 0 ||
        (rc = rdlock_slot(a, deadline, &slot, what, b, offset)) < 0)
        return rc;
    held *r = held_push(a->id, a, PSHM_RWLOCK_SIZE, HELD_READ);
    r->h[r->n++] = slot;
    return 0;
}

/* Give back every handle of r from the last, and forget it. */
static void held_give_all(held *r)
{
    while (r->n > 0)
        mutex_give(r->h[--r->n]);
    held_drop(r);
}

int pshm_rwlock_wrlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    static const char what[] = "rwlock wrlock";
    int rc;
    int64_t deadline = PSHM_FOREVER;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, what, &rc);
    if (a == NULL || (rc = deadline_make(timeout_ms, &deadline, what, b, offset)) < 0)
        return rc;
    if (held_find(a->id, HELD_WRITE) != NULL || held_find(a->id, HELD_READ) != NULL)
        return lock_error(PSHM_EDEADLK, what, b, offset);
    HANDLE w;
    if ((rc = held_room(what, b, offset)) < 0 ||
        (rc = w_take(a, deadline, &w, what, b, offset)) < 0)
        return rc;
    uint32_t st = atomic_load(&a->state);
    uint32_t died = st & RW_DIED;
    atomic_store(&a->state, (st & ~(uint32_t)RW_DIED) | RW_WRITER | (died ? RW_REPAIR : 0));
    /* Pairs with the fast reader's fence between its slot and the state. */
    atomic_thread_fence(memory_order_seq_cst);
    held *r = held_push(a->id, a, PSHM_RWLOCK_SIZE, HELD_WRITE);
    r->h[r->n++] = w;
    for (int i = 1; i <= RW_SLOTS; i++) {
        /* A slot a dead reader held: it changed nothing. */
        rc = mutex_take(a->id, i, deadline, &r->h[r->n], what, b, offset);
        if (rc < 0) {
            /* Undo: the news of a dead writer stays for the next one. */
            atomic_store(&a->state,
                         (atomic_load(&a->state) & ~(uint32_t)(RW_WRITER | RW_REPAIR)) |
                             died);
            held_give_all(r);
            return rc;
        }
        r->n++;
    }
    return died ? PSHM_OWNERDEAD : 0;
}

int pshm_rwlock_wrunlock(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, "rwlock wrunlock", &rc);
    if (a == NULL)
        return rc;
    held *r = held_find(a->id, HELD_WRITE);
    if (r == NULL)
        return lock_error(PSHM_ENOTHELD, "rwlock wrunlock", b, offset);
    uint32_t st = atomic_load(&a->state);
    /* Told of a dead writer and never said the data is sound: broken. */
    atomic_store(&a->state, (st & ~(uint32_t)(RW_WRITER | RW_REPAIR)) |
                                ((st & RW_REPAIR) ? RW_BROKEN : 0));
    held_give_all(r); /* slots first, W last */
    return 0;
}

int pshm_rwlock_rdunlock(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, "rwlock rdunlock", &rc);
    if (a == NULL)
        return rc;
    held *r = held_find(a->id, HELD_READ);
    if (r == NULL && held_find(a->id, HELD_WRITE) != NULL)
        return err_set(PSHM_ENOTHELD,
                       "rwlock rdunlock \"%s\" at offset %zu: the calling thread holds the "
                       "write lock, not a read lock (use pshm_rwlock_wrunlock)",
                       b->name, offset);
    if (r == NULL)
        return lock_error(PSHM_ENOTHELD, "rwlock rdunlock", b, offset);
    held_give_all(r);
    return 0;
}

int pshm_rwlock_consistent(pshm_block *b, size_t offset)
{
    int rc;
    struct rw_area *a = lock_at(b, offset, KIND_RWLOCK, "rwlock consistent", &rc);
    if (a == NULL)
        return rc;
    if (held_find(a->id, HELD_WRITE) == NULL || !(atomic_load(&a->state) & RW_REPAIR))
        return err_set(PSHM_EINVAL,
                       "rwlock consistent \"%s\" at offset %zu: the calling thread does not "
                       "hold the write lock after PSHM_OWNERDEAD",
                       b->name, offset);
    atomic_fetch_and(&a->state, ~(uint32_t)RW_REPAIR);
    return 0;
}

/* No tracker on Windows: a named lock goes with its last handle. */
int lock_named_quiet(pshm_block *b)
{
    (void)b;
    return 0;
}
