/*
 * internal.h — what the library's files share and the public header does not
 * say. Everything here has hidden visibility (CMAKE_C_VISIBILITY_PRESET).
 */
#ifndef PSHM_INTERNAL_H
#define PSHM_INTERNAL_H

#include "pshm.h"
#include "os.h"

#include <stdarg.h>
#include <time.h>

/* ---- errors.c ---------------------------------------------------------- */

/*
 * Record the calling thread's last error and return `code`, so a failure
 * path reads: return err_set(PSHM_ENOENT, "attach \"%s\": ...", name);
 */
int err_set(int code, const char *fmt, ...) __attribute__((format(OS_PRINTF, 2, 3)));

/*
 * Map errno after a failed system call `call` on block `name` to a pshm code
 * and record "<what> \"<name>\": <call>: <strerror>".
 */
int err_errno(int errnum, const char *what, const char *name, const char *call);

/* ---- block.c ----------------------------------------------------------- */

/*
 * Register b with this process's tracker if the caller wants tracking and
 * the block carries TRACKED_MARK; otherwise mark the handle untracked. A
 * tracker that cannot be started is an error (`what` names the call).
 */
int block_track_attached(pshm_block *b, unsigned flags, const char *what);

/*
 * A new tracked block of `size` bytes under a random name, every page
 * reserved (a full /dev/shm is PSHM_ELIMIT, never a later SIGBUS), returned
 * closed: the manager server's blocks, which it owns but never maps.
 */
int block_create_closed(pshm_block **out, size_t size);

/* Validate a user-given name and write the bare name (no '/') to out. */
int name_normalize(const char *what, const char *name, char out[PSHM_NAME_MAX + 1]);

/* block_common.c: the checks every platform's blocks share. create's
 * arguments (all checked before anything is made, so a message names only
 * what the caller gave; sets *out to NULL), and an open handle with
 * [offset, offset + len) inside it (reserve, read). */
int block_check_create(pshm_block **out, const char *name, size_t size, unsigned flags);
/* The flags create and attach accept. */
#define CREATE_FLAGS (PSHM_UNTRACKED | PSHM_POPULATE | PSHM_NOMAP)
#define ATTACH_FLAGS (CREATE_FLAGS | PSHM_READONLY)
/* Map an open, unmapped handle as its flags say (each platform's block
 * file); the handle stays open and unmapped on failure. */
int block_map(pshm_block *b, const char *what);
int block_check_range(const pshm_block *b, const char *what, size_t offset, size_t len);
/* Whether b may be closed: not NULL, and no lock in it held by the calling
 * thread (lock_held_in says why that matters). */
int block_check_close(const pshm_block *b);

/*
 * Allocate the pages of [offset, offset + len) of b's object (len 0: none),
 * so writing them later cannot raise SIGBUS on a full /dev/shm. No space is
 * PSHM_ELIMIT "<what> \"<name>\": ... no space left in /dev/shm ...". The
 * caller has checked the handle and the range.
 */
int block_reserve(const pshm_block *b, const char *what, size_t offset, size_t len);

/*
 * The list of this process's open handles, and the one lock that guards it
 * and the tracker link (taken around fork() too, so a child sees both
 * consistent). A handle enters the list before it is mapped, and every
 * mapping is made under the lock, so a process forked by the library
 * (tracker, manager server) can unmap
 * every block it inherited: a mapping keeps its block's flock alive, and a
 * helper process must not look like a user of the caller's blocks.
 */
void global_lock(void);
void global_unlock(void);
pshm_block *open_handles(void);
/* In a child the library forked: unmap and close every inherited block
 * (signal-safe). */
void drop_inherited_blocks(void);

/* The monotonic clock in microseconds (the manager's busy-poll spins) and
 * milliseconds (deadlines: attach's lock wait, the manager's timeouts, the
 * tracker's sweeps). Signal-safe. */
static inline int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t monotonic_ms(void) { return monotonic_us() / 1000; }

/* FNV-1a of a block name, for the hash tables of the tracker and the
 * manager server. Pure, so safe in the tracker process. */
static inline uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* ---- lock.c, win/lock.c, lock_common.c ----------------------------------- */

/* Every lock area starts with this 64-bit tag (magic, version, kind),
 * published last by init with a release store. */
#define LOCK_MAGIC 0x70736d6cu /* "pshl" */
#define LOCK_VERSION 2u        /* 1: Linux's areas held glibc's pthread_mutex_t */
enum lock_kind { KIND_MUTEX = 1, KIND_RWLOCK = 2 };
#define LOCK_TAG(kind) (((uint64_t)LOCK_MAGIC << 32) | (LOCK_VERSION << 8) | (kind))

/* lock_common.c. The bytes a lock of `kind` takes. The area at offset of b
 * if it holds an initialised lock of `kind` (the acquire load pairs with
 * init's release store), else NULL with *rc the error, whose message names
 * `what`, the block and the offset: the slow path where every misuse is
 * told (a NULL, closed or read-only handle, a misaligned or too-late
 * offset, a wrong tag). */
size_t lock_size(enum lock_kind kind);
__attribute__((cold)) void *lock_at(pshm_block *b, size_t offset, enum lock_kind kind,
                                    const char *what, int *rc);
/* The area for init: checked as above but for the tag, holding no lock yet
 * (else PSHM_EEXIST), and zeroed, the tag with it, so no call accepts it
 * until init publishes the tag. */
void *lock_init_area(pshm_block *b, size_t offset, enum lock_kind kind, const char *what,
                     int *rc);

/*
 * The offset in [buf, buf + size) of a lock the calling thread holds, or
 * -1 if it holds none there. A block must stay open while a lock in it is
 * held: on Linux the kernel releases a dead thread's robust mutexes only
 * where they are still mapped, and stops at the first it cannot read; on
 * Windows closing the handles of an owned mutex strands its waiters.
 */
ptrdiff_t lock_held_in(const void *buf, size_t size);

/* pshm_lock_open's last step for a named lock's handle b: on Linux, tell
 * the tracker to remove it without a word once no one has it open (it is
 * meant to go that way); nothing on Windows, which has no tracker. */
int lock_named_quiet(pshm_block *b);

/* ---- tracker.c --------------------------------------------------------- */

/*
 * Register an open, shared-locked block with this process family's tracker
 * (starting it if need be). One send(2) when the tracker runs. A tracker
 * that cannot be started or reached is an error naming `what` and the block:
 * a block the caller asked to have tracked is never silently untracked.
 */
int tracker_register(pshm_block *b, const char *what);
/* In a forked child that must not share its parent's tracker (the manager
 * server): forget the link without closing the parent's side of it. */
void tracker_detach(void);

/* ---- values.c ---------------------------------------------------------- */

/* Append-only string builder used by the repr and format code. */
typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; data is unusable */
} strbuf;

void sb_putc(strbuf *sb, char c);
void sb_puts(strbuf *sb, const char *s, size_t n);
void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(OS_PRINTF, 2, 3)));
/* Hand over the NUL-terminated text (or PSHM_ELIMIT if an allocation failed). */
int sb_finish(strbuf *sb, char **out, const char *what);

/*
 * Check a value a caller hands in: a known type, no NULL pointer with a
 * length, valid UTF-8 for str. Messages read "<what> "<name>"[<index>]: ...".
 */
int value_check(const pshm_value *v, const char *what, const char *name, int64_t index);

/* Append Python's repr() of v. */
int value_repr_into(strbuf *sb, const pshm_value *v);

#endif
