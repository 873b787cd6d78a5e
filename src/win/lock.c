/*
 * lock.c (Windows) — the robust locks are not built for Windows yet: they
 * rest on glibc's robust process-shared mutexes (src/lock.c, docs/locks.md).
 * Every call fails with PSHM_ESYS and says so, naming the block, so a
 * program linked against the DLL gets a clear error rather than a missing
 * symbol.
 */
#include "internal.h"

static int not_yet(const char *what, const pshm_block *b)
{
    return err_set(PSHM_ESYS, "%s \"%s\": locks are not supported on Windows yet", what,
                   b != NULL ? b->name : "(NULL handle)");
}

int pshm_mutex_init(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("mutex init", b);
}

int pshm_mutex_lock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    (void)offset, (void)timeout_ms;
    return not_yet("mutex lock", b);
}

int pshm_mutex_unlock(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("mutex unlock", b);
}

int pshm_mutex_consistent(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("mutex consistent", b);
}

int pshm_rwlock_init(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("rwlock init", b);
}

int pshm_rwlock_rdlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    (void)offset, (void)timeout_ms;
    return not_yet("rwlock rdlock", b);
}

int pshm_rwlock_wrlock(pshm_block *b, size_t offset, int64_t timeout_ms)
{
    (void)offset, (void)timeout_ms;
    return not_yet("rwlock wrlock", b);
}

int pshm_rwlock_rdunlock(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("rwlock rdunlock", b);
}

int pshm_rwlock_wrunlock(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("rwlock wrunlock", b);
}

int pshm_rwlock_consistent(pshm_block *b, size_t offset)
{
    (void)offset;
    return not_yet("rwlock consistent", b);
}

int pshm_lock_open(pshm_block **out, const char *name, unsigned flags)
{
    (void)flags;
    if (out != NULL)
        *out = NULL;
    return err_set(PSHM_ESYS, "lock open \"%s\": locks are not supported on Windows yet",
                   name != NULL ? name : "(NULL)");
}
