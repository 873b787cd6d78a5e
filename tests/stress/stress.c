/*
 * stress.c — proof under load: the configuration, the phases, the report.
 *
 *   pshm_stress [--small]      run everything, print the report
 *   pshm_stress victim ...     (internal) a kill-phase worker, see kill.c
 *   pshm_stress tracker-creator|tracker-holder ...  (internal) see tracker.c
 *
 * Sizes come from the environment (defaults in parentheses: normal/small):
 *   PSHM_STRESS_PROCS    load processes at once          (64/16)
 *   PSHM_STRESS_OPS      operations per load process     (20000/3000)
 *   PSHM_STRESS_KILLS    SIGKILLs in the kill phase      (500/100)
 *   PSHM_STRESS_LANES    kill lanes side by side         (4/2)
 *   PSHM_STRESS_DELAY_US longest delay before a SIGKILL  (20000/20000)
 *   PSHM_STRESS_TRACKER_ROUNDS  rounds of the tracker phase (200/50)
 *   PSHM_STRESS_SECONDS  global time limit               (240/45)
 *   PSHM_STRESS_SEED     random seed                     (time)
 *   PSHM_STRESS_PREFIX   name prefix of every block      (pshmstress_<pid>_)
 *
 * Exit status 0 only if no leak, no corruption, no orphan handle, no limit
 * check failed and nothing else went wrong.
 */
#include "stress.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* How long the trackers get to remove what killed processes left. */
#define TRACKER_GRACE_S 10.0

struct stats *S;
struct config C;
struct name_log *MGR_NAMES;

static int env_int(const char *var, int dflt)
{
    const char *v = getenv(var);
    return v != NULL && *v != '\0' ? atoi(v) : dflt;
}

static void configure(bool small)
{
    C.procs = env_int("PSHM_STRESS_PROCS", small ? 16 : 64);
    C.ops = env_int("PSHM_STRESS_OPS", small ? 3000 : 20000);
    C.kills = env_int("PSHM_STRESS_KILLS", small ? 100 : 500);
    C.lanes = env_int("PSHM_STRESS_LANES", small ? 2 : 4);
    C.max_delay_us = env_int("PSHM_STRESS_DELAY_US", 20000);
    C.tracker_rounds = env_int("PSHM_STRESS_TRACKER_ROUNDS", small ? 50 : 200);
    C.seconds = env_int("PSHM_STRESS_SECONDS", small ? 45 : 240);
    const char *seed = getenv("PSHM_STRESS_SEED");
    C.seed =
        seed != NULL ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
    const char *prefix = getenv("PSHM_STRESS_PREFIX");
    if (prefix != NULL && *prefix != '\0')
        snprintf(C.prefix, sizeof C.prefix, "%s", prefix);
    else
        snprintf(C.prefix, sizeof C.prefix, "pshmstress_%d_", (int)getpid());
    if (C.procs < 1)
        C.procs = 1;
    if (C.lanes < 1)
        C.lanes = 1;
    C.start = now_s();
}

static void *shared_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("stress: mmap");
        exit(2);
    }
    return p;
}

static void run_phase(const char *title, int (*phase)(void))
{
    double t0 = now_s();
    printf("== %s ...\n", title);
    fflush(stdout);
    phase();
    printf("   done in %.1f s\n", now_s() - t0);
    fflush(stdout);
}

static int remove_logged(void)
{
    uint32_t n = atomic_load(&MGR_NAMES->count);
    int removed = 0;
    for (uint32_t i = 0; i < n && i < NAME_LOG_CAP; i++)
        removed += pshm_unlink(MGR_NAMES->names[i]) == 0;
    return removed;
}

static int remove_prefixed(void)
{
    char name[PSHM_NAME_MAX + 1];
    int removed = 0;
    while (count_prefixed("", name, sizeof name) > 0 && pshm_unlink(name) == 0)
        removed++;
    return removed;
}

/*
 * Exact leak detection: every block of the run carries the prefix, every
 * manager block is in the name log. Give the trackers (and the managers)
 * time to finish, then count what is left, and remove it so a failed run
 * does not leave litter behind.
 */
static uint64_t final_leak_scan(double *waited)
{
    char first[PSHM_NAME_MAX + 1] = "";
    double t0 = now_s();
    int left;
    while ((left = count_prefixed("", first, sizeof first) + count_logged_alive(NULL, 0)) >
               0 &&
           now_s() - t0 < TRACKER_GRACE_S)
        usleep(20000);
    *waited = now_s() - t0;
    if (left > 0) {
        count_logged_alive(first[0] ? NULL : first, sizeof first);
        fprintf(stderr,
                "stress: LEAK: %d blocks of the run left after %.0f s, e.g. %s "
                "(removed now unless PSHM_STRESS_KEEP_LEAKS is set)\n",
                left, TRACKER_GRACE_S, first);
        if (getenv("PSHM_STRESS_KEEP_LEAKS") == NULL) {
            remove_prefixed();
            remove_logged();
        }
    }
    return (uint64_t)(left > 0 ? left : 0);
}

static uint64_t get(_Atomic uint64_t *v) { return atomic_load(v); }

