/*
 * manager.c (Windows) — the manager is not built for Windows yet: every
 * call fails with PSHM_ESYS and says so, so a program linked against the
 * DLL gets a clear error rather than a missing symbol. docs/design.md says
 * what a Windows manager needs (named pipes, a server process).
 */
#include "internal.h"

#include <stdlib.h>

#define NOT_YET(what)                                                                        \
    err_set(PSHM_ESYS, "%s: the manager is not supported on Windows yet", what)

int pshm_manager_start(pshm_manager **out, const char *address, const void *key,
                       size_t keylen)
{
    (void)address, (void)key, (void)keylen;
    if (out != NULL)
        *out = NULL;
    return NOT_YET("start");
}

int pshm_manager_connect(pshm_manager **out, const char *address, const void *key,
                         size_t keylen)
{
    (void)address, (void)key, (void)keylen;
    if (out != NULL)
        *out = NULL;
    return NOT_YET("connect");
}

/* No pshm_manager is ever made on Windows, so these see only NULL. */
const char *pshm_manager_address(const pshm_manager *m)
{
    (void)m;
    return NULL;
}

const void *pshm_manager_authkey(const pshm_manager *m, size_t *len)
{
    (void)m;
    if (len != NULL)
        *len = 0;
    return NULL;
}

int pshm_manager_block(pshm_manager *m, size_t size, pshm_block **out)
{
    (void)m, (void)size, (void)out;
    return NOT_YET("manager block");
}

int pshm_manager_list(pshm_manager *m, const pshm_value *values, size_t n, pshm_list **out)
{
    (void)m, (void)values, (void)n, (void)out;
    return NOT_YET("manager list");
}

int pshm_manager_names(pshm_manager *m, char ***names, size_t *count)
{
    (void)m, (void)names, (void)count;
    return NOT_YET("manager names");
}

void pshm_names_free(char **names, size_t count)
{
    for (size_t i = 0; names != NULL && i < count; i++)
        free(names[i]);
    free(names);
}

int pshm_manager_release(pshm_manager *m, const char *name)
{
    (void)m, (void)name;
    return NOT_YET("release");
}

int pshm_manager_shutdown(pshm_manager *m)
{
    (void)m;
    return NOT_YET("shutdown");
}

void pshm_manager_disconnect(pshm_manager *m) { (void)m; }

int pshm_manager_serve(const char *address, const void *key, size_t keylen,
                       void (*ready)(const char *address, void *arg), void *arg)
{
    (void)address, (void)key, (void)keylen, (void)ready, (void)arg;
    return NOT_YET("serve");
}

int pshm_manager_with(const char *address, const void *key, size_t keylen,
                      int (*fn)(pshm_manager *m, void *arg), void *arg)
{
    (void)address, (void)key, (void)keylen, (void)fn, (void)arg;
    return NOT_YET("manager");
}
