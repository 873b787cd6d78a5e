/*
 * tracker.c — the resource tracker: removes blocks every process forgot.
 *
 * Design (docs/tracker.md has the long form):
 *
 *  - Only blocks their creator marked (TRACKED_MARK in the mode) are ever
 *    registered or removed.
 *  - Each process family (a process and the children it forks) shares one
 *    tracker process, reached through a SOCK_SEQPACKET socketpair whose
 *    library end is close-on-exec: forked children inherit it, exec'd
 *    programs get their own tracker.
 *  - Registering a block is one send(2) of a fixed record (name, device,
 *    inode). Unlinking sends nothing: when its table needs room, the
 *    tracker drops the records whose name no longer stands for their block
 *    and whose inode nobody holds ("making room" below).
 *  - When the last process holding the library end exits (however it dies),
 *    the tracker reads EOF. For each block still recorded it opens the name,
 *    checks it is the same object (device and inode), and takes an exclusive
 *    flock. Every open handle in every process holds a shared flock, so the
 *    exclusive lock is granted only once nobody, in any family, has the
 *    block open. Then it removes the name and says so. Blocks still in use
 *    are each re-checked when a file of their name is closed (inotify) and
 *    once a second, so none waits behind another.
 *  - The tracker is a grandchild made with raw clone() calls: the caller's
 *    direct child has exit signal 0 and is reaped at once with __WCLONE, so
 *    the caller sees no SIGCHLD and waitpid(-1) never returns it. Because the
 *    caller may be multi-threaded, the tracker runs only async-signal-safe
 *    code: system calls and memory from mmap, no malloc or stdio.
 *  - If the tracker dies, the next send fails with EPIPE; the library starts
 *    a new one and re-registers every block this process holds open.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The one message on the socket, a registration; sent up to the name's
 * NUL. */
struct tracker_msg {
    uint8_t quiet; /* remove it without a word: a named lock */
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

/*
 * Wait for the new tracker's word that it holds nothing of ours and
 * ignores what it must (become_daemon). Until it first runs, it has a copy
 * of every descriptor and mapping we had, so a block we unlink and close
 * keeps its memory (and our shared flock) for as long as the scheduler
 * keeps it waiting — on a loaded machine, long after the caller has moved
 * on and counted the space as free — and it has our signal dispositions,
 * so a SIGTERM to the program and its tracker at once ends it before its
 * cleanup. 1 when it is ready, 0 if it exited first, -1 (errno) if recv
 * failed.
 */
static int await_tracker(int sock)
{
    char ready;
    ssize_t r;
    do
        r = recv(sock, &ready, 1, 0);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : (int)r; /* 0: it exited first */
}

/* Start a tracker for the call `what` on block b; on success tracker_sock
 * is connected to it. Lock held, so the open-handle list the tracker
 * inherits is complete. */
static int start_tracker(const char *what, const pshm_block *b)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return err_errno(errno, what, b->name, "starting the resource tracker: socketpair");
    pid_t mid = raw_clone(0);
    if (mid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return err_errno(e, what, b->name, "starting the resource tracker: clone");
    }
    if (mid == 0) {
        /* The short-lived middle process: make the tracker, then vanish so
         * the tracker is orphaned and adopted by init. Its exit status is
         * the errno of a failed clone (all errno values fit in 8 bits). */
        pid_t t = raw_clone(SIGCHLD);
        if (t == 0) {
            close(sv[0]); /* the library's end: holding it, we'd never see EOF */
            drop_inherited_blocks();
            tracker_main(sv[1]);
        }
        _exit(t < 0 ? errno : 0);
    }
    close(sv[1]);
    int status = 0;
    while (waitpid(mid, &status, __WCLONE) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        close(sv[0]);
        int e = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
        return err_errno(e, what, b->name, "starting the resource tracker: clone");
    }
    int ready = await_tracker(sv[0]);
    if (ready <= 0) {
        int e = errno;
        close(sv[0]);
        return ready < 0 ? err_errno(e, what, b->name, "starting the resource tracker: recv")
                         : err_set(PSHM_ESYS,
                                   "%s \"%s\": starting the resource tracker: it exited "
                                   "before it was ready",
                                   what, b->name);
    }
    /* Room for as many queued records as the system allows (see tracker_main). */
    int room = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    tracker_sock = sv[0];
    return 0;
}

