/*
 * manager_rogue.c — a misbehaving manager peer, for test_manager.c.
 *
 *   manager_rogue MODE ADDRESS [KEYHEX]
 *
 * Client modes (ADDRESS of a running manager) do one bad thing and check
 * that the server answers as it should and closes the connection:
 *   garbage     send bytes that are no frame at all, before authenticating
 *   silent      authenticate never: wait for the handshake timeout's close
 *   oversized   authenticate, then declare a 4 GiB frame
 *   truncated   authenticate, then a frame whose payload is cut short
 *               (a list of 3 items holding 1)
 *   partial     authenticate, send half a frame, hang up
 *   badversion  answer the challenge with protocol version 99
 *   hold        the lock-out attack: keep HOLD connections open (more than
 *               the server's slots), each with half an AUTH frame sent;
 *               reconnect at once whenever the server closes one. Prints
 *               "holding" once all HOLD have been greeted, then runs until
 *               killed or the server is gone. On a server that evicts, this
 *               is a flood.
 * Server mode:
 *   fake-server ADDRESS   listen on unix:PATH, greet, then answer any
 *               authentication with OK and a MAC made without the key.
 *   bad-reply ADDRESS KEYHEX   listen, authenticate properly with the key,
 *               then answer the first request with a reply of an unknown
 *               kind: the client must report a protocol error and hang up.
 * Prints "ok: ..." and exits 0 if the peer behaved; else "FAIL: ..." and 1.
 * Uses the library's own encoders (linked statically) to speak the wire.
 */
#include "../../src/protocol.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_MS 30000
#define HOLD 100

/* The one output buffer, reused for every frame (reachable until exit). */
static proto_buf wire;

static int fail(const char *what)
{
    printf("FAIL: %s (%s)\n", what, errno ? strerror(errno) : "-");
    return 1;
}

static int connect_to(const char *address)
{
    proto_addr a;
    if (proto_addr_parse("rogue", address, &a) < 0)
        return -1;
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (a.kind == ADDR_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, a.path, strlen(a.path) + 1);
        len = sizeof *sun;
    } else if (a.family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a.port);
        memcpy(&in->sin_addr, a.ip, 4);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a.port);
        memcpy(&in6->sin6_addr, a.ip, 16);
        len = sizeof *in6;
    }
    int fd = socket(a.family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_wire(int fd)
{
    bool ok =
        !wire.failed && send(fd, wire.data, wire.len, MSG_NOSIGNAL) == (ssize_t)wire.len;
    wire.len = 0;
    return ok;
}

/* Read one frame (payload up to cap bytes) within WAIT_MS; payload length
 * or -1 on EOF/timeout/oversize. */
static ssize_t read_frame(int fd, uint8_t *buf, size_t cap)
{
    uint8_t header[PROTO_HEADER_LEN];
    size_t want = sizeof header, got = 0;
    uint8_t *dst = header;
    for (int part = 0; part < 2; part++) {
        while (got < want) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, WAIT_MS) <= 0)
                return -1;
            ssize_t n = recv(fd, dst + got, want - got, 0);
            if (n <= 0)
                return -1;
            got += (size_t)n;
        }
        if (part == 0) {
            want = proto_frame_length(header);
            if (want > cap)
                return -1;
            dst = buf;
            got = 0;
        }
    }
    return (ssize_t)want;
}

