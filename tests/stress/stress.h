/*
 * stress.h — what the parts of the stress run share.
 *
 * The run has three phases, each in its own file:
 *   load.c    many processes create, attach, write, verify, retire blocks,
 *             lists and manager blocks at once (checksums, exact counters);
 *   kill.c    hundreds of workers SIGKILLed at random moments; afterwards
 *             every block is intact and owned, or gone;
 *   limits.c  out of descriptors, /dev/shm space and address space: a clear
 *             error naming the block, and nothing half-made; a full /dev/shm
 *             (a 4 MiB tmpfs in a private mount namespace) under a manager
 *             hammered by clients: refusals, never a SIGBUS.
 * stress.c reads the configuration, runs the phases and prints the report.
 *
 * Every process of the run is forked from the main one (victims of the kill
 * phase are then exec'd), so the counters live in one MAP_SHARED anonymous
 * mapping made before the first fork and are updated atomically.
 */
#ifndef PSHM_STRESS_H
#define PSHM_STRESS_H

#include "pshm.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config {
    int procs;          /* concurrent load processes */
    int ops;            /* operations per load process */
    int kills;          /* SIGKILLs in the kill phase */
    int lanes;          /* kill lanes running side by side */
    int max_delay_us;   /* upper bound of the random delay before a SIGKILL */
    int tracker_rounds; /* rounds of the tracker phase */
    double seconds;     /* global time limit of the whole run */
    uint64_t seed;
    char prefix[40]; /* every block of the run starts with this */
    char logdir[96]; /* victims' stderr (their trackers talk there) */
    double start;    /* monotonic time the run began */
};

struct stats {
    _Atomic uint64_t creates, attaches, writes, verifies, closes, unlinks;
    _Atomic uint64_t list_ops, manager_ops;
    _Atomic uint64_t dead_probes;     /* attach of a removed name refused, as it must */
    _Atomic uint64_t blocks_checked;  /* full content verifications that passed */
    _Atomic uint64_t corruptions;     /* bad checksum, lost increment, torn list */
    _Atomic uint64_t orphan_attaches; /* attach succeeded after the unlink */
    _Atomic uint64_t handle_leaks;    /* fd or mapping of the run left open */
    _Atomic uint64_t killed, finished_early, kill_delay_total_us;
    _Atomic uint64_t victim_blocks;   /* blocks victims made (tracker's work) */
    _Atomic uint64_t lock_recoveries; /* kill phase: a dead holder's mutex taken, told */
    _Atomic uint64_t deadlocks;       /* kill phase: a mutex not free 10 s after a kill */
    _Atomic uint64_t limit_checks, limit_failures;
    _Atomic uint64_t tracker_rounds; /* tracker-phase rounds completed */
    _Atomic uint64_t errors;         /* any other unexpected failure */
    _Atomic uint64_t messages;       /* failure lines printed so far */
};

extern struct stats *S;
extern struct config C;

#define COUNT(field) atomic_fetch_add(&S->field, 1)

/* ---- common.c ---------------------------------------------------------- */

double now_s(void);
bool past_deadline(double deadline);
uint64_t rng_next(uint64_t *state);
/* Uniform in [lo, hi]. */
uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi);

/* Count an unexpected failure / a corruption and print it (first few only). */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void corrupt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether block `name` exists now; whether it is gone within `seconds`. */
bool block_exists(const char *name);
bool gone_within(const char *name, double seconds);

/* "<prefix><tag>" into buf. */
void block_name(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

uint64_t hash_bytes(const void *p, size_t n);
/* Fill n bytes with the stream of `seed`. */
void fill_bytes(void *p, size_t n, uint64_t seed);

/*
 * A "sealed" block: a 64-byte header, then the payload. The header's magic
 * is stored last when the block is first filled, so a reader either sees no
 * magic (the writer died first) or a complete block. Rewrites by the owner
 * go through a seqlock; other processes only add to `touches`.
 */
#define STRESS_MAGIC 0x3152545345534d50ull /* "PMSESTR1" */
#define SEALED_HDR 64
struct sealed_hdr {
    _Atomic uint64_t magic;
    uint64_t size;        /* the whole block, header included */
    _Atomic uint64_t seq; /* odd while the owner rewrites */
    uint64_t hash;        /* of the payload */
    _Atomic uint64_t touches;
    uint64_t seed;
    uint64_t pad[2];
};

enum verdict { V_OK, V_BLANK, V_BAD, V_BUSY };

void sealed_fill(void *buf, size_t size, uint64_t seed);
void sealed_rewrite(void *buf, uint64_t seed);
/* Verify under the seqlock; V_BLANK when the magic was never written. */
enum verdict sealed_verify(void *buf, size_t size);

/* Names of /dev/shm entries starting with the run's prefix + `sub`. */
int count_prefixed(const char *sub, char *first, size_t cap);
/* Up to cap such names (prefix included) into names; returns how many. */
int list_prefixed(const char *sub, char (*names)[PSHM_NAME_MAX + 1], int cap);
/* Descriptors and mappings of this process that point at a block of the run. */
int own_handles_open(void);
/* Open descriptors of this process (works with none left to spare). */
int open_fds(void);

/* Hex encoding of a manager key, for a victim's command line. */
void hex_encode(const void *p, size_t n, char *out);
size_t hex_decode(const char *hex, void *out, size_t cap);

/*
 * Manager blocks get random names ("psm_..."), not the run's prefix: every
 * name a manager hands out is logged here (shared), and the final scan
 * checks each one is gone.
 */
#define NAME_LOG_CAP 65536
struct name_log {
    _Atomic uint32_t count;
    char names[NAME_LOG_CAP][32];
};
extern struct name_log *MGR_NAMES;
void log_manager_name(const char *name);
/* How many logged names still exist in /dev/shm (first one into `first`). */
int count_logged_alive(char *first, size_t cap);

/* ---- lists.c: a self-checking shareable list ---------------------------- */

/*
 * Items: 0 seed (int), 1 seq (int, a seqlock: odd while the owner rewrites
 * item 3), 2 counter (int, others pshm_list_add to it), 3 str derived from
 * (seed, version), 4 bytes derived from seed, 5 float, 6 bool, 7 None.
 */
#define CHECKED_LIST_LEN 8
#define CHECKED_STR_LEN 32
struct checked_values {
    pshm_value v[CHECKED_LIST_LEN];
    char str[CHECKED_STR_LEN + 1];
    unsigned char bytes[24];
};
void checked_values_make(struct checked_values *cv, uint64_t seed, uint64_t version);
enum verdict checked_list_verify(const pshm_list *l, int64_t *counter);
int checked_list_rewrite(pshm_list *l, uint64_t seed, uint64_t version);

/* ---- the phases -------------------------------------------------------- */

int run_load(void);
int run_kills(void);
int run_limits(void);
int run_tracker(void);
/* The exec'd victim of the kill phase (argv after "victim"). */
int victim_main(int argc, char **argv);
/* The exec'd creator and holders of the tracker phase. */
int tracker_creator_main(int argc, char **argv);
int tracker_holder_main(int argc, char **argv);

#endif
