/*
 * server.c — the manager server: one thread, one poll() loop.
 *
 * The server owns blocks on behalf of its clients, like CPython's
 * SharedMemoryManager. It creates each block (or list) itself, tracked by
 * its own resource tracker, and closes its own mapping at once: the server
 * never holds a block's flock, so if the server is killed its tracker
 * removes every block that no client still has open, and waits for the
 * rest. It keeps each block's handle (name, device, inode) to unlink it on
 * RELEASE, SHUTDOWN, SIGTERM/SIGINT or the starter's death.
 *
 * Connections are non-blocking with an input and an output buffer each.
 * Invariants that keep one client from hurting the others or the server:
 *  - a frame's length is checked against the limit for the connection's
 *    state before any memory is reserved for it (tiny before the key is
 *    proven, PROTO_MAX_FRAME after);
 *  - a client is read from only while its output is empty, and one request
 *    is answered at a time, so its output never holds more than one reply;
 *  - a connection that has not authenticated within the handshake timeout,
 *    or sends anything malformed, gets a short refusal and is dropped; a
 *    refusal it does not read within the same timeout is abandoned;
 *  - a new connection is always taken while any slot holds an
 *    unauthenticated one: the oldest of those makes room (make_room), so
 *    strangers cannot lock key holders out, and authenticated clients are
 *    never evicted;
 *  - the slots and the descriptors they need fit RLIMIT_NOFILE, checked
 *    before the address is announced (size_slots).
 */
#include "manager.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Connection slots: at most this many, fewer if RLIMIT_NOFILE is low, but
 * never fewer than MIN_CLIENTS (the server refuses to start instead). */
#define MAX_CLIENTS 64
#define MIN_CLIENTS 4
/* Descriptors the server needs besides its connections: one to accept a
 * connection before a slot is found for it, and, while a block is created,
 * the block's own plus the two of the tracker's socketpair (one of them kept
 * once the tracker runs). */
#define RESERVE_FDS 3
/* Connections accepted per loop round at most, so that a flood of them
 * cannot keep the loop from reading the connections it has. */
#define ACCEPT_BATCH 16
/* How long the server stops accepting after accept() failed for want of
 * descriptors or memory: the pending connection keeps the listening socket
 * readable, so retrying at once would spin. */
#define ACCEPT_PAUSE_MS 100
/* Buffers that grew past this are released once empty. */
#define KEEP_BUFFER (1u << 20)
/* How long the replies already queued may take to leave at exit. */
#define EXIT_FLUSH_MS 1000
#define SOCKET_FILE "manager.sock"
/* Largest block size the server makes a spare of ahead of demand. */
#define SPARE_MAX (1u << 20)
/* How long the loop busy-polls after serving, before it sleeps (see
 * wait_events). */
#define SPIN_US 50

/* ---- server state ------------------------------------------------------ */

enum client_state { CLIENT_FREE, CLIENT_HANDSHAKE, CLIENT_READY };

struct client {
    int fd;
    enum client_state state;
    bool closing;     /* send what is queued, then drop */
    int64_t deadline; /* ms; handshake or closing connections only */
    uint8_t challenge[PROTO_CHALLENGE_LEN];
    uint8_t *in; /* received, not yet processed bytes */
    size_t in_len, in_cap;
    proto_buf out; /* queued reply bytes; out_sent of them are gone */
    size_t out_sent;
    unsigned long long serial; /* accept order; names the connection in messages */
};

struct server {
    const void *key;
    size_t keylen;
    int listen_fd;
    proto_addr addr;
    char address[PROTO_ADDR_MAX];
    char tmpdir[PROTO_ADDR_MAX]; /* our private directory, or "" */
    bool made_socket_file;
    int starter_fd, starter_pidfd;
    int handshake_ms;
    pshm_block *spare;   /* a closed block made ahead of demand, or NULL */
    uint64_t spare_size; /* make a spare of this size next; 0: none */
    bool stopping;
    int64_t accept_resume_ms; /* accepting paused until then; 0: not paused */
    unsigned long long next_serial;
    owned_table owned;
    size_t nslots; /* clients[0..nslots) are in use (size_slots) */
    struct client clients[MAX_CLIENTS];
};

