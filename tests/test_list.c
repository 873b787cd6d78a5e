/*
 * test_list.c — shareable lists: every call, errors, type changes, the
 * CPython layout, atomics across processes, blocks corrupted by hand, typed
 * views (the check against another process's type change) and the
 * lock-free same-type get/set.
 * (CPython itself is the reference in test_list_interop.py and
 * test_list_views.py.)
 */
#include "pshm.h"
#include "support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every name a test makes; the suite's fini removes whatever is left, so a
 * failing assertion does not leak blocks. */
static char names[8][64];
static int name_count;

static const char *new_name(const char *tag)
{
    cr_assert_lt(name_count, 8);
    t_name(names[name_count], sizeof names[0], tag);
    return names[name_count++];
}

static void remove_names(void)
{
    for (int i = 0; i < name_count; i++)
        pshm_unlink(names[i]);
}

TestSuite(list, .fini = remove_names);

#define ASSERT_OK(call) cr_assert_geq((call), 0, "%s: %s", #call, pshm_last_error())
#define ASSERT_FAILS(call, code)                                                             \
    cr_assert_eq((call), (code), "%s: expected %s, got \"%s\"", #call, #code,                \
                 pshm_last_error())

static pshm_list *make(const char *name, const pshm_value *values, size_t n)
{
    pshm_list *l;
    ASSERT_OK(pshm_list_create(&l, name, values, n, PSHM_UNTRACKED));
    return l;
}

static void finish(pshm_list *l)
{
    ASSERT_OK(pshm_block_unlink(pshm_list_block(l)));
    pshm_list_free(l);
}

static unsigned char *raw_buf(pshm_list *l) { return pshm_block_buf(pshm_list_block(l)); }

static void assert_format(pshm_list *l, const char *want)
{
    char *f;
    ASSERT_OK(pshm_list_format(l, &f));
    cr_assert_str_eq(f, want, "format %s, want %s", f, want);
    free(f);
}

static void assert_repr(pshm_list *l, const char *want)
{
    char *r;
    ASSERT_OK(pshm_list_repr(l, &r));
    cr_assert_str_eq(r, want);
    free(r);
}

static void assert_str(pshm_list *l, int64_t index, pshm_type type, const char *want,
                       size_t len)
{
    pshm_value v;
    ASSERT_OK(pshm_list_get(l, index, &v));
    cr_assert_eq(v.type, type);
    cr_assert_eq(v.u.s.len, len, "item %lld has %zu bytes, want %zu", (long long)index,
                 v.u.s.len, len);
    cr_assert(memcmp(v.u.s.ptr, want, len) == 0);
}

static int64_t get_int(pshm_list *l, int64_t index)
{
    pshm_value v;
    ASSERT_OK(pshm_list_get(l, index, &v));
    cr_assert_eq(v.type, PSHM_INT);
    return v.u.i;
}

/* ---- every type, layout, repr ------------------------------------------ */

Test(list, every_type_round_trips)
{
    const char *name = new_name("types");
    pshm_value in[] = {pshm_int(0),        pshm_float(1.5),     pshm_str("a"),
                       pshm_bytes("b", 1), pshm_none(),         pshm_bool(true),
                       pshm_bool(false),   pshm_int(INT64_MIN), pshm_int(INT64_MAX),
                       pshm_str(""),       pshm_bytes("", 0),   pshm_float(-0.0)};
    pshm_list *l = make(name, in, 12);
    cr_assert_eq(pshm_list_len(l), 12);
    pshm_value v;
    ASSERT_OK(pshm_list_get(l, 1, &v));
    cr_assert(v.type == PSHM_FLOAT && v.u.f == 1.5);
    ASSERT_OK(pshm_list_get(l, 4, &v));
    cr_assert_eq(v.type, PSHM_NONE);
    ASSERT_OK(pshm_list_get(l, 5, &v));
    cr_assert(v.type == PSHM_BOOL && v.u.b);
    ASSERT_OK(pshm_list_get(l, 6, &v));
    cr_assert(v.type == PSHM_BOOL && !v.u.b);
    cr_assert_eq(get_int(l, 7), INT64_MIN);
    cr_assert_eq(get_int(l, 8), INT64_MAX);
    assert_str(l, 2, PSHM_STR, "a", 1);
    assert_str(l, 3, PSHM_BYTES, "b", 1);
    assert_str(l, 9, PSHM_STR, "", 0);
    assert_str(l, 10, PSHM_BYTES, "", 0);
    ASSERT_OK(pshm_list_get(l, 11, &v));
    cr_assert(v.type == PSHM_FLOAT && v.u.f == 0 && signbit(v.u.f));
    assert_format(l, "qd8s8sxxxxxx?xxxxxxxx?xxxxxxx?qq8s8sd");
    char want[256];
    snprintf(want, sizeof want,
             "ShareableList([0, 1.5, 'a', b'b', None, True, False, "
             "-9223372036854775808, 9223372036854775807, '', b'', -0.0], name='%s')",
             name);
    assert_repr(l, want);
    finish(l);
}

Test(list, block_bytes_follow_cpython_layout)
{
    pshm_value in[] = {pshm_int(-2), pshm_str("hello"), pshm_bool(true), pshm_none()};
    pshm_list *l = make(new_name("layout"), in, 4);
    const unsigned char *b = raw_buf(l);
    /* 8 + 8 * 5 offsets + data (8 + 8 + 8 + 8) + 8 * 4 formats + 4 codes */
    cr_assert_eq(pshm_block_size(pshm_list_block(l)), 8 + 40 + 32 + 32 + 4);
    int64_t header[6];
    memcpy(header, b, sizeof header);
    int64_t want_header[6] = {4, 0, 8, 16, 24, 32};
    cr_assert_arr_eq(header, want_header, sizeof header);
    cr_assert(memcmp(b + 56, "hello\0\0\0", 8) == 0);
    cr_assert(memcmp(b + 64, "\0\0\0\0\0\0\0\1", 8) == 0);
    cr_assert(memcmp(b + 80,
                     "q\0\0\0\0\0\0\0"
                     "8s\0\0\0\0\0\0"
                     "xxxxxxx?"
                     "xxxxxx?x",
                     32) == 0);
    cr_assert(memcmp(b + 112, "\0\1\0\3", 4) == 0);
    finish(l);
}

Test(list, random_name)
{
    pshm_value in[] = {pshm_int(1)};
    pshm_list *l;
    ASSERT_OK(pshm_list_create(&l, NULL, in, 1, 0));
    const char *name = pshm_block_name(pshm_list_block(l));
    cr_assert_eq(strlen(name), PSHM_RANDOM_NAME_LEN);
    cr_assert(strncmp(name, "psm_", 4) == 0);
    finish(l);
}

/* A child creates a list with default flags and exits without unlinking:
 * its tracker must remove the block. */
