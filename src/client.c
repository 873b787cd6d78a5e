/*
 * client.c — manager handles: start a server process, connect, and the
 * requests. One long-lived connection per handle, authenticated once;
 * requests on a handle are serialised by its mutex, so threads may share it.
 * A connection that fails mid-request is closed for good (PSHM_ECONN from
 * then on): after a lost reply nobody knows what the server did.
 * Shared by every platform: the connection and the server process go
 * through manager.h's transport.
 */
#include "manager.h"

#include <limits.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a request busy-waits for its reply before sleeping. */
#define SPIN_US 50
/* How long the client waits for the server's side of the handshake. */
#define CLIENT_HANDSHAKE_MS 10000

struct pshm_manager {
    pthread_mutex_t lock; /* serialises requests: guards conn, out, in */
    os_conn conn;         /* the connection; closed once lost */
    char address[PROTO_ADDR_MAX];
    uint8_t key[PSHM_AUTHKEY_MAX];
    size_t keylen;
    os_server server; /* the server this handle started, or OS_SERVER_NONE */
    proto_buf out;
    uint8_t *in;                    /* received bytes: in_used of them are the frame */
    size_t in_cap, in_len, in_used; /* last returned, in_len all buffered */
};

/* ---- connection I/O ---------------------------------------------------- */

static int lost(pshm_manager *m, const char *what, const char *why)
{
    tr_close(&m->conn);
    return err_set(PSHM_ECONN, "%s \"%s\": %s", what, m->address, why);
}

static int send_all(pshm_manager *m, const char *what, const void *data, size_t len)
{
    const char *why;
    return tr_send_all(&m->conn, data, len, &why) < 0 ? lost(m, what, why) : 0;
}

/* Grow the receive buffer to hold at least `want` bytes. */
static int reserve_in(pshm_manager *m, const char *what, size_t want)
{
    if (want <= m->in_cap)
        return 0;
    size_t cap = want < 4096 ? 4096 : want;
    uint8_t *in = realloc(m->in, cap);
    if (in == NULL)
        return err_set(PSHM_ELIMIT, "%s \"%s\": out of memory for a reply of %zu bytes", what,
                       m->address, want);
    m->in = in;
    m->in_cap = cap;
    return 0;
}

/*
 * Before sleeping in recv for a reply, try for up to SPIN_US without
 * sleeping: the server usually answers within microseconds, and waking a
 * sleeping CPU (above all a halted virtual CPU) costs tens of them
 * (measured: a Unix socket round trip of 50 us idle, 4 us with both ends
 * polling). Bounded, only while a reply is due, and yielding each round so
 * the server gets the CPU if it needs ours (see server.c, wait_events).
 */
static void spin_for_reply(pshm_manager *m)
{
    int64_t end = monotonic_us() + SPIN_US;
    const char *why;
    while (monotonic_us() < end) {
        ptrdiff_t n = tr_recv(&m->conn, m->in + m->in_len, m->in_cap - m->in_len, 0, &why);
        if (n > 0)
            m->in_len += (size_t)n;
        if (n != TR_TIMEOUT)
            return; /* data, EOF or an error: the blocking recv reports it */
        sched_yield();
    }
}

/* Receive until `want` bytes are buffered, taking whatever each recv gives
 * (a small reply arrives in one call). deadline: ms, monotonic, -1 = none
 * (a request's reply: spin first). */
static int fill_in(pshm_manager *m, const char *what, size_t want, int64_t deadline)
{
    int rc = reserve_in(m, what, want);
    if (rc == 0 && deadline < 0 && m->in_len < want)
        spin_for_reply(m);
    while (rc == 0 && m->in_len < want) {
        const char *why;
        ptrdiff_t n = tr_recv(&m->conn, m->in + m->in_len, m->in_cap - m->in_len,
                              tr_timeout(deadline), &why);
        if (n == TR_TIMEOUT)
            return lost(m, what, "the server did not answer in time");
        if (n <= 0)
            return lost(m, what, n < 0 ? why : "the server closed the connection");
        m->in_len += (size_t)n;
    }
    return rc;
}

/* Receive one frame; *payload and *len describe it inside m->in until the next
 * receive. The length is checked against `limit` before the buffer grows. */