static void client_drop(struct client *c, const char *why)
{
    if (why != NULL)
        fprintf(stderr, "pshm manager: dropped connection %llu: %s\n", c->serial, why);
    close(c->fd);
    free(c->in);
    proto_buf_free(&c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Queue a refusal of the right kind for the connection's state, then close. */
static void client_refuse(struct server *s, struct client *c, int code, const char *why)
{
    if (c->state == CLIENT_HANDSHAKE)
        proto_put_welcome(&c->out, WELCOME_REFUSED, NULL, why);
    else
        proto_put_error(&c->out, code, why);
    fprintf(stderr, "pshm manager: refusing connection %llu: %s\n", c->serial, why);
    c->closing = true;
    c->deadline = monotonic_ms() + s->handshake_ms;
}

/* ---- requests ---------------------------------------------------------- */

static void reply_failure(struct client *c, int code)
{
    proto_put_error(&c->out, code, pshm_last_error());
}

/*
 * A new block of `size` bytes, created tracked and closed (we hold no
 * flock, so only clients keep it alive). Its pages are reserved, so a full
 * /dev/shm is a clean error for the client that asked, and no client's
 * write into the block can raise SIGBUS.
 */
static int create_closed(uint64_t size, pshm_block **out)
{
    if ((uint64_t)(size_t)size != size)
        return err_set(PSHM_EBADSIZE, "create: size %llu is too large",
                       (unsigned long long)size);
    return block_create_closed(out, (size_t)size);
}

static void drop_spare(struct server *s)
{
    if (s->spare != NULL) {
        pshm_block_unlink(s->spare);
        pshm_block_free(s->spare);
        s->spare = NULL;
    }
}

/*
 * Clients tend to ask for the same size again, so once a CREATE_BLOCK reply
 * is out the server makes the next block of that size while the client is
 * busy attaching: the next request of that size is answered without
 * creating anything. The spare is tracked like any block (our tracker
 * removes it if we are killed), is not listed by NAMES, and is unlinked on
 * shutdown.
 */
static void make_spare(struct server *s)
{
    uint64_t size = s->spare_size;
    s->spare_size = 0;
    if (s->spare != NULL && s->spare->size == size)
        return;
    drop_spare(s);
    if (create_closed(size, &s->spare) < 0)
        s->spare = NULL; /* only an optimisation: requests create their own */
}

static void do_create_block(struct server *s, struct client *c, uint64_t size)
{
    pshm_block *b = NULL;
    int rc = 0;
    if (s->spare != NULL && s->spare->size == size) {
        b = s->spare;
        s->spare = NULL;
    } else {
        drop_spare(s); /* its reserved pages may be the room this block needs */
        rc = create_closed(size, &b);
    }
    if (rc == 0 && (rc = owned_add(&s->owned, b)) == 0) {
        proto_put_ok_name(&c->out, b->name);
        s->spare_size = size <= SPARE_MAX ? size : 0;
    } else {
        reply_failure(c, rc);
    }
}

/* A closed handle with the identity (name, device, inode) of `open`, so the
 * list's block can be unlinked after the list handle is gone. */
static pshm_block *closed_copy(const pshm_block *open)
{
    pshm_block *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    memcpy(b->name, open->name, sizeof b->name);
    b->fd = -1;
    b->size = open->size;
    b->flags = open->flags;
    b->dev = open->dev;
    b->ino = open->ino;
    return b;
}

static void do_create_list(struct server *s, struct client *c, const proto_request *req)
{
    pshm_list *l;
    int rc = pshm_list_create(&l, NULL, req->values, req->count, 0);
    if (rc < 0) {
        reply_failure(c, rc);
        return;
    }
    pshm_block *b = closed_copy(pshm_list_block(l));
    if (b == NULL) {
        pshm_block_unlink(pshm_list_block(l));
        rc = err_set(PSHM_ELIMIT, "create list: out of memory");
    }
    pshm_list_free(l);
    if (rc == 0 && (rc = owned_add(&s->owned, b)) == 0)
        proto_put_ok_name(&c->out, b->name);
    else
        reply_failure(c, rc);
}

static void do_release(struct server *s, struct client *c, proto_text name)
{
    char bare[PSHM_NAME_MAX + 1];
    memcpy(bare, name.ptr, name.len);
    bare[name.len] = '\0';
    pshm_block *b = owned_take(&s->owned, bare);
    if (b == NULL) {
        proto_put_error(&c->out, PSHM_ENOENT,
                        "release: the server owns no block by that name");
        return;
    }
    int rc = pshm_block_unlink(b);
    if (rc == 0)
        proto_put_ok(&c->out);
    else
        reply_failure(c, rc);
    pshm_block_free(b); /* closed already: nothing but the handle to free */
}

static void do_names(struct server *s, struct client *c)
{
    if (!owned_put_names(&s->owned, &c->out))
        proto_put_error(&c->out, PSHM_ELIMIT, "names: out of memory");
}

/* How messages name a client: by its connection number. */
typedef char peer_name_t[32];

static const char *peer_name(peer_name_t out, const struct client *c)
{
    snprintf(out, sizeof(peer_name_t), "connection %llu", c->serial);
    return out;
}

static void do_request(struct server *s, struct client *c, const uint8_t *p, size_t len)
{
    peer_name_t peer;
    peer_name(peer, c);
    proto_request req;
    if (proto_get_request(p, len, &req, peer) < 0) {
        client_refuse(s, c, PSHM_EPROTO, pshm_last_error());
        return;
    }
    switch (req.kind) {
    case REQ_CREATE_BLOCK: do_create_block(s, c, req.size); break;
    case REQ_CREATE_LIST: do_create_list(s, c, &req); break;
    case REQ_RELEASE: do_release(s, c, req.name); break;
    case REQ_NAMES: do_names(s, c); break;
    case REQ_SHUTDOWN:
        owned_unlink_all(&s->owned);
        drop_spare(s);
        proto_put_ok(&c->out);
        s->stopping = true;
        break;
    }
    proto_request_clear(&req);
    if (c->out.failed)
        client_refuse(s, c, PSHM_ELIMIT, "out of memory for the reply");
}

static void do_auth(struct server *s, struct client *c, const uint8_t *p, size_t len)
{
    peer_name_t peer;
    peer_name(peer, c);
    proto_auth auth;
    if (proto_get_auth(p, len, &auth, peer) < 0) {
        client_refuse(s, c, PSHM_EPROTO, pshm_last_error());
    } else if (auth.version != PROTO_VERSION) {
        client_refuse(s, c, PSHM_EPROTO, "unsupported protocol version");
    } else if (!proto_mac_ok(auth.mac, s->key, s->keylen, "client", c->challenge,
                             auth.challenge)) {
        client_refuse(s, c, PSHM_EAUTH, "authentication failed: wrong key");
    } else {
        uint8_t mac[PROTO_MAC_LEN];
        proto_mac(mac, s->key, s->keylen, "server", auth.challenge, c->challenge);
        proto_put_welcome(&c->out, WELCOME_OK, mac, NULL);
        c->state = CLIENT_READY;
        c->deadline = 0;
    }
}

/* ---- connection I/O ---------------------------------------------------- */

/* Send what is queued; false if the connection was dropped. */
static bool client_flush(struct client *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0) {
            client_drop(c, c->closing ? NULL : "the connection broke while sending");
            return false;
        }
        c->out_sent += (size_t)n;
    }
    c->out_sent = 0;
    c->out.len = 0;
    if (c->out.cap > KEEP_BUFFER)
        proto_buf_free(&c->out);
    if (c->closing) {
        client_drop(c, NULL);
        return false;
    }
    return true;
}

