/*
 * win_holder — the second process of tests/win/win_block.c, through the
 * public API only. It prints one line when it is ready and then holds its
 * handle until it is killed (TerminateProcess), or exits at once:
 *
 *   win_holder create NAME SIZE   create, fill byte i with i * 7, "ready"
 *   win_holder attach NAME        attach, check the fill, "ok SIZE PROTECT"
 *   win_holder attach-ro NAME     the same, read-only (PSHM_READONLY)
 *   win_holder write NAME         attach, store 'W' at offset 0, exit
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

static void hold(void)
{
    fflush(stdout);
    Sleep(INFINITE);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *cmd = argv[1], *name = argv[2];
    pshm_block *b;
    int rc;
    if (strcmp(cmd, "create") == 0 && argc == 4) {
        size_t size = (size_t)strtoull(argv[3], NULL, 10);
        if ((rc = pshm_block_create(&b, name, size, 0)) < 0)
            return fail(rc);
        unsigned char *p = pshm_block_buf(b);
        for (size_t i = 0; i < size; i++)
            p[i] = (unsigned char)(i * 7);
        puts("ready");
        hold();
    }
    bool ro = strcmp(cmd, "attach-ro") == 0;
    if (ro || strcmp(cmd, "attach") == 0) {
        if ((rc = pshm_block_attach(&b, name, ro ? PSHM_READONLY : 0)) < 0)
            return fail(rc);
        const unsigned char *p = pshm_block_buf(b);
        size_t i = 1; /* byte 0 may have been written by `write` */
        while (i < 4096 && i < pshm_block_size(b) && p[i] == (unsigned char)(i * 7))
            i++;
        MEMORY_BASIC_INFORMATION mbi;
        VirtualQuery(p, &mbi, sizeof mbi);
        printf("%s %zu %#lx\n", i == 4096 || i == pshm_block_size(b) ? "ok" : "bad-fill",
               pshm_block_size(b), (unsigned long)mbi.Protect);
        hold();
    }
    if (strcmp(cmd, "write") == 0) {
        if ((rc = pshm_block_attach(&b, name, 0)) < 0)
            return fail(rc);
        *(char *)pshm_block_buf(b) = 'W';
        pshm_block_free(b);
        puts("ok");
        return 0;
    }
    return 2;
}
