/*
 * protocol.c — encoders and bounds-checked decoders for the manager's wire
 * format (described in protocol.h), the handshake MACs, and addresses.
 */
#include "protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output buffer ----------------------------------------------------- */

/* A frame can never outgrow the limit: refuse before allocating for it. */
static void put_bytes(proto_buf *b, const void *p, size_t n)
{
    if (n > PROTO_MAX_FRAME + PROTO_HEADER_LEN)
        b->failed = true;
    else
        sb_puts(b, p, n);
}

static void put_u8(proto_buf *b, uint8_t v) { put_bytes(b, &v, 1); }

static void put_u32(proto_buf *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put_bytes(b, le, sizeof le);
}

static void put_u64(proto_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

/* len:u32 + bytes; a length that does not fit a u32 fails the buffer. */
static void put_blob(proto_buf *b, const char *p, size_t n)
{
    if (n > UINT32_MAX) {
        b->failed = true;
        return;
    }
    put_u32(b, (uint32_t)n);
    put_bytes(b, p, n);
}

static void put_text(proto_buf *b, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    put_blob(b, text, n > PROTO_MAX_TEXT ? PROTO_MAX_TEXT : n);
}

void proto_frame_begin(proto_buf *b) { put_u32(b, 0); }

bool proto_frame_end(proto_buf *b, size_t start)
{
    if (b->failed)
        return false;
    size_t payload = b->len - start - PROTO_HEADER_LEN;
    if (payload > PROTO_MAX_FRAME) {
        b->failed = true;
        return false;
    }
    for (int i = 0; i < 4; i++)
        b->data[start + (size_t)i] = (uint8_t)(payload >> (8 * i));
    return true;
}

uint32_t proto_frame_length(const uint8_t h[PROTO_HEADER_LEN])
{
    return (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
}

void proto_buf_free(proto_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* A failed frame leaves the buffer as it was before the frame began, so a
 * connection's pending output is never half a message. */
static bool frame_done(proto_buf *b, size_t start)
{
    if (proto_frame_end(b, start))
        return true;
    if (b->data != NULL && start <= b->len)
        b->len = start;
    return false;
}

/* ---- encoders ---------------------------------------------------------- */

bool proto_put_hello(proto_buf *b, uint8_t status, const uint8_t *challenge,
                     const char *reason)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_bytes(b, PROTO_MAGIC, 4);
    put_u8(b, PROTO_VERSION);
    put_u8(b, status);
    if (status == HELLO_READY)
        put_bytes(b, challenge, PROTO_CHALLENGE_LEN);
    else
        put_text(b, reason);
    return frame_done(b, start);
}

bool proto_put_auth(proto_buf *b, const uint8_t mac[PROTO_MAC_LEN],
                    const uint8_t challenge[PROTO_CHALLENGE_LEN])
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, PROTO_VERSION);
    put_bytes(b, mac, PROTO_MAC_LEN);
    put_bytes(b, challenge, PROTO_CHALLENGE_LEN);
    return frame_done(b, start);
}

bool proto_put_welcome(proto_buf *b, uint8_t status, const uint8_t *mac, const char *reason)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, status);
    if (status == WELCOME_OK)
        put_bytes(b, mac, PROTO_MAC_LEN);
    else
        put_text(b, reason);
    return frame_done(b, start);
}

bool proto_put_create_block(proto_buf *b, uint64_t size)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, REQ_CREATE_BLOCK);
    put_u64(b, size);
    return frame_done(b, start);
}

static void put_value(proto_buf *b, const pshm_value *v)
{
    put_u8(b, (uint8_t)v->type);
    switch (v->type) {
    case PSHM_INT: put_u64(b, (uint64_t)v->u.i); break;
    case PSHM_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->u.f, sizeof bits);
        put_u64(b, bits);
        break;
    }
    case PSHM_BOOL: put_u8(b, v->u.b ? 1 : 0); break;
    case PSHM_STR:
    case PSHM_BYTES: put_blob(b, v->u.s.ptr, v->u.s.len); break;
    case PSHM_NONE: break;
    default: b->failed = true; break; /* not a pshm_type */
    }
}

bool proto_put_create_list(proto_buf *b, const pshm_value *values, size_t n)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, REQ_CREATE_LIST);
    if (n > UINT32_MAX)
        b->failed = true;
    put_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n && !b->failed; i++)
        put_value(b, &values[i]);
    return frame_done(b, start);
}

