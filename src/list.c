/*
 * list.c — shareable lists in CPython's ShareableList layout, byte for byte.
 *
 * A list of N items occupies its block like this (native byte order, as
 * CPython's struct module packs it without a prefix):
 *
 *   0                     int64  N
 *   8                     int64  offsets[N + 1]: offsets[0] = 0, item i owns
 *                                the data bytes [offsets[i], offsets[i + 1])
 *   DATA = (N + 2) * 8           the data area, offsets[N] bytes
 *   FORMATS = DATA + offsets[N]  N struct formats, 8 bytes each, NUL-padded:
 *                                "q" int, "d" float, "xxxxxxx?" bool (in the
 *                                item's 8th byte), "xxxxxx?x" None, "<n>s"
 *                                str (UTF-8) or bytes, n bytes
 *   CODES = FORMATS + 8 * N      N int8 back-transform codes: 0 int, float or
 *                                bool; 1 str; 2 bytes; 3 None
 *
 * The block is shared with processes we do not control, so nothing read
 * from it is trusted. Attach checks the header once and keeps a private copy
 * of the offsets (as CPython does), so a process rewriting them later cannot
 * steer us outside the block. Formats and codes can change at any moment:
 * every access loads an item's format and code once, validates that copy,
 * and acts only on it. Every writer we know of (CPython, pshm) allocates in
 * multiples of 8, and attach insists on that, so every numeric item and
 * every format is 8-byte aligned and is read and written with one atomic
 * 8-byte access: numbers and formats never tear. str and bytes data may tear
 * when processes race without a lock (as in CPython).
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every item's allocation and every header field is a multiple of this. */
#define ALIGNMENT 8
/* Bytes of the empty list: the count and offsets[0]. */
#define HEADER_MIN 16
/* Per item outside the data area: one offset, one format, one code. */
#define PER_ITEM_META (8 + 8 + 1)
/* A format is at most 8 characters, so "<n>s" allows n of 7 digits. */
#define FORMAT_LEN 8
#define SIZED_MAX 9999999u
/* The longest str/bytes whose allocation 8 * (len / 8 + 1) still fits. */
#define ITEM_BYTES_MAX 9999991u

enum back_transform { CODE_PLAIN = 0, CODE_STR = 1, CODE_BYTES = 2, CODE_NONE = 3 };

struct pshm_list {
    pshm_block *block;
    size_t len;
    /* Items the fast paths may serve: fast.get = len if every item's span
     * is at least 8 bytes (so a fixed type always fits: true of every list
     * CPython or pshm makes), else 0; fast.set the same, or 0 if the list
     * is read-only. Both 0 once the block is closed (block->fast points
     * here). One compare then checks index, span, mode and mapping. */
    fast_limits fast;
    /* The block's format and code tables, where the private offsets put
     * them. Like cells: valid while block->buf is not NULL (the mapping
     * never moves; close sets buf to NULL, which every access checks
     * first, the fast paths through `fast`). */
    uint64_t *formats;
    unsigned char *codes;
    /* Serializes this handle's writers, so two threads setting one item
     * cannot leave one's format beside the other's data. */
    pthread_mutex_t write_lock;
    /* Where item i's data starts, for i in 0..len (cells[len]: the end of
     * the data area): the data area plus a private copy of the block's
     * offsets, validated at attach (non-decreasing multiples of 8 from 0,
     * the last within the space left for data) and never re-read from the
     * block. In the handle itself, so a fast path reaches its item's data
     * with one load. */
    unsigned char *cells[];
};

/* One item as an access sees it: its span, and the type and width that its
 * (validated) format and code give it. */
typedef struct item {
    size_t pos;          /* the index, counted from 0 */
    unsigned char *data; /* the item's span in the block */
    size_t span;         /* offsets[i + 1] - offsets[i] */
    pshm_type type;
    size_t width;    /* bytes the format covers: 8, or n of "<n>s" */
    bool sized;      /* the format is "<n>s" */
    uint64_t format; /* the 8 format bytes as one word (native order) */
} item;

/* Fences order a type change's format before its data, and a view's reads
 * before its check (pshm_list_view_check). GCC refuses fences under
 * ThreadSanitizer, which does not model them; such builds go without. */
#if defined(__SANITIZE_THREAD__)
#define FENCE(order) ((void)0)
#else
#define FENCE(order) __atomic_thread_fence(order)
#endif

/* For the few helpers on the get path: a call would cost more than they do. */
#define HOT static inline __attribute__((always_inline))
/* A fast path's condition: its code falls through, without a taken jump. */
#define LIKELY(cond) __builtin_expect(!!(cond), 1)

static size_t data_at(size_t len) { return (len + 2) * 8; }

static const char *list_name(const pshm_list *l) { return l->block->name; }

/* ---- formats ----------------------------------------------------------- */

/* A padded format as the word it is in the block; folds to a constant. */
static inline uint64_t format_word(const char padded[FORMAT_LEN + 1])
{
    uint64_t w;
    memcpy(&w, padded, sizeof w);
    return w;
}

/* n of a "<n>s" format (1 to 7 digits, 's', NUL padding), or -1. */
static long sized_format_width(const char format[FORMAT_LEN])
{
    long n = 0;
    int i = 0;
    while (i < FORMAT_LEN - 1 && format[i] >= '0' && format[i] <= '9')
        n = n * 10 + (format[i++] - '0');
    if (i == 0 || format[i] != 's')
        return -1;
    for (int j = i + 1; j < FORMAT_LEN; j++)
        if (format[j] != '\0')
            return -1;
    return n;
}

/* The format's text as CPython reports it: up to the first NUL. */
static size_t format_text_len(const char format[FORMAT_LEN])
{
    const char *nul = memchr(format, '\0', FORMAT_LEN);
    return nul ? (size_t)(nul - format) : FORMAT_LEN;
}