/* Whether a declared frame length is acceptable in the connection's state;
 * if not, the client is refused. */
static bool frame_length_ok(struct server *s, struct client *c, uint32_t len)
{
    uint32_t limit = c->state == CLIENT_READY ? PROTO_MAX_FRAME : PROTO_MAX_HANDSHAKE;
    if (len <= limit)
        return true;
    char why[96];
    snprintf(why, sizeof why, "message of %u bytes exceeds the limit of %u", len, limit);
    client_refuse(s, c, PSHM_EPROTO, why);
    return false;
}

/* Answer complete frames one at a time while nothing is queued. */
static void client_process(struct server *s, struct client *c)
{
    size_t off = 0;
    while (!c->closing && !s->stopping && c->out.len == 0 &&
           c->in_len - off >= PROTO_HEADER_LEN) {
        /* Every header is judged as soon as it is in, complete frame or not. */
        uint32_t len = proto_frame_length(c->in + off);
        if (!frame_length_ok(s, c, len)) {
            client_flush(c);
            return;
        }
        if (c->in_len - off - PROTO_HEADER_LEN < len)
            break;
        const uint8_t *payload = c->in + off + PROTO_HEADER_LEN;
        off += PROTO_HEADER_LEN + len;
        if (c->state == CLIENT_HANDSHAKE)
            do_auth(s, c, payload, len);
        else
            do_request(s, c, payload, len);
        if (!client_flush(c))
            return;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->in_len == 0 && c->in_cap > KEEP_BUFFER) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* Make room for the frame being received; false (client refused) if its
 * declared length is over the limit, or memory ran out. */
static bool client_make_room(struct server *s, struct client *c)
{
    size_t want = 4096;
    if (c->in_len >= PROTO_HEADER_LEN) {
        uint32_t len = proto_frame_length(c->in);
        if (!frame_length_ok(s, c, len))
            return false;
        if (want < PROTO_HEADER_LEN + (size_t)len)
            want = PROTO_HEADER_LEN + (size_t)len;
    }
    if (c->in_cap - c->in_len > 0 && c->in_cap >= want)
        return true;
    size_t cap = want > c->in_len + 4096 ? want : c->in_len + 4096;
    uint8_t *in = realloc(c->in, cap);
    if (in == NULL) {
        client_refuse(s, c, PSHM_ELIMIT, "out of memory for the request");
        return false;
    }
    c->in = in;
    c->in_cap = cap;
    return true;
}

static void client_read(struct server *s, struct client *c)
{
    for (;;) {
        if (!client_make_room(s, c)) {
            client_flush(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            client_drop(c, c->in_len > 0 ? "closed in the middle of a message" : NULL);
            return;
        }
        bool drained = (size_t)n < c->in_cap - c->in_len; /* a short read */
        c->in_len += (size_t)n;
        client_process(s, c);
        /* After a short read the socket is most likely empty: poll says when
         * it is not, so we save the recv that would fail with EAGAIN. */
        if (c->fd < 0 || c->closing || c->out.len > 0 || drained)
            return;
    }
}

static void client_events(struct server *s, struct client *c, short revents)
{
    if ((revents & POLLOUT) && !client_flush(c))
        return;
    if (c->out.len == 0 && !c->closing)
        client_process(s, c); /* frames that waited for the last reply */
    if (c->fd >= 0 && (revents & (POLLIN | POLLHUP | POLLERR)) && c->out.len == 0 &&
        !c->closing)
        client_read(s, c);
    else if (c->fd >= 0 && (revents & (POLLHUP | POLLERR)) && c->out.len > 0)
        client_drop(c, NULL);
}

/* ---- accepting --------------------------------------------------------- */

static struct client *free_slot(struct server *s)
{
    for (size_t i = 0; i < s->nslots; i++)
        if (s->clients[i].state == CLIENT_FREE)
            return &s->clients[i];
    return NULL;
}

/* The unauthenticated connection (refused ones included) accepted longest
 * ago, or NULL if there is none. */
static struct client *oldest_unauthenticated(struct server *s)
{
    struct client *oldest = NULL;
    for (size_t i = 0; i < s->nslots; i++) {
        struct client *c = &s->clients[i];
        if (c->state == CLIENT_HANDSHAKE && (oldest == NULL || c->serial < oldest->serial))
            oldest = c;
    }
    return oldest;
}

/*
 * A slot for a connection just accepted; NULL only if every slot holds an
 * authenticated client. When all are taken, the oldest unauthenticated
 * connection is evicted: closed without a message, like a handshake
 * timeout. Evicting rather than refusing the newcomer means a flood of
 * strangers can shorten a key holder's handshake window but never keep it
 * out: a connection outlives at least the next S - A - 1 accepted ones (S
 * slots, A of them authenticated; see docs/manager.md). The victim's input
 * is read first, so an AUTH that has arrived counts even if the loop has not
 * read it yet. Evictions are not logged: under a flood, that would flood the
 * log as well.
 */
static struct client *make_room(struct server *s)
{
    for (;;) {
        struct client *c = free_slot(s);
        if (c != NULL)
            return c;
        c = oldest_unauthenticated(s);
        if (c == NULL)
            return NULL;
        if (c->out.len == 0 && !c->closing)
            client_read(s, c); /* may authenticate, refuse or drop it */
        if (c->state == CLIENT_HANDSHAKE)
            client_drop(c, NULL);
    }
}

/* Tell a connection we are full; best effort, the socket buffer is empty. */
static void refuse_busy(const struct server *s, int fd)
{
    proto_buf b = {0};
    char reason[64];
    snprintf(reason, sizeof reason, "the server is busy (%zu authenticated connections)",
             s->nslots);
    if (proto_put_hello(&b, HELLO_BUSY, NULL, reason))
        (void)!send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    proto_buf_free(&b);
    close(fd);
}

/* accept() failed for want of descriptors or memory, or for a reason we
 * cannot fix: the pending connection keeps the listening socket readable,
 * so stop polling it for a while instead of spinning. */
static void pause_accepting(struct server *s, int err)
{
    fprintf(stderr, "pshm manager: accept on %s: %s; not accepting for %d ms\n", s->address,
            strerror(err), ACCEPT_PAUSE_MS);
    s->accept_resume_ms = monotonic_ms() + ACCEPT_PAUSE_MS;
}

static void accept_clients(struct server *s)
{
    for (int taken = 0; taken < ACCEPT_BATCH; taken++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue; /* that connection is gone; the next one may be fine */
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pause_accepting(s, errno);
            return;
        }
        struct client *c = make_room(s);
        if (c == NULL) {
            refuse_busy(s, fd);
            continue;
        }
        if (s->addr.kind == ADDR_TCP) {
            int one = 1; /* replies are single small frames: send each at once */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->state = CLIENT_HANDSHAKE;
        c->serial = ++s->next_serial;
        c->deadline = monotonic_ms() + s->handshake_ms;
        randombytes_buf(c->challenge, sizeof c->challenge);
        if (!proto_put_hello(&c->out, HELLO_READY, c->challenge, NULL))
            client_drop(c, "out of memory");
        else
            client_flush(c);
    }
}

/* ---- signals ----------------------------------------------------------- */

/* SIGTERM/SIGINT write a byte here; the loop polls the read end. Only one
 * server per process may own the signals at a time. */
static int signal_pipe[2] = {-1, -1};
static atomic_bool signals_taken;

static void on_stop_signal(int sig)
{
    (void)sig;
    int saved = errno;
    (void)!write(signal_pipe[1], "s", 1);
    errno = saved;
}

struct saved_signals {
    struct sigaction term, intr;
};

static int take_signals(bool ignore_sigint, struct saved_signals *saved)
{
    if (atomic_exchange(&signals_taken, true))
        return err_set(PSHM_EINVAL, "serve: another manager server runs in this process");
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        atomic_store(&signals_taken, false);
        return err_errno(errno, "serve", "(signal pipe)", "pipe2");
    }
    struct sigaction stop = {.sa_handler = on_stop_signal};
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&stop.sa_mask);
    sigaction(SIGTERM, &stop, &saved->term);
    sigaction(SIGINT, ignore_sigint ? &ign : &stop, &saved->intr);
    return 0;
}

