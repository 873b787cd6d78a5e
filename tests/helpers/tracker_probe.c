/*
 * tracker_probe — a program the tracker tests run, kill and watch.
 *
 *   tracker_probe create NAME [untracked|nomap]
 *                                           create (untracked, or tracked
 *                                           and never mapped), hold
 *   tracker_probe attach NAME [untracked]   attach, hold
 *   tracker_probe attach_each NAME...       attach every NAME (default
 *                                           flags: one tracker sees all), hold
 *   tracker_probe fork NAME                 create, fork a child that holds,
 *                                           the parent exits at once
 *   tracker_probe many PREFIX N             create PREFIX_0..N-1, hold
 *   tracker_probe reap NAME                 SIGCHLD handler + waitpid(-1)
 *                                           must never see the tracker
 *   tracker_probe threads PREFIX N          N threads create blocks, hold
 *   tracker_probe restart A B [nomap]       create A (never mapped: nomap);
 *                                           SIGKILL the tracker; create B (the
 *                                           library must start a new tracker
 *                                           and re-register A); hold
 *   tracker_probe fresh NAME                on one CPU, create NAME; the moment
 *                                           it returns, its new tracker must
 *                                           ignore SIGTERM and hold nothing in
 *                                           /dev/shm (exit 1 saying why); hold
 *   tracker_probe stall NAME PREFIX N       create NAME, stalled between its
 *                                           registration and its link while a
 *                                           forked sibling creates and unlinks
 *                                           PREFIX_0..N-1 (the tracker makes
 *                                           room meanwhile); hold
 *
 * "Hold" means: print "ready" on stdout, then wait for a signal. SIGTERM
 * ends the process at once without closing or unlinking anything, like a
 * crash, so only the tracker can clean up.
 */
#include "pshm.h"
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sockios.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "tracker_probe: %s: %s\n", what, pshm_last_error());
    exit(3);
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void hold(void)
{
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}

/* The flag named by the optional last word: untracked or nomap. */
static unsigned flag_word(int argc, char **argv, int at)
{
    if (argc <= at)
        return 0;
    return strcmp(argv[at], "untracked") == 0 ? PSHM_UNTRACKED
           : strcmp(argv[at], "nomap") == 0   ? PSHM_NOMAP
                                              : 0;
}

static void create_or_die(const char *name, size_t size, unsigned flags)
{
    pshm_block *b;
    if (pshm_block_create(&b, name, size, flags) < 0)
        die("create");
    if (!(flags & PSHM_NOMAP))
        memset(pshm_block_buf(b), 0x5a, size);
}

static void many(const char *prefix, int n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    for (int i = 0; i < n; i++) {
        char name[200];
        snprintf(name, sizeof name, "%s_%d", prefix, i);
        create_or_die(name, 64, 0);
    }
}

static volatile sig_atomic_t sigchld_seen;
static void on_chld(int sig)
{
    (void)sig;
    sigchld_seen = 1;
}

/* Exit 0 only if starting the tracker produced no reapable child. */
static int reap(const char *name)
{
    struct sigaction sa = {.sa_handler = on_chld};
    sigaction(SIGCHLD, &sa, NULL);
    create_or_die(name, 4096, 0);
    usleep(200000);
    errno = 0;
    pid_t r = waitpid(-1, NULL, WNOHANG);
    if (r != -1 || errno != ECHILD) {
        fprintf(stderr, "tracker_probe: waitpid(-1) returned %d (errno %d)\n", (int)r, errno);
        return 1;
    }
    if (sigchld_seen) {
        fprintf(stderr, "tracker_probe: SIGCHLD was delivered\n");
        return 1;
    }
    hold();
    return 0;
}

struct thread_arg {
    const char *prefix;
    int index;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 50; i++) {
        char name[200];
        snprintf(name, sizeof name, "%s_%d_%d", a->prefix, a->index, i);
        create_or_die(name, 4096, 0);
    }
    return NULL;
}

