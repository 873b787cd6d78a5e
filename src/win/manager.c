/*
 * manager.c (Windows) — the manager's transport and server start-up
 * (manager.h): Winsock TCP on loopback and named pipes (pipe:NAME is
 * \\.\pipe\NAME, the address family CPython's managers use on Windows).
 *
 * Windows has no fork, so pshm_manager_start runs the server as a program:
 * pshm.exe beside the module this code is in (pshm.dll, or the program
 * that linked libpshm.a), started with --pshm-manager-server. The key never
 * appears on its command line: it goes through the child's stdin, with the
 * address and an inherited handle of the starter's process, which the
 * server waits on to stop when its starter dies. The child reports through
 * its stdout that it listens (and where), or why it cannot.
 */
#include "manager.h"

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tr_addr_usable(const char *what, const char *text, const proto_addr *a)
{
    if (a->kind == ADDR_UNIX)
        return err_set(PSHM_EADDR,
                       "%s \"%s\": unix: addresses are not supported on Windows; use "
                       "pipe:NAME or tcp:127.0.0.1:PORT",
                       what, text);
    return 0;
}

static INIT_ONCE sockets_once = INIT_ONCE_STATIC_INIT;
static int sockets_error;

static BOOL CALLBACK start_sockets(PINIT_ONCE once, PVOID arg, PVOID *ctx)
{
    (void)once, (void)arg, (void)ctx;
    WSADATA data;
    sockets_error = WSAStartup(MAKEWORD(2, 2), &data);
    return TRUE;
}

int win_sockets_init(const char *what)
{
    InitOnceExecuteOnce(&sockets_once, start_sockets, NULL, NULL);
    return sockets_error == 0
               ? 0
               : err_win((unsigned long)sockets_error, what, "Winsock", "WSAStartup");
}

int win_pipe_path(const char *what, const char *address, const char *name, wchar_t out[300])
{
    char path[300];
    snprintf(path, sizeof path, "\\\\.\\pipe\\%s", name);
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, out, 300) > 0)
        return 0;
    return err_set(PSHM_EADDR, "%s \"%s\": the pipe name is not valid UTF-8", what, address);
}

/* ---- connections ------------------------------------------------------- */

bool tr_is_open(const os_conn *c) { return c->sock != INVALID_SOCKET || c->pipe != NULL; }

void tr_close(os_conn *c)
{
    if (c->sock != INVALID_SOCKET)
        closesocket(c->sock);
    if (c->pipe != NULL)
        CloseHandle(c->pipe);
    if (c->event != NULL)
        CloseHandle(c->event);
    *c = OS_CONN_CLOSED;
}

/* The text of a Windows or Winsock error, for *why (per thread). */
static const char *error_text(DWORD err)
{
    static _Thread_local char text[160];
    DWORD len = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                               NULL, err, 0, text, sizeof text, NULL);
    while (len > 0 &&
           (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == '.'))
        text[--len] = '\0';
    if (len == 0)
        snprintf(text, sizeof text, "Windows error %lu", (unsigned long)err);
    return text;
}

static bool is_eof(DWORD err)
{
    return err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED ||
           err == ERROR_NO_DATA || err == WSAECONNRESET || err == ERROR_NETNAME_DELETED;
}

/* Start an overlapped read or write of p[0..n) on c; true if it completed
 * or is pending, false (err set) if it failed at once. */
static bool start_io(os_conn *c, OVERLAPPED *ov, void *p, size_t n, bool write, DWORD *err)
{
    DWORD len = n > 1u << 30 ? 1u << 30 : (DWORD)n, done = 0;
    BOOL ok;
    if (c->pipe != NULL) {
        ok = write ? WriteFile(c->pipe, p, len, NULL, ov)
                   : ReadFile(c->pipe, p, len, NULL, ov);
        *err = ok ? 0 : GetLastError();
    } else {
        WSABUF buf = {len, p};
        DWORD flags = 0;
        ok = (write ? WSASend(c->sock, &buf, 1, &done, 0, ov, NULL)
                    : WSARecv(c->sock, &buf, 1, &done, &flags, ov, NULL)) == 0;
        *err = ok ? 0 : (DWORD)WSAGetLastError();
    }
    return ok || *err == ERROR_IO_PENDING;
}

/* Whether bytes (or the end) can be read from c without waiting. */
static bool readable_now(os_conn *c)
{
    if (c->pipe != NULL) {
        DWORD avail = 0;
        return !PeekNamedPipe(c->pipe, NULL, 0, NULL, &avail, NULL) || avail > 0;
    }
    u_long avail = 0;
    return ioctlsocket(c->sock, FIONREAD, &avail) != 0 || avail > 0;
}

