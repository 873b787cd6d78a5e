/*
 * manager_starter.c — starts a manager and makes blocks through it, then
 * waits to be killed; for test_manager.c's "starter dies" test.
 *
 *   manager_starter COUNT
 *
 * Prints "address ADDR", one "block NAME" per block (all closed in this
 * process, so only the server's bookkeeping keeps them), then "ready", and
 * sleeps until killed.
 */
#include "pshm.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pshm_manager *m;
    if (pshm_manager_start(&m, NULL, NULL, 0) < 0) {
        fprintf(stderr, "manager_starter: %s\n", pshm_last_error());
        return 1;
    }
    printf("address %s\n", pshm_manager_address(m));
    for (int i = 0; i < count; i++) {
        pshm_block *b;
        if (pshm_manager_block(m, 4096, &b) < 0) {
            fprintf(stderr, "manager_starter: %s\n", pshm_last_error());
            return 1;
        }
        printf("block %s\n", pshm_block_name(b));
        pshm_block_free(b);
    }
    printf("ready\n");
    for (;;)
        pause();
}
