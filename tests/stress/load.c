/*
 * load.c — phase 1: many processes at once create, attach, write, verify,
 * close and unlink blocks, lists and manager blocks.
 *
 * Each process owns a ring of slots in a shared directory (an anonymous
 * MAP_SHARED mapping made before the fork) where it publishes what it made.
 * Other processes pick slots at random and:
 *   LIVE  attach, verify the checksum, add 1 to the item's touch counter
 *         (header word or list item, atomically), count the add in the slot;
 *   DEAD  attach must fail with "no such block": the owner published DEAD
 *         only after its unlink returned, so a success is a handle that
 *         outlives its block.
 * Retiring, the owner sets RETIRING, waits until no reader is pinned, checks
 * that the touch counter equals the adds counted (no lost or phantom write),
 * verifies, unlinks (or releases), publishes DEAD, then closes.
 */
#include "stress.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define RING 8
#define PIN_WAIT_S 10.0
#define MANAGER_CLIENTS 48

enum kind { K_BLOCK, K_LIST, K_MBLOCK, K_MLIST };
enum state { ST_EMPTY, ST_LIVE, ST_RETIRING, ST_DEAD };

struct slot {
    _Atomic uint32_t gen; /* odd while the owner rewrites name/kind */
    _Atomic uint32_t state;
    _Atomic uint32_t inflight; /* readers pinned to this item */
    uint32_t kind;
    _Atomic uint64_t adds; /* touches readers completed */
    char name[96];
};

struct snap {
    uint32_t gen, state, kind;
    char name[96];
};

/* What a worker holds for each of its slots. */
struct owned {
    bool live;
    int kind;
    pshm_block *b;
    pshm_list *l;
    uint64_t seed, version;
};

struct worker {
    int id;
    uint64_t rng;
    int seq;
    double deadline;
    struct owned own[RING];
    pshm_manager *mgr;
};

static struct slot *dir;
static const char *mgr_address;
static const void *mgr_key;
static size_t mgr_keylen;

static struct slot *slot_of(int proc, int i) { return &dir[proc * RING + i]; }

static bool is_list(int kind) { return kind == K_LIST || kind == K_MLIST; }

/* ---- the directory ----------------------------------------------------- */

static void slot_publish(struct slot *s, const char *name, int kind)
{
    atomic_fetch_add(&s->gen, 1);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->kind = (uint32_t)kind;
    atomic_store(&s->adds, 0);
    atomic_store(&s->state, ST_LIVE);
    atomic_fetch_add(&s->gen, 1);
}

static bool slot_snapshot(struct slot *s, struct snap *out)
{
    uint32_t g = atomic_load(&s->gen);
    if (g & 1)
        return false;
    out->state = atomic_load(&s->state);
    out->kind = s->kind;
    memcpy(out->name, s->name, sizeof out->name);
    out->name[sizeof out->name - 1] = '\0';
    out->gen = g;
    return atomic_load(&s->gen) == g;
}

/*
 * Dekker with the owner: we announce ourselves, then look at the state; the
 * owner sets RETIRING, then looks at inflight. One of us sees the other.
 */
static bool slot_pin(struct slot *s, const struct snap *sn)
{
    atomic_fetch_add(&s->inflight, 1);
    if (atomic_load(&s->gen) == sn->gen && atomic_load(&s->state) == ST_LIVE)
        return true;
    atomic_fetch_sub(&s->inflight, 1);
    return false;
}

static bool slot_drain(struct slot *s, const char *name)
{
    atomic_store(&s->state, ST_RETIRING);
    double until = now_s() + PIN_WAIT_S;
    while (atomic_load(&s->inflight) != 0) {
        if (now_s() > until) {
            fail("retire %s: readers still pinned after %.0f s", name, PIN_WAIT_S);
            return false;
        }
        usleep(100);
    }
    return true;
}

/* ---- reading other processes' items ------------------------------------ */

static unsigned read_flags(struct worker *w, bool allow_readonly)
{
    uint64_t r = rng_next(&w->rng) % 10;
    if (r < 5)
        return 0; /* tracked, as CPython's default */
    if (r < 8 || !allow_readonly)
        return PSHM_UNTRACKED;
    return PSHM_UNTRACKED | PSHM_READONLY;
}

