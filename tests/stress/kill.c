/*
 * kill.c — phase 2: workers SIGKILLed at random moments.
 *
 * Lanes run side by side. A lane owns a shared block (double-buffered: a
 * writer fills the inactive half, then flips one word, so a kill can never
 * leave it torn), a shared list with an atomic counter, and a manager. Again
 * and again it fork+execs a victim (its own program, so its own tracker),
 * waits for the victim's "ready" byte, sleeps a random number of
 * microseconds and SIGKILLs it. The victim meanwhile creates and forgets
 * blocks and lists, writes the shared block, adds to the shared list and
 * asks the manager for blocks and lists, and writes the shared block while
 * holding the lane's robust mutex (in the same block).
 *
 * After each kill the lane checks: the shared block verifies; the list is
 * well formed and its counter equals the adds the victim completed (or one
 * more: the add in flight when it died); every block the manager owns is a
 * complete list, a sealed block that verifies, or one the victim never got
 * to seal; every block the victim made that is still there verifies; the
 * mutex is free within 10 s (a victim killed holding it: a recovery, the
 * lane is told PSHM_OWNERDEAD; not free: a deadlock). Then
 * it releases the manager's blocks. What the victims made and forgot is
 * their trackers' work: the final scan (stress.c) proves it all went.
 */
#include "stress.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DBUF_SLOT 4096
/* The lane's mutex, after the two halves; victims hold it while they write. */
#define LOCK_AT (64 + 2 * DBUF_SLOT)
#define DBUF_SIZE (LOCK_AT + PSHM_MUTEX_SIZE)
/* A lock not free this long after its holder was killed is a deadlock. */
#define LOCK_WAIT_MS 10000
#define VICTIM_OPS 3000
#define VICTIM_SECONDS 3.0
#define KEEP 4

struct dbuf_hdr {
    _Atomic uint64_t magic;
    uint64_t size;
    _Atomic uint64_t current;   /* which half is valid */
    _Atomic uint64_t adds_done; /* list adds that returned, counted by victims */
    uint64_t pad[4];
};

/* ---- the double-buffered shared block ---------------------------------- */

static unsigned char *dbuf_half(void *buf, uint64_t i)
{
    return (unsigned char *)buf + 64 + i * DBUF_SLOT;
}

static void dbuf_write(void *buf, uint64_t seed)
{
    struct dbuf_hdr *h = buf;
    uint64_t next = 1 - atomic_load(&h->current);
    unsigned char *half = dbuf_half(buf, next);
    memcpy(half + 8, &seed, 8);
    fill_bytes(half + 16, DBUF_SLOT - 16, seed);
    uint64_t hash = hash_bytes(half + 8, DBUF_SLOT - 8);
    memcpy(half, &hash, 8);
    atomic_store_explicit(&h->current, next, memory_order_release);
}

static bool dbuf_verify(void *buf)
{
    struct dbuf_hdr *h = buf;
    uint64_t cur = atomic_load_explicit(&h->current, memory_order_acquire);
    if (atomic_load(&h->magic) != STRESS_MAGIC || cur > 1)
        return false;
    unsigned char *half = dbuf_half(buf, cur);
    uint64_t want;
    memcpy(&want, half, 8);
    return hash_bytes(half + 8, DBUF_SLOT - 8) == want;
}

/* ---- the victim (an exec'd process) ------------------------------------ */

struct victim {
    int lane, idx, made;
    uint64_t rng;
    double deadline;
    pshm_block *shared;
    pshm_list *list;
    pshm_manager *mgr;
    pshm_block *kept[KEEP];
    pshm_list *kept_lists[KEEP];
};

/* One byte to the lane: 'R' ready, 'c' made a block, 'F' a failure. */
static void tell(char c)
{
    if (write(STDOUT_FILENO, &c, 1) < 0) { /* the lane is gone: nothing to tell */
    }
}

static void victim_fail(const char *what)
{
    fprintf(stderr, "victim %d: %s: %s\n", (int)getpid(), what, pshm_last_error());
    tell('F');
}

/* Keep a new handle; the one it displaces is unlinked or just forgotten. */
static void keep_block(struct victim *v, pshm_block *b)
{
    int i = (int)rng_range(&v->rng, 0, KEEP - 1);
    if (v->kept[i] != NULL && rng_next(&v->rng) % 2 == 0)
        pshm_block_unlink(v->kept[i]);
    pshm_block_free(v->kept[i]); /* without an unlink: the tracker's job */
    v->kept[i] = b;
}

