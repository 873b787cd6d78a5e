/*
 * protocol.h — the manager's wire format, shared by server.c and client.c
 * (and the fuzzer).
 *
 * Every message is a frame: a 4-byte little-endian payload length, then the
 * payload. A length above the receiver's limit is rejected before anything
 * is allocated (PROTO_MAX_FRAME after authentication, PROTO_MAX_HANDSHAKE
 * before it, so a stranger cannot make the server allocate much).
 *
 * Handshake (mutual HMAC-SHA256 challenge-response, key of any length):
 *   server -> HELLO    "PSHM" version:u8 status:u8, then
 *                      status READY: server_challenge[32]
 *                      status BUSY:  reason text (the server is full)
 *   client -> AUTH     version:u8 mac[32] client_challenge[32]
 *                      mac = HMAC(key, "client" || server_ch || client_ch)
 *   server -> WELCOME  status:u8, then
 *                      status OK:      mac[32] = HMAC(key, "server" ||
 *                                      client_ch || server_ch)
 *                      status REFUSED: reason text; the server then closes
 * Each side checks the other's MAC in constant time; the labels differ, so
 * one side's answer can never be replayed as the other's.
 *
 * Requests (kind:u8, then):
 *   CREATE_BLOCK  size:u64
 *   CREATE_LIST   count:u32 (at most PROTO_MAX_ITEMS), count x value
 *                 value = tag:u8 (pshm_type), then INT i64 | FLOAT f64 (its
 *                 IEEE bits as u64) | BOOL u8 (0 or 1) | NONE nothing |
 *                 STR/BYTES len:u32 bytes
 *   NAMES, SHUTDOWN  nothing
 *   RELEASE       len:u32 name bytes
 * Responses (kind:u8, then):
 *   OK            nothing
 *   OK_NAME       len:u32 name bytes
 *   OK_NAMES      count:u32, count x (len:u32 name bytes)
 *   ERROR         code:i32 (a negative PSHM_E*), len:u32 message bytes
 * All integers are little-endian. A message must be consumed exactly: bytes
 * left over make it malformed. Names on the wire are 1..PSHM_NAME_MAX bytes
 * without NUL bytes; text is at most PROTO_MAX_TEXT bytes. Nothing in a
 * message is ever executed or used as a format string.
 */
#ifndef PSHM_PROTOCOL_H
#define PSHM_PROTOCOL_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MAGIC "PSHM"
#define PROTO_CHALLENGE_LEN 32
#define PROTO_MAC_LEN 32
#define PROTO_HEADER_LEN 4
/* Largest payload after authentication: room for a large list. */
#define PROTO_MAX_FRAME (16u << 20)
/* Largest payload during the handshake: HELLO/AUTH/WELCOME are tiny. */
#define PROTO_MAX_HANDSHAKE 512u
/* Most items in one CREATE_LIST: bounds the decoded array (24 bytes per
 * item) whatever the frame holds. */
#define PROTO_MAX_ITEMS 1000000u
/* Longest error or refusal text on the wire. */
#define PROTO_MAX_TEXT 400u

enum proto_hello_status { HELLO_READY = 0, HELLO_BUSY = 1 };
enum proto_welcome_status { WELCOME_OK = 0, WELCOME_REFUSED = 1 };

typedef enum proto_request_kind {
    REQ_CREATE_BLOCK = 1,
    REQ_CREATE_LIST = 2,
    REQ_NAMES = 3,
    REQ_RELEASE = 4,
    REQ_SHUTDOWN = 5
} proto_request_kind;

typedef enum proto_response_kind {
    RESP_OK = 1,
    RESP_OK_NAME = 2,
    RESP_OK_NAMES = 3,
    RESP_ERROR = 4
} proto_response_kind;

/* A growable output buffer: the library's strbuf (internal.h), whose
 * `failed` here also latches a message that would exceed PROTO_MAX_FRAME. */
typedef strbuf proto_buf;

/* A decoded text or name: points into the decoded payload, not terminated. */
typedef struct proto_text {
    const char *ptr;
    size_t len;
} proto_text;

typedef struct proto_hello {
    uint8_t version;
    uint8_t status;
    uint8_t challenge[PROTO_CHALLENGE_LEN]; /* READY */
    proto_text reason;                      /* BUSY */
} proto_hello;

typedef struct proto_auth {
    uint8_t version;
    uint8_t mac[PROTO_MAC_LEN];
    uint8_t challenge[PROTO_CHALLENGE_LEN];
} proto_auth;

typedef struct proto_welcome {
    uint8_t status;
    uint8_t mac[PROTO_MAC_LEN]; /* OK */
    proto_text reason;          /* REFUSED */
} proto_welcome;

/* A decoded request. For CREATE_LIST, `values` is malloc'd (free with
 * proto_request_clear) and str/bytes values point into the payload. */
typedef struct proto_request {
    proto_request_kind kind;
    uint64_t size;      /* CREATE_BLOCK */
    pshm_value *values; /* CREATE_LIST */
    size_t count;       /* CREATE_LIST */
    proto_text name;    /* RELEASE */
} proto_request;

/* A decoded response. For OK_NAMES, `names` is malloc'd (proto_response_clear)
 * and each entry points into the payload. */
typedef struct proto_response {
    proto_response_kind kind;
    proto_text name;    /* OK_NAME */
    proto_text *names;  /* OK_NAMES */
    size_t count;       /* OK_NAMES */
    int32_t code;       /* ERROR: negative */
    proto_text message; /* ERROR */
} proto_response;

/* ---- frames ------------------------------------------------------------ */