static int send_msg(const pshm_block *b)
{
    struct tracker_msg m = {
        .quiet = b->quiet, .dev = (uint64_t)b->dev, .ino = (uint64_t)b->ino};
    size_t n = strlen(b->name);
    memcpy(m.name, b->name, n + 1);
    size_t len = offsetof(struct tracker_msg, name) + n + 1;
    ssize_t r;
    do
        r = send(tracker_sock, &m, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r == (ssize_t)len ? 0 : -1;
}

/* Register b, restarting a dead tracker once and re-registering what we
 * hold. */
static int register_or_restart(const pshm_block *b, const char *what)
{
    if (tracker_sock >= 0 && send_msg(b) == 0)
        return 0;
    if (tracker_sock >= 0) {
        close(tracker_sock);
        tracker_sock = -1;
    }
    int rc = start_tracker(what, b);
    if (rc < 0)
        return rc;
    for (pshm_block *t = open_handles(); t != NULL; t = t->open_next)
        if (t != b && !(t->flags & PSHM_UNTRACKED) && !t->unlinked && send_msg(t) < 0)
            return err_errno(errno, what, b->name,
                             "re-registering with the new resource "
                             "tracker: send");
    if (send_msg(b) < 0)
        return err_errno(errno, what, b->name, "registering with the resource tracker: send");
    return 0;
}

int tracker_register(pshm_block *b, const char *what)
{
    global_lock();
    int rc = register_or_restart(b, what);
    global_unlock();
    return rc;
}

void tracker_detach(void) { tracker_sock = -1; }

/* ---- the tracker process ----------------------------------------------
 * Only async-signal-safe code from here on: see the comment at the top. */

struct record {
    uint64_t dev, ino;
    uint8_t state;   /* SLOT_EMPTY, SLOT_USED or SLOT_DELETED */
    uint8_t retries; /* checks still due soon (see wait_for_users) */
    uint8_t quiet;   /* removed without a word (a named lock, meant to go) */
    uint8_t stale;   /* while making room: to be dropped */
    int fd;          /* kept open while the block is busy, else -1 */
    char name[PSHM_NAME_MAX + 1];
};
enum { SLOT_EMPTY = 0, SLOT_USED, SLOT_DELETED };

/* Open addressing keyed by name; memory from mmap, which is signal-safe. */
struct table {
    struct record *slots;
    size_t cap;  /* a power of two, at least TABLE_MIN */
    size_t used; /* SLOT_USED + SLOT_DELETED, to keep probes short */
};
#define TABLE_MIN 1024

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

static void build_path(char *path, const char *name)
{
    static const char dir[] = SHM_DIR "/";
    memcpy(path, dir, sizeof dir - 1);
    memcpy(path + sizeof dir - 1, name, strlen(name) + 1);
}

/* ---- making room ---------------------------------------------------------
 * Nobody tells the tracker of an unlink (that cost the caller a send(2) per
 * unlink), so records of removed blocks stay until the table needs room,
 * and are dropped then. A record is stale when no process holds its inode
 * (no lock on it in /proc/locks) and, looked at after that, its name does
 * not stand for it (no such name, or another object has it). The order
 * matters: a create registers its block before it links it under its name
 * (docs/tracker.md, point 7), and holds the inode with its shared flock
 * from before the registration until its close, which comes after the
 * link (the manager server's blocks too: block_create_closed). An inode nobody holds has had its last chance of a name; had we
 * looked at the name first, a create could link and close in between. */

/* Whether r's name stands for r's block (lstat: check_record opens with
 * O_NOFOLLOW). A failure other than ENOENT tells nothing: keep it. */
static bool name_stands_for(const struct record *r)
{
    char path[sizeof SHM_DIR + PSHM_NAME_MAX + 1];
    build_path(path, r->name);
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno != ENOENT;
    return st.st_dev == (dev_t)r->dev && st.st_ino == (ino_t)r->ino;
}

/* The inodes of the records, and whether /proc/locks shows a lock on
 * each (a hash set; memory from mmap). */
struct inode_key {
    uint64_t dev, ino;
    bool used, held;
};
struct inode_set {
    struct inode_key *keys;
    size_t cap; /* a power of two */
};

static struct inode_key *inode_slot(struct inode_set *s, uint64_t dev, uint64_t ino)
{
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)(((dev ^ ino) * 0x9e3779b97f4a7c15u) >> 32) & mask;;
         i = (i + 1) & mask) {
        struct inode_key *k = &s->keys[i];
        if (!k->used || (k->dev == dev && k->ino == ino))
            return k;
    }
}