static void victim_create(struct victim *v)
{
    char name[96];
    block_name(name, sizeof name, "k%d_%d_%d", v->lane, v->idx, v->made++);
    size_t size = SEALED_HDR + 8 * (size_t)rng_range(&v->rng, 1, 2048);
    unsigned flags = rng_next(&v->rng) % 8 == 0 ? PSHM_POPULATE : 0;
    pshm_block *b;
    tell('c'); /* before: a kill inside create may still leave the block */
    if (pshm_block_create(&b, name, size, flags) < 0) {
        victim_fail("create");
        return;
    }
    sealed_fill(pshm_block_buf(b), size, rng_next(&v->rng));
    keep_block(v, b);
}

static void victim_list(struct victim *v)
{
    char name[96];
    block_name(name, sizeof name, "k%d_%d_L%d", v->lane, v->idx, v->made++);
    struct checked_values cv;
    uint64_t seed = rng_next(&v->rng);
    checked_values_make(&cv, seed, 0);
    pshm_list *l;
    tell('c');
    if (pshm_list_create(&l, name, cv.v, CHECKED_LIST_LEN, 0) < 0) {
        victim_fail("list create");
        return;
    }
    checked_list_rewrite(l, seed, 1);
    int i = (int)rng_range(&v->rng, 0, KEEP - 1);
    pshm_list_free(v->kept_lists[i]); /* forgotten, not unlinked */
    v->kept_lists[i] = l;
}

static void victim_shared_list(struct victim *v)
{
    if (v->list == NULL)
        return;
    if (pshm_list_add(v->list, 0, 1, NULL) < 0) {
        victim_fail("list add");
        return;
    }
    atomic_fetch_add(&((struct dbuf_hdr *)pshm_block_buf(v->shared))->adds_done, 1);
    if (pshm_list_set(v->list, 1, pshm_int((int64_t)(rng_next(&v->rng) >> 1))) < 0)
        victim_fail("list set");
}

static void victim_manager(struct victim *v)
{
    if (v->mgr == NULL)
        return;
    if (rng_next(&v->rng) % 3 == 0) {
        struct checked_values cv;
        checked_values_make(&cv, rng_next(&v->rng), 0);
        pshm_list *l;
        if (pshm_manager_list(v->mgr, cv.v, CHECKED_LIST_LEN, &l) < 0)
            victim_fail("manager list");
        else
            pshm_list_free(l);
        return;
    }
    pshm_block *b;
    size_t size = SEALED_HDR + 8 * (size_t)rng_range(&v->rng, 1, 1024);
    if (pshm_manager_block(v->mgr, size, &b) < 0) {
        victim_fail("manager block");
        return;
    }
    sealed_fill(pshm_block_buf(b), pshm_block_size(b), rng_next(&v->rng));
    if (rng_next(&v->rng) % 2 == 0 && pshm_manager_release(v->mgr, pshm_block_name(b)) < 0)
        victim_fail("manager release");
    pshm_block_free(b);
}

/* Write the shared block under the lane's mutex; a dead holder before us
 * changed nothing the halves' flip does not already protect. */
static void victim_locked_write(struct victim *v)
{
    int rc = pshm_mutex_lock(v->shared, LOCK_AT, LOCK_WAIT_MS);
    if (rc == PSHM_OWNERDEAD)
        rc = pshm_mutex_consistent(v->shared, LOCK_AT);
    if (rc < 0) {
        victim_fail("mutex lock");
        return;
    }
    dbuf_write(pshm_block_buf(v->shared), rng_next(&v->rng));
    usleep((useconds_t)(rng_next(&v->rng) % 2000)); /* held a while: kills land here */
    if (pshm_mutex_unlock(v->shared, LOCK_AT) < 0)
        victim_fail("mutex unlock");
}

static void victim_step(struct victim *v)
{
    switch (rng_next(&v->rng) % 6) {
    case 0: victim_create(v); break;
    case 1: dbuf_write(pshm_block_buf(v->shared), rng_next(&v->rng)); break;
    case 2: victim_shared_list(v); break;
    case 3: victim_list(v); break;
    case 4: victim_manager(v); break;
    case 5: victim_locked_write(v); break;
    default: victim_create(v); break;
    }
}

