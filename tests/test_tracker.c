/*
 * test_tracker.c — the resource tracker, with real processes.
 *
 * Each test runs tests/helpers/tracker_probe.c in its own process (its own
 * tracker), kills it with SIGKILL or SIGTERM (both end it without any
 * cleanup of its own), and watches /dev/shm.
 */
#include "support.h"

#include "pshm.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Generous: the tracker acts within milliseconds; a loaded CI box is slow. */
#define GONE_WITHIN 10.0

struct probe {
    pid_t pid;     /* the process we started */
    pid_t holder;  /* the process that printed "ready" (differs for fork) */
    int out;       /* its stdout */
    char err[256]; /* file receiving its (and its tracker's) stderr */
};

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/*
 * Start tracker_probe with args; wait for its "ready <pid>" line. Its
 * stderr goes to p->err, or is closed (no_stderr) as some callers have it.
 */
static void probe_start_with(struct probe *p, bool no_stderr, const char *a1, const char *a2,
                             const char *a3, const char *a4)
{
    static int seq;
    snprintf(p->err, sizeof p->err, "/tmp/pshm_tracker_test_%d_%d.err", (int)getpid(), seq++);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    p->pid = fork();
    cr_assert_neq(p->pid, -1);
    if (p->pid == 0) {
        int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fds[1], STDOUT_FILENO);
        if (no_stderr)
            close(STDERR_FILENO);
        else
            dup2(err, STDERR_FILENO);
        close(err);
        close(fds[0]);
        close(fds[1]);
        const char *prog = t_env("PSHM_HELPER_tracker_probe");
        execl(prog, prog, a1, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->out = fds[0];
    char line[64];
    cr_assert(t_read_line(p->out, line, sizeof line, 30), "probe %s %s did not get ready: %s",
              a1, a2, slurp(p->err));
    cr_assert_eq(sscanf(line, "ready %d", &p->holder), 1, "probe said: %s", line);
}

static void probe_start(struct probe *p, const char *a1, const char *a2, const char *a3,
                        const char *a4)
{
    probe_start_with(p, false, a1, a2, a3, a4);
}

/* End the holder as given, reap what we started. */
static void probe_end(struct probe *p, int sig)
{
    kill(p->holder, sig);
    if (p->holder == p->pid)
        t_wait(p->pid, 10);
    close(p->out);
}

/* The tracker writes to the probe's stderr: wait for `needle` to appear. */
static bool stderr_mentions(const struct probe *p, const char *needle, double seconds)
{
    for (double waited = 0; waited < seconds; waited += 0.02) {
        if (strstr(slurp(p->err), needle) != NULL)
            return true;
        usleep(20000);
    }
    return false;
}

static void make_block(char *name, size_t cap, const char *tag) { t_name(name, cap, tag); }

Test(tracker, sigkill_leaves_nothing_and_says_so)
{
    char name[64];
    make_block(name, sizeof name, "kill");
    struct probe p;
    probe_start(&p, "create", name, NULL, NULL);
    cr_assert(t_shm_exists(name));
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "%s survived its creator's SIGKILL", name);
    cr_assert(stderr_mentions(&p, name, 5), "no warning naming %s; stderr: %s", name,
              slurp(p.err));
    unlink(p.err);
}

/* A name starting with '.' is a block name like any other. */
Test(tracker, dot_names_are_tracked_too)
{
    char name[64];
    t_name(name + 1, sizeof name - 1, "dot");
    name[0] = '.';
    struct probe p;
    probe_start(&p, "create", name, NULL, NULL);
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "%s survived its creator's SIGKILL", name);
    unlink(p.err);
}

/* The caller's stderr closed: the library's socket or a block's descriptor
 * can then sit on fd 2, and the tracker must not keep either. */
Test(tracker, caller_without_stderr)
{
    char name[64];
    make_block(name, sizeof name, "nostderr");
    struct probe p;
    probe_start_with(&p, true, "create", name, NULL, NULL);
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "%s leaked when the caller had no stderr",
              name);
    unlink(p.err);
}

Test(tracker, untracked_block_is_left_alone)
{
    char name[64];
    make_block(name, sizeof name, "untracked");
    struct probe p;
    probe_start(&p, "create", name, "untracked", NULL);
    probe_end(&p, SIGKILL);
    usleep(500000);
    cr_assert(t_shm_exists(name), "an untracked block was removed");
    cr_assert_eq(pshm_unlink(name), 0, "%s", pshm_last_error());
    unlink(p.err);
}

