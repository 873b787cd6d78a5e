/*
 * win_manager — the manager on Windows with real processes: a server
 * started from C (pshm.exe in its own process), blocks and lists made
 * through it attached here; wrong and right keys on tcp: and pipe:; eight
 * client processes at once (win_mgr_helper.exe); a starter killed by
 * TerminateProcess, whose server then exits and frees its blocks; shutdown
 * freeing everything; bad addresses refused with messages naming them.
 */
#include <winsock2.h> /* before windows.h, which child.h includes */

#include "check.h"
#include "child.h"
#include "pshm.h"

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "win manager test key"
#define CLIENTS 8

/* Whether `name` can no longer be attached, polling for up to 20 s (the
 * mapping goes once the kernel has closed the last handle). */
static bool gone(const char *name)
{
    for (int i = 0; i < 400; i++) {
        pshm_block *b;
        if (pshm_block_attach(&b, name, PSHM_READONLY) == PSHM_ENOENT)
            return true;
        pshm_block_free(b);
        Sleep(50);
    }
    return false;
}

static bool attachable(const char *name)
{
    pshm_block *b;
    if (pshm_block_attach(&b, name, PSHM_READONLY) < 0)
        return false;
    pshm_block_free(b);
    return true;
}

/* Keys: the right one is accepted; a wrong one is PSHM_EAUTH, and the
 * server is the one that refused it. */
static void check_keys(const char *addr)
{
    pshm_manager *m;
    int rc = pshm_manager_connect(&m, addr, "wrong key", 9);
    CHECK(rc == PSHM_EAUTH && strstr(pshm_last_error(), addr) != NULL &&
              strstr(pshm_last_error(), "the server refused the handshake") != NULL,
          "%s wrong key: rc %d: %s", addr, rc, pshm_last_error());
    rc = pshm_manager_connect(&m, addr, KEY, strlen(KEY));
    CHECK(rc == 0, "%s right key: %s", addr, pshm_last_error());
    if (rc == 0)
        pshm_manager_disconnect(m);
}

/* CLIENTS processes at once, each making, using and releasing a block and
 * a list; all must print "ok". */
static void check_clients(const char *addr)
{
    child c[CLIENTS];
    char args[256], line[512];
    snprintf(args, sizeof args, "client %s \"%s\"", addr, KEY);
    int started = 0;
    for (int i = 0; i < CLIENTS; i++)
        started += spawn_exe(&c[started], "win_mgr_helper.exe", args);
    CHECK(started == CLIENTS, "%d of %d clients started", started, CLIENTS);
    int ok = 0;
    for (int i = 0; i < started; i++) {
        read_line(&c[i], line, sizeof line);
        ok += strcmp(line, "ok") == 0;
        if (strcmp(line, "ok") != 0)
            printf("client %d: %s\n", i, line);
        kill_child(&c[i]);
    }
    CHECK(ok == CLIENTS, "%s: %d of %d clients ok", addr, ok, CLIENTS);
}

/* The server serves 64 connections (`open` are open already); the next is
 * told it is busy, and once some close, connecting works again. */
#define SLOTS 64
static void check_busy(const char *addr, int open)
{
    pshm_manager *conns[SLOTS];
    int n = 0, rc;
    while (n < SLOTS - open &&
           (rc = pshm_manager_connect(&conns[n], addr, KEY, strlen(KEY))) == 0)
        n++;
    CHECK(n == SLOTS - open, "%s: only %d connections: %s", addr, n, pshm_last_error());
    pshm_manager *extra;
    rc = pshm_manager_connect(&extra, addr, KEY, strlen(KEY));
    CHECK(rc == PSHM_ECONN && strstr(pshm_last_error(), "busy") != NULL, "%s: 65th: %d %s",
          addr, rc, pshm_last_error());
    while (n > 0)
        pshm_manager_disconnect(conns[--n]);
    for (int i = 0;
         i < 100 && (rc = pshm_manager_connect(&extra, addr, KEY, strlen(KEY))) < 0; i++)
        Sleep(50); /* the server notices the closed ones */
    CHECK(rc == 0, "%s: no connection after the others closed: %s", addr, pshm_last_error());
    if (rc == 0)
        pshm_manager_disconnect(extra);
}

/* A manager started from here: blocks and lists through it, keys, many
 * clients, names, release, then shutdown freeing everything. */
