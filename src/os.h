/*
 * os.h — the one internal interface between pshm's shared code and the
 * operating system it runs on.
 *
 * Shared, free of platform #ifdefs: list.c, values.c, protocol.c, errors.c,
 * block_common.c, and the manager's client.c and owned.c (manager.h). They reach the system only through internal.h and what
 * this header declares. Per platform, one header says how (os_posix.h, win/os_win.h) and
 * one set of files does it:
 *   POSIX (Linux)  block.c tracker.c server.c manager_posix.c os_posix.c
 *                  (libsodium, libunistring, shm_open/mmap/flock)
 *   Windows        win/block.c win/lock.c win/manager.c win/server.c win/os.c
 *                  (CNG/BCrypt, file mappings; no tracker: the kernel frees
 *                  a mapping when its last handle closes)
 * CMakeLists.txt picks the set. docs/design.md describes the split.
 *
 * What every platform header provides:
 *
 *   struct pshm_block  with at least `char name[PSHM_NAME_MAX + 1]` (the bare
 *                      name), `void *buf` (NULL once closed), `size_t size`
 *                      `unsigned flags` and `fast_limits *fast` (see
 *                      below), the fields the list code reads.
 *
 *   Text (UTF-8 and Python's str.isprintable):
 *     const uint8_t *os_utf8_check(const uint8_t *s, size_t n);
 *         the first byte of s[0..n) that is not valid UTF-8, or NULL.
 *     int os_utf8_decode(uint32_t *uc, const uint8_t *s, size_t n);
 *         the code point at s (valid UTF-8, n > 0) and its length.
 *     int os_utf8_decode_strict(uint32_t *uc, const uint8_t *s, size_t n);
 *         as above, for unchecked input: -1 for an invalid sequence, -2 for
 *         one cut short by n.
 *     int os_utf8_encode(uint8_t *out, uint32_t uc, size_t room);
 *         write code point uc (not a surrogate), return its length.
 *     bool os_is_printable(uint32_t uc);
 *         Python's str.isprintable() for one non-ASCII code point.
 *
 *   Floats as text in the "C" locale whatever the program chose:
 *     os_locale os_c_locale_enter(void);   switch this thread, return the old
 *     void os_c_locale_leave(os_locale);   restore it
 *
 *   The manager's MAC (protocol.c):
 *     void os_hmac_sha256(uint8_t out[32], const void *key, size_t keylen,
 *                         const os_bytes *parts, size_t nparts);
 *     bool os_equal_ct(const void *a, const void *b, size_t n); constant time
 *
 *   Waiting (lock_common.c):
 *     void os_sleep_ms(unsigned ms);        sleep the calling thread
 *
 *   Randomness and secrets (libsodium on Linux, CNG on Windows):
 *     int os_crypto_init(void);             0, or -1 if it cannot start
 *     int os_random_bytes(void *buf, size_t n);     0, or < 0 on failure
 *     void os_memzero(void *p, size_t n);   not optimised away
 *
 *   The manager's transport: the types os_conn (a connection,
 *   OS_CONN_CLOSED) and os_server (a server process pshm_manager_start made,
 *   OS_SERVER_NONE); manager.h declares what is done with them.
 *
 *   Addresses: inet_pton/inet_ntop, htons/ntohs, AF_INET, AF_INET6, struct
 *   sockaddr_in, sockaddr_in6 and sockaddr_storage.
 *
 *   OS_PRINTF: the format attribute's archetype for the C99 printf the
 *   library formats messages with.
 */
#ifndef PSHM_OS_H
#define PSHM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One piece of a MAC's message. */
typedef struct os_bytes {
    const void *p;
    size_t n;
} os_bytes;

/*
 * How many items a shareable list's fast paths may serve (list.c): `get`
 * by reads, `set` by same-type stores. Every platform's struct pshm_block
 * has `fast_limits *fast` (the list this block holds, or NULL), and its
 * pshm_block_close sets both limits to 0, so the fast paths need no check
 * of their own that the block is still mapped.
 */
typedef struct fast_limits {
    size_t get, set;
} fast_limits;

#ifdef _WIN32
#include "win/os_win.h"
#else
#include "os_posix.h"
#endif

#endif