bool proto_put_simple(proto_buf *b, proto_request_kind kind)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, (uint8_t)kind);
    return frame_done(b, start);
}

bool proto_put_release(proto_buf *b, const char *name)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, REQ_RELEASE);
    put_blob(b, name, strlen(name));
    return frame_done(b, start);
}

bool proto_put_ok(proto_buf *b)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, RESP_OK);
    return frame_done(b, start);
}

bool proto_put_ok_name(proto_buf *b, const char *name)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, RESP_OK_NAME);
    put_blob(b, name, strlen(name));
    return frame_done(b, start);
}

bool proto_put_ok_names(proto_buf *b, size_t count, const char *(*next)(void *arg), void *arg)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, RESP_OK_NAMES);
    if (count > UINT32_MAX)
        b->failed = true;
    put_u32(b, (uint32_t)count);
    for (size_t i = 0; i < count && !b->failed; i++) {
        const char *name = next(arg);
        put_blob(b, name, strlen(name));
    }
    return frame_done(b, start);
}

bool proto_put_error(proto_buf *b, int32_t code, const char *message)
{
    size_t start = b->len;
    proto_frame_begin(b);
    put_u8(b, RESP_ERROR);
    put_u32(b, (uint32_t)code);
    put_text(b, message);
    return frame_done(b, start);
}

/* ---- decoders ----------------------------------------------------------
 * A reader never moves past `end`; every get_* checks the remaining length
 * first and latches `bad` (with what was expected) on a short read. */

typedef struct reader {
    const uint8_t *p;
    size_t left;
    const char *bad; /* NULL while well-formed; else what was missing */
} reader;

static bool need(reader *r, size_t n, const char *what)
{
    if (r->bad != NULL)
        return false;
    if (r->left < n) {
        r->bad = what;
        return false;
    }
    return true;
}

static uint8_t get_u8(reader *r, const char *what)
{
    if (!need(r, 1, what))
        return 0;
    r->left--;
    return *r->p++;
}