Test(list, tracked_by_default)
{
    const char *name = new_name("tracked");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        pshm_value in[] = {pshm_int(1)};
        pshm_list *l;
        _exit(pshm_list_create(&l, name, in, 1, 0) < 0);
    }
    int status = t_wait(pid, 30);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert(t_wait_gone(name, 20), "the tracker left %s behind", name);
}

Test(list, empty_list)
{
    const char *name = new_name("empty");
    pshm_list *l = make(name, NULL, 0), *a;
    cr_assert_eq(pshm_block_size(pshm_list_block(l)), 16);
    ASSERT_OK(pshm_list_attach(&a, name, PSHM_UNTRACKED));
    cr_assert_eq(pshm_list_len(a), 0);
    assert_format(a, "");
    char want[128];
    snprintf(want, sizeof want, "ShareableList([], name='%s')", name);
    assert_repr(a, want);
    pshm_value v;
    ASSERT_FAILS(pshm_list_get(a, 0, &v), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_get(a, -1, &v), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_set(a, 0, pshm_int(1)), PSHM_ERANGE);
    pshm_value none = pshm_none();
    size_t n = 9;
    ASSERT_OK(pshm_list_count(a, &none, &n));
    cr_assert_eq(n, 0);
    ASSERT_FAILS(pshm_list_index(a, &none, &n), PSHM_ENOTFOUND);
    pshm_list_free(a);
    finish(l);
}

/* ---- indices ------------------------------------------------------------ */

Test(list, negative_indices_and_range)
{
    pshm_value in[] = {pshm_int(10), pshm_int(11), pshm_int(12)};
    pshm_list *l = make(new_name("idx"), in, 3);
    cr_assert_eq(get_int(l, -1), 12);
    cr_assert_eq(get_int(l, -3), 10);
    ASSERT_OK(pshm_list_set(l, -2, pshm_int(99)));
    cr_assert_eq(get_int(l, 1), 99);
    pshm_value v;
    const int64_t bad[] = {3, -4, INT64_MIN, INT64_MAX, 1ll << 62};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_FAILS(pshm_list_get(l, bad[i], &v), PSHM_ERANGE);
        ASSERT_FAILS(pshm_list_set(l, bad[i], pshm_int(0)), PSHM_ERANGE);
        ASSERT_FAILS(pshm_list_add(l, bad[i], 1, NULL), PSHM_ERANGE);
        const void *p;
        size_t n;
        ASSERT_FAILS(pshm_list_raw(l, bad[i], &p, &n), PSHM_ERANGE);
    }
    cr_assert(strstr(pshm_last_error(), "[4611686018427387904]") != NULL, "%s",
              pshm_last_error());
    finish(l);
}

/* ---- set: type changes and storage ------------------------------------- */

Test(list, type_changes_write_cpython_formats)
{
    pshm_value in[] = {pshm_int(1), pshm_str("sixteen bytes..")};
    pshm_list *l = make(new_name("types"), in, 2);
    assert_format(l, "q16s");
    ASSERT_OK(pshm_list_set(l, 0, pshm_str("abc"))); /* from an 8-byte number slot */
    assert_format(l, "8s16s");
    assert_str(l, 0, PSHM_STR, "abc", 3);
    ASSERT_OK(pshm_list_set(l, 0, pshm_bytes("12345678", 8)));
    assert_str(l, 0, PSHM_BYTES, "12345678", 8);
    ASSERT_OK(pshm_list_set(l, 1, pshm_float(2.5)));
    assert_format(l, "8sd");
    ASSERT_OK(pshm_list_set(l, 1, pshm_bool(true)));
    assert_format(l, "8sxxxxxxx?");
    ASSERT_OK(pshm_list_set(l, 1, pshm_none()));
    assert_format(l, "8sxxxxxx?x");
    /* Back to str: the format is the whole allocated span again. */
    ASSERT_OK(pshm_list_set(l, 1, pshm_str("x")));
    assert_format(l, "8s16s");
    ASSERT_OK(pshm_list_set(l, 1, pshm_bytes("sixteen bytes!!!", 16)));
    assert_str(l, 1, PSHM_BYTES, "sixteen bytes!!!", 16);
    ASSERT_OK(pshm_list_set(l, 0, pshm_int(-7)));
    cr_assert_eq(get_int(l, 0), -7);
    assert_format(l, "q16s");
    unsigned char codes[2];
    memcpy(codes, raw_buf(l) + pshm_block_size(pshm_list_block(l)) - 2, 2);
    cr_assert(codes[0] == 0 && codes[1] == 2);
    finish(l);
}

Test(list, storage_exceeded_keeps_old_value)
{
    const char *name = new_name("big");
    pshm_value in[] = {pshm_str("dry ice"), pshm_int(5)};
    pshm_list *l = make(name, in, 2);
    ASSERT_FAILS(pshm_list_set(l, 0, pshm_str("larger than previously allocated")),
                 PSHM_ETOOBIG);
    char want[160];
    snprintf(want, sizeof want,
             "set \"%s\"[0]: 32-byte str exceeds the 8 bytes allocated "
             "to this item",
             name);
    cr_assert_str_eq(pshm_last_error(), want);
    assert_str(l, 0, PSHM_STR, "dry ice", 7);
    ASSERT_FAILS(pshm_list_set(l, -1, pshm_bytes("123456789", 9)), PSHM_ETOOBIG);
    cr_assert_eq(get_int(l, 1), 5);
    assert_format(l, "8sq");
    finish(l);
}