/*
 * One overlapped transfer, waited for up to timeout_ms (-1: for ever) or
 * until `stop` is set; an unfinished one is cancelled (and waited for, so
 * the buffer is free again). Bytes moved, 0 at the end, -1, or TR_TIMEOUT.
 */
static ptrdiff_t transfer(os_conn *c, void *p, size_t n, bool write, int timeout_ms,
                          HANDLE stop, const char **why)
{
    OVERLAPPED ov = {0};
    ov.hEvent = c->event;
    ResetEvent(c->event);
    DWORD err, done = 0;
    if (!start_io(c, &ov, p, n, write, &err)) {
        *why = error_text(err);
        return is_eof(err) && !write ? 0 : -1;
    }
    HANDLE waits[2] = {c->event, stop};
    DWORD w = WaitForMultipleObjects(stop ? 2 : 1, waits, FALSE,
                                     timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    HANDLE h = c->pipe != NULL ? c->pipe : (HANDLE)c->sock;
    if (w != WAIT_OBJECT_0)
        CancelIoEx(h, &ov);
    BOOL ok = GetOverlappedResult(h, &ov, &done, TRUE);
    err = ok ? 0 : GetLastError();
    if (ok && done > 0)
        return (ptrdiff_t)done; /* it completed, even if cancelled late */
    if (w == WAIT_OBJECT_0 + 1) {
        *why = "the server is stopping";
        return -1;
    }
    if (w == WAIT_TIMEOUT)
        return TR_TIMEOUT;
    if (ok || is_eof(err))
        return write ? (*why = "connection closed", -1) : 0;
    *why = error_text(err);
    return -1;
}

ptrdiff_t win_recv(os_conn *c, void *p, size_t n, int timeout_ms, HANDLE stop,
                   const char **why)
{
    if (timeout_ms == 0 && !readable_now(c))
        return TR_TIMEOUT;
    return transfer(c, p, n, false, timeout_ms == 0 ? -1 : timeout_ms, stop, why);
}

ptrdiff_t tr_recv(os_conn *c, void *p, size_t n, int timeout_ms, const char **why)
{
    return win_recv(c, p, n, timeout_ms, NULL, why);
}

int win_send_all(os_conn *c, const void *data, size_t len, HANDLE stop, const char **why)
{
    const char *p = data;
    while (len > 0) {
        ptrdiff_t n = transfer(c, (void *)p, len, true, -1, stop, why);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int tr_send_all(os_conn *c, const void *data, size_t len, const char **why)
{
    return win_send_all(c, data, len, NULL, why);
}

static int connect_tcp(os_conn *c, const proto_addr *a, const char *address)
{
    int rc = win_sockets_init("connect");
    if (rc < 0)
        return rc;
    struct sockaddr_storage ss;
    int len = proto_addr_sockaddr(a, &ss);
    c->sock = WSASocketW(a->family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                         WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (c->sock == INVALID_SOCKET)
        return err_win((unsigned long)WSAGetLastError(), "connect", address, "socket");
    if (connect(c->sock, (struct sockaddr *)&ss, len) != 0) {
        int e = WSAGetLastError();
        return err_set(e == WSAECONNREFUSED ? PSHM_ECONN : PSHM_ESYS, "connect \"%s\": %s",
                       address, error_text((DWORD)e));
    }
    BOOL one = TRUE; /* requests are single small frames: send each at once */
    setsockopt(c->sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    return 0;
}

/* How long a client waits for a free instance of a busy pipe. */
#define PIPE_BUSY_MS 10000

static int connect_pipe(os_conn *c, const proto_addr *a, const char *address)
{
    wchar_t path[300];
    int rc = win_pipe_path("connect", address, a->path, path);
    if (rc < 0)
        return rc;
    for (;;) {
        c->pipe = CreateFileW(
            path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
            FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
        if (c->pipe != INVALID_HANDLE_VALUE)
            return 0;
        c->pipe = NULL;
        DWORD e = GetLastError();
        if (e == ERROR_PIPE_BUSY && WaitNamedPipeW(path, PIPE_BUSY_MS))
            continue; /* an instance came free; another client may take it first */
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PIPE_BUSY)
            return err_set(PSHM_ECONN, "connect \"%s\": %s", address,
                           e == ERROR_PIPE_BUSY ? "every instance of the pipe stayed busy"
                                                : "no such pipe (is the server running?)");
        return err_win(e, "connect", address, "CreateFileW");
    }
}

int tr_connect(os_conn *c, const proto_addr *a, const char *address)
{
    *c = OS_CONN_CLOSED;
    c->event = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (c->event == NULL)
        return err_win(GetLastError(), "connect", address, "CreateEventW");
    int rc = a->kind == ADDR_PIPE ? connect_pipe(c, a, address) : connect_tcp(c, a, address);
    if (rc < 0)
        tr_close(c);
    return rc;
}

/* ---- starting a server ------------------------------------------------- */

#define START_MAGIC 0x50534d31u /* "PSM1": this layout, from this version */

/* What the starter writes to the server's stdin. */
struct start_request {
    uint32_t magic;
    uint32_t keylen;
    uint64_t starter; /* an inherited HANDLE of the starter's process */
    uint8_t key[PSHM_AUTHKEY_MAX];
    char address[PROTO_ADDR_MAX]; /* "" for the default */
};

/* What the server writes to its stdout: code 0 and its address, or a
 * failure code and message. */
struct ready_report {
    uint32_t magic; /* START_MAGIC: not some other program's output */
    int32_t code;
    char text[508];
};

static bool write_all(HANDLE h, const void *p, DWORD n)
{
    DWORD done;
    return WriteFile(h, p, n, &done, NULL) && done == n;
}

static bool read_all(HANDLE h, void *p, DWORD n)
{
    DWORD got = 0, done;
    while (got < n && ReadFile(h, (char *)p + got, n - got, &done, NULL) && done > 0)
        got += done;
    return got == n;
}

/* pshm.exe beside the module this code was linked into. */
static int server_program(wchar_t path[MAX_PATH])
{
    HMODULE self = NULL;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                           GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                       (LPCWSTR)(void *)server_program, &self);
    DWORD n = GetModuleFileNameW(self, path, MAX_PATH);
    wchar_t *slash = path + n;
    while (slash > path && slash[-1] != L'\\' && slash[-1] != L'/')
        slash--;
    if (n == 0 || n >= MAX_PATH || (size_t)(slash - path) + 9 > MAX_PATH)
        return err_win(GetLastError(), "start", "(manager)", "GetModuleFileNameW");
    wcscpy(slash, L"pshm.exe");
    if (GetFileAttributesW(path) == INVALID_FILE_ATTRIBUTES)
        return err_set(PSHM_ESYS,
                       "start: the manager server program \"%ls\" is missing: pshm.exe "
                       "must be installed beside the pshm library",
                       path);
    return 0;
}

/* Run pshm.exe with our ends of its stdin and stdout pipes; the handles it
 * must inherit are the only inheritable ones we make. */
static int run_server_program(HANDLE child_in, HANDLE child_out, PROCESS_INFORMATION *pi)
{
    wchar_t path[MAX_PATH];
    int rc = server_program(path);
    if (rc < 0)
        return rc;
    wchar_t cmd[MAX_PATH + 40];
    swprintf(cmd, MAX_PATH + 40, L"\"%ls\" --pshm-manager-server", path);
    STARTUPINFOW si = {.cb = sizeof si, .dwFlags = STARTF_USESTDHANDLES};
    si.hStdInput = child_in;
    si.hStdOutput = child_out;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    HANDLE err_copy = NULL; /* our stderr, inheritable, for its messages */
    if (si.hStdError != NULL && si.hStdError != INVALID_HANDLE_VALUE &&
        DuplicateHandle(GetCurrentProcess(), si.hStdError, GetCurrentProcess(), &err_copy, 0,
                        TRUE, DUPLICATE_SAME_ACCESS))
        si.hStdError = err_copy;
    BOOL ok =
        CreateProcessW(path, cmd, NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL, NULL, &si, pi);
    DWORD e = GetLastError();
    if (err_copy != NULL)
        CloseHandle(err_copy);
    return ok ? 0 : err_win(e, "start", "(manager)", "CreateProcessW");
}

/* Read the server's report; on failure wait for it and return its error. */
static int await_ready(HANDLE from, HANDLE process, char address[PROTO_ADDR_MAX])
{
    struct ready_report r;
    bool got = read_all(from, &r, sizeof r) && r.magic == START_MAGIC;
    if (got && r.code == 0) {
        size_t n = strnlen(r.text, PROTO_ADDR_MAX - 1);
        memcpy(address, r.text, n);
        address[n] = '\0';
        return 0;
    }
    WaitForSingleObject(process, INFINITE);
    if (!got)
        return err_set(PSHM_ESYS, "start: the server process exited before it was ready");
    r.text[sizeof r.text - 1] = '\0';
    return err_set(r.code < 0 ? r.code : PSHM_ESYS, "start: %s", r.text);
}

static void close_all(HANDLE *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i] != NULL)
            CloseHandle(h[i]);
}

/* Held from making a child's inheritable handles until they are closed
 * again, so two starts in one process never lend each other theirs. */
static SRWLOCK spawn_lock = SRWLOCK_INIT;

int tr_spawn_server(os_server *s, const char *address, const void *key, size_t keylen,
                    char out[PROTO_ADDR_MAX])
{
    /* in[0]/out[1] are the child's, me its handle of us: inheritable. */
    HANDLE in[2] = {NULL, NULL}, outp[2] = {NULL, NULL}, me = NULL;
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    AcquireSRWLockExclusive(&spawn_lock);
    if (!CreatePipe(&in[0], &in[1], &inherit, 0) ||
        !CreatePipe(&outp[0], &outp[1], &inherit, 0) ||
        !DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &me,
                         SYNCHRONIZE, TRUE, 0)) {
        int rc = err_win(GetLastError(), "start", "(manager)", "CreatePipe");
        HANDLE all[5] = {in[0], in[1], outp[0], outp[1], me};
        close_all(all, 5);
        ReleaseSRWLockExclusive(&spawn_lock);
        return rc;
    }
    SetHandleInformation(in[1], HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(outp[0], HANDLE_FLAG_INHERIT, 0);
    PROCESS_INFORMATION pi = {0};
    int rc = run_server_program(in[0], outp[1], &pi);
    HANDLE child_ends[3] = {in[0], outp[1], me};
    close_all(child_ends, 3);
    ReleaseSRWLockExclusive(&spawn_lock);
    if (rc == 0) {
        struct start_request req = {.magic = START_MAGIC,
                                    .keylen = (uint32_t)keylen,
                                    .starter = (uint64_t)(uintptr_t)me};
        memcpy(req.key, key, keylen);
        snprintf(req.address, sizeof req.address, "%s", address ? address : "");
        bool sent = write_all(in[1], &req, sizeof req);
        os_memzero(&req, sizeof req);
        CloseHandle(in[1]);
        in[1] = NULL;
        rc = sent ? await_ready(outp[0], pi.hProcess, out)
                  : err_win(GetLastError(), "start", "(manager)", "WriteFile to the server");
        CloseHandle(pi.hThread);
        if (rc < 0)
            CloseHandle(pi.hProcess);
        else
            s->process = pi.hProcess;
    }
    HANDLE ours[2] = {in[1], outp[0]};
    close_all(ours, 2);
    return rc;
}

/* Ending the process closes every handle it has, which frees each block no
 * client still has open: what a SHUTDOWN would have done. */
void tr_stop_server(os_server *s)
{
    if (s->process != NULL)
        TerminateProcess(s->process, 1);
}

/* How long reaping waits for a server told to stop before ending it. */
#define REAP_MS 10000

void tr_reap_server(os_server *s)
{
    if (s->process == NULL)
        return;
    if (WaitForSingleObject(s->process, REAP_MS) == WAIT_TIMEOUT)
        TerminateProcess(s->process, 1);
    CloseHandle(s->process);
    s->process = NULL;
}

/* ---- the server's side: pshm.exe --pshm-manager-server ------------------ */

static void report(HANDLE to, int code, const char *text)
{
    struct ready_report r = {.magic = START_MAGIC, .code = code};
    snprintf(r.text, sizeof r.text, "%s", text);
    write_all(to, &r, sizeof r);
}

static void report_ready(const char *address, void *arg)
{
    HANDLE *to = arg;
    report(*to, 0, address);
    CloseHandle(*to);
    *to = NULL;
}

int pshm_win_manager_server_main(void)
{
    HANDLE to = GetStdHandle(STD_OUTPUT_HANDLE);
    struct start_request req;
    bool got = read_all(GetStdHandle(STD_INPUT_HANDLE), &req, sizeof req);
    CloseHandle(GetStdHandle(STD_INPUT_HANDLE));
    if (!got || req.magic != START_MAGIC || req.keylen > PSHM_AUTHKEY_MAX) {
        report(to, PSHM_ESYS,
               "the server program got no valid start request (another "
               "version of pshm.exe?)");
        return 1;
    }
    req.address[sizeof req.address - 1] = '\0';
    int rc = win_server_run(req.address[0] ? req.address : NULL, req.key, req.keylen,
                            report_ready, &to, (HANDLE)(uintptr_t)req.starter, true);
    os_memzero(&req, sizeof req);
    if (rc < 0 && to != NULL)
        report(to, rc, pshm_last_error());
    return rc < 0 ? 1 : 0;
}
