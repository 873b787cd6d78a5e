/*
 * bench_list.c — shareable list operations, beside a plain int64_t array.
 *
 *   list.get_int     read one int item (cycling over 512 items)
 *   list.set_int     store one int item
 *   list.get_str     read one 7-byte str item (zero copy, UTF-8 checked)
 *   list.set_str     store one 7-byte str item
 *   list.create_1000 create a 1,000-int list (random name, tracked as by
 *                    default), free it and unlink it; ns per list
 *   list.sum_1000    sum a 1,000-int list, a get per item; ns per sum
 *
 * Impls: pshm (pshm_list_get / pshm_list_set with a pshm_value);
 * pshm_typed (pshm_list_get_int / pshm_list_set_int), for get_int, set_int
 * and sum_1000; int64_array (the same loop over a private int64_t array,
 * for the same three). For sum_1000 also pshm_view (the array loop over a
 * pshm_view of the list, taken once) and pshm_view_checked (the same plus
 * pshm_list_view_check after each sum).
 * bench/py_list.py gives cpython.
 *
 * Output: "BENCH <figure> <impl> <ns_per_op>". PSHM_BENCH_SCALE multiplies
 * the measuring time (0.2 s per figure).
 */
#include "pshm.h"

#include "bench.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CYCLE 512 /* items the per-op figures cycle over */
#define SUM_LEN 1000

static char list_name[64];
static pshm_list *ints, *strs;
static pshm_view view; /* of all of `ints` */
static int64_t array[SUM_LEN];
/* Every loop leaves its result here, so the compiler cannot drop it. */
static volatile int64_t sink;

/* Stop the compiler from caching or merging array accesses across
 * iterations, without making the accesses themselves volatile. */
#define OPAQUE_MEMORY() __asm__ volatile("" ::: "memory")

static void check_pshm(int rc, const char *call)
{
    if (rc < 0) {
        fprintf(stderr, "bench_list: %s: %s\n", call, pshm_last_error());
        exit(1);
    }
}

/* Time one batch function as bench.h does; print ns per op to 2 decimals
 * (the per-item figures are a few ns). */
static void measure(const char *figure, const char *impl, bench_batch_fn batch)
{
    bench_report_decimals(figure, impl, bench_measure_batch(batch), 2);
}

/* ---- per-item figures -------------------------------------------------- */

static void pshm_get_int(uint64_t count)
{
    pshm_value v;
    for (uint64_t i = 0; i < count; i++) {
        pshm_list_get(ints, (int64_t)(i % CYCLE), &v);
        sink = v.u.i;
    }
}

static void typed_get_int(uint64_t count)
{
    int64_t v;
    for (uint64_t i = 0; i < count; i++) {
        pshm_list_get_int(ints, (int64_t)(i % CYCLE), &v);
        sink = v;
    }
}

static void array_get_int(uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        OPAQUE_MEMORY();
        sink = array[i % CYCLE];
    }
}

static void pshm_set_int(uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        pshm_list_set(ints, (int64_t)(i % CYCLE), pshm_int((int64_t)i));
}

static void typed_set_int(uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        pshm_list_set_int(ints, (int64_t)(i % CYCLE), (int64_t)i);
}

static void array_set_int(uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        array[i % CYCLE] = (int64_t)i;
        OPAQUE_MEMORY();
    }
}

static void pshm_get_str(uint64_t count)
{
    pshm_value v;
    for (uint64_t i = 0; i < count; i++) {
        pshm_list_get(strs, (int64_t)(i % CYCLE), &v);
        sink = (int64_t)v.u.s.len + v.u.s.ptr[0];
    }
}

static void pshm_set_str(uint64_t count)
{
    for (uint64_t i = 0; i < count; i++)
        pshm_list_set(strs, (int64_t)(i % CYCLE),
                      pshm_strn(i & 1 ? "value 1" : "value 2", 7));
}

/* ---- whole-list figures ------------------------------------------------ */

