/*
 * fuzz_literal — arbitrary bytes into pshm_value_parse. Whatever parses
 * must repr without error, and the repr must parse back to an equal value
 * of the same type (NaN equals nothing, so for NaN only the type is
 * checked). Any other outcome, or a sanitizer report, is a bug.
 */
#include "pshm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_value(const pshm_value *a, const pshm_value *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == PSHM_FLOAT && isnan(a->u.f))
        return isnan(b->u.f);
    return pshm_value_equal(a, b);
}

static void check_round_trip(const pshm_value *v)
{
    char *text = NULL;
    if (pshm_value_repr(v, &text) != 0) {
        fprintf(stderr, "repr failed: %s\n", pshm_last_error());
        abort();
    }
    pshm_value back;
    if (pshm_value_parse(text, &back) != 0) {
        fprintf(stderr, "repr %s does not parse: %s\n", text, pshm_last_error());
        abort();
    }
    if (!same_value(v, &back)) {
        fprintf(stderr, "repr %s parses to a different value\n", text);
        abort();
    }
    pshm_value_free(&back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *literal = malloc(size + 1);
    if (literal == NULL)
        return 0;
    memcpy(literal, data, size);
    literal[size] = '\0'; /* an embedded NUL simply ends the literal early */
    pshm_value v;
    if (pshm_value_parse(literal, &v) == 0) {
        check_round_trip(&v);
        pshm_value_free(&v);
    }
    free(literal);
    return 0;
}