static void read_block(struct worker *w, struct slot *s, const struct snap *sn)
{
    unsigned flags = read_flags(w, true);
    pshm_block *b;
    int rc = pshm_block_attach(&b, sn->name, flags);
    COUNT(attaches);
    if (rc < 0) {
        fail("attach of pinned block: %s", pshm_last_error());
        return;
    }
    enum verdict v = sealed_verify(pshm_block_buf(b), pshm_block_size(b));
    COUNT(verifies);
    if (v == V_OK)
        COUNT(blocks_checked);
    else if (v == V_BAD)
        corrupt("block %s: checksum or header mismatch (size %zu)", sn->name,
                pshm_block_size(b));
    else
        fail("block %s: %s", sn->name, v == V_BLANK ? "published blank" : "seqlock busy");
    if (!(flags & PSHM_READONLY)) {
        atomic_fetch_add(&((struct sealed_hdr *)pshm_block_buf(b))->touches, 1);
        atomic_fetch_add(&s->adds, 1);
        COUNT(writes);
    }
    pshm_block_free(b);
    COUNT(closes);
}

static void read_list(struct worker *w, struct slot *s, const struct snap *sn)
{
    pshm_list *l;
    int rc = pshm_list_attach(&l, sn->name, read_flags(w, false));
    COUNT(attaches);
    if (rc < 0) {
        fail("attach of pinned list: %s", pshm_last_error());
        return;
    }
    int64_t counter;
    enum verdict v = checked_list_verify(l, &counter);
    COUNT(verifies);
    if (v == V_OK)
        COUNT(blocks_checked);
    else if (v == V_BAD)
        corrupt("list %s: an item does not match its seed", sn->name);
    else
        fail("list %s: seqlock busy", sn->name);
    if (pshm_list_add(l, 2, 1, NULL) == 0)
        atomic_fetch_add(&s->adds, 1);
    else
        fail("list add on %s: %s", sn->name, pshm_last_error());
    COUNT(list_ops);
    pshm_list_free(l);
    COUNT(closes);
}

/* A retired item's name must be gone for every new attach. */
static void probe_dead(const struct snap *sn)
{
    pshm_block *b;
    int rc = pshm_block_attach(&b, sn->name, PSHM_UNTRACKED);
    COUNT(attaches);
    if (rc == 0) {
        atomic_fetch_add(&S->orphan_attaches, 1);
        fprintf(stderr, "stress: attach of %s succeeded after its unlink\n", sn->name);
        pshm_block_free(b);
    } else if (rc != PSHM_ENOENT) {
        fail("attach of a removed block: expected ENOENT, got %s", pshm_last_error());
    } else {
        COUNT(dead_probes);
    }
}

static void read_random(struct worker *w)
{
    int proc = (int)rng_range(&w->rng, 0, (uint64_t)C.procs - 1);
    struct slot *s = slot_of(proc, (int)rng_range(&w->rng, 0, RING - 1));
    struct snap sn;
    if (!slot_snapshot(s, &sn))
        return;
    if (sn.state == ST_DEAD) {
        probe_dead(&sn);
        return;
    }
    if (sn.state != ST_LIVE || !slot_pin(s, &sn))
        return;
    if (is_list((int)sn.kind))
        read_list(w, s, &sn);
    else
        read_block(w, s, &sn);
    atomic_fetch_sub(&s->inflight, 1);
}

/* ---- owning items ------------------------------------------------------ */

static int pick_kind(struct worker *w)
{
    uint64_t r = rng_next(&w->rng) % 100;
    if (w->mgr != NULL && r < 15)
        return r < 5 ? K_MLIST : K_MBLOCK;
    if (r < 40)
        return K_LIST;
    return K_BLOCK;
}

static unsigned create_flags(struct worker *w)
{
    uint64_t r = rng_next(&w->rng) % 10;
    return r == 0 ? PSHM_POPULATE : r == 1 ? PSHM_UNTRACKED : 0;
}

static int make_block(struct worker *w, struct owned *o, const char *name)
{
    size_t size = SEALED_HDR + 8 * (size_t)rng_range(&w->rng, 1, 4096);
    int rc;
    if (o->kind == K_MBLOCK) {
        rc = pshm_manager_block(w->mgr, size, &o->b);
        COUNT(manager_ops);
        if (rc == 0) {
            log_manager_name(pshm_block_name(o->b));
            size = pshm_block_size(o->b);
        }
    } else {
        rc = pshm_block_create(&o->b, name, size, create_flags(w));
    }
    if (rc == 0)
        sealed_fill(pshm_block_buf(o->b), size, o->seed);
    return rc;
}