static void exercise(const char *address)
{
    pshm_manager *m;
    int rc = pshm_manager_start(&m, address, KEY, strlen(KEY));
    CHECK(rc == 0, "start %s: %s", address ? address : "(default)", pshm_last_error());
    if (rc < 0)
        return;
    char addr[200]; /* kept past shutdown, which frees m */
    snprintf(addr, sizeof addr, "%s", pshm_manager_address(m));
    printf("manager at %s\n", addr);
    if (address == NULL)
        CHECK(strncmp(addr, "pipe:pshm-manager-", 18) == 0, "default address %s", addr);
    unsigned port = 0;
    if (address != NULL && strncmp(address, "tcp:", 4) == 0)
        CHECK(sscanf(addr, "tcp:127.0.0.1:%u", &port) == 1 && port > 0, "port in %s", addr);
    pshm_block *b = NULL;
    pshm_list *l = NULL;
    pshm_value v[3] = {pshm_int(1), pshm_str("two"), pshm_float(3.5)};
    CHECK(pshm_manager_block(m, 5000, &b) == 0, "block: %s", pshm_last_error());
    CHECK(pshm_manager_list(m, v, 3, &l) == 0, "list: %s", pshm_last_error());
    if (b == NULL || l == NULL)
        return;
    char block_name[PSHM_NAME_MAX + 1], list_name[PSHM_NAME_MAX + 1];
    snprintf(block_name, sizeof block_name, "%s", pshm_block_name(b));
    snprintf(list_name, sizeof list_name, "%s", pshm_block_name(pshm_list_block(l)));
    CHECK(pshm_block_size(b) >= 5000, "size %zu", pshm_block_size(b));
    pshm_block_free(b);
    pshm_list_free(l);
    /* The server holds them: still there after our handles went. */
    CHECK(attachable(block_name) && attachable(list_name), "owned blocks gone early");
    check_keys(addr);
    check_clients(addr);
    check_busy(addr, 1);
    char **names;
    size_t n;
    CHECK(pshm_manager_names(m, &names, &n) == 0 && n == 2, "names: %zu", n);
    if (n == 2)
        pshm_names_free(names, n);
    pshm_block *extra;
    if (pshm_manager_block(m, 100, &extra) == 0) {
        char extra_name[PSHM_NAME_MAX + 1];
        snprintf(extra_name, sizeof extra_name, "%s", pshm_block_name(extra));
        pshm_block_free(extra);
        CHECK(pshm_manager_release(m, extra_name) == 0 && gone(extra_name),
              "release left %s: %s", extra_name, pshm_last_error());
    }
    rc = pshm_manager_release(m, "psm_nosuch0");
    CHECK(rc == PSHM_ENOENT && strstr(pshm_last_error(), "owns no block") != NULL,
          "release unknown: %d %s", rc, pshm_last_error());
    /* Shut down from another handle, so nothing ends the server for us. */
    pshm_manager *other;
    rc = pshm_manager_connect(&other, addr, KEY, strlen(KEY));
    CHECK(rc == 0 && (rc = pshm_manager_shutdown(other)) == 0, "shutdown: %s",
          pshm_last_error());
    CHECK(gone(block_name) && gone(list_name), "shutdown left %s or %s", block_name,
          list_name);
    pshm_manager_disconnect(m);
    CHECK(pshm_manager_connect(&m, addr, KEY, strlen(KEY)) == PSHM_ECONN,
          "connect after shutdown: %s", pshm_last_error());
}

/* A starter killed by TerminateProcess: its server exits, freeing its
 * blocks, and nobody can connect any more. */
static void starter_killed(const char *address)
{
    child c;
    char args[256], line[512], addr[200] = "", block[PSHM_NAME_MAX + 1] = "",
                               list[PSHM_NAME_MAX + 1] = "";
    snprintf(args, sizeof args, "start %s \"%s\"", address, KEY);
    if (!spawn_exe(&c, "win_mgr_helper.exe", args)) {
        CHECK(false, "spawn start %s", address);
        return;
    }
    read_line(&c, line, sizeof line);
    CHECK(sscanf(line, "%199s %255s %255s", addr, block, list) == 3, "starter said: %s",
          line);
    CHECK(attachable(block) && attachable(list), "blocks missing while the starter lives");
    check_keys(addr);
    kill_child(&c);
    CHECK(gone(block) && gone(list), "%s: the server kept %s or %s after its starter died",
          address, block, list);
    pshm_manager *m;
    int rc = pshm_manager_connect(&m, addr, KEY, strlen(KEY));
    CHECK(rc == PSHM_ECONN, "connect to a dead server %s: %d %s", addr, rc,
          pshm_last_error());
}

static void expect_error(int rc, int code, const char *address, const char *part)
{
    CHECK(rc == code && strstr(pshm_last_error(), address) != NULL &&
              strstr(pshm_last_error(), part) != NULL,
          "%s: rc %d (want %d): %s", address, rc, code, pshm_last_error());
}