static uint32_t get_u32(reader *r, const char *what)
{
    if (!need(r, 4, what))
        return 0;
    uint32_t v = proto_frame_length(r->p);
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t get_u64(reader *r, const char *what)
{
    uint64_t lo = get_u32(r, what);
    uint64_t hi = get_u32(r, what);
    return lo | hi << 32;
}

static void get_bytes(reader *r, void *out, size_t n, const char *what)
{
    if (!need(r, n, what)) {
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}

/* len:u32 + bytes, at most `max` bytes, as a view into the payload. */
static proto_text get_blob(reader *r, size_t max, const char *what)
{
    proto_text t = {"", 0};
    uint32_t n = get_u32(r, what);
    if (r->bad == NULL && n > max)
        r->bad = what;
    if (!need(r, n, what))
        return t;
    t.ptr = (const char *)r->p;
    t.len = n;
    r->p += n;
    r->left -= n;
    return t;
}

/* A block name: 1..PSHM_NAME_MAX bytes, no NUL (the name is then copied
 * into a NUL-terminated buffer and validated by name_normalize). */
static proto_text get_name(reader *r, const char *what)
{
    proto_text t = get_blob(r, PSHM_NAME_MAX, what);
    if (r->bad == NULL && (t.len == 0 || memchr(t.ptr, '\0', t.len) != NULL))
        r->bad = what;
    return t;
}

/* The verdict: malformed if anything was short or bytes are left over. */
static int finish(reader *r, const char *peer, const char *message)
{
    if (r->bad == NULL && r->left != 0)
        r->bad = "the end of the message (extra bytes follow)";
    if (r->bad == NULL)
        return 0;
    return err_set(PSHM_EPROTO, "%s: malformed %s message: bad or missing %s", peer, message,
                   r->bad);
}

int proto_get_hello(const uint8_t *p, size_t len, proto_hello *out, const char *peer)
{
    reader r = {p, len, NULL};
    memset(out, 0, sizeof *out);
    char magic[4];
    get_bytes(&r, magic, sizeof magic, "magic");
    if (r.bad == NULL && memcmp(magic, PROTO_MAGIC, 4) != 0)
        return err_set(PSHM_EPROTO, "%s: not a pshm manager (bad greeting)", peer);
    out->version = get_u8(&r, "version");
    if (r.bad == NULL && out->version != PROTO_VERSION)
        return err_set(PSHM_EPROTO, "%s: the server speaks protocol version %u, we speak %u",
                       peer, out->version, PROTO_VERSION);
    out->status = get_u8(&r, "status");
    if (out->status == HELLO_READY)
        get_bytes(&r, out->challenge, PROTO_CHALLENGE_LEN, "challenge");
    else if (out->status == HELLO_BUSY)
        out->reason = get_blob(&r, PROTO_MAX_TEXT, "reason");
    else if (r.bad == NULL)
        r.bad = "status";
    return finish(&r, peer, "greeting");
}

int proto_get_auth(const uint8_t *p, size_t len, proto_auth *out, const char *peer)
{
    reader r = {p, len, NULL};
    memset(out, 0, sizeof *out);
    out->version = get_u8(&r, "version");
    get_bytes(&r, out->mac, PROTO_MAC_LEN, "MAC");
    get_bytes(&r, out->challenge, PROTO_CHALLENGE_LEN, "challenge");
    return finish(&r, peer, "authentication");
}

int proto_get_welcome(const uint8_t *p, size_t len, proto_welcome *out, const char *peer)
{
    reader r = {p, len, NULL};
    memset(out, 0, sizeof *out);
    out->status = get_u8(&r, "status");
    if (out->status == WELCOME_OK)
        get_bytes(&r, out->mac, PROTO_MAC_LEN, "MAC");
    else if (out->status == WELCOME_REFUSED)
        out->reason = get_blob(&r, PROTO_MAX_TEXT, "reason");
    else if (r.bad == NULL)
        r.bad = "status";
    return finish(&r, peer, "welcome");
}

static void get_value(reader *r, pshm_value *v)
{
    uint8_t tag = get_u8(r, "value type");
    switch (tag) {
    case PSHM_NONE: *v = pshm_none(); break;
    case PSHM_INT: *v = pshm_int((int64_t)get_u64(r, "int value")); break;
    case PSHM_FLOAT: {
        uint64_t bits = get_u64(r, "float value");
        double f;
        memcpy(&f, &bits, sizeof f);
        *v = pshm_float(f);
        break;
    }
    case PSHM_BOOL: {
        uint8_t b = get_u8(r, "bool value");
        if (b > 1 && r->bad == NULL)
            r->bad = "bool value (not 0 or 1)";
        *v = pshm_bool(b == 1);
        break;
    }
    case PSHM_STR:
    case PSHM_BYTES: {
        proto_text t = get_blob(r, PROTO_MAX_FRAME, "str/bytes value");
        *v = tag == PSHM_STR ? pshm_strn(t.ptr, t.len) : pshm_bytes(t.ptr, t.len);
        break;
    }
    default:
        if (r->bad == NULL)
            r->bad = "value type (unknown tag)";
        *v = pshm_none();
        break;
    }
}

static void get_list_values(reader *r, proto_request *out)
{
    uint32_t count = get_u32(r, "item count");
    /* Every value takes at least its tag byte: a count larger than the bytes
     * left is a lie, refused before allocating for it. */
    if (r->bad != NULL || count > r->left || count > PROTO_MAX_ITEMS) {
        if (r->bad == NULL)
            r->bad = count > PROTO_MAX_ITEMS ? "item count (over the limit)"
                                             : "items (count exceeds the message)";
        return;
    }
    out->values = malloc((count ? count : 1) * sizeof *out->values);
    if (out->values == NULL) {
        r->bad = "items (out of memory)";
        return;
    }
    out->count = count;
    for (size_t i = 0; i < count && r->bad == NULL; i++)
        get_value(r, &out->values[i]);
}

int proto_get_request(const uint8_t *p, size_t len, proto_request *out, const char *peer)
{
    reader r = {p, len, NULL};
    memset(out, 0, sizeof *out);
    out->kind = get_u8(&r, "request kind");
    switch (out->kind) {
    case REQ_CREATE_BLOCK: out->size = get_u64(&r, "size"); break;
    case REQ_CREATE_LIST: get_list_values(&r, out); break;
    case REQ_RELEASE: out->name = get_name(&r, "name"); break;
    case REQ_NAMES:
    case REQ_SHUTDOWN: break;
    default:
        if (r.bad == NULL)
            r.bad = "request kind (unknown)";
        break;
    }
    int rc = finish(&r, peer, "request");
    if (rc < 0)
        proto_request_clear(out);
    return rc;
}

void proto_request_clear(proto_request *r)
{
    free(r->values);
    r->values = NULL;
    r->count = 0;
}

static void get_names(reader *r, proto_response *out)
{
    uint32_t count = get_u32(r, "name count");
    /* Every name takes at least 5 bytes (length and one byte). */
    if (r->bad != NULL || count > r->left / 5) {
        if (r->bad == NULL)
            r->bad = "names (count exceeds the message)";
        return;
    }
    out->names = malloc((count ? count : 1) * sizeof *out->names);
    if (out->names == NULL) {
        r->bad = "names (out of memory)";
        return;
    }
    out->count = count;
    for (size_t i = 0; i < count && r->bad == NULL; i++)
        out->names[i] = get_name(r, "name");
}

int proto_get_response(const uint8_t *p, size_t len, proto_response *out, const char *peer)
{
    reader r = {p, len, NULL};
    memset(out, 0, sizeof *out);
    out->kind = get_u8(&r, "response kind");
    switch (out->kind) {
    case RESP_OK: break;
    case RESP_OK_NAME: out->name = get_name(&r, "name"); break;
    case RESP_OK_NAMES: get_names(&r, out); break;
    case RESP_ERROR:
        out->code = (int32_t)get_u32(&r, "error code");
        if (r.bad == NULL && out->code >= 0)
            r.bad = "error code (not negative)";
        out->message = get_blob(&r, PROTO_MAX_TEXT, "error message");
        break;
    default:
        if (r.bad == NULL)
            r.bad = "response kind (unknown)";
        break;
    }
    int rc = finish(&r, peer, "response");
    if (rc < 0)
        proto_response_clear(out);
    return rc;
}

void proto_response_clear(proto_response *r)
{
    free(r->names);
    r->names = NULL;
    r->count = 0;
}

/* ---- authentication ---------------------------------------------------- */

void proto_mac(uint8_t out[PROTO_MAC_LEN], const void *key, size_t keylen, const char *label,
               const uint8_t a[PROTO_CHALLENGE_LEN], const uint8_t b[PROTO_CHALLENGE_LEN])
{
    os_bytes parts[] = {
        {label, strlen(label)}, {a, PROTO_CHALLENGE_LEN}, {b, PROTO_CHALLENGE_LEN}};
    os_hmac_sha256(out, key, keylen, parts, sizeof parts / sizeof *parts);
}

bool proto_mac_ok(const uint8_t got[PROTO_MAC_LEN], const void *key, size_t keylen,
                  const char *label, const uint8_t a[PROTO_CHALLENGE_LEN],
                  const uint8_t b[PROTO_CHALLENGE_LEN])
{
    uint8_t want[PROTO_MAC_LEN];
    proto_mac(want, key, keylen, label, a, b);
    return os_equal_ct(got, want, PROTO_MAC_LEN);
}

/* ---- addresses --------------------------------------------------------- */

/* The path of unix:PATH or the name of pipe:NAME (both after 5 bytes of
 * prefix; `noun` names it in messages): non-empty and fitting out->path. */
static int parse_path(const char *what, const char *text, const char *noun, proto_addr *out)
{
    const char *path = text + 5;
    size_t n = strlen(path);
    if (n == 0)
        return err_set(PSHM_EADDR, "%s \"%s\": the %s is empty", what, text, noun);
    if (n >= sizeof out->path)
        return err_set(PSHM_EADDR, "%s \"%.60s...\": the %s is longer than %zu bytes", what,
                       text, noun, sizeof out->path - 1);
    memcpy(out->path, path, n + 1);
    return 0;
}

static int parse_unix(const char *what, const char *text, proto_addr *out)
{
    out->kind = ADDR_UNIX;
    out->family = AF_UNIX;
    return parse_path(what, text, "socket path", out);
}

/* pipe:NAME, Windows' \\.\pipe\NAME: any text without backslashes or
 * control characters, as CPython's pipe names are. */
static int parse_pipe(const char *what, const char *text, proto_addr *out)
{
    out->kind = ADDR_PIPE;
    out->family = 0;
    int rc = parse_path(what, text, "pipe name", out);
    for (const char *c = out->path; rc == 0 && *c != '\0'; c++)
        if (*c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7f)
            rc = err_set(PSHM_EADDR,
                         "%s \"%s\": a pipe name holds no backslash or control character",
                         what, text);
    return rc;
}

static int parse_port(const char *what, const char *text, const char *digits, uint16_t *port)
{
    unsigned long v = 0;
    if (*digits == '\0')
        return err_set(PSHM_EADDR, "%s \"%s\": the port is missing", what, text);
    for (const char *d = digits; *d; d++) {
        if (*d < '0' || *d > '9' || (v = v * 10 + (unsigned long)(*d - '0')) > 65535)
            return err_set(PSHM_EADDR, "%s \"%s\": the port is not a number 0..65535", what,
                           text);
    }
    *port = (uint16_t)v;
    return 0;
}

/* Loopback only: the manager is a local service and must not be reachable
 * from other machines, whatever the caller typed. */
static int parse_host(const char *what, const char *text, const char *host, proto_addr *out)
{
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        if (((const uint8_t *)&v4)[0] != 127)
            return err_set(PSHM_EADDR,
                           "%s \"%s\": only loopback hosts (127.0.0.0/8, "
                           "localhost, ::1) are allowed",
                           what, text);
        out->family = AF_INET;
        memcpy(out->ip, &v4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6))
            return err_set(PSHM_EADDR,
                           "%s \"%s\": only loopback hosts (127.0.0.0/8, "
                           "localhost, ::1) are allowed",
                           what, text);
        out->family = AF_INET6;
        memcpy(out->ip, &v6, 16);
        return 0;
    }
    return err_set(PSHM_EADDR, "%s \"%s\": the host is not an IP address or localhost", what,
                   text);
}