static void pshm_create_1000(uint64_t count)
{
    static pshm_value values[SUM_LEN];
    for (int i = 0; i < SUM_LEN; i++)
        values[i] = pshm_int(i);
    for (uint64_t n = 0; n < count; n++) {
        pshm_list *l;
        check_pshm(pshm_list_create(&l, NULL, values, SUM_LEN, 0), "create");
        check_pshm(pshm_block_unlink(pshm_list_block(l)), "unlink");
        pshm_list_free(l);
    }
}

static void pshm_sum_1000(uint64_t count)
{
    for (uint64_t n = 0; n < count; n++) {
        int64_t sum = 0;
        pshm_value v;
        for (int64_t i = 0; i < SUM_LEN; i++) {
            pshm_list_get(ints, i, &v);
            sum += v.u.i;
        }
        sink = sum;
    }
}

static void typed_sum_1000(uint64_t count)
{
    for (uint64_t n = 0; n < count; n++) {
        int64_t sum = 0, v;
        for (int64_t i = 0; i < SUM_LEN; i++) {
            pshm_list_get_int(ints, i, &v);
            sum += v;
        }
        sink = sum;
    }
}

/* The array loop, reading the block through a view; `check`: with the
 * validity check a careful reader runs after each sum. */
static void view_sums(uint64_t count, bool check)
{
    for (uint64_t n = 0; n < count; n++) {
        OPAQUE_MEMORY();
        int64_t sum = 0;
        for (size_t i = 0; i < view.count; i++)
            sum += view.ints[i];
        if (check)
            check_pshm(pshm_list_view_check(&view), "view_check");
        sink = sum;
    }
}

static void view_sum_1000(uint64_t count) { view_sums(count, false); }

static void view_checked_sum_1000(uint64_t count) { view_sums(count, true); }

static void array_sum_1000(uint64_t count)
{
    for (uint64_t n = 0; n < count; n++) {
        OPAQUE_MEMORY();
        int64_t sum = 0;
        for (int i = 0; i < SUM_LEN; i++)
            sum += array[i];
        sink = sum;
    }
}

/* ---- setup ------------------------------------------------------------- */

static void remove_lists(void) { pshm_unlink(list_name); }

/* One list of 1,000 ints and 512 7-byte strs, unlinked at once (the handle
 * keeps its mapping), so no exit path can leak it. */
static void make_lists(void)
{
    pshm_value values[SUM_LEN];
    for (int i = 0; i < SUM_LEN; i++) {
        values[i] = pshm_int(i);
        array[i] = i;
    }
    snprintf(list_name, sizeof list_name, "pshmbench_%d_list", (int)getpid());
    atexit(remove_lists);
    check_pshm(pshm_list_create(&ints, list_name, values, SUM_LEN, PSHM_UNTRACKED), "create");
    check_pshm(pshm_block_unlink(pshm_list_block(ints)), "unlink");
    check_pshm(pshm_list_view(ints, PSHM_INT, &view), "view");
    for (int i = 0; i < CYCLE; i++)
        values[i] = pshm_str("value 0");
    check_pshm(pshm_list_create(&strs, list_name, values, CYCLE, PSHM_UNTRACKED), "create");
    check_pshm(pshm_block_unlink(pshm_list_block(strs)), "unlink");
}

int main(void)
{
    make_lists();
    measure("list.get_int", "pshm", pshm_get_int);
    measure("list.get_int", "int64_array", array_get_int);
    measure("list.get_int", "pshm_typed", typed_get_int);
    measure("list.set_int", "pshm", pshm_set_int);
    measure("list.set_int", "int64_array", array_set_int);
    measure("list.set_int", "pshm_typed", typed_set_int);
    measure("list.get_str", "pshm", pshm_get_str);
    measure("list.set_str", "pshm", pshm_set_str);
    measure("list.create_1000", "pshm", pshm_create_1000);
    measure("list.sum_1000", "pshm", pshm_sum_1000);
    measure("list.sum_1000", "int64_array", array_sum_1000);
    measure("list.sum_1000", "pshm_typed", typed_sum_1000);
    measure("list.sum_1000", "pshm_view", view_sum_1000);
    measure("list.sum_1000", "pshm_view_checked", view_checked_sum_1000);
    pshm_list_free(ints);
    pshm_list_free(strs);
    return 0;
}
