/*
 * full_shm — what the library does when /dev/shm runs out of space, through
 * the C API. Run only inside a private mount namespace with a small tmpfs on
 * /dev/shm (tests/test_full_shm.sh, the stress run): it fills /dev/shm.
 *
 *   full_shm check           every case once; "N passed, M failed"
 *   full_shm stress SECONDS  clients asking one manager for lists and
 *                            blocks on a nearly full /dev/shm, for SECONDS
 *
 * Exit status 0 only if every check passed; 2 if /dev/shm is not a small
 * tmpfs (never fill the machine's own).
 */
#include "support.h"

#include "pshm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)
/* Refuse to run on a /dev/shm larger than this: it is not the test's own. */
#define SMALL_TMPFS (64 * MIB)
#define FILLER "/dev/shm/full_shm_filler"

static int passed, failed;

static void check(bool ok, const char *what)
{
    printf("  %s %s%s%s\n", ok ? "ok  " : "FAIL", what, ok ? "" : ": ",
           ok ? "" : pshm_last_error());
    fflush(stdout);
    if (ok)
        passed++;
    else
        failed++;
}

/* A failure that is PSHM_ELIMIT and says there is no space, naming `name`. */
static bool no_space(int rc, const char *name)
{
    const char *msg = pshm_last_error();
    return rc == PSHM_ELIMIT && strstr(msg, "no space left in /dev/shm") != NULL &&
           (name == NULL || strstr(msg, name) != NULL);
}

static size_t shm_free(void)
{
    struct statvfs vfs;
    return statvfs("/dev/shm", &vfs) == 0 ? (size_t)vfs.f_bavail * vfs.f_frsize : 0;
}

/* Fill /dev/shm until about `leave` bytes are free (0: none at all). */
static void fill_leaving(size_t leave)
{
    int fd = open(FILLER, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t room = shm_free();
    if (fd < 0 ||
        (room > leave && fallocate(fd, 0, 0, (off_t)(room - leave)) < 0 && leave > 0)) {
        perror("full_shm: filling /dev/shm");
        exit(2);
    }
    /* leave 0: a reservation of exactly the free space may still miss a
     * page the file system keeps for itself; take the rest page by page. */
    for (off_t at = (off_t)(room - leave); leave == 0 && shm_free() > 0; at += 4096)
        if (fallocate(fd, 0, at, 4096) < 0)
            break;
    close(fd);
}

static void unfill(void) { unlink(FILLER); }

/* Every name in /dev/shm, sorted into one string, to tell whether
 * something was made or removed behind our back. */
static void snapshot(char *out, size_t cap)
{
    snprintf(out, cap, " ");
    struct dirent **names;
    int n = scandir("/dev/shm", &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            strncat(out, names[i]->d_name, cap - strlen(out) - 1);
            strncat(out, " ", cap - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(n >= 0 ? names : NULL);
}

/* Whether every name of snapshot `part` is in snapshot `whole`. */
static bool within(const char *part, const char *whole)
{
    char name[PSHM_NAME_MAX + 3];
    for (const char *p = part + 1; *p != '\0'; p = strchr(p, ' ') + 1) {
        snprintf(name, sizeof name, " %.*s ", (int)(strchr(p, ' ') - p), p);
        if (strstr(whole, name) == NULL)
            return false;
    }
    return true;
}

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 31 + seed);
}

static bool has_pattern(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed))
            return false;
    return true;
}

/* A str value of n 'x's (static storage, so the caller frees nothing). */
static pshm_value big_str(size_t n)
{
    static char text[200 * KIB];
    memset(text, 'x', n);
    return pshm_strn(text, n);
}

/* ---- the cases ---------------------------------------------------------- */

static bool names_hold(pshm_manager *m, const char *name, int *rc)
{
    char **names;
    size_t n;
    bool found = false;
    if ((*rc = pshm_manager_names(m, &names, &n)) < 0)
        return false;
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(names[i], name) == 0;
    pshm_names_free(names, n);
    return found;
}

/*
 * Client A holds a manager block it wrote; /dev/shm fills up; client B asks
 * for a list (and a block) that do not fit. B gets a clean error, the
 * server lives on, A's block is intact, nothing half-made is left.
 */
