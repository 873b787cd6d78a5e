/*
 * robust.h — process-shared mutexes that the kernel releases when their
 * holder dies: lock.c's mutex, and its readers-writer lock's writer mutex
 * and reader slots (Linux with glibc only).
 *
 * The protocol is glibc's robust mutex's, written out so the uncontended
 * path is a few dozen instructions instead of glibc's general one (135 per
 * lock+unlock under callgrind, against 61 for a plain mutex: robustness
 * alone cost 1.3-1.6x a plain mutex, over issue 10's budget):
 *   - the futex word holds the owner's TID, FUTEX_WAITERS once someone may
 *     sleep on it, and FUTEX_OWNER_DIED once its holder died;
 *   - a held mutex is linked into the holding thread's robust list, which
 *     the kernel walks when the thread dies (however it dies): it marks
 *     each word whose TID is the dead thread's FUTEX_OWNER_DIED and wakes a
 *     waiter (Documentation/locking/robust-futex-ABI.rst). list_op_pending
 *     covers a death in the middle of a lock or unlock.
 *   - the next locker sees FUTEX_OWNER_DIED and gets EOWNERDEAD; `state`
 *     then says RM_INCONSISTENT until rm_consistent, and an unlock before
 *     that makes it RM_BROKEN: every later lock is ENOTRECOVERABLE.
 *
 * A thread has one robust list, and glibc registered it, so these mutexes
 * share glibc's list with its own robust mutexes and must be linked the
 * way glibc links: the futex word at the list's futex_offset from the
 * link, and a back link just before each link (glibc's list is doubly
 * linked on 64-bit systems). robust.c checks both once per thread against
 * glibc itself, and refuses (ENOTSUP) rather than corrupt the list if they
 * ever differ.
 *
 * The holder is known by TID, which costs a system call to learn: each
 * thread keeps its TID and list head, stamped with a random value kept in
 * a page the kernel wipes in a forked child, so a child (which has a new
 * TID) never uses its parent's.
 */
#ifndef PSHM_ROBUST_H
#define PSHM_ROBUST_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifndef __GLIBC__
#error "robust.h shares glibc's robust list: it needs glibc"
#endif

/* One mutex, laid out as glibc's robust pthread_mutex_t where it matters. */
struct rmutex {
    _Atomic uint32_t word;  /* owner TID | FUTEX_WAITERS | FUTEX_OWNER_DIED; 0 free */
    _Atomic uint32_t state; /* RM_SOUND, RM_INCONSISTENT or RM_BROKEN */
    uint32_t unused[4];
    void *prev; /* the holder's robust list: back link */
    void *next; /* the holder's robust list: the link the kernel follows */
};

enum { RM_SOUND = 0, RM_INCONSISTENT = 1, RM_BROKEN = 2 };

/* How long a lock may wait: for ever, not at all, or until `at`
 * (CLOCK_MONOTONIC). */
typedef struct wait_for {
    enum { WAIT_FOREVER, WAIT_TRY, WAIT_UNTIL } mode;
    struct timespec at;
} wait_for;

/* What this thread knows of itself: valid while `stamp` equals rm_stamp. */
struct rm_self {
    struct robust_list_head *head; /* the thread's robust list (glibc's) */
    uint32_t tid;
    uint64_t stamp; /* 0 until first known */
};

extern _Thread_local struct rm_self rm_self;
/* In a page wiped on fork: this process's random stamp, 0 until drawn. */
/* (The pointer is atomic too: it is set once, by whichever thread first
 * sets itself up, while others may be reading it.) */
extern _Atomic uint64_t *_Atomic rm_stamp;

/*
 * Fill in rm_self for this thread and process: 0, or RM_ESETUP | stage |
 * errno, which no errno equals, so a caller never mistakes a failure to set
 * the thread up for a lock's own answer (EPERM "not held", EINVAL, ...).
 */
int rm_self_refresh(void);
#define RM_ESETUP 0x40000000
#define RM_STAGE_SHIFT 16
enum rm_stage {
    RM_STAGE_PAGE = 1,
    RM_STAGE_LIST = 2,
    RM_STAGE_LAYOUT = 3,
    RM_STAGE_STAMP = 4
};
#define RM_SETUP_ERROR(stage, e) (RM_ESETUP | ((stage) << RM_STAGE_SHIFT) | (e))
/* What a setup failure says: the step that failed and why. */
const char *rm_setup_step(int e);
/* rm_lock past its fast path (and rm_lock's refusal of a broken mutex). */
int rm_lock_slow(struct rmutex *m, const wait_for *w);
int rm_refuse(struct rmutex *m);
/* rm_self_refresh's error as rm_unlock returns it. */
int rm_unlock_unknown(struct rmutex *m);