/* A format as printable text for messages ("q", "\xff\x01"...). */
static void format_for_message(const char format[FORMAT_LEN], char out[4 * FORMAT_LEN + 1])
{
    size_t n = format_text_len(format), at = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)format[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[at++] = (char)c;
        else
            at += (size_t)sprintf(out + at, "\\x%02x", c);
    }
    out[at] = '\0';
}

/* The 8-byte NUL-padded format CPython writes for "<n>s"; n <= SIZED_MAX. */
static void sized_format(size_t n, char out[FORMAT_LEN])
{
    char text[FORMAT_LEN + 1];
    memset(out, 0, FORMAT_LEN);
    memcpy(out, text, (size_t)snprintf(text, sizeof text, "%zus", n));
}

/* ---- reading an item's description -------------------------------------- */

static int corrupt(const pshm_list *l, const char *what, int64_t index, const char *why,
                   const char format[FORMAT_LEN], int code)
{
    char shown[4 * FORMAT_LEN + 1];
    format_for_message(format, shown);
    return err_set(PSHM_ECORRUPT, "%s \"%s\"[%lld]: %s (format \"%s\", code %d)", what,
                   list_name(l), (long long)index, why, shown, code);
}

/* classify()'s path for "<n>s" formats and for anything unknown. */
static int classify_sized(const pshm_list *l, const char *what, int64_t index, item *it,
                          int code)
{
    char f[FORMAT_LEN];
    memcpy(f, &it->format, FORMAT_LEN);
    long n = sized_format_width(f);
    if (n < 0)
        return corrupt(l, what, index, "unknown item format", f, code);
    if (code != CODE_STR && code != CODE_BYTES)
        return corrupt(l, what, index, "a \"<n>s\" format needs code 1 or 2", f, code);
    if ((size_t)n > it->span)
        return corrupt(l, what, index, "the format covers more bytes than the item's span", f,
                       code);
    it->type = code == CODE_STR ? PSHM_STR : PSHM_BYTES;
    it->sized = true;
    it->width = (size_t)n;
    return 0;
}

/* The type of one of the four fixed formats with the code CPython pairs it
 * with (each needs 8 bytes), or -1 for anything else. One word compare
 * each, int first: shared by classify() and the fast paths. */
HOT int fixed_type(uint64_t format, int code)
{
    if (format == format_word("q\0\0\0\0\0\0\0") && code == CODE_PLAIN)
        return PSHM_INT;
    if (format == format_word("d\0\0\0\0\0\0\0") && code == CODE_PLAIN)
        return PSHM_FLOAT;
    if (format == format_word("xxxxxxx?") && code == CODE_PLAIN)
        return PSHM_BOOL;
    if (format == format_word("xxxxxx?x") && code == CODE_NONE)
        return PSHM_NONE;
    return -1;
}

/* Type and width from a format and code copied out of the block. */
HOT int classify(const pshm_list *l, const char *what, int64_t index, item *it, int code)
{
    int type = fixed_type(it->format, code);
    if (type < 0)
        return classify_sized(l, what, index, it, code);
    it->type = (pshm_type)type;
    it->sized = false;
    it->width = 8;
    if (it->span < 8) {
        char f[FORMAT_LEN];
        memcpy(f, &it->format, FORMAT_LEN);
        return corrupt(l, what, index, "the format covers more bytes than the item's span", f,
                       code);
    }
    return 0;
}

/* Whether the list's block is open (cells and the tables valid); if not,
 * the PSHM_ECLOSED message is set. */
static bool list_open(const pshm_list *l, const char *what)
{
    if (l->block->buf != NULL)
        return true;
    err_set(PSHM_ECLOSED, "%s \"%s\": the list's block was closed", what, list_name(l));
    return false;
}

/* The position of `index` (negative counts from the end), or PSHM_ERANGE. */
static int position(const pshm_list *l, const char *what, int64_t index, size_t *pos)
{
    uint64_t p = index < 0 ? (uint64_t)index + l->len : (uint64_t)index;
    *pos = (size_t)p;
    if (p >= l->len)
        return err_set(PSHM_ERANGE,
                       "%s \"%s\"[%lld]: index out of range for a list of %zu "
                       "items",
                       what, list_name(l), (long long)index, l->len);
    return 0;
}

/* One copy of item pos's format and code (pos < len, the block open). */
HOT void load_meta(const pshm_list *l, size_t pos, uint64_t *format, int *code)
{
    *format = __atomic_load_n(l->formats + pos, __ATOMIC_RELAXED);
    *code = (signed char)__atomic_load_n(l->codes + pos, __ATOMIC_RELAXED);
}

/* The data of item pos and its size (pos < len, the block open). */
HOT unsigned char *cell_at(const pshm_list *l, size_t pos) { return l->cells[pos]; }

static size_t span_of(const pshm_list *l, size_t pos)
{
    return (size_t)(l->cells[pos + 1] - l->cells[pos]);
}

/* Describe item pos from the copy of its format and code that load_meta
 * made: every later decision rests on that copy alone. */
HOT int describe(const pshm_list *l, const char *what, int64_t index, size_t pos,
                 uint64_t format, int code, item *it)
{
    it->pos = pos;
    it->format = format;
    it->data = cell_at(l, pos);
    it->span = span_of(l, pos);
    return classify(l, what, index, it, code);
}

/* Locate item `index` and describe it from one copy of its format and code.
 * Inlined: it is most of the cost of a get. */
HOT int find_item(const pshm_list *l, const char *what, int64_t index, item *it)
{
    if (!list_open(l, what))
        return PSHM_ECLOSED;
    size_t pos;
    int rc = position(l, what, index, &pos);
    if (rc < 0)
        return rc;
    uint64_t format;
    int code;
    load_meta(l, pos, &format, &code);
    return describe(l, what, index, pos, format, code, it);
}

/*
 * The fast paths of get and set. peek(): item `index`'s format and code,
 * if 0 <= index < limit (l->fast.get or l->fast.set); else false, and the
 * caller takes the general path (find_item), which handles negative
 * indices, short spans and read-only lists, and reports every failure.
 */
