/*
 * basic_block.c — the reference's low-level example, in C: create a block,
 * write it through one handle, attach a second handle by name, read and
 * write through that, then close both and unlink once.
 */
#include <pshm.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "basic_block: %s: %s\n", what, pshm_last_error());
    return 1;
}

int main(void)
{
    pshm_block *a, *b;
    if (pshm_block_create(&a, NULL, 10, 0) < 0)
        return fail("create");
    unsigned char *buf = pshm_block_buf(a);
    printf("created %s, %zu bytes\n", pshm_block_name(a), pshm_block_size(a));
    memcpy(buf, (unsigned char[]){22, 33, 44, 55}, 4); /* several at once */
    buf[4] = 100;                                      /* or one at a time */

    if (pshm_block_attach(&b, pshm_block_name(a), 0) < 0)
        return fail("attach");
    const signed char *seen = pshm_block_buf(b);
    printf("second handle sees: [%d, %d, %d, %d, %d]\n", seen[0], seen[1], seen[2], seen[3],
           seen[4]);
    memcpy(pshm_block_buf(b), "howdy", 5);
    printf("first handle sees: %.5s\n", (const char *)buf);

    pshm_block_free(b);           /* close each handle */
    if (pshm_block_unlink(a) < 0) /* unlink once */
        return fail("unlink");
    pshm_block_free(a);
    return 0;
}
