/*
 * manager.h — what the manager's shared files (client.c, owned.c) need from
 * each platform, and the server's table of owned blocks.
 *
 * The client (client.c) is one file for every platform: handshake, requests
 * and handles. It reaches the system only through the transport below,
 * implemented once per platform:
 *   POSIX    manager_posix.c  Unix and TCP sockets; the server forked
 *   Windows  win/manager.c    Winsock TCP and named pipes; the server is
 *                             pshm.exe, started by CreateProcess
 * The servers' loops differ (server.c polls descriptors; win/server.c runs
 * a thread per connection, since named pipes cannot be polled), and share
 * protocol.c and the owned-block table (owned.c).
 */
#ifndef PSHM_MANAGER_H
#define PSHM_MANAGER_H

#include "protocol.h"

#include <stddef.h>

/* ---- a connection (os_conn, from the platform header) ------------------ */

/* Connect to `a` (text `address`, for messages). 0, or PSHM_ECONN (nobody
 * listens there) / PSHM_EADDR / PSHM_ESYS with a message naming it. */
int tr_connect(os_conn *c, const proto_addr *a, const char *address);
bool tr_is_open(const os_conn *c);
void tr_close(os_conn *c);
/* Send n bytes (all of them). 0, or -1 with *why describing the failure. */
int tr_send_all(os_conn *c, const void *p, size_t n, const char **why);
/*
 * Receive up to n bytes, waiting at most timeout_ms (-1: for ever; 0: only
 * what has already arrived). Returns the count, 0 at end of stream, -1 on
 * an error (*why says which), TR_TIMEOUT if nothing arrived in time.
 */
#define TR_TIMEOUT (-2)
ptrdiff_t tr_recv(os_conn *c, void *p, size_t n, int timeout_ms, const char **why);

/* tr_recv's timeout for a monotonic_ms() deadline (-1: none): what is left
 * of it, 0 once it has passed. */
static inline int tr_timeout(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - monotonic_ms();
    return left > 0 ? (int)left : 0;
}

/* ---- the server process pshm_manager_start makes (os_server) ----------- */

/* Start a server for `address` (NULL: a private default) and wait until it
 * listens; its actual address goes to out. */
int tr_spawn_server(os_server *s, const char *address, const void *key, size_t keylen,
                    char out[PROTO_ADDR_MAX]);
/* Ask the server to stop now (it frees everything it owns first). */
void tr_stop_server(os_server *s);
/* Drop our tie to the server (it stops when its starter goes) and wait for
 * it to exit. */
void tr_reap_server(os_server *s);

/* ---- the blocks a server owns: an open-addressing table by name --------- */

typedef struct owned_table {
    pshm_block **slots; /* NULL = empty, or a tombstone (owned.c) */
    size_t cap;         /* a power of two, or 0 */
    size_t used;        /* live + tombstones */
    size_t live;
} owned_table;

/* Add b (the table takes it: if it cannot be recorded, b is unlinked and
 * freed, so no block the server cannot account for outlives the call). A
 * live entry of the same name is freed: a client unlinked our old block
 * itself and the name came round again. */
int owned_add(owned_table *t, pshm_block *b);
/* Remove and return the block called `name`, or NULL. */
pshm_block *owned_take(owned_table *t, const char *name);
/* Unlink and free every block, reporting failures on stderr; empty t. */
void owned_unlink_all(owned_table *t);
/* OK_NAMES of every live block into b; false if out of memory. */
bool owned_put_names(const owned_table *t, proto_buf *b);

#endif