HOT bool peek(const pshm_list *l, int64_t index, size_t limit, uint64_t *format, int *code)
{
    if (!LIKELY((uint64_t)index < limit))
        return false;
    load_meta(l, (size_t)index, format, code);
    return true;
}

/* ---- values ------------------------------------------------------------ */

static uint64_t load_word(const unsigned char *p)
{
    return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
}

static void store_word(unsigned char *p, uint64_t w)
{
    __atomic_store_n((uint64_t *)p, w, __ATOMIC_RELAXED);
}

/* CPython's rstrip(b'\x00'). */
static size_t strip_nuls(const unsigned char *p, size_t n)
{
    while (n > 0 && p[n - 1] == '\0')
        n--;
    return n;
}

static int check_utf8(const pshm_list *l, const char *what, int64_t index,
                      const unsigned char *p, size_t n)
{
    if (os_utf8_check(p, n) == NULL)
        return 0;
    return err_set(PSHM_ECORRUPT, "%s \"%s\"[%lld]: str item is not valid UTF-8", what,
                   list_name(l), (long long)index);
}

/* Fields are stored one by one: building a whole pshm_value on the stack
 * and copying it costs a store-forwarding stall on this hot path. */
HOT void read_fixed(const unsigned char *data, pshm_type type, pshm_value *out)
{
    uint64_t w;
    switch (type) {
    case PSHM_INT: out->u.i = (int64_t)load_word(data); break;
    case PSHM_FLOAT:
        w = load_word(data);
        memcpy(&out->u.f, &w, sizeof w);
        break;
    case PSHM_BOOL:
        /* struct's '?' reads any non-zero byte as True. */
        out->u.b = __atomic_load_n(data + 7, __ATOMIC_RELAXED) != 0;
        break;
    default: /* None */ out->u.i = 0; break;
    }
    out->type = type;
}

/* On failure *out is left untouched. */
HOT int read_item(const pshm_list *l, const char *what, int64_t index, const item *it,
                  pshm_value *out)
{
    if (!it->sized) {
        read_fixed(it->data, it->type, out);
        return 0;
    }
    size_t n = strip_nuls(it->data, it->width);
    int rc = it->type == PSHM_STR ? check_utf8(l, what, index, it->data, n) : 0;
    if (rc < 0)
        return rc;
    out->u.s.ptr = (const char *)it->data;
    out->u.s.len = n;
    out->type = it->type;
    return 0;
}

static const char *type_name(pshm_type t)
{
    static const char *const names[] = {"None", "int", "float", "bool", "str", "bytes"};
    return names[t];
}

/* The format CPython's _types_mapping gives a non-str/bytes value. */
static const char *fixed_format(pshm_type t)
{
    switch (t) {
    case PSHM_INT: return "q\0\0\0\0\0\0\0";
    case PSHM_FLOAT: return "d\0\0\0\0\0\0\0";
    case PSHM_BOOL: return "xxxxxxx?";
    default: return "xxxxxx?x";
    }
}

static int code_of(pshm_type t)
{
    return t == PSHM_STR     ? CODE_STR
           : t == PSHM_BYTES ? CODE_BYTES
           : t == PSHM_NONE  ? CODE_NONE
                             : CODE_PLAIN;
}

static const char *article(pshm_type t) { return t == PSHM_INT ? "an" : "a"; }

/* Whether peek() serves item `index` under `limit` and it holds a `type`
 * (int, float, bool or None): the fast path of the typed calls and of a
 * same-type set, which then use cell_at(). With a constant type, the
 * compiler keeps only that type's two compares. */
HOT bool holds(const pshm_list *l, int64_t index, size_t limit, pshm_type type)
{
    uint64_t format;
    int code;
    return peek(l, index, limit, &format, &code) && fixed_type(format, code) == (int)type;
}

/* A numeric, bool or None value's 8-byte struct packing, as one word. */
static uint64_t fixed_word(const pshm_value *v)
{
    uint64_t w = 0; /* None packs '?' of None: all zero */
    if (v->type == PSHM_INT)
        w = (uint64_t)v->u.i;
    else if (v->type == PSHM_FLOAT)
        memcpy(&w, &v->u.f, sizeof w);
    else if (v->type == PSHM_BOOL) {
        unsigned char bytes[8] = {0, 0, 0, 0, 0, 0, 0, v->u.b ? 1 : 0};
        memcpy(&w, bytes, sizeof w);
    }
    return w;
}

/* Write str/bytes as struct's "<width>s" does: the bytes, then NULs. */
static void write_sized(unsigned char *p, const pshm_value *v, size_t width)
{
    if (v->u.s.len > 0)
        memcpy(p, v->u.s.ptr, v->u.s.len);
    memset(p + v->u.s.len, 0, width - v->u.s.len);
}

static void write_value(unsigned char *p, const pshm_value *v, size_t width)
{
    if (v->type == PSHM_STR || v->type == PSHM_BYTES)
        write_sized(p, v, width);
    else
        store_word(p, fixed_word(v));
}

/* ---- create ------------------------------------------------------------ */

/* Bytes CPython allocates to a value (by encoded length; see pshm.h). */
static size_t allocation(const pshm_value *v)
{
    if (v->type != PSHM_STR && v->type != PSHM_BYTES)
        return ALIGNMENT;
    return ALIGNMENT * (v->u.s.len / ALIGNMENT + 1);
}

