/*
 * server.c (Windows) — the manager server: a thread per connection.
 *
 * Named pipes cannot be polled with sockets the way server.c's poll() loop
 * does, so here each connection gets a thread doing plain reads and
 * writes, and one lock guards the blocks the server owns. It owns a block
 * by holding a handle open (the kernel frees a mapping with its last
 * handle), so closing a block is what removes it, and a server that dies in
 * any way frees every block no client still has open. The main thread
 * accepts connections and waits for the stop event (SHUTDOWN, Ctrl-C) and
 * the starter's process; at stop it wakes every connection's thread,
 * waits for them, and closes every block.
 *
 * Limits kept from server.c: a frame's length is checked against the
 * connection's state (tiny before the key is proven) before anything is
 * allocated; a connection that does not authenticate within the handshake
 * timeout is dropped; at most MAX_CLIENTS connections, and one more is told
 * the server is busy.
 */
#include "manager.h"

#include <windows.h>

#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CLIENTS 64
/* Each pipe instance's buffers: a reply or request of any size still goes
 * through, in pieces. */
#define PIPE_BUFFER 65536

struct wserver {
    const void *key;
    size_t keylen;
    proto_addr addr;
    char address[PROTO_ADDR_MAX];
    int handshake_ms;
    SOCKET listener;   /* tcp: */
    HANDLE pipe;       /* pipe: the instance waiting for a client */
    HANDLE accept_ev;  /* set when a connection is waiting */
    OVERLAPPED accept; /* pipe: ConnectNamedPipe's */
    bool connected;    /* pipe: it had a client at once (no overlapped result) */
    HANDLE stop;       /* manual reset: stop everything */
    SRWLOCK lock;      /* guards owned and threads */
    owned_table owned;
    HANDLE threads[MAX_CLIENTS];
    unsigned long long next_serial;
};

struct wclient {
    struct wserver *s;
    os_conn conn;
    unsigned long long serial;
    uint8_t challenge[PROTO_CHALLENGE_LEN];
    proto_buf out;
    uint8_t *in;
    size_t in_cap;
};

/* ---- one connection ---------------------------------------------------- */

static bool send_out(struct wclient *c)
{
    const char *why;
    bool ok = !c->out.failed &&
              win_send_all(&c->conn, c->out.data, c->out.len, c->s->stop, &why) == 0;
    c->out.len = 0;
    return ok;
}

/* Read exactly n bytes into c->in + at; deadline in ms (-1: none). */
static bool recv_exact(struct wclient *c, size_t at, size_t n, int64_t deadline)
{
    while (n > 0) {
        const char *why;
        ptrdiff_t got =
            win_recv(&c->conn, c->in + at, n, tr_timeout(deadline), c->s->stop, &why);
        if (got <= 0)
            return false;
        at += (size_t)got;
        n -= (size_t)got;
    }
    return true;
}

/* One frame's payload into c->in, its length to *len; false if the peer
 * went, was too slow, or declared more than `limit` (refused). */
static bool recv_frame(struct wclient *c, uint32_t limit, int64_t deadline, uint32_t *len)
{
    uint8_t header[PROTO_HEADER_LEN];
    if (c->in_cap < PROTO_HEADER_LEN || !recv_exact(c, 0, PROTO_HEADER_LEN, deadline))
        return false;
    memcpy(header, c->in, sizeof header);
    *len = proto_frame_length(header);
    if (*len > limit) {
        char why[96];
        snprintf(why, sizeof why, "message of %u bytes exceeds the limit of %u", *len, limit);
        if (limit == PROTO_MAX_HANDSHAKE)
            proto_put_welcome(&c->out, WELCOME_REFUSED, NULL, why);
        else
            proto_put_error(&c->out, PSHM_EPROTO, why);
        send_out(c);
        return false;
    }
    if (*len > c->in_cap) {
        uint8_t *in = realloc(c->in, *len);
        if (in == NULL)
            return false;
        c->in = in;
        c->in_cap = *len;
    }
    return recv_exact(c, 0, *len, deadline);
}

