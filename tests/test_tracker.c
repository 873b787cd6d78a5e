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
#include <sys/prctl.h>
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

/*
 * The creator unlinks its block (the tracker is not told) and another
 * program makes a *tracked* block of that name and closes it: marked, held
 * by nobody, but its creator still runs. When the first family exits, its
 * tracker's stale record must not remove it: only the identity check (the
 * name is another inode now) stands in the way. We are a subreaper, so the
 * child's tracker is our child and its exit says its work is done.
 */
Test(tracker, unlinked_name_made_again_by_another_program_survives)
{
    char name[64];
    make_block(name, sizeof name, "again");
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    int ready[2], go[2];
    cr_assert(pipe(ready) == 0 && pipe(go) == 0);
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        pshm_block *b;
        char c;
        if (pshm_block_create(&b, name, 64, 0) < 0 || pshm_block_unlink(b) < 0)
            _exit(1);
        pshm_block_free(b);
        _exit(write(ready[1], "r", 1) == 1 && read(go[0], &c, 1) == 1 ? 0 : 2);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the child failed");
    pid_t tracker = t_find_child("pshm-tracker"); /* the child's: we have none yet */
    cr_assert_gt(tracker, 0, "no tracker among our children");
    pshm_block *again;
    cr_assert_eq(pshm_block_create(&again, name, 64, 0), 0, "%s", pshm_last_error());
    pshm_block_free(again);
    cr_assert_eq(write(go[1], "g", 1), 1);
    int st = t_wait(child, 10);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed: %d", st);
    st = t_wait(tracker, GONE_WITHIN);
    cr_assert(WIFEXITED(st), "the child's tracker did not finish");
    cr_assert(t_shm_exists(name),
              "the first family's tracker removed another program's block");
    cr_assert_eq(pshm_unlink(name), 0, "%s", pshm_last_error());
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A field of /proc/PID/status in kB ("VmRSS", "VmHWM"), or -1. */
static long status_kb(pid_t pid, const char *field)
{
    char value[64];
    return t_proc_status(pid, field, value, sizeof value) ? atol(value) : -1;
}

/* The child of memory_stays_bounded_...: make LIVE tracked blocks and hold
 * all but _live1 (closed: only its name and its record keep it), say so on
 * `ready`, wait for `go`, create and unlink CHURN blocks, then make the last
 * name again, untracked, and exit. */
#define CHURN 100000
#define LIVE 4
static void churn_child(const char *prefix, int ready, int go)
{
    char name[128];
    for (int i = 0; i < LIVE; i++) {
        pshm_block *b;
        snprintf(name, sizeof name, "%s_live%d", prefix, i);
        if (pshm_block_create(&b, name, 64, 0) < 0)
            _exit(1);
        if (i == 1)
            pshm_block_free(b);
    }
    char c;
    if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
        _exit(2);
    pshm_block *b;
    for (int i = 0; i < CHURN; i++) {
        snprintf(name, sizeof name, "%s_%d", prefix, i);
        if (pshm_block_create(&b, name, 64, 0) < 0 || pshm_block_unlink(b) < 0)
            _exit(3);
        pshm_block_free(b);
    }
    if (pshm_block_create(&b, name, 64, PSHM_UNTRACKED) < 0)
        _exit(4);
    _exit(0);
}

/*
 * Nobody tells the tracker of an unlink: it drops the records of removed
 * blocks itself when its table needs room. A family that creates and
 * unlinks CHURN blocks (about 130 rebuilds) must leave its tracker's peak
 * memory well below what CHURN records take, and the tracker must still
 * remove the live blocks after the family exits (one of them closed all
 * along: no handle but the record speaks for it), and touch nothing else:
 * not an untracked block, not the last churned name made again untracked
 * (its stale record is likely still in the table at exit).
 */
Test(tracker, memory_stays_bounded_while_blocks_are_unlinked, .timeout = 240)
{
    char prefix[64], name[128], last[128], bystander[64];
    make_block(prefix, sizeof prefix, "churn");
    make_block(bystander, sizeof bystander, "bystander");
    pshm_block *by;
    cr_assert_eq(pshm_block_create(&by, bystander, 64, PSHM_UNTRACKED), 0, "%s",
                 pshm_last_error());
    pshm_block_free(by);
    /* As subreaper we adopt the family's tracker: it is findable as our child. */
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    int ready[2], go[2];
    cr_assert(pipe(ready) == 0 && pipe(go) == 0);
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0)
        churn_child(prefix, ready[1], go[0]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the child failed before the churn");
    pid_t tracker = t_find_child("pshm-tracker");
    cr_assert_gt(tracker, 0, "no tracker among our children");
    long base = status_kb(tracker, "VmRSS");
    /* Held by us, the first live block keeps the tracker waiting after EOF. */
    pshm_block *held;
    snprintf(name, sizeof name, "%s_live0", prefix);
    cr_assert_eq(pshm_block_attach(&held, name, PSHM_UNTRACKED), 0, "%s", pshm_last_error());
    double t0 = now();
    cr_assert_eq(write(go[1], "g", 1), 1);
    int st = t_wait(child, 200);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed: %d", st);
    printf("%d tracked create+unlink cycles: %.1f s\n", CHURN, now() - t0);
    for (int i = 1; i < LIVE; i++) {
        snprintf(name, sizeof name, "%s_live%d", prefix, i);
        cr_assert(t_wait_gone(name, GONE_WITHIN), "%s survived its family", name);
    }
    /* The tracker has read every record (they came before EOF). */
    long peak = status_kb(tracker, "VmHWM");
    long records_kb = (long)(CHURN * (PSHM_NAME_MAX + 32) / 1024);
    printf("tracker: %ld kB resident at the start, peak %ld kB (%d records: %ld kB)\n", base,
           peak, CHURN, records_kb);
    cr_assert(base > 0 && peak > 0);
    cr_assert_lt(peak - base, records_kb / 8,
                 "the tracker grew by %ld kB for %d unlinked blocks", peak - base, CHURN);
    snprintf(name, sizeof name, "%s_live0", prefix);
    cr_assert(t_shm_exists(name), "%s removed while we held it", name);
    pshm_block_free(held);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "%s survived its last holder", name);
    st = t_wait(tracker, GONE_WITHIN);
    cr_assert(WIFEXITED(st), "the tracker did not exit when its work was done");
    snprintf(last, sizeof last, "%s_%d", prefix, CHURN - 1);
    cr_assert(t_shm_exists(last),
              "the untracked block made under a churned name was removed");
    cr_assert(t_shm_exists(bystander), "an untracked bystander was removed");
    cr_assert_eq(pshm_unlink(last), 0, "%s", pshm_last_error());
    cr_assert_eq(pshm_unlink(bystander), 0, "%s", pshm_last_error());
}

/*
 * A create registers its block before it links it under its name, so the
 * tracker may make room while a record's name does not exist yet: the
 * probe's create waits between the two while a forked sibling creates and
 * unlinks 3000 blocks (room is made about every 770). The record must
 * survive, and the block be removed after the probe dies.
 */
Test(tracker, record_of_a_create_not_yet_linked_survives_making_room)
{
    char name[64], prefix[64];
    make_block(name, sizeof name, "stall");
    make_block(prefix, sizeof prefix, "stallchurn");
    struct probe p;
    probe_start(&p, "stall", name, prefix, "3000");
    cr_assert(t_shm_exists(name));
    probe_end(&p, SIGKILL);
    cr_assert(t_wait_gone(name, GONE_WITHIN), "%s leaked: its record was dropped", name);
    unlink(p.err);
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