static void report(uint64_t leaks, double waited, double elapsed)
{
    uint64_t ops = get(&S->creates) + get(&S->attaches) + get(&S->writes) +
                   get(&S->verifies) + get(&S->closes) + get(&S->unlinks) +
                   get(&S->list_ops) + get(&S->manager_ops);
    printf("\n==== pshm stress report (seed %llu; %.1f s)\n", (unsigned long long)C.seed,
           elapsed);
    printf("  %-44s %12llu\n", "operations done", (unsigned long long)ops);
    printf("  %-44s %12llu\n", "  creates", (unsigned long long)get(&S->creates));
    printf("  %-44s %12llu\n", "  attaches", (unsigned long long)get(&S->attaches));
    printf("  %-44s %12llu\n", "  writes", (unsigned long long)get(&S->writes));
    printf("  %-44s %12llu\n", "  verifications", (unsigned long long)get(&S->verifies));
    printf("  %-44s %12llu\n", "  closes", (unsigned long long)get(&S->closes));
    printf("  %-44s %12llu\n", "  unlinks", (unsigned long long)get(&S->unlinks));
    printf("  %-44s %12llu\n", "  list operations", (unsigned long long)get(&S->list_ops));
    printf("  %-44s %12llu\n", "  manager requests",
           (unsigned long long)get(&S->manager_ops));
    printf("  %-44s %12llu\n", "attaches of removed names refused",
           (unsigned long long)get(&S->dead_probes));
    printf("  %-44s %12llu\n", "processes killed (SIGKILL)",
           (unsigned long long)get(&S->killed));
    printf("  %-44s %12llu\n", "  victims that finished before their kill",
           (unsigned long long)get(&S->finished_early));
    printf("  %-44s %12llu\n", "  blocks made by victims (trackers' work)",
           (unsigned long long)get(&S->victim_blocks));
    printf("  %-44s %12llu\n", "  locks recovered from a killed holder",
           (unsigned long long)get(&S->lock_recoveries));
    printf("  %-44s %12llu\n", "  deadlocks (goal: 0)",
           (unsigned long long)get(&S->deadlocks));
    printf("  %-44s %12llu\n", "blocks checked (checksum ok)",
           (unsigned long long)get(&S->blocks_checked));
    printf("  %-44s %12llu\n", "tracker rounds (all checks passed or FAILed)",
           (unsigned long long)get(&S->tracker_rounds));
    printf("  %-44s %8llu/%llu\n", "limit checks passed",
           (unsigned long long)(get(&S->limit_checks) - get(&S->limit_failures)),
           (unsigned long long)get(&S->limit_checks));
    printf("  %-44s %12llu   (after %.1f s wait)\n", "leaks found", (unsigned long long)leaks,
           waited);
    printf("  %-44s %12llu\n", "corruptions found", (unsigned long long)get(&S->corruptions));
    printf("  %-44s %12llu\n", "handles outliving their block",
           (unsigned long long)(get(&S->orphan_attaches) + get(&S->handle_leaks)));
    printf("  %-44s %12llu\n", "other failures", (unsigned long long)get(&S->errors));
}

static bool passed(uint64_t leaks)
{
    return leaks == 0 && get(&S->corruptions) == 0 && get(&S->deadlocks) == 0 &&
           get(&S->orphan_attaches) == 0 && get(&S->handle_leaks) == 0 &&
           get(&S->limit_failures) == 0 && get(&S->errors) == 0;
}

static void make_logdir(void)
{
    snprintf(C.logdir, sizeof C.logdir, "/tmp/pshm_stress_XXXXXX");
    if (mkdtemp(C.logdir) == NULL) {
        perror("stress: mkdtemp");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    S = shared_zeroed(sizeof *S);
    MGR_NAMES = shared_zeroed(sizeof *MGR_NAMES);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "victim") == 0)
        return victim_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "tracker-creator") == 0)
        return tracker_creator_main(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "tracker-holder") == 0)
        return tracker_holder_main(argc - 2, argv + 2);
    bool small = argc > 1 && strcmp(argv[1], "--small") == 0;
    configure(small);
    make_logdir();
    printf(
        "pshm stress (%s): %d processes x %d ops, %d kills in %d lanes, limit %.0f s, "
        "prefix %s\n",
        small ? "small" : "default", C.procs, C.ops, C.kills, C.lanes, C.seconds, C.prefix);
    run_phase("load: processes creating, attaching, verifying at once", run_load);
    run_phase("kills: SIGKILL at random moments", run_kills);
    run_phase("limits: descriptors, /dev/shm space, address space", run_limits);
    run_phase("tracker: SIGTERM, captured stderr, holders leaving one by one", run_tracker);
    double waited;
    uint64_t leaks = final_leak_scan(&waited);
    report(leaks, waited, now_s() - C.start);
    bool ok = passed(leaks);
    printf("\nRESULT: %s\n", ok ? "PASS" : "FAIL");
    if (ok) {
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", C.logdir);
        if (system(cmd) != 0) { /* a leftover log directory harms nothing */
        }
    } else {
        printf("victims' stderr (their trackers' messages): %s/victims.log\n", C.logdir);
    }
    return ok ? 0 : 1;
}
