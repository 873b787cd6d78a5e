/*
 * block.c (Windows) — named shared memory blocks as CPython makes them on
 * Windows: a file mapping backed by the paging file, created exclusively
 * with CreateFileMappingW under the name as given, attached with
 * OpenFileMappingW, its size read back with VirtualQuery (so an attached
 * handle sees the size rounded up to whole pages, as in CPython).
 *
 * The kernel frees a mapping when its last handle closes, in whatever way
 * the holders end: unlink has nothing to do, and there is no tracker
 * (PSHM_UNTRACKED changes nothing). Names are UTF-8 in the API and UTF-16
 * for the system.
 */
#include "internal.h"

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often a random name may collide before create gives up. */
#define RANDOM_NAME_TRIES 64

/* Linux's name rules, and no '\\': Windows reads it as a namespace
 * ("Local\\..."), which would put the block somewhere else. */
static int block_name(const char *what, const char *name, char bare[PSHM_NAME_MAX + 1],
                      wchar_t wide[PSHM_NAME_MAX + 1])
{
    int rc = name_normalize(what, name, bare);
    if (rc == 0 && strchr(bare, '\\') != NULL)
        rc = err_set(PSHM_EBADNAME, "%s \"%s\": block name may not contain '\\' on Windows",
                     what, name);
    return rc < 0 ? rc : name_to_wide(what, bare, wide);
}

/* "psm_" + 8 hex digits from a cryptographic source, as CPython makes them. */
static int random_name(char name[PSHM_NAME_MAX + 1], wchar_t wide[PSHM_NAME_MAX + 1])
{
    unsigned char rnd[4];
    if (os_random_bytes(rnd, sizeof rnd) < 0)
        return err_set(PSHM_ESYS, "create: BCryptGenRandom failed");
    snprintf(name, PSHM_NAME_MAX + 1, "psm_%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    return name_to_wide("create", name, wide);
}

static int map_view(pshm_block *b, const char *what, size_t size)
{
    DWORD access = (b->flags & PSHM_READONLY) ? FILE_MAP_READ : FILE_MAP_WRITE;
    b->buf = MapViewOfFile(b->mapping, access, 0, 0, size);
    if (b->buf == NULL) {
        int rc = err_win(GetLastError(), what, b->name, "MapViewOfFile");
        CloseHandle(b->mapping);
        b->mapping = NULL;
        return rc;
    }
    return 0;
}

/* Make the mapping exclusively: an existing name is PSHM_EEXIST (a random
 * one is replaced and retried). */
static int open_new(pshm_block *b, wchar_t *wide, size_t size, bool random)
{
    for (int tries = 0; tries < RANDOM_NAME_TRIES; tries++) {
        b->mapping = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                        (DWORD)((uint64_t)size >> 32), (DWORD)size, wide);
        if (b->mapping == NULL)
            return err_win(GetLastError(), "create", b->name, "CreateFileMappingW");
        if (GetLastError() != ERROR_ALREADY_EXISTS)
            return 0;
        CloseHandle(b->mapping);
        b->mapping = NULL;
        if (!random)
            return err_set(PSHM_EEXIST, "create \"%s\": CreateFileMappingW: %s", b->name,
                           pshm_strerror(PSHM_EEXIST));
        int rc = random_name(b->name, wide);
        if (rc < 0)
            return rc;
    }
    return err_set(PSHM_EEXIST, "create: %d random names in a row already existed",
                   RANDOM_NAME_TRIES);
}

int pshm_block_create(pshm_block **out, const char *name, size_t size, unsigned flags)
{
    const char *shown = name ? name : "(random)";
    int rc = block_check_create(out, name, size, flags);
    if (rc < 0)
        return rc;
    pshm_block *b = calloc(1, sizeof *b);
    if (b == NULL)
        return err_set(PSHM_ELIMIT, "create \"%s\": out of memory", shown);
    b->flags = flags | PSHM_UNTRACKED;
    wchar_t wide[PSHM_NAME_MAX + 1];
    rc =
        name != NULL ? block_name("create", name, b->name, wide) : random_name(b->name, wide);
    if (rc == 0)
        rc = open_new(b, wide, size, name == NULL);
    if (rc == 0)
        rc = map_view(b, "create", size);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->size = size;
    b->open = true;
    *out = b;
    return 0;
}

/* The size of the view at buf, as CPython reads it: the region VirtualQuery
 * reports, whole pages. */
static size_t view_size(const void *buf)
{
    MEMORY_BASIC_INFORMATION mbi;
    return VirtualQuery(buf, &mbi, sizeof mbi) == sizeof mbi ? mbi.RegionSize : 0;
}