/* Validate the values and fill offsets[0..n] and the block size. */
static int plan_layout(const char *name, const pshm_value *values, size_t n,
                       uint64_t *offsets, size_t *size)
{
    offsets[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = value_check(&values[i], "create", name, (int64_t)i);
        if (rc < 0)
            return rc;
        bool sized = values[i].type == PSHM_STR || values[i].type == PSHM_BYTES;
        if (sized && values[i].u.s.len > ITEM_BYTES_MAX)
            return err_set(PSHM_ETOOBIG,
                           "create \"%s\"[%zu]: %zu-byte %s exceeds the %u "
                           "bytes an item can hold (its format would need over 8 "
                           "characters)",
                           name, i, values[i].u.s.len, type_name(values[i].type),
                           ITEM_BYTES_MAX);
        if (__builtin_add_overflow(offsets[i], allocation(&values[i]), &offsets[i + 1]))
            return err_set(PSHM_EBADSIZE,
                           "create \"%s\": %zu items need more bytes than "
                           "fit in memory",
                           name, n);
    }
    size_t meta = HEADER_MIN + n * PER_ITEM_META;
    if (__builtin_add_overflow(meta, (size_t)offsets[n], size))
        return err_set(PSHM_EBADSIZE,
                       "create \"%s\": %zu items need more bytes than fit "
                       "in memory",
                       name, n);
    return 0;
}

/* Fill a fresh (zeroed) block with the layout planned for values. */
static void write_layout(unsigned char *buf, const pshm_value *values, size_t n,
                         const uint64_t *offsets)
{
    int64_t count = (int64_t)n;
    memcpy(buf, &count, 8);
    memcpy(buf + 8, offsets, (n + 1) * 8);
    size_t data = data_at(n), formats = data + offsets[n], codes = formats + 8 * n;
    for (size_t i = 0; i < n; i++) {
        size_t span = (size_t)(offsets[i + 1] - offsets[i]);
        write_value(buf + data + offsets[i], &values[i], span);
        if (values[i].type == PSHM_STR || values[i].type == PSHM_BYTES)
            sized_format(span, (char *)buf + formats + 8 * i);
        else
            memcpy(buf + formats + 8 * i, fixed_format(values[i].type), FORMAT_LEN);
        buf[codes + i] = (unsigned char)code_of(values[i].type);
    }
}

/* A handle owning `block` (not freed on failure), its cells made from the
 * validated `offsets` (len + 1 of them; the caller frees them). */
static pshm_list *list_new(pshm_block *block, size_t len, const uint64_t *offsets)
{
    pshm_list *l = calloc(1, sizeof *l + (len + 1) * sizeof l->cells[0]);
    if (l == NULL)
        return NULL;
    l->block = block;
    l->len = len;
    unsigned char *data = (unsigned char *)block->buf + data_at(len);
    l->fast.get = len;
    for (size_t i = 0; i <= len; i++) {
        l->cells[i] = data + offsets[i];
        if (i < len && offsets[i + 1] - offsets[i] < 8)
            l->fast.get = 0;
    }
    l->fast.set = block->flags & PSHM_READONLY ? 0 : l->fast.get;
    block->fast = &l->fast;
    l->formats = (uint64_t *)l->cells[len]; /* 8-byte aligned: see the top */
    l->codes = l->cells[len] + 8 * len;
    pthread_mutex_init(&l->write_lock, NULL);
    return l;
}

static int nomap_refused(const char *what, const char *name)
{
    return err_set(PSHM_EINVAL,
                   "%s \"%s\": PSHM_NOMAP is for blocks; a list reads its block at once",
                   what, name);
}

static uint64_t *alloc_offsets(size_t n) { return malloc((n + 1) * sizeof(uint64_t)); }

int pshm_list_create(pshm_list **out, const char *name, const pshm_value *values, size_t n,
                     unsigned flags)
{
    const char *shown = name ? name : "(random)";
    if (out == NULL || (values == NULL && n > 0))
        return err_set(PSHM_EINVAL, "create \"%s\": NULL %s", shown,
                       out == NULL ? "handle pointer" : "values with n > 0");
    *out = NULL;
    if (flags & PSHM_NOMAP)
        return nomap_refused("create", shown);
    if (n > (SIZE_MAX - HEADER_MIN) / PER_ITEM_META / 2)
        return err_set(PSHM_EBADSIZE, "create \"%s\": %zu items are too many", shown, n);
    uint64_t *offsets = alloc_offsets(n);
    if (offsets == NULL)
        return err_set(PSHM_ELIMIT, "create \"%s\": out of memory for %zu items", shown, n);
    size_t size = 0;
    pshm_block *b = NULL;
    int rc = plan_layout(shown, values, n, offsets, &size);
    if (rc == 0)
        rc = pshm_block_create(&b, name, size, flags);
    /* Every page is written below: reserved first, so a full /dev/shm is
     * this error and not a SIGBUS in the middle of the layout. */
    if (rc == 0 && (rc = block_reserve(b, "create", 0, size)) < 0) {
        pshm_block_unlink(b);
        pshm_block_free(b);
    }
    if (rc < 0) {
        free(offsets);
        return rc;
    }
    write_layout(b->buf, values, n, offsets);
    pshm_list *l = list_new(b, n, offsets);
    free(offsets);
    if (l == NULL) {
        pshm_block_unlink(b);
        pshm_block_free(b);
        return err_set(PSHM_ELIMIT, "create \"%s\": out of memory", shown);
    }
    *out = l;
    return 0;
}

/* ---- attach ------------------------------------------------------------ */

/* Read and check the item count: (N + 2) * 8 + 9N must fit the block. */
static int read_count(const pshm_block *b, size_t *len)
{
    if (b->size < HEADER_MIN)
        return err_set(PSHM_ECORRUPT,
                       "attach \"%s\": the block's %zu bytes are fewer than "
                       "the %d of an empty list",
                       b->name, b->size, HEADER_MIN);
    int64_t count;
    memcpy(&count, b->buf, sizeof count);
    /* Written as a division so no count can overflow the check. */
    if (count < 0 || (uint64_t)count > (b->size - HEADER_MIN) / PER_ITEM_META)
        return err_set(PSHM_ECORRUPT,
                       "attach \"%s\": item count %lld does not fit a block "
                       "of %zu bytes",
                       b->name, (long long)count, b->size);
    *len = (size_t)count;
    return 0;
}

