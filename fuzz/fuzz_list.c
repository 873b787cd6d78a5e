/*
 * fuzz_list.c — arbitrary bytes as a shareable list's block.
 *
 * Each input becomes the whole content of one block (this process's own,
 * resized with ftruncate per input), which is attached as a list and read
 * every way the API offers: each item with get, get_copy and raw, then
 * format, repr, count and index, then typed views of it; then a few writes
 * and reads again. The
 * library must answer PSHM_ECORRUPT (or succeed) and never read or write
 * outside the block; ASan and UBSan watch.
 */
#include "pshm.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Larger inputs only slow the fuzzer down without new shapes. */
#define MAX_INPUT (1u << 20)
/* Items read per input: a block of n bytes may declare n / 17 items. */
#define MAX_ITEMS 2048

static char block_path[64];
static int block_fd = -1;
static volatile unsigned char sink;

static void remove_block(void) { shm_unlink(block_path); }

static void open_block(void)
{
    snprintf(block_path, sizeof block_path, "/pshmfuzz_%d_list", (int)getpid());
    block_fd = shm_open(block_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (block_fd < 0) {
        perror("fuzz_list: shm_open");
        abort();
    }
    atexit(remove_block);
}

/* Replace the block's whole content with the input. */
static int load_block(const uint8_t *data, size_t size)
{
    if (ftruncate(block_fd, 0) < 0 || ftruncate(block_fd, (off_t)size) < 0)
        return -1;
    return pwrite(block_fd, data, size, 0) == (ssize_t)size ? 0 : -1;
}

static void touch(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sink ^= ((const unsigned char *)p)[i];
}

/* A value a call returned: its bytes are readable, its repr can be made. */
static void use_value(const pshm_value *v)
{
    if (v->type == PSHM_STR || v->type == PSHM_BYTES)
        touch(v->u.s.ptr, v->u.s.len);
    char *text;
    if (pshm_value_repr(v, &text) == 0)
        free(text);
}

static void read_item(pshm_list *l, int64_t i)
{
    pshm_value v;
    if (pshm_list_get(l, i, &v) == 0)
        use_value(&v);
    char small[8];
    if (pshm_list_get_copy(l, i, &v, small, sizeof small) == 0)
        use_value(&v);
    const void *raw;
    size_t n;
    if (pshm_list_raw(l, i, &raw, &n) == 0)
        touch(raw, n);
}

static void read_whole(pshm_list *l)
{
    char *text;
    if (pshm_list_format(l, &text) == 0)
        free(text);
    if (pshm_list_repr(l, &text) == 0)
        free(text);
    pshm_value probe = pshm_int(0);
    size_t n;
    pshm_list_count(l, &probe, &n);
    probe = pshm_bytes("", 0);
    pshm_list_index(l, &probe, &n);
}

/* A view, where the list allows one, covers exactly its count of values. */
static void use_view(pshm_list *l, pshm_type type, size_t start, size_t count)
{
    pshm_view v;
    if (pshm_list_view_range(l, type, start, count, &v) < 0)
        return;
    const void *values = type == PSHM_INT ? (const void *)v.ints : (const void *)v.floats;
    touch(values, v.count * 8);
    if (v.count > 0 && type == PSHM_INT)
        v.ints[v.count - 1] ^= 1;
    pshm_list_view_check(&v);
}

static void read_views(pshm_list *l)
{
    size_t len = pshm_list_len(l);
    use_view(l, PSHM_INT, 0, len);
    use_view(l, PSHM_FLOAT, 0, len);
    use_view(l, PSHM_INT, len / 2, len - len / 2);
}

static void read_all(pshm_list *l)
{
    size_t len = pshm_list_len(l);
    for (size_t i = 0; i < len && i < MAX_ITEMS; i++)
        read_item(l, (int64_t)i);
    if (len > 0)
        read_item(l, -1);
    read_item(l, (int64_t)len); /* out of range */
    if (len <= MAX_ITEMS) {
        read_whole(l);
        read_views(l);
    }
}

/* Writes through the validated paths: whatever the block said, they must
 * stay inside it. */
static void write_some(pshm_list *l)
{
    int64_t old = 0;
    pshm_list_set(l, 0, pshm_str("fuzzing"));
    pshm_list_set(l, -1, pshm_bytes("0123456789abcdef", 16));
    pshm_list_set(l, 0, pshm_int(1));
    pshm_list_set(l, 0, pshm_int(2)); /* same type: the lock-free path */
    pshm_list_add(l, 0, 5, &old);
    pshm_list_cas(l, -1, &old, 3);
    pshm_list_set(l, 0, pshm_none());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (block_fd < 0)
        open_block();
    if (size > MAX_INPUT || load_block(data, size) < 0)
        return 0;
    pshm_list *l;
    if (pshm_list_attach(&l, block_path, PSHM_UNTRACKED) < 0)
        return 0;
    read_all(l);
    write_some(l);
    read_all(l);
    pshm_list_free(l);
    return 0;
}