static void victim_attach(struct victim *v, const char *shared, const char *list,
                          const char *address, const char *keyhex)
{
    /* Sometimes tracked: its tracker must then wait for the lane, not remove. */
    unsigned flags = rng_next(&v->rng) % 4 == 0 ? 0 : PSHM_UNTRACKED;
    if (pshm_block_attach(&v->shared, shared, flags) < 0) {
        victim_fail("attach shared");
        exit(3);
    }
    if (strcmp(list, "-") != 0 && pshm_list_attach(&v->list, list, PSHM_UNTRACKED) < 0)
        victim_fail("attach list");
    unsigned char key[PSHM_AUTHKEY_MAX];
    size_t keylen = hex_decode(keyhex, key, sizeof key);
    if (strcmp(address, "-") != 0 && pshm_manager_connect(&v->mgr, address, key, keylen) < 0)
        victim_fail("manager connect");
}

/* argv: prefix lane idx seed shared-name list-name manager-address key-hex */
int victim_main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "victim: expected 8 arguments\n");
        return 2;
    }
    snprintf(C.prefix, sizeof C.prefix, "%s", argv[0]);
    struct victim v = {.lane = atoi(argv[1]),
                       .idx = atoi(argv[2]),
                       .rng = strtoull(argv[3], NULL, 0),
                       .deadline = now_s() + VICTIM_SECONDS};
    tell('R');
    victim_attach(&v, argv[4], argv[5], argv[6], argv[7]);
    for (int op = 0; op < VICTIM_OPS && !past_deadline(v.deadline); op++)
        victim_step(&v);
    return 0; /* everything still open is left to the tracker */
}

/* ---- the lane ---------------------------------------------------------- */

struct lane {
    int id;
    uint64_t rng;
    int logfd;
    pshm_block *shared;
    pshm_list *list;
    pshm_manager *mgr;
    char shared_name[96], list_name[96], address[256];
    char keyhex[2 * PSHM_AUTHKEY_MAX + 1];
};

static int lane_setup(struct lane *L)
{
    block_name(L->shared_name, sizeof L->shared_name, "L%d_shared", L->id);
    if (pshm_block_create(&L->shared, L->shared_name, DBUF_SIZE, 0) < 0) {
        fail("lane %d: create shared: %s", L->id, pshm_last_error());
        return -1;
    }
    struct dbuf_hdr *h = pshm_block_buf(L->shared);
    h->size = DBUF_SIZE;
    dbuf_write(h, 1);
    if (pshm_mutex_init(L->shared, LOCK_AT) < 0) {
        fail("lane %d: mutex init: %s", L->id, pshm_last_error());
        return -1;
    }
    atomic_store(&h->magic, STRESS_MAGIC);
    snprintf(L->list_name, sizeof L->list_name, "-");
    snprintf(L->address, sizeof L->address, "-");
    snprintf(L->keyhex, sizeof L->keyhex, "-");
    block_name(L->list_name, sizeof L->list_name, "L%d_list", L->id);
    pshm_value init[2] = {pshm_int(0), pshm_int(0)};
    if (pshm_list_create(&L->list, L->list_name, init, 2, 0) < 0)
        fail("lane %d: create list: %s", L->id, pshm_last_error());
    if (pshm_manager_start(&L->mgr, NULL, NULL, 0) < 0) {
        fail("lane %d: start manager: %s", L->id, pshm_last_error());
        return 0;
    }
    size_t keylen;
    const void *key = pshm_manager_authkey(L->mgr, &keylen);
    snprintf(L->address, sizeof L->address, "%s", pshm_manager_address(L->mgr));
    hex_encode(key, keylen, L->keyhex);
    return 0;
}

static pid_t spawn_victim(struct lane *L, int idx, int *out)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    char lane[16], index[16], seed[32];
    snprintf(lane, sizeof lane, "%d", L->id);
    snprintf(index, sizeof index, "%d", idx);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)rng_next(&L->rng));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(L->logfd, STDERR_FILENO);
        execl("/proc/self/exe", "pshm_stress", "victim", C.prefix, lane, index, seed,
              L->shared_name, L->list_name, L->address, L->keyhex, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *out = fds[0];
    if (pid < 0)
        close(fds[0]);
    return pid;
}

static bool wait_ready(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c = 0;
    return poll(&p, 1, 10000) == 1 && read(fd, &c, 1) == 1 && c == 'R';
}

/* Everything the victim told us before it died. */
static void drain_tells(int fd, int *made, int *failures)
{
    char buf[512];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            *made += buf[i] == 'c';
            *failures += buf[i] == 'F';
        }
}