/* Rule 2 across families: two exec'd programs, two trackers. */
Test(tracker, block_survives_while_another_program_holds_it)
{
    char name[64];
    make_block(name, sizeof name, "two");
    struct probe a, b;
    probe_start(&a, "create", name, NULL, NULL);
    probe_start(&b, "attach", name, NULL, NULL);
    probe_end(&a, SIGTERM);
    usleep(700000); /* a's tracker has seen EOF and is waiting for b */
    cr_assert(t_shm_exists(name), "removed while another program still held it");
    probe_end(&b, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "not removed after the last holder exited");
    unlink(a.err);
    unlink(b.err);
}

/* An untracked handle counts as a user too. */
Test(tracker, untracked_holder_also_protects)
{
    char name[64];
    make_block(name, sizeof name, "uholder");
    struct probe a, b;
    probe_start(&a, "create", name, NULL, NULL);
    probe_start(&b, "attach", name, "untracked", NULL);
    probe_end(&a, SIGKILL);
    usleep(700000);
    cr_assert(t_shm_exists(name), "removed while an untracked handle was open");
    probe_end(&b, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN));
    unlink(a.err);
    unlink(b.err);
}

/* Rule 5: a forked child shares the tracker and keeps the block alive. */
Test(tracker, forked_child_keeps_block_after_parent_exits)
{
    char name[64];
    make_block(name, sizeof name, "fork");
    struct probe p;
    probe_start(&p, "fork", name, NULL, NULL);
    cr_assert_neq(p.holder, p.pid, "the holder should be the forked child");
    int st = t_wait(p.pid, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    usleep(500000);
    cr_assert(t_shm_exists(name), "removed while the forked child held it");
    pshm_block *b;
    cr_assert_eq(pshm_block_attach(&b, name, PSHM_UNTRACKED), 0, "%s", pshm_last_error());
    cr_assert_eq(((unsigned char *)pshm_block_buf(b))[100], 0x5a);
    pshm_block_free(b);
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN));
    unlink(p.err);
}

/* Rule 3: unlink wins; a stale record never touches a newer block. */
Test(tracker, stale_record_never_removes_a_new_block_of_the_same_name)
{
    char name[64];
    make_block(name, sizeof name, "reuse");
    struct probe p;
    probe_start(&p, "create", name, NULL, NULL);
    /* Remove it behind the probe's back and make a new block, held by no one. */
    cr_assert_eq(pshm_unlink(name), 0, "%s", pshm_last_error());
    pshm_block *fresh;
    cr_assert_eq(pshm_block_create(&fresh, name, 128, PSHM_UNTRACKED), 0, "%s",
                 pshm_last_error());
    pshm_block_free(fresh);
    probe_end(&p, SIGKILL);
    usleep(800000);
    cr_assert(t_shm_exists(name), "the tracker removed a newer block that reused the name");
    cr_assert_eq(pshm_unlink(name), 0, "%s", pshm_last_error());
    unlink(p.err);
}

Test(tracker, explicit_unlink_then_reuse_in_process)
{
    char name[64];
    make_block(name, sizeof name, "unl");
    pid_t child = fork();
    if (child == 0) {
        /* In a child, so its tracker runs its cleanup when the child exits. */
        pshm_block *b, *c;
        if (pshm_block_create(&b, name, 64, 0) < 0 || pshm_block_unlink(b) < 0)
            _exit(1);
        pshm_block_free(b);
        if (pshm_block_create(&c, name, 64, PSHM_UNTRACKED) < 0)
            _exit(2);
        pshm_block_free(c);
        _exit(0);
    }
    int st = t_wait(child, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", st);
    usleep(500000);
    cr_assert(t_shm_exists(name), "the untracked successor was removed");
    cr_assert_eq(pshm_unlink(name), 0);
}

/* A probe in `mode` that checks itself on a block of its own and says ready
 * only if all is well; killed, its tracker removes the block. */
static void probe_checks_itself(const char *mode)
{
    char name[64];
    make_block(name, sizeof name, mode);
    struct probe p;
    probe_start(&p, mode, name, NULL, NULL);
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN));
    unlink(p.err);
}