static int parse_tcp(const char *what, const char *text, proto_addr *out)
{
    char host[64];
    const char *rest = text + 4;
    const char *colon = strrchr(rest, ':');
    if (colon == NULL)
        return err_set(PSHM_EADDR, "%s \"%s\": expected tcp:HOST:PORT", what, text);
    size_t n = (size_t)(colon - rest);
    if (n >= 2 && rest[0] == '[' && rest[n - 1] == ']') { /* [::1] */
        rest++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof host)
        return err_set(PSHM_EADDR, "%s \"%s\": the host is empty or too long", what, text);
    memcpy(host, rest, n);
    host[n] = '\0';
    out->kind = ADDR_TCP;
    int rc = parse_host(what, text, host, out);
    return rc < 0 ? rc : parse_port(what, text, colon + 1, &out->port);
}

int proto_addr_parse(const char *what, const char *text, proto_addr *out)
{
    memset(out, 0, sizeof *out);
    if (text == NULL)
        return err_set(PSHM_EADDR, "%s: the address is NULL", what);
    int rc = strncmp(text, "unix:", 5) == 0   ? parse_unix(what, text, out)
             : strncmp(text, "tcp:", 4) == 0  ? parse_tcp(what, text, out)
             : strncmp(text, "pipe:", 5) == 0 ? parse_pipe(what, text, out)
                                              : err_set(PSHM_EADDR,
                                                        "%s \"%.80s\": expected unix:PATH, "
                                                        "tcp:HOST:PORT or pipe:NAME",
                                                        what, text);
    return rc < 0 ? rc : tr_addr_usable(what, text, out);
}