static bool handshake(struct wclient *c)
{
    struct wserver *s = c->s;
    if (os_random_bytes(c->challenge, sizeof c->challenge) < 0 ||
        !proto_put_hello(&c->out, HELLO_READY, c->challenge, NULL) || !send_out(c))
        return false;
    uint32_t len;
    if (!recv_frame(c, PROTO_MAX_HANDSHAKE, monotonic_ms() + s->handshake_ms, &len))
        return false;
    char peer[32];
    snprintf(peer, sizeof peer, "connection %llu", c->serial);
    proto_auth auth;
    const char *refusal = NULL;
    if (proto_get_auth(c->in, len, &auth, peer) < 0)
        refusal = pshm_last_error();
    else if (auth.version != PROTO_VERSION)
        refusal = "unsupported protocol version";
    else if (!proto_mac_ok(auth.mac, s->key, s->keylen, "client", c->challenge,
                           auth.challenge))
        refusal = "authentication failed: wrong key";
    if (refusal != NULL) {
        fprintf(stderr, "pshm manager: refusing connection %llu: %s\n", c->serial, refusal);
        proto_put_welcome(&c->out, WELCOME_REFUSED, NULL, refusal);
        send_out(c);
        return false;
    }
    uint8_t mac[PROTO_MAC_LEN];
    proto_mac(mac, s->key, s->keylen, "server", auth.challenge, c->challenge);
    proto_put_welcome(&c->out, WELCOME_OK, mac, NULL);
    return send_out(c);
}

static int create_block(uint64_t size, pshm_block **out)
{
    if ((uint64_t)(size_t)size != size)
        return err_set(PSHM_EBADSIZE, "create: size %llu is too large",
                       (unsigned long long)size);
    return pshm_block_create(out, NULL, (size_t)size, 0);
}

/* A list's block, kept by a handle of our own once the list handle goes. */
static int create_list(const proto_request *req, pshm_block **out)
{
    pshm_list *l;
    int rc = pshm_list_create(&l, NULL, req->values, req->count, 0);
    if (rc == 0) {
        rc = pshm_block_attach(out, pshm_block_name(pshm_list_block(l)), 0);
        pshm_list_free(l);
    }
    return rc;
}

/* Answer one request into c->out. Lock held. */
static void do_request(struct wserver *s, struct wclient *c, const proto_request *req)
{
    pshm_block *b = NULL;
    int rc = 0;
    switch (req->kind) {
    case REQ_CREATE_BLOCK:
    case REQ_CREATE_LIST:
        rc = req->kind == REQ_CREATE_BLOCK ? create_block(req->size, &b)
                                           : create_list(req, &b);
        if (rc == 0 && (rc = owned_add(&s->owned, b)) == 0)
            proto_put_ok_name(&c->out, b->name);
        break;
    case REQ_RELEASE: {
        char bare[PSHM_NAME_MAX + 1];
        memcpy(bare, req->name.ptr, req->name.len);
        bare[req->name.len] = '\0';
        if ((b = owned_take(&s->owned, bare)) == NULL) {
            proto_put_error(&c->out, PSHM_ENOENT,
                            "release: the server owns no block by that name");
            return;
        }
        pshm_block_free(b);
        proto_put_ok(&c->out);
        break;
    }
    case REQ_NAMES:
        if (!owned_put_names(&s->owned, &c->out))
            proto_put_error(&c->out, PSHM_ELIMIT, "names: out of memory");
        break;
    case REQ_SHUTDOWN:
        owned_unlink_all(&s->owned);
        proto_put_ok(&c->out);
        SetEvent(s->stop);
        break;
    }
    if (rc < 0)
        proto_put_error(&c->out, rc, pshm_last_error());
}

static void serve_client(struct wclient *c)
{
    struct wserver *s = c->s;
    char peer[32];
    snprintf(peer, sizeof peer, "connection %llu", c->serial);
    uint32_t len;
    while (recv_frame(c, PROTO_MAX_FRAME, -1, &len)) {
        proto_request req;
        if (proto_get_request(c->in, len, &req, peer) < 0) {
            proto_put_error(&c->out, PSHM_EPROTO, pshm_last_error());
            send_out(c);
            return;
        }
        AcquireSRWLockExclusive(&s->lock);
        do_request(s, c, &req);
        ReleaseSRWLockExclusive(&s->lock);
        proto_request_clear(&req);
        if (!send_out(c))
            return;
    }
}

static unsigned __stdcall client_thread(void *arg)
{
    struct wclient *c = arg;
    c->in = malloc(4096);
    c->in_cap = c->in ? 4096 : 0;
    if (handshake(c))
        serve_client(c);
    tr_close(&c->conn);
    proto_buf_free(&c->out);
    free(c->in);
    free(c);
    return 0;
}

/* ---- accepting --------------------------------------------------------- */

/* A free thread slot (finished threads' handles are closed), or -1. */
static int free_slot(struct wserver *s)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (s->threads[i] != NULL && WaitForSingleObject(s->threads[i], 0) == WAIT_OBJECT_0) {
            CloseHandle(s->threads[i]);
            s->threads[i] = NULL;
        }
        if (s->threads[i] == NULL)
            return i;
    }
    return -1;
}

