/*
 * manager_posix.c — the manager's transport and server start-up on POSIX
 * (manager.h): Unix and TCP stream sockets, and the server forked from the
 * starting process, watching a lifeline pipe and a pidfd of its starter.
 */
#include "manager.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Only the address kinds this platform has. */
int tr_addr_usable(const char *what, const char *text, const proto_addr *a)
{
    if (a->kind == ADDR_PIPE)
        return err_set(PSHM_EADDR,
                       "%s \"%s\": pipe: addresses are Windows named pipes; use "
                       "unix:PATH or tcp:HOST:PORT here",
                       what, text);
    return 0;
}

/* ---- connections ------------------------------------------------------- */

int tr_connect(os_conn *c, const proto_addr *a, const char *address)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (a->kind == ADDR_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, a->path, strlen(a->path) + 1);
        len = sizeof *sun;
    } else {
        len = (socklen_t)proto_addr_sockaddr(a, &ss);
    }
    c->fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return err_errno(errno, "connect", address, "socket");
    int rc;
    do
        rc = connect(c->fd, (struct sockaddr *)&ss, len);
    while (rc < 0 && errno == EINTR);
    if (rc == 0 && a->kind == ADDR_TCP) {
        int one = 1; /* requests are single small frames: send each at once */
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (rc < 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return err_set(e == ENOENT || e == ECONNREFUSED ? PSHM_ECONN : PSHM_ESYS,
                       "connect \"%s\": %s", address, strerror(e));
    }
    return 0;
}

bool tr_is_open(const os_conn *c) { return c->fd >= 0; }

void tr_close(os_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int tr_send_all(os_conn *c, const void *data, size_t len, const char **why)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *why = n < 0 ? strerror(errno) : "connection closed";
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A reply with no deadline is a plain blocking recv: no poll first. */
ptrdiff_t tr_recv(os_conn *c, void *p, size_t n, int timeout_ms, const char **why)
{
    for (;;) {
        if (timeout_ms > 0) {
            struct pollfd pfd = {c->fd, POLLIN, 0};
            int r = poll(&pfd, 1, timeout_ms);
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0)
                return TR_TIMEOUT;
        }
        ssize_t got = recv(c->fd, p, n, timeout_ms == 0 ? MSG_DONTWAIT : 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && timeout_ms == 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return TR_TIMEOUT;
        if (got < 0)
            *why = strerror(errno);
        return got;
    }
}

/* ---- starting a server ------------------------------------------------- */

/* What the server child reports through the ready pipe: code 0 and its
 * address, or a failure code and message. Under PIPE_BUF: one atomic write. */
struct ready_report {
    int32_t code;
    char text[508];
};

static void report_ready(const char *address, void *arg)
{
    int *fd = arg;
    struct ready_report r = {.code = 0};
    snprintf(r.text, sizeof r.text, "%s", address);
    (void)!write(*fd, &r, sizeof r);
    close(*fd);
    *fd = -1;
}

/* Close every descriptor but the three standard ones and keep[0..n). */
static void close_all_except(const int *keep, size_t n)
{
    unsigned from = 3;
    for (;;) {
        unsigned next = ~0u; /* the smallest kept descriptor >= from */
        for (size_t i = 0; i < n; i++)
            if (keep[i] >= (int)from && (unsigned)keep[i] < next)
                next = (unsigned)keep[i];
        if (next > from)
            syscall(SYS_close_range, from, next == ~0u ? ~0u : next - 1, 0u);
        if (next == ~0u)
            return;
        from = next + 1;
    }
}

struct child_args {
    const char *address;
    const void *key;
    size_t keylen;
    int ready_fd, lifeline_fd;
    pid_t starter;
};

/*
 * The server process. We got here by fork() from a program that may have
 * other threads; only the forking thread exists now. It is nonetheless safe
 * to run ordinary code: glibc's fork takes the malloc arena and stdio locks
 * around the fork and resets them in the child; the library's global lock is
 * handled by its pthread_atfork handlers (installed before any thread can
 * hold it); libsodium was initialised before the fork, so its one-time
 * setup cannot be caught half-done by another thread.
 */
static void server_child(struct child_args *a) __attribute__((noreturn));
static void server_child(struct child_args *a)
{
    /* Hold no mapping (no flock) of the starter's blocks, and make our own
     * tracker: its EOF must mean "the server died", not the starter. */
    drop_inherited_blocks();
    tracker_detach();
    /* A pidfd sees the starter exit even if its forked children kept the
     * lifeline's write end; the pipe alone serves kernels without pidfds. */
    int pidfd = (int)syscall(SYS_pidfd_open, a->starter, 0);
    if (getppid() != a->starter)
        _exit(1); /* the starter is already gone */
    int keep[3] = {a->ready_fd, a->lifeline_fd, pidfd};
    close_all_except(keep, 3);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_NAME, "pshm-manager", 0, 0, 0);
    int rc = server_run(a->address, a->key, a->keylen, report_ready, &a->ready_fd,
                        a->lifeline_fd, pidfd, true);
    if (rc < 0 && a->ready_fd >= 0) {
        struct ready_report r = {.code = rc};
        snprintf(r.text, sizeof r.text, "%s", pshm_last_error());
        (void)!write(a->ready_fd, &r, sizeof r);
    }
    _exit(rc < 0 ? 1 : 0);
}

/* Read the child's report; on failure reap it and return its error. */
static int await_ready(int fd, pid_t pid, char address[PROTO_ADDR_MAX])
{
    struct ready_report r;
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = read(fd, (char *)&r + got, sizeof r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == sizeof r && r.code == 0) {
        size_t n = strnlen(r.text, PROTO_ADDR_MAX - 1);
        memcpy(address, r.text, n);
        address[n] = '\0';
        return 0;
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (got < sizeof r)
        return err_set(PSHM_ESYS, "start: the server process exited before it was ready");
    r.text[sizeof r.text - 1] = '\0';
    return err_set(r.code < 0 ? r.code : PSHM_ESYS, "start: %s", r.text);
}

/* Fork the server; on success s->pid, s->starter_fd and its address. */
int tr_spawn_server(os_server *s, const char *address, const void *key, size_t keylen,
                    char out[PROTO_ADDR_MAX])
{
    int ready[2], lifeline[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return err_errno(errno, "start", address ? address : "(default)", "pipe2");
    if (pipe2(lifeline, O_CLOEXEC) < 0) {
        int e = errno;
        close(ready[0]);
        close(ready[1]);
        return err_errno(e, "start", address ? address : "(default)", "pipe2");
    }
    struct child_args args = {address, key, keylen, ready[1], lifeline[0], getpid()};
    pid_t pid = fork();
    if (pid == 0)
        server_child(&args);
    int e = errno;
    close(ready[1]);
    close(lifeline[0]);
    if (pid < 0) {
        close(ready[0]);
        close(lifeline[1]);
        return err_errno(e, "start", address ? address : "(default)", "fork");
    }
    int rc = await_ready(ready[0], pid, out);
    close(ready[0]);
    if (rc < 0) {
        close(lifeline[1]);
        return rc;
    }
    s->pid = pid;
    s->starter_fd = lifeline[1];
    return 0;
}

void tr_stop_server(os_server *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGTERM); /* it unlinks everything on SIGTERM too */
}

/* Close the server's lifeline (it stops) and reap it. */
void tr_reap_server(os_server *s)
{
    if (s->starter_fd >= 0)
        close(s->starter_fd);
    s->starter_fd = -1;
    while (s->pid > 0 && waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
}