static int recv_frame(pshm_manager *m, const char *what, uint32_t limit,
                      const uint8_t **payload, size_t *len, int64_t deadline)
{
    /* Drop the previous frame; keep anything the server sent after it. */
    if (m->in_used > 0) {
        memmove(m->in, m->in + m->in_used, m->in_len - m->in_used);
        m->in_len -= m->in_used;
        m->in_used = 0;
    }
    int rc = fill_in(m, what, PROTO_HEADER_LEN, deadline);
    if (rc < 0)
        return rc;
    uint32_t n = proto_frame_length(m->in);
    if (n > limit) {
        lost(m, what, "");
        return err_set(PSHM_EPROTO,
                       "%s \"%s\": the server sent a message of %u bytes "
                       "(limit %u)",
                       what, m->address, n, limit);
    }
    if ((rc = fill_in(m, what, PROTO_HEADER_LEN + (size_t)n, deadline)) < 0)
        return rc;
    m->in_used = PROTO_HEADER_LEN + (size_t)n;
    *payload = m->in + PROTO_HEADER_LEN;
    *len = n;
    return 0;
}

/* Send the frame built in m->out. */
static int send_out(pshm_manager *m, const char *what)
{
    int rc = m->out.failed ? err_set(PSHM_ETOOBIG,
                                     "%s \"%s\": the request is larger than "
                                     "%u bytes",
                                     what, m->address, PROTO_MAX_FRAME)
                           : send_all(m, what, m->out.data, m->out.len);
    m->out.len = 0;
    m->out.failed = false;
    return rc;
}

/* ---- handshake --------------------------------------------------------- */

/* Copy peer-supplied text for a message, with control bytes made visible. */
static void clean_text(char *out, size_t cap, proto_text t)
{
    size_t n = t.len < cap - 1 ? t.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t.ptr[i];
        out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    out[n] = '\0';
}

static int read_hello(pshm_manager *m, int64_t deadline, proto_hello *hello)
{
    const uint8_t *p;
    size_t len;
    int rc = recv_frame(m, "connect", PROTO_MAX_HANDSHAKE, &p, &len, deadline);
    if (rc == 0)
        rc = proto_get_hello(p, len, hello, "connect");
    if (rc == 0 && hello->status == HELLO_BUSY) {
        char why[PROTO_MAX_TEXT + 1];
        clean_text(why, sizeof why, hello->reason);
        return err_set(PSHM_ECONN, "connect \"%s\": the server refused the connection: %s",
                       m->address, why);
    }
    return rc;
}

static int read_welcome(pshm_manager *m, int64_t deadline, const uint8_t *ours,
                        const uint8_t *theirs)
{
    const uint8_t *p;
    size_t len;
    proto_welcome w;
    int rc = recv_frame(m, "connect", PROTO_MAX_HANDSHAKE, &p, &len, deadline);
    if (rc == 0)
        rc = proto_get_welcome(p, len, &w, "connect");
    if (rc < 0)
        return rc;
    if (w.status == WELCOME_REFUSED) {
        char why[PROTO_MAX_TEXT + 1];
        clean_text(why, sizeof why, w.reason);
        return err_set(PSHM_EAUTH,
                       "connect \"%s\": authentication failed: the server refused "
                       "the handshake (%s)",
                       m->address, why);
    }
    if (!proto_mac_ok(w.mac, m->key, m->keylen, "server", ours, theirs))
        return err_set(PSHM_EAUTH,
                       "connect \"%s\": authentication failed: the server did not "
                       "prove it knows the key",
                       m->address);
    return 0;
}

/* Mutual challenge-response; see protocol.h. */
static int handshake(pshm_manager *m)
{
    int64_t deadline = monotonic_ms() + CLIENT_HANDSHAKE_MS;
    proto_hello hello;
    int rc = read_hello(m, deadline, &hello);
    if (rc < 0)
        return rc;
    uint8_t ours[PROTO_CHALLENGE_LEN], mac[PROTO_MAC_LEN];
    if (os_random_bytes(ours, sizeof ours) < 0)
        return err_set(PSHM_ESYS, "connect \"%s\": no random bytes for a challenge",
                       m->address);
    proto_mac(mac, m->key, m->keylen, "client", hello.challenge, ours);
    proto_put_auth(&m->out, mac, ours);
    rc = send_out(m, "connect");
    if (rc == 0)
        rc = read_welcome(m, deadline, ours, hello.challenge);
    return rc;
}

