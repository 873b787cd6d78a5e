/*
 * tracker.c — phase 4: the tracker under hostile conditions.
 *
 * Round after round, an exec'd creator (its own program, so its own
 * tracker) makes a few tracked blocks and attaches, tracked, one block the
 * run made untracked. Holders (exec'd too) attach a random subset of the
 * tracked blocks. Then the creator ends one of three ways:
 * SIGTERM to it and its tracker at once (what `systemctl stop` does), a
 * SIGKILL, or a clean exit. Each round checks:
 *   - the creator's stderr, a pipe, reaches end-of-file although its tracker
 *     still waits for the holders (the tracker let go of it);
 *   - every unheld block goes; every held block stays while held;
 *   - as holders leave one by one, each one's block goes while the others
 *     are still held (none waits behind another);
 *   - when the tracker has exited, the untracked block is still there
 *     (attaching never makes a block removable).
 */
#include "stress.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_BLOCKS 5
/* Generous bounds for a loaded 2-core machine; the tracker acts in ms. */
#define GONE_WITHIN_S 10.0
#define EOF_WITHIN_S 10.0

enum ending { END_SIGTERM_BOTH, END_SIGKILL, END_EXIT, END_COUNT };

/* ---- the creator (an exec'd process) ----------------------------------- */

/* Our tracker: the one child a subreaper gets when the tracker's short-lived
 * parent exits. */
static pid_t find_tracker(void)
{
    char path[64], buf[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    for (int tries = 0; tries < 1000; tries++) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            bool got = fgets(buf, sizeof buf, f) != NULL;
            fclose(f);
            if (got && atoi(buf) > 0)
                return atoi(buf);
        }
        usleep(1000);
    }
    return -1;
}

/* argv: prefix round count untracked-name. Prints the tracker's pid, then
 * waits for stdin's end. */
int tracker_creator_main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    snprintf(C.prefix, sizeof C.prefix, "%s", argv[0]);
    int round = atoi(argv[1]), count = atoi(argv[2]);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (int i = 0; i < count; i++) {
        char name[PSHM_NAME_MAX + 1];
        block_name(name, sizeof name, "tr%d_%d", round, i);
        pshm_block *b;
        if (pshm_block_create(&b, name, 4096, 0) < 0) {
            fprintf(stderr, "creator: %s\n", pshm_last_error());
            return 1;
        }
    }
    pshm_block *u;
    if (pshm_block_attach(&u, argv[3], 0) < 0) {
        fprintf(stderr, "creator: %s\n", pshm_last_error());
        return 1;
    }
    printf("%d\n", (int)find_tracker());
    fflush(stdout);
    char c;
    while (read(STDIN_FILENO, &c, 1) > 0)
        ;
    return 0; /* exits without unlinking: the tracker's work */
}

/* argv: name. Holds the block (untracked) until stdin's end. */
int tracker_holder_main(int argc, char **argv)
{
    pshm_block *b;
    if (argc != 1 || pshm_block_attach(&b, argv[0], PSHM_UNTRACKED) < 0)
        return 1;
    printf("R\n");
    fflush(stdout);
    char c;
    while (read(STDIN_FILENO, &c, 1) > 0)
        ;
    return 0;
}

/* ---- the run's side ---------------------------------------------------- */

/* A process of ours, exec'd (so it inherits none of our close-on-exec
 * descriptors, above all no other child's pipes): its stdin is ours to
 * close, its first line of stdout is read here, its stderr may be a pipe. */
struct child {
    pid_t pid;
    int in, err;
    char first_line[32];
};

static bool spawn(struct child *ch, bool capture_err, const char *role, const char *a1,
                  const char *a2, const char *a3, const char *a4)
{
    int in[2], out[2], err[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
        (capture_err && pipe2(err, O_CLOEXEC) < 0))
        return false;
    ch->pid = fork();
    if (ch->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        if (capture_err)
            dup2(err[1], STDERR_FILENO);
        execl("/proc/self/exe", "pshm_stress", role, a1, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (capture_err)
        close(err[1]);
    ch->in = in[1];
    ch->err = err[0];
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    ssize_t got = poll(&p, 1, 10000) == 1
                      ? read(out[0], ch->first_line, sizeof ch->first_line - 1)
                      : -1;
    ch->first_line[got > 0 ? got : 0] = '\0';
    close(out[0]);
    return ch->pid > 0 && got > 0;
}

/* Close its stdin (it then exits, unless killed before) and reap it. */
static void finish(struct child *ch)
{
    close(ch->in);
    waitpid(ch->pid, NULL, 0);
    ch->pid = -1;
}

/* Read the pipe until end-of-file; false if it stays open past the bound. */
static bool pipe_closes(int fd, double seconds)
{
    double deadline = now_s() + seconds;
    char buf[512];
    for (;;) {
        double left = deadline - now_s();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) != 1)
            return false;
        if (read(fd, buf, sizeof buf) <= 0)
            return true;
    }
}

