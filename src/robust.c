/*
 * robust.c — robust.h's slow paths: learning this thread's TID and robust
 * list, and taking a mutex that is held (waiting on its futex) or whose
 * holder died. The algorithm is glibc's robust pthread_mutex_lock.
 */
#include "robust.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Not initial-exec: a library that may be dlopen'ed (Python's import)
 * must not need static TLS; the build's TLS descriptors keep it cheap. */
_Thread_local struct rm_self rm_self;
_Atomic uint64_t *_Atomic rm_stamp;

/* Guards the making of rm_stamp's page; a failure is tried again by the
 * next lock call (a transient ENOMEM must not disable locks for good). */
static pthread_mutex_t stamp_mutex = PTHREAD_MUTEX_INITIALIZER;

_Static_assert(offsetof(pthread_mutex_t, __data.__list.__next) -
                       offsetof(pthread_mutex_t, __data.__lock) ==
                   offsetof(struct rmutex, next) - offsetof(struct rmutex, word),
               "struct rmutex must put its link where glibc's mutex does");
_Static_assert(offsetof(pthread_mutex_t, __data.__list.__next) -
                       offsetof(pthread_mutex_t, __data.__list.__prev) ==
                   sizeof(void *),
               "glibc's robust list is not doubly linked here");

/* The stamp's page: private, and zero again in a forked child (Linux
 * 4.14's MADV_WIPEONFORK). 0 or an errno. */
static int stamp_map(void)
{
    int e = 0;
    pthread_mutex_lock(&stamp_mutex);
    if (atomic_load_explicit(&rm_stamp, memory_order_acquire) == NULL) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        void *p =
            mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            e = errno;
        } else if (madvise(p, page, MADV_WIPEONFORK) != 0) {
            e = errno;
            munmap(p, page);
        } else {
            atomic_store_explicit(&rm_stamp, p, memory_order_release);
        }
    }
    pthread_mutex_unlock(&stamp_mutex);
    return e;
}

/* This process's stamp in *out, drawn by the first thread to need it:
 * random, so a child in another PID namespace, whose PID may equal its
 * parent's, still differs. 0 or an errno. */
