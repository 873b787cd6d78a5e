/*
 * limits.c — phase 3: system limits. Each must give PSHM_ELIMIT with a
 * message that names the block, and leave nothing half-made: no block of
 * that name, no descriptor, no mapping. The limits are set in forked
 * children, so the rest of the run keeps its own; /dev/shm is filled only
 * in a private mount namespace with a small tmpfs of its own.
 */
#include "stress.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024ull * 1024)

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    COUNT(limit_checks);
    if (!ok)
        COUNT(limit_failures);
    printf("   %s %s\n", ok ? "ok  " : "FAIL", line);
    fflush(stdout);
}

/* Own handles first: the first call opens the /proc/self/maps reader. */
static void snapshot(int *fds, int *handles)
{
    *handles = own_handles_open();
    *fds = open_fds();
}

/* The one claim every limit shares, for a failed call on `name`. */
static void check_clean_failure(const char *what, int rc, const char *name, bool gone,
                                int fds_before, int handles_before)
{
    const char *msg = pshm_last_error();
    check(rc == PSHM_ELIMIT, "%s: PSHM_ELIMIT (got %d: %s)", what, rc, msg);
    check(strstr(msg, name) != NULL, "%s: the message names the block", what);
    if (gone)
        check(!block_exists(name), "%s: no block %s exists afterwards", what, name);
    check(open_fds() == fds_before && own_handles_open() == handles_before,
          "%s: no descriptor or mapping left behind", what);
}

/* ---- out of file descriptors ------------------------------------------- */

/* RLIMIT_NOFILE bounds descriptor numbers, not their count. */
static int highest_fd(void)
{
    int top = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            top = fd;
    return top + 1;
}

static void fd_attach_and_list(const char *held)
{
    int fds, handles;
    snapshot(&fds, &handles);
    pshm_block *b;
    int rc = pshm_block_attach(&b, held, 0);
    check_clean_failure("attach with no descriptor left", rc, held, false, fds, handles);
    check(block_exists(held), "attach with no descriptor left: %s itself is untouched", held);
    char name[96];
    block_name(name, sizeof name, "lim_fd_list");
    pshm_value v[2] = {pshm_int(1), pshm_str("x")};
    pshm_list *l;
    rc = pshm_list_create(&l, name, v, 2, 0);
    check_clean_failure("list create with no descriptor left", rc, name, true, fds, handles);
}

static int fd_child(void)
{
    char name[96];
    pshm_block *warm;
    /* Start the tracker first: its socket is a descriptor too. */
    block_name(name, sizeof name, "lim_fd_warm");
    if (pshm_block_create(&warm, name, 4096, 0) == 0) {
        pshm_block_unlink(warm);
        pshm_block_free(warm);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    own_handles_open(); /* opens its /proc/self/maps reader while it can */
    rl.rlim_cur = (rlim_t)highest_fd() + 8;
    setrlimit(RLIMIT_NOFILE, &rl);
    /* Lower descriptors may be free too: at most rlim_cur creates succeed. */
    int tries = (int)rl.rlim_cur + 1;
    pshm_block **held = calloc((size_t)tries, sizeof *held);
    int i = 0, rc = 0, fds = 0, handles = 0;
    for (; held != NULL && i < tries; i++) {
        block_name(name, sizeof name, "lim_fd_%d", i);
        snapshot(&fds, &handles);
        if ((rc = pshm_block_create(&held[i], name, 4096, 0)) < 0)
            break;
    }
    check(i > 0 && i < tries, "RLIMIT_NOFILE %llu: create fails after %d blocks",
          (unsigned long long)rl.rlim_cur, i);
    check_clean_failure("create with no descriptor left", rc, name, true, fds, handles);
    if (i > 0)
        fd_attach_and_list(pshm_block_name(held[0]));
    for (int k = 0; k < i; k++) {
        pshm_block_unlink(held[k]);
        pshm_block_free(held[k]);
    }
    free(held);
    return 0;
}

/* ---- out of /dev/shm space --------------------------------------------- */

static void space_checks(void)
{
    struct statvfs vfs;
    if (statvfs("/dev/shm", &vfs) < 0) {
        fail("limits: statvfs /dev/shm");
        return;
    }
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    size_t sizes[2] = {(size_t)(free_bytes + 64 * MIB), (size_t)1 << 62};
    unsigned flags[2] = {0, PSHM_POPULATE};
    for (int k = 0; k < 2; k++) {
        char name[96], what[96];
        block_name(name, sizeof name, "lim_space_%d", k);
        snprintf(what, sizeof what, "create of %zu MiB with %llu MiB free%s", sizes[k] >> 20,
                 (unsigned long long)(free_bytes >> 20), flags[k] ? " (populate)" : "");
        int fds, handles;
        snapshot(&fds, &handles);
        pshm_block *b;
        int rc = pshm_block_create(&b, name, sizes[k], flags[k]);
        check_clean_failure(what, rc, name, true, fds, handles);
        if (rc == 0) {
            pshm_block_unlink(b);
            pshm_block_free(b);
        }
    }
}

/* ---- a full /dev/shm ---------------------------------------------------- */

/*
 * The helper full_shm fills /dev/shm, so it runs in a private mount
 * namespace with a 4 MiB tmpfs of its own (as a 64 MiB Docker /dev/shm,
 * scaled down), exec'd so that it starts with no library state (tracker,
 * handles) from this process: first its checks, then clients hammering one
 * manager on a nearly full /dev/shm. Never the machine's own /dev/shm.
 */
static int full_shm_child(const char *mode, const char *seconds)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        printf("   skip full /dev/shm checks: no private mount namespace (%s)\n",
               strerror(errno));
        return 3;
    }
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=4m") < 0) {
        printf("   skip full /dev/shm checks: mount tmpfs: %s\n", strerror(errno));
        return 3;
    }
    fflush(stdout);
    execl(PSHM_FULL_SHM_HELPER, "full_shm", mode, seconds, (char *)NULL);
    printf("   exec %s: %s\n", PSHM_FULL_SHM_HELPER, strerror(errno));
    return 1;
}