/* Gone from the process table, or a zombie (init may be slow to reap). */
static bool process_ended(pid_t pid)
{
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    bool read_ok = fgets(stat, sizeof stat, f) != NULL;
    fclose(f);
    const char *state = strrchr(stat, ')');
    return !read_ok ||
           (state != NULL && state[1] == ' ' && (state[2] == 'Z' || state[2] == 'X'));
}

static void end_creator(struct child *cr, pid_t tracker, enum ending how)
{
    if (how == END_SIGTERM_BOTH) {
        kill(cr->pid, SIGTERM);
        kill(tracker, SIGTERM);
    } else if (how == END_SIGKILL) {
        kill(cr->pid, SIGKILL);
    }
    finish(cr); /* END_EXIT: stdin's end makes it exit */
}

static const char *const ending_name[END_COUNT] = {"SIGTERM to creator and tracker",
                                                   "SIGKILL", "clean exit"};

static void one_round(uint64_t *rng, int round, const char *untracked)
{
    int count = (int)rng_range(rng, 2, MAX_BLOCKS);
    enum ending how = (enum ending)rng_range(rng, 0, END_COUNT - 1);
    char names[MAX_BLOCKS][PSHM_NAME_MAX + 1], r[16], n[16];
    struct child holders[MAX_BLOCKS], cr;
    snprintf(r, sizeof r, "%d", round);
    snprintf(n, sizeof n, "%d", count);
    pid_t tracker;
    if (!spawn(&cr, true, "tracker-creator", C.prefix, r, n, untracked) ||
        (tracker = atoi(cr.first_line)) <= 0) {
        fail("tracker round %d: the creator did not start", round);
        return;
    }
    for (int i = 0; i < count; i++) {
        block_name(names[i], sizeof names[i], "tr%d_%d", round, i);
        holders[i].pid = -1;
        /* At least two held, so one can be released while another waits. */
        if ((i < 2 || rng_range(rng, 0, 1)) &&
            !spawn(&holders[i], false, "tracker-holder", names[i], NULL, NULL, NULL))
            fail("tracker round %d: could not hold %s", round, names[i]);
    }
    end_creator(&cr, tracker, how);
    if (!pipe_closes(cr.err, EOF_WITHIN_S))
        fail("tracker round %d (%s): the creator's stderr pipe stayed open", round,
             ending_name[how]);
    close(cr.err);
    for (int i = 0; i < count; i++)
        if (holders[i].pid < 0 && !gone_within(names[i], GONE_WITHIN_S))
            fail("tracker round %d (%s): unheld %s was not removed", round, ending_name[how],
                 names[i]);
    for (int i = 0; i < count; i++) {
        if (holders[i].pid < 0)
            continue;
        finish(&holders[i]);
        if (!gone_within(names[i], GONE_WITHIN_S))
            fail("tracker round %d: %s not removed after its holder left", round, names[i]);
        for (int j = i + 1; j < count; j++)
            if (holders[j].pid > 0 && !block_exists(names[j]))
                fail("tracker round %d: %s removed while still held", round, names[j]);
    }
    double deadline = now_s() + GONE_WITHIN_S;
    while (!process_ended(tracker) && now_s() < deadline)
        usleep(1000);
    if (!process_ended(tracker))
        fail("tracker round %d: the tracker did not exit once its blocks were gone", round);
    if (!block_exists(untracked))
        fail("tracker round %d: the untracked block %s was removed", round, untracked);
    COUNT(tracker_rounds);
}

int run_tracker(void)
{
    uint64_t rng = C.seed ^ 0x7472616b;
    char untracked[PSHM_NAME_MAX + 1];
    block_name(untracked, sizeof untracked, "tr_untracked");
    pshm_block *u;
    if (pshm_block_create(&u, untracked, 4096, PSHM_UNTRACKED) < 0) {
        fail("tracker phase: %s", pshm_last_error());
        return -1;
    }
    pshm_block_close(u); /* only the creators hold it from now on */
    for (int round = 0; round < C.tracker_rounds && !past_deadline(C.start + C.seconds);
         round++)
        one_round(&rng, round, untracked);
    pshm_block_unlink(u);
    pshm_block_free(u);
    return 0;
}