Test(list, allocation_counts_encoded_bytes)
{
    /* 3 euro signs are 3 characters but 9 bytes: CPython would allocate 8. */
    pshm_value in[] = {pshm_str("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), pshm_str("1234567"),
                       pshm_str("12345678")};
    pshm_list *l = make(new_name("utf8"), in, 3);
    assert_format(l, "16s8s16s");
    assert_str(l, 0, PSHM_STR, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 9);
    const void *p;
    size_t n;
    ASSERT_OK(pshm_list_raw(l, 0, &p, &n));
    cr_assert_eq(n, 16);
    finish(l);
}

Test(list, item_size_limit)
{
    size_t max = 9999991;
    char *big = calloc(1, max + 1);
    memset(big, 'z', max + 1);
    pshm_value in[] = {pshm_bytes(big, max)};
    pshm_list *l = make(new_name("max"), in, 1);
    assert_format(l, "9999992s");
    finish(l);
    in[0] = pshm_bytes(big, max + 1);
    pshm_list *none;
    ASSERT_FAILS(pshm_list_create(&none, new_name("over"), in, 1, PSHM_UNTRACKED),
                 PSHM_ETOOBIG);
    cr_assert(strstr(pshm_last_error(), "[0]: 9999992-byte bytes") != NULL, "%s",
              pshm_last_error());
    cr_assert_not(t_shm_exists(names[name_count - 1]));
    free(big);
}

Test(list, trailing_nuls_stripped_raw_keeps_them)
{
    pshm_value in[] = {pshm_strn("?\0", 2), pshm_bytes("\3\2\1\0\0\0", 6),
                       pshm_strn("?\0\7", 3)};
    pshm_list *l = make(new_name("nul"), in, 3);
    assert_str(l, 0, PSHM_STR, "?", 1);
    assert_str(l, 1, PSHM_BYTES, "\3\2\1", 3);
    assert_str(l, 2, PSHM_STR, "?\0\7", 3);
    const void *p;
    size_t n;
    ASSERT_OK(pshm_list_raw(l, 1, &p, &n));
    cr_assert_eq(n, 8);
    cr_assert(memcmp(p, "\3\2\1\0\0\0\0\0", 8) == 0);
    finish(l);
}

Test(list, get_copy)
{
    pshm_value in[] = {pshm_str("copy me"), pshm_int(3)};
    pshm_list *l = make(new_name("copy"), in, 2);
    char buf[8];
    pshm_value v;
    ASSERT_OK(pshm_list_get_copy(l, 0, &v, buf, sizeof buf));
    cr_assert(v.u.s.ptr == buf && v.u.s.len == 7 && memcmp(buf, "copy me", 7) == 0);
    ASSERT_FAILS(pshm_list_get_copy(l, 0, &v, buf, 6), PSHM_ETOOBIG);
    cr_assert_eq(v.u.s.len, 7);
    ASSERT_OK(pshm_list_get_copy(l, 1, &v, NULL, 0));
    cr_assert(v.type == PSHM_INT && v.u.i == 3);
    finish(l);
}

Test(list, count_and_index_use_python_equality)
{
    pshm_value in[] = {pshm_int(1),        pshm_float(1.0), pshm_bool(true), pshm_str("1"),
                       pshm_bytes("1", 1), pshm_float(NAN), pshm_none()};
    pshm_list *l = make(new_name("count"), in, 7);
    size_t n;
    pshm_value one = pshm_int(1), s = pshm_str("1"), nan = pshm_float(NAN),
               none = pshm_none(), two = pshm_int(2), b = pshm_bytes("1", 1);
    ASSERT_OK(pshm_list_count(l, &one, &n));
    cr_assert_eq(n, 3);
    ASSERT_OK(pshm_list_count(l, &s, &n));
    cr_assert_eq(n, 1);
    ASSERT_OK(pshm_list_count(l, &nan, &n));
    cr_assert_eq(n, 0);
    ASSERT_OK(pshm_list_index(l, &b, &n));
    cr_assert_eq(n, 4);
    ASSERT_OK(pshm_list_index(l, &none, &n));
    cr_assert_eq(n, 6);
    ASSERT_FAILS(pshm_list_index(l, &two, &n), PSHM_ENOTFOUND);
    finish(l);
}

/* ---- handles ------------------------------------------------------------ */

Test(list, attach_sees_writes_both_ways)
{
    const char *name = new_name("attach");
    pshm_value in[] = {pshm_int(1), pshm_str("abc")};
    pshm_list *l = make(name, in, 2), *a;
    ASSERT_OK(pshm_list_attach(&a, name, PSHM_UNTRACKED));
    ASSERT_OK(pshm_list_set(a, 0, pshm_str("from a")));
    assert_str(l, 0, PSHM_STR, "from a", 6);
    ASSERT_OK(pshm_list_set(l, 1, pshm_int(42)));
    cr_assert_eq(get_int(a, 1), 42);
    pshm_list_free(a);
    finish(l);
}

Test(list, read_only_attach_refuses_writes)
{
    const char *name = new_name("ro");
    pshm_value in[] = {pshm_int(1)};
    pshm_list *l = make(name, in, 1), *ro;
    ASSERT_OK(pshm_list_attach(&ro, name, PSHM_READONLY | PSHM_UNTRACKED));
    cr_assert_eq(get_int(ro, 0), 1);
    ASSERT_FAILS(pshm_list_set(ro, 0, pshm_int(2)), PSHM_EACCES);
    ASSERT_FAILS(pshm_list_add(ro, 0, 1, NULL), PSHM_EACCES);
    int64_t e = 1;
    ASSERT_FAILS(pshm_list_cas(ro, 0, &e, 2), PSHM_EACCES);
    cr_assert_eq(get_int(l, 0), 1);
    pshm_list_free(ro);
    finish(l);
}

Test(list, closed_block_is_reported)
{
    pshm_value in[] = {pshm_int(1)};
    pshm_list *l = make(new_name("closed"), in, 1);
    ASSERT_OK(pshm_block_close(pshm_list_block(l)));
    pshm_value v;
    ASSERT_FAILS(pshm_list_get(l, 0, &v), PSHM_ECLOSED);
    ASSERT_FAILS(pshm_list_set(l, 0, pshm_int(2)), PSHM_ECLOSED);
    /* The typed calls' fast paths stop at close too (they would read and
     * write the unmapped block otherwise). */
    int64_t i;
    double f;
    ASSERT_FAILS(pshm_list_get_int(l, 0, &i), PSHM_ECLOSED);
    ASSERT_FAILS(pshm_list_set_int(l, 0, 2), PSHM_ECLOSED);
    ASSERT_FAILS(pshm_list_get_float(l, 0, &f), PSHM_ECLOSED);
    ASSERT_FAILS(pshm_list_set_float(l, 0, 2.5), PSHM_ECLOSED);
    char *text;
    ASSERT_FAILS(pshm_list_repr(l, &text), PSHM_ECLOSED);
    finish(l);
}

Test(list, bad_arguments)
{
    pshm_list *l;
    pshm_value v = pshm_int(1);
    ASSERT_FAILS(pshm_list_create(NULL, "x", &v, 1, 0), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_create(&l, "x", NULL, 1, 0), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_attach(NULL, "x", 0), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_attach(&l, new_name("nosuch"), 0), PSHM_ENOENT);
    pshm_value bad_utf8 = pshm_strn("\xff", 1), bad_type = pshm_int(0);
    bad_type.type = (pshm_type)99;
    ASSERT_FAILS(pshm_list_create(&l, new_name("badv"), &bad_utf8, 1, 0), PSHM_EINVAL);
    cr_assert_not(t_shm_exists(names[name_count - 1]));
    l = make(new_name("args"), &v, 1);
    ASSERT_FAILS(pshm_list_set(l, 0, bad_utf8), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_set(l, 0, bad_type), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_set(l, 0, pshm_bytes(NULL, 3)), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_get(l, 0, NULL), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_cas(l, 0, NULL, 1), PSHM_EINVAL);
    cr_assert_eq(get_int(l, 0), 1);
    cr_assert_eq(pshm_list_len(NULL), 0);
    pshm_list_free(NULL);
    finish(l);
}

/* ---- atomics ------------------------------------------------------------ */

Test(list, add_and_cas)
{
    pshm_value in[] = {pshm_int(INT64_MAX), pshm_float(1), pshm_str("s")};
    pshm_list *l = make(new_name("atomic"), in, 3);
    int64_t old;
    ASSERT_OK(pshm_list_add(l, 0, 1, &old));
    cr_assert_eq(old, INT64_MAX);
    cr_assert_eq(get_int(l, 0), INT64_MIN); /* wraps */
    int64_t expected = 5;
    cr_assert_eq(pshm_list_cas(l, 0, &expected, 7), 0);
    cr_assert_eq(expected, INT64_MIN);
    cr_assert_eq(pshm_list_cas(l, -3, &expected, 7), 1);
    cr_assert_eq(get_int(l, 0), 7);
    ASSERT_FAILS(pshm_list_add(l, 1, 1, NULL), PSHM_ETYPE);
    cr_assert(strstr(pshm_last_error(), "[1]: the item is a float, not an int") != NULL);
    ASSERT_FAILS(pshm_list_cas(l, 2, &expected, 1), PSHM_ETYPE);
    finish(l);
}

#define WORKERS 6
#define ADDS_EACH 20000

/* Item 0 counts adds, item 1 counts increments made by CAS retry loops. */
static void hammer(pshm_list *l)
{
    for (int i = 0; i < ADDS_EACH; i++) {
        if (pshm_list_add(l, 0, 1, NULL) < 0)
            _exit(1);
        int64_t seen = get_int(l, 1);
        int rc;
        while ((rc = pshm_list_cas(l, 1, &seen, seen + 2)) == 0)
            ;
        if (rc < 0)
            _exit(2);
    }
    _exit(0);
}

Test(list, atomics_from_several_processes)
{
    const char *name = new_name("procs");
    pshm_value in[] = {pshm_int(0), pshm_int(0)};
    pshm_list *l = make(name, in, 2);
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        cr_assert_geq(pids[w], 0);
        if (pids[w] == 0) {
            pshm_list *mine; /* half use the inherited handle, half attach anew */
            if (w % 2 == 0 && pshm_list_attach(&mine, name, PSHM_UNTRACKED) == 0)
                hammer(mine);
            hammer(l);
        }
    }
    for (int w = 0; w < WORKERS; w++) {
        int status = t_wait(pids[w], 120);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d: %d", w, status);
    }
    cr_assert_eq(get_int(l, 0), WORKERS * ADDS_EACH);
    cr_assert_eq(get_int(l, 1), 2 * WORKERS * ADDS_EACH);
    finish(l);
}

