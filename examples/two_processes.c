/*
 * two_processes.c — two processes share a block: the parent creates it and
 * fills an int64 array (like the reference's NumPy example), a child process
 * attaches by name, changes the last element, and the parent sees it.
 */
#include <pshm.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const int64_t initial[] = {1, 1, 2, 3, 5, 8};
enum { COUNT = sizeof initial / sizeof *initial };

static void print_array(const char *who, const int64_t *a)
{
    printf("%s: [", who);
    for (int i = 0; i < COUNT; i++)
        printf("%s%" PRId64, i ? ", " : "", a[i]);
    printf("]\n");
    fflush(stdout);
}

/* The child: attach by name only, as an unrelated process would. */
static int child_main(const char *name)
{
    pshm_block *b;
    if (pshm_block_attach(&b, name, 0) < 0) {
        fprintf(stderr, "child: %s\n", pshm_last_error());
        return 1;
    }
    int64_t *c = pshm_block_buf(b);
    print_array("child sees", c);
    c[COUNT - 1] = 888;
    pshm_block_free(b);
    return 0;
}

int main(void)
{
    pshm_block *shm;
    if (pshm_block_create(&shm, NULL, sizeof initial, 0) < 0) {
        fprintf(stderr, "two_processes: %s\n", pshm_last_error());
        return 1;
    }
    int64_t *b = pshm_block_buf(shm);
    memcpy(b, initial, sizeof initial);
    printf("parent made %s\n", pshm_block_name(shm));
    print_array("parent wrote", b);

    pid_t pid = fork();
    if (pid == 0)
        _exit(child_main(pshm_block_name(shm)));
    int status;
    waitpid(pid, &status, 0);
    print_array("parent sees", b);

    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && b[COUNT - 1] == 888;
    pshm_block_unlink(shm);
    pshm_block_free(shm);
    return ok ? 0 : 1;
}