static void full_shm_checks(void)
{
    char seconds[32];
    double s = C.seconds * 0.05;
    snprintf(seconds, sizeof seconds, "%.1f", s < 2 ? 2 : s > 10 ? 10 : s);
    const char *modes[2][2] = {{"check", NULL}, {"stress", seconds}};
    for (int k = 0; k < 2; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            _exit(full_shm_child(modes[k][0], modes[k][1]));
        int st = 0;
        bool waited = pid > 0 && waitpid(pid, &st, 0) == pid;
        if (waited && WIFEXITED(st) && WEXITSTATUS(st) == 3)
            return; /* skipped, and said why */
        check(waited && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "full /dev/shm, full_shm %s%s%s: every check passed (status 0x%x)", modes[k][0],
              k ? " " : "", k ? seconds : "", st);
    }
}

/* ---- out of address space (RLIMIT_AS) ---------------------------------- */

static uint64_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return (uint64_t)kb * 1024;
}

static int as_child(const char *big, size_t size)
{
    /* Room for small allocations, none for a mapping of `size`. */
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)(vm_size() + size / 2);
    setrlimit(RLIMIT_AS, &rl);
    int fds, handles;
    snapshot(&fds, &handles);
    pshm_block *b;
    int rc = pshm_block_attach(&b, big, PSHM_UNTRACKED);
    check_clean_failure("attach with no address space left", rc, big, false, fds, handles);
    pshm_block_info info;
    check(pshm_block_stat(big, &info) == 0 && info.size == size,
          "attach with no address space left: %s itself is untouched", big);
    char name[96];
    block_name(name, sizeof name, "lim_as_new");
    rc = pshm_block_create(&b, name, size, 0);
    check_clean_failure("create with no address space left", rc, name, true, fds, handles);
    return 0;
}

static void run_child(int (*fn)(const char *, size_t), const char *arg, size_t size,
                      const char *what)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn(arg, size));
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("limits: the %s child failed (status 0x%x)", what, st);
}

static int fd_child_adapter(const char *arg, size_t size)
{
    (void)arg, (void)size;
    return fd_child();
}

static void as_checks(void)
{
    struct statvfs vfs;
    statvfs("/dev/shm", &vfs);
    uint64_t free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    size_t size = (size_t)(free_bytes / 4 < 256 * MIB ? free_bytes / 4 : 256 * MIB);
    size &= ~(size_t)(MIB - 1);
    if (size < 8 * MIB) {
        printf("   skip address-space checks: only %llu MiB free in /dev/shm\n",
               (unsigned long long)(free_bytes >> 20));
        return;
    }
    char big[96];
    block_name(big, sizeof big, "lim_as_big");
    pshm_block *b;
    if (pshm_block_create(&b, big, size, PSHM_UNTRACKED) < 0) {
        fail("limits: create %s: %s", big, pshm_last_error());
        return;
    }
    pshm_block_free(b); /* tmpfs pages are allocated lazily: this costs nothing */
    run_child(as_child, big, size, "address space");
    pshm_unlink(big);
}

int run_limits(void)
{
    run_child(fd_child_adapter, NULL, 0, "descriptor");
    space_checks();
    full_shm_checks();
    as_checks();
    check(count_prefixed("lim_", NULL, 0) == 0, "no block of the limit checks is left");
    return 0;
}
