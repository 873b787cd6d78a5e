/*
 * block_common.c — what blocks check the same way on every platform: names,
 * sizes, handles and ranges, so bad input gets the same message everywhere;
 * and the calls that only read the handle or use the platform's calls.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int name_normalize(const char *what, const char *name, char out[PSHM_NAME_MAX + 1])
{
    if (name == NULL)
        return err_set(PSHM_EBADNAME, "%s: block name is NULL", what);
    const char *bare = name[0] == '/' ? name + 1 : name;
    size_t len = strlen(bare);
    if (len == 0)
        return err_set(PSHM_EBADNAME, "%s \"%s\": block name is empty", what, name);
    if (len > PSHM_NAME_MAX)
        return err_set(PSHM_EBADNAME, "%s \"%.40s...\": block name is longer than %d bytes",
                       what, name, PSHM_NAME_MAX);
    if (strchr(bare, '/') != NULL)
        return err_set(PSHM_EBADNAME,
                       "%s \"%s\": block name may not contain '/' "
                       "(except one leading)",
                       what, name);
    if (strcmp(bare, ".") == 0 || strcmp(bare, "..") == 0)
        return err_set(PSHM_EBADNAME, "%s \"%s\": not a block name", what, name);
    memcpy(out, bare, len + 1);
    return 0;
}

/* Checked before anything is made, so the message names only what the
 * caller gave: never a random name the caller has not seen. */
static int check_size(const char *name, size_t size)
{
    if (size != 0 && size <= (size_t)INT64_MAX)
        return 0;
    char who[PSHM_NAME_MAX + 32];
    if (name == NULL)
        snprintf(who, sizeof who, "create (random name)");
    else
        snprintf(who, sizeof who, "create \"%.*s\"", PSHM_NAME_MAX + 1, name);
    if (size == 0)
        return err_set(PSHM_EBADSIZE, "%s: size must be greater than 0", who);
    return err_set(PSHM_EBADSIZE, "%s: size %zu is too large", who, size);
}

int block_check_create(pshm_block **out, const char *name, size_t size, unsigned flags)
{
    if (out == NULL || (flags & ~(unsigned)CREATE_FLAGS))
        return err_set(PSHM_EINVAL,
                       "create \"%s\": NULL handle pointer or invalid flags "
                       "(PSHM_READONLY is for attach)",
                       name ? name : "(random)");
    *out = NULL;
    return check_size(name, size);
}

int block_check_range(const pshm_block *b, const char *what, size_t offset, size_t len)
{
    if (b == NULL)
        return err_set(PSHM_EINVAL, "%s: NULL handle", what);
    if (!b->open)
        return err_set(PSHM_ECLOSED, "%s \"%s\": %s", what, b->name,
                       pshm_strerror(PSHM_ECLOSED));
    if (offset > b->size || len > b->size - offset)
        return err_set(PSHM_EINVAL,
                       "%s \"%s\": offset %zu + length %zu runs past the end "
                       "of the block (size %zu)",
                       what, b->name, offset, len, b->size);
    return 0;
}

void *pshm_block_buf(const pshm_block *b) { return b ? b->buf : NULL; }

size_t pshm_block_size(const pshm_block *b) { return b ? b->size : 0; }

const char *pshm_block_name(const pshm_block *b) { return b ? b->name : NULL; }

bool pshm_block_is_open(const pshm_block *b) { return b != NULL && b->open; }

int pshm_block_map(pshm_block *b)
{
    if (b == NULL)
        return err_set(PSHM_EINVAL, "map: NULL handle");
    if (!b->open)
        return err_set(PSHM_ECLOSED, "map \"%s\": %s", b->name, pshm_strerror(PSHM_ECLOSED));
    return b->buf != NULL ? 0 : block_map(b, "map");
}

int pshm_block_reserve(pshm_block *b, size_t offset, size_t len)
{
    int rc = block_check_range(b, "reserve", offset, len);
    if (rc == 0 && (b->flags & PSHM_READONLY))
        rc = err_set(PSHM_EINVAL, "reserve \"%s\": the handle is read-only (PSHM_READONLY)",
                     b->name);
    return rc < 0 ? rc : block_reserve(b, "reserve", offset, len);
}

int block_check_close(const pshm_block *b)
{
    if (b == NULL)
        return err_set(PSHM_EINVAL, "close: NULL handle");
    ptrdiff_t held = b->buf != NULL ? lock_held_in(b->buf, b->size) : -1;
    if (held >= 0)
        return err_set(PSHM_EBUSY,
                       "close \"%s\": the calling thread holds a lock in the block (its "
                       "mutex near offset %td); unlock it first, or the lock could never "
                       "be released if this process died",
                       b->name, held);
    return 0;
}
