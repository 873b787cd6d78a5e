/* test_block.c — the block API: create, attach, close, unlink, errors. */
#include "support.h"

#include "pshm.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static pshm_block *create_ok(const char *name, size_t size, unsigned flags)
{
    pshm_block *b = NULL;
    int rc = pshm_block_create(&b, name, size, flags);
    cr_assert_eq(rc, 0, "create %s: %d %s", name ? name : "(random)", rc, pshm_last_error());
    return b;
}

static void destroy(pshm_block *b)
{
    cr_assert_eq(pshm_block_unlink(b), 0, "%s", pshm_last_error());
    pshm_block_free(b);
}

Test(block, random_name_looks_like_cpythons)
{
    pshm_block *b = create_ok(NULL, 100, PSHM_UNTRACKED);
    char name[PSHM_NAME_MAX + 1];
    strcpy(name, pshm_block_name(b));
    cr_assert_eq(strlen(name), PSHM_RANDOM_NAME_LEN);
    cr_assert_eq(strncmp(name, "psm_", 4), 0, "%s", name);
    for (int i = 4; i < PSHM_RANDOM_NAME_LEN; i++)
        cr_assert(isxdigit((unsigned char)name[i]) && !isupper((unsigned char)name[i]), "%s",
                  name);
    cr_assert(t_shm_exists(name));
    struct stat st;
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600 & ~0022 & 0777, "mode %o", st.st_mode & 0777);
    cr_assert_eq(st.st_size, 100);
    destroy(b);
    cr_assert_not(t_shm_exists(name));
}

Test(block, random_names_differ)
{
    pshm_block *a = create_ok(NULL, 1, PSHM_UNTRACKED),
               *b = create_ok(NULL, 1, PSHM_UNTRACKED);
    cr_assert_str_neq(pshm_block_name(a), pshm_block_name(b));
    destroy(a);
    destroy(b);
}

/* A random-named block's name, created and removed again at once. */
static void fresh_random_name(char name[PSHM_NAME_MAX + 1])
{
    pshm_block *b = create_ok(NULL, 1, PSHM_UNTRACKED);
    strcpy(name, pshm_block_name(b));
    destroy(b);
}

/* Names come from a pool of random bytes: a forked child must not draw the
 * bytes its parent draws next (each side's names are removed at once, so
 * exclusive creation would not notice the repeats). */
Test(block, forked_processes_draw_different_random_names)
{
    enum { NAMES = 4 };
    char parent[NAMES][PSHM_NAME_MAX + 1], child[NAMES][PSHM_NAME_MAX + 1];
    fresh_random_name(parent[0]); /* the pool has bytes left now */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < NAMES; i++)
            fresh_random_name(child[i]);
        _exit(write(fds[1], child, sizeof child) == (ssize_t)sizeof child ? 0 : 1);
    }
    close(fds[1]);
    int st = t_wait(pid, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed");
    cr_assert_eq(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    for (int i = 0; i < NAMES; i++)
        fresh_random_name(parent[i]);
    for (int i = 0; i < NAMES; i++)
        for (int j = 0; j < NAMES; j++)
            cr_assert_str_neq(parent[i], child[j], "parent and child both drew %s", child[j]);
}

Test(block, bytes_are_shared_between_handles_and_processes)
{
    char name[64];
    t_name(name, sizeof name, "share");
    pshm_block *a = create_ok(name, 10, PSHM_UNTRACKED);
    unsigned char *buf = pshm_block_buf(a);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(buf[i], 0, "a new block is zero-filled");
    memcpy(buf, (unsigned char[]){22, 33, 44, 55, 100}, 5);
    pid_t child = fork();
    if (child == 0) {
        pshm_block *b;
        if (pshm_block_attach(&b, name, PSHM_UNTRACKED) < 0 || pshm_block_size(b) != 10 ||
            memcmp(pshm_block_buf(b), (unsigned char[]){22, 33, 44, 55, 100}, 5) != 0)
            _exit(1);
        memcpy(pshm_block_buf(b), "howdy", 5);
        pshm_block_free(b);
        _exit(0);
    }
    int st = t_wait(child, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw other bytes");
    cr_assert_eq(memcmp(buf, "howdy", 5), 0);
    destroy(a);
}

Test(block, leading_slash_is_the_same_name)
{
    char name[64], slashed[70];
    t_name(name, sizeof name, "slash");
    snprintf(slashed, sizeof slashed, "/%s", name);
    pshm_block *a = create_ok(slashed, 64, PSHM_UNTRACKED);
    cr_assert_str_eq(pshm_block_name(a), name, "name is reported without the slash");
    pshm_block *b;
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_UNTRACKED), 0, "%s", pshm_last_error());
    pshm_block_free(b);
    cr_assert_eq(pshm_block_create(&b, name, 64, PSHM_UNTRACKED), PSHM_EEXIST);
    destroy(a);
}

