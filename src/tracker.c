/*
 * tracker.c — the resource tracker: removes blocks every process forgot.
 *
 * Design (docs/tracker.md has the long form):
 *
 *  - Each process family (a process and the children it forks) shares one
 *    tracker process, reached through a SOCK_SEQPACKET socketpair whose
 *    library end is close-on-exec: forked children inherit it, exec'd
 *    programs get their own tracker.
 *  - Registering a block is one send(2) of a fixed record (name, device,
 *    inode); unlinking sends a record that makes the tracker forget it.
 *  - When the last process holding the library end exits (however it dies),
 *    the tracker reads EOF. For each block still recorded it opens the name,
 *    checks it is the same object (device and inode), and takes an exclusive
 *    flock. Every open handle in every process holds a shared flock, so the
 *    exclusive lock is granted only once nobody, in any family, has the
 *    block open. Then it removes the name and says so on stderr.
 *  - The tracker is a grandchild made with raw clone() calls: the caller's
 *    direct child has exit signal 0 and is reaped at once with __WCLONE, so
 *    the caller sees no SIGCHLD and waitpid(-1) never returns it. Because the
 *    caller may be multi-threaded, the tracker runs only async-signal-safe
 *    code: system calls and memory from mmap, no malloc or stdio.
 *  - If the tracker dies, the next send fails with EPIPE; the library starts
 *    a new one and re-registers every block this process holds open.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MSG_REGISTER = 'R', MSG_UNREGISTER = 'U' };

/* One message on the socket; sent up to the name's NUL. */
struct tracker_msg {
    uint8_t op;
    uint8_t reserved[7];
    uint64_t dev;
    uint64_t ino;
    char name[PSHM_NAME_MAX + 1];
};

/* ---- the library side ------------------------------------------------- */

/* Guarded by global_lock(). */
static int tracker_sock = -1; /* our end; -1 until the first tracked call */

static void tracker_main(int sock) __attribute__((noreturn));

/* A fork without glibc's fork machinery: exit_signal as given. */
static pid_t raw_clone(int exit_signal)
{
    return (pid_t)syscall(SYS_clone, (unsigned long)exit_signal, NULL, NULL, NULL, NULL);
}

/* Start a tracker; on success tracker_sock is connected to it. Lock held,
 * so the open-handle list the tracker inherits is complete. */
static int start_tracker(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return err_errno(errno, "track", "(tracker)", "socketpair");
    pid_t mid = raw_clone(0);
    if (mid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return err_errno(e, "track", "(tracker)", "clone");
    }
    if (mid == 0) {
        /* The short-lived middle process: make the tracker, then vanish so
         * the tracker is orphaned and adopted by init. */
        pid_t t = raw_clone(SIGCHLD);
        if (t == 0) {
            close(sv[0]); /* the library's end: holding it, we'd never see EOF */
            drop_inherited_blocks();
            tracker_main(sv[1]);
        }
        _exit(t < 0 ? 1 : 0);
    }
    close(sv[1]);
    int status = 0;
    while (waitpid(mid, &status, __WCLONE) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        close(sv[0]);
        return err_set(PSHM_ESYS, "track: could not start the tracker process");
    }
    /* Room for as many queued records as the system allows (see tracker_main). */
    int room = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    tracker_sock = sv[0];
    return 0;
}

static int send_msg(uint8_t op, const pshm_block *b)
{
    struct tracker_msg m = {.op = op, .dev = (uint64_t)b->dev, .ino = (uint64_t)b->ino};
    size_t n = strlen(b->name);
    memcpy(m.name, b->name, n + 1);
    size_t len = offsetof(struct tracker_msg, name) + n + 1;
    ssize_t r;
    do
        r = send(tracker_sock, &m, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)len ? 0 : -1;
}

/* Send, restarting a dead tracker once and re-registering what we hold. */
static int send_or_restart(uint8_t op, const pshm_block *b)
{
    if (tracker_sock >= 0 && send_msg(op, b) == 0)
        return 0;
    if (tracker_sock >= 0) {
        close(tracker_sock);
        tracker_sock = -1;
    }
    int rc = start_tracker();
    if (rc < 0)
        return rc;
    for (pshm_block *t = open_handles(); t != NULL; t = t->open_next)
        if (t != b && !(t->flags & PSHM_UNTRACKED) && !t->unlinked &&
            send_msg(MSG_REGISTER, t) < 0)
            return err_set(PSHM_ESYS, "track \"%s\": the new tracker is unreachable", t->name);
    if (send_msg(op, b) < 0)
        return err_set(PSHM_ESYS, "track \"%s\": the tracker is unreachable", b->name);
    return 0;
}