static int make_list(struct worker *w, struct owned *o, const char *name)
{
    struct checked_values cv;
    checked_values_make(&cv, o->seed, 0);
    int rc = PSHM_EINVAL;
    COUNT(list_ops);
    if (o->kind == K_LIST)
        rc = pshm_list_create(&o->l, name, cv.v, CHECKED_LIST_LEN, create_flags(w));
    if (o->kind == K_MLIST) {
        rc = pshm_manager_list(w->mgr, cv.v, CHECKED_LIST_LEN, &o->l);
        COUNT(manager_ops);
        if (rc == 0)
            log_manager_name(pshm_block_name(pshm_list_block(o->l)));
    }
    if (rc == 0)
        o->b = pshm_list_block(o->l);
    return rc;
}

static void own_create(struct worker *w, int i)
{
    struct owned *o = &w->own[i];
    char name[96];
    block_name(name, sizeof name, "w%d_%d", w->id, w->seq++);
    o->kind = pick_kind(w);
    o->seed = rng_next(&w->rng);
    o->version = 0;
    o->l = NULL;
    int rc = is_list(o->kind) ? make_list(w, o, name) : make_block(w, o, name);
    COUNT(creates);
    if (rc < 0) {
        fail("create %s: %s", name, pshm_last_error());
        return;
    }
    o->live = true;
    COUNT(writes);
    slot_publish(slot_of(w->id, i), pshm_block_name(o->b), o->kind);
}

static void own_rewrite(struct worker *w, struct owned *o)
{
    o->version++;
    if (!is_list(o->kind)) {
        sealed_rewrite(pshm_block_buf(o->b), o->seed ^ o->version);
        COUNT(writes);
        return;
    }
    if (checked_list_rewrite(o->l, o->seed, o->version) < 0)
        fail("rewrite list %s: %s", pshm_block_name(o->b), pshm_last_error());
    COUNT(list_ops);
    (void)w;
}

/* Verify our own item and that the touch counter equals the adds counted. */
static void own_check(struct owned *o, struct slot *s)
{
    const char *name = pshm_block_name(o->b);
    uint64_t adds = atomic_load(&s->adds);
    int64_t touches = -1;
    enum verdict v = V_BAD;
    if (!is_list(o->kind)) {
        v = sealed_verify(pshm_block_buf(o->b), pshm_block_size(o->b));
        touches = (int64_t)atomic_load(&((struct sealed_hdr *)pshm_block_buf(o->b))->touches);
    } else {
        v = checked_list_verify(o->l, &touches);
    }
    COUNT(verifies);
    if (v != V_OK)
        corrupt("retiring %s: content does not verify", name);
    else if (touches != (int64_t)adds)
        corrupt("retiring %s: %lld increments found, %llu made", name, (long long)touches,
                (unsigned long long)adds);
    else
        COUNT(blocks_checked);
}

static int own_remove(struct worker *w, struct owned *o)
{
    if (o->kind == K_BLOCK || o->kind == K_LIST) {
        COUNT(unlinks);
        return pshm_block_unlink(o->b);
    }
    COUNT(manager_ops);
    return pshm_manager_release(w->mgr, pshm_block_name(o->b));
}

static void own_close(struct owned *o)
{
    if (o->l != NULL) {
        pshm_list_free(o->l);
        o->l = NULL;
        o->b = NULL;
    }
    pshm_block_free(o->b);
    o->b = NULL;
    COUNT(closes);
}

static void own_retire(struct worker *w, int i)
{
    struct owned *o = &w->own[i];
    struct slot *s = slot_of(w->id, i);
    char name[96];
    snprintf(name, sizeof name, "%s", pshm_block_name(o->b));
    if (slot_drain(s, name))
        own_check(o, s);
    if (own_remove(w, o) < 0)
        fail("remove %s: %s", name, pshm_last_error());
    atomic_store(&s->state, ST_DEAD); /* only now: the name is gone */
    own_close(o);
    o->live = false;
    struct snap sn;
    snprintf(sn.name, sizeof sn.name, "%s", name);
    probe_dead(&sn);
}

