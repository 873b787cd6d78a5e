/*
 * values_roundtrip — lets test_values_python.py compare pshm's literal
 * parser, repr and equality with CPython's, one line at a time.
 *
 *   values_roundtrip repr FILE    each line a literal; prints its repr, or
 *                                 "ERROR <message>" if it does not parse.
 *                                 Also checks that the repr parses back to
 *                                 an equal value (exit 1 if not).
 *   values_roundtrip equal FILE   each line two literals separated by a tab;
 *                                 prints 1 if they are equal, 0 if not.
 *
 * repr never writes a raw tab or line break, so tab and newline are safe
 * separators. Exit status: 0 done, 1 a round trip failed, 2 usage or I/O.
 */
#include "pshm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_nan(const pshm_value *v) { return v->type == PSHM_FLOAT && isnan(v->u.f); }

/* Print repr(parse(line)); false if repr(value) does not read back equal. */
static bool repr_line(const char *line)
{
    pshm_value v;
    if (pshm_value_parse(line, &v) < 0) {
        printf("ERROR %s\n", pshm_last_error());
        return true;
    }
    char *text = NULL;
    bool ok = true;
    if (pshm_value_repr(&v, &text) < 0) {
        printf("ERROR %s\n", pshm_last_error());
    } else {
        printf("%s\n", text);
        pshm_value back;
        ok = pshm_value_parse(text, &back) == 0 &&
             (pshm_value_equal(&v, &back) || (is_nan(&v) && is_nan(&back))) &&
             back.type == v.type;
        if (!ok)
            fprintf(stderr, "round trip failed: %s -> %s\n", line, text);
        pshm_value_free(&back);
    }
    free(text);
    pshm_value_free(&v);
    return ok;
}

static bool equal_line(char *line)
{
    char *tab = strchr(line, '\t');
    if (tab == NULL) {
        fprintf(stderr, "no tab in line: %s\n", line);
        return false;
    }
    *tab = '\0';
    pshm_value a, b;
    int rc_a = pshm_value_parse(line, &a);
    int rc_b = pshm_value_parse(tab + 1, &b);
    if (rc_a < 0 || rc_b < 0)
        printf("ERROR %s\n", pshm_last_error());
    else
        printf("%d\n", pshm_value_equal(&a, &b) ? 1 : 0);
    pshm_value_free(&a);
    pshm_value_free(&b);
    return rc_a == 0 && rc_b == 0;
}

int main(int argc, char **argv)
{
    bool equal_mode = argc == 3 && strcmp(argv[1], "equal") == 0;
    if (argc != 3 || (!equal_mode && strcmp(argv[1], "repr") != 0)) {
        fprintf(stderr, "usage: %s repr|equal FILE\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[2], "r");
    if (in == NULL) {
        perror(argv[2]);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool ok = true;
    while ((n = getline(&line, &cap, in)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[n - 1] = '\0';
        ok &= equal_mode ? equal_line(line) : repr_line(line);
    }
    free(line);
    fclose(in);
    return ok ? 0 : 1;
}
