/*
 * lock_common.c — what the locks of every platform share (lock.c on
 * Linux, win/lock.c on Windows): the checks of a lock area, where every
 * misuse gets its message, and named locks (pshm_lock_open: a small block
 * holding a readers-writer lock at offset 0, made by whichever opener wins
 * the create race, using only the public block and lock calls).
 */
#include "internal.h"

#include <stdatomic.h>
#include <string.h>

/* ---- the area: bounds, alignment, tag ------------------------------------ */

size_t lock_size(enum lock_kind kind)
{
    return kind == KIND_MUTEX ? PSHM_MUTEX_SIZE : PSHM_RWLOCK_SIZE;
}

static const char *kind_name(enum lock_kind kind)
{
    return kind == KIND_MUTEX ? "mutex" : "readers-writer lock";
}

/* The area of `size` bytes at `offset`, checked for everything but its tag. */
static void *area_at(pshm_block *b, size_t offset, size_t size, const char *what, int *rc)
{
    *rc = 0;
    if (b == NULL)
        *rc = err_set(PSHM_EINVAL, "%s: NULL block handle", what);
    else if (!b->open)
        *rc = err_set(PSHM_ECLOSED, "%s \"%s\" at offset %zu: %s", what, b->name, offset,
                      pshm_strerror(PSHM_ECLOSED));
    else if (b->buf == NULL)
        *rc = err_set(PSHM_EINVAL,
                      "%s \"%s\" at offset %zu: the block is not mapped (PSHM_NOMAP); "
                      "map it with pshm_block_map first",
                      what, b->name, offset);
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

void *lock_at(pshm_block *b, size_t offset, enum lock_kind kind, const char *what, int *rc)
{
    _Atomic uint64_t *tag = area_at(b, offset, lock_size(kind), what, rc);
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

void *lock_init_area(pshm_block *b, size_t offset, enum lock_kind kind, const char *what,
                     int *rc)
{
    _Atomic uint64_t *tag = area_at(b, offset, lock_size(kind), what, rc);
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
    memset((void *)tag, 0, lock_size(kind));
    return tag;
}

/* ---- named locks ------------------------------------------------------------ */

/* How long an opener waits for the creator to initialise the lock. */
#define NAMED_READY_MS 2000

/* Wait until the creator of b published the rwlock at offset 0. */
static int named_wait_ready(pshm_block *b)
{
    int64_t deadline = monotonic_ms() + NAMED_READY_MS;
    const _Atomic uint64_t *tag = b->buf;
    if (b->size < PSHM_RWLOCK_SIZE)
        return err_set(PSHM_EBADLOCK,
                       "lock open \"%s\": the block (size %zu) is too small to be a named "
                       "lock",
                       b->name, b->size);
    uint64_t seen;
    while ((seen = atomic_load_explicit(tag, memory_order_acquire)) !=
           LOCK_TAG(KIND_RWLOCK)) {
        if (seen >> 32 == LOCK_MAGIC) /* published, but not as this library makes it */
            return err_set(PSHM_EBADLOCK,
                           "lock open \"%s\": the block holds a lock of another kind or pshm "
                           "version (tag %#018llx); remove it once no program uses it",
                           b->name, (unsigned long long)seen);
        if (monotonic_ms() >= deadline)
            return err_set(PSHM_EBADLOCK,
                           "lock open \"%s\": the block holds no initialised lock after "
                           "%d ms: not a named lock, or its creator died making it",
                           b->name, NAMED_READY_MS);
        os_sleep_ms(1);
    }
    return 0;
}

int pshm_lock_open(pshm_block **out, const char *name, unsigned flags)
{
    if (out == NULL || (flags & ~(unsigned)PSHM_UNTRACKED))
        return err_set(PSHM_EINVAL,
                       "lock open \"%s\": NULL handle pointer or invalid flags (only "
                       "PSHM_UNTRACKED)",
                       name ? name : "(null)");
    if (name == NULL)
        return err_set(PSHM_EBADNAME, "lock open: the name is NULL");
    /* Attach, else create; a create that loses the race attaches again. */
    for (;;) {
        int rc = pshm_block_attach(out, name, flags);
        if (rc == 0) {
            rc = named_wait_ready(*out);
            if (rc == 0)
                rc = lock_named_quiet(*out);
            if (rc < 0) {
                pshm_block_free(*out);
                *out = NULL;
            }
            return rc;
        }
        if (rc != PSHM_ENOENT)
            return rc;
        rc = pshm_block_create(out, name, PSHM_RWLOCK_SIZE, flags);
        if (rc == 0) {
            rc = pshm_rwlock_init(*out, 0);
            if (rc == 0)
                rc = lock_named_quiet(*out);
            if (rc < 0) {
                pshm_block_unlink(*out);
                pshm_block_free(*out);
                *out = NULL;
            }
            return rc;
        }
        if (rc != PSHM_EEXIST)
            return rc;
    }
}
