/*
 * bench_transfer.c — moving 256 MiB from a child process to its parent.
 *
 * The child writes 256 MiB of a pattern that depends on a per-round seed;
 * the parent reads all of it and checks a checksum (so stale data from an
 * earlier round would fail). One figure, transfer.256MiB, in ns per whole
 * 256 MiB transfer, timed from the parent's "go" to the verified checksum:
 *
 *   pshm         the parent creates a fresh block, the child attaches and
 *                fills it, closes and signals; the parent sums it, closes
 *                and unlinks it (page allocation and faults included)
 *   pshm_reuse   one block for every round: the child keeps it attached,
 *                so only the writes and reads themselves are paid
 *   pipe         the child generates 1 MiB chunks and write()s them to a
 *                pipe (default 64 KiB capacity); the parent read()s and sums
 *   pipe_1MiB    the same with the pipe grown to 1 MiB (F_SETPIPE_SZ)
 *   unix_socket  the same over a SOCK_STREAM socketpair
 *
 * Output: "BENCH transfer.256MiB <impl> <ns>". PSHM_BENCH_SCALE multiplies
 * the measuring time (0.2 s and at least 3 rounds per impl).
 */
#include "pshm.h"

#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TRANSFER_SIZE ((size_t)256 << 20)
#define TRANSFER_WORDS (TRANSFER_SIZE / sizeof(uint64_t))
#define CHUNK_SIZE ((size_t)1 << 20)
#define CHUNK_WORDS (CHUNK_SIZE / sizeof(uint64_t))
#define PATTERN_MUL 0x9E3779B97F4A7C15ull

enum impl_kind { IMPL_PSHM, IMPL_PSHM_REUSE, IMPL_STREAM };

/* What the parent tells the child each round; seed 0 means "exit". */
struct command {
    uint64_t seed;
    char name[64]; /* the block to fill (pshm impls) */
};

/* The child's end of one impl's channels. */
struct child_link {
    pid_t pid;
    int ctl;  /* parent -> child commands */
    int done; /* child -> parent: "block filled" (pshm impls) */
    int data; /* child -> parent: the bytes (stream impls) */
};

static char block_name[64];

static void remove_leftover_block(void)
{
    pshm_unlink(block_name); /* after a failure; normally already gone */
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_transfer: %s: %s\n", what, why);
    exit(1);
}

/* ---- the pattern -------------------------------------------------------- */

/* Word i of a transfer is (i + seed) * PATTERN_MUL. */
static void fill_words(uint64_t *dst, size_t n, uint64_t first, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (first + i + seed) * PATTERN_MUL;
}

static uint64_t sum_words(const uint64_t *src, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += src[i];
    return sum;
}

/* The sum of every word, in closed form (all arithmetic mod 2^64). */
static uint64_t expected_sum(uint64_t seed)
{
    uint64_t n = TRANSFER_WORDS;
    return (n * (n - 1) / 2 + n * seed) * PATTERN_MUL;
}

/* ---- reliable reads and writes ----------------------------------------- */

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* False on EOF or error before len bytes. */
static bool read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        len -= (size_t)r;
    }
    return true;
}

/* ---- the child ------------------------------------------------------------ */

/* Generate the transfer a chunk at a time and write it to the stream. */
static bool child_stream(int data, uint64_t seed, uint64_t *chunk)
{
    for (size_t first = 0; first < TRANSFER_WORDS; first += CHUNK_WORDS) {
        fill_words(chunk, CHUNK_WORDS, first, seed);
        if (!write_all(data, chunk, CHUNK_SIZE))
            return false;
    }
    return true;
}

/* Fill the named block; keep it attached for the next round if asked. */
static bool child_block(const struct command *c, bool keep, pshm_block **held)
{
    if (*held == NULL && pshm_block_attach(held, c->name, 0) < 0)
        return false;
    fill_words(pshm_block_buf(*held), TRANSFER_WORDS, 0, c->seed);
    if (!keep) {
        pshm_block_free(*held);
        *held = NULL;
    }
    return true;
}

static void child_main(enum impl_kind kind, const struct child_link *l)
{
    uint64_t *chunk = kind == IMPL_STREAM ? malloc(CHUNK_SIZE) : NULL;
    pshm_block *held = NULL;
    struct command c;
    while (read_all(l->ctl, &c, sizeof c) && c.seed != 0) {
        bool ok = kind == IMPL_STREAM ? child_stream(l->data, c.seed, chunk)
                                      : child_block(&c, kind == IMPL_PSHM_REUSE, &held);
        if (!ok)
            _exit(1);
        if (kind != IMPL_STREAM && !write_all(l->done, "d", 1))
            _exit(1);
    }
    pshm_block_free(held);
    _exit(0);
}

/* ---- the parent ------------------------------------------------------------- */

