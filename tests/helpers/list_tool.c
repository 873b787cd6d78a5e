/*
 * list_tool — drives pshm's shareable lists from the command line for the
 * interop tests (tests/test_list_interop.py), through the public API only.
 *
 *   list_tool create NAME LITERAL...   new list of the parsed literals
 *   list_tool range NAME N             new list of the ints 0 .. N-1
 *   list_tool repr|format|len|sum NAME
 *   list_tool get NAME INDEX           repr() of one item
 *   list_tool raw NAME INDEX           the item's allocated bytes, in hex
 *   list_tool set NAME INDEX LITERAL
 *   list_tool add NAME INDEX DELTA     prints the value before the add
 *   list_tool count|index NAME LITERAL
 *   list_tool unlink NAME
 *   list_tool ops NAME                 commands from stdin, one a line, one
 *                                      output line each (flushed):
 *       get INDEX                      repr() of the item
 *       set INDEX LITERAL              "ok"
 *       iget|fget INDEX                pshm_list_get_int/_float: repr()
 *       iset|fset INDEX LITERAL        pshm_list_set_int/_float of an
 *                                      int/float literal: "ok"
 *       view int|float START COUNT     take a view of the range: "ok"
 *       vset K LITERAL                 store an int/float literal as the
 *                                      view's K-th value: "ok"
 *       check                          pshm_list_view_check: "ok"
 *     a failing call prints "error CODE: message" and the loop goes on.
 *
 * Lists are created and attached untracked: the test owns their lifetime.
 * Output goes to stdout. A failing call prints "error CODE: message" there
 * and exits 1; bad usage exits 2.
 */
#include "pshm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *code_name(int code)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {PSHM_ENOENT, "ENOENT"},       {PSHM_EINVAL, "EINVAL"},     {PSHM_EACCES, "EACCES"},
        {PSHM_EEXIST, "EEXIST"},       {PSHM_ERANGE, "ERANGE"},     {PSHM_ETOOBIG, "ETOOBIG"},
        {PSHM_ECORRUPT, "ECORRUPT"},   {PSHM_ETYPE, "ETYPE"},       {PSHM_ESYNTAX, "ESYNTAX"},
        {PSHM_ENOTFOUND, "ENOTFOUND"}, {PSHM_EBADSIZE, "EBADSIZE"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code)
            return names[i].name;
    return "E?";
}

/* Exit 1 with the library's message if rc is a failure. */
static void check(int rc)
{
    if (rc < 0) {
        printf("error %s: %s\n", code_name(rc), pshm_last_error());
        exit(1);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: list_tool create|range|repr|format|len|sum|get|raw|set|add|"
            "count|index|unlink|ops NAME [ARGS...]\n");
    exit(2);
}

static int64_t parse_int(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        usage();
    return v;
}

static pshm_value parse_literal(const char *s)
{
    pshm_value v;
    check(pshm_value_parse(s, &v));
    return v;
}

static pshm_list *attach(const char *name)
{
    pshm_list *l;
    check(pshm_list_attach(&l, name, PSHM_UNTRACKED));
    return l;
}

static void print_owned(char *text)
{
    puts(text);
    free(text);
}

static void print_value(const pshm_value *v)
{
    char *text;
    check(pshm_value_repr(v, &text));
    print_owned(text);
}

/* ---- ops: a session on one list, driven line by line ---------------- */

static bool report(int rc)
{
    if (rc < 0)
        printf("error %s: %s\n", code_name(rc), pshm_last_error());
    return rc >= 0;
}

/* Store a literal of the view's type as its k-th value. */
static int view_store(const pshm_view *view, size_t k, const char *literal)
{
    pshm_value v;
    int rc = pshm_value_parse(literal, &v);
    if (rc < 0)
        return rc;
    if (k >= view->count || v.type != view->type) {
        pshm_value_free(&v);
        return PSHM_EINVAL;
    }
    if (v.type == PSHM_INT)
        view->ints[k] = v.u.i;
    else
        view->floats[k] = v.u.f;
    return 0;
}