/* Parse the unsigned number at *p in `base`, up to a character that is not
 * a digit; false if there was none. */
static bool parse_num(const char **p, const char *end, unsigned base, uint64_t *out)
{
    const char *start = *p;
    uint64_t v = 0;
    for (; *p < end; (*p)++) {
        unsigned c = (unsigned char)**p, d = c - '0' <= 9 ? c - '0' : (c | 32) - 'a' + 10;
        if (d >= base)
            break;
        v = v * base + d;
    }
    *out = v;
    return *p > start;
}

/* One line of /proc/locks ("1: FLOCK  ADVISORY  READ 4011 00:28:2 0 EOF"):
 * its MAJOR:MINOR:INODE field (hexadecimal, hexadecimal, decimal) marks
 * that inode held. */
static void mark_line(struct inode_set *s, const char *p, const char *end)
{
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        const char *tok = p;
        int colons = 0;
        for (; p < end && *p != ' '; p++)
            colons += *p == ':';
        uint64_t major, minor, ino;
        if (colons != 2 || !parse_num(&tok, p, 16, &major) || *tok++ != ':' ||
            !parse_num(&tok, p, 16, &minor) || *tok++ != ':' || !parse_num(&tok, p, 10, &ino))
            continue;
        struct inode_key *k =
            inode_slot(s, (uint64_t)makedev((unsigned)major, (unsigned)minor), ino);
        if (k->used)
            k->held = true;
        return;
    }
}

/* Mark each inode of s that some process holds a lock on; false if
 * /proc/locks cannot be read. The kernel hands it out a page per read, so
 * a lock is missed only if the list changed between two reads and shifted
 * it across their boundary; see docs/tracker.md, Limits. */
static bool mark_locked(struct inode_set *s)
{
    int fd = open("/proc/locks", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[4096];
    size_t have = 0;
    ssize_t n;
    while ((n = read(fd, buf + have, sizeof buf - have)) > 0) {
        have += (size_t)n;
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', (size_t)(buf + have - line))) != NULL) {
            mark_line(s, line, nl);
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof buf)
            have = 0; /* no line of the kernel's is this long */
    }
    close(fd);
    return n == 0;
}

/* A tmpfs directory grows by this many bytes per entry (BOGO_DIRENT_SIZE). */
#define DIRENT_SIZE 20

/* Unflag each flagged record that SHM_DIR lists under its name with its
 * inode. Reading the directory costs far less than an lstat of each name
 * (2-3 µs for a name that is gone), unless the directory holds many more
 * entries than there are records to look at: then, or if it cannot be
 * read, false. */
static bool unflag_listed(struct table *t, size_t flagged)
{
    int dir = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return false;
    struct stat st;
    bool listed = fstat(dir, &st) == 0 && (size_t)st.st_size / DIRENT_SIZE <= 8 * flagged;
    char buf[4096] __attribute__((aligned(__alignof__(struct dirent64))));
    ssize_t n = 0;
    while (listed && (n = getdents64(dir, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(buf + off);
            off += d->d_reclen;
            struct record key = {.dev = (uint64_t)st.st_dev, .ino = (uint64_t)d->d_ino};
            size_t len = strlen(d->d_name);
            if (len > PSHM_NAME_MAX)
                continue;
            memcpy(key.name, d->d_name, len + 1);
            struct record *r = table_find(t, &key, false);
            if (r != NULL)
                r->stale = 0;
        }
    }
    close(dir);
    return listed && n == 0;
}

/* Flag the stale records; none if who holds what cannot be known. A busy
 * record (its fd kept: after EOF only, when nothing registers) is not
 * looked at: check_record lets it go at its next check. */
static void flag_stale(struct table *t)
{
    struct inode_set s = {.cap = 1};
    while (s.cap < 2 * t->used)
        s.cap *= 2;
    size_t bytes = s.cap * sizeof *s.keys;
    s.keys = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool known = s.keys != MAP_FAILED;
    for (size_t i = 0; i < t->cap; i++) {
        struct record *r = &t->slots[i];
        r->stale = 0;
        if (known && r->state == SLOT_USED && r->fd < 0)
            *inode_slot(&s, r->dev, r->ino) = (struct inode_key){r->dev, r->ino, true, false};
    }
    known = known && mark_locked(&s);
    size_t flagged = 0; /* held by nobody: now, is the name still theirs? */
    for (size_t i = 0; known && i < t->cap; i++) {
        struct record *r = &t->slots[i];
        r->stale =
            r->state == SLOT_USED && r->fd < 0 && !inode_slot(&s, r->dev, r->ino)->held;
        flagged += r->stale;
    }
    if (s.keys != MAP_FAILED)
        munmap(s.keys, bytes);
    if (flagged > 0 && !unflag_listed(t, flagged))
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].stale)
                t->slots[i].stale = !name_stands_for(&t->slots[i]);
}