/* ---- corrupt blocks ---------------------------------------------------- */

/*
 * A valid list [7, 'abc', None] made untracked, for a test to break by hand:
 * header at 0, offsets at 8 (0, 8, 16, 24), data at 40, formats at 64,
 * codes at 88, 91 bytes in all.
 */
#define F_AT 64
#define C_AT 88
static pshm_list *victim(const char *name)
{
    pshm_value in[] = {pshm_int(7), pshm_str("abc"), pshm_none()};
    pshm_list *l = make(name, in, 3);
    cr_assert_eq(pshm_block_size(pshm_list_block(l)), 91);
    return l;
}

static void put64(pshm_list *l, size_t at, int64_t v) { memcpy(raw_buf(l) + at, &v, 8); }

static void assert_attach_corrupt(const char *name, const char *why)
{
    pshm_list *a = NULL;
    ASSERT_FAILS(pshm_list_attach(&a, name, 0), PSHM_ECORRUPT);
    cr_assert_null(a);
    cr_assert(strstr(pshm_last_error(), name) != NULL);
    cr_assert(strstr(pshm_last_error(), why) != NULL, "\"%s\" lacks \"%s\"",
              pshm_last_error(), why);
}

Test(list, attach_rejects_bad_headers)
{
    const char *name = new_name("hdr");
    pshm_list *l = victim(name);
    const struct {
        size_t at;
        int64_t value;
        const char *why;
    } cases[] = {
        {0, -1, "item count -1"},
        {0, 5, "item count 5"},
        {0, INT64_MAX / 8, "item count"}, /* (N + 2) * 8 would overflow */
        {0, (int64_t)(UINT64_MAX / 17 + 1), "item count"},
        {8, 8, "offset 0 is 8"},
        {16, 24, "offset 2 is 16"}, /* 0, 24, 16: decreasing */
        {24, 0, "offset 2 is 0"},   /* 0, 8, 0: decreasing */
        {24, 12, "multiples of 8"},
        {32, 32, "overruns"},
        {32, -8, "data area (-8 bytes)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t saved;
        memcpy(&saved, raw_buf(l) + cases[i].at, 8);
        put64(l, cases[i].at, cases[i].value);
        assert_attach_corrupt(name, cases[i].why);
        put64(l, cases[i].at, saved);
    }
    pshm_list *a;
    ASSERT_OK(pshm_list_attach(&a, name, PSHM_UNTRACKED)); /* restored */
    pshm_list_free(a);
    finish(l);
}

Test(list, attach_rejects_tiny_block)
{
    const char *name = new_name("tiny");
    pshm_block *b;
    ASSERT_OK(pshm_block_create(&b, name, 15, PSHM_UNTRACKED));
    assert_attach_corrupt(name, "fewer than the 16");
    cr_assert(t_shm_exists(name)); /* a failed attach leaves the block alone */
    ASSERT_OK(pshm_block_unlink(b));
    pshm_block_free(b);
}

/* Break item 1 ('abc', span 8) by format and code; get must refuse it. */
static void assert_item_corrupt(pshm_list *l, const char format[8], int code, const char *why)
{
    memcpy(raw_buf(l) + F_AT + 8, format, 8);
    raw_buf(l)[C_AT + 1] = (unsigned char)code;
    pshm_value v;
    ASSERT_FAILS(pshm_list_get(l, 1, &v), PSHM_ECORRUPT);
    cr_assert(strstr(pshm_last_error(), "get \"") == pshm_last_error());
    cr_assert(strstr(pshm_last_error(), "[1]: ") != NULL, "%s", pshm_last_error());
    cr_assert(strstr(pshm_last_error(), why) != NULL, "\"%s\" lacks \"%s\"",
              pshm_last_error(), why);
    /* A set over a corrupt item is refused too and writes nothing. */
    unsigned char before[8];
    memcpy(before, raw_buf(l) + 48, 8);
    ASSERT_FAILS(pshm_list_set(l, 1, pshm_str("x")), PSHM_ECORRUPT);
    cr_assert(memcmp(before, raw_buf(l) + 48, 8) == 0);
    char *text;
    ASSERT_FAILS(pshm_list_repr(l, &text), PSHM_ECORRUPT);
    ASSERT_FAILS(pshm_list_format(l, &text), PSHM_ECORRUPT);
    size_t n;
    ASSERT_FAILS(pshm_list_count(l, &v, &n), PSHM_ECORRUPT);
}

Test(list, get_rejects_bad_formats_and_codes)
{
    const char *name = new_name("item");
    pshm_list *owner = victim(name), *l;
    ASSERT_OK(pshm_list_attach(&l, name, PSHM_UNTRACKED));
    assert_item_corrupt(l, "zz\0\0\0\0\0\0", 1, "unknown item format (format \"zz\"");
    assert_item_corrupt(l, "\xff\0\0\0\0\0\0\0", 1, "format \"\\xff\"");
    assert_item_corrupt(l, "12345678", 1, "unknown item format");
    assert_item_corrupt(l, "8s\0x\0\0\0\0", 1, "unknown item format");
    assert_item_corrupt(l, "s\0\0\0\0\0\0\0", 1, "unknown item format");
    assert_item_corrupt(l, "-8s\0\0\0\0\0", 1, "unknown item format");
    assert_item_corrupt(l, "16s\0\0\0\0\0", 1, "more bytes than the item's span");
    assert_item_corrupt(l, "9999999s", 2, "more bytes than the item's span");
    assert_item_corrupt(l, "8s\0\0\0\0\0\0", 0, "needs code 1 or 2");
    assert_item_corrupt(l, "8s\0\0\0\0\0\0", 3, "needs code 1 or 2");
    assert_item_corrupt(l, "8s\0\0\0\0\0\0", 0xff, "code -1");
    assert_item_corrupt(l, "q\0\0\0\0\0\0\0", 1, "unknown item format");
    assert_item_corrupt(l, "xxxxxx?x", 0, "unknown item format");
    assert_item_corrupt(l, "d\0\0\0\0\0\0\0", 3, "code 3");
    /* Invalid UTF-8 in a well-formed str item. */
    memcpy(raw_buf(l) + F_AT + 8, "8s\0\0\0\0\0\0", 8);
    raw_buf(l)[C_AT + 1] = 1;
    memcpy(raw_buf(l) + 48, "ab\xc3(\0\0\0\0", 8);
    pshm_value v = pshm_int(-5);
    ASSERT_FAILS(pshm_list_get(l, 1, &v), PSHM_ECORRUPT);
    cr_assert(strstr(pshm_last_error(), "not valid UTF-8") != NULL);
    cr_assert(v.type == PSHM_INT && v.u.i == -5, "a failed get must not touch *out");
    char buf[16];
    ASSERT_FAILS(pshm_list_get_copy(l, 1, &v, buf, sizeof buf), PSHM_ECORRUPT);
    /* The same bytes as bytes are fine, and a set repairs the item. */
    raw_buf(l)[C_AT + 1] = 2;
    assert_str(l, 1, PSHM_BYTES, "ab\xc3(", 4);
    ASSERT_OK(pshm_list_set(l, 1, pshm_str("ok")));
    assert_str(owner, 1, PSHM_STR, "ok", 2);
    pshm_list_free(l);
    finish(owner);
}

Test(list, header_rewritten_after_attach_is_ignored)
{
    const char *name = new_name("rewrite");
    pshm_list *owner = victim(name), *l;
    ASSERT_OK(pshm_list_attach(&l, name, PSHM_UNTRACKED));
    /* Another process points the offsets and count far outside the block:
     * this handle keeps using its private, validated copy. */
    put64(owner, 0, INT64_MAX);
    for (size_t at = 8; at < 40; at += 8)
        put64(owner, at, 1ll << 40);
    cr_assert_eq(pshm_list_len(l), 3);
    cr_assert_eq(get_int(l, 0), 7);
    assert_str(l, 1, PSHM_STR, "abc", 3);
    ASSERT_OK(pshm_list_set(l, 2, pshm_int(9)));
    cr_assert_eq(get_int(l, -1), 9);
    assert_attach_corrupt(name, "item count");
    pshm_list_free(l);
    finish(owner);
}

/* ---- typed views and same-type get/set ---------------------------------- */

#define ASSERT_MESSAGE(text)                                                                 \
    cr_assert(strstr(pshm_last_error(), (text)) != NULL, "\"%s\" lacks \"%s\"",              \
              pshm_last_error(), (text))

static pshm_list *ints(const char *name, size_t n)
{
    pshm_value values[64];
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++)
        values[i] = pshm_int((int64_t)i * 10);
    return make(name, values, n);
}

