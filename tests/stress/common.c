/* common.c — clock, random numbers, checksums, failure counting, scans. */
#include "stress.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Enough lines to diagnose a failure without drowning the report. */
#define MAX_MESSAGES 40

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool past_deadline(double deadline) { return now_s() >= deadline; }

/* splitmix64: tiny, good enough to pick sizes and delays. */
uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return lo + rng_next(state) % (hi - lo + 1);
}

static void vreport(_Atomic uint64_t *counter, const char *kind, const char *fmt, va_list ap)
{
    atomic_fetch_add(counter, 1);
    if (atomic_fetch_add(&S->messages, 1) >= MAX_MESSAGES)
        return;
    char line[768];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "stress[%d] %s: %s\n", (int)getpid(), kind, line);
}

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(&S->errors, "FAIL", fmt, ap);
    va_end(ap);
}

void corrupt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(&S->corruptions, "CORRUPT", fmt, ap);
    va_end(ap);
}

bool block_exists(const char *name)
{
    pshm_block_info info;
    return pshm_block_stat(name, &info) == 0;
}

bool gone_within(const char *name, double seconds)
{
    double deadline = now_s() + seconds;
    while (block_exists(name)) {
        if (now_s() > deadline)
            return false;
        usleep(1000);
    }
    return true;
}

void block_name(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", C.prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* A word-at-a-time multiply-xorshift hash: fast, and any flipped bit shows. */
uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x243f6a8885a308d3ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = ((h ^ b[i]) * 0x100000001b3ull) ^ (h >> 31);
    return h;
}

void fill_bytes(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    uint64_t st = seed;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = rng_next(&st);
        memcpy(b + i, &w, 8);
    }
    uint64_t w = rng_next(&st);
    memcpy(b + i, &w, n - i);
}

void sealed_fill(void *buf, size_t size, uint64_t seed)
{
    struct sealed_hdr *h = buf;
    unsigned char *payload = (unsigned char *)buf + SEALED_HDR;
    h->size = size;
    h->seed = seed;
    fill_bytes(payload, size - SEALED_HDR, seed);
    h->hash = hash_bytes(payload, size - SEALED_HDR);
    atomic_store_explicit(&h->magic, STRESS_MAGIC, memory_order_release);
}

void sealed_rewrite(void *buf, uint64_t seed)
{
    struct sealed_hdr *h = buf;
    unsigned char *payload = (unsigned char *)buf + SEALED_HDR;
    atomic_fetch_add(&h->seq, 1); /* odd: readers retry */
    h->seed = seed;
    fill_bytes(payload, h->size - SEALED_HDR, seed);
    h->hash = hash_bytes(payload, h->size - SEALED_HDR);
    atomic_fetch_add(&h->seq, 1);
}

/*
 * Readers hash the payload in place and accept the result only if the
 * sequence number was even and unchanged around the read: a concurrent
 * rewrite by the owner makes them retry, never report a false corruption.
 */
enum verdict sealed_verify(void *buf, size_t size)
{
    struct sealed_hdr *h = buf;
    if (size < SEALED_HDR)
        return V_BAD;
    if (atomic_load_explicit(&h->magic, memory_order_acquire) == 0)
        return V_BLANK;
    /* By time, not count: with 64 processes on 2 cores the owner may sit
     * preempted in the middle of a rewrite for a while. */
    double until = now_s() + 5.0;
    while (now_s() < until) {
        uint64_t s1 = atomic_load(&h->seq);
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        uint64_t want = h->hash, hsize = h->size;
        uint64_t got = hash_bytes((const unsigned char *)buf + SEALED_HDR, size - SEALED_HDR);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load(&h->seq) != s1)
            continue;
        bool ok = h->magic == STRESS_MAGIC && hsize == size && got == want;
        return ok ? V_OK : V_BAD;
    }
    return V_BUSY;
}

/* Call fn for each /dev/shm entry starting with the prefix + sub. */
static int scan_prefixed(const char *sub, void (*fn)(const char *name, int i, void *arg),
                         void *arg)
{
    char want[128];
    snprintf(want, sizeof want, "%s%s", C.prefix, sub);
    size_t len = strlen(want);
    DIR *d = opendir("/dev/shm");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, want, len) == 0)
            fn(de->d_name, n++, arg);
    closedir(d);
    return n;
}