/* Start a frame in b: reserves the length header. */
void proto_frame_begin(proto_buf *b);
/* Fill in the header of the frame begun at `start`; false if it failed. */
bool proto_frame_end(proto_buf *b, size_t start);
/* Payload length from a 4-byte header. */
uint32_t proto_frame_length(const uint8_t header[PROTO_HEADER_LEN]);
void proto_buf_free(proto_buf *b);

/* ---- encoders: each appends one whole frame; false on failure ---------- */

bool proto_put_hello(proto_buf *b, uint8_t status, const uint8_t *challenge,
                     const char *reason);
bool proto_put_auth(proto_buf *b, const uint8_t mac[PROTO_MAC_LEN],
                    const uint8_t challenge[PROTO_CHALLENGE_LEN]);
bool proto_put_welcome(proto_buf *b, uint8_t status, const uint8_t *mac, const char *reason);
bool proto_put_create_block(proto_buf *b, uint64_t size);
bool proto_put_create_list(proto_buf *b, const pshm_value *values, size_t n);
/* NAMES and SHUTDOWN. */
bool proto_put_simple(proto_buf *b, proto_request_kind kind);
bool proto_put_release(proto_buf *b, const char *name);
bool proto_put_ok(proto_buf *b);
bool proto_put_ok_name(proto_buf *b, const char *name);
/* OK_NAMES from `count` NUL-terminated names produced by next(arg). */
bool proto_put_ok_names(proto_buf *b, size_t count, const char *(*next)(void *arg),
                        void *arg);
bool proto_put_error(proto_buf *b, int32_t code, const char *message);

/* ---- decoders: one per message kind, each fully bounds-checked ---------
 * Input is one payload (without header). Return 0, or PSHM_EPROTO with a
 * message naming `peer` and what was wrong. Never read outside p[0..len). */

int proto_get_hello(const uint8_t *p, size_t len, proto_hello *out, const char *peer);
int proto_get_auth(const uint8_t *p, size_t len, proto_auth *out, const char *peer);
int proto_get_welcome(const uint8_t *p, size_t len, proto_welcome *out, const char *peer);
int proto_get_request(const uint8_t *p, size_t len, proto_request *out, const char *peer);
int proto_get_response(const uint8_t *p, size_t len, proto_response *out, const char *peer);
void proto_request_clear(proto_request *r);
void proto_response_clear(proto_response *r);

/* ---- authentication ---------------------------------------------------- */

/* HMAC-SHA256(key, label || a || b) with the raw key of any length. */
void proto_mac(uint8_t out[PROTO_MAC_LEN], const void *key, size_t keylen, const char *label,
               const uint8_t a[PROTO_CHALLENGE_LEN], const uint8_t b[PROTO_CHALLENGE_LEN]);
/* Constant-time check of a received MAC against the expected one. */
bool proto_mac_ok(const uint8_t got[PROTO_MAC_LEN], const void *key, size_t keylen,
                  const char *label, const uint8_t a[PROTO_CHALLENGE_LEN],
                  const uint8_t b[PROTO_CHALLENGE_LEN]);

/* ---- addresses --------------------------------------------------------- */

enum { ADDR_UNIX, ADDR_TCP, ADDR_PIPE };

/* A parsed "unix:PATH", "tcp:HOST:PORT" (loopback hosts only) or
 * "pipe:NAME" (a Windows named pipe). */
typedef struct proto_addr {
    int kind;
    int family;     /* AF_UNIX, AF_INET or AF_INET6; 0 for a pipe */
    char path[108]; /* ADDR_UNIX: fits sun_path with its NUL; ADDR_PIPE: the name */
    uint8_t ip[16]; /* ADDR_TCP: network order, 4 or 16 bytes */
    uint16_t port;  /* ADDR_TCP: host order */
} proto_addr;

/* Longest address text we produce or accept. */
#define PROTO_ADDR_MAX 160

/* Parse `text` for call `what`; PSHM_EADDR with a reason if it is not
 * acceptable (including any non-loopback host, and a kind this platform
 * does not have). */
int proto_addr_parse(const char *what, const char *text, proto_addr *out);
/* The platform's check of a parsed address (manager_posix.c, win/manager.c):
 * 0, or PSHM_EADDR naming `text` if this platform has no such address. */
int tr_addr_usable(const char *what, const char *text, const proto_addr *a);
/* A tcp: address as a socket address in *ss (a struct sockaddr_storage);
 * returns its length. */
int proto_addr_sockaddr(const proto_addr *a, void *ss);
/* The port in socket address *ss (as getsockname gives it) of a's family. */
uint16_t proto_sockaddr_port(const proto_addr *a, const void *ss);
/* The canonical text of a (e.g. with the port a listener was given). */
void proto_addr_format(const proto_addr *a, char out[PROTO_ADDR_MAX]);

/* ---- the server entry that pshm_manager_start runs in its child -------- */

/*
 * Serve like pshm_manager_serve, and also stop (unlinking everything) when
 * `starter_fd` reports EOF or readiness (-1: none): the end of a pipe whose
 * write end only the starter holds, or a pidfd of the starter.
 * `starter_pidfd` is a second such descriptor (-1: none). `ignore_sigint`
 * keeps the terminal's Ctrl-C for the starting program, as CPython does.
 */
int server_run(const char *address, const void *key, size_t keylen,
               void (*ready)(const char *address, void *arg), void *arg, int starter_fd,
               int starter_pidfd, bool ignore_sigint);

/* Handshake timeout in ms: PSHM_MANAGER_HANDSHAKE_MS, else 5000. */
int proto_handshake_ms(void);

#endif
