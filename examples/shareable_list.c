/*
 * shareable_list.c — the reference's ShareableList example, in C: mixed
 * types, a type change, the storage limit, index and count; then a second
 * handle attached by name sees the first one's writes.
 */
#include <pshm.h>

#include <stdio.h>
#include <stdlib.h>

static void show(const pshm_list *l)
{
    char *text;
    if (pshm_list_repr(l, &text) == 0) {
        printf("%s\n", text);
        free(text);
    }
}

static void print_item(const pshm_list *l, int64_t i)
{
    pshm_value v;
    char *text;
    if (pshm_list_get(l, i, &v) == 0 && pshm_value_repr(&v, &text) == 0) {
        printf("a[%lld] = %s\n", (long long)i, text);
        free(text);
    }
}

int main(void)
{
    pshm_value values[] = {
        pshm_str("howdy"), pshm_bytes("HoWdY", 5), pshm_float(-273.154), pshm_int(100),
        pshm_none(),       pshm_bool(true),        pshm_int(42)};
    pshm_list *a;
    if (pshm_list_create(&a, NULL, values, sizeof values / sizeof *values, 0) < 0) {
        fprintf(stderr, "shareable_list: %s\n", pshm_last_error());
        return 1;
    }
    show(a);
    print_item(a, 2);
    pshm_list_set(a, 2, pshm_float(-78.5));
    print_item(a, 2);
    pshm_list_set(a, 2, pshm_str("dry ice")); /* changing type is fine */
    print_item(a, 2);
    if (pshm_list_set(a, 2, pshm_str("larger than previously allocated storage space")) < 0)
        printf("error: %s\n", pshm_last_error());
    print_item(a, 2);

    size_t index, count;
    pshm_value answer = pshm_int(42), lower = pshm_bytes("howdy", 5),
               upper = pshm_bytes("HoWdY", 5);
    pshm_list_index(a, &answer, &index);
    printf("len %zu, index(42) = %zu\n", pshm_list_len(a), index);
    pshm_list_count(a, &lower, &count);
    printf("count(b'howdy') = %zu\n", count);
    pshm_list_count(a, &upper, &count);
    printf("count(b'HoWdY') = %zu\n", count);

    /* A second handle, as another process would open it. */
    pshm_list *c;
    if (pshm_list_attach(&c, pshm_block_name(pshm_list_block(a)), 0) < 0) {
        fprintf(stderr, "shareable_list: %s\n", pshm_last_error());
        return 1;
    }
    pshm_list_set(c, -1, pshm_int(-999));
    print_item(a, -1);
    pshm_list_free(c);

    pshm_block_unlink(pshm_list_block(a));
    pshm_list_free(a);
    return 0;
}