static void threads(const char *prefix, int n)
{
    pthread_t t[64];
    struct thread_arg args[64];
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++) {
        args[i] = (struct thread_arg){prefix, i};
        pthread_create(&t[i], NULL, thread_main, &args[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

static void restart(const char *a, const char *b, unsigned a_flags)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    create_or_die(a, 4096, a_flags);
    /* As subreaper we adopt the orphaned tracker, so it is findable as our child. */
    pid_t t = -1;
    for (int i = 0; i < 100 && (t = t_find_child("pshm-tracker")) < 0; i++)
        usleep(10000);
    if (t < 0)
        die("no tracker found");
    kill(t, SIGKILL);
    waitpid(t, NULL, 0);
    create_or_die(b, 4096, 0); /* must notice, restart, re-register a */
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

/* Our one child (the tracker, adopted: we are a subreaper), or -1. */
static pid_t only_child(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f != NULL && fscanf(f, "%d", &pid) != 1)
        pid = -1;
    if (f != NULL)
        fclose(f);
    return pid;
}

/* Whether the tracker's status says it ignores SIGTERM. */
static bool ignores_sigterm(pid_t t)
{
    char value[64];
    unsigned long long ign =
        t_proc_status(t, "SigIgn", value, sizeof value) ? strtoull(value, NULL, 16) : 0;
    return (ign >> (SIGTERM - 1)) & 1;
}

/* The first descriptor or mapping of the tracker's on a file in /dev/shm
 * (a block of ours it inherited) into `what`; false if there is none. */
static bool holds_shm(pid_t t, char *what, size_t cap)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)t);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (!found && f != NULL && fgets(line, sizeof line, f) != NULL)
        if ((found = strstr(line, " /dev/shm/") != NULL))
            snprintf(what, cap, "a mapping: %.400s", line);
    if (f != NULL)
        fclose(f);
    snprintf(path, sizeof path, "/proc/%d/fd", (int)t);
    DIR *d = opendir(path);
    struct dirent *de;
    while (!found && d != NULL && (de = readdir(d)) != NULL) {
        char fd[340], target[256] = "";
        snprintf(fd, sizeof fd, "%s/%s", path, de->d_name);
        if (readlink(fd, target, sizeof target - 1) > 0 &&
            (found = strncmp(target, "/dev/shm/", 9) == 0))
            snprintf(what, cap, "descriptor %.40s: %.200s", de->d_name, target);
    }
    if (d != NULL)
        closedir(d);
    return found;
}

/* On one CPU the tracker runs only when we let it: whatever it has not
 * done by the time create returns, it has not done. */
static int fresh(const char *name)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof one, &one);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    create_or_die(name, 64 * 1024, 0);
    pid_t t = only_child();
    char what[600] = "";
    if (t < 0)
        fprintf(stderr, "tracker_probe: no tracker among our children\n");
    else if (!ignores_sigterm(t))
        fprintf(stderr, "tracker_probe: the tracker does not ignore SIGTERM yet\n");
    else if (holds_shm(t, what, sizeof what))
        fprintf(stderr, "tracker_probe: the tracker still holds %s\n", what);
    else
        return 0;
    return 1;
}

/* While armed (stall), the library's linkat, which gives a created block
 * its name after the tracker has its record, first lets the sibling churn
 * and waits until it is done. */
static int stall_go = -1, stall_done = -1;

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
    if (stall_go >= 0) {
        char c;
        if (write(stall_go, "g", 1) != 1 || read(stall_done, &c, 1) != 1)
            die("stall: the sibling failed");
        stall_go = -1;
    }
    return (int)syscall(SYS_linkat, olddirfd, oldpath, newdirfd, newpath, flags);
}