/*
 * Make room for one more record: drop the stale records, then move the
 * others to a table at most 1/4 full. The next rebuild then comes after at
 * least cap/2 registrations (at 3/4 load) and looks at at most 3/4 cap
 * records: each registered since (in place of the unregister message the
 * caller no longer sends) and the at most cap/4 kept now, at most 0.5 per
 * registration more. Looking at them is one read of /proc/locks (as long
 * as the system has locks), then, for the records nobody holds, one read of
 * SHM_DIR, or an lstat each where the directory is much the larger.
 * Memory follows the records kept at the last rebuild:
 * fewer than 8 slots each (4, rounded up to a power of two), at least
 * TABLE_MIN slots.
 */
static bool table_make_room(struct table *t)
{
    flag_stale(t);
    size_t kept = 0;
    for (size_t i = 0; i < t->cap; i++)
        kept += t->slots[i].state == SLOT_USED && !t->slots[i].stale;
    size_t cap = TABLE_MIN;
    while (cap < 4 * kept)
        cap *= 2;
    struct table old = *t;
    if (!table_alloc(t, cap))
        return false;
    for (size_t i = 0; i < old.cap; i++) {
        struct record *r = &old.slots[i];
        if (r->state != SLOT_USED || r->stale)
            continue;
        *table_find(t, r, true) = *r;
        t->used++;
    }
    munmap(old.slots, old.cap * sizeof(struct record));
    return true;
}

static void table_apply(struct table *t, const struct tracker_msg *m)
{
    struct record key = {.dev = m->dev, .ino = m->ino, .fd = -1, .quiet = m->quiet};
    memcpy(key.name, m->name, sizeof key.name);
    if ((t->used + 1) * 4 > t->cap * 3 && !table_make_room(t))
        return; /* out of memory: this block will not be cleaned up */
    struct record *r = table_find(t, &key, true);
    if (r->state == SLOT_USED) {
        r->quiet |= key.quiet; /* registered before, e.g. by a forked sibling */
        return;
    }
    if (r->state == SLOT_EMPTY)
        t->used++;
    key.state = SLOT_USED;
    *r = key;
}

/* ---- messages ---------------------------------------------------------
 * Until the family is gone they go to the stderr it gave us. A stderr that
 * is a pipe or socket is then let go (its reader, such as a shell's $(...)
 * or Python's capture_output, waits until every writer has closed it), and
 * later messages go to syslog; a terminal or a file keeps them all. */

/* A line of text, truncated (never split) when it would not fit. */
struct line {
    char buf[4096];
    size_t len;
};

static void line_add_bytes(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n && l->len < sizeof l->buf; i++)
        l->buf[l->len++] = s[i];
}

static void line_add(struct line *l, const char *s) { line_add_bytes(l, s, strlen(s)); }

static void line_add_uint(struct line *l, size_t v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        line_add_bytes(l, &digits[--n], 1);
}

/* Longest escaped form of a name: every byte as \xHH. */
#define NAME_SHOWN_MAX (4 * PSHM_NAME_MAX)

/* A block name as text a terminal cannot take for commands: bytes outside
 * printable ASCII, and the backslash, as \xHH. */
static void line_add_name(struct line *l, const char *name)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            line_add_bytes(l, (const char *)p, 1);
        } else {
            char esc[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
            line_add_bytes(l, esc, sizeof esc);
        }
    }
}

static bool to_syslog; /* stderr was let go: messages go to syslog */
static int syslog_sock = -1;