/* In a child process: attach `name` and set item `index` to v. */
static void set_in_child(const char *name, int64_t index, pshm_value v)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        pshm_list *l;
        int rc = pshm_list_attach(&l, name, PSHM_UNTRACKED);
        if (rc == 0)
            rc = pshm_list_set(l, index, v);
        _exit(rc < 0);
    }
    int status = t_wait(pid, 30);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

Test(list, int_view_reads_and_writes_the_items)
{
    const char *name = new_name("ints");
    pshm_list *l = ints(name, 16);
    pshm_view v;
    ASSERT_OK(pshm_list_view(l, PSHM_INT, &v));
    cr_assert_eq(v.list, l);
    cr_assert_eq(v.type, PSHM_INT);
    cr_assert_eq(v.start, 0);
    cr_assert_eq(v.count, 16);
    cr_assert_null(v.floats);
    for (size_t i = 0; i < v.count; i++)
        cr_assert_eq(v.ints[i], (int64_t)i * 10);
    v.ints[3] = INT64_MIN;
    pshm_value got;
    ASSERT_OK(pshm_list_get(l, 3, &got));
    cr_assert(got.type == PSHM_INT && got.u.i == INT64_MIN);
    ASSERT_OK(pshm_list_set(l, 4, pshm_int(-4)));
    cr_assert_eq(v.ints[4], -4);
    ASSERT_OK(pshm_list_view_check(&v));
    finish(l);
}

Test(list, float_view_and_ranges)
{
    pshm_value in[] = {pshm_int(1), pshm_float(0.5), pshm_float(-0.0), pshm_float(INFINITY),
                       pshm_int(2)};
    pshm_list *l = make(new_name("floats"), in, 5);
    pshm_view v;
    ASSERT_OK(pshm_list_view_range(l, PSHM_FLOAT, 1, 3, &v));
    cr_assert_null(v.ints);
    cr_assert_eq(v.floats[0], 0.5);
    cr_assert(signbit(v.floats[1]) && v.floats[1] == 0.0);
    cr_assert(isinf(v.floats[2]));
    v.floats[0] = 1.25;
    pshm_value got;
    ASSERT_OK(pshm_list_get(l, 1, &got));
    cr_assert(got.type == PSHM_FLOAT && got.u.f == 1.25);
    ASSERT_OK(pshm_list_view_range(l, PSHM_INT, 4, 1, &v));
    cr_assert_eq(v.ints[0], 2);
    ASSERT_OK(pshm_list_view_range(l, PSHM_INT, 5, 0, &v)); /* empty, at the end */
    cr_assert_eq(v.count, 0);
    ASSERT_OK(pshm_list_view_check(&v));
    finish(l);
}