/* Check the private copy of the offsets against the block's size. */
static int check_offsets(const pshm_block *b, const uint64_t *offsets, size_t len)
{
    uint64_t room = b->size - HEADER_MIN - len * PER_ITEM_META;
    if (offsets[0] != 0)
        return err_set(PSHM_ECORRUPT, "attach \"%s\": offset 0 is %lld, not 0", b->name,
                       (long long)offsets[0]);
    for (size_t i = 1; i <= len; i++) {
        if (offsets[i] < offsets[i - 1] || offsets[i] % ALIGNMENT != 0)
            return err_set(PSHM_ECORRUPT,
                           "attach \"%s\": offset %zu is %lld; offsets must "
                           "be non-decreasing multiples of 8 (offset %zu is %lld)",
                           b->name, i, (long long)offsets[i], i - 1,
                           (long long)offsets[i - 1]);
    }
    if (offsets[len] > room)
        return err_set(PSHM_ECORRUPT,
                       "attach \"%s\": the data area (%lld bytes) overruns "
                       "the block, which has room for %llu",
                       b->name, (long long)offsets[len], (unsigned long long)room);
    return 0;
}

static int read_layout(pshm_block *b, size_t *len, uint64_t **offsets)
{
    int rc = read_count(b, len);
    if (rc < 0)
        return rc;
    uint64_t *copy = alloc_offsets(*len);
    if (copy == NULL)
        return err_set(PSHM_ELIMIT, "attach \"%s\": out of memory for %zu offsets", b->name,
                       *len + 1);
    memcpy(copy, (unsigned char *)b->buf + 8, (*len + 1) * sizeof *copy);
    rc = check_offsets(b, copy, *len);
    if (rc < 0) {
        free(copy);
        return rc;
    }
    *offsets = copy;
    return 0;
}