/* Serve a new connection in its own thread, or tell it we are full. */
static void take_connection(struct wserver *s, os_conn conn)
{
    struct wclient *c = calloc(1, sizeof *c);
    int slot = free_slot(s);
    if (c == NULL || slot < 0) {
        proto_buf b = {0};
        const char *why;
        if (proto_put_hello(&b, HELLO_BUSY, NULL, "the server is busy"))
            tr_send_all(&conn, b.data, b.len, &why);
        proto_buf_free(&b);
        tr_close(&conn);
        free(c);
        return;
    }
    *c = (struct wclient){.s = s, .conn = conn, .serial = ++s->next_serial};
    uintptr_t t = _beginthreadex(NULL, 0, client_thread, c, 0, NULL);
    if (t == 0) {
        tr_close(&c->conn);
        free(c);
        return;
    }
    s->threads[slot] = (HANDLE)t;
}

/* Make the next pipe instance and start waiting for its client. */
static int listen_pipe(struct wserver *s, bool first)
{
    wchar_t path[300];
    int rc = win_pipe_path("serve", s->address, s->addr.path, path);
    if (rc < 0)
        return rc;
    /* FILE_FLAG_FIRST_PIPE_INSTANCE refuses a name another server holds;
     * Wine does not enforce it, so ask first as well. */
    if (first && (WaitNamedPipeW(path, 1) || GetLastError() != ERROR_FILE_NOT_FOUND))
        return err_set(PSHM_EADDR, "serve \"%s\": the pipe already exists", s->address);
    s->pipe = CreateNamedPipeW(path,
                               PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                                   (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                               PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                                   PIPE_REJECT_REMOTE_CLIENTS,
                               PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER, PIPE_BUFFER, 0, NULL);
    if (s->pipe == INVALID_HANDLE_VALUE) {
        s->pipe = NULL;
        DWORD e = GetLastError();
        return first && e == ERROR_ACCESS_DENIED
                   ? err_set(PSHM_EADDR, "serve \"%s\": the pipe already exists", s->address)
                   : err_win(e, "serve", s->address, "CreateNamedPipeW");
    }
    memset(&s->accept, 0, sizeof s->accept);
    s->accept.hEvent = s->accept_ev;
    ResetEvent(s->accept_ev);
    s->connected = false;
    if (!ConnectNamedPipe(s->pipe, &s->accept)) {
        DWORD e = GetLastError();
        if (e == ERROR_PIPE_CONNECTED) { /* a client came between create and connect */
            s->connected = true;
            SetEvent(s->accept_ev);
        } else if (e != ERROR_IO_PENDING) {
            return err_win(e, "serve", s->address, "ConnectNamedPipe");
        }
    }
    return 0;
}

static int listen_tcp(struct wserver *s)
{
    int rc = win_sockets_init("serve");
    if (rc < 0)
        return rc;
    struct sockaddr_storage ss;
    int len = proto_addr_sockaddr(&s->addr, &ss);
    s->listener = WSASocketW(s->addr.family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                             WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s->listener == INVALID_SOCKET)
        return err_win((unsigned long)WSAGetLastError(), "serve", s->address, "socket");
    BOOL one = TRUE; /* no other socket may take over our port */
    setsockopt(s->listener, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof one);
    if (bind(s->listener, (struct sockaddr *)&ss, len) != 0) {
        int e = WSAGetLastError();
        return e == WSAEADDRINUSE || e == WSAEADDRNOTAVAIL || e == WSAEACCES
                   ? err_set(PSHM_EADDR,
                             "serve \"%s\": bind: the address is in use or "
                             "not available here",
                             s->address)
                   : err_win((unsigned long)e, "serve", s->address, "bind");
    }
    if (getsockname(s->listener, (struct sockaddr *)&ss, &len) != 0 ||
        listen(s->listener, SOMAXCONN) != 0 ||
        WSAEventSelect(s->listener, s->accept_ev, FD_ACCEPT) != 0)
        return err_win((unsigned long)WSAGetLastError(), "serve", s->address, "listen");
    s->addr.port = proto_sockaddr_port(&s->addr, &ss);
    proto_addr_format(&s->addr, s->address); /* with the port we were given */
    return 0;
}

/* The connection that set accept_ev, as an os_conn, or false. */
static bool accept_one(struct wserver *s, os_conn *conn)
{
    *conn = OS_CONN_CLOSED;
    conn->event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (s->pipe != NULL) {
        DWORD done;
        bool ok = s->connected || GetOverlappedResult(s->pipe, &s->accept, &done, FALSE);
        conn->pipe = s->pipe;
        s->pipe = NULL;
        if (listen_pipe(s, false) < 0)
            fprintf(stderr, "pshm manager: %s\n", pshm_last_error());
        if (ok && conn->event != NULL)
            return true;
    } else {
        WSANETWORKEVENTS ev;
        WSAEnumNetworkEvents(s->listener, s->accept_ev, &ev);
        conn->sock = accept(s->listener, NULL, NULL);
        if (conn->sock != INVALID_SOCKET) {
            /* accept's socket inherits the listener's event selection and
             * non-blocking mode: undo both. */
            u_long blocking = 0;
            WSAEventSelect(conn->sock, NULL, 0);
            ioctlsocket(conn->sock, FIONBIO, &blocking);
            BOOL one = TRUE;
            setsockopt(conn->sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
            if (conn->event != NULL)
                return true;
        }
    }
    tr_close(conn);
    return false;
}

/* ---- the server -------------------------------------------------------- */

static HANDLE ctrl_stop; /* the stop event Ctrl-C sets, or NULL */

static BOOL WINAPI on_console_ctrl(DWORD type)
{
    (void)type;
    return ctrl_stop != NULL && SetEvent(ctrl_stop);
}

static int start_listening(struct wserver *s, const char *address)
{
    int rc;
    if (address != NULL) {
        rc = proto_addr_parse("serve", address, &s->addr);
    } else { /* a fresh pipe name, as CPython's default on Windows */
        uint8_t r[8];
        char text[64];
        rc = os_random_bytes(r, sizeof r);
        snprintf(text, sizeof text, "pipe:pshm-manager-%lu-%02x%02x%02x%02x%02x%02x%02x%02x",
                 (unsigned long)GetCurrentProcessId(), r[0], r[1], r[2], r[3], r[4], r[5],
                 r[6], r[7]);
        if (rc == 0)
            rc = proto_addr_parse("serve", text, &s->addr);
    }
    if (rc < 0)
        return rc;
    proto_addr_format(&s->addr, s->address);
    return s->addr.kind == ADDR_PIPE ? listen_pipe(s, true) : listen_tcp(s);
}

static void serve_loop(struct wserver *s, HANDLE starter)
{
    HANDLE waits[3] = {s->stop, s->accept_ev, starter};
    for (;;) {
        DWORD w = WaitForMultipleObjects(starter ? 3 : 2, waits, FALSE, INFINITE);
        if (w != WAIT_OBJECT_0 + 1)
            return; /* stop, the starter's exit, or a failed wait */
        os_conn conn;
        if (accept_one(s, &conn))
            take_connection(s, conn);
        else if (s->pipe == NULL && s->addr.kind == ADDR_PIPE)
            return; /* no instance left to accept on */
    }
}

/* Wake every connection's thread and wait for all of them. */
static void stop_clients(struct wserver *s)
{
    SetEvent(s->stop);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (s->threads[i] != NULL) {
            WaitForSingleObject(s->threads[i], INFINITE);
            CloseHandle(s->threads[i]);
        }
    }
}

int win_server_run(const char *address, const void *key, size_t keylen,
                   void (*ready)(const char *address, void *arg), void *arg, HANDLE starter,
                   bool ignore_ctrl)
{
    if (key == NULL || keylen == 0 || keylen > PSHM_AUTHKEY_MAX)
        return err_set(PSHM_EINVAL, "serve \"%s\": the key must be 1..%d bytes",
                       address ? address : "(default)", PSHM_AUTHKEY_MAX);
    struct wserver *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(PSHM_ELIMIT, "serve: out of memory");
    *s = (struct wserver){.key = key,
                          .keylen = keylen,
                          .handshake_ms = proto_handshake_ms(),
                          .listener = INVALID_SOCKET,
                          .lock = SRWLOCK_INIT};
    s->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    s->accept_ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    int rc = s->stop && s->accept_ev
                 ? start_listening(s, address)
                 : err_win(GetLastError(), "serve", "(events)", "CreateEventW");
    if (rc == 0) {
        if (!ignore_ctrl && ctrl_stop == NULL) {
            ctrl_stop = s->stop;
            SetConsoleCtrlHandler(on_console_ctrl, TRUE);
        }
        if (ready != NULL)
            ready(s->address, arg);
        serve_loop(s, starter);
        stop_clients(s);
        owned_unlink_all(&s->owned);
        if (ctrl_stop == s->stop) {
            SetConsoleCtrlHandler(on_console_ctrl, FALSE);
            ctrl_stop = NULL;
        }
    }
    if (s->listener != INVALID_SOCKET)
        closesocket(s->listener);
    if (s->pipe != NULL) {
        CancelIoEx(s->pipe, &s->accept);
        CloseHandle(s->pipe);
    }
    HANDLE events[2] = {s->stop, s->accept_ev};
    for (int i = 0; i < 2; i++)
        if (events[i] != NULL)
            CloseHandle(events[i]);
    free(s);
    return rc;
}

int pshm_manager_serve(const char *address, const void *key, size_t keylen,
                       void (*ready)(const char *address, void *arg), void *arg)
{
    return win_server_run(address, key, keylen, ready, arg, NULL, false);
}