Test(tracker, never_a_reapable_child_or_sigchld) { probe_checks_itself("reap"); }

Test(tracker, multithreaded_caller)
{
    char prefix[64];
    make_block(prefix, sizeof prefix, "thr");
    struct probe p;
    probe_start(&p, "threads", prefix, "8", NULL);
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 50; i += 7) {
            char name[128];
            snprintf(name, sizeof name, "%s_%d_%d", prefix, t, i);
            cr_assert(t_shm_exists(name), "%s missing", name);
        }
    probe_end(&p, SIGKILL);
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 50; i++) {
            char name[128];
            snprintf(name, sizeof name, "%s_%d_%d", prefix, t, i);
            cr_assert(t_wait_gone(name, GONE_WITHIN), "%s leaked", name);
        }
    unlink(p.err);
}

/*
 * When the create that started it returns, a new tracker holds none of the
 * caller's blocks (or an unlinked block's memory would come back whenever
 * the tracker first ran: test_full_shm saw it) and ignores SIGTERM (or a
 * SIGTERM to creator and tracker at once would end it before its cleanup:
 * the stress run saw it). The probe checks at once, on one CPU.
 */
Test(tracker, new_tracker_is_ready_when_the_create_returns) { probe_checks_itself("fresh"); }

Test(tracker, recovers_when_the_tracker_is_killed)
{
    char a[64], b[64];
    make_block(a, sizeof a, "ra");
    make_block(b, sizeof b, "rb");
    struct probe p;
    probe_start(&p, "restart", a, b, NULL);
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(b, GONE_WITHIN), "block made after the restart leaked");
    cr_assert(t_wait_gone(a, GONE_WITHIN), "block re-registered with the new tracker leaked");
    unlink(p.err);
}

/* A PSHM_NOMAP handle is open without a mapping: it must still hold the
 * block (its flock) and be cleaned up after, and a new tracker must still
 * be told of it. */
Test(tracker, unmapped_handle_holds_its_block_and_is_cleaned_up)
{
    char name[64];
    make_block(name, sizeof name, "nomap");
    struct probe p;
    probe_start(&p, "create", name, "nomap", NULL);
    cr_assert(t_shm_exists(name));
    cr_assert(t_flock_held(name), "an unmapped handle does not hold its block");
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "unmapped tracked block leaked");
    unlink(p.err);
}

Test(tracker, recovers_when_the_tracker_is_killed_with_an_unmapped_handle)
{
    char a[64], b[64];
    make_block(a, sizeof a, "rna");
    make_block(b, sizeof b, "rnb");
    struct probe p;
    probe_start(&p, "restart", a, b, "nomap");
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(b, GONE_WITHIN), "block made after the restart leaked");
    cr_assert(t_wait_gone(a, GONE_WITHIN), "unmapped block not re-registered: leaked");
    unlink(p.err);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Cleanup is complete; its time is printed (never asserted) for the notes. */
static void many_blocks(int n)
{
    char prefix[64], count[16], last[128];
    make_block(prefix, sizeof prefix, "many");
    snprintf(count, sizeof count, "%d", n);
    struct probe p;
    probe_start(&p, "many", prefix, count, NULL);
    double t0 = now();
    probe_end(&p, SIGKILL);
    for (int i = 0; i < n; i++) {
        snprintf(last, sizeof last, "%s_%d", prefix, i);
        cr_assert(t_wait_gone(last, 60), "%s leaked (of %d)", last, n);
    }
    printf("tracker cleanup of %d blocks: %.3f s\n", n, now() - t0);
    /* Short summarised lines, not every name (10,000 names once made one
     * 130 kB line). A pass or two: the family's last descriptors may still
     * be closing when the tracker starts. */
    cr_assert(stderr_mentions(&p, " more", GONE_WITHIN), "%.300s", slurp(p.err));
    const char *text = slurp(p.err);
    for (const char *nl; *text != '\0'; text = nl + 1) {
        nl = strchr(text, '\n');
        cr_assert_not_null(nl, "an unfinished line: %.300s", text);
        cr_assert_lt(nl - text, 4096, "a line of %td bytes: %.300s", nl - text, text);
    }
    unlink(p.err);
}

Test(tracker, cleans_up_2500_blocks) { many_blocks(2500); }
Test(tracker, cleans_up_10000_blocks, .timeout = 240) { many_blocks(10000); }