/* Our end of the tracker's socket: our only socket. */
static int tracker_socket(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int fd = -1;
    while (fd < 0 && d != NULL && (de = readdir(d)) != NULL) {
        char path[300], target[64] = "";
        snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
        if (readlink(path, target, sizeof target - 1) > 0 &&
            strncmp(target, "socket:", 7) == 0)
            fd = atoi(de->d_name);
    }
    if (d != NULL)
        closedir(d);
    return fd;
}

/* The sibling: on `go`, create and unlink PREFIX_0..n-1, wait until the
 * tracker has read them all (nothing of ours left in its socket), say
 * `done`. */
static void churn(const char *prefix, int n, int go, int done)
{
    char c, name[200];
    if (read(go, &c, 1) != 1)
        _exit(1);
    for (int i = 0; i < n; i++) {
        pshm_block *b;
        snprintf(name, sizeof name, "%s_%d", prefix, i);
        if (pshm_block_create(&b, name, 64, 0) < 0 || pshm_block_unlink(b) < 0)
            die("churn");
        pshm_block_free(b);
    }
    int sock = tracker_socket(), queued;
    for (int ms = 0;
         sock >= 0 && ms < 30000 && ioctl(sock, SIOCOUTQ, &queued) == 0 && queued > 0; ms++)
        usleep(1000);
    if (write(done, "d", 1) != 1)
        _exit(1);
    _exit(0);
}

/* NAME's record reaches the tracker before NAME exists; meanwhile the
 * sibling's churn makes the tracker drop the records whose names are gone.
 * NAME's must survive: its creator holds the inode. */
static void stall(const char *name, const char *prefix, int n)
{
    char first[200];
    snprintf(first, sizeof first, "%s_start", prefix);
    pshm_block *b;
    if (pshm_block_create(&b, first, 64, 0) < 0 || pshm_block_unlink(b) < 0)
        die("create"); /* the family's tracker runs: the sibling shares it */
    pshm_block_free(b);
    int go[2], done[2];
    if (pipe(go) < 0 || pipe(done) < 0)
        die("pipe");
    pid_t sibling = fork();
    if (sibling == 0)
        churn(prefix, n, go[0], done[1]);
    stall_go = go[1];
    stall_done = done[0];
    create_or_die(name, 4096, 0);
    waitpid(sibling, NULL, 0);
}

int main(int argc, char **argv)
{
    signal(SIGTERM, on_term);
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of tracker_probe.c\n");
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "create") == 0) {
        create_or_die(argv[2], 4096, flag_word(argc, argv, 3));
    } else if (strcmp(mode, "attach") == 0) {
        pshm_block *b;
        if (pshm_block_attach(&b, argv[2], flag_word(argc, argv, 3)) < 0)
            die("attach");
    } else if (strcmp(mode, "attach_each") == 0) {
        for (int i = 2; i < argc; i++) {
            pshm_block *b;
            if (pshm_block_attach(&b, argv[i], 0) < 0)
                die("attach");
        }
    } else if (strcmp(mode, "fork") == 0) {
        create_or_die(argv[2], 4096, 0);
        pid_t child = fork();
        if (child != 0)
            _exit(child < 0 ? 1 : 0); /* the parent goes, the child holds */
        usleep(300000);               /* outlive the parent first */
    } else if (strcmp(mode, "many") == 0 && argc > 3) {
        many(argv[2], atoi(argv[3]));
    } else if (strcmp(mode, "reap") == 0) {
        return reap(argv[2]);
    } else if (strcmp(mode, "threads") == 0 && argc > 3) {
        threads(argv[2], atoi(argv[3]));
    } else if (strcmp(mode, "restart") == 0 && argc > 3) {
        restart(argv[2], argv[3], flag_word(argc, argv, 4));
    } else if (strcmp(mode, "fresh") == 0) {
        if (fresh(argv[2]) != 0)
            return 1;
    } else if (strcmp(mode, "stall") == 0 && argc > 4) {
        stall(argv[2], argv[3], atoi(argv[4]));
    } else {
        fprintf(stderr, "tracker_probe: unknown mode %s\n", mode);
        return 2;
    }
    hold();
}