struct first_arg {
    char *buf;
    size_t cap;
};

static void keep_first(const char *name, int i, void *arg)
{
    struct first_arg *a = arg;
    if (i == 0 && a->buf != NULL)
        snprintf(a->buf, a->cap, "%s", name);
}

int count_prefixed(const char *sub, char *first, size_t cap)
{
    struct first_arg a = {first, cap};
    return scan_prefixed(sub, keep_first, &a);
}

struct names_arg {
    char (*names)[PSHM_NAME_MAX + 1];
    int cap;
};

static void keep_name(const char *name, int i, void *arg)
{
    struct names_arg *a = arg;
    if (i < a->cap)
        snprintf(a->names[i], sizeof a->names[i], "%s", name);
}

int list_prefixed(const char *sub, char (*names)[PSHM_NAME_MAX + 1], int cap)
{
    struct names_arg a = {names, cap};
    int n = scan_prefixed(sub, keep_name, &a);
    return n < cap ? n : cap;
}

/* The highest descriptor number worth probing. */
static int fd_ceiling(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > 65536)
        return 65536;
    return (int)rl.rlim_cur;
}

/*
 * Probing with fcntl and readlink needs no descriptor of its own, so this
 * also works in a process that has run out of them.
 */
int open_fds(void)
{
    int n = 0, top = fd_ceiling();
    for (int fd = 0; fd < top; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

static int fds_of_run(void)
{
    char want[128], path[64], target[512];
    snprintf(want, sizeof want, "/dev/shm/%s", C.prefix);
    int n = 0, top = fd_ceiling();
    for (int fd = 0; fd < top; fd++) {
        if (fcntl(fd, F_GETFD) == -1)
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t r = readlink(path, target, sizeof target - 1);
        if (r > 0) {
            target[r] = '\0';
            n += strncmp(target, want, strlen(want)) == 0;
        }
    }
    return n;
}

/*
 * /proc/self/maps is opened once per process and re-read from offset 0, so
 * counting mappings works even when no descriptor is left to open it.
 */
static int maps_fd(void)
{
    static int fd = -1;
    static pid_t owner;
    if (fd < 0 || owner != getpid()) {
        fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        owner = getpid();
    }
    return fd;
}

static int maps_of_run(void)
{
    int fd = maps_fd();
    if (fd < 0)
        return 0;
    char want[128];
    snprintf(want, sizeof want, "/dev/shm/%s", C.prefix);
    static char text[1 << 20];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof text - 1 &&
           (r = pread(fd, text + len, sizeof text - 1 - len, (off_t)len)) > 0)
        len += (size_t)r;
    text[len] = '\0';
    int n = 0;
    for (const char *p = text; (p = strstr(p, want)) != NULL; p++)
        n++;
    return n;
}

int own_handles_open(void) { return fds_of_run() + maps_of_run(); }

void hex_encode(const void *p, size_t n, char *out)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

size_t hex_decode(const char *hex, void *out, size_t cap)
{
    unsigned char *b = out;
    size_t n = 0;
    unsigned v;
    while (n < cap && hex[2 * n] && hex[2 * n + 1] && sscanf(hex + 2 * n, "%2x", &v) == 1)
        b[n++] = (unsigned char)v;
    return n;
}

void log_manager_name(const char *name)
{
    uint32_t i = atomic_fetch_add(&MGR_NAMES->count, 1);
    if (i < NAME_LOG_CAP)
        snprintf(MGR_NAMES->names[i], sizeof MGR_NAMES->names[i], "%s", name);
    else
        fail("more than %d manager blocks: the leak check cannot follow them all",
             NAME_LOG_CAP);
}

int count_logged_alive(char *first, size_t cap)
{
    uint32_t n = atomic_load(&MGR_NAMES->count);
    if (n > NAME_LOG_CAP)
        n = NAME_LOG_CAP;
    int alive = 0;
    for (uint32_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/dev/shm/%s", MGR_NAMES->names[i]);
        if (access(path, F_OK) == 0 && alive++ == 0 && first != NULL)
            snprintf(first, cap, "%s", MGR_NAMES->names[i]);
    }
    return alive;
}
