/*
 * manager_workers.c — the reference's SharedMemoryManager example, in C:
 * a manager owns a 2,000-item list; two worker processes each fill half of
 * it with partial results; the parent sums them; shutdown removes every
 * block the manager made.
 */
#include <pshm.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

enum { ITEMS = 2000 };

/* A worker connects by address and key, as any other process could. */
static int do_work(const char *address, const void *key, size_t keylen, const char *list_name,
                   int64_t from, int64_t to)
{
    pshm_manager *m;
    if (pshm_manager_connect(&m, address, key, keylen) < 0)
        return 1;
    pshm_manager_disconnect(m); /* proved we can reach it; the list is by name */
    pshm_list *sl;
    if (pshm_list_attach(&sl, list_name, PSHM_UNTRACKED) < 0)
        return 1;
    for (int64_t i = from; i < to; i++)
        pshm_list_set(sl, i, pshm_int(i * i)); /* a "partial result" */
    pshm_list_free(sl);
    return 0;
}

static int run(pshm_manager *m, void *arg)
{
    (void)arg;
    pshm_value zeros[ITEMS];
    for (int i = 0; i < ITEMS; i++)
        zeros[i] = pshm_int(0);
    pshm_list *sl;
    if (pshm_manager_list(m, zeros, ITEMS, &sl) < 0)
        return 1;
    const char *name = pshm_block_name(pshm_list_block(sl));
    size_t keylen;
    const void *key = pshm_manager_authkey(m, &keylen);
    printf("manager at %s owns list %s (%d items)\n", pshm_manager_address(m), name, ITEMS);

    pid_t workers[2];
    for (int w = 0; w < 2; w++) {
        workers[w] = fork();
        if (workers[w] == 0)
            _exit(do_work(pshm_manager_address(m), key, keylen, name, w * ITEMS / 2,
                          (w + 1) * ITEMS / 2));
    }
    int failed = 0;
    for (int w = 0; w < 2; w++) {
        int st;
        waitpid(workers[w], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    int64_t total = 0;
    for (int64_t i = 0; i < ITEMS; i++) {
        pshm_value v;
        if (pshm_list_get(sl, i, &v) == 0 && v.type == PSHM_INT)
            total += v.u.i;
    }
    const int64_t expected = (int64_t)(ITEMS - 1) * ITEMS * (2 * ITEMS - 1) / 6;
    printf("sum of partial results: %" PRId64 " (expected %" PRId64 ")\n", total, expected);
    pshm_list_free(sl);
    return failed || total != expected;
}

int main(void)
{
    int rc = pshm_manager_with(NULL, NULL, 0, run, NULL);
    if (rc < 0)
        fprintf(stderr, "manager_workers: %s\n", pshm_last_error());
    else
        printf("manager shut down: every block it made is unlinked\n");
    return rc != 0;
}