static void give_back_signals(const struct saved_signals *saved)
{
    sigaction(SIGTERM, &saved->term, NULL);
    sigaction(SIGINT, &saved->intr, NULL);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    signal_pipe[0] = signal_pipe[1] = -1;
    atomic_store(&signals_taken, false);
}

/* ---- listening --------------------------------------------------------- */

/* NULL address: a socket in a fresh private (0700) directory. */
static int default_address(struct server *s)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    char dir[PROTO_ADDR_MAX];
    if (snprintf(dir, sizeof dir, "%s/pshm-manager-XXXXXX", tmp) >= (int)sizeof dir)
        return err_set(PSHM_EADDR, "serve: TMPDIR \"%s\" is too long", tmp);
    if (mkdtemp(dir) == NULL)
        return err_errno(errno, "serve", dir, "mkdtemp");
    memcpy(s->tmpdir, dir, sizeof dir);
    char text[PROTO_ADDR_MAX + 32];
    snprintf(text, sizeof text, "unix:%s/" SOCKET_FILE, dir);
    return proto_addr_parse("serve", text, &s->addr);
}

static int bind_unix(struct server *s)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, s->addr.path, strlen(s->addr.path) + 1);
    if (bind(s->listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0)
        return errno == EADDRINUSE
                   ? err_set(PSHM_EADDR, "serve \"%s\": the path already exists", s->address)
                   : err_errno(errno, "serve", s->address, "bind");
    s->made_socket_file = true;
    /* Before listen(), nobody can connect: 0600 is in place by the first
     * connection, without touching the process-wide umask. */
    if (chmod(s->addr.path, 0600) < 0)
        return err_errno(errno, "serve", s->address, "chmod");
    return 0;
}

