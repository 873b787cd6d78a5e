/*
 * win_block — blocks on Windows with real processes (win_holder.exe):
 * create, attach and read-only attach across processes, a block vanishing
 * once every handle is closed, also when its creator is killed
 * (TerminateProcess); exclusive create; unlink that does nothing; random
 * names as CPython makes them; bad input with the same messages as on
 * Linux.
 */
#include "check.h"
#include "child.h"
#include "pshm.h"

#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Start win_holder (next to this program) with `args`. */
static bool spawn(child *c, const char *args) { return spawn_exe(c, "win_holder.exe", args); }

/* Run win_holder to completion; its first line. */
static void run(const char *args, char *line, size_t cap)
{
    child c;
    line[0] = '\0';
    if (!spawn(&c, args))
        return;
    read_line(&c, line, cap);
    kill_child(&c);
}

/* Whether `name` can be attached, polling for up to 5 s until it cannot
 * (the mapping goes when the kernel has closed the last handle). */
static bool gone_within_5s(const char *name)
{
    for (int i = 0; i < 100; i++) {
        pshm_block *b;
        int rc = pshm_block_attach(&b, name, PSHM_READONLY);
        if (rc == PSHM_ENOENT)
            return true;
        pshm_block_free(b);
        Sleep(50);
    }
    return false;
}

/* The fill win_holder checks: byte i holds i * 7. */
static void fill(pshm_block *b)
{
    unsigned char *p = pshm_block_buf(b);
    for (size_t i = 0; i < pshm_block_size(b); i++)
        p[i] = (unsigned char)(i * 7);
}

static void unique(char *name, size_t cap, const char *what)
{
    snprintf(name, cap, "pshm_wintest_%lu_%s", (unsigned long)GetCurrentProcessId(), what);
}

static void test_across_processes(void)
{
    char name[64], args[128], line[128];
    unique(name, sizeof name, "across");
    pshm_block *b;
    CHECK(pshm_block_create(&b, name, 10000, 0) == 0, "create: %s", pshm_last_error());
    fill(b);
    const unsigned char *p = pshm_block_buf(b);
    CHECK(pshm_block_size(b) == 10000, "creator sees %zu bytes", pshm_block_size(b));

    child c;
    snprintf(args, sizeof args, "attach %s", name);
    CHECK(spawn(&c, args), "spawn");
    read_line(&c, line, sizeof line);
    /* The attacher sees whole pages, as CPython's VirtualQuery does. */
    CHECK(strcmp(line, "ok 12288 0x4") == 0, "attacher said \"%s\"", line);
    kill_child(&c);

    snprintf(args, sizeof args, "attach-ro %s", name);
    run(args, line, sizeof line);
    CHECK(strcmp(line, "ok 12288 0x2") == 0,
          "read-only attacher said \"%s\" (0x2: PAGE_READONLY)", line);

    snprintf(args, sizeof args, "write %s", name);
    run(args, line, sizeof line);
    CHECK(strcmp(line, "ok") == 0 && p[0] == 'W', "writer said \"%s\", byte 0 is %#x", line,
          p[0]);
    pshm_block_free(b);
}

static void test_gone_when_all_closed(void)
{
    char name[64], args[128], line[128];
    unique(name, sizeof name, "closed");
    pshm_block *b, *again;
    CHECK(pshm_block_create(&b, name, 4096, 0) == 0, "create: %s", pshm_last_error());
    fill(b);
    child c;
    snprintf(args, sizeof args, "attach %s", name);
    CHECK(spawn(&c, args), "spawn");
    read_line(&c, line, sizeof line);
    CHECK(strncmp(line, "ok ", 3) == 0, "attacher said \"%s\"", line);
    /* unlink succeeds and does nothing: the block lives while handles do. */
    CHECK(pshm_block_unlink(b) == 0 && pshm_unlink(name) == 0, "unlink: %s",
          pshm_last_error());
    pshm_block_free(b);
    CHECK(pshm_block_attach(&again, name, 0) == 0, "the attacher's handle keeps it: %s",
          pshm_last_error());
    pshm_block_free(again);
    kill_child(&c);
    CHECK(gone_within_5s(name), "still there after every handle closed");
}

static void test_gone_when_creator_killed(void)
{
    char name[64], args[128], line[128];
    unique(name, sizeof name, "killed");
    child c;
    snprintf(args, sizeof args, "create %s 4096", name);
    CHECK(spawn(&c, args), "spawn");
    read_line(&c, line, sizeof line);
    CHECK(strcmp(line, "ready") == 0, "creator said \"%s\"", line);
    pshm_block *b;
    int rc = pshm_block_create(&b, name, 4096, 0);
    char want[160]; /* create is exclusive, across processes too */
    snprintf(want, sizeof want, "create \"%s\": CreateFileMappingW: %s", name,
             pshm_strerror(PSHM_EEXIST));
    CHECK_ERR(rc, PSHM_EEXIST, want);
    kill_child(&c);
    CHECK(gone_within_5s(name), "still there after its creator was killed");
}