int tracker_register(pshm_block *b)
{
    global_lock();
    int rc = send_or_restart(MSG_REGISTER, b);
    global_unlock();
    return rc;
}

void tracker_unregister(pshm_block *b)
{
    /* Only blocks this process family registered can be on its tracker. */
    if (b->flags & PSHM_UNTRACKED)
        return;
    global_lock();
    if (tracker_sock >= 0)
        send_msg(MSG_UNREGISTER, b); /* a dead tracker forgets everything anyway */
    global_unlock();
}

void tracker_detach(void)
{
    tracker_sock = -1;
}

/* ---- the tracker process ----------------------------------------------
 * Only async-signal-safe code from here on: see the comment at the top. */

struct record {
    uint64_t dev, ino;
    uint8_t state; /* SLOT_EMPTY, SLOT_USED or SLOT_DELETED */
    char name[PSHM_NAME_MAX + 1];
};
enum { SLOT_EMPTY = 0, SLOT_USED, SLOT_DELETED };

/* Open addressing keyed by name; memory from mmap, which is signal-safe. */
struct table {
    struct record *slots;
    size_t cap; /* a power of two */
    size_t used; /* SLOT_USED + SLOT_DELETED, to keep probes short */
};

/* Records are keyed by name and identity: the same name may stand for an
 * old block and a new one, and only the exact pair is ever forgotten. */
static struct record *table_find(struct table *t, const struct record *key, bool for_insert)
{
    const char *name = key->name;
    size_t mask = t->cap - 1;
    struct record *tomb = NULL;
    for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        struct record *r = &t->slots[i];
        if (r->state == SLOT_EMPTY)
            return for_insert ? (tomb ? tomb : r) : NULL;
        if (r->state == SLOT_DELETED) {
            if (tomb == NULL)
                tomb = r;
        } else if (r->dev == key->dev && r->ino == key->ino && strcmp(r->name, name) == 0) {
            return r;
        }
    }
}

static bool table_alloc(struct table *t, size_t cap)
{
    void *p = mmap(NULL, cap * sizeof(struct record), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    t->slots = p;
    t->cap = cap;
    t->used = 0;
    return true;
}

static bool table_grow(struct table *t)
{
    struct table old = *t;
    if (!table_alloc(t, old.cap * 2))
        return false;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].state != SLOT_USED)
            continue;
        *table_find(t, &old.slots[i], true) = old.slots[i];
        t->used++;
    }
    munmap(old.slots, old.cap * sizeof(struct record));
    return true;
}

static void table_apply(struct table *t, const struct tracker_msg *m)
{
    struct record key = {.dev = m->dev, .ino = m->ino};
    memcpy(key.name, m->name, sizeof key.name);
    if (m->op == MSG_UNREGISTER) {
        struct record *r = table_find(t, &key, false);
        if (r != NULL)
            r->state = SLOT_DELETED;
        return;
    }
    if ((t->used + 1) * 4 > t->cap * 3 && !table_grow(t))
        return; /* out of memory: this block will not be cleaned up */
    struct record *r = table_find(t, &key, true);
    if (r->state == SLOT_USED)
        return; /* registered before, e.g. by a forked sibling */
    if (r->state == SLOT_EMPTY)
        t->used++;
    key.state = SLOT_USED;
    *r = key;
}

/* A tiny signal-safe line writer for stderr. */
struct line {
    char buf[1024];
    size_t len;
};