static void kill_one(struct lane *L, int idx)
{
    int fd;
    pid_t pid = spawn_victim(L, idx, &fd);
    if (pid < 0) {
        fail("lane %d: could not start a victim", L->id);
        return;
    }
    if (!wait_ready(fd))
        fail("lane %d: victim %d never said ready", L->id, idx);
    uint64_t delay = rng_range(&L->rng, 0, (uint64_t)C.max_delay_us);
    usleep((useconds_t)delay);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
        COUNT(killed);
        atomic_fetch_add(&S->kill_delay_total_us, delay);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        COUNT(finished_early);
    } else {
        fail("lane %d: victim %d ended with status 0x%x", L->id, idx, st);
    }
    int made = 0, failures = 0;
    drain_tells(fd, &made, &failures);
    close(fd);
    atomic_fetch_add(&S->victim_blocks, (uint64_t)made);
    if (failures > 0)
        fail("lane %d: victim %d reported %d failures (see victims.log)", L->id, idx,
             failures);
}

/* ---- the lane's checks after a kill ------------------------------------ */

static void check_shared(struct lane *L)
{
    COUNT(verifies);
    if (dbuf_verify(pshm_block_buf(L->shared)))
        COUNT(blocks_checked);
    else
        corrupt("lane %d: shared block %s torn by a kill", L->id, L->shared_name);
}

static void check_list(struct lane *L)
{
    if (L->list == NULL)
        return;
    struct dbuf_hdr *h = pshm_block_buf(L->shared);
    uint64_t done = atomic_load(&h->adds_done);
    pshm_value counter, last;
    pshm_list *fresh;
    COUNT(verifies);
    if (pshm_list_attach(&fresh, L->list_name, PSHM_UNTRACKED) < 0) {
        corrupt("lane %d: list %s no longer attaches: %s", L->id, L->list_name,
                pshm_last_error());
        return;
    }
    COUNT(attaches);
    if (pshm_list_get(fresh, 0, &counter) < 0 || counter.type != PSHM_INT ||
        pshm_list_get(fresh, 1, &last) < 0 || last.type != PSHM_INT ||
        pshm_list_len(fresh) != 2) {
        corrupt("lane %d: list %s items have the wrong type", L->id, L->list_name);
    } else if ((uint64_t)counter.u.i == done + 1) {
        atomic_store(&h->adds_done, done + 1); /* the add in flight had landed */
        COUNT(blocks_checked);
    } else if ((uint64_t)counter.u.i != done) {
        corrupt("lane %d: list counter %lld, but %llu adds completed", L->id,
                (long long)counter.u.i, (unsigned long long)done);
    } else {
        COUNT(blocks_checked);
    }
    pshm_list_free(fresh);
    COUNT(closes);
}

/*
 * A block still there: verify what can be verified. A complete list must
 * verify; a sealed block must verify; a block its writer never sealed (magic
 * still 0) is allowed. An empty block also attaches as an empty list, hence
 * the length test before taking it for one.
 */
static void check_named(const char *name)
{
    pshm_list *l;
    if (pshm_list_attach(&l, name, PSHM_UNTRACKED) == 0) {
        COUNT(attaches);
        bool is_checked_list = pshm_list_len(l) == CHECKED_LIST_LEN;
        int64_t counter;
        if (is_checked_list) {
            COUNT(verifies);
            if (checked_list_verify(l, &counter) == V_OK)
                COUNT(blocks_checked);
            else
                corrupt("list %s does not verify after a kill", name);
        }
        pshm_list_free(l);
        if (is_checked_list)
            return;
    }
    pshm_block *b;
    if (pshm_block_attach(&b, name, PSHM_UNTRACKED | PSHM_READONLY) < 0)
        return; /* a tracker removed it meanwhile */
    COUNT(attaches);
    COUNT(verifies);
    enum verdict v = sealed_verify(pshm_block_buf(b), pshm_block_size(b));
    if (v == V_OK)
        COUNT(blocks_checked);
    else if (v != V_BLANK)
        corrupt("block %s does not verify after a kill", name);
    pshm_block_free(b);
}

/*
 * Check and release every block the manager owns. A killed victim's last
 * request may still sit in the server's socket and be served after the
 * victim died (a create adds a block, a release removes one we listed), so
 * repeat until the server reports none left.
 */