/* Fork a child for one impl; `data` is a ready pair [read, write] or NULL. */
static struct child_link start_child(enum impl_kind kind, const int data[2])
{
    int ctl[2], done[2];
    if (pipe(ctl) < 0 || pipe(done) < 0)
        die("pipe", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    struct child_link l = {.pid = pid, .data = -1};
    if (pid == 0) {
        l.ctl = ctl[0];
        l.done = done[1];
        l.data = data ? data[1] : -1;
        child_main(kind, &l);
    }
    close(ctl[0]);
    close(done[1]);
    if (data)
        close(data[1]);
    l.ctl = ctl[1];
    l.done = done[0];
    l.data = data ? data[0] : -1;
    return l;
}

static void stop_child(struct child_link *l)
{
    struct command quit = {.seed = 0};
    write_all(l->ctl, &quit, sizeof quit);
    close(l->ctl);
    close(l->done);
    if (l->data >= 0)
        close(l->data);
    int status;
    if (waitpid(l->pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("child", "exited abnormally");
}

static void send_command(const struct child_link *l, uint64_t seed)
{
    struct command c = {.seed = seed};
    snprintf(c.name, sizeof c.name, "%s", block_name);
    if (!write_all(l->ctl, &c, sizeof c))
        die("send command", "child is gone");
}

static uint64_t receive_stream(const struct child_link *l, uint64_t *chunk)
{
    uint64_t sum = 0;
    for (size_t off = 0; off < TRANSFER_SIZE; off += CHUNK_SIZE) {
        if (!read_all(l->data, chunk, CHUNK_SIZE))
            die("read stream", "child stopped early");
        sum += sum_words(chunk, CHUNK_WORDS);
    }
    return sum;
}

static void wait_filled(const struct child_link *l)
{
    char d;
    if (!read_all(l->done, &d, 1))
        die("wait for child", "child failed to fill the block");
}

static void check_pshm(int rc, const char *call)
{
    if (rc < 0)
        die(call, pshm_last_error());
}

/* One fresh-block round: create, child fills, sum, close, unlink. */
static uint64_t round_fresh(const struct child_link *l, uint64_t seed)
{
    pshm_block *b;
    check_pshm(pshm_block_create(&b, block_name, TRANSFER_SIZE, 0), "create");
    send_command(l, seed);
    wait_filled(l);
    uint64_t sum = sum_words(pshm_block_buf(b), TRANSFER_WORDS);
    check_pshm(pshm_block_close(b), "close");
    check_pshm(pshm_block_unlink(b), "unlink");
    pshm_block_free(b);
    return sum;
}

/* One round on a long-lived block (`held`, ours since before the round). */
static uint64_t round_reuse(const struct child_link *l, pshm_block *held, uint64_t seed)
{
    send_command(l, seed);
    wait_filled(l);
    return sum_words(pshm_block_buf(held), TRANSFER_WORDS);
}

static uint64_t round_stream(const struct child_link *l, uint64_t *chunk, uint64_t seed)
{
    send_command(l, seed);
    return receive_stream(l, chunk);
}

struct session {
    enum impl_kind kind;
    struct child_link link;
    pshm_block *held; /* IMPL_PSHM_REUSE */
    uint64_t *chunk;  /* IMPL_STREAM */
};

/* One timed, verified round; returns its duration. */
static uint64_t timed_round(struct session *s, uint64_t seed)
{
    uint64_t t0 = bench_now_ns();
    uint64_t sum = s->kind == IMPL_PSHM         ? round_fresh(&s->link, seed)
                   : s->kind == IMPL_PSHM_REUSE ? round_reuse(&s->link, s->held, seed)
                                                : round_stream(&s->link, s->chunk, seed);
    uint64_t elapsed = bench_now_ns() - t0;
    if (sum != expected_sum(seed))
        die("checksum", "the parent did not read what the child wrote");
    return elapsed;
}

/* A warm-up round, then rounds for the measuring time; mean ns/transfer. */
static double run_rounds(struct session *s)
{
    uint64_t seed = 1;
    timed_round(s, seed++);
    uint64_t total = 0;
    int n = 0;
    while (bench_more_rounds(n, (double)total)) {
        total += timed_round(s, seed++);
        n++;
    }
    return (double)total / n;
}

/* How the stream impls carry the bytes. */
enum channel { CHANNEL_NONE, CHANNEL_PIPE, CHANNEL_PIPE_1MIB, CHANNEL_SOCKET };

static void open_channel(enum channel ch, int data[2])
{
    if (ch == CHANNEL_SOCKET) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, data) < 0)
            die("socketpair", strerror(errno));
        return;
    }
    if (pipe(data) < 0)
        die("pipe", strerror(errno));
    /* The default pipe holds 64 KiB; a 1 MiB one needs 16x fewer wake-ups
     * (1 MiB is the default /proc/sys/fs/pipe-max-size). */
    if (ch == CHANNEL_PIPE_1MIB && fcntl(data[0], F_SETPIPE_SZ, (int)CHUNK_SIZE) < 0)
        die("F_SETPIPE_SZ", strerror(errno));
}

static double bench_impl(enum impl_kind kind, enum channel ch)
{
    struct session s = {.kind = kind};
    int data[2];
    bool stream = kind == IMPL_STREAM;
    if (stream)
        open_channel(ch, data);
    s.link = start_child(kind, stream ? data : NULL);
    if (stream && (s.chunk = malloc(CHUNK_SIZE)) == NULL)
        die("malloc", "out of memory");
    if (kind == IMPL_PSHM_REUSE)
        check_pshm(pshm_block_create(&s.held, block_name, TRANSFER_SIZE, 0), "create");
    double ns = run_rounds(&s);
    stop_child(&s.link);
    if (s.held != NULL) {
        check_pshm(pshm_block_unlink(s.held), "unlink");
        pshm_block_free(s.held);
    }
    free(s.chunk);
    return ns;
}

static void report(const char *impl, double ns) { bench_report("transfer.256MiB", impl, ns); }

int main(void)
{
    snprintf(block_name, sizeof block_name, "pshmbench_%d_transfer", (int)getpid());
    atexit(remove_leftover_block);
    report("pshm", bench_impl(IMPL_PSHM, CHANNEL_NONE));
    report("pshm_reuse", bench_impl(IMPL_PSHM_REUSE, CHANNEL_NONE));
    report("pipe", bench_impl(IMPL_STREAM, CHANNEL_PIPE));
    report("pipe_1MiB", bench_impl(IMPL_STREAM, CHANNEL_PIPE_1MIB));
    report("unix_socket", bench_impl(IMPL_STREAM, CHANNEL_SOCKET));
    return 0;
}