int proto_addr_sockaddr(const proto_addr *a, void *ss)
{
    memset(ss, 0, sizeof(struct sockaddr_storage));
    if (a->family == AF_INET) {
        struct sockaddr_in *in = ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, a->ip, 4);
        return (int)sizeof *in;
    }
    struct sockaddr_in6 *in6 = ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->ip, 16);
    return (int)sizeof *in6;
}

uint16_t proto_sockaddr_port(const proto_addr *a, const void *ss)
{
    return ntohs(a->family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

void proto_addr_format(const proto_addr *a, char out[PROTO_ADDR_MAX])
{
    if (a->kind != ADDR_TCP) {
        snprintf(out, PROTO_ADDR_MAX, a->kind == ADDR_UNIX ? "unix:%s" : "pipe:%s", a->path);
        return;
    }
    char host[INET6_ADDRSTRLEN];
    inet_ntop(a->family, a->ip, host, sizeof host);
    snprintf(out, PROTO_ADDR_MAX, a->family == AF_INET6 ? "tcp:[%s]:%u" : "tcp:%s:%u", host,
             (unsigned)a->port);
}

int proto_handshake_ms(void)
{
    const char *env = getenv("PSHM_MANAGER_HANDSHAKE_MS");
    if (env != NULL) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (errno == 0 && *end == '\0' && v > 0 && v <= 3600000)
            return (int)v;
    }
    return 5000;
}