/* iget/fget: item `index` by pshm_list_get_int or _float, printed. */
static void typed_get(pshm_list *l, int64_t index, pshm_type type)
{
    int64_t i;
    double f;
    if (type == PSHM_INT && report(pshm_list_get_int(l, index, &i)))
        printf("%lld\n", (long long)i);
    if (type == PSHM_FLOAT && report(pshm_list_get_float(l, index, &f))) {
        pshm_value v = pshm_float(f);
        print_value(&v);
    }
}

/* iset/fset: an int (float) literal stored by pshm_list_set_int (_float). */
static int typed_set(pshm_list *l, int64_t index, pshm_type type, const char *literal)
{
    pshm_value v;
    int rc = pshm_value_parse(literal, &v);
    if (rc < 0)
        return rc;
    if (v.type != type) {
        pshm_value_free(&v);
        return PSHM_EINVAL;
    }
    return type == PSHM_INT ? pshm_list_set_int(l, index, v.u.i)
                            : pshm_list_set_float(l, index, v.u.f);
}

/* One command; false if it is not one. `view` persists between calls. */
static bool run_op(pshm_list *l, char *line, pshm_view *view)
{
    char type[8];
    long long a, b;
    int at = 0;
    pshm_value v;
    if (sscanf(line, "get %lld%n", &a, &at) == 1 && line[at] == '\0') {
        if (report(pshm_list_get(l, a, &v)))
            print_value(&v);
        return true;
    }
    if (sscanf(line, "set %lld %n", &a, &at) == 1 && at > 0) {
        int rc = pshm_value_parse(line + at, &v);
        if (rc == 0) {
            rc = pshm_list_set(l, a, v);
            pshm_value_free(&v);
        }
        if (report(rc))
            puts("ok");
        return true;
    }
    if (sscanf(line, "%7s %lld%n", type, &a, &at) == 2 && line[at] == '\0' &&
        (strcmp(type, "iget") == 0 || strcmp(type, "fget") == 0)) {
        typed_get(l, a, type[0] == 'i' ? PSHM_INT : PSHM_FLOAT);
        return true;
    }
    if (sscanf(line, "%7s %lld %n", type, &a, &at) == 2 && at > 0 &&
        (strcmp(type, "iset") == 0 || strcmp(type, "fset") == 0)) {
        if (report(typed_set(l, a, type[0] == 'i' ? PSHM_INT : PSHM_FLOAT, line + at)))
            puts("ok");
        return true;
    }
    if (sscanf(line, "view %7s %lld %lld", type, &a, &b) == 3 && a >= 0 && b >= 0) {
        pshm_type t = strcmp(type, "int") == 0 ? PSHM_INT : PSHM_FLOAT;
        if (report(pshm_list_view_range(l, t, (size_t)a, (size_t)b, view)))
            puts("ok");
        return true;
    }
    if (sscanf(line, "vset %lld %n", &a, &at) == 1 && at > 0 && a >= 0) {
        if (report(view_store(view, (size_t)a, line + at)))
            puts("ok");
        return true;
    }
    if (strcmp(line, "check") == 0) {
        if (report(pshm_list_view_check(view)))
            puts("ok");
        return true;
    }
    return false;
}

static int cmd_ops(const char *name)
{
    pshm_list *l = attach(name);
    pshm_view view = {0};
    char line[4096];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (!run_op(l, line, &view)) {
            fprintf(stderr, "list_tool ops: bad command: %s\n", line);
            pshm_list_free(l);
            return 2;
        }
    }
    pshm_list_free(l);
    return 0;
}

static int cmd_create(const char *name, int n, char **literals)
{
    pshm_value *values = calloc((size_t)n + 1, sizeof *values);
    for (int i = 0; i < n; i++)
        values[i] = parse_literal(literals[i]);
    pshm_list *l;
    check(pshm_list_create(&l, name, values, (size_t)n, PSHM_UNTRACKED));
    for (int i = 0; i < n; i++)
        pshm_value_free(&values[i]);
    free(values);
    pshm_list_free(l);
    return 0;
}

