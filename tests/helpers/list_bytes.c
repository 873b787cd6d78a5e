/*
 * list_bytes — makes one fixed shareable list and prints its repr() and
 * every byte of its block in hex, through the public API only. Built on
 * Linux (a test helper) and on Windows (tests/win): both compare their
 * output (the repr without the block's random name) with tests/win/list_golden.txt, so a list made on Windows is
 * byte-identical to the same list made on Linux.
 *
 *   list_bytes GOLDEN   exit 0 if the output equals the file GOLDEN, else
 *                       print both and exit 1
 *   list_bytes          print the output (to make GOLDEN)
 */
#include "pshm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every type, a multi-byte str with a character repr escapes (U+200B, a
 * format character), bytes with NULs, empty items. */
static const char *const LITERALS[] = {
    "1",
    "-2",
    "9223372036854775807",
    "3.5",
    "-0.0",
    "1e300",
    "True",
    "False",
    "None",
    "'h\\u00e9llo \\u2713'",
    "'zero\\u200bwidth'",
    "b'\\x00ab\\xff'",
    "''",
    "b''",
};
#define N_LITERALS (sizeof LITERALS / sizeof *LITERALS)

static int fail(const char *call)
{
    fprintf(stderr, "list_bytes: %s: %s\n", call, pshm_last_error());
    return 2;
}

/* The output, as one malloc'd string. */
static int render(char **out)
{
    pshm_value values[N_LITERALS];
    for (size_t i = 0; i < N_LITERALS; i++)
        if (pshm_value_parse(LITERALS[i], &values[i]) < 0)
            return fail(LITERALS[i]);
    pshm_list *l;
    int rc = pshm_list_create(&l, NULL, values, N_LITERALS, PSHM_UNTRACKED);
    for (size_t i = 0; i < N_LITERALS; i++)
        pshm_value_free(&values[i]);
    if (rc < 0)
        return fail("pshm_list_create");
    char *repr;
    if (pshm_list_repr(l, &repr) < 0)
        return fail("pshm_list_repr");
    char *cut = strstr(repr, ", name=");
    if (cut != NULL)
        strcpy(cut, ")"); /* the random name differs from run to run */
    const pshm_block *b = pshm_list_block(l);
    const unsigned char *p = pshm_block_buf(b);
    size_t size = pshm_block_size(b);
    size_t cap = strlen(repr) + 3 * size + 64;
    char *text = malloc(cap);
    if (text == NULL)
        return fail("malloc");
    size_t len = (size_t)snprintf(text, cap, "%s\n%zu bytes\n", repr, size);
    for (size_t i = 0; i < size; i++)
        len += (size_t)snprintf(text + len, cap - len, "%02x%s", p[i],
                                i % 32 == 31 || i + 1 == size ? "\n" : "");
    free(repr);
    pshm_block_unlink(pshm_list_block(l));
    pshm_list_free(l);
    *out = text;
    return 0;
}

int main(int argc, char **argv)
{
    char *text;
    int rc = render(&text);
    if (rc != 0)
        return rc;
    if (argc < 2) {
        fputs(text, stdout);
        free(text);
        return 0;
    }
    FILE *f = fopen(argv[1], "rb");
    static char golden[1 << 16];
    size_t got = f != NULL ? fread(golden, 1, sizeof golden - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    golden[got] = '\0';
    rc = strcmp(text, golden) == 0 ? 0 : 1;
    if (rc != 0)
        printf("list_bytes: differs from %s\n--- made here:\n%s--- expected:\n%s", argv[1],
               text, golden);
    free(text);
    return rc;
}