static int bind_tcp(struct server *s)
{
    struct sockaddr_storage ss;
    socklen_t len = (socklen_t)proto_addr_sockaddr(&s->addr, &ss);
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s->listen_fd, (struct sockaddr *)&ss, len) < 0)
        return errno == EADDRINUSE || errno == EADDRNOTAVAIL
                   ? err_set(PSHM_EADDR, "serve \"%s\": bind: %s", s->address,
                             strerror(errno))
                   : err_errno(errno, "serve", s->address, "bind");
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &len) < 0)
        return err_errno(errno, "serve", s->address, "getsockname");
    s->addr.port = proto_sockaddr_port(&s->addr, &ss);
    return 0;
}

static int start_listening(struct server *s, const char *address)
{
    int rc = address ? proto_addr_parse("serve", address, &s->addr) : default_address(s);
    if (rc < 0)
        return rc;
    proto_addr_format(&s->addr, s->address);
    s->listen_fd = socket(s->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return err_errno(errno, "serve", s->address, "socket");
    rc = s->addr.kind == ADDR_UNIX ? bind_unix(s) : bind_tcp(s);
    if (rc < 0)
        return rc;
    proto_addr_format(&s->addr, s->address); /* with the port we were given */
    if (listen(s->listen_fd, 128) < 0)
        return err_errno(errno, "serve", s->address, "listen");
    return 0;
}

static void stop_listening(struct server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->made_socket_file)
        unlink(s->addr.path);
    if (s->tmpdir[0] != '\0')
        rmdir(s->tmpdir);
}

