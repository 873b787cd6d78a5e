/*
 * win_mgr_helper — the other processes of tests/win/win_manager.c, through
 * the public API only:
 *
 *   win_mgr_helper start ADDR KEY    start a manager (ADDR "-": the default),
 *                                    make a block and a list through it,
 *                                    print "ADDRESS BLOCK LIST", then hold
 *                                    until killed (TerminateProcess)
 *   win_mgr_helper client ADDR KEY   connect; make a block, write it and
 *                                    read it back; make a list; see both in
 *                                    names; release both; print "ok"
 *
 * A failing call prints "error CODE: message" and exits 1.
 */
#include "pshm.h"

#include <windows.h>

#include <stdio.h>
#include <string.h>

static int fail(int rc)
{
    printf("error %d: %s\n", rc, pshm_last_error());
    fflush(stdout);
    return 1;
}

static int start(const char *addr, const char *key)
{
    pshm_manager *m;
    pshm_block *b;
    pshm_list *l;
    pshm_value v[2] = {pshm_int(7), pshm_str("seven")};
    int rc = pshm_manager_start(&m, strcmp(addr, "-") == 0 ? NULL : addr, key, strlen(key));
    if (rc == 0 && (rc = pshm_manager_block(m, 1000, &b)) == 0)
        rc = pshm_manager_list(m, v, 2, &l);
    if (rc < 0)
        return fail(rc);
    memset(pshm_block_buf(b), 'x', 1000);
    printf("%s %s %s\n", pshm_manager_address(m), pshm_block_name(b),
           pshm_block_name(pshm_list_block(l)));
    fflush(stdout);
    Sleep(INFINITE);
    return 0;
}

static bool has(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static int client(const char *addr, const char *key)
{
    pshm_manager *m;
    pshm_block *b;
    pshm_list *l;
    pshm_value v[1] = {pshm_int((int64_t)GetCurrentProcessId())};
    char **names;
    size_t n;
    int rc = pshm_manager_connect(&m, addr, key, strlen(key));
    if (rc == 0 && (rc = pshm_manager_block(m, 4096, &b)) == 0)
        rc = pshm_manager_list(m, v, 1, &l);
    if (rc == 0)
        rc = pshm_manager_names(m, &names, &n);
    if (rc < 0)
        return fail(rc);
    memset(pshm_block_buf(b), 'c', 4096);
    bool seen = has(names, n, pshm_block_name(b)) &&
                has(names, n, pshm_block_name(pshm_list_block(l)));
    pshm_names_free(names, n);
    int64_t got = 0;
    pshm_list_get_int(l, 0, &got);
    if (!seen || got != (int64_t)GetCurrentProcessId() ||
        ((char *)pshm_block_buf(b))[4095] != 'c') {
        puts("bad: names or contents");
        return 1;
    }
    if ((rc = pshm_manager_release(m, pshm_block_name(b))) < 0 ||
        (rc = pshm_manager_release(m, pshm_block_name(pshm_list_block(l)))) < 0)
        return fail(rc);
    pshm_block_free(b);
    pshm_list_free(l);
    pshm_manager_disconnect(m);
    puts("ok");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "start") == 0)
        return start(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "client") == 0)
        return client(argv[2], argv[3]);
    return 2;
}