/* Open and map the existing mapping `name` into b. */
static int open_existing(pshm_block *b, const char *what, const char *name)
{
    wchar_t wide[PSHM_NAME_MAX + 1];
    int rc = block_name(what, name, b->name, wide);
    if (rc < 0)
        return rc;
    DWORD access = (b->flags & PSHM_READONLY) ? FILE_MAP_READ : FILE_MAP_WRITE;
    b->mapping = OpenFileMappingW(access, FALSE, wide);
    if (b->mapping == NULL)
        return err_win(GetLastError(), what, b->name, "OpenFileMappingW");
    if ((rc = map_view(b, what, 0)) < 0)
        return rc;
    b->size = view_size(b->buf);
    if (b->size == 0) {
        rc = err_win(GetLastError(), what, b->name, "VirtualQuery");
        pshm_block_close(b);
    }
    return rc;
}

int pshm_block_attach(pshm_block **out, const char *name, unsigned flags)
{
    if (out == NULL || (flags & ~(unsigned)ATTACH_FLAGS))
        return err_set(PSHM_EINVAL, "attach \"%s\": NULL handle pointer or invalid flags",
                       name ? name : "(null)");
    *out = NULL;
    pshm_block *b = calloc(1, sizeof *b);
    if (b == NULL)
        return err_set(PSHM_ELIMIT, "attach \"%s\": out of memory", name ? name : "(null)");
    b->flags = flags | PSHM_UNTRACKED;
    int rc = open_existing(b, "attach", name);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->open = true;
    *out = b;
    return 0;
}

/* No tracker on Windows: the kernel frees a block with its last handle. */
int block_track_attached(pshm_block *b, unsigned flags, const char *what)
{
    (void)flags;
    (void)what;
    b->flags |= PSHM_UNTRACKED;
    return 0;
}

/* The paging file backs every page from CreateFileMappingW on (the commit
 * is charged there), so there is nothing left to reserve. */
int block_reserve(const pshm_block *b, const char *what, size_t offset, size_t len)
{
    (void)b;
    (void)what;
    (void)offset;
    (void)len;
    return 0;
}

int pshm_block_read(const pshm_block *b, size_t offset, void *dst, size_t len)
{
    int rc = block_check_range(b, "read", offset, len);
    if (rc == 0 && dst == NULL && len > 0)
        rc = err_set(PSHM_EINVAL, "read \"%s\": NULL destination", b->name);
    if (rc == 0 && len > 0)
        memcpy(dst, (const char *)b->buf + offset, len);
    return rc;
}

int pshm_block_close(pshm_block *b)
{
    int rc = block_check_close(b);
    if (rc < 0)
        return rc;
    if (b->fast != NULL)
        *b->fast = (fast_limits){0, 0};
    if (b->buf != NULL && !UnmapViewOfFile(b->buf))
        rc = err_win(GetLastError(), "close", b->name, "UnmapViewOfFile");
    b->buf = NULL;
    if (b->mapping != NULL && !CloseHandle(b->mapping) && rc == 0)
        rc = err_win(GetLastError(), "close", b->name, "CloseHandle");
    b->mapping = NULL;
    b->open = false;
    return rc;
}

/* Windows maps a view at once, PSHM_NOMAP or not (attach learns the size
 * from the view), so an open handle is always mapped. */
int block_map(pshm_block *b, const char *what)
{
    (void)b;
    (void)what;
    return 0;
}

void pshm_block_free(pshm_block *b)
{
    if (b == NULL)
        return;
    pshm_block_close(b);
    free(b);
}

/* As the reference says: on Windows unlink succeeds and does nothing; the
 * block goes when its last handle closes. */
int pshm_block_unlink(pshm_block *b)
{
    return b == NULL ? err_set(PSHM_EINVAL, "unlink: NULL handle") : 0;
}

int pshm_unlink(const char *name)
{
    char bare[PSHM_NAME_MAX + 1];
    wchar_t wide[PSHM_NAME_MAX + 1];
    return block_name("unlink", name, bare, wide);
}

/* Windows keeps no owner or mode for a mapping we could read back: the
 * info says mode 0600 and owner 0, and the size in whole pages. */
int pshm_block_stat(const char *name, pshm_block_info *info)
{
    pshm_block b = {.flags = PSHM_READONLY};
    int rc = open_existing(&b, "stat", name);
    if (rc == 0 && info == NULL)
        rc = err_set(PSHM_EINVAL, "stat \"%s\": NULL info pointer", b.name);
    if (rc == 0) {
        memset(info, 0, sizeof *info);
        memcpy(info->name, b.name, strlen(b.name) + 1);
        info->size = b.size;
        info->mode = 0600;
    }
    pshm_block_close(&b);
    return rc;
}

int pshm_block_foreach(int (*fn)(const pshm_block_info *info, void *arg), void *arg)
{
    (void)arg;
    if (fn == NULL)
        return err_set(PSHM_EINVAL, "list blocks: NULL callback");
    return err_set(PSHM_ESYS,
                   "list blocks: Windows cannot list named file mappings "
                   "(there is no directory of them to read)");
}