static int stamp_get(uint64_t *out)
{
    uint64_t s = atomic_load(rm_stamp), fresh = 0;
    while (s == 0) {
        if (getrandom(&fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh) {
            if (errno != EINTR)
                return errno != 0 ? errno : EIO;
        } else if (fresh != 0 && atomic_compare_exchange_strong(rm_stamp, &s, fresh)) {
            s = fresh;
        }
    }
    *out = s;
    return 0;
}

/*
 * Whether glibc links robust mutexes into `head` the way robust.h does:
 * the kernel's futex_offset matches struct rmutex, and a robust mutex
 * locked and unlocked here goes in first with its back links set and comes
 * out leaving the list as it was.
 */
static bool list_as_glibc(struct robust_list_head *head)
{
    if (head->futex_offset !=
        (long)offsetof(struct rmutex, word) - (long)offsetof(struct rmutex, next))
        return false;
    pthread_mutexattr_t attr;
    pthread_mutex_t m;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    bool ok = pthread_mutex_init(&m, &attr) == 0;
    pthread_mutexattr_destroy(&attr);
    if (!ok)
        return false;
    void *first = head->list.next, *link = &m.__data.__list.__next;
    ok = pthread_mutex_lock(&m) == 0;
    ok = ok && head->list.next == link && m.__data.__list.__next == first &&
         m.__data.__list.__prev == (void *)head && *rm_back(first) == link;
    pthread_mutex_unlock(&m);
    ok = ok && head->list.next == first && *rm_back(first) == (void *)head;
    pthread_mutex_destroy(&m);
    return ok;
}

int rm_self_refresh(void)
{
    int e = atomic_load_explicit(&rm_stamp, memory_order_acquire) != NULL ? 0 : stamp_map();
    if (e != 0)
        return RM_SETUP_ERROR(RM_STAGE_PAGE, e);
    struct robust_list_head *head;
    size_t len;
    uint64_t stamp = 0;
    if (syscall(SYS_get_robust_list, 0, &head, &len) != 0)
        return RM_SETUP_ERROR(RM_STAGE_LIST, errno);
    if (head == NULL || len != sizeof *head || !list_as_glibc(head))
        return RM_SETUP_ERROR(RM_STAGE_LAYOUT, ENOTSUP);
    if ((e = stamp_get(&stamp)) != 0)
        return RM_SETUP_ERROR(RM_STAGE_STAMP, e);
    rm_self.head = head;
    rm_self.tid = (uint32_t)syscall(SYS_gettid);
    rm_self.stamp = stamp;
    return 0;
}

void rm_wake(struct rmutex *m) { syscall(SYS_futex, &m->word, FUTEX_WAKE, 1, NULL, NULL, 0); }

/* Sleep while m's word is `seen`, until w's deadline: 0, or an errno
 * (ETIMEDOUT; EAGAIN and EINTR just mean look again). Not private: other
 * processes wake us. */
static int futex_wait(struct rmutex *m, uint32_t seen, const wait_for *w)
{
    const struct timespec *at = w->mode == WAIT_UNTIL ? &w->at : NULL;
    if (syscall(SYS_futex, &m->word, FUTEX_WAIT_BITSET, seen, at, NULL,
                FUTEX_BITSET_MATCH_ANY) == 0)
        return 0;
    return errno == EAGAIN || errno == EINTR ? 0 : errno;
}

/*
 * Set m's word to `id` once it is free or its holder died: 0, EOWNERDEAD,
 * or the reason not. Once this thread has slept it may share
 * FUTEX_WAITERS with other sleepers, so it keeps the flag in the word it
 * sets (else their wake-up would be lost).
 */
static int take(struct rmutex *m, const wait_for *w, uint32_t id)
{
    uint32_t keep = 0, seen = atomic_load_explicit(&m->word, memory_order_relaxed);
    for (;;) {
        if (seen == 0 || (seen & FUTEX_OWNER_DIED)) {
            uint32_t want = id | keep | (seen & FUTEX_WAITERS);
            if (atomic_compare_exchange_strong_explicit(
                    &m->word, &seen, want, memory_order_acquire, memory_order_relaxed))
                return (seen & FUTEX_OWNER_DIED) ? EOWNERDEAD : 0;
            continue;
        }
        if ((seen & FUTEX_TID_MASK) == id)
            return EDEADLK;
        if (w->mode == WAIT_TRY)
            return ETIMEDOUT;
        if (!(seen & FUTEX_WAITERS)) {
            if (!atomic_compare_exchange_strong_explicit(
                    &m->word, &seen, seen | FUTEX_WAITERS, memory_order_relaxed,
                    memory_order_relaxed))
                continue;
            seen |= FUTEX_WAITERS;
        }
        keep = FUTEX_WAITERS;
        int e = futex_wait(m, seen, w);
        if (e != 0)
            return e;
        seen = atomic_load_explicit(&m->word, memory_order_relaxed);
    }
}

int rm_lock_slow(struct rmutex *m, const wait_for *w)
{
    if (!rm_self_ok()) {
        int e = rm_self_refresh();
        if (e != 0)
            return e;
    }
    struct robust_list_head *h = rm_self.head;
    rm_pending(h, m);
    int e = take(m, w, rm_self.tid);
    if (e == 0 || e == EOWNERDEAD) {
        if (atomic_load_explicit(&m->state, memory_order_relaxed) == RM_BROKEN)
            return rm_refuse(m);
        if (e == EOWNERDEAD)
            atomic_store_explicit(&m->state, RM_INCONSISTENT, memory_order_relaxed);
        rm_enqueue(h, m);
    }
    rm_pending(h, NULL);
    return e;
}

int rm_refuse(struct rmutex *m)
{
    rm_release(m);
    rm_pending(rm_self.head, NULL);
    return ENOTRECOVERABLE;
}

const char *rm_setup_step(int e)
{
    switch ((e & ~RM_ESETUP) >> RM_STAGE_SHIFT) {
    case RM_STAGE_PAGE: return "mapping the fork-wiped page (mmap, madvise MADV_WIPEONFORK)";
    case RM_STAGE_LIST: return "get_robust_list";
    case RM_STAGE_LAYOUT:
        return "this thread has no robust list from glibc, or glibc links it in a way pshm "
               "does not know (docs/locks.md)";
    default: return "getrandom";
    }
}

int rm_unlock_unknown(struct rmutex *m)
{
    int e = rm_self_refresh();
    return e != 0 ? e : rm_unlock(m);
}
