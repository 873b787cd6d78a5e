/* A consumer of an installed pshm: creates, names and removes one block. */
#include <pshm.h>

#include <stdio.h>

int main(void)
{
    pshm_block *b;
    if (pshm_block_create(&b, NULL, 64, PSHM_UNTRACKED) < 0) {
        fprintf(stderr, "app: %s\n", pshm_last_error());
        return 1;
    }
    printf("made %s\n", pshm_block_name(b));
    int rc = pshm_block_unlink(b);
    pshm_block_free(b);
    return rc < 0;
}