/* ---- handles ----------------------------------------------------------- */

static void handle_free(pshm_manager *m)
{
    tr_close(&m->conn);
    pthread_mutex_destroy(&m->lock);
    proto_buf_free(&m->out);
    free(m->in);
    os_memzero(m->key, sizeof m->key);
    free(m);
}

static int handle_new(pshm_manager **out, const char *what, const char *address,
                      const void *key, size_t keylen)
{
    if (key == NULL || keylen == 0 || keylen > PSHM_AUTHKEY_MAX)
        return err_set(PSHM_EINVAL, "%s \"%s\": the key must be 1..%d bytes", what,
                       address ? address : "(null)", PSHM_AUTHKEY_MAX);
    pshm_manager *m = calloc(1, sizeof *m);
    if (m == NULL)
        return err_set(PSHM_ELIMIT, "%s: out of memory", what);
    pthread_mutex_init(&m->lock, NULL);
    m->conn = OS_CONN_CLOSED;
    m->server = OS_SERVER_NONE;
    memcpy(m->key, key, keylen);
    m->keylen = keylen;
    *out = m;
    return 0;
}

/* Connect and authenticate the handle m to `address`. */
static int open_connection(pshm_manager *m, const char *address)
{
    proto_addr a;
    int rc = proto_addr_parse("connect", address, &a);
    if (rc < 0)
        return rc;
    proto_addr_format(&a, m->address);
    if (os_crypto_init() < 0)
        return err_set(PSHM_ESYS, "connect \"%s\": the crypto library failed to initialise",
                       address);
    rc = tr_connect(&m->conn, &a, m->address);
    if (rc == 0 && (rc = handshake(m)) < 0)
        tr_close(&m->conn);
    return rc;
}