static void manager_case(void)
{
    puts("manager on a full /dev/shm:");
    pshm_manager *m;
    pshm_block *a;
    int rc;
    if (pshm_manager_start(&m, NULL, NULL, 0) < 0 ||
        pshm_manager_block(m, 64 * KIB, &a) < 0) {
        check(false, "start a manager and get a 64 KiB block");
        return;
    }
    pattern(pshm_block_buf(a), 64 * KIB, 7);
    names_hold(m, pshm_block_name(a), &rc); /* the server has made its spare by now */
    fill_leaving(60 * KIB);
    char before[4096], after[4096];
    snapshot(before, sizeof before);
    pshm_value v = big_str(100 * 1000);
    pshm_list *l;
    rc = pshm_manager_list(m, &v, 1, &l);
    check(no_space(rc, NULL), "a list of a 100 kB str: PSHM_ELIMIT, no space left");
    if (rc == 0)
        pshm_list_free(l);
    snapshot(after, sizeof after);
    check(strcmp(before, after) == 0, "  ... and nothing was made or removed in /dev/shm");
    pshm_block *b;
    rc = pshm_manager_block(m, 256 * KIB, &b);
    check(no_space(rc, NULL), "a 256 KiB block: PSHM_ELIMIT, no space left");
    if (rc == 0)
        pshm_block_free(b);
    snapshot(after, sizeof after); /* the server may drop its spare for room */
    check(within(after, before), "  ... and nothing was made in /dev/shm");
    bool listed = names_hold(m, pshm_block_name(a), &rc);
    check(rc == 0 && listed, "the server still answers, and still owns A's block");
    check(t_shm_exists(pshm_block_name(a)) && has_pattern(pshm_block_buf(a), 64 * KIB, 7),
          "A's block is intact");
    unfill();
    pshm_block_free(a);
    check(pshm_manager_shutdown(m) == 0, "the server shuts down cleanly");
}

static void list_case(unsigned flags, const char *name, const char *what)
{
    fill_leaving(60 * KIB);
    pshm_value v = big_str(100 * 1000);
    pshm_list *l;
    int rc = pshm_list_create(&l, name, &v, 1, flags);
    check(no_space(rc, name), what);
    check(!t_shm_exists(name), "  ... and no block of that name is left");
    if (rc == 0) {
        pshm_block_unlink(pshm_list_block(l));
        pshm_list_free(l);
    }
    unfill();
}

/* Two 3 MiB blocks each pass create's check in a 4 MiB tmpfs; only one can
 * have its pages. */
static void reserve_case(void)
{
    puts("pshm_block_reserve:");
    pshm_block *one, *two, *ro;
    if (pshm_block_create(&one, "full_res1", 3 * MIB, PSHM_UNTRACKED) < 0 ||
        pshm_block_create(&two, "full_res2", 3 * MIB, PSHM_UNTRACKED) < 0) {
        check(false, "create two 3 MiB blocks");
        return;
    }
    check(pshm_block_reserve(one, 0, 3 * MIB) == 0, "the first block's pages are reserved");
    size_t free_before = shm_free();
    check(no_space(pshm_block_reserve(two, 0, 3 * MIB), "full_res2"),
          "the second's: PSHM_ELIMIT naming it, no space left");
    check(shm_free() == free_before, "  ... and the free space is as it was");
    check(pshm_block_reserve(two, 0, 0) == 0, "length 0 does nothing");
    check(pshm_block_reserve(two, 3 * MIB - 1, 2) == PSHM_EINVAL,
          "past the end: PSHM_EINVAL");
    check(pshm_block_reserve(two, SIZE_MAX, 2) == PSHM_EINVAL,
          "offset overflow: PSHM_EINVAL");
    if (pshm_block_attach(&ro, "full_res2", PSHM_UNTRACKED | PSHM_READONLY) == 0) {
        check(pshm_block_reserve(ro, 0, 4096) == PSHM_EINVAL &&
                  strstr(pshm_last_error(), "read-only") != NULL,
              "a read-only handle: PSHM_EINVAL");
        pshm_block_free(ro);
    }

    puts("pshm_block_read of never-written pages on a full /dev/shm:");
    fill_leaving(0);
    unsigned char *copy = malloc(3 * MIB);
    memset(copy, 0xff, 3 * MIB);
    bool zeros = copy != NULL && pshm_block_read(two, 0, copy, 3 * MIB) == 0;
    for (size_t i = 0; zeros && i < 3 * MIB; i++)
        zeros = copy[i] == 0;
    check(zeros, "reads zeros, no fault");
    check(pshm_block_read(two, 3 * MIB, copy, 1) == PSHM_EINVAL, "past the end: PSHM_EINVAL");
    free(copy);
    unfill();

    pshm_block_close(two);
    check(pshm_block_reserve(two, 0, 1) == PSHM_ECLOSED &&
              pshm_block_read(two, 0, &(char){0}, 1) == PSHM_ECLOSED,
          "a closed handle: PSHM_ECLOSED");
    pshm_block_unlink(one);
    pshm_block_unlink(two);
    pshm_block_free(one);
    pshm_block_free(two);
}

static void populate_case(void)
{
    fill_leaving(60 * KIB);
    pshm_block *b;
    int rc = pshm_block_create(&b, "full_pop", 256 * KIB, PSHM_POPULATE);
    check(no_space(rc, "full_pop") && !t_shm_exists("full_pop"),
          "create with PSHM_POPULATE: PSHM_ELIMIT naming it, nothing left");
    if (rc == 0)
        pshm_block_free(b);
    unfill();
}