Test(block, create_is_exclusive)
{
    char name[64];
    t_name(name, sizeof name, "excl");
    pshm_block *a = create_ok(name, 64, PSHM_UNTRACKED), *b = (pshm_block *)1;
    cr_assert_eq(pshm_block_create(&b, name, 4096, PSHM_UNTRACKED), PSHM_EEXIST);
    cr_assert_null(b, "*out is NULL after a failure");
    cr_assert(strstr(pshm_last_error(), name) && strstr(pshm_last_error(), "create"), "%s",
              pshm_last_error());
    cr_assert_eq(pshm_block_size(a), 64, "the existing block is untouched");
    destroy(a);
}

Test(block, bad_sizes)
{
    char name[64];
    pshm_block *b;
    t_name(name, sizeof name, "size");
    cr_assert_eq(pshm_block_create(&b, name, 0, PSHM_UNTRACKED), PSHM_EBADSIZE);
    cr_assert(strstr(pshm_last_error(), name), "%s", pshm_last_error());
    cr_assert_eq(pshm_block_create(&b, name, SIZE_MAX, PSHM_UNTRACKED), PSHM_EBADSIZE);
    cr_assert_eq(pshm_block_create(&b, name, (size_t)1 << 60, PSHM_UNTRACKED), PSHM_ELIMIT,
                 "%s", pshm_last_error());
    cr_assert_not(t_shm_exists(name), "a failed create leaves no name behind");
}

Test(block, bad_names)
{
    pshm_block *b;
    char longname[400];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *bad[] = {"", "/", "a/b", "/a/b", "//a", ".", "..", longname};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(pshm_block_create(&b, bad[i], 10, PSHM_UNTRACKED), PSHM_EBADNAME,
                     "create accepted \"%s\"", bad[i]);
        cr_assert_eq(pshm_block_attach(&b, bad[i], PSHM_UNTRACKED), PSHM_EBADNAME);
        cr_assert_eq(pshm_unlink(bad[i]), PSHM_EBADNAME);
    }
    cr_assert_eq(pshm_block_attach(&b, NULL, 0), PSHM_EBADNAME);
    cr_assert_eq(pshm_block_create(NULL, NULL, 10, 0), PSHM_EINVAL);
    cr_assert_eq(pshm_block_create(&b, NULL, 10, PSHM_READONLY), PSHM_EINVAL);
    cr_assert_eq(pshm_block_create(&b, NULL, 10, 1u << 20), PSHM_EINVAL);
}

Test(block, missing_block_message_names_it)
{
    pshm_block *b;
    cr_assert_eq(pshm_block_attach(&b, "psm_nosuch00", 0), PSHM_ENOENT);
    cr_assert_str_eq(pshm_last_error(),
                     "attach \"psm_nosuch00\": shm_open: no such shared memory block");
    cr_assert_str_eq(pshm_strerror(PSHM_ENOENT), "no such shared memory block");
}

Test(block, attach_reads_the_real_size)
{
    char name[64];
    t_name(name, sizeof name, "realsize");
    pshm_block *a = create_ok(name, 12345, PSHM_UNTRACKED), *b;
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_UNTRACKED), 0);
    cr_assert_eq(pshm_block_size(b), 12345);
    pshm_block_free(b);
    destroy(a);
}

Test(block, failed_attach_never_unlinks)
{
    /* An empty object (as a crashed creator could leave): CPython's attach
     * once unlinked it on the way out (gh-153279). */
    char name[64], path[128];
    t_name(name, sizeof name, "empty");
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    pshm_block *b;
    cr_assert_eq(pshm_block_attach(&b, name, 0), PSHM_EBADSIZE);
    cr_assert(strstr(pshm_last_error(), "empty"), "%s", pshm_last_error());
    cr_assert(t_shm_exists(name), "a failed attach removed the block");
    cr_assert_eq(pshm_unlink(name), 0);
}

