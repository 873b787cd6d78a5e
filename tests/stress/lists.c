/* lists.c — a shareable list whose every item can be checked by a reader. */
#include "stress.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

void checked_values_make(struct checked_values *cv, uint64_t seed, uint64_t version)
{
    /* Fixed width, so a rewrite always fits the item's storage. */
    snprintf(cv->str, sizeof cv->str, "%016llx:%015llu", (unsigned long long)seed,
             (unsigned long long)(version % 1000000000000000ull));
    fill_bytes(cv->bytes, sizeof cv->bytes, seed);
    cv->bytes[sizeof cv->bytes - 1] |= 1; /* get strips trailing NULs, as CPython does */
    cv->v[0] = pshm_int((int64_t)(seed >> 1));
    cv->v[1] = pshm_int(0);
    cv->v[2] = pshm_int(0);
    cv->v[3] = pshm_strn(cv->str, CHECKED_STR_LEN);
    cv->v[4] = pshm_bytes(cv->bytes, sizeof cv->bytes);
    cv->v[5] = pshm_float((double)(seed >> 11)); /* 53 bits: exact */
    cv->v[6] = pshm_bool(seed & 1);
    cv->v[7] = pshm_none();
}

static bool item_is(const pshm_list *l, int64_t i, const pshm_value *want)
{
    pshm_value got;
    return pshm_list_get(l, i, &got) == 0 && pshm_value_equal(&got, want) &&
           got.type == want->type;
}

static bool get_int(const pshm_list *l, int64_t i, int64_t *out)
{
    pshm_value v;
    if (pshm_list_get(l, i, &v) != 0 || v.type != PSHM_INT)
        return false;
    *out = v.u.i;
    return true;
}

/* The fixed items: everything but the seqlock, the counter and the str. */
static bool fixed_items_ok(const pshm_list *l, const struct checked_values *cv)
{
    static const int fixed[] = {4, 5, 6, 7};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (!item_is(l, fixed[k], &cv->v[fixed[k]]))
            return false;
    return true;
}

enum verdict checked_list_verify(const pshm_list *l, int64_t *counter)
{
    int64_t seed_half, s1, s2;
    if (pshm_list_len(l) != CHECKED_LIST_LEN || !get_int(l, 0, &seed_half))
        return V_BAD;
    struct checked_values cv;
    double until = now_s() + 5.0; /* see sealed_verify */
    while (now_s() < until) {
        if (!get_int(l, 1, &s1))
            return V_BAD;
        if (s1 & 1) {
            sched_yield();
            continue;
        }
        checked_values_make(&cv, (uint64_t)seed_half << 1, (uint64_t)s1 / 2);
        /* The seed's low bit is in item 6; rebuild it from there. */
        pshm_value b;
        if (pshm_list_get(l, 6, &b) != 0 || b.type != PSHM_BOOL)
            return V_BAD;
        checked_values_make(&cv, ((uint64_t)seed_half << 1) | (b.u.b ? 1 : 0),
                            (uint64_t)s1 / 2);
        bool str_ok = item_is(l, 3, &cv.v[3]);
        if (!get_int(l, 1, &s2))
            return V_BAD;
        if (s1 != s2)
            continue;
        if (!str_ok || !fixed_items_ok(l, &cv) || !get_int(l, 2, counter))
            return V_BAD;
        return V_OK;
    }
    return V_BUSY;
}

int checked_list_rewrite(pshm_list *l, uint64_t seed, uint64_t version)
{
    struct checked_values cv;
    checked_values_make(&cv, seed, version);
    int rc = pshm_list_add(l, 1, 1, NULL); /* odd: readers retry */
    if (rc == 0)
        rc = pshm_list_set(l, 3, cv.v[3]);
    int rc2 = pshm_list_add(l, 1, 1, NULL);
    return rc < 0 ? rc : rc2;
}