/* ---- the loop ---------------------------------------------------------- */

/* How many descriptors could be opened now, counted up to `enough` by
 * taking them (copies of fd) and giving them back. */
static size_t free_descriptors(int fd, size_t enough)
{
    int taken[MAX_CLIENTS + RESERVE_FDS];
    size_t n = 0;
    while (n < enough && (taken[n] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
        n++;
    for (size_t i = 0; i < n; i++)
        close(taken[i]);
    return n;
}

/*
 * As many slots as RLIMIT_NOFILE leaves descriptors for (after
 * RESERVE_FDS), at most MAX_CLIENTS: a connection beyond them could not be
 * accepted, and poll() fails (EINVAL) on more entries than the limit. The
 * fixed entries cannot push it over: the listening socket and the signal
 * pipe's two ends are among the descriptors already open. Runs before the
 * address is announced, so a server that cannot serve says so instead.
 */
static int size_slots(struct server *s)
{
    size_t spare = free_descriptors(s->listen_fd, MAX_CLIENTS + RESERVE_FDS);
    if (spare < MIN_CLIENTS + RESERVE_FDS) {
        struct rlimit rl = {0};
        getrlimit(RLIMIT_NOFILE, &rl);
        return err_set(PSHM_ELIMIT,
                       "serve \"%s\": only %zu file descriptors are free under "
                       "RLIMIT_NOFILE (%llu); the server needs %d",
                       s->address, spare, (unsigned long long)rl.rlim_cur,
                       MIN_CLIENTS + RESERVE_FDS);
    }
    s->nslots = spare - RESERVE_FDS;
    return 0;
}

enum { FIXED_LISTEN, FIXED_SIGNAL, FIXED_STARTER, FIXED_PIDFD, FIXED_COUNT };

static int poll_timeout(const struct server *s, int64_t now)
{
    int64_t soonest = s->accept_resume_ms != 0 ? s->accept_resume_ms : -1;
    for (size_t i = 0; i < s->nslots; i++) {
        const struct client *c = &s->clients[i];
        if (c->state != CLIENT_FREE && c->deadline != 0 &&
            (soonest < 0 || c->deadline < soonest))
            soonest = c->deadline;
    }
    if (soonest < 0)
        return -1;
    return soonest <= now ? 0 : (int)(soonest - now);
}

/* One pollfd per client slot (fd -1 when free, so poll skips it). */
static void fill_pollfds(const struct server *s, struct pollfd *pfd)
{
    pfd[FIXED_LISTEN] =
        (struct pollfd){s->accept_resume_ms != 0 ? -1 : s->listen_fd, POLLIN, 0};
    pfd[FIXED_SIGNAL] = (struct pollfd){signal_pipe[0], POLLIN, 0};
    pfd[FIXED_STARTER] = (struct pollfd){s->starter_fd, POLLIN, 0};
    pfd[FIXED_PIDFD] = (struct pollfd){s->starter_pidfd, POLLIN, 0};
    for (size_t i = 0; i < s->nslots; i++) {
        const struct client *c = &s->clients[i];
        short ev = c->out.len > 0 ? POLLOUT : POLLIN;
        pfd[FIXED_COUNT + i] = (struct pollfd){c->state == CLIENT_FREE ? -1 : c->fd, ev, 0};
    }
}

static void expire_deadlines(struct server *s)
{
    int64_t now = monotonic_ms();
    if (s->accept_resume_ms != 0 && s->accept_resume_ms <= now)
        s->accept_resume_ms = 0;
    for (size_t i = 0; i < s->nslots; i++) {
        struct client *c = &s->clients[i];
        if (c->state == CLIENT_FREE || c->deadline == 0 || c->deadline > now)
            continue;
        if (c->closing)
            client_drop(c, NULL);
        else
            client_drop(c, "no authentication within the handshake timeout");
    }
}

/*
 * Wait for events. Right after serving a request the next one usually
 * follows within microseconds (the client attaches, then releases), so we
 * first busy-poll for up to SPIN_US: a sleeping CPU, above all a halted
 * virtual CPU, takes tens of microseconds to wake (measured: a Unix socket
 * round trip of 50 us idle, 4 us with both ends polling). The spin is
 * bounded and only follows activity; an idle server sleeps in poll(). Each
 * round yields the CPU, so on a busy machine the spin never keeps the
 * client (or anyone) from running: without the yield, a 2-CPU box with one
 * CPU taken made a request cycle 4x slower instead of faster.
 */
static int wait_events(struct server *s, struct pollfd *pfd, bool just_served)
{
    int64_t spin_end = just_served ? monotonic_us() + SPIN_US : 0;
    for (;;) {
        int n = poll(pfd, FIXED_COUNT + s->nslots, 0);
        if (n == 0 && monotonic_us() < spin_end)
            sched_yield();
        if (n != 0 || monotonic_us() >= spin_end)
            return n != 0
                       ? n
                       : poll(pfd, FIXED_COUNT + s->nslots, poll_timeout(s, monotonic_ms()));
    }
}

static int serve_loop(struct server *s)
{
    struct pollfd pfd[FIXED_COUNT + MAX_CLIENTS];
    bool just_served = false;
    while (!s->stopping) {
        fill_pollfds(s, pfd);
        if (s->spare_size != 0)
            make_spare(s); /* the reply is out: the client is attaching */
        int n = wait_events(s, pfd, just_served);
        just_served = n > 0;
        if (n < 0 && errno != EINTR)
            return err_errno(errno, "serve", s->address, "poll");
        if (n <= 0) {
            expire_deadlines(s);
            continue;
        }
        /* A byte on the signal pipe, or EOF/exit of the starter: stop. */
        if (pfd[FIXED_SIGNAL].revents || pfd[FIXED_STARTER].revents ||
            pfd[FIXED_PIDFD].revents) {
            s->stopping = true;
            break;
        }
        for (size_t i = 0; i < s->nslots; i++)
            if (pfd[FIXED_COUNT + i].revents && s->clients[i].state != CLIENT_FREE)
                client_events(s, &s->clients[i], pfd[FIXED_COUNT + i].revents);
        if (pfd[FIXED_LISTEN].revents && !s->stopping)
            accept_clients(s);
        expire_deadlines(s);
    }
    return 0;
}

/* Give queued replies (SHUTDOWN's OK) a short while to leave, then close. */
static void close_all_clients(struct server *s)
{
    int64_t end = monotonic_ms() + EXIT_FLUSH_MS;
    for (size_t i = 0; i < s->nslots; i++) {
        struct client *c = &s->clients[i];
        while (c->state != CLIENT_FREE && c->out.len > 0 && monotonic_ms() < end) {
            c->closing = true;
            struct pollfd p = {c->fd, POLLOUT, 0};
            if (poll(&p, 1, (int)(end - monotonic_ms())) > 0)
                client_flush(c);
        }
        if (c->state != CLIENT_FREE)
            client_drop(c, NULL);
    }
}

int server_run(const char *address, const void *key, size_t keylen,
               void (*ready)(const char *address, void *arg), void *arg, int starter_fd,
               int starter_pidfd, bool ignore_sigint)
{
    if (key == NULL || keylen == 0 || keylen > PSHM_AUTHKEY_MAX)
        return err_set(PSHM_EINVAL, "serve \"%s\": the key must be 1..%d bytes",
                       address ? address : "(default)", PSHM_AUTHKEY_MAX);
    if (os_crypto_init() < 0)
        return err_set(PSHM_ESYS, "serve: libsodium failed to initialise");
    struct server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return err_set(PSHM_ELIMIT, "serve: out of memory");
    *s = (struct server){.key = key,
                         .keylen = keylen,
                         .listen_fd = -1,
                         .starter_fd = starter_fd,
                         .starter_pidfd = starter_pidfd,
                         .handshake_ms = proto_handshake_ms()};
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        s->clients[i].fd = -1;
    struct saved_signals saved;
    int rc = take_signals(ignore_sigint, &saved);
    if (rc == 0) {
        if ((rc = start_listening(s, address)) == 0 && (rc = size_slots(s)) == 0) {
            if (ready != NULL)
                ready(s->address, arg);
            rc = serve_loop(s);
        }
        owned_unlink_all(&s->owned);
        drop_spare(s);
        close_all_clients(s);
        give_back_signals(&saved);
    }
    stop_listening(s);
    free(s);
    return rc;
}

int pshm_manager_serve(const char *address, const void *key, size_t keylen,
                       void (*ready)(const char *address, void *arg), void *arg)
{
    return server_run(address, key, keylen, ready, arg, -1, -1, false);
}