int pshm_list_attach(pshm_list **out, const char *name, unsigned flags)
{
    if (out == NULL)
        return err_set(PSHM_EINVAL, "attach \"%s\": NULL handle pointer", name ? name : "");
    *out = NULL;
    if (flags & PSHM_NOMAP)
        return nomap_refused("attach", name ? name : "(null)");
    /* Attach untracked and register only a valid list: a failed attach must
     * not leave the tracker owning (and later removing) someone's block. */
    pshm_block *b;
    int rc = pshm_block_attach(&b, name, flags | PSHM_UNTRACKED);
    if (rc < 0)
        return rc;
    size_t len = 0;
    uint64_t *offsets = NULL;
    pshm_list *l = NULL;
    if ((rc = read_layout(b, &len, &offsets)) == 0 && (l = list_new(b, len, offsets)) == NULL)
        rc = err_set(PSHM_ELIMIT, "attach \"%s\": out of memory", b->name);
    free(offsets);
    if (rc < 0) {
        pshm_block_free(b);
        return rc;
    }
    if ((rc = block_track_attached(b, flags, "attach")) < 0) {
        pshm_list_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void pshm_list_free(pshm_list *l)
{
    if (l == NULL)
        return;
    pshm_block_free(l->block);
    pthread_mutex_destroy(&l->write_lock);
    free(l);
}

pshm_block *pshm_list_block(const pshm_list *l) { return l ? l->block : NULL; }

size_t pshm_list_len(const pshm_list *l) { return l ? l->len : 0; }

/* ---- get --------------------------------------------------------------- */

/* A get that peek() could not serve: negative indices, lists with a span
 * under 8 bytes, a closed block, and every failure but a malformed item. Out of line, as are the two below, so the fast
 * path stays small. */
static __attribute__((noinline)) int get_general(const pshm_list *l, int64_t index,
                                                 pshm_value *out)
{
    if (l == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "get [%lld]: NULL list or value pointer",
                       (long long)index);
    item it;
    int rc = find_item(l, "get", index, &it);
    return rc < 0 ? rc : read_item(l, "get", index, &it, out);
}

/* A get of an item peek() saw that is not a fixed type: str, bytes, or
 * malformed. Continues from peek()'s copy of the format and code. */
static __attribute__((noinline)) int get_peeked(const pshm_list *l, int64_t index,
                                                uint64_t format, int code, pshm_value *out)
{
    item it;
    int rc = describe(l, "get", index, (size_t)index, format, code, &it);
    return rc < 0 ? rc : read_item(l, "get", index, &it, out);
}

int pshm_list_get(const pshm_list *l, int64_t index, pshm_value *out)
{
    uint64_t format;
    int code, type;
    if (!LIKELY(l != NULL && out != NULL && peek(l, index, l->fast.get, &format, &code)))
        return get_general(l, index, out);
    if (!LIKELY((type = fixed_type(format, code)) >= 0))
        return get_peeked(l, index, format, code, out);
    read_fixed(cell_at(l, (size_t)index), (pshm_type)type, out);
    return 0;
}

/* An item of `type` by the general path: PSHM_ETYPE naming what it holds
 * if it is another type. */
static int typed_item(const pshm_list *l, const char *what, int64_t index, pshm_type type,
                      item *it)
{
    int rc = find_item(l, what, index, it);
    if (rc < 0)
        return rc;
    if (it->type != type)
        return err_set(PSHM_ETYPE, "%s \"%s\"[%lld]: the item is %s %s, not %s %s", what,
                       list_name(l), (long long)index, article(it->type), type_name(it->type),
                       article(type), type_name(type));
    return 0;
}

/* A typed get that the fast path did not serve: negative indices, other
 * types, and every failure. The public call's arguments come first, in its
 * order, so the fast path hands over without moving them. */
static __attribute__((noinline)) int get_typed_general(const pshm_list *l, int64_t index,
                                                       void *out, const char *what,
                                                       pshm_type type)
{
    if (l == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "%s [%lld]: NULL list or result pointer", what,
                       (long long)index);
    item it;
    int rc = typed_item(l, what, index, type, &it);
    if (rc < 0)
        return rc;
    uint64_t w = load_word(it.data);
    memcpy(out, &w, sizeof w);
    return 0;
}

/* Item `index` of `type` (int or float) as its 8 bytes into *out (an
 * int64_t or a double); *out is left untouched on failure. */
HOT int get_typed(const pshm_list *l, const char *what, int64_t index, pshm_type type,
                  void *out)
{
    if (!LIKELY(l != NULL && out != NULL && holds(l, index, l->fast.get, type)))
        return get_typed_general(l, index, out, what, type);
    uint64_t w = load_word(cell_at(l, (size_t)index));
    memcpy(out, &w, sizeof w);
    return 0;
}

int pshm_list_get_int(const pshm_list *l, int64_t index, int64_t *out)
{
    return get_typed(l, "get_int", index, PSHM_INT, out);
}

int pshm_list_get_float(const pshm_list *l, int64_t index, double *out)
{
    return get_typed(l, "get_float", index, PSHM_FLOAT, out);
}

int pshm_list_get_copy(const pshm_list *l, int64_t index, pshm_value *out, void *buf,
                       size_t cap)
{
    if (l == NULL || out == NULL || (buf == NULL && cap > 0))
        return err_set(PSHM_EINVAL, "get_copy [%lld]: NULL list, value or buffer pointer",
                       (long long)index);
    int rc = pshm_list_get(l, index, out);
    if (rc < 0 || (out->type != PSHM_STR && out->type != PSHM_BYTES))
        return rc;
    size_t n = out->u.s.len;
    if (n > cap) {
        out->u.s.ptr = NULL; /* the length says what is needed; no view of the block */
        return err_set(PSHM_ETOOBIG,
                       "get_copy \"%s\"[%lld]: the %zu-byte %s does not fit "
                       "the %zu-byte buffer",
                       list_name(l), (long long)index, n, type_name(out->type), cap);
    }
    if (n > 0)
        memcpy(buf, out->u.s.ptr, n);
    /* Another process may have rewritten the item while we copied: the copy
     * must stand on its own, so strip and check it again. */
    n = strip_nuls(buf, n);
    if (out->type == PSHM_STR && (rc = check_utf8(l, "get_copy", index, buf, n)) < 0)
        return rc;
    out->u.s.ptr = buf;
    out->u.s.len = n;
    return 0;
}

/* The raw span needs no format: it lies within the block by the offsets'
 * validation alone, whatever the item holds. */
int pshm_list_raw(const pshm_list *l, int64_t index, const void **ptr, size_t *allocated)
{
    if (l == NULL || ptr == NULL || allocated == NULL)
        return err_set(PSHM_EINVAL, "raw [%lld]: NULL list or result pointer",
                       (long long)index);
    if (!list_open(l, "raw"))
        return PSHM_ECLOSED;
    size_t pos = 0;
    int rc = position(l, "raw", index, &pos);
    if (rc < 0)
        return rc;
    *ptr = cell_at(l, pos);
    *allocated = span_of(l, pos);
    return 0;
}

/* ---- set --------------------------------------------------------------- */

static int check_writable(const pshm_list *l, const char *what, int64_t index)
{
    if (l->block->flags & PSHM_READONLY)
        return err_set(PSHM_EACCES, "%s \"%s\"[%lld]: the list was attached read-only", what,
                       list_name(l), (long long)index);
    return 0;
}

/*
 * The format CPython's __setitem__ writes for v over item `it`, and the
 * bytes it covers. A str/bytes keeps the item's "<n>s" format if it has one,
 * else takes "<span>s".
 */
static int plan_set(const pshm_list *l, int64_t index, const item *it, const pshm_value *v,
                    char format[FORMAT_LEN], size_t *width)
{
    if (v->type != PSHM_STR && v->type != PSHM_BYTES) {
        if (it->span < 8)
            return err_set(PSHM_ETOOBIG,
                           "set \"%s\"[%lld]: a %s needs 8 bytes; the item has "
                           "%zu allocated",
                           list_name(l), (long long)index, type_name(v->type), it->span);
        memcpy(format, fixed_format(v->type), FORMAT_LEN);
        *width = 8;
        return 0;
    }
    /* CPython checks against the span; a hand-made "<n>s" narrower than the
     * span would truncate silently there, so we hold the value to n. */
    size_t room = it->sized ? it->width : it->span;
    if (v->u.s.len > room)
        return err_set(PSHM_ETOOBIG,
                       "set \"%s\"[%lld]: %zu-byte %s exceeds the %zu bytes "
                       "allocated to this item",
                       list_name(l), (long long)index, v->u.s.len, type_name(v->type), room);
    if (!it->sized && it->span > SIZED_MAX)
        return err_set(PSHM_ETOOBIG,
                       "set \"%s\"[%lld]: the item's %zu-byte span needs a "
                       "format over 8 characters",
                       list_name(l), (long long)index, it->span);
    if (it->sized)
        memcpy(format, &it->format, FORMAT_LEN);
    else
        sized_format(it->span, format);
    *width = room;
    return 0;
}

static int set_locked(pshm_list *l, int64_t index, const pshm_value *v)
{
    item it;
    int rc = find_item(l, "set", index, &it);
    char format[FORMAT_LEN] = {0};
    size_t width = 0;
    if (rc < 0 || (rc = plan_set(l, index, &it, v, format, &width)) < 0)
        return rc;
    /* CPython's order: format and code first, then the data. An unchanged
     * format and type (the format word and the type fix the code) are not
     * written again, so readers' cache lines holding them stay valid. */
    uint64_t word;
    memcpy(&word, format, sizeof word);
    if (word != it.format || v->type != it.type) {
        __atomic_store_n(l->formats + it.pos, word, __ATOMIC_RELAXED);
        __atomic_store_n(l->codes + it.pos, (unsigned char)code_of(v->type),
                         __ATOMIC_RELAXED);
        /* The new format is visible before any of the new data: a view's
         * check that runs after its reads sees every type change whose
         * data those reads saw (pshm_list_view_check). */
        FENCE(__ATOMIC_RELEASE);
    }
    write_value(it.data, v, width);
    return 0;
}

/* Every set that the fast path in pshm_list_set does not serve: type
 * changes, str and bytes, negative indices, and every failure. Kept out of
 * line so the fast path stays small. */
static __attribute__((noinline)) int set_general(pshm_list *l, int64_t index,
                                                 const pshm_value *v)
{
    if (l == NULL)
        return err_set(PSHM_EINVAL, "set [%lld]: NULL list", (long long)index);
    int rc = value_check(v, "set", list_name(l), index);
    if (rc < 0 || (rc = check_writable(l, "set", index)) < 0)
        return rc;
    pthread_mutex_lock(&l->write_lock);
    rc = set_locked(l, index, v);
    pthread_mutex_unlock(&l->write_lock);
    return rc;
}

/*
 * A value of the type the item already holds, int, float, bool or None,
 * needs no new format or code: it is one aligned 8-byte store, without the
 * lock (the lock orders format, code and data of a type change; there is
 * nothing to order here). See pshm.h for what a race with a type change
 * of the same item leaves. same_type() says whether that store serves
 * a value of `type`; if not, the caller takes set_general().
 */
HOT bool same_type(pshm_list *l, int64_t index, pshm_type type)
{
    return l != NULL && holds(l, index, l->fast.set, type);
}

int(pshm_list_set)(pshm_list *l, int64_t index, pshm_value v)
{
    if (!LIKELY(same_type(l, index, v.type)))
        return set_general(l, index, &v);
    store_word(cell_at(l, (size_t)index), fixed_word(&v));
    return 0;
}

/* The typed sets build a pshm_value only on the general path: building it
 * first would cost more than the store. */
int pshm_list_set_int(pshm_list *l, int64_t index, int64_t v)
{
    if (!LIKELY(same_type(l, index, PSHM_INT))) {
        pshm_value value = pshm_int(v);
        return set_general(l, index, &value);
    }
    store_word(cell_at(l, (size_t)index), (uint64_t)v);
    return 0;
}

int pshm_list_set_float(pshm_list *l, int64_t index, double v)
{
    if (!LIKELY(same_type(l, index, PSHM_FLOAT))) {
        pshm_value value = pshm_float(v);
        return set_general(l, index, &value);
    }
    uint64_t w;
    memcpy(&w, &v, sizeof w);
    store_word(cell_at(l, (size_t)index), w);
    return 0;
}

/* ---- atomics ----------------------------------------------------------- */

/*
 * The int item's 8 bytes, for an atomic read-modify-write. What is atomic is
 * the add or compare-and-swap itself (sequentially consistent, against any
 * process doing the same on the same item). The type check before it is
 * not: a process that sets the item to another type at that moment has its
 * value overwritten by the integer, as with any unlocked racing writers.
 */
static int int_cell(pshm_list *l, const char *what, int64_t index, uint64_t **cell)
{
    if (l == NULL)
        return err_set(PSHM_EINVAL, "%s [%lld]: NULL list", what, (long long)index);
    item it;
    int rc = check_writable(l, what, index);
    if (rc < 0 || (rc = typed_item(l, what, index, PSHM_INT, &it)) < 0)
        return rc;
    *cell = (uint64_t *)it.data; /* 8-byte aligned: see the top of this file */
    return 0;
}

int pshm_list_add(pshm_list *l, int64_t index, int64_t delta, int64_t *old)
{
    uint64_t *cell = NULL;
    int rc = int_cell(l, "add", index, &cell);
    if (rc < 0)
        return rc;
    /* Unsigned arithmetic: wraps on overflow, as documented. */
    uint64_t before = __atomic_fetch_add(cell, (uint64_t)delta, __ATOMIC_SEQ_CST);
    if (old != NULL)
        *old = (int64_t)before;
    return 0;
}

int pshm_list_cas(pshm_list *l, int64_t index, int64_t *expected, int64_t desired)
{
    if (expected == NULL)
        return err_set(PSHM_EINVAL, "cas [%lld]: NULL expected pointer", (long long)index);
    uint64_t *cell = NULL;
    int rc = int_cell(l, "cas", index, &cell);
    if (rc < 0)
        return rc;
    uint64_t want = (uint64_t)*expected;
    bool swapped = __atomic_compare_exchange_n(cell, &want, (uint64_t)desired, false,
                                               __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    *expected = (int64_t)want;
    return swapped ? 1 : 0;
}

/* ---- typed views ------------------------------------------------------- */

/*
 * A view of ints (floats) rests on two facts. Each item's span is fixed by
 * the private offsets, so a range whose spans are all 8 is a contiguous
 * int64_t (double) array inside the block for as long as the handle is
 * open. Each item's type is its format and code, which any process may
 * rewrite at any time and which CPython pairs with no version word, so
 * the only honest check is to compare them all again.
 */

/* The first item in [start, end) whose format or code is not those of
 * `type` (PSHM_INT or PSHM_FLOAT), or end. 9 bytes read per item. */
static size_t first_other(const pshm_list *l, pshm_type type, size_t start, size_t end)
{
    uint64_t want = format_word(fixed_format(type));
    for (size_t pos = start; pos < end; pos++)
        if (__atomic_load_n(l->formats + pos, __ATOMIC_RELAXED) != want ||
            __atomic_load_n(l->codes + pos, __ATOMIC_RELAXED) != CODE_PLAIN)
            return pos;
    return end;
}

/* Why item `pos` cannot be in a view of `type`: PSHM_ETYPE naming what it
 * holds now, or the item's own error if it is malformed. */
static int not_viewable(const pshm_list *l, const char *what, size_t pos, pshm_type type)
{
    item it;
    int rc = find_item(l, what, (int64_t)pos, &it);
    if (rc < 0)
        return rc;
    return err_set(PSHM_ETYPE,
                   "%s \"%s\"[%zu]: the item is %s %s in %zu bytes; a view needs "
                   "%ss of exactly 8 bytes each",
                   what, list_name(l), pos, article(it.type), type_name(it.type), it.span,
                   type_name(type));
}

static bool viewable_type(pshm_type type) { return type == PSHM_INT || type == PSHM_FLOAT; }

int pshm_list_view_range(pshm_list *l, pshm_type type, size_t start, size_t count,
                         pshm_view *out)
{
    if (l == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "view [%zu]: NULL list or view pointer", start);
    if (!viewable_type(type))
        return err_set(PSHM_EINVAL, "view \"%s\": a view holds ints or floats, not type %d",
                       list_name(l), (int)type);
    if (!list_open(l, "view"))
        return PSHM_ECLOSED;
    if (start > l->len || count > l->len - start)
        return err_set(PSHM_ERANGE,
                       "view \"%s\": %zu items from index %zu do not fit a list "
                       "of %zu items",
                       list_name(l), count, start, l->len);
    size_t end = start + count;
    size_t other = first_other(l, type, start, end);
    for (size_t pos = start; pos < other; pos++)
        if (span_of(l, pos) != 8)
            return not_viewable(l, "view", pos, type);
    if (other < end)
        return not_viewable(l, "view", other, type);
    unsigned char *values = cell_at(l, start);
    *out = (pshm_view){.list = l,
                       .type = type,
                       .start = start,
                       .count = count,
                       .ints = type == PSHM_INT ? (int64_t *)values : NULL,
                       .floats = type == PSHM_FLOAT ? (double *)values : NULL};
    return 0;
}

int pshm_list_view(pshm_list *l, pshm_type type, pshm_view *out)
{
    return pshm_list_view_range(l, type, 0, pshm_list_len(l), out);
}

int pshm_list_view_check(const pshm_view *view)
{
    if (view == NULL || view->list == NULL)
        return err_set(PSHM_EINVAL, "view_check: NULL view or a view without a list");
    const pshm_list *l = view->list;
    if (!viewable_type(view->type) || view->start > l->len ||
        view->count > l->len - view->start)
        return err_set(PSHM_EINVAL, "view_check \"%s\": not a view pshm_list_view made",
                       list_name(l));
    if (!list_open(l, "view_check"))
        return PSHM_ECLOSED;
    /* The caller's reads through the view come before the formats read
     * here; set_locked() publishes a new format before its data. */
    FENCE(__ATOMIC_ACQUIRE);
    size_t end = view->start + view->count;
    size_t other = first_other(l, view->type, view->start, end);
    return other < end ? not_viewable(l, "view_check", other, view->type) : 0;
}

/* ---- whole-list reads -------------------------------------------------- */

/* Find the first item equal to v at or after *pos; *pos = len if none. */
static int scan_equal(const pshm_list *l, const char *what, const pshm_value *v, size_t *pos)
{
    for (; *pos < l->len; ++*pos) {
        item it;
        pshm_value cur;
        int rc = find_item(l, what, (int64_t)*pos, &it);
        if (rc < 0 || (rc = read_item(l, what, (int64_t)*pos, &it, &cur)) < 0)
            return rc;
        if (pshm_value_equal(&cur, v))
            return 0;
    }
    return 0;
}

int pshm_list_count(const pshm_list *l, const pshm_value *v, size_t *count)
{
    if (l == NULL || v == NULL || count == NULL)
        return err_set(PSHM_EINVAL, "count: NULL list, value or result pointer");
    size_t found = 0;
    for (size_t pos = 0;; pos++) {
        int rc = scan_equal(l, "count", v, &pos);
        if (rc < 0)
            return rc;
        if (pos == l->len)
            break;
        found++;
    }
    *count = found;
    return 0;
}

int pshm_list_index(const pshm_list *l, const pshm_value *v, size_t *index)
{
    if (l == NULL || v == NULL || index == NULL)
        return err_set(PSHM_EINVAL, "index: NULL list, value or result pointer");
    size_t pos = 0;
    int rc = scan_equal(l, "index", v, &pos);
    if (rc < 0)
        return rc;
    if (pos == l->len)
        return err_set(PSHM_ENOTFOUND, "index \"%s\": the value is not in the list",
                       list_name(l));
    *index = pos;
    return 0;
}

int pshm_list_format(const pshm_list *l, char **out)
{
    if (l == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "format: NULL list or result pointer");
    strbuf sb = {0};
    for (size_t pos = 0; pos < l->len; pos++) {
        item it;
        int rc = find_item(l, "format", (int64_t)pos, &it);
        if (rc < 0) {
            free(sb.data);
            return rc;
        }
        char text[FORMAT_LEN];
        memcpy(text, &it.format, FORMAT_LEN);
        sb_puts(&sb, text, format_text_len(text));
    }
    return sb_finish(&sb, out, "format");
}

static int item_repr_into(const pshm_list *l, size_t pos, strbuf *sb)
{
    item it;
    pshm_value v;
    int rc = find_item(l, "repr", (int64_t)pos, &it);
    if (rc < 0 || (rc = read_item(l, "repr", (int64_t)pos, &it, &v)) < 0)
        return rc;
    if (pos > 0)
        sb_puts(sb, ", ", 2);
    return value_repr_into(sb, &v);
}

/* "ShareableList([<items>], name=<repr of the name>)", as CPython's __repr__. */
static int repr_into(const pshm_list *l, strbuf *sb)
{
    sb_puts(sb, "ShareableList([", 15);
    for (size_t pos = 0; pos < l->len; pos++) {
        int rc = item_repr_into(l, pos, sb);
        if (rc < 0)
            return rc;
    }
    sb_puts(sb, "], name=", 8);
    pshm_value name = pshm_strn(list_name(l), strlen(list_name(l)));
    int rc = value_repr_into(sb, &name);
    sb_putc(sb, ')');
    return rc;
}

int pshm_list_repr(const pshm_list *l, char **out)
{
    if (l == NULL || out == NULL)
        return err_set(PSHM_EINVAL, "repr: NULL list or result pointer");
    strbuf sb = {0};
    int rc = repr_into(l, &sb);
    if (rc < 0) {
        free(sb.data);
        return rc;
    }
    return sb_finish(&sb, out, "repr");
}
