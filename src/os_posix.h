/*
 * os_posix.h — os.h on Linux: blocks are POSIX shared memory objects in
 * /dev/shm, text goes through libunistring and the MAC through libsodium
 * (which block.c, client.c and server.c also use for randomness). The
 * wrappers are inline so the shared code runs exactly as fast as when it
 * called the libraries itself.
 */
#ifndef PSHM_OS_POSIX_H
#define PSHM_OS_POSIX_H

#include "pshm.h"

#include <arpa/inet.h>
#include <locale.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unictype.h>
#include <unistr.h>

#define OS_PRINTF printf

/* Where glibc's shm_open keeps blocks; the tracker and `ls` read it too. */
#define SHM_DIR "/dev/shm"

/*
 * A handle. Invariants, for every handle a caller holds: fd >= 0 exactly while
 * open, and an open handle is on the open-handle list; buf != NULL only while
 * open (NULL too while a PSHM_NOMAP handle is not yet mapped); every open
 * handle holds a shared flock on its block, so a tracker can tell a block in
 * use from a forgotten one; dev/ino identify the block we opened, so a later
 * block reusing the name is never mistaken for it.
 */
struct pshm_block {
    char name[PSHM_NAME_MAX + 1]; /* bare name, no leading '/' */
    int fd;
    void *buf;
    size_t size;
    unsigned flags;
    bool unlinked; /* this handle already removed the name */
    bool marked;   /* the block carries TRACKED_MARK */
    dev_t dev;
    ino_t ino;
    struct pshm_block *open_prev, *open_next; /* the open-handle list */
    fast_limits *fast;                        /* of the list this block holds, or NULL */
    size_t lock_end; /* size while open and writable, else 0: lock.c's fast check */
    bool quiet;      /* a named lock: its tracker removes it without a word */
    bool open;       /* complete and on the open-handle list, until close */
};

/*
 * The creator's choice, recorded with the block: a block whose creator asked
 * for cleanup carries the sticky bit in its mode (0600 becomes 01600). Linux
 * ignores the bit on regular files, any user may set it on their own files,
 * every filesystem (tmpfs included) keeps it, and it outlives the creator.
 * Attaching registers a block with the tracker only if it carries the mark,
 * and the tracker removes only marked blocks, so no attacher can turn a
 * block its creator meant to keep (or one made by CPython or another tool)
 * into one that is removed.
 */
#define TRACKED_MARK S_ISVTX

/* ---- text -------------------------------------------------------------- */

static inline const uint8_t *os_utf8_check(const uint8_t *s, size_t n)
{
    return u8_check(s, n);
}

static inline int os_utf8_decode(uint32_t *uc, const uint8_t *s, size_t n)
{
    return u8_mbtouc(uc, s, n);
}

static inline int os_utf8_decode_strict(uint32_t *uc, const uint8_t *s, size_t n)
{
    return u8_mbtoucr(uc, s, n);
}

static inline int os_utf8_encode(uint8_t *out, uint32_t uc, size_t room)
{
    return u8_uctomb(out, uc, (int)room);
}

/*
 * Python's str.isprintable() for one non-ASCII code point: false for the
 * categories Cc Cf Cs Co Cn (all of C) and Zl Zp Zs (all of Z). Python 3.11
 * uses Unicode 14.0.0; libunistring 1.0 has the same tables, but another
 * libunistring release may classify the few code points added or changed
 * by a later Unicode version differently (e.g. Unicode 15 letters that
 * Python 3.11 still sees as unassigned, Cn, and escapes).
 */
static inline bool os_is_printable(uint32_t uc)
{
    return !uc_is_general_category(uc, UC_CATEGORY_C) &&
           !uc_is_general_category(uc, UC_CATEGORY_Z);
}

/* ---- the "C" locale for float text (os_posix.c) ------------------------ */

typedef locale_t os_locale;

/*
 * Switch this thread to the "C" locale; returns the locale to restore. If
 * the locale could not be made (out of memory), uselocale(0) changes
 * nothing and the caller's locale is used.
 */
os_locale os_c_locale_enter(void);
static inline void os_c_locale_leave(os_locale saved) { uselocale(saved); }

/* ---- the MAC ----------------------------------------------------------- */

static inline void os_hmac_sha256(uint8_t out[32], const void *key, size_t keylen,
                                  const os_bytes *parts, size_t nparts)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    for (size_t i = 0; i < nparts; i++)
        crypto_auth_hmacsha256_update(&st, parts[i].p, parts[i].n);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

static inline void os_sleep_ms(unsigned ms)
{
    struct timespec pause = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&pause, NULL);
}

static inline bool os_equal_ct(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

/* ---- randomness and secrets (libsodium) -------------------------------- */

/*
 * 0, or -1 if libsodium cannot start (callers say so). Calls sodium_init
 * once per process (os_posix.c): it takes libsodium's own lock on every
 * call, even when done, so a thread forking (a manager server) while
 * another was in it left the child hung in its next call.
 */
int os_crypto_init(void);

static inline int os_random_bytes(void *buf, size_t n)
{
    randombytes_buf(buf, n);
    return 0;
}

static inline void os_memzero(void *p, size_t n) { sodium_memzero(p, n); }

/* ---- the manager's transport (manager.h, manager_posix.c) -------------- */

/* A connection: a Unix or TCP stream socket, -1 when closed. */
typedef struct os_conn {
    int fd;
} os_conn;
#define OS_CONN_CLOSED ((os_conn){-1})

/* A server pshm_manager_start forked: its pid (0: none) and the write end
 * of its lifeline, a pipe whose EOF tells it the starter is gone. */
typedef struct os_server {
    pid_t pid;
    int starter_fd;
} os_server;
#define OS_SERVER_NONE ((os_server){0, -1})

#endif
