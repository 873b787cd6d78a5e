/*
 * block.c — named shared memory blocks: create, attach, close, unlink.
 *
 * A block is a POSIX shared memory object (shm_open) mapped MAP_SHARED. Two
 * things go beyond the bare calls, both cheap: every open handle holds a
 * shared flock on its block (the tracker's proof that someone still uses
 * it, released by the kernel on close, exit or SIGKILL), and every handle
 * remembers the block's device and inode, so unlink never removes a newer
 * block that reuses the name.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* How often a random name may collide before create gives up. */
#define RANDOM_NAME_TRIES 64
/* How long taking a handle's shared flock may wait for an exclusive lock
 * held elsewhere. pshm's own trackers hold one for a few system calls; a
 * foreign program may hold one forever, and must not hang us. */
#define LOCK_WAIT_MS 2000

static pthread_mutex_t global = PTHREAD_MUTEX_INITIALIZER;
static pshm_block *open_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

void global_unlock(void) { pthread_mutex_unlock(&global); }
static void lock_global(void) { pthread_mutex_lock(&global); }
static void install_atfork(void)
{
    pthread_atfork(lock_global, global_unlock, global_unlock);
}

/* The fork handlers are in place before anyone can first hold the lock: a
 * fork while another thread held it, handlers not yet installed, would
 * leave the child a lock nobody unlocks (seen: the first create of a
 * process drew its random name under the lock, a thread forked a manager
 * server, and the server hung in its first create). */
void global_lock(void)
{
    pthread_once(&atfork_once, install_atfork);
    lock_global();
}

pshm_block *open_handles(void) { return open_head; }

void drop_inherited_blocks(void)
{
    for (pshm_block *b = open_head; b != NULL; b = b->open_next) {
        if (b->buf != NULL)
            munmap(b->buf, b->size);
        close(b->fd); /* may sit on 0-2, where no blanket close reaches */
    }
    open_head = NULL;
}

static void open_list_add(pshm_block *b)
{
    b->open_prev = NULL;
    b->open_next = open_head;
    if (open_head != NULL)
        open_head->open_prev = b;
    open_head = b;
}

static void open_list_remove(pshm_block *b)
{
    if (b->open_prev != NULL)
        b->open_prev->open_next = b->open_next;
    else
        open_head = b->open_next;
    if (b->open_next != NULL)
        b->open_next->open_prev = b->open_prev;
    b->open_prev = b->open_next = NULL;
}

/* Where glibc's shm_open would look: the one path every call here uses. */
typedef char shm_path_t[sizeof SHM_DIR + PSHM_NAME_MAX + 1];

static const char *shm_path(shm_path_t path, const char *bare)
{
    memcpy(path, SHM_DIR "/", sizeof SHM_DIR);
    memcpy(path + sizeof SHM_DIR, bare, strlen(bare) + 1);
    return path;
}

/* shm_open(3) without the detour: the same open(2) glibc makes. */
static int shm_open_bare(const char *bare, int oflag)
{
    shm_path_t path;
    return open(shm_path(path, bare), oflag | O_CLOEXEC | O_NOFOLLOW, 0600);
}

static int shm_unlink_bare(const char *bare)
{
    shm_path_t path;
    return unlink(shm_path(path, bare));
}

/*
 * Random bytes for names, drawn RANDOM_POOL at a time: a manager server
 * names a block per request, and a system call per name is a measurable
 * part of its work. The pool has a page of its own, which the kernel
 * empties in every child made by fork or clone (MADV_WIPEONFORK): a child
 * finds no bytes left and draws its own, so two processes never hand out
 * the same names. Where the kernel cannot do that (before Linux 4.14), each
 * name draws its own bytes. Guarded by global_lock().
 */
#define RANDOM_POOL 256
struct random_pool {
    size_t left; /* bytes[0..left) are unused */
    unsigned char bytes[RANDOM_POOL];
};
static struct random_pool *pool;
static bool pool_unavailable;

