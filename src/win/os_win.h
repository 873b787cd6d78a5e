/*
 * os_win.h — os.h on Windows: blocks are named file mappings backed by the
 * paging file, text is decoded here (Debian has no mingw libunistring),
 * randomness and the MAC come from CNG (BCrypt; Debian has no mingw
 * libsodium). Implemented in win/os.c and win/block.c.
 */
#ifndef PSHM_OS_WIN_H
#define PSHM_OS_WIN_H

#include "pshm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* inet_pton/inet_ntop and AF_INET6 for the address code (protocol.c). */
#include <winsock2.h>
#include <ws2tcpip.h>

/* mingw-w64's C99 printf (__USE_MINGW_ANSI_STDIO), not msvcrt's. */
#define OS_PRINTF gnu_printf

/* Windows has no disk quotas, so its C library has no EDQUOT; errors.c's
 * errno table names it (Linux's number, which no Windows errno uses). */
#ifndef EDQUOT
#define EDQUOT 122
#endif

/*
 * A handle. Invariant: mapping != NULL exactly while buf != NULL (open).
 * The mapping handle and the view keep the block alive; the kernel frees it
 * when the last handle in any process closes, so there is no tracker.
 */
struct pshm_block {
    char name[PSHM_NAME_MAX + 1]; /* bare name, no leading '/' */
    void *buf;
    size_t size; /* attach: the view's size, rounded up to whole pages */
    unsigned flags;
    void *mapping;     /* HANDLE of the file mapping */
    fast_limits *fast; /* of the list this block holds, or NULL */
};

const uint8_t *os_utf8_check(const uint8_t *s, size_t n);
int os_utf8_decode(uint32_t *uc, const uint8_t *s, size_t n);
int os_utf8_decode_strict(uint32_t *uc, const uint8_t *s, size_t n);
int os_utf8_encode(uint8_t *out, uint32_t uc, size_t room);
bool os_is_printable(uint32_t uc);

/* The thread's LC_NUMERIC, saved while the "C" one is in force (NULL: the
 * thread's locale already writes '.', nothing was changed). */
typedef char *os_locale;
os_locale os_c_locale_enter(void);
void os_c_locale_leave(os_locale saved);

void os_hmac_sha256(uint8_t out[32], const void *key, size_t keylen, const os_bytes *parts,
                    size_t nparts);
bool os_equal_ct(const void *a, const void *b, size_t n);

static inline void os_sleep_ms(unsigned ms) { Sleep(ms); }

/* Windows only (win/block.c): n bytes from BCryptGenRandom; 0 or PSHM_ESYS. */
int os_random_bytes(void *buf, size_t n);

/* win/os.c: record GetLastError() `werr` after `call` failed on block `name`
 * as "<what> \"<name>\": <call>: <message>" with the matching pshm code. */
int err_win(unsigned long werr, const char *what, const char *name, const char *call);

/* "name" as UTF-16 for the W calls; PSHM_EBADNAME if it is not UTF-8. */
int name_to_wide(const char *what, const char *name, wchar_t out[PSHM_NAME_MAX + 1]);

#endif