static int cmd_range(const char *name, int64_t n)
{
    if (n < 0)
        usage();
    pshm_value *values = calloc((size_t)n + 1, sizeof *values);
    for (int64_t i = 0; i < n; i++)
        values[i] = pshm_int(i);
    pshm_list *l;
    check(pshm_list_create(&l, name, values, (size_t)n, PSHM_UNTRACKED));
    free(values);
    pshm_list_free(l);
    return 0;
}

static void print_raw(pshm_list *l, int64_t index)
{
    const void *p;
    size_t n;
    check(pshm_list_raw(l, index, &p, &n));
    for (size_t i = 0; i < n; i++)
        printf("%02x", ((const unsigned char *)p)[i]);
    putchar('\n');
}

static void print_sum(pshm_list *l)
{
    int64_t sum = 0;
    for (size_t i = 0; i < pshm_list_len(l); i++) {
        pshm_value v;
        check(pshm_list_get(l, (int64_t)i, &v));
        sum += v.type == PSHM_INT ? v.u.i : 0;
    }
    printf("%lld\n", (long long)sum);
}

/* Commands that take the list and nothing else. */
static bool run_plain(const char *cmd, pshm_list *l)
{
    char *text;
    if (strcmp(cmd, "repr") == 0) {
        check(pshm_list_repr(l, &text));
        print_owned(text);
    } else if (strcmp(cmd, "format") == 0) {
        check(pshm_list_format(l, &text));
        print_owned(text);
    } else if (strcmp(cmd, "len") == 0) {
        printf("%zu\n", pshm_list_len(l));
    } else if (strcmp(cmd, "sum") == 0) {
        print_sum(l);
    } else {
        return false;
    }
    return true;
}

/* Commands that take the list and one argument. */
static bool run_with_arg(const char *cmd, pshm_list *l, const char *arg)
{
    pshm_value v;
    size_t n;
    if (strcmp(cmd, "get") == 0) {
        check(pshm_list_get(l, parse_int(arg), &v));
        print_value(&v);
    } else if (strcmp(cmd, "raw") == 0) {
        print_raw(l, parse_int(arg));
    } else if (strcmp(cmd, "count") == 0 || strcmp(cmd, "index") == 0) {
        v = parse_literal(arg);
        check(cmd[0] == 'c' ? pshm_list_count(l, &v, &n) : pshm_list_index(l, &v, &n));
        printf("%zu\n", n);
        pshm_value_free(&v);
    } else {
        return false;
    }
    return true;
}

/* Commands that take the list, an index and one argument. */
static bool run_with_two(const char *cmd, pshm_list *l, const char *index, const char *arg)
{
    if (strcmp(cmd, "set") == 0) {
        pshm_value v = parse_literal(arg);
        check(pshm_list_set(l, parse_int(index), v));
        pshm_value_free(&v);
    } else if (strcmp(cmd, "add") == 0) {
        int64_t old;
        check(pshm_list_add(l, parse_int(index), parse_int(arg), &old));
        printf("%lld\n", (long long)old);
    } else {
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *cmd = argv[1], *name = argv[2];
    if (strcmp(cmd, "create") == 0)
        return cmd_create(name, argc - 3, argv + 3);
    if (strcmp(cmd, "range") == 0 && argc == 4)
        return cmd_range(name, parse_int(argv[3]));
    if (strcmp(cmd, "ops") == 0 && argc == 3)
        return cmd_ops(name);
    if (strcmp(cmd, "unlink") == 0) {
        check(pshm_unlink(name));
        return 0;
    }
    pshm_list *l = attach(name);
    bool known = (argc == 3 && run_plain(cmd, l)) ||
                 (argc == 4 && run_with_arg(cmd, l, argv[3])) ||
                 (argc == 5 && run_with_two(cmd, l, argv[3], argv[4]));
    pshm_list_free(l);
    if (!known)
        usage();
    return 0;
}