static void test_random_names(void)
{
    pshm_block *a, *b;
    CHECK(pshm_block_create(&a, NULL, 100, 0) == 0 &&
              pshm_block_create(&b, NULL, 100, 0) == 0,
          "create: %s", pshm_last_error());
    const char *n = pshm_block_name(a);
    bool shaped = strlen(n) == PSHM_RANDOM_NAME_LEN && strncmp(n, "psm_", 4) == 0 &&
                  strspn(n + 4, "0123456789abcdef") == 8;
    CHECK(shaped, "random name \"%s\"", n);
    CHECK(strcmp(n, pshm_block_name(b)) != 0, "two random names equal");
    pshm_block_free(a);
    pshm_block_free(b);
}

/* The messages Linux gives (tests/test_block.c), where no system call is
 * involved; where one is, the same form with the Windows call's name. */
static void test_bad_input(void)
{
    pshm_block *b;
    char long_name[300];
    memset(long_name, 'x', 299);
    long_name[299] = '\0';
    CHECK_ERR(pshm_block_create(&b, "", 10, 0), PSHM_EBADNAME,
              "create \"\": block name is empty");
    CHECK_ERR(pshm_block_create(&b, NULL, 0, 0), PSHM_EBADSIZE,
              "create (random name): size must be greater than 0");
    CHECK_ERR(pshm_block_create(&b, "a/b", 10, 0), PSHM_EBADNAME,
              "create \"a/b\": block name may not contain '/' (except one leading)");
    CHECK_ERR(pshm_block_create(&b, long_name, 10, 0), PSHM_EBADNAME,
              "create \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\": block name is "
              "longer than 255 bytes");
    CHECK_ERR(
        pshm_block_create(&b, "x", 10, PSHM_READONLY), PSHM_EINVAL,
        "create \"x\": NULL handle pointer or invalid flags (PSHM_READONLY is for attach)");
    CHECK_ERR(pshm_block_attach(&b, NULL, 0), PSHM_EBADNAME, "attach: block name is NULL");
    CHECK_ERR(pshm_block_attach(&b, "..", 0), PSHM_EBADNAME,
              "attach \"..\": not a block name");
    CHECK_ERR(
        pshm_block_attach(&b, "pshm_wintest_nosuch", 0), PSHM_ENOENT,
        "attach \"pshm_wintest_nosuch\": OpenFileMappingW: no such shared memory block");
    CHECK_ERR(pshm_block_attach(&b, "a\\b", 0), PSHM_EBADNAME,
              "attach \"a\\b\": block name may not contain '\\' on Windows");
    CHECK_ERR(pshm_block_attach(&b, "bad\xff", 0), PSHM_EBADNAME,
              "attach \"bad\xff\": block name is not valid UTF-8");
    CHECK_ERR(pshm_block_unlink(NULL), PSHM_EINVAL, "unlink: NULL handle");

    CHECK(pshm_block_create(&b, "pshm_wintest_\xc3\xa9t\xc3\xa9", 64, 0) == 0,
          "UTF-8 name: %s", pshm_last_error());
    char buf[8];
    CHECK_ERR(
        pshm_block_read(b, 60, buf, 8), PSHM_EINVAL,
        "read \"pshm_wintest_\xc3\xa9t\xc3\xa9\": offset 60 + length 8 runs past the end "
        "of the block (size 64)");
    pshm_block_close(b);
    CHECK_ERR(pshm_block_read(b, 0, buf, 1), PSHM_ECLOSED,
              "read \"pshm_wintest_\xc3\xa9t\xc3\xa9\": the handle is closed");
    pshm_block_free(b);
}

static int count_one(const pshm_block_info *info, void *arg)
{
    (void)info;
    ++*(int *)arg;
    return 0;
}

static void test_listing_refused(void)
{
    int n = 0;
    CHECK_ERR(pshm_block_foreach(count_one, &n), PSHM_ESYS,
              "list blocks: Windows cannot list named file mappings (there is no directory "
              "of them to read)");
}

int main(void)
{
    test_across_processes();
    test_gone_when_all_closed();
    test_gone_when_creator_killed();
    test_random_names();
    test_bad_input();
    test_listing_refused();
    return check_report("win_block");
}