static void syslog_send(const struct line *l)
{
    if (syslog_sock == -1) {
        struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};
        syslog_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (syslog_sock >= 0 &&
            connect(syslog_sock, (struct sockaddr *)&addr, sizeof addr) < 0) {
            close(syslog_sock);
            syslog_sock = -2; /* no syslog here: later messages are dropped */
        }
    }
    if (syslog_sock < 0)
        return;
    struct line m = {.len = 0};
    line_add(&m, "<13>pshm-tracker["); /* facility user, severity notice */
    line_add_uint(&m, (size_t)getpid());
    line_add(&m, "]: ");
    line_add_bytes(&m, l->buf, l->len > 0 ? l->len - 1 : 0); /* without the newline */
    send(syslog_sock, m.buf, m.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void emit(struct line *l)
{
    if (l->len == sizeof l->buf)
        l->len--;
    l->buf[l->len++] = '\n';
    if (to_syslog) {
        syslog_send(l);
    } else {
        for (size_t off = 0; off < l->len;) {
            ssize_t w = write(STDERR_FILENO, l->buf + off, l->len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    l->len = 0;
}

/* Once the family is gone: stop holding a pipe or socket on stderr. */
static void let_go_of_stderr(void)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        return;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0) {
        dup2(devnull, STDERR_FILENO);
        close(devnull);
    } else {
        close(STDERR_FILENO);
    }
    to_syslog = true;
}

/* What one pass removed, said in one line that names at most REPORT_NAMES
 * blocks (a cleanup of 10,000 blocks is one short line, not 130 kB). */
#define REPORT_NAMES 10
struct report {
    size_t removed, shown;
    struct line names;
};

static void report_add(struct report *rep, const char *name)
{
    rep->removed++;
    if (rep->shown == REPORT_NAMES ||
        rep->names.len + 1 + NAME_SHOWN_MAX > sizeof rep->names.buf)
        return;
    line_add(&rep->names, " ");
    line_add_name(&rep->names, name);
    rep->shown++;
}

static void report_emit(struct report *rep, const char *when, size_t still_busy)
{
    if (rep->removed == 0)
        return;
    struct line l = {.len = 0};
    line_add(&l, "pshm tracker: removed ");
    line_add_uint(&l, rep->removed);
    line_add(&l, rep->removed == 1 ? " shared memory block " : " shared memory blocks ");
    line_add(&l, when);
    line_add(&l, ":");
    line_add_bytes(&l, rep->names.buf, rep->names.len);
    if (rep->removed > rep->shown) {
        line_add(&l, " and ");
        line_add_uint(&l, rep->removed - rep->shown);
        line_add(&l, " more");
    }
    if (still_busy > 0) {
        line_add(&l, " (");
        line_add_uint(&l, still_busy);
        line_add(&l, " still in use)");
    }
    emit(&l);
    rep->removed = rep->shown = 0;
    rep->names.len = 0;
}

/* ---- removing blocks --------------------------------------------------- */

enum check { GONE, REMOVED, BUSY };

/*
 * With fd open on record r's block: if nobody holds it (our LOCK_EX is
 * granted only then), it is still linked under its name and still carries
 * its creator's TRACKED_MARK, remove it.
 */
static enum check try_remove(const char *path, int fd)
{
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK || errno == EINTR ? BUSY : GONE;
    struct stat st, now;
    if (fstat(fd, &st) == 0 && st.st_nlink > 0 && (st.st_mode & TRACKED_MARK) &&
        stat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
        return unlink(path) == 0 ? REMOVED : GONE;
    return GONE;
}

/*
 * Check record r once. The descriptor of a busy block is kept, so waiting
 * costs one flock per check and our own closes never wake us (see
 * wait_for_users); out of descriptors, a busy block is reopened each time.
 */
static enum check check_record(struct record *r)
{
    char path[sizeof SHM_DIR + PSHM_NAME_MAX + 1];
    build_path(path, r->name);
    int fd = r->fd;
    if (fd < 0) {
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return errno == EMFILE || errno == ENFILE || errno == ENOMEM ? BUSY : GONE;
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_dev != (dev_t)r->dev || st.st_ino != (ino_t)r->ino) {
            close(fd); /* removed, or the name is another block's now */
            return GONE;
        }
    }
    enum check result = try_remove(path, fd);
    if (result == BUSY) {
        r->fd = fd;
    } else {
        close(fd);
        r->fd = -1;
    }
    return result;
}

/* Check every record due a check (retries > 0, or all when `all`); count
 * what is still busy into *busy. Returns whether checks remain due soon. */
static bool check_due(struct table *t, bool all, size_t *busy, struct report *rep)
{
    bool due = false;
    for (size_t i = 0; i < t->cap; i++) {
        struct record *r = &t->slots[i];
        if (r->state != SLOT_USED || !(all || r->retries > 0))
            continue;
        enum check rc = check_record(r);
        if (rc == REMOVED && !r->quiet)
            report_add(rep, r->name);
        if (rc != BUSY) {
            r->state = SLOT_DELETED;
            (*busy)--;
        } else if (r->retries > 0 && --r->retries > 0) {
            due = true;
        }
    }
    return due;
}

/*
 * While blocks are busy: each is re-checked when a descriptor on a file in
 * SHM_DIR with its name is closed (inotify), and every block once per
 * SWEEP_MS whatever happens, so each is removed soon after its own last
 * user lets go, however long other blocks stay busy. The close event
 * precedes the release of the closer's flock by a few instructions, so an
 * event buys RETRIES checks RETRY_MS apart. Without inotify (its per-user
 * limits), the sweep alone remains.
 */
#define SWEEP_MS 1000
#define RETRY_MS 5
#define RETRIES 8

/* Due RETRIES checks for every busy record named `name` that we keep open
 * (one we reopen would wake us with its own close, for ever). */
static void flag_name(struct table *t, const char *name)
{
    size_t mask = t->cap - 1;
    for (size_t i = name_hash(name) & mask; t->slots[i].state != SLOT_EMPTY;
         i = (i + 1) & mask) {
        struct record *r = &t->slots[i];
        if (r->state == SLOT_USED && r->fd >= 0 && strcmp(r->name, name) == 0)
            r->retries = RETRIES;
    }
}

static void flag_all(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].state == SLOT_USED)
            t->slots[i].retries = RETRIES;
}