int pshm_manager_connect(pshm_manager **out, const char *address, const void *key,
                         size_t keylen)
{
    if (out == NULL)
        return err_set(PSHM_EINVAL, "connect: NULL handle pointer");
    *out = NULL;
    pshm_manager *m = NULL;
    int rc = handle_new(&m, "connect", address, key, keylen);
    if (rc < 0)
        return rc;
    if ((rc = open_connection(m, address)) < 0) {
        handle_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

const char *pshm_manager_address(const pshm_manager *m) { return m ? m->address : NULL; }

const void *pshm_manager_authkey(const pshm_manager *m, size_t *len)
{
    if (len != NULL)
        *len = m ? m->keylen : 0;
    return m ? m->key : NULL;
}

/* ---- requests ---------------------------------------------------------- */

/*
 * Send the request built in m->out and decode the reply into *resp (which
 * points into m->in: use it before unlocking). An ERROR reply becomes the
 * server's code with its message. Lock held.
 */
static int call(pshm_manager *m, const char *what, proto_response *resp)
{
    memset(resp, 0, sizeof *resp); /* clearable whatever happens below */
    if (!tr_is_open(&m->conn)) {
        m->out.len = 0;
        return err_set(PSHM_ECONN, "%s \"%s\": the connection was lost earlier", what,
                       m->address);
    }
    const uint8_t *p;
    size_t len;
    int rc = send_out(m, what);
    if (rc == 0)
        rc = recv_frame(m, what, PROTO_MAX_FRAME, &p, &len, -1);
    if (rc == 0 && (rc = proto_get_response(p, len, resp, what)) < 0) {
        /* The decoder's message says what was wrong; keep it. */
        char why[256];
        snprintf(why, sizeof why, "%s", pshm_last_error());
        lost(m, what, why);
        return err_set(rc, "%s \"%s\": %s", what, m->address, why);
    }
    if (rc < 0)
        return rc;
    if (resp->kind == RESP_ERROR) {
        char why[PROTO_MAX_TEXT + 1];
        clean_text(why, sizeof why, resp->message);
        /* Only codes this library knows reach the caller. */
        bool known = strcmp(pshm_strerror(resp->code), pshm_strerror(INT_MIN)) != 0;
        return err_set(known ? resp->code : PSHM_EPROTO, "%s \"%s\": the server says: %s",
                       what, m->address, why);
    }
    return 0;
}

/* A reply of the wrong kind is a protocol violation: drop the connection. */
static int expect(pshm_manager *m, const char *what, const proto_response *resp,
                  proto_response_kind kind)
{
    if (resp->kind == kind)
        return 0;
    lost(m, what, "");
    return err_set(PSHM_EPROTO, "%s \"%s\": unexpected kind of reply from the server", what,
                   m->address);
}

/* Send the request in m->out and copy the OK_NAME reply into name. Lock held. */
static int call_for_name(pshm_manager *m, const char *what, char name[PSHM_NAME_MAX + 1])
{
    proto_response resp;
    int rc = call(m, what, &resp);
    if (rc == 0 && (rc = expect(m, what, &resp, RESP_OK_NAME)) == 0) {
        memcpy(name, resp.name.ptr, resp.name.len);
        name[resp.name.len] = '\0';
    }
    proto_response_clear(&resp);
    return rc;
}

/* After a failed attach, give the block back so it does not linger. */
static int release_quietly(pshm_manager *m, const char *name, int attach_rc)
{
    char saved[512];
    snprintf(saved, sizeof saved, "%s", pshm_last_error());
    pshm_manager_release(m, name);
    return err_set(attach_rc, "%s", saved);
}

int pshm_manager_block(pshm_manager *m, size_t size, pshm_block **out)
{
    if (m == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "block: NULL manager or handle pointer");
    *out = NULL;
    char name[PSHM_NAME_MAX + 1];
    pthread_mutex_lock(&m->lock);
    proto_put_create_block(&m->out, size);
    int rc = call_for_name(m, "block", name);
    pthread_mutex_unlock(&m->lock);
    /* The server owns the block's life: our handle must not be tracked. */
    if (rc == 0 && (rc = pshm_block_attach(out, name, PSHM_UNTRACKED)) < 0)
        rc = release_quietly(m, name, rc);
    return rc;
}

int pshm_manager_list(pshm_manager *m, const pshm_value *values, size_t n, pshm_list **out)
{
    if (m == NULL || out == NULL || (values == NULL && n > 0))
        return err_set(PSHM_EINVAL, "list: NULL manager, values or handle pointer");
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        int rc = value_check(&values[i], "list", m->address, (int64_t)i);
        if (rc < 0)
            return rc;
    }
    if (n > PROTO_MAX_ITEMS)
        return err_set(PSHM_ETOOBIG,
                       "list \"%s\": %zu items; a manager list holds at most %u", m->address,
                       n, PROTO_MAX_ITEMS);
    char name[PSHM_NAME_MAX + 1];
    pthread_mutex_lock(&m->lock);
    proto_put_create_list(&m->out, values, n);
    int rc = call_for_name(m, "list", name);
    pthread_mutex_unlock(&m->lock);
    if (rc == 0 && (rc = pshm_list_attach(out, name, PSHM_UNTRACKED)) < 0)
        rc = release_quietly(m, name, rc);
    return rc;
}

void pshm_names_free(char **names, size_t count)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static int copy_names(const proto_response *resp, char ***names, size_t *count)
{
    char **copy = calloc(resp->count ? resp->count : 1, sizeof *copy);
    if (copy == NULL)
        return err_set(PSHM_ELIMIT, "names: out of memory");
    for (size_t i = 0; i < resp->count; i++) {
        /* Not strndup: the name is a span inside the frame, not a C string. */
        size_t len = resp->names[i].len;
        copy[i] = malloc(len + 1);
        if (copy[i] != NULL) {
            memcpy(copy[i], resp->names[i].ptr, len);
            copy[i][len] = '\0';
        }
        if (copy[i] == NULL) {
            pshm_names_free(copy, i);
            return err_set(PSHM_ELIMIT, "names: out of memory");
        }
    }
    *names = copy;
    *count = resp->count;
    return 0;
}

int pshm_manager_names(pshm_manager *m, char ***names, size_t *count)
{
    if (m == NULL || names == NULL || count == NULL)
        return err_set(PSHM_EINVAL, "names: NULL manager or result pointer");
    *names = NULL;
    *count = 0;
    proto_response resp;
    pthread_mutex_lock(&m->lock);
    proto_put_simple(&m->out, REQ_NAMES);
    int rc = call(m, "names", &resp);
    if (rc == 0 && (rc = expect(m, "names", &resp, RESP_OK_NAMES)) == 0)
        rc = copy_names(&resp, names, count);
    proto_response_clear(&resp);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Send the request in m->out; the reply must be a bare OK. Lock held. */
static int call_for_ok(pshm_manager *m, const char *what)
{
    proto_response resp;
    int rc = call(m, what, &resp);
    if (rc == 0)
        rc = expect(m, what, &resp, RESP_OK);
    proto_response_clear(&resp);
    return rc;
}

int pshm_manager_release(pshm_manager *m, const char *name)
{
    if (m == NULL)
        return err_set(PSHM_EINVAL, "release: NULL manager");
    char bare[PSHM_NAME_MAX + 1];
    int rc = name_normalize("release", name, bare);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&m->lock);
    proto_put_release(&m->out, bare);
    rc = call_for_ok(m, "release");
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---- starting a server ------------------------------------------------- */

int pshm_manager_start(pshm_manager **out, const char *address, const void *key,
                       size_t keylen)
{
    if (out == NULL)
        return err_set(PSHM_EINVAL, "start: NULL handle pointer");
    *out = NULL;
    uint8_t fresh[PSHM_AUTHKEY_LEN];
    if (os_crypto_init() < 0)
        return err_set(PSHM_ESYS, "start: the crypto library failed to initialise");
    if (key == NULL && keylen == 0) {
        if (os_random_bytes(fresh, sizeof fresh) < 0)
            return err_set(PSHM_ESYS, "start: no random bytes for a key");
        key = fresh;
        keylen = sizeof fresh;
    }
    pshm_manager *m = NULL;
    proto_addr parsed;
    int rc = address ? proto_addr_parse("start", address, &parsed) : 0;
    if (rc == 0)
        rc = handle_new(&m, "start", address, key, keylen);
    os_memzero(fresh, sizeof fresh);
    if (rc < 0)
        return rc;
    char actual[PROTO_ADDR_MAX];
    if ((rc = tr_spawn_server(&m->server, address, m->key, m->keylen, actual)) == 0 &&
        (rc = open_connection(m, actual)) < 0)
        tr_stop_server(&m->server);
    if (rc < 0) {
        tr_reap_server(&m->server);
        handle_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int pshm_manager_shutdown(pshm_manager *m)
{
    if (m == NULL)
        return err_set(PSHM_EINVAL, "shutdown: NULL manager");
    pthread_mutex_lock(&m->lock);
    proto_put_simple(&m->out, REQ_SHUTDOWN);
    int rc = call_for_ok(m, "shutdown");
    pthread_mutex_unlock(&m->lock);
    if (rc < 0)
        tr_stop_server(&m->server); /* it unlinks everything then too */
    tr_reap_server(&m->server);
    handle_free(m);
    return rc;
}

/*
 * A handle that started the server leaves the lifeline's write end open on
 * purpose: the server keeps running, as documented, until shutdown from
 * another handle or until this process exits. (The server stays our child;
 * it is reaped when this process exits.)
 */
void pshm_manager_disconnect(pshm_manager *m)
{
    if (m != NULL)
        handle_free(m);
}

int pshm_manager_with(const char *address, const void *key, size_t keylen,
                      int (*fn)(pshm_manager *m, void *arg), void *arg)
{
    if (fn == NULL)
        return err_set(PSHM_EINVAL, "with: NULL function");
    pshm_manager *m = NULL;
    int rc = pshm_manager_start(&m, address, key, keylen);
    if (rc < 0)
        return rc;
    int result = fn(m, arg);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", pshm_last_error());
    rc = pshm_manager_shutdown(m);
    if (rc < 0 && result >= 0)
        return rc;
    if (result < 0)
        err_set(result, "%s", saved); /* fn's failure is the one to report */
    return result;
}