static bool release_round(struct lane *L)
{
    char **names;
    size_t n;
    COUNT(manager_ops);
    if (pshm_manager_names(L->mgr, &names, &n) < 0) {
        fail("lane %d: manager names after a kill: %s", L->id, pshm_last_error());
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        log_manager_name(names[i]);
        check_named(names[i]);
        COUNT(manager_ops);
        int rc = pshm_manager_release(L->mgr, names[i]);
        if (rc < 0 && rc != PSHM_ENOENT)
            fail("lane %d: release %s: %s", L->id, names[i], pshm_last_error());
    }
    pshm_names_free(names, n);
    return n == 0;
}

static void check_manager(struct lane *L)
{
    if (L->mgr == NULL)
        return;
    for (int round = 0; round < 50; round++) {
        if (release_round(L))
            return;
        usleep(1000);
    }
    fail("lane %d: the manager still owns blocks after 50 rounds of releases", L->id);
}

/*
 * Blocks the victim made that are still there (their tracker is not done
 * yet). Its lists ("_L") are skipped: a kill inside a list write may leave
 * one half-made, which is fine for a block nobody owns any more; the final
 * scan proves it went.
 */
static void check_victim_leftovers(struct lane *L, int idx)
{
    char sub[64];
    snprintf(sub, sizeof sub, "k%d_%d_", L->id, idx);
    char(*names)[PSHM_NAME_MAX + 1] = malloc(KEEP * 4 * sizeof *names);
    int n = names != NULL ? list_prefixed(sub, names, KEEP * 4) : 0;
    for (int i = 0; i < n; i++)
        check_named(names[i]);
    free(names);
}

/* The mutex must be free within LOCK_WAIT_MS, whoever died holding it. */
static void check_lock(struct lane *L)
{
    int rc = pshm_mutex_lock(L->shared, LOCK_AT, LOCK_WAIT_MS);
    if (rc == PSHM_OWNERDEAD) {
        COUNT(lock_recoveries);
        rc = pshm_mutex_consistent(L->shared, LOCK_AT);
    }
    if (rc == PSHM_ETIMEDOUT) {
        COUNT(deadlocks);
        fail("lane %d: the mutex is still held %d ms after its holder died", L->id,
             LOCK_WAIT_MS);
        return;
    }
    if (rc < 0 || pshm_mutex_unlock(L->shared, LOCK_AT) < 0)
        fail("lane %d: mutex: %s", L->id, pshm_last_error());
}

static void check_after_kill(struct lane *L, int idx)
{
    check_lock(L);
    check_shared(L);
    check_list(L);
    check_manager(L);
    check_victim_leftovers(L, idx);
}

static void lane_teardown(struct lane *L)
{
    if (L->mgr != NULL && pshm_manager_shutdown(L->mgr) < 0)
        fail("lane %d: manager shutdown: %s", L->id, pshm_last_error());
    if (L->list != NULL) {
        pshm_block_unlink(pshm_list_block(L->list));
        pshm_list_free(L->list);
    }
    check_shared(L);
    if (pshm_block_unlink(L->shared) < 0)
        fail("lane %d: unlink shared: %s", L->id, pshm_last_error());
    pshm_block_free(L->shared);
}

static int lane_main(int id, int kills, double deadline)
{
    char log[160];
    snprintf(log, sizeof log, "%s/victims.log", C.logdir);
    struct lane L = {.id = id,
                     .rng = C.seed ^ ((uint64_t)id << 40) ^ 0x4b111,
                     .logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)};
    if (lane_setup(&L) < 0)
        return 1;
    int done = 0;
    for (; done < kills && !past_deadline(deadline); done++) {
        kill_one(&L, done);
        check_after_kill(&L, done);
    }
    if (done < kills)
        printf("   lane %d: time limit reached after %d of %d kills\n", id, done, kills);
    lane_teardown(&L);
    close(L.logfd);
    return 0;
}

int run_kills(void)
{
    double deadline = C.start + C.seconds * 0.85;
    pid_t pids[64];
    int lanes = C.lanes > 64 ? 64 : C.lanes;
    for (int i = 0; i < lanes; i++) {
        int kills = C.kills / lanes + (i < C.kills % lanes);
        fflush(stdout);
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(lane_main(i, kills, deadline));
    }
    for (int i = 0; i < lanes; i++) {
        int st;
        if (pids[i] > 0 &&
            (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0))
            fail("kill lane %d failed (status 0x%x)", i, st);
    }
    return 0;
}