/* The first item that is not of the view's type is named, whatever follows. */
Test(list, view_mixed_ranges_are_refused_naming_the_first_other_item)
{
    const char *name = new_name("mixed");
    pshm_value in[] = {pshm_int(0),     pshm_int(1), pshm_str("two"), pshm_float(3),
                       pshm_bool(true), pshm_none(), pshm_int(6)};
    pshm_list *l = make(name, in, 7);
    pshm_view v = {0};
    char want[128];
    ASSERT_FAILS(pshm_list_view(l, PSHM_INT, &v), PSHM_ETYPE);
    snprintf(want, sizeof want, "view \"%s\"[2]: the item is a str in 8 bytes", name);
    ASSERT_MESSAGE(want);
    cr_assert_eq(v.list, NULL, "a refused view is left untouched");
    ASSERT_FAILS(pshm_list_view_range(l, PSHM_FLOAT, 3, 2, &v), PSHM_ETYPE);
    ASSERT_MESSAGE("[4]: the item is a bool");
    ASSERT_FAILS(pshm_list_view_range(l, PSHM_INT, 5, 2, &v), PSHM_ETYPE);
    ASSERT_MESSAGE("[5]: the item is a None");
    ASSERT_FAILS(pshm_list_view_range(l, PSHM_FLOAT, 0, 1, &v), PSHM_ETYPE);
    ASSERT_MESSAGE("[0]: the item is an int in 8 bytes; a view needs floats");
    ASSERT_OK(pshm_list_view_range(l, PSHM_INT, 0, 2, &v));
    finish(l);
}

/* An int in a 16-byte slot (a str's, set to an int) breaks contiguity. */
Test(list, view_wide_slots_are_refused)
{
    const char *name = new_name("wide");
    pshm_value in[] = {pshm_int(0), pshm_str("fifteen bytes.."), pshm_int(2)};
    pshm_list *l = make(name, in, 3);
    ASSERT_OK(pshm_list_set(l, 1, pshm_int(1)));
    pshm_view v;
    ASSERT_FAILS(pshm_list_view(l, PSHM_INT, &v), PSHM_ETYPE);
    ASSERT_MESSAGE("[1]: the item is an int in 16 bytes; a view needs ints of exactly 8");
    ASSERT_OK(pshm_list_view_range(l, PSHM_INT, 2, 1, &v));
    /* The first offending item is named, whether its type or its slot is
     * what offends: here the float before the wide slot. */
    ASSERT_OK(pshm_list_set(l, 0, pshm_float(0.5)));
    ASSERT_FAILS(pshm_list_view(l, PSHM_INT, &v), PSHM_ETYPE);
    ASSERT_MESSAGE("[0]: the item is a float in 8 bytes");
    finish(l);
}

Test(list, view_bad_arguments)
{
    pshm_list *l = ints(new_name("args"), 4);
    pshm_view v;
    ASSERT_FAILS(pshm_list_view(NULL, PSHM_INT, &v), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_view(l, PSHM_INT, NULL), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_view(l, PSHM_STR, &v), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_view(l, (pshm_type)99, &v), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_view_range(l, PSHM_INT, 5, 0, &v), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_view_range(l, PSHM_INT, 2, 3, &v), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_view_range(l, PSHM_INT, 1, SIZE_MAX, &v), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_view_check(NULL), PSHM_EINVAL);
    pshm_view forged = {.list = l, .type = PSHM_INT, .start = 3, .count = 2};
    ASSERT_FAILS(pshm_list_view_check(&forged), PSHM_EINVAL);
    ASSERT_OK(pshm_list_view(l, PSHM_INT, &v));
    ASSERT_OK(pshm_block_close(pshm_list_block(l)));
    ASSERT_FAILS(pshm_list_view_check(&v), PSHM_ECLOSED);
    ASSERT_FAILS(pshm_list_view(l, PSHM_INT, &v), PSHM_ECLOSED);
    finish(l);
}

Test(list, view_empty_list)
{
    pshm_list *l = make(new_name("empty"), NULL, 0);
    pshm_view v;
    ASSERT_OK(pshm_list_view(l, PSHM_FLOAT, &v));
    cr_assert_eq(v.count, 0);
    ASSERT_OK(pshm_list_view_check(&v));
    finish(l);
}

/* Another process changes types: the check names the first changed item;
 * same-type sets and changes outside the range keep the view valid. */
Test(list, view_check_sees_a_type_change_by_another_process)
{
    const char *name = new_name("check");
    pshm_list *l = ints(name, 10);
    pshm_view v;
    ASSERT_OK(pshm_list_view_range(l, PSHM_INT, 2, 6, &v));
    set_in_child(name, 9, pshm_str("outside"));
    set_in_child(name, 4, pshm_int(44));
    ASSERT_OK(pshm_list_view_check(&v));
    cr_assert_eq(v.ints[2], 44);
    set_in_child(name, 6, pshm_float(6.5));
    set_in_child(name, 5, pshm_str("five"));
    ASSERT_FAILS(pshm_list_view_check(&v), PSHM_ETYPE);
    char want[128];
    snprintf(want, sizeof want, "view_check \"%s\"[5]: the item is a str", name);
    ASSERT_MESSAGE(want);
    set_in_child(name, 5, pshm_int(5));
    ASSERT_FAILS(pshm_list_view_check(&v), PSHM_ETYPE);
    ASSERT_MESSAGE("[6]: the item is a float");
    set_in_child(name, 6, pshm_int(6)); /* changed back: no check can tell */
    ASSERT_OK(pshm_list_view_check(&v));
    finish(l);
}

Test(list, view_read_only_list_can_be_viewed)
{
    const char *name = new_name("ro");
    pshm_list *l = ints(name, 3), *ro;
    ASSERT_OK(pshm_list_attach(&ro, name, PSHM_READONLY | PSHM_UNTRACKED));
    pshm_view v;
    ASSERT_OK(pshm_list_view(ro, PSHM_INT, &v));
    cr_assert_eq(v.ints[2], 20);
    ASSERT_OK(pshm_list_view_check(&v));
    pshm_list_free(ro);
    finish(l);
}

/* ---- same-type get and set (the lock-free path) -------------------------- */

static uint64_t data_word(pshm_list *l, size_t index, size_t n)
{
    const unsigned char *buf = pshm_block_buf(pshm_list_block(l));
    uint64_t w;
    memcpy(&w, buf + (n + 2) * 8 + index * 8, sizeof w);
    return w;
}

/* Each fixed type set over itself writes struct's packing: bool's byte in
 * the 8th place, None all zero, and every pad byte zero. */