static void bad_addresses(void)
{
    pshm_manager *m;
    const char *unix_addr = "unix:C:/tmp/pshm.sock";
    expect_error(pshm_manager_start(&m, unix_addr, KEY, 3), PSHM_EADDR, unix_addr,
                 "not supported on Windows");
    expect_error(pshm_manager_connect(&m, unix_addr, KEY, 3), PSHM_EADDR, unix_addr,
                 "not supported on Windows");
    expect_error(pshm_manager_start(&m, "pipe:", KEY, 3), PSHM_EADDR, "pipe:", "empty");
    expect_error(pshm_manager_start(&m, "pipe:a\\b", KEY, 3), PSHM_EADDR, "pipe:a\\b",
                 "backslash");
    expect_error(pshm_manager_start(&m, "tcp:10.1.2.3:0", KEY, 3), PSHM_EADDR,
                 "tcp:10.1.2.3:0", "loopback");
    expect_error(pshm_manager_start(&m, "udp:x", KEY, 3), PSHM_EADDR, "udp:x", "expected");
    expect_error(pshm_manager_connect(&m, "pipe:pshm-win-no-such", KEY, 3), PSHM_ECONN,
                 "pipe:pshm-win-no-such", "no such pipe");
    /* A taken pipe name and a taken port. */
    pshm_manager *first;
    if (pshm_manager_start(&first, "pipe:pshm-win-taken", KEY, 3) == 0) {
        expect_error(pshm_manager_start(&m, "pipe:pshm-win-taken", KEY, 3), PSHM_EADDR,
                     "pipe:pshm-win-taken", "already exists");
        pshm_manager_shutdown(first);
    }
    if (pshm_manager_start(&first, "tcp:127.0.0.1:0", KEY, 3) == 0) {
        char addr[200];
        snprintf(addr, sizeof addr, "%s", pshm_manager_address(first));
        expect_error(pshm_manager_start(&m, addr, KEY, 3), PSHM_EADDR, addr, "in use");
        pshm_manager_shutdown(first);
        expect_error(pshm_manager_connect(&m, addr, KEY, 3), PSHM_ECONN, addr, "");
    }
}

/* A connection that never authenticates is dropped after the handshake
 * timeout (300 ms here, through the environment the server inherits): a
 * raw socket gets HELLO, sends nothing, and then sees the server close. */
static void handshake_timeout(void)
{
    SetEnvironmentVariableA("PSHM_MANAGER_HANDSHAKE_MS", "300");
    pshm_manager *m;
    int rc = pshm_manager_start(&m, "tcp:127.0.0.1:0", KEY, strlen(KEY));
    SetEnvironmentVariableA("PSHM_MANAGER_HANDSHAKE_MS", NULL);
    CHECK(rc == 0, "start: %s", pshm_last_error());
    if (rc < 0)
        return;
    unsigned port = 0;
    sscanf(pshm_manager_address(m), "tcp:127.0.0.1:%u", &port);
    SOCKET sock = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((u_short)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    DWORD limit = 20000; /* a safety net only: the server should close long before */
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, (const char *)&limit, sizeof limit);
    char buf[512];
    int got = 0, n;
    CHECK(connect(sock, (struct sockaddr *)&sin, sizeof sin) == 0, "connect: %d",
          WSAGetLastError());
    while ((n = recv(sock, buf, sizeof buf, 0)) > 0)
        got += n;
    CHECK(got == 4 + 4 + 2 + 32 && n == 0, "HELLO of %d bytes, then recv %d (error %d)", got,
          n, WSAGetLastError());
    closesocket(sock);
    CHECK(pshm_manager_shutdown(m) == 0, "shutdown: %s", pshm_last_error());
}

/* pshm_manager_with: a fresh random key, a block made inside, gone after. */
static int make_one(pshm_manager *m, void *arg)
{
    pshm_block *b;
    int rc = pshm_manager_block(m, 64, &b);
    if (rc == 0) {
        snprintf(arg, PSHM_NAME_MAX + 1, "%s", pshm_block_name(b));
        pshm_block_free(b);
    }
    return rc;
}

static void with_random_key(void)
{
    char name[PSHM_NAME_MAX + 1] = "";
    int rc = pshm_manager_with(NULL, NULL, 0, make_one, name);
    CHECK(rc == 0 && name[0] != '\0', "with: %d %s", rc, pshm_last_error());
    CHECK(name[0] == '\0' || gone(name), "with left %s", name);
}

int main(void)
{
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    exercise("tcp:127.0.0.1:0");
    exercise("pipe:pshm-win-test");
    exercise(NULL);
    starter_killed("tcp:127.0.0.1:0");
    starter_killed("pipe:pshm-win-killed");
    bad_addresses();
    handshake_timeout();
    with_random_key();
    return check_report("win_manager");
}