static void size_case(void)
{
    puts("size errors:");
    pshm_block *b;
    int rc = pshm_block_create(&b, NULL, 0, 0);
    check(rc == PSHM_EBADSIZE &&
              strcmp(pshm_last_error(),
                     "create (random name): size must be greater than 0") == 0,
          "size 0, random name: the message names no block");
    if (pshm_block_create(&b, "full_size", 4096, PSHM_UNTRACKED) == 0) {
        pshm_block *again;
        rc = pshm_block_create(&again, "full_size", 0, PSHM_UNTRACKED);
        check(rc == PSHM_EBADSIZE, "size 0 on a taken name: the size is checked first");
        pshm_block_unlink(b);
        pshm_block_free(b);
    }
}

static int run_checks(void)
{
    manager_case();
    puts("pshm_list_create on a full /dev/shm:");
    list_case(0, "full_list", "tracked: PSHM_ELIMIT naming the list, no space left");
    list_case(PSHM_UNTRACKED, "full_list_u", "untracked: the same");
    reserve_case();
    puts("PSHM_POPULATE:");
    populate_case();
    size_case();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

/* ---- stress: many clients, one manager, a nearly full /dev/shm ---------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * One client: lists and blocks of random sizes, each either made whole
 * (contents checked, then released) or refused with no space left. Any
 * other outcome — a lost connection above all — is a failure.
 */
static int client(const char *address, const void *key, size_t keylen, double end,
                  unsigned id)
{
    unsigned seed = id;
    pshm_manager *m;
    if (pshm_manager_connect(&m, address, key, keylen) < 0)
        return 1;
    int bad = 0;
    unsigned long made = 0, refused = 0;
    for (unsigned i = 0; now_s() < end && bad == 0; i++) {
        size_t n = (size_t)(rand_r(&seed) % (400 * KIB)) + 1;
        char name[PSHM_NAME_MAX + 1] = "";
        int rc;
        if (i % 2 == 0) {
            pshm_value v = big_str(n % (200 * KIB));
            pshm_list *l;
            if ((rc = pshm_manager_list(m, &v, 1, &l)) == 0) {
                pshm_value got;
                bad = pshm_list_get(l, 0, &got) < 0 || got.u.s.len != v.u.s.len;
                snprintf(name, sizeof name, "%s", pshm_block_name(pshm_list_block(l)));
                pshm_list_free(l);
            }
        } else {
            pshm_block *b;
            if ((rc = pshm_manager_block(m, n, &b)) == 0) {
                pattern(pshm_block_buf(b), n, i); /* reserved: never SIGBUS */
                bad = !has_pattern(pshm_block_buf(b), n, i);
                snprintf(name, sizeof name, "%s", pshm_block_name(b));
                pshm_block_free(b);
            }
        }
        if (rc == 0) {
            made++;
            bad = bad || pshm_manager_release(m, name) < 0;
        } else {
            refused++;
            bad = !no_space(rc, NULL);
        }
        if (bad)
            fprintf(stderr, "full_shm client %u: %s\n", id, pshm_last_error());
    }
    printf("  client %u: %lu made, %lu refused for want of space\n", id, made, refused);
    pshm_manager_disconnect(m);
    return bad;
}

static int run_stress(double seconds)
{
    enum { CLIENTS = 4 };
    pshm_manager *m;
    if (pshm_manager_start(&m, NULL, NULL, 0) < 0) {
        fprintf(stderr, "full_shm: %s\n", pshm_last_error());
        return 1;
    }
    fill_leaving(512 * KIB);
    double end = now_s() + seconds;
    size_t keylen;
    const void *key = pshm_manager_authkey(m, &keylen);
    pid_t pids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        if ((pids[i] = fork()) == 0)
            _exit(client(pshm_manager_address(m), key, keylen, end, (unsigned)i + 1));
    int failures = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int st = 0;
        failures += pids[i] < 0 || waitpid(pids[i], &st, 0) != pids[i] || st != 0;
    }
    char **names;
    size_t n = 0;
    int rc = pshm_manager_names(m, &names, &n);
    check(rc == 0 && n == 0, "the server lives on and owns nothing the clients released");
    if (rc == 0)
        pshm_names_free(names, n);
    check(failures == 0, "every request was made whole or refused for want of space");
    unfill();
    check(pshm_manager_shutdown(m) == 0, "the server shuts down cleanly");
    char left[4096];
    snapshot(left, sizeof left);
    check(strcmp(left, " ") == 0, "nothing is left in /dev/shm");
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct statvfs vfs;
    if (statvfs("/dev/shm", &vfs) < 0 || vfs.f_blocks == 0 ||
        (size_t)vfs.f_blocks * vfs.f_frsize > SMALL_TMPFS) {
        fprintf(stderr,
                "full_shm: /dev/shm is not a small tmpfs of its own; not filling it\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "check") == 0)
        return run_checks();
    if (argc == 3 && strcmp(argv[1], "stress") == 0)
        return run_stress(atof(argv[2]));
    fprintf(stderr, "usage: full_shm check | full_shm stress SECONDS\n");
    return 2;
}