Test(list, same_type_sets_write_cpython_bytes)
{
    pshm_value in[] = {pshm_int(1), pshm_float(1), pshm_bool(false), pshm_none()};
    pshm_list *l = make(new_name("same"), in, 4);
    unsigned char *buf = pshm_block_buf(pshm_list_block(l));
    memset(buf + 6 * 8, 0xee, 4 * 8); /* garbage a set must overwrite */
    ASSERT_OK(pshm_list_set(l, 0, pshm_int(-2)));
    ASSERT_OK(pshm_list_set(l, 1, pshm_float(-2.5)));
    ASSERT_OK(pshm_list_set(l, 2, pshm_bool(true)));
    ASSERT_OK(pshm_list_set(l, -1, pshm_none()));
    double f = -2.5;
    uint64_t fw, bw = 0;
    memcpy(&fw, &f, sizeof fw);
    ((unsigned char *)&bw)[7] = 1;
    cr_assert_eq(data_word(l, 0, 4), (uint64_t)-2);
    cr_assert_eq(data_word(l, 1, 4), fw);
    cr_assert_eq(data_word(l, 2, 4), bw);
    cr_assert_eq(data_word(l, 3, 4), 0);
    pshm_value got;
    ASSERT_OK(pshm_list_get(l, -2, &got));
    cr_assert(got.type == PSHM_BOOL && got.u.b);
    ASSERT_OK(pshm_list_set(l, 2, pshm_bool(false)));
    cr_assert_eq(data_word(l, 2, 4), 0);
    finish(l);
}

/* The lock-free path keeps every refusal of the general one. */
Test(list, same_type_sets_keep_refusals)
{
    const char *name = new_name("refuse");
    pshm_list *l = ints(name, 2), *ro;
    ASSERT_OK(pshm_list_attach(&ro, name, PSHM_READONLY | PSHM_UNTRACKED));
    ASSERT_FAILS(pshm_list_set(ro, 0, pshm_int(5)), PSHM_EACCES);
    ASSERT_FAILS(pshm_list_set(ro, 0, pshm_none()), PSHM_EACCES);
    pshm_list_free(ro);
    ASSERT_FAILS(pshm_list_set(l, 2, pshm_int(5)), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_set(l, -3, pshm_int(5)), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_set(NULL, 0, pshm_int(5)), PSHM_EINVAL);
    /* A "q" format with a str's code is malformed, not an int. */
    unsigned char *buf = pshm_block_buf(pshm_list_block(l));
    buf[(2 + 2) * 8 + 2 * 8 + 2 * 8 + 1] = 1; /* item 1's code */
    ASSERT_FAILS(pshm_list_set(l, 1, pshm_int(5)), PSHM_ECORRUPT);
    pshm_value got;
    ASSERT_FAILS(pshm_list_get(l, 1, &got), PSHM_ECORRUPT);
    cr_assert_eq(data_word(l, 1, 2), 10);
    finish(l);
}

/* ---- typed get and set ------------------------------------------------- */

/* [1, 1.5, True, None, 'abc'] named `name`: one item of each kind. */
static pshm_list *one_of_each(const char *name)
{
    pshm_value in[] = {pshm_int(1), pshm_float(1.5), pshm_bool(true), pshm_none(),
                       pshm_str("abc")};
    return make(name, in, 5);
}

/* pshm_list_get_int/_float read their own type only; the sets are
 * pshm_list_set of pshm_int/pshm_float: same bytes, same type changes. */
Test(list, typed_calls_read_write_and_change_types_as_set_does)
{
    const char *name = new_name("typed");
    pshm_list *l = one_of_each(name);
    int64_t i = 0;
    double f = 0;
    ASSERT_OK(pshm_list_get_int(l, 0, &i));
    cr_assert_eq(i, 1);
    ASSERT_OK(pshm_list_get_int(l, -5, &i));
    cr_assert_eq(i, 1);
    ASSERT_OK(pshm_list_get_float(l, 1, &f));
    cr_assert_eq(f, 1.5);
    ASSERT_OK(pshm_list_set_int(l, 0, -7));
    ASSERT_OK(pshm_list_set_float(l, -4, -0.5));
    double want = -0.5;
    uint64_t fw;
    memcpy(&fw, &want, sizeof fw);
    cr_assert_eq(data_word(l, 0, 5), (uint64_t)-7);
    cr_assert_eq(data_word(l, 1, 5), fw);
    cr_assert_eq(get_int(l, 0), -7);
    /* Over other types: the type changes, format and code as CPython's. */
    ASSERT_OK(pshm_list_set_int(l, 1, 1));
    ASSERT_OK(pshm_list_set_float(l, 2, 0.25));
    ASSERT_OK(pshm_list_set_int(l, 3, INT64_MIN));
    ASSERT_OK(pshm_list_set_float(l, 4, 1e300));
    ASSERT_OK(pshm_list_set_float(l, 0, -0.0));
    assert_format(l, "dqdqd");
    char repr[160];
    snprintf(repr, sizeof repr,
             "ShareableList([-0.0, 1, 0.25, -9223372036854775808, 1e+300], name='%s')", name);
    assert_repr(l, repr);
    ASSERT_OK(pshm_list_get_int(l, 3, &i));
    cr_assert_eq(i, INT64_MIN);
    ASSERT_OK(pshm_list_get_float(l, 4, &f));
    cr_assert_eq(f, 1e300);
    finish(l);
}

/* pshm_list_set is a macro over the typed sets for numbers (pshm.h): the
 * macro, the exported function called by name and through a pointer must
 * leave the same bytes, for numbers, type changes and the other types. */
Test(list, set_macro_and_exported_function_agree)
{
    const char *name = new_name("setmacro");
    pshm_list *l = one_of_each(name);
    int (*exported)(pshm_list *, int64_t, pshm_value) = &pshm_list_set;
    pshm_value runtime_int = pshm_int(41); /* the type is not a constant here */
    ASSERT_OK(pshm_list_set(l, 0, runtime_int));
    cr_assert_eq(data_word(l, 0, 5), 41);
    ASSERT_OK((pshm_list_set)(l, 0, pshm_int(42)));
    cr_assert_eq(data_word(l, 0, 5), 42);
    ASSERT_OK(exported(l, 0, pshm_int(43)));
    cr_assert_eq(data_word(l, 0, 5), 43);
    ASSERT_OK(pshm_list_set(l, 1, pshm_int(2)));     /* float -> int */
    ASSERT_OK(pshm_list_set(l, 0, pshm_float(2.5))); /* int -> float */
    ASSERT_OK(pshm_list_set(l, 2, pshm_bool(true)));
    ASSERT_OK(exported(l, 3, pshm_none()));
    ASSERT_OK(pshm_list_set(l, 4, pshm_float(0.5)));
    assert_format(l, "dqxxxxxxx?xxxxxx?xd"); /* bool and None as CPython writes them */
    cr_assert_eq(pshm_list_set(l, 5, pshm_int(1)), PSHM_ERANGE);
    cr_assert_eq(pshm_list_set(l, 5, pshm_none()), PSHM_ERANGE);
    finish(l);
}