/* Whether rm_self is this thread's, in this process. */
static inline int rm_self_ok(void)
{
    return rm_self.stamp != 0 &&
           rm_self.stamp ==
               atomic_load_explicit(atomic_load_explicit(&rm_stamp, memory_order_relaxed),
                                    memory_order_relaxed);
}

/* This thread's TID (0 if it cannot be known). */
static inline uint32_t rm_tid(void)
{
    return rm_self_ok() || rm_self_refresh() == 0 ? rm_self.tid : 0;
}

/* The link of m, as the robust list holds it. */
static inline struct robust_list *rm_link(struct rmutex *m)
{
    return (struct robust_list *)&m->next;
}

/* The back link of the list entry whose link is at `link` (a list entry
 * pointer, bit 0 marking a priority-inheritance mutex, or the head). */
static inline void **rm_back(void *link)
{
    return (void **)((uintptr_t)link & ~(uintptr_t)1) - 1;
}

/* Link m first in this thread's list, as glibc's ENQUEUE_MUTEX does. */
static inline void rm_enqueue(struct robust_list_head *h, struct rmutex *m)
{
    void *first = h->list.next;
    *rm_back(first) = rm_link(m);
    m->next = first;
    m->prev = h;
    atomic_signal_fence(memory_order_seq_cst); /* whole before the kernel can see it */
    h->list.next = rm_link(m);
}

/* Unlink m, as glibc's DEQUEUE_MUTEX does. */
static inline void rm_dequeue(struct rmutex *m)
{
    *rm_back(m->next) = m->prev;
    *(void **)((uintptr_t)m->prev & ~(uintptr_t)1) = m->next;
    atomic_signal_fence(memory_order_seq_cst);
    m->prev = m->next = NULL;
}

/* Mark m's operation in progress (or none) for the kernel. */
static inline void rm_pending(struct robust_list_head *h, struct rmutex *m)
{
    atomic_signal_fence(memory_order_seq_cst);
    h->list_op_pending = m != NULL ? rm_link(m) : NULL;
    atomic_signal_fence(memory_order_seq_cst);
}

/* Free m, waking one sleeper if any may sleep. */
void rm_wake(struct rmutex *m);
static inline void rm_release(struct rmutex *m)
{
    if (atomic_exchange_explicit(&m->word, 0, memory_order_release) & FUTEX_WAITERS)
        rm_wake(m);
}

/*
 * Take m as w says: 0; EOWNERDEAD (held, the last holder died: m is
 * RM_INCONSISTENT until rm_consistent); EDEADLK (this thread holds it);
 * ETIMEDOUT (not free in time, or at once for WAIT_TRY); ENOTRECOVERABLE
 * (RM_BROKEN); or the errno of learning this thread's TID.
 */
static inline int rm_lock(struct rmutex *m, const wait_for *w)
{
    if (!rm_self_ok())
        return rm_lock_slow(m, w);
    struct robust_list_head *h = rm_self.head;
    rm_pending(h, m);
    uint32_t free_word = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->word, &free_word, rm_self.tid,
                                                 memory_order_acquire, memory_order_relaxed))
        return rm_lock_slow(m, w); /* sets pending again, and clears it */
    if (atomic_load_explicit(&m->state, memory_order_relaxed) == RM_BROKEN)
        return rm_refuse(m);
    rm_enqueue(h, m);
    rm_pending(h, NULL);
    return 0;
}

/* Release m: 0, or EPERM if this thread does not hold it. Unlocking an
 * RM_INCONSISTENT mutex makes it RM_BROKEN. */
static inline int rm_unlock(struct rmutex *m)
{
    if (!rm_self_ok())
        return rm_unlock_unknown(m);
    uint32_t word = atomic_load_explicit(&m->word, memory_order_relaxed);
    if ((word & FUTEX_TID_MASK) != rm_self.tid)
        return EPERM;
    if (atomic_load_explicit(&m->state, memory_order_relaxed) == RM_INCONSISTENT)
        atomic_store_explicit(&m->state, RM_BROKEN, memory_order_relaxed);
    struct robust_list_head *h = rm_self.head;
    rm_pending(h, m);
    rm_dequeue(m);
    rm_release(m);
    rm_pending(h, NULL);
    return 0;
}

/* After EOWNERDEAD: m is sound again. 0, or EINVAL if this thread does
 * not hold m in that state. */
static inline int rm_consistent(struct rmutex *m)
{
    uint32_t word = atomic_load_explicit(&m->word, memory_order_relaxed), tid = rm_tid();
    if (tid == 0 || (word & FUTEX_TID_MASK) != tid ||
        atomic_load_explicit(&m->state, memory_order_relaxed) != RM_INCONSISTENT)
        return EINVAL;
    atomic_store_explicit(&m->state, RM_SOUND, memory_order_relaxed);
    return 0;
}

#endif
