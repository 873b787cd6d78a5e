/*
 * lock_named.c — named locks (pshm_lock_open): a small block holding a
 * readers-writer lock at offset 0, made by whichever opener wins the
 * create race. Shared by every platform: it uses only the public block
 * and lock calls and the lock tag of internal.h.
 */
#include "internal.h"

#include <stdatomic.h>

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
    while (atomic_load_explicit(tag, memory_order_acquire) != LOCK_TAG(KIND_RWLOCK)) {
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