/* A typed get of another type, a bad index or a bad argument fails with
 * the item's own error, naming the call, and leaves *out alone. */
Test(list, typed_calls_refuse_other_types_and_bad_indices)
{
    pshm_list *l = one_of_each(new_name("refuse"));
    int64_t i = 42;
    double f = 4.25;
    ASSERT_FAILS(pshm_list_get_int(l, 1, &i), PSHM_ETYPE);
    ASSERT_MESSAGE("get_int \"");
    ASSERT_MESSAGE("[1]: the item is a float, not an int");
    ASSERT_FAILS(pshm_list_get_int(l, 2, &i), PSHM_ETYPE);
    ASSERT_MESSAGE("[2]: the item is a bool, not an int");
    ASSERT_FAILS(pshm_list_get_int(l, -2, &i), PSHM_ETYPE);
    ASSERT_MESSAGE("[-2]: the item is a None, not an int");
    ASSERT_FAILS(pshm_list_get_int(l, 4, &i), PSHM_ETYPE);
    ASSERT_MESSAGE("[4]: the item is a str, not an int");
    ASSERT_FAILS(pshm_list_get_float(l, 0, &f), PSHM_ETYPE);
    ASSERT_MESSAGE("get_float \"");
    ASSERT_MESSAGE("[0]: the item is an int, not a float");
    cr_assert(i == 42 && f == 4.25, "a failed get must not touch *out");
    ASSERT_FAILS(pshm_list_get_int(l, 5, &i), PSHM_ERANGE);
    ASSERT_MESSAGE("index out of range for a list of 5 items");
    ASSERT_FAILS(pshm_list_get_int(l, -6, &i), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_get_float(l, INT64_MIN, &f), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_set_int(l, 5, 1), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_set_int(l, INT64_MAX, 1), PSHM_ERANGE);
    ASSERT_FAILS(pshm_list_set_float(l, -6, 1), PSHM_ERANGE);
    cr_assert(i == 42 && f == 4.25, "a failed get must not touch *out");
    ASSERT_FAILS(pshm_list_get_int(NULL, 0, &i), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_get_int(l, 0, NULL), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_get_float(l, 1, NULL), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_set_int(NULL, 0, 1), PSHM_EINVAL);
    ASSERT_FAILS(pshm_list_set_float(NULL, 0, 1), PSHM_EINVAL);
    /* A "q" format with a str's code is malformed: neither an int to read
     * nor one to overwrite. */
    raw_buf(l)[(5 + 2) * 8 + 5 * 8 + 5 * 8 + 0] = 1; /* item 0's code */
    ASSERT_FAILS(pshm_list_get_int(l, 0, &i), PSHM_ECORRUPT);
    ASSERT_FAILS(pshm_list_set_int(l, 0, 9), PSHM_ECORRUPT);
    cr_assert_eq(data_word(l, 0, 5), 1);
    finish(l);
}

/* A read-only handle reads through the typed calls and writes nothing. */
Test(list, typed_sets_refuse_read_only_lists)
{
    const char *name = new_name("typed_ro");
    pshm_value in[] = {pshm_int(1), pshm_float(1.5)};
    pshm_list *l = make(name, in, 2), *ro;
    ASSERT_OK(pshm_list_attach(&ro, name, PSHM_READONLY | PSHM_UNTRACKED));
    int64_t i = 0;
    ASSERT_OK(pshm_list_get_int(ro, 0, &i));
    cr_assert_eq(i, 1);
    ASSERT_FAILS(pshm_list_set_int(ro, 0, 2), PSHM_EACCES);
    ASSERT_FAILS(pshm_list_set_float(ro, 1, 2.5), PSHM_EACCES);
    ASSERT_FAILS(pshm_list_set_int(ro, 1, 2), PSHM_EACCES);
    pshm_list_free(ro);
    cr_assert_eq(get_int(l, 0), 1);
    finish(l);
}

/* Every item's type is read afresh: a change made by another process is
 * seen by the next typed call. */
Test(list, typed_gets_see_another_process_change_the_type)
{
    const char *name = new_name("typed_child");
    pshm_list *l = ints(name, 4);
    int64_t i = 0;
    ASSERT_OK(pshm_list_get_int(l, 2, &i));
    cr_assert_eq(i, 20);
    set_in_child(name, 2, pshm_str("x"));
    ASSERT_FAILS(pshm_list_get_int(l, 2, &i), PSHM_ETYPE);
    ASSERT_MESSAGE("the item is a str, not an int");
    ASSERT_FAILS(pshm_list_get_float(l, 2, NULL), PSHM_EINVAL);
    set_in_child(name, 2, pshm_float(0.5));
    double f = 0;
    ASSERT_OK(pshm_list_get_float(l, 2, &f));
    cr_assert_eq(f, 0.5);
    ASSERT_OK(pshm_list_set_int(l, 2, 3));
    cr_assert_eq(get_int(l, 2), 3);
    finish(l);
}

/*
 * A hand-made list whose item 0 has a span of 0 bytes under an int's "q"
 * format: the fast paths serve no item of such a list, so the item is
 * refused as malformed (its 8 bytes would be item 1's), by every call.
 */
Test(list, fast_paths_leave_short_spans_to_the_checks)
{
    const char *name = new_name("short");
    pshm_list *owner = victim(name), *l;
    put64(owner, 16, 0); /* offsets 0, 0, 16, 24: item 0's span is 0 */
    ASSERT_OK(pshm_list_attach(&l, name, PSHM_UNTRACKED));
    int64_t i = 0;
    pshm_value v;
    ASSERT_FAILS(pshm_list_get_int(l, 0, &i), PSHM_ECORRUPT);
    ASSERT_MESSAGE("the format covers more bytes than the item's span");
    ASSERT_FAILS(pshm_list_get(l, 0, &v), PSHM_ECORRUPT);
    ASSERT_FAILS(pshm_list_set_int(l, 0, 9), PSHM_ECORRUPT);
    ASSERT_FAILS(pshm_list_set(l, 0, pshm_int(9)), PSHM_ECORRUPT);
    cr_assert_eq(i, 0);
    int64_t first;
    memcpy(&first, raw_buf(owner) + 40, 8); /* the data area's first word */
    cr_assert_eq(first, 7, "a refused set must write nothing");
    /* The None item, 8 bytes wide, is still served (by the general path). */
    ASSERT_OK(pshm_list_get(l, 2, &v));
    cr_assert_eq(v.type, PSHM_NONE);
    ASSERT_OK(pshm_list_set_int(l, 2, 5));
    ASSERT_OK(pshm_list_get_int(l, 2, &i));
    cr_assert_eq(i, 5);
    pshm_list_free(l);
    finish(owner);
}