static void line_flush(struct line *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t w = write(STDERR_FILENO, l->buf + off, l->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    l->len = 0;
}

static void line_add(struct line *l, const char *s)
{
    for (; *s; s++) {
        if (l->len == sizeof l->buf)
            line_flush(l);
        l->buf[l->len++] = *s;
    }
}

static void line_add_uint(struct line *l, size_t v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    char out[24];
    for (int i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = '\0';
    line_add(l, out);
}

static void build_path(char *path, const char *name)
{
    static const char dir[] = SHM_DIR "/";
    memcpy(path, dir, sizeof dir - 1);
    memcpy(path + sizeof dir - 1, name, strlen(name) + 1);
}

/*
 * Remove record r's block if it is still the same object and nobody holds
 * it. Returns 1 if removed, 0 if it is gone or replaced (nothing to do), -1
 * if it is still in use (only when `wait` is false).
 */
static int reclaim(const struct record *r, bool wait)
{
    char path[sizeof SHM_DIR + PSHM_NAME_MAX + 1];
    build_path(path, r->name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    int result = 0;
    struct stat st, now;
    if (fstat(fd, &st) == 0 && st.st_dev == (dev_t)r->dev && st.st_ino == (ino_t)r->ino) {
        int rc;
        do
            rc = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            result = errno == EWOULDBLOCK ? -1 : 0;
        } else if (fstat(fd, &st) == 0 && st.st_nlink > 0 && stat(path, &now) == 0 &&
                   now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
            /* Locked, still linked, still under this name: ours to remove. */
            result = unlink(path) == 0 ? 1 : 0;
        }
    }
    close(fd);
    return result;
}

static void report_removed(struct line *l, size_t *count, const char *name)
{
    if (*count == 0)
        line_add(l, "pshm tracker: removed leaked shared memory block(s) that no process "
                    "unlinked:");
    line_add(l, " ");
    line_add(l, name);
    (*count)++;
}

/* After EOF: remove every recorded block as soon as nobody holds it. */
static void cleanup(struct table *t)
{
    struct line l = {.len = 0};
    size_t removed = 0, busy = 0;
    for (size_t i = 0; i < t->cap; i++) {
        struct record *r = &t->slots[i];
        if (r->state != SLOT_USED)
            continue;
        int rc = reclaim(r, false);
        if (rc == 1)
            report_removed(&l, &removed, r->name);
        if (rc != -1)
            r->state = SLOT_DELETED;
        else
            busy++;
    }
    if (removed > 0) {
        line_add(&l, "\n");
        line_flush(&l);
    }
    if (busy == 0)
        return;
    /* Still in use by other programs: wait for each in turn. */
    for (size_t i = 0; i < t->cap; i++) {
        struct record *r = &t->slots[i];
        if (r->state == SLOT_USED && reclaim(r, true) == 1) {
            line_add(&l, "pshm tracker: removed leaked shared memory block ");
            line_add(&l, r->name);
            line_add(&l, " once its last user closed it (");
            line_add_uint(&l, --busy);
            line_add(&l, " still in use)\n");
            line_flush(&l);
        }
    }
}

/* Detach from the caller: no inherited descriptors but stderr, no signals
 * from its terminal, its own session. */
static void become_daemon(int sock)
{
    if (sock != 3) {
        dup2(sock, 3);
        close(sock); /* it may sit on 0-2 if the caller had closed them */
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        if (devnull > 3)
            close(devnull);
    }
    if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0) /* before Linux 5.9 */
        for (int fd = 4; fd < 65536; fd++)
            close(fd);
    setsid();
    if (chdir("/") < 0) { /* nothing depends on the directory */ }
    /* The caller's handlers are not ours: defaults, but for what we ignore. */
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_NAME, "pshm-tracker", 0, 0, 0);
}

/*
 * Receive one message into m: 1 if there was one, 0 at EOF (every process
 * of the family is gone), -1 if none is waiting (only when !wait).
 */
static int receive(struct tracker_msg *m, bool wait)
{
    for (;;) {
        memset(m, 0, sizeof *m);
        ssize_t n = recv(3, m, sizeof *m, wait ? 0 : MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return -1;
        if (n <= 0)
            return 0;
        m->name[PSHM_NAME_MAX] = '\0';
        /* Only our own library writes here, but a path never leaves SHM_DIR. */
        if ((size_t)n <= offsetof(struct tracker_msg, name) || m->name[0] == '\0' ||
            strcmp(m->name, ".") == 0 || strcmp(m->name, "..") == 0 ||
            strchr(m->name, '/') != NULL)
            continue;
        return 1;
    }
}

/*
 * Messages are read in batches: after a wake-up the tracker drains the
 * socket, then sleeps BATCH_PAUSE_NS before it waits again. While it sleeps
 * nobody waits on the socket, so a burst of registrations costs the callers
 * a plain send and no wake-up of this process (measured: a wake-up per send
 * made tracked create+close+unlink 1.7x the untracked time). A caller only
 * ever blocks when the socket buffer is full, for at most one pause.
 */
#define BATCH_PAUSE_NS 1000000L

static void tracker_main(int sock)
{
    become_daemon(sock);
    struct table t;
    if (!table_alloc(&t, 1024))
        _exit(1);
    struct tracker_msg m;
    int got;
    while ((got = receive(&m, true)) > 0) {
        do
            table_apply(&t, &m);
        while ((got = receive(&m, false)) > 0);
        if (got == 0)
            break;
        struct timespec pause = {0, BATCH_PAUSE_NS};
        while (nanosleep(&pause, &pause) < 0 && errno == EINTR)
            ;
    }
    close(3);
    cleanup(&t);
    _exit(0);
}