/* Read what inotify has queued and flag the records it concerns. */
static void take_events(struct table *t, int in)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->mask & IN_Q_OVERFLOW)
                flag_all(t);
            else if (ev->len > 0)
                flag_name(t, ev->name);
            p += sizeof *ev + ev->len;
        }
    }
}

static void wait_for_users(struct table *t, size_t busy)
{
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (in >= 0 && inotify_add_watch(in, SHM_DIR, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE) < 0) {
        close(in);
        in = -1;
    }
    struct report rep = {.removed = 0};
    int64_t next_sweep = monotonic_ms() + SWEEP_MS;
    bool due = false;
    while (busy > 0) {
        int64_t now = monotonic_ms();
        int timeout = due ? RETRY_MS : (int)(next_sweep > now ? next_sweep - now : 0);
        struct pollfd p = {in, POLLIN, 0}; /* fd -1: poll just sleeps */
        if (poll(&p, 1, timeout) > 0)
            take_events(t, in);
        bool sweep = monotonic_ms() >= next_sweep;
        if (sweep)
            next_sweep = monotonic_ms() + SWEEP_MS;
        due = check_due(t, sweep, &busy, &rep);
        report_emit(&rep, "after its last user closed it", busy);
    }
    if (in >= 0)
        close(in);
}

/* After EOF: remove every recorded block nobody holds, let go of stderr,
 * then wait for the others' users. */
static void cleanup(struct table *t)
{
    struct report rep = {.removed = 0};
    size_t busy = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].state == SLOT_USED)
            busy++;
    check_due(t, true, &busy, &rep);
    report_emit(&rep, "that no process unlinked", busy);
    let_go_of_stderr();
    if (busy > 0)
        wait_for_users(t, busy);
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
    if (chdir("/") < 0) { /* nothing depends on the directory */
    }
    /* A descriptor per busy block: as many as we may have. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    /* The caller's handlers are not ours: defaults, but for what we ignore.
     * SIGTERM too: `systemctl stop` and `kill 0` send it to the whole group
     * at once, and the cleanup is the very thing that must survive them. */
    struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
    sigaction(SIGTERM, &ign, NULL);
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
    /* The caller waits for this (await_tracker); if it is gone, the
     * receive below reads EOF. */
    send(3, "R", 1, MSG_NOSIGNAL);
    struct table t;
    if (!table_alloc(&t, TABLE_MIN))
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