/* ---- one worker process ------------------------------------------------ */

static void worker_step(struct worker *w)
{
    uint64_t r = rng_next(&w->rng) % 100;
    int i = (int)rng_range(&w->rng, 0, RING - 1);
    struct owned *o = &w->own[i];
    if (r < 20 && !o->live)
        own_create(w, i);
    else if (r < 30 && o->live)
        own_rewrite(w, o);
    else if (r < 90)
        read_random(w);
    else if (o->live)
        own_retire(w, i);
}

static void worker_connect(struct worker *w)
{
    /* The server serves a bounded number of connections (64); leave room. */
    if (mgr_address != NULL && w->id < MANAGER_CLIENTS &&
        pshm_manager_connect(&w->mgr, mgr_address, mgr_key, mgr_keylen) < 0)
        fail("worker %d: connect to the manager: %s", w->id, pshm_last_error());
}

static void worker_disconnect(struct worker *w)
{
    if (w->mgr != NULL)
        pshm_manager_disconnect(w->mgr);
    w->mgr = NULL;
}

static int worker_main(int id, double deadline)
{
    struct worker w = {
        .id = id, .rng = C.seed ^ ((uint64_t)id << 32) ^ 0x10ad, .deadline = deadline};
    worker_connect(&w);
    for (int op = 0; op < C.ops && !past_deadline(deadline); op++)
        worker_step(&w);
    for (int i = 0; i < RING; i++)
        if (w.own[i].live)
            own_retire(&w, i);
    worker_disconnect(&w);
    int open = own_handles_open();
    if (open != 0) {
        atomic_fetch_add(&S->handle_leaks, (uint64_t)open);
        fail("worker %d: %d descriptors/mappings of the run still open at exit", id, open);
    }
    return 0;
}

/* ---- the phase --------------------------------------------------------- */

static pshm_manager *start_manager(void)
{
    pshm_manager *m = NULL;
    if (pshm_manager_start(&m, NULL, NULL, 0) < 0) {
        fail("load: start the manager: %s", pshm_last_error());
        return NULL;
    }
    mgr_address = pshm_manager_address(m);
    mgr_key = pshm_manager_authkey(m, &mgr_keylen);
    return m;
}

static void stop_manager(pshm_manager *m)
{
    if (m == NULL)
        return;
    char **names;
    size_t n;
    if (pshm_manager_names(m, &names, &n) == 0) {
        if (n != 0)
            fail("load: the manager still owns %zu blocks after every release", n);
        pshm_names_free(names, n);
    } else {
        fail("load: manager names: %s", pshm_last_error());
    }
    if (pshm_manager_shutdown(m) < 0)
        fail("load: manager shutdown: %s", pshm_last_error());
}

/* Wait for every worker; past the deadline (plus grace) kill the stragglers. */
static void reap_workers(pid_t *pids, int n, double deadline)
{
    int left = 0;
    for (int i = 0; i < n; i++)
        left += pids[i] > 0;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            int st;
            if (pids[i] <= 0 || waitpid(pids[i], &st, WNOHANG) != pids[i])
                continue;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail("load worker %d ended with status 0x%x", i, st);
            pids[i] = 0;
            left--;
        }
        if (left > 0 && past_deadline(deadline + 20)) {
            fail("load: %d workers still running 20 s past the deadline; killed", left);
            for (int i = 0; i < n; i++)
                if (pids[i] > 0 && kill(pids[i], SIGKILL) == 0)
                    waitpid(pids[i], NULL, 0);
            return;
        }
        usleep(5000);
    }
}

int run_load(void)
{
    size_t bytes = sizeof(struct slot) * (size_t)C.procs * RING;
    dir = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (dir == MAP_FAILED) {
        fail("load: mmap of the directory failed");
        return -1;
    }
    double deadline = C.start + C.seconds * 0.4;
    pshm_manager *m = start_manager();
    pid_t *pids = calloc((size_t)C.procs, sizeof *pids);
    for (int i = 0; i < C.procs; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(worker_main(i, deadline));
        if (pids[i] < 0)
            fail("load: fork: worker %d not started", i);
    }
    reap_workers(pids, C.procs, deadline);
    free(pids);
    stop_manager(m);
    munmap(dir, bytes);
    return 0;
}