Test(block, readonly_attach_cannot_write)
{
    char name[64];
    t_name(name, sizeof name, "ro");
    pshm_block *a = create_ok(name, 4096, PSHM_UNTRACKED);
    memcpy(pshm_block_buf(a), "hello", 5);
    pid_t child = fork();
    if (child == 0) {
        pshm_block *b;
        if (pshm_block_attach(&b, name, PSHM_READONLY | PSHM_UNTRACKED) < 0)
            _exit(1);
        if (memcmp(pshm_block_buf(b), "hello", 5) != 0)
            _exit(2);
        signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would turn it into an exit */
        ((volatile char *)pshm_block_buf(b))[0] = 'j'; /* must fault */
        _exit(3);
    }
    int st = t_wait(child, 10);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %d", st);
    cr_assert_eq(memcmp(pshm_block_buf(a), "hello", 5), 0);
    destroy(a);
}

Test(block, populate_flag)
{
    char name[64];
    t_name(name, sizeof name, "pop");
    pshm_block *a = create_ok(name, 1 << 20, PSHM_UNTRACKED | PSHM_POPULATE), *b;
    ((char *)pshm_block_buf(a))[(1 << 20) - 1] = 7;
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_UNTRACKED | PSHM_POPULATE), 0);
    cr_assert_eq(((char *)pshm_block_buf(b))[(1 << 20) - 1], 7);
    pshm_block_free(b);
    destroy(a);
}

Test(block, nomap_handle_is_open_and_holds_the_block_until_mapped)
{
    char name[64];
    t_name(name, sizeof name, "nomap");
    pshm_block *a = create_ok(name, 8192, PSHM_NOMAP), *b;
    cr_assert_null(pshm_block_buf(a));
    cr_assert(pshm_block_is_open(a));
    cr_assert_eq(pshm_block_size(a), 8192);
    cr_assert(t_flock_held(name), "an unmapped handle must hold its block");
    cr_assert_eq(pshm_block_reserve(a, 0, 4096), 0, "%s", pshm_last_error());
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_UNTRACKED), 0);
    memcpy((char *)pshm_block_buf(b) + 5000, "lazy", 4);
    char got[4];
    cr_assert_eq(pshm_block_read(a, 5000, got, 4), 0, "%s", pshm_last_error());
    cr_assert_eq(memcmp(got, "lazy", 4), 0);
    cr_assert_eq(pshm_block_map(a), 0, "%s", pshm_last_error());
    void *buf = pshm_block_buf(a);
    cr_assert_not_null(buf);
    cr_assert_eq(memcmp((char *)buf + 5000, "lazy", 4), 0);
    cr_assert_eq(pshm_block_map(a), 0);
    cr_assert_eq(pshm_block_buf(a), buf, "a second map must keep the mapping");
    pshm_block_free(b);
    cr_assert_eq(pshm_block_close(a), 0);
    cr_assert_null(pshm_block_buf(a));
    cr_assert(!t_flock_held(name), "close must release an unmapped handle's hold");
    cr_assert_eq(pshm_block_map(a), PSHM_ECLOSED);
    cr_assert(strstr(pshm_last_error(), name), "%s", pshm_last_error());
    destroy(a);
}