static bool pool_ready(void)
{
    if (pool != NULL || pool_unavailable)
        return pool != NULL;
    void *p =
        mmap(NULL, sizeof *pool, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED && madvise(p, sizeof *pool, MADV_WIPEONFORK) == 0) {
        pool = p;
    } else {
        if (p != MAP_FAILED)
            munmap(p, sizeof *pool);
        pool_unavailable = true;
    }
    return pool != NULL;
}

static void random_bytes(unsigned char *out, size_t n)
{
    global_lock();
    if (pool_ready()) {
        if (pool->left < n) {
            randombytes_buf(pool->bytes, RANDOM_POOL);
            pool->left = RANDOM_POOL;
        }
        pool->left -= n;
        memcpy(out, pool->bytes + pool->left, n);
    } else {
        randombytes_buf(out, n);
    }
    global_unlock();
}

/* "psm_" + 8 hex digits from a cryptographic source, as CPython makes them. */
static void random_name(char name[PSHM_NAME_MAX + 1])
{
    unsigned char rnd[4];
    random_bytes(rnd, sizeof rnd);
    snprintf(name, PSHM_NAME_MAX + 1, "psm_%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
}

static pshm_block *block_new(unsigned flags)
{
    pshm_block *b = calloc(1, sizeof *b);
    if (b != NULL) {
        b->fd = -1;
        b->flags = flags;
    }
    return b;
}

/* Below this size the free-space check is not worth its system call. */
#define SPACE_CHECK_MIN ((size_t)1 << 20)

/* Bytes free in b's file system, for messages. */
static unsigned long long space_free(const pshm_block *b)
{
    struct statvfs vfs;
    return fstatvfs(b->fd, &vfs) == 0 ? (unsigned long long)vfs.f_bavail * vfs.f_frsize : 0;
}

/*
 * fallocate(2) itself, not posix_fallocate: where the file system cannot
 * reserve, glibc's fallback writes into the range, which would race with
 * other processes' writes to a live block. tmpfs undoes a reservation that
 * failed part way, so a failure leaves the free space as it was.
 */
int block_reserve(const pshm_block *b, const char *what, size_t offset, size_t len)
{
    int rc;
    do
        rc = len == 0 ? 0 : fallocate(b->fd, 0, (off_t)offset, (off_t)len);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return 0;
    if (errno == ENOSPC)
        return err_set(PSHM_ELIMIT,
                       "%s \"%s\": fallocate: no space left in " SHM_DIR
                       " for %zu bytes at offset %zu (%llu bytes free)",
                       what, b->name, len, offset, space_free(b));
    return err_errno(errno, what, b->name, "fallocate");
}

/*
 * Give the new, empty object its size. Without PSHM_POPULATE tmpfs reserves
 * pages lazily, so a large block that cannot fit in the free space is
 * refused here rather than raising SIGBUS at the first write past the end
 * of the space; with it, every page is reserved now.
 */
static int size_new_block(pshm_block *b, size_t size)
{
    struct statvfs vfs;
    /* f_blocks == 0: a tmpfs without a size limit, where nothing can be said. */
    if (size >= SPACE_CHECK_MIN && fstatvfs(b->fd, &vfs) == 0 && vfs.f_blocks != 0 &&
        size / vfs.f_frsize >= (size_t)vfs.f_bavail)
        return err_set(PSHM_ELIMIT,
                       "create \"%s\": %zu bytes do not fit in the %llu bytes "
                       "free in " SHM_DIR,
                       b->name, size, (unsigned long long)vfs.f_bavail * vfs.f_frsize);
    if (ftruncate(b->fd, (off_t)size) < 0)
        return err_errno(errno, "create", b->name, "ftruncate");
    if (b->flags & PSHM_POPULATE) {
        int rc = block_reserve(b, "create", 0, size);
        if (rc < 0)
            return rc;
    }
    b->size = size;
    return 0;
}

/* Map b; the caller holds the lock and b is on the open list, so a fork
 * (a new tracker) copies a list that names every mapping. */
static int map_locked(pshm_block *b, const char *what)
{
    int prot = (b->flags & PSHM_READONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
    int mflags = MAP_SHARED | ((b->flags & PSHM_POPULATE) ? MAP_POPULATE : 0);
    void *p = mmap(NULL, b->size, prot, mflags, b->fd, 0);
    if (p == MAP_FAILED)
        return err_errno(errno, what, b->name, "mmap");
    b->buf = p;
    b->lock_end = (b->flags & PSHM_READONLY) ? 0 : b->size;
    return 0;
}

int block_map(pshm_block *b, const char *what)
{
    global_lock();
    int rc = map_locked(b, what);
    global_unlock();
    return rc;
}

/* The handle is complete: it enters the open-handle list (a new tracker
 * is told of every tracked handle on it) and is mapped, unless the caller
 * asked for PSHM_NOMAP, under one hold of the lock. A failure to map
 * leaves it open: free it. */
static int enter_open(pshm_block *b, const char *what)
{
    global_lock();
    open_list_add(b);
    b->open = true;
    int rc = (b->flags & PSHM_NOMAP) ? 0 : map_locked(b, what);
    global_unlock();
    return rc;
}

static void close_fd(pshm_block *b)
{
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

/*
 * A tracked block is built before it has a name: an unnamed tmpfs inode
 * (O_TMPFILE) is locked, sized, mapped and registered with the tracker, and
 * only then linked under its name (publish). A process killed at any moment
 * leaves either nothing (the unnamed inode dies with it) or a named block
 * its tracker already knows — never an orphan no tracker will remove.
 * An untracked block makes no such promise, so it takes the cheaper road of
 * the bare calls: the name first (shm_open O_CREAT|O_EXCL), which saves the
 * linkat that costs about 1.3x in a create+close+unlink cycle.
 */
static int open_new(pshm_block *b, bool random)
{
    if (!(b->flags & PSHM_UNTRACKED)) {
        /* The mode carries the creator's choice from the first instant. */
        b->fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600 | TRACKED_MARK);
        b->marked = true;
        return b->fd < 0 ? err_errno(errno, "create", b->name, "open(O_TMPFILE)") : 0;
    }
    for (int tries = 0; tries < RANDOM_NAME_TRIES; tries++) {
        b->fd = shm_open_bare(b->name, O_RDWR | O_CREAT | O_EXCL);
        if (b->fd >= 0)
            return 0;
        if (errno != EEXIST || !random)
            return err_errno(errno, "create", b->name, "shm_open");
        random_name(b->name);
    }
    return err_set(PSHM_EEXIST, "create: %d random names in a row already existed",
                   RANDOM_NAME_TRIES);
}

/*
 * Take the handle's shared flock, waiting at most LOCK_WAIT_MS for an
 * exclusive lock held elsewhere (polling: a blocking flock cannot time out
 * without a signal, and signals belong to the caller).
 */
static int lock_shared(pshm_block *b, const char *what)
{
    int64_t deadline = -1;
    long pause_ns = 100000; /* 0.1 ms, doubled up to 50 ms */
    for (;;) {
        if (flock(b->fd, LOCK_SH | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return err_errno(errno, what, b->name, "flock");
        int64_t now = monotonic_ms();
        if (deadline < 0)
            deadline = now + LOCK_WAIT_MS;
        else if (now >= deadline)
            return err_set(PSHM_EBUSY, "%s \"%s\": flock: %s (waited %d ms)", what, b->name,
                           pshm_strerror(PSHM_EBUSY), LOCK_WAIT_MS);
        struct timespec pause = {0, pause_ns};
        nanosleep(&pause, NULL);
        if (pause_ns < 50000000)
            pause_ns *= 2;
    }
}

/* Record the device and inode of the new object open on b->fd. */
static int identify(pshm_block *b)
{
    struct stat st;
    if (fstat(b->fd, &st) < 0)
        return err_errno(errno, "create", b->name, "fstat");
    b->dev = st.st_dev;
    b->ino = st.st_ino;
    return 0;
}

/* Lock, identify, size and open (and map) the new object open on b->fd. */
static int build(pshm_block *b, size_t size)
{
    int rc = lock_shared(b, "create");
    if (rc == 0)
        rc = identify(b);
    if (rc == 0)
        rc = size_new_block(b, size);
    if (rc == 0)
        rc = enter_open(b, "create");
    return rc;
}

/*
 * Link the unnamed inode under path. AT_EMPTY_PATH is the direct way but
 * needs CAP_DAC_READ_SEARCH; without it, the /proc/self/fd link does the
 * same for any user. Which one works is learnt once.
 */
static int link_inode(int fd, const char *path)
{
    static int empty_path_works = 1; /* racy by design: every value is safe */
    if (__atomic_load_n(&empty_path_works, __ATOMIC_RELAXED)) {
        if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno != ENOENT && errno != EPERM)
            return -1;
        __atomic_store_n(&empty_path_works, 0, __ATOMIC_RELAXED);
    }
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, fdpath, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/*
 * Register the unnamed, tracked block under its name, then link the inode
 * under that name, exclusively: linkat fails with EEXIST where a block of
 * that name exists. A random name that collides is replaced and retried.
 */
static int publish(pshm_block *b, bool random)
{
    shm_path_t path;
    for (int tries = 0; tries < RANDOM_NAME_TRIES; tries++) {
        int rc = tracker_register(b, "create");
        if (rc < 0)
            return rc; /* the unnamed inode dies with the handle: nothing left */
        if (link_inode(b->fd, shm_path(path, b->name)) == 0)
            return 0;
        int e = errno; /* the record left stands for no name: the tracker drops it */
        if (e != EEXIST || !random)
            return err_errno(e, "create", b->name, "linkat");
        random_name(b->name);
    }
    return err_set(PSHM_EEXIST, "create: %d random names in a row already existed",
                   RANDOM_NAME_TRIES);
}

int pshm_block_create(pshm_block **out, const char *name, size_t size, unsigned flags)
{
    const char *shown = name ? name : "(random)";
    int rc = block_check_create(out, name, size, flags);
    if (rc < 0)
        return rc;
    if (name == NULL && os_crypto_init() < 0)
        return err_set(PSHM_ESYS, "create: libsodium failed to initialise");
    pshm_block *b = block_new(flags);
    if (b == NULL)
        return err_set(PSHM_ELIMIT, "create \"%s\": out of memory", shown);
    if (name != NULL)
        rc = name_normalize("create", name, b->name);
    else
        random_name(b->name);
    bool tracked = !(flags & PSHM_UNTRACKED);
    if (rc == 0)
        rc = open_new(b, name == NULL);
    bool named = rc == 0 && !tracked; /* the bare-calls road names it first */
    if (rc == 0)
        rc = build(b, size);
    if (rc == 0 && tracked)
        rc = publish(b, name == NULL);
    if (rc < 0) {
        if (named)
            shm_unlink_bare(b->name); /* ours: made exclusively above */
        pshm_block_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

/*
 * The manager server's blocks: tracked, random name, every page reserved,
 * and handed back closed (the server never maps or holds what it owns).
 * The road of pshm_block_create, less what only a handle that stays open
 * needs: no mapping, no ftruncate (fallocate sets the size as it
 * reserves), and the flock only until the name is linked (then the
 * descriptor is closed). The pages are reserved before the name is
 * linked, so a block that does not fit is never seen by anyone.
 */
int block_create_closed(pshm_block **out, size_t size)
{
    int rc = block_check_create(out, NULL, size, 0);
    if (rc < 0)
        return rc;
    if (os_crypto_init() < 0)
        return err_set(PSHM_ESYS, "create: libsodium failed to initialise");
    pshm_block *b = block_new(0);
    if (b == NULL)
        return err_set(PSHM_ELIMIT, "create (random name): out of memory");
    random_name(b->name);
    /* Locked until published: the tracker keeps the record of a held inode
     * that has no name yet (tracker.c, making room). */
    if ((rc = open_new(b, true)) == 0 && (rc = lock_shared(b, "create")) == 0 &&
        (rc = identify(b)) == 0 && (rc = block_reserve(b, "create", 0, size)) == 0 &&
        (rc = publish(b, true)) == 0) {
        b->size = size;
        close_fd(b);
        *out = b;
        return 0;
    }
    pshm_block_free(b); /* the unnamed inode dies with its descriptor */
    return rc;
}

/* Check what attach opened: a live, non-empty regular object. */
static int check_attached(pshm_block *b, const struct stat *st)
{
    if (!S_ISREG(st->st_mode))
        return err_set(PSHM_EINVAL, "attach \"%s\": not a shared memory object", b->name);
    if (st->st_nlink == 0)
        return err_set(PSHM_ENOENT, "attach \"%s\": %s (removed while attaching)", b->name,
                       pshm_strerror(PSHM_ENOENT));
    if (st->st_size <= 0)
        return err_set(PSHM_EBADSIZE, "attach \"%s\": the block is empty (size 0)", b->name);
    if ((uint64_t)st->st_size > SIZE_MAX)
        return err_set(PSHM_EBADSIZE, "attach \"%s\": the block is too large to map",
                       b->name);
    return 0;
}

int pshm_block_attach(pshm_block **out, const char *name, unsigned flags)
{
    if (out == NULL || (flags & ~(unsigned)ATTACH_FLAGS))
        return err_set(PSHM_EINVAL, "attach \"%s\": NULL handle pointer or invalid flags",
                       name ? name : "(null)");
    *out = NULL;
    pshm_block *b = block_new(flags);
    if (b == NULL)
        return err_set(PSHM_ELIMIT, "attach \"%s\": out of memory", name ? name : "(null)");
    int rc = name_normalize("attach", name, b->name);
    if (rc < 0) {
        free(b);
        return rc;
    }
    /* Nothing below may alter the block: a failed attach only closes. */
    b->fd = shm_open_bare(b->name, (flags & PSHM_READONLY) ? O_RDONLY : O_RDWR);
    struct stat st;
    if (b->fd < 0)
        rc = err_errno(errno, "attach", b->name, "shm_open");
    else if ((rc = lock_shared(b, "attach")) < 0)
        ;
    else if (fstat(b->fd, &st) < 0)
        rc = err_errno(errno, "attach", b->name, "fstat");
    else if ((rc = check_attached(b, &st)) == 0) {
        b->size = (size_t)st.st_size;
        b->dev = st.st_dev;
        b->ino = st.st_ino;
        b->marked = (st.st_mode & TRACKED_MARK) != 0;
    }
    if (rc < 0) {
        close_fd(b);
        free(b);
        return rc;
    }
    if ((rc = enter_open(b, "attach")) < 0 ||
        (rc = block_track_attached(b, flags, "attach")) < 0) {
        pshm_block_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

int block_track_attached(pshm_block *b, unsigned flags, const char *what)
{
    if ((flags & PSHM_UNTRACKED) || !b->marked) {
        b->flags |= PSHM_UNTRACKED; /* not on any tracker of ours */
        return 0;
    }
    b->flags &= ~(unsigned)PSHM_UNTRACKED;
    return tracker_register(b, what);
}

/* pread, not the mapping: reading a hole of a tmpfs file gives zeros
 * without allocating a page, where touching it through buf needs one. */
int pshm_block_read(const pshm_block *b, size_t offset, void *dst, size_t len)
{
    int rc = block_check_range(b, "read", offset, len);
    if (rc == 0 && dst == NULL && len > 0)
        rc = err_set(PSHM_EINVAL, "read \"%s\": NULL destination", b->name);
    for (size_t done = 0; rc == 0 && done < len;) {
        ssize_t got = pread(b->fd, (char *)dst + done, len - done, (off_t)(offset + done));
        if (got > 0)
            done += (size_t)got;
        else if (got == 0)
            rc = err_set(PSHM_ESYS,
                         "read \"%s\": the block shrank below %zu bytes while "
                         "being read",
                         b->name, offset + len);
        else if (errno != EINTR)
            rc = err_errno(errno, "read", b->name, "pread");
    }
    return rc;
}

int pshm_block_close(pshm_block *b)
{
    int rc = block_check_close(b);
    if (rc < 0)
        return rc;
    if (b->open) {
        global_lock();
        open_list_remove(b);
        b->open = false;
        if (b->buf != NULL && munmap(b->buf, b->size) < 0)
            rc = err_errno(errno, "close", b->name, "munmap");
        b->buf = NULL;
        b->lock_end = 0;
        if (b->fast != NULL)
            *b->fast = (fast_limits){0, 0};
        global_unlock();
    }
    close_fd(b); /* releases our shared lock; a no-op the second time */
    return rc;
}

/* Whether `bare` still names the very object (dev, ino) this handle opened. */
static int same_block(const pshm_block *b)
{
    struct stat st;
    shm_path_t path;
    if (stat(shm_path(path, b->name), &st) < 0)
        return err_errno(errno, "unlink", b->name, "stat");
    if (st.st_dev != b->dev || st.st_ino != b->ino)
        return err_set(PSHM_ENOENT,
                       "unlink \"%s\": the block was already removed; the name "
                       "now belongs to another block, which was left alone",
                       b->name);
    return 0;
}

int pshm_block_unlink(pshm_block *b)
{
    if (b == NULL)
        return err_set(PSHM_EINVAL, "unlink: NULL handle");
    if (b->unlinked)
        return err_set(PSHM_ENOENT, "unlink \"%s\": already unlinked through this handle",
                       b->name);
    int rc = same_block(b);
    if (rc == 0 && shm_unlink_bare(b->name) < 0)
        rc = err_errno(errno, "unlink", b->name, "shm_unlink");
    if (rc == 0 || rc == PSHM_ENOENT)
        b->unlinked = true; /* gone either way */
    return rc;
}

/* A handle whose block holds a lock the calling thread holds is freed,
 * but its mapping and descriptor stay (unowned) until the process exits,
 * so the kernel can still release that lock if the thread dies. */
void pshm_block_free(pshm_block *b)
{
    if (b == NULL)
        return;
    if (pshm_block_close(b) == PSHM_EBUSY) {
        global_lock();
        open_list_remove(b);
        global_unlock();
    }
    free(b);
}

int pshm_unlink(const char *name)
{
    char bare[PSHM_NAME_MAX + 1];
    int rc = name_normalize("unlink", name, bare);
    if (rc < 0)
        return rc;
    if (shm_unlink_bare(bare) < 0)
        return err_errno(errno, "unlink", bare, "shm_unlink");
    return 0;
}

static void fill_info(pshm_block_info *info, const char *bare, const struct stat *st)
{
    memset(info, 0, sizeof *info);
    memcpy(info->name, bare, strlen(bare) + 1);
    info->size = (uint64_t)st->st_size;
    info->mode = st->st_mode & 07777;
    info->uid = st->st_uid;
    info->gid = st->st_gid;
}

int pshm_block_stat(const char *name, pshm_block_info *info)
{
    char bare[PSHM_NAME_MAX + 1];
    int rc = name_normalize("stat", name, bare);
    if (rc < 0)
        return rc;
    if (info == NULL)
        return err_set(PSHM_EINVAL, "stat \"%s\": NULL info pointer", bare);
    shm_path_t path;
    struct stat st;
    if (lstat(shm_path(path, bare), &st) < 0)
        return err_errno(errno, "stat", bare, "stat");
    if (!S_ISREG(st.st_mode))
        return err_set(PSHM_ENOENT, "stat \"%s\": %s", bare, pshm_strerror(PSHM_ENOENT));
    fill_info(info, bare, &st);
    return 0;
}

int pshm_block_foreach(int (*fn)(const pshm_block_info *info, void *arg), void *arg)
{
    if (fn == NULL)
        return err_set(PSHM_EINVAL, "list blocks: NULL callback");
    DIR *dir = opendir(SHM_DIR);
    if (dir == NULL)
        return err_errno(errno, "list blocks in", SHM_DIR, "opendir");
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dir)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        pshm_block_info info;
        fill_info(&info, de->d_name, &st);
        rc = fn(&info, arg);
    }
    closedir(dir);
    return rc;
}