/* True if the peer closes the connection (after any frames) within WAIT_MS. */
static bool closed_by_peer(int fd)
{
    uint8_t scratch[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, WAIT_MS) <= 0)
            return false;
        ssize_t n = recv(fd, scratch, sizeof scratch, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (n < cap && hex[0] && hex[1]) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

/* Authenticate as a proper client would; version as given. */
static bool authenticate(int fd, const uint8_t *key, size_t keylen, uint8_t version)
{
    uint8_t buf[PROTO_MAX_HANDSHAKE];
    ssize_t n = read_frame(fd, buf, sizeof buf);
    proto_hello hello;
    if (n < 0 || proto_get_hello(buf, (size_t)n, &hello, "rogue") < 0)
        return false;
    uint8_t ours[PROTO_CHALLENGE_LEN], mac[PROTO_MAC_LEN];
    randombytes_buf(ours, sizeof ours);
    proto_mac(mac, key, keylen, "client", hello.challenge, ours);
    proto_put_auth(&wire, mac, ours);
    wire.data[PROTO_HEADER_LEN] = version;
    bool sent = send_wire(fd);
    proto_welcome w;
    n = sent ? read_frame(fd, buf, sizeof buf) : -1;
    return n >= 0 && proto_get_welcome(buf, (size_t)n, &w, "rogue") == 0 &&
           w.status == WELCOME_OK;
}

/* After a bad request: an ERROR reply with PSHM_EPROTO, then EOF. */
static int expect_error_and_close(int fd, const char *mode)
{
    uint8_t buf[4096];
    ssize_t n = read_frame(fd, buf, sizeof buf);
    proto_response r;
    if (n < 0 || proto_get_response(buf, (size_t)n, &r, "rogue") < 0 ||
        r.kind != RESP_ERROR || r.code != PSHM_EPROTO)
        return fail("no protocol error reply");
    if (!closed_by_peer(fd))
        return fail("the server kept the connection open");
    printf("ok: %s: refused with \"%.*s\" and closed\n", mode, (int)r.message.len,
           r.message.ptr);
    return 0;
}

/* A new connection that has sent the first half of an AUTH frame (unless
 * the server closed it first), or -1 if nobody listens. */
static int connect_half_auth(const char *address)
{
    int fd = connect_to(address);
    uint8_t zeros[PROTO_MAC_LEN + PROTO_CHALLENGE_LEN] = {0};
    proto_put_auth(&wire, zeros, zeros + PROTO_MAC_LEN);
    wire.len /= 2;
    if (fd >= 0)
        send_wire(fd);
    wire.len = 0;
    return fd;
}

static int hold(const char *address)
{
    struct pollfd conns[HOLD];
    bool greeted[HOLD] = {false};
    size_t ever_greeted = 0;
    for (size_t i = 0; i < HOLD; i++)
        conns[i] = (struct pollfd){-1, POLLIN, 0};
    for (;;) {
        for (size_t i = 0; i < HOLD; i++) {
            if (conns[i].fd < 0 && (conns[i].fd = connect_half_auth(address)) < 0) {
                printf("ok: hold: the server is gone\n");
                return 0;
            }
        }
        if (poll(conns, HOLD, 1000) < 0)
            return fail("poll");
        for (size_t i = 0; i < HOLD; i++) {
            if (conns[i].fd < 0 || conns[i].revents == 0)
                continue;
            uint8_t scratch[512];
            if (recv(conns[i].fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0) {
                if (!greeted[i] && ++ever_greeted == HOLD)
                    printf("holding\n");
                greeted[i] = true;
                continue;
            }
            close(conns[i].fd); /* closed by the server: take another slot */
            conns[i].fd = -1;
        }
    }
}

static int client_mode(const char *mode, const char *address, const uint8_t *key,
                       size_t keylen)
{
    if (strcmp(mode, "hold") == 0)
        return hold(address);
    int fd = connect_to(address);
    if (fd < 0)
        return fail("connect");
    if (strcmp(mode, "garbage") == 0) {
        static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe\x00garbage";
        if (send(fd, junk, sizeof junk, MSG_NOSIGNAL) < 0 || !closed_by_peer(fd))
            return fail("the server kept a garbage connection open");
        printf("ok: garbage: closed\n");
        return 0;
    }
    if (strcmp(mode, "silent") == 0) {
        if (!closed_by_peer(fd))
            return fail("the server kept a silent connection open");
        printf("ok: silent: closed after the handshake timeout\n");
        return 0;
    }
    if (strcmp(mode, "badversion") == 0) {
        if (authenticate(fd, key, keylen, 99) || !closed_by_peer(fd))
            return fail("the server accepted protocol version 99");
        printf("ok: badversion: refused and closed\n");
        return 0;
    }
    if (!authenticate(fd, key, keylen, PROTO_VERSION))
        return fail("authentication with the right key");
    if (strcmp(mode, "oversized") == 0) {
        static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, REQ_NAMES};
        if (send(fd, huge, sizeof huge, MSG_NOSIGNAL) < 0)
            return fail("send");
        return expect_error_and_close(fd, mode);
    }
    if (strcmp(mode, "truncated") == 0) {
        pshm_value one = pshm_int(1);
        proto_put_create_list(&wire, &one, 1);
        wire.data[PROTO_HEADER_LEN + 1] = 3; /* the count: claims 3 items */
        if (!send_wire(fd))
            return fail("send");
        return expect_error_and_close(fd, mode);
    }
    if (strcmp(mode, "partial") == 0) {
        proto_put_create_block(&wire, 4096);
        wire.len -= 4; /* half the size field */
        if (!send_wire(fd))
            return fail("send");
        close(fd);
        printf("ok: partial: sent half a frame and hung up\n");
        return 0;
    }
    return fail("unknown mode");
}

/* Listen on unix:PATH, accept one client, greet it; its AUTH frame in buf. */
static int accept_and_greet(const char *address, uint8_t challenge[PROTO_CHALLENGE_LEN],
                            uint8_t *buf, size_t cap, ssize_t *auth_len)
{
    proto_addr a;
    if (proto_addr_parse("rogue", address, &a) < 0)
        return -1;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, a.path, strlen(a.path) + 1);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(lfd, 4) < 0)
        return -1;
    printf("ready\n");
    fflush(stdout);
    int fd = accept(lfd, NULL, NULL);
    unlink(a.path);
    close(lfd);
    if (fd < 0)
        return -1;
    randombytes_buf(challenge, PROTO_CHALLENGE_LEN);
    proto_put_hello(&wire, HELLO_READY, challenge, NULL);
    if (!send_wire(fd) || (*auth_len = read_frame(fd, buf, cap)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int bad_reply_server(const char *address, const uint8_t *key, size_t keylen)
{
    uint8_t challenge[PROTO_CHALLENGE_LEN], mac[PROTO_MAC_LEN], buf[PROTO_MAX_HANDSHAKE];
    ssize_t len;
    int fd = accept_and_greet(address, challenge, buf, sizeof buf, &len);
    proto_auth auth;
    if (fd < 0 || proto_get_auth(buf, (size_t)len, &auth, "rogue") < 0)
        return fail("handshake");
    proto_mac(mac, key, keylen, "server", auth.challenge, challenge);
    proto_put_welcome(&wire, WELCOME_OK, mac, NULL);
    if (!send_wire(fd) || read_frame(fd, buf, sizeof buf) < 0)
        return fail("first request");
    const uint8_t reply[PROTO_HEADER_LEN + 1] = {1, 0, 0, 0, 0xEE}; /* kind 0xEE */
    if (send(fd, reply, sizeof reply, MSG_NOSIGNAL) != (ssize_t)sizeof reply)
        return fail("send reply");
    if (!closed_by_peer(fd))
        return fail("the client kept the connection after a malformed reply");
    printf("ok: bad-reply: the client hung up\n");
    return 0;
}

static int fake_server(const char *address)
{
    uint8_t challenge[PROTO_CHALLENGE_LEN], mac[PROTO_MAC_LEN], buf[PROTO_MAX_HANDSHAKE];
    ssize_t len;
    int fd = accept_and_greet(address, challenge, buf, sizeof buf, &len);
    if (fd < 0)
        return fail("handshake");
    randombytes_buf(mac, sizeof mac); /* we do not know the key */
    proto_put_welcome(&wire, WELCOME_OK, mac, NULL);
    if (!send_wire(fd))
        return fail("send welcome");
    if (!closed_by_peer(fd))
        return fail("the client kept talking to a server that did not prove the key");
    printf("ok: fake-server: the client hung up\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || sodium_init() < 0) {
        fprintf(stderr, "usage: manager_rogue MODE ADDRESS [KEYHEX]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "fake-server") == 0)
        return fake_server(argv[2]);
    uint8_t key[PSHM_AUTHKEY_MAX];
    size_t keylen = argc > 3 ? unhex(argv[3], key, sizeof key) : 0;
    if (strcmp(argv[1], "bad-reply") == 0)
        return bad_reply_server(argv[2], key, keylen);
    return client_mode(argv[1], argv[2], key, keylen);
}
