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
 * A handle. Invariant: mapping != NULL exactly while buf != NULL (open): a
 * view is always mapped at once here, PSHM_NOMAP or not.
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
    bool open;         /* complete, until close */
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

/* n bytes from BCryptGenRandom; 0 or PSHM_ESYS. CNG needs no set-up. */
int os_random_bytes(void *buf, size_t n);
static inline int os_crypto_init(void) { return 0; }
static inline void os_memzero(void *p, size_t n) { SecureZeroMemory(p, n); }

/* ---- the manager's transport (manager.h, win/manager.c) ---------------- */

/*
 * A connection: a TCP socket or a named pipe's handle (the other is
 * INVALID_SOCKET / NULL), both read with overlapped I/O on `event`, so a
 * read can wait with a timeout and a server can stop its readers.
 */
typedef struct os_conn {
    SOCKET sock;
    HANDLE pipe;
    HANDLE event;
} os_conn;
#define OS_CONN_CLOSED ((os_conn){INVALID_SOCKET, NULL, NULL})

/* A server pshm_manager_start made: pshm.exe's process (NULL: none). It
 * watches a handle of its starter's process and stops when that exits. */
typedef struct os_server {
    HANDLE process;
} os_server;
#define OS_SERVER_NONE ((os_server){NULL})

/* win/manager.c: Winsock started once (0, or PSHM_ESYS naming `what`). */
int win_sockets_init(const char *what);
/* As tr_recv, but also returns -1 (*why "the server is stopping") as soon
 * as `stop` (an event, or NULL) is set. */
ptrdiff_t win_recv(os_conn *c, void *p, size_t n, int timeout_ms, HANDLE stop,
                   const char **why);
/* As tr_send_all, but giving up (-1) as soon as `stop` is set. */
int win_send_all(os_conn *c, const void *data, size_t len, HANDLE stop, const char **why);
/* The \\.\pipe\ path of a pipe: address, as UTF-16. */
int win_pipe_path(const char *what, const char *address, const char *name, wchar_t out[300]);

/* win/server.c: serve `address` until SHUTDOWN, a console Ctrl-C/close
 * (unless ignore_ctrl) or, if `starter` is not NULL, that process's exit. */
int win_server_run(const char *address, const void *key, size_t keylen,
                   void (*ready)(const char *address, void *arg), void *arg, HANDLE starter,
                   bool ignore_ctrl);

/* The entry pshm.exe runs as a manager server for pshm_manager_start (it
 * is started with --pshm-manager-server): the process's exit status. */
int pshm_win_manager_server_main(void);

/* win/os.c: record GetLastError() `werr` after `call` failed on block `name`
 * as "<what> \"<name>\": <call>: <message>" with the matching pshm code. */
int err_win(unsigned long werr, const char *what, const char *name, const char *call);

/* "name" as UTF-16 for the W calls; PSHM_EBADNAME if it is not UTF-8. */
int name_to_wide(const char *what, const char *name, wchar_t out[PSHM_NAME_MAX + 1]);

#endif