Test(block, nomap_attach_and_what_refuses_an_unmapped_handle)
{
    char name[64];
    t_name(name, sizeof name, "nomapro");
    pshm_block *a = create_ok(name, 4096, PSHM_UNTRACKED), *b, *c;
    memcpy(pshm_block_buf(a), "ro", 2);
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_NOMAP | PSHM_READONLY | PSHM_UNTRACKED), 0);
    cr_assert_null(pshm_block_buf(b));
    cr_assert_eq(pshm_block_map(b), 0, "%s", pshm_last_error());
    cr_assert_eq(memcmp(pshm_block_buf(b), "ro", 2), 0);
    cr_assert_eq(pshm_block_reserve(b, 0, 1), PSHM_EINVAL); /* read-only, mapped or not */
    cr_assert_eq(pshm_block_attach(&c, name, PSHM_NOMAP | PSHM_UNTRACKED), 0);
    cr_assert_eq(pshm_mutex_init(c, 0), PSHM_EINVAL);
    cr_assert(strstr(pshm_last_error(), "pshm_block_map"), "%s", pshm_last_error());
    cr_assert_eq(pshm_block_map(NULL), PSHM_EINVAL);
    pshm_list *l;
    pshm_value v = pshm_int(1);
    cr_assert_eq(pshm_list_create(&l, NULL, &v, 1, PSHM_NOMAP), PSHM_EINVAL);
    cr_assert(strstr(pshm_last_error(), "PSHM_NOMAP"), "%s", pshm_last_error());
    cr_assert_eq(pshm_list_attach(&l, name, PSHM_NOMAP), PSHM_EINVAL);
    pshm_block_free(c);
    pshm_block_free(b);
    destroy(a);
}

Test(block, close_and_unlink_in_either_order_and_twice)
{
    char name[64];
    t_name(name, sizeof name, "order");
    pshm_block *a = create_ok(name, 64, 0);
    cr_assert_eq(pshm_block_close(a), 0);
    cr_assert_null(pshm_block_buf(a));
    cr_assert_not(pshm_block_is_open(a));
    cr_assert_eq(pshm_block_close(a), 0, "a second close is a no-op");
    cr_assert_str_eq(pshm_block_name(a), name, "the name survives close");
    cr_assert_eq(pshm_block_size(a), 64);
    cr_assert_eq(pshm_block_unlink(a), 0, "%s", pshm_last_error());
    cr_assert_eq(pshm_block_unlink(a), PSHM_ENOENT, "a second unlink is an error");
    cr_assert(strstr(pshm_last_error(), "already unlinked"), "%s", pshm_last_error());
    pshm_block_free(a);

    pshm_block *b = create_ok(name, 64, 0);
    cr_assert_eq(pshm_block_unlink(b), 0);
    cr_assert_not(t_shm_exists(name));
    memcpy(pshm_block_buf(b), "still mapped", 12); /* mappings outlive the name */
    cr_assert_eq(pshm_block_close(b), 0);
    pshm_block_free(b);
    pshm_block_free(NULL);
}

Test(block, unlink_spares_a_newer_block_with_the_same_name)
{
    char name[64];
    t_name(name, sizeof name, "newer");
    pshm_block *old = create_ok(name, 64, PSHM_UNTRACKED);
    cr_assert_eq(pshm_unlink(name), 0);
    pshm_block *fresh = create_ok(name, 32, PSHM_UNTRACKED);
    cr_assert_eq(pshm_block_unlink(old), PSHM_ENOENT);
    cr_assert(t_shm_exists(name), "unlink through a stale handle removed a newer block");
    pshm_block_free(old);
    destroy(fresh);
}

Test(block, descriptor_limit_is_a_clear_error)
{
    char name[64];
    t_name(name, sizeof name, "fdlimit");
    pid_t child = fork();
    if (child == 0) {
        struct rlimit rl = {0, 0};
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = 0;
        setrlimit(RLIMIT_NOFILE, &rl);
        pshm_block *b;
        int rc = pshm_block_create(&b, name, 64, PSHM_UNTRACKED);
        _exit(rc == PSHM_ELIMIT && strstr(pshm_last_error(), name) ? 0 : 1);
    }
    int st = t_wait(child, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_assert_not(t_shm_exists(name));
}

/* A foreign program's exclusive flock (any program of the same user, or a
 * reader of a 0644 block, may take one) must not hang attach: a bounded
 * wait, then PSHM_EBUSY naming the block; once released, attach works. */
Test(block, foreign_exclusive_flock_is_a_bounded_wait)
{
    char name[64], path[128];
    t_name(name, sizeof name, "exlock");
    pshm_block *a = create_ok(name, 64, PSHM_UNTRACKED);
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    /* A second open file description conflicts even in this process. */
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pshm_block_close(a), 0); /* drop our shared lock first */
    cr_assert_eq(flock(fd, LOCK_EX), 0);
    pshm_block *b = NULL;
    int rc = pshm_block_attach(&b, name, PSHM_UNTRACKED);
    cr_assert_eq(rc, PSHM_EBUSY, "rc %d: %s", rc, pshm_last_error());
    cr_assert_null(b);
    cr_assert(strstr(pshm_last_error(), name) != NULL, "%s", pshm_last_error());
    cr_assert_eq(flock(fd, LOCK_UN), 0);
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_UNTRACKED), 0, "%s", pshm_last_error());
    close(fd);
    pshm_block_free(b);
    destroy(a);
}

/* A tracked create whose tracker cannot start fails and leaves nothing
 * (it used to succeed silently untracked, and the block then outlived
 * every holder). Descriptors 0-64 are taken and the limit is 66: one is
 * left for the block, none for the tracker's socket pair. */
Test(block, tracked_create_without_a_tracker_fails_cleanly)
{
    char name[64];
    t_name(name, sizeof name, "notracker");
    pid_t child = fork();
    if (child == 0) {
        int fd = open("/dev/null", O_RDONLY);
        while (fd > 0 && fd < 64)
            fd = dup(fd); /* fill descriptors up to 64 */
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = 66;
        setrlimit(RLIMIT_NOFILE, &rl);
        pshm_block *b;
        int rc = pshm_block_create(&b, name, 64, 0);
        _exit(rc == PSHM_ELIMIT && strstr(pshm_last_error(), "tracker") &&
                      strstr(pshm_last_error(), name)
                  ? 0
                  : 1);
    }
    int st = t_wait(child, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert_not(t_shm_exists(name));
}

Test(block, permission_denied_is_its_own_code)
{
    char name[64];
    t_name(name, sizeof name, "perm");
    pshm_block *a = create_ok(name, 64, PSHM_UNTRACKED);
    pid_t child = fork();
    if (child == 0) {
        /* Root ignores file modes, so drop to an unprivileged user first. */
        if (getuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
            _exit(2);
        pshm_block *b;
        int rc = pshm_block_attach(&b, name, PSHM_UNTRACKED);
        _exit(rc == PSHM_EACCES ? 0 : 1);
    }
    int st = t_wait(child, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    destroy(a);
}

Test(block, stat)
{
    char name[64];
    t_name(name, sizeof name, "stat");
    pshm_block *a = create_ok(name, 777, PSHM_UNTRACKED);
    pshm_block_info info;
    cr_assert_eq(pshm_block_stat(name, &info), 0);
    cr_assert_str_eq(info.name, name);
    cr_assert_eq(info.size, 777);
    cr_assert_eq(info.uid, getuid());
    cr_assert_eq(info.mode, 0600 & ~0022);
    cr_assert_eq(pshm_block_stat("psm_nosuch00", &info), PSHM_ENOENT);
    destroy(a);
}

static char foreach_target[64];
static int visit(const pshm_block_info *i, void *arg)
{
    if (strcmp(i->name, foreach_target) == 0)
        *(bool *)arg = true;
    return 0;
}

Test(block, foreach_sees_a_new_block)
{
    t_name(foreach_target, sizeof foreach_target, "each");
    pshm_block *a = create_ok(foreach_target, 1, PSHM_UNTRACKED);
    bool seen = false;
    cr_assert_eq(pshm_block_foreach(visit, &seen), 0);
    cr_assert(seen);
    destroy(a);
}

static void *fail_in_thread(void *arg)
{
    pshm_block *b;
    pshm_block_attach(&b, (const char *)arg, 0);
    return strdup(pshm_last_error());
}

Test(block, last_error_is_per_thread)
{
    pshm_block *b;
    pshm_block_attach(&b, "psm_mainthrd", 0);
    pthread_t t;
    pthread_create(&t, NULL, fail_in_thread, "psm_otherthr");
    char *theirs;
    pthread_join(t, (void **)&theirs);
    cr_assert(strstr(theirs, "psm_otherthr"));
    cr_assert(strstr(pshm_last_error(), "psm_mainthrd"), "%s", pshm_last_error());
    free(theirs);
}

Test(block, every_code_has_text)
{
    for (int c = -1015; c <= 0; c++)
        cr_assert_not_null(pshm_strerror(c));
    cr_assert_str_eq(pshm_strerror(12345), "unknown error");
    cr_assert_str_neq(pshm_strerror(PSHM_EEXIST), pshm_strerror(PSHM_ENOENT));
}
