/*
 * pshm.h — named shared memory blocks, a resource tracker, a manager server
 * and CPython-compatible shareable lists, for C.
 *
 * This header is the whole public API. Every function that can fail returns
 * an int: 0 (or a documented non-negative value) on success, a negative
 * PSHM_E* code on failure. After a failure, pshm_last_error() gives a message
 * for the calling thread that names the call and the block or address
 * involved, and the system call where one failed, e.g.
 *     attach "psm_1a2b3c4d": shm_open: no such shared memory block
 *
 * Thread safety: every function may be called from any thread. A handle
 * (pshm_block, pshm_list, pshm_manager) may be read from several threads at
 * once (buf, size, name, get, len, ...); pshm_list_set (see there) and the
 * manager calls lock internally, so they too may be shared. What must not overlap with any
 * other use of the same handle is its end of life: close, free, shutdown,
 * disconnect. The library's global state (the tracker link) is locked and
 * survives fork().
 */
#ifndef PSHM_H
#define PSHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(PSHM_BUILDING)
/* Windows: the DLL exports exactly what is marked (no version script). */
#define PSHM_API __declspec(dllexport)
#elif defined(_WIN32)
#define PSHM_API
#elif defined(__GNUC__)
#define PSHM_API __attribute__((visibility("default")))
#else
#define PSHM_API
#endif

#define PSHM_VERSION_MAJOR 0
#define PSHM_VERSION_MINOR 1
#define PSHM_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Error codes. The first group are negated errno values, so a code can be
 * compared with -errno; the second group are pshm's own and lie outside the
 * errno range.
 */
typedef enum pshm_error {
    PSHM_OK = 0,
    PSHM_ENOENT = -2,  /* no such shared memory block (or name, or item) */
    PSHM_EACCES = -13, /* permission denied */
    PSHM_EBUSY = -16,  /* another program holds an exclusive flock on the
                          * block and did not let go within 2 s; or a close
                          * while the thread holds a lock in the block */
    PSHM_EEXIST = -17, /* a block with that name already exists */
    PSHM_EINVAL = -22, /* an argument is invalid (NULL, bad flags, ...) */

    /* The locks' own (pshm_mutex_lock, ...), also errno values. */
    PSHM_EDEADLK = -35,          /* the calling thread already holds the lock */
    PSHM_ETIMEDOUT = -110,       /* not acquired within the timeout */
    PSHM_ENOTRECOVERABLE = -131, /* a holder died and the next one did not
                                  * mark it consistent: refused for good */

    PSHM_EBADNAME = -1001,  /* name empty, too long, "." or "..", or holds a '/'
                             * other than one leading '/' (which is ignored) */
    PSHM_EBADSIZE = -1002,  /* size 0 when creating, or too large */
    PSHM_ELIMIT = -1003,    /* a system limit: descriptors, memory, /dev/shm space */
    PSHM_ECLOSED = -1004,   /* the handle was closed (or the block unlinked) */
    PSHM_ERANGE = -1005,    /* list index out of range */
    PSHM_ETOOBIG = -1006,   /* value exceeds the item's allocated storage */
    PSHM_ECORRUPT = -1007,  /* block is not a well-formed shareable list */
    PSHM_ETYPE = -1008,     /* the item has the wrong type for the call */
    PSHM_ESYNTAX = -1009,   /* a literal could not be parsed */
    PSHM_EAUTH = -1010,     /* manager handshake refused: wrong key, or the
                             * server refused it (e.g. protocol version) */
    PSHM_EPROTO = -1011,    /* manager protocol violation or version mismatch */
    PSHM_ECONN = -1012,     /* manager connection failed or was lost */
    PSHM_EADDR = -1013,     /* bad manager address */
    PSHM_ENOTFOUND = -1014, /* value not in the list (pshm_list_index) */
    PSHM_ESYS = -1015,      /* another system call failure; see the message */
    PSHM_ENOTHELD = -1016,  /* unlock of a lock the calling thread does not hold */
    PSHM_EBADLOCK = -1017   /* no initialised lock of that kind at that offset
                             * (never initialised, or overwritten) */
} pshm_error;

/* Static text for an error code; never NULL. */
PSHM_API const char *pshm_strerror(int code);

/*
 * The message of the most recent failure in the calling thread: the call,
 * the block name or address, and the reason. Valid until the next pshm call
 * in this thread. Empty string if no call has failed yet.
 */
PSHM_API const char *pshm_last_error(void);

/* ------------------------------------------------------------------------ */
/* Blocks                                                                    */
/* ------------------------------------------------------------------------ */

/* Flags for pshm_block_create / pshm_block_attach (and lists). */
enum pshm_flags {
    /* Create: the block is not cleaned up by any tracker; it stays until
     * someone unlinks it (CPython's track=False). Without it, the block is
     * marked as its creator's to clean up (the sticky bit in its mode,
     * 01600) and registered with this process family's tracker, which
     * removes it once every process that had it open is gone.
     * Attach: do not register with this family's tracker. Attaching never
     * changes whether a block is cleaned up: an attach without this flag
     * registers only blocks whose creator marked them, and no tracker ever
     * removes an unmarked block (one made untracked, or by CPython or
     * another tool). Tracking is on by default. */
    PSHM_UNTRACKED = 1u << 0,
    /* Attach only: map the block read-only (PROT_READ on an O_RDONLY
     * descriptor); writes through buf fault. */
    PSHM_READONLY = 1u << 1,
    /* Create: reserve every page of the block now (fallocate), so a full
     * /dev/shm is a clean PSHM_ELIMIT from create, never a SIGBUS later
     * (see pshm_block_create). Create and attach: pre-fault the mapping
     * (MAP_POPULATE), so the first touch of each page costs no fault. */
    PSHM_POPULATE = 1u << 2,
    /* Create and attach: do not map the block yet. The handle is open all
     * the same (it holds its descriptor and shared flock, so the block
     * counts as in use; read, reserve, unlink and close work), but
     * pshm_block_buf is NULL, and locks refuse it, until pshm_block_map
     * maps it. For a process that makes or opens a block it may never
     * touch itself (made for other processes to fill, or attached only to
     * learn its size): the mmap and munmap it saves are about a fifth of a
     * create+close+unlink on Linux. Lists refuse it (a list reads its block
     * at once). On Windows the block is mapped at once all the same. */
    PSHM_NOMAP = 1u << 3
};

/* Longest block name accepted, without the leading '/'. */
#define PSHM_NAME_MAX 255
/* Length of a generated name: "psm_" + 8 hex digits, as CPython makes them. */
#define PSHM_RANDOM_NAME_LEN 12

typedef struct pshm_block pshm_block;

/*
 * Create a new block of `size` bytes (size > 0), exclusively: an existing
 * name is PSHM_EEXIST, never an attach. `name` NULL picks a fresh random
 * "psm_XXXXXXXX" name (retrying on collision). A leading '/' in `name` is
 * accepted and ignored. The block has mode 0600 (01600 when tracked) and is
 * zero-filled. On success *out is a mapped, read-write handle. The size is
 * checked before anything is made (PSHM_EBADSIZE).
 * A tracked create whose tracker cannot be started (no descriptors or
 * processes left) fails, naming the system call, and leaves nothing behind.
 *
 * A full /dev/shm: without PSHM_POPULATE the kernel gives a block's pages
 * lazily, at the first touch of each page through buf, and a read touches
 * too (a never-written page of a shared mapping needs a page of its own).
 * When /dev/shm has no page left at that moment, the touching process gets
 * SIGBUS, which kills it unless handled. create refuses a block of 1 MiB
 * or more that does not fit in the free space (PSHM_ELIMIT), but that
 * space is shared with every other process, so it can still run out
 * later. A program that must not die of it creates with PSHM_POPULATE
 * (every page reserved now, or a clean PSHM_ELIMIT here), reserves the
 * range it is about to write with pshm_block_reserve, and reads a block
 * that may have never-written pages with pshm_block_read. Lists and the
 * manager's blocks and lists are always reserved at create.
 */
PSHM_API int pshm_block_create(pshm_block **out, const char *name, size_t size,
                               unsigned flags);

/*
 * Attach to an existing block by name. Its size is read from the block.
 * PSHM_READONLY maps it read-only. A failed attach never alters the block.
 * Every handle holds a shared flock on its block (how the tracker knows it
 * is in use); if another program holds an exclusive flock on it, attach
 * waits at most 2 s, then fails with PSHM_EBUSY. A block its creator marked
 * tracked is registered with this family's tracker unless PSHM_UNTRACKED;
 * a tracker that cannot be started is then an error, as for create.
 */
PSHM_API int pshm_block_attach(pshm_block **out, const char *name, unsigned flags);

/* The mapped bytes; NULL after close, and while a handle opened with
 * PSHM_NOMAP is not mapped. */
PSHM_API void *pshm_block_buf(const pshm_block *b);
/*
 * Map a handle opened with PSHM_NOMAP, as create or attach would have
 * (read-only for a PSHM_READONLY handle, pre-faulted with PSHM_POPULATE).
 * A handle already mapped: 0, nothing done. A closed handle: PSHM_ECLOSED.
 * If the mapping fails (PSHM_ELIMIT: no address space or memory left) the
 * handle stays open and unmapped.
 */
PSHM_API int pshm_block_map(pshm_block *b);
/* Size in bytes as read from the block; kept after close. */
PSHM_API size_t pshm_block_size(const pshm_block *b);
/* Name without the leading '/', as CPython reports it; kept after close. */
PSHM_API const char *pshm_block_name(const pshm_block *b);
/* Whether the handle is still open (not closed; mapped unless PSHM_NOMAP). */
PSHM_API bool pshm_block_is_open(const pshm_block *b);

/*
 * Reserve the pages of bytes [offset, offset + len) of the block (fallocate),
 * so writes to them through buf cannot raise SIGBUS on a full /dev/shm.
 * Pages already there, and their contents, are kept; len 0 does nothing.
 * No room is PSHM_ELIMIT ("... no space left in /dev/shm ...") and leaves
 * the free space as it was. A closed handle is PSHM_ECLOSED; a read-only
 * handle or a range past the end of the block is PSHM_EINVAL.
 */
PSHM_API int pshm_block_reserve(pshm_block *b, size_t offset, size_t len);

/*
 * Copy bytes [offset, offset + len) of the block into dst (pread on the
 * block, not through buf): pages never written read as zeros without being
 * allocated, so this never faults, even on a full /dev/shm. A closed handle
 * is PSHM_ECLOSED; a range past the end of the block is PSHM_EINVAL.
 */
PSHM_API int pshm_block_read(const pshm_block *b, size_t offset, void *dst, size_t len);

/*
 * Release this handle's mapping and descriptor; the block itself stays. A
 * second close is a no-op returning 0. The handle object stays valid (name
 * and size remain) until pshm_block_free. PSHM_EBUSY, and the handle stays
 * open, while the calling thread holds a lock (pshm_mutex_lock, ...) in
 * the block: unmapped, a lock could never be released if the thread died.
 */
PSHM_API int pshm_block_close(pshm_block *b);

/*
 * Remove the block's name, so no new process can attach; mappings already
 * made stay valid. Works before or after close. A second unlink through the
 * same handle fails with PSHM_ENOENT. The tracker is not told (no system
 * call): it drops its record of the block when it next makes room.
 */
PSHM_API int pshm_block_unlink(pshm_block *b);

/* Close (if still open) and free the handle. NULL is a no-op. If the
 * calling thread holds a lock in the block, the mapping stays until the
 * process exits (see pshm_block_close). */
PSHM_API void pshm_block_free(pshm_block *b);

/* Remove a block by name (without needing a handle). */
PSHM_API int pshm_unlink(const char *name);

/* What pshm_block_stat reports about a block, without mapping it. */
typedef struct pshm_block_info {
    char name[PSHM_NAME_MAX + 1]; /* without the leading '/' */
    uint64_t size;
    uint32_t mode; /* permission bits, e.g. 0600 */
    uint32_t uid;
    uint32_t gid;
} pshm_block_info;

/* Describe the block `name`. */
PSHM_API int pshm_block_stat(const char *name, pshm_block_info *info);

/*
 * Call `fn` for each block this user can see (every name in the system's
 * shared memory directory), in no particular order. Stops early and returns
 * fn's value if fn returns non-zero.
 */
PSHM_API int pshm_block_foreach(int (*fn)(const pshm_block_info *info, void *arg), void *arg);

/* ------------------------------------------------------------------------ */
/* Values: the items a shareable list holds                                  */
/* ------------------------------------------------------------------------ */

typedef enum pshm_type {
    PSHM_NONE = 0,
    PSHM_INT,   /* int64_t */
    PSHM_FLOAT, /* double */
    PSHM_BOOL,
    PSHM_STR, /* UTF-8 text, not NUL-terminated in the list */
    PSHM_BYTES
} pshm_type;

/*
 * A tagged value. For PSHM_STR and PSHM_BYTES, `s.ptr`/`s.len` describe the
 * bytes; whoever filled the value says who owns them (see each call).
 */
typedef struct pshm_value {
    pshm_type type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *ptr;
            size_t len;
        } s;
    } u;
} pshm_value;

static inline pshm_value pshm_none(void)
{
    pshm_value v = {PSHM_NONE, {0}};
    return v;
}
static inline pshm_value pshm_int(int64_t i)
{
    pshm_value v = {PSHM_INT, {0}};
    v.u.i = i;
    return v;
}
static inline pshm_value pshm_float(double f)
{
    pshm_value v = {PSHM_FLOAT, {0}};
    v.u.f = f;
    return v;
}
static inline pshm_value pshm_bool(bool b)
{
    pshm_value v = {PSHM_BOOL, {0}};
    v.u.b = b;
    return v;
}
static inline pshm_value pshm_strn(const char *p, size_t n)
{
    pshm_value v = {PSHM_STR, {0}};
    v.u.s.ptr = p;
    v.u.s.len = n;
    return v;
}
/* A NUL-terminated C string as a str value. */
PSHM_API pshm_value pshm_str(const char *s);
static inline pshm_value pshm_bytes(const void *p, size_t n)
{
    pshm_value v = {PSHM_BYTES, {0}};
    v.u.s.ptr = (const char *)p;
    v.u.s.len = n;
    return v;
}

/*
 * Python's equality between two values: numbers compare by value across
 * int, float and bool (1 == 1.0 == True; NaN equals nothing), str equals
 * only str, bytes only bytes, None only None.
 */
PSHM_API bool pshm_value_equal(const pshm_value *a, const pshm_value *b);

/*
 * Python's repr() of a value, e.g. 42, -273.154, 'howdy', b'HoWdY', None,
 * True, inf. *out is malloc'd and NUL-terminated; the caller frees it.
 * A str that is not valid UTF-8 is PSHM_ECORRUPT.
 */
PSHM_API int pshm_value_repr(const pshm_value *v, char **out);

/*
 * Parse a Python literal (42, -1.5, 1e300, inf, -inf, nan, 'text', "text",
 * b'bytes', None, True, False; string escapes as Python writes them) into
 * *out. For str/bytes the bytes are malloc'd and owned by *out: release them
 * with pshm_value_free. Anything else is PSHM_ESYNTAX.
 */
PSHM_API int pshm_value_parse(const char *literal, pshm_value *out);

/* Free the bytes of a value filled by pshm_value_parse; other values: no-op. */
PSHM_API void pshm_value_free(pshm_value *v);

/* ------------------------------------------------------------------------ */
/* Shareable lists (CPython's ShareableList layout, byte for byte)           */
/* ------------------------------------------------------------------------ */

typedef struct pshm_list pshm_list;

/*
 * Create a list holding copies of values[0..n-1] in a new block (name NULL =
 * random name). str and bytes items get their encoded length rounded up to
 * a multiple of 8 with at least one spare byte; an item over the 8-character
 * format limit (9,999,991 bytes) is PSHM_ETOOBIG. n may be 0. Flags as for
 * pshm_block_create. Every page is reserved before it is written: a full
 * /dev/shm is PSHM_ELIMIT ("no space left in /dev/shm"), leaving nothing.
 */
PSHM_API int pshm_list_create(pshm_list **out, const char *name, const pshm_value *values,
                              size_t n, unsigned flags);

/* Attach to an existing list; the layout is validated (PSHM_ECORRUPT). */
PSHM_API int pshm_list_attach(pshm_list **out, const char *name, unsigned flags);

/* Close the list's block and free the handle. NULL is a no-op. */
PSHM_API void pshm_list_free(pshm_list *l);

/* The underlying block (CPython's .shm). Owned by the list: do not free. */
PSHM_API pshm_block *pshm_list_block(const pshm_list *l);

PSHM_API size_t pshm_list_len(const pshm_list *l);

/*
 * Read item `index` (negative counts from the end). For str and bytes,
 * out->u.s points into the block itself (no copy), trailing NUL bytes
 * stripped exactly as CPython strips them; the pointer stays valid until
 * the list is freed, but its bytes change if any process sets the item.
 */
PSHM_API int pshm_list_get(const pshm_list *l, int64_t index, pshm_value *out);

/*
 * Like pshm_list_get, but str/bytes are copied into buf (cap bytes) and
 * out->u.s.ptr points at buf. A buffer too small is PSHM_ETOOBIG; the
 * length needed is then in out->u.s.len and out->u.s.ptr is NULL.
 */
PSHM_API int pshm_list_get_copy(const pshm_list *l, int64_t index, pshm_value *out, void *buf,
                                size_t cap);

/*
 * The raw allocated bytes of item `index`, NULs included (CPython's gh-106939
 * workaround: store a sentinel byte after values that may end in NUL).
 */
PSHM_API int pshm_list_raw(const pshm_list *l, int64_t index, const void **ptr,
                           size_t *allocated);

/*
 * Store v at `index`. The item may change type; a str/bytes value must fit
 * the item's allocated storage, else PSHM_ETOOBIG and the item is unchanged.
 * Format and back-transform code are written as CPython writes them.
 * An int, float, bool or None over an item of the same type is one aligned
 * 8-byte store, without a lock (format and code stay as they are); every
 * other set takes the handle's lock and writes format, code, then data.
 * A same-type store racing a type change of the same item (from another
 * thread or process) can land after the change's data, leaving the new
 * format over the old type's 8 bytes: if items change type while others
 * write them, share a lock.
 */
PSHM_API int pshm_list_set(pshm_list *l, int64_t index, pshm_value v);

/*
 * Typed get and set of a number, for hot loops over single items: no
 * pshm_value to build or copy. pshm_list_get_int reads an int item into
 * *out; any other type is PSHM_ETYPE naming what the item holds (no
 * conversion: a float or a bool is not an int), and *out is then left
 * untouched. pshm_list_set_int(l, i, v) is pshm_list_set(l, i,
 * pshm_int(v)) in every respect: over an int it is one aligned 8-byte
 * store without a lock; over any other type it changes the item's type
 * as pshm_list_set does. The float twins do the same for doubles. Bad
 * indices are PSHM_ERANGE (negative ones count from the end), as for
 * pshm_list_get. make bench (list.get_int, list.set_int) gives their cost
 * beside a plain int64_t array.
 */
PSHM_API int pshm_list_get_int(const pshm_list *l, int64_t index, int64_t *out);
PSHM_API int pshm_list_get_float(const pshm_list *l, int64_t index, double *out);
PSHM_API int pshm_list_set_int(pshm_list *l, int64_t index, int64_t v);
PSHM_API int pshm_list_set_float(pshm_list *l, int64_t index, double v);

/*
 * A call pshm_list_set(l, i, v) of an int or float value goes straight to
 * the typed set, which is the same operation in every respect: the caller
 * builds v, and handing its 24 bytes on costs more than the store itself
 * (for pshm_list_set(l, i, pshm_int(x)) the compiler also drops the type
 * test). The exported function is unchanged, and (pshm_list_set)(l, i, v)
 * or &pshm_list_set reach it directly. pshm_list_set_dispatch is not API.
 */
static inline int pshm_list_set_dispatch(pshm_list *l, int64_t index, pshm_value v)
{
    if (v.type == PSHM_INT)
        return pshm_list_set_int(l, index, v.u.i);
    if (v.type == PSHM_FLOAT)
        return pshm_list_set_float(l, index, v.u.f);
    return (pshm_list_set)(l, index, v);
}
#define pshm_list_set(l, index, v) pshm_list_set_dispatch((l), (index), (v))

/* Number of items equal to v under pshm_value_equal. */
PSHM_API int pshm_list_count(const pshm_list *l, const pshm_value *v, size_t *count);

/* First index of an item equal to v, or PSHM_ENOTFOUND. */
PSHM_API int pshm_list_index(const pshm_list *l, const pshm_value *v, size_t *index);

/* The concatenated struct format, identical to Python's .format (malloc'd). */
PSHM_API int pshm_list_format(const pshm_list *l, char **out);

/* Text identical to Python's repr() of the list (malloc'd). */
PSHM_API int pshm_list_repr(const pshm_list *l, char **out);

/*
 * Atomic operations on an int item (PSHM_ETYPE otherwise). Atomic against
 * other pshm_list_add/cas calls in any process. Otherwise: numbers, bool,
 * None and each item's format are read and written as single aligned 8-byte
 * accesses, so they never tear; str/bytes contents and a type change (format,
 * code and data are three writes) may be seen half-done by a process reading
 * at the same moment. Share a lock for those if processes race.
 */
/* *old (may be NULL) receives the value before the add; wraps on overflow. */
PSHM_API int pshm_list_add(pshm_list *l, int64_t index, int64_t delta, int64_t *old);
/* Returns 1 if swapped, 0 if not (then *expected holds the current value). */
PSHM_API int pshm_list_cas(pshm_list *l, int64_t index, int64_t *expected, int64_t desired);

/*
 * Typed views: the values of a run of int (or float) items as a plain
 * int64_t (double) array inside the block, for loops at memory speed.
 *
 * CPython stores each int or float in its own 8-byte slot, so a run of
 * items whose slots are all 8 bytes (every item of a list created with
 * only ints and floats) is a contiguous array. A view covers such a run in
 * which every item is of the view's type; anything else in the range is
 * refused with PSHM_ETYPE naming the list and the first such index (a
 * malformed item gives its PSHM_ECORRUPT). Reads and writes through the
 * view are exactly what CPython reads and writes (struct "q" and "d" in
 * native order), so the list stays readable by CPython byte for byte. A
 * view of a list attached PSHM_READONLY can only be read: writes fault.
 *
 * How long a view is valid:
 *   - its memory: until the list is freed or its block closed. The slots
 *     never move, so reads and writes through a view never leave the
 *     block, whatever other processes do;
 *   - its meaning: until any process (pshm, CPython, anyone) changes the
 *     type of an item in the range. After that, that slot holds the other
 *     type's bytes: reading gives them reinterpreted, and writing
 *     overwrites the item's new value (a str may then read as garbage or
 *     as PSHM_ECORRUPT). Setting an item to a value of the same type
 *     (pshm_list_set, CPython's sl[i] = 7) keeps every view valid.
 *
 * pshm_list_view_check tells whether a view still holds: 0 if every item
 * in the range still has the view's type, else PSHM_ETYPE naming the first
 * that does not. Call it after a loop: when it returns 0, every value the
 * loop read was written as the view's type, except if an item changed
 * type and back again between the view's making and the check, which no
 * check can see, since CPython writers keep no version number. Its cost
 * is one pass over the range's formats and codes (9 bytes per item, about
 * as long again as summing the values: make bench's list.sum_1000
 * pshm_view_checked): far cheaper than a get per item, not free. When processes change types concurrently with your
 * loop, share a lock, as for any type change.
 *
 *     pshm_view v;
 *     if (pshm_list_view(l, PSHM_INT, &v) == 0) {
 *         int64_t sum = 0;
 *         for (size_t i = 0; i < v.count; i++)
 *             sum += v.ints[i];
 *         v.ints[0] = sum;               // CPython reads sl[0] == sum
 *         if (pshm_list_view_check(&v) < 0)
 *             ;                          // a type changed: sum is void
 *     }
 */
typedef struct pshm_view {
    pshm_list *list;
    pshm_type type; /* PSHM_INT or PSHM_FLOAT */
    size_t start;   /* list index of the first value */
    size_t count;   /* number of values */
    int64_t *ints;  /* the values if type is PSHM_INT, else NULL */
    double *floats; /* the values if type is PSHM_FLOAT, else NULL */
} pshm_view;

/* A view of items [start, start + count) as `type` (PSHM_INT or
 * PSHM_FLOAT; other types are PSHM_EINVAL). A range past the end is
 * PSHM_ERANGE; count 0 gives an empty view. */
PSHM_API int pshm_list_view_range(pshm_list *l, pshm_type type, size_t start, size_t count,
                                  pshm_view *out);
/* A view of the whole list: pshm_list_view_range(l, type, 0, len, out). */
PSHM_API int pshm_list_view(pshm_list *l, pshm_type type, pshm_view *out);
/* 0 if the view still holds (see above), PSHM_ETYPE if an item in its
 * range changed type, PSHM_ECLOSED if the list's block was closed. */
PSHM_API int pshm_list_view_check(const pshm_view *view);

/* ------------------------------------------------------------------------ */
/* Locks that survive a killed holder (Linux with glibc, Windows)            */
/* ------------------------------------------------------------------------ */

/*
 * A mutex or a readers-writer lock lives inside a block, at an offset the
 * program chooses (next to the data it protects): one process initialises
 * it once, every process that attaches the block uses it through its own
 * handle and the same offset. The offset must be a multiple of
 * PSHM_LOCK_ALIGN and the lock's size must fit in the block; the handle
 * must be open and writable. Each area starts with a magic and version
 * word, checked by every call: an area never initialised, overwritten, or
 * holding the other kind of lock is PSHM_EBADLOCK, never undefined
 * behaviour.
 *
 * Timeouts: every lock call takes timeout_ms: PSHM_FOREVER waits as long
 * as it takes, 0 tries once, a positive value waits at most that many
 * milliseconds. Not acquired in time is PSHM_ETIMEDOUT.
 *
 * A holder that dies (SIGKILL, crash, exit while holding) never blocks
 * anyone: the kernel releases what it held, and the next process to lock
 * gets the lock at once with the positive return PSHM_OWNERDEAD, once per
 * death, so it can check or repair the data. It then holds the lock, and
 * calls pshm_mutex_consistent (pshm_rwlock_consistent) once the data is
 * sound again. If it unlocks without doing so, the lock is marked broken:
 * every later lock call, in every process, fails at once with
 * PSHM_ENOTRECOVERABLE instead of hanging (make a new lock to go on). If
 * it dies too before marking it, the next locker is told again.
 *
 * Ownership is per thread, as for pthread mutexes: a thread unlocks what it
 * locked (else PSHM_ENOTHELD), and locking a mutex it holds is
 * PSHM_EDEADLK. A process must not close the block (or exit a thread)
 * while holding a lock in it: the kernel can release only locks that are
 * still mapped when their holder dies. pshm_block_close refuses with
 * PSHM_EBUSY when the calling thread holds a lock in the block; other
 * threads' locks it cannot see. Holders are told apart by thread ID, so
 * every process using a lock must share one PID namespace.
 * On Windows the locks are named kernel mutexes, with the same calls,
 * codes and messages; there a thread may hold at most 16 pshm locks at
 * once (PSHM_ELIMIT beyond). See docs/locks.md for the design.
 */

/* Every lock's offset in its block is a multiple of this. */
#define PSHM_LOCK_ALIGN 64
/* Bytes a mutex takes at its offset. */
#define PSHM_MUTEX_SIZE 64
/* Bytes a readers-writer lock takes at its offset. */
#define PSHM_RWLOCK_SIZE 2112
/* timeout_ms: wait as long as it takes. */
#define PSHM_FOREVER (-1)
/* A lock call's positive return: acquired, and the previous holder died
 * holding it (see above). */
#define PSHM_OWNERDEAD 1

/*
 * Make a mutex at `offset` of block b (done once, by one process, before
 * anyone uses it). An area that already holds a lock is PSHM_EEXIST: zero
 * it first to replace a lock nobody uses any more.
 */
PSHM_API int pshm_mutex_init(pshm_block *b, size_t offset);
/* Lock: 0, or PSHM_OWNERDEAD (held; see above), or a negative code:
 * PSHM_ETIMEDOUT, PSHM_EDEADLK, PSHM_ENOTRECOVERABLE, PSHM_EBADLOCK, ... */
PSHM_API int pshm_mutex_lock(pshm_block *b, size_t offset, int64_t timeout_ms);
/* Unlock; PSHM_ENOTHELD if the calling thread does not hold it. */
PSHM_API int pshm_mutex_unlock(pshm_block *b, size_t offset);
/* After PSHM_OWNERDEAD, once the data is repaired: the lock works on as
 * before. PSHM_EINVAL if the lock was not in that state. */
PSHM_API int pshm_mutex_consistent(pshm_block *b, size_t offset);

/*
 * A readers-writer lock: any number of readers or one writer. A waiting
 * writer makes new readers wait, so a stream of readers never starves it.
 * A dead reader leaves nothing behind; a dead writer blocks no one, and
 * the next writer (not a reader) gets PSHM_OWNERDEAD. Readers are spread
 * over 32 slots by thread: up to 32 readers hold it truly at once, more
 * take turns. A thread must not take a read lock it already holds (with a
 * writer waiting that deadlocks, as with any rwlock that favours writers),
 * nor the write lock while holding a read lock (PSHM_EDEADLK).
 */
PSHM_API int pshm_rwlock_init(pshm_block *b, size_t offset);
PSHM_API int pshm_rwlock_rdlock(pshm_block *b, size_t offset, int64_t timeout_ms);
PSHM_API int pshm_rwlock_wrlock(pshm_block *b, size_t offset, int64_t timeout_ms);
/* Release a read lock (write lock); PSHM_ENOTHELD if the calling thread
 * holds none (holds no write lock). */
PSHM_API int pshm_rwlock_rdunlock(pshm_block *b, size_t offset);
PSHM_API int pshm_rwlock_wrunlock(pshm_block *b, size_t offset);
/* As pshm_mutex_consistent, for the writer that got PSHM_OWNERDEAD. */
PSHM_API int pshm_rwlock_consistent(pshm_block *b, size_t offset);

/*
 * A named lock: a small block named `name` holding a readers-writer lock
 * at offset 0 (use the pshm_rwlock_* calls with offset 0; the write lock
 * is the exclusive lock). Attaches if it exists, else creates it; flags
 * as for pshm_block_create (tracked unless PSHM_UNTRACKED: the tracker
 * removes it once no process has it open, without the message it prints
 * for other blocks nobody unlinked). Racing openers agree: one
 * creates and initialises, the others wait (at most 2 s) for it to be
 * ready. A block of that name that is not a named lock is PSHM_EBADLOCK.
 * Release with pshm_block_free; remove with pshm_block_unlink.
 */
PSHM_API int pshm_lock_open(pshm_block **out, const char *name, unsigned flags);

/* ------------------------------------------------------------------------ */
/* Manager: a server process that owns blocks                                */
/* ------------------------------------------------------------------------ */

typedef struct pshm_manager pshm_manager;

/* Length of a generated authkey, and the longest accepted. */
#define PSHM_AUTHKEY_LEN 32
#define PSHM_AUTHKEY_MAX 256

/*
 * Start a manager server process. `address` is "unix:PATH", "tcp:HOST:PORT"
 * (port 0 picks a free one; loopback hosts only) or NULL for a fresh Unix
 * socket in a private directory. key/keylen NULL/0 makes a fresh random key.
 * If this process dies without shutdown, the server unlinks everything it
 * owns and exits.
 */
PSHM_API int pshm_manager_start(pshm_manager **out, const char *address, const void *key,
                                size_t keylen);

/* Connect to a running manager by address and key. PSHM_ECONN if the
 * server is busy or closed the connection during the handshake: under a
 * flood of strangers' connections it may have evicted ours, so retry. */
PSHM_API int pshm_manager_connect(pshm_manager **out, const char *address, const void *key,
                                  size_t keylen);

/* The server's address, as accepted by pshm_manager_connect. */
PSHM_API const char *pshm_manager_address(const pshm_manager *m);
/* The authkey (pointer into the handle). */
PSHM_API const void *pshm_manager_authkey(const pshm_manager *m, size_t *len);

/* Ask the server to create a block; *out is an attached, untracked handle.
 * The server reserves its pages first (so writes to it cannot raise SIGBUS
 * on a full /dev/shm): no room is PSHM_ELIMIT, and nothing is left. */
PSHM_API int pshm_manager_block(pshm_manager *m, size_t size, pshm_block **out);
/* Ask the server to create a list; *out is attached, untracked. Reserved
 * like a block: no room is PSHM_ELIMIT. */
PSHM_API int pshm_manager_list(pshm_manager *m, const pshm_value *values, size_t n,
                               pshm_list **out);
/* Names the server owns: *names is a malloc'd array of malloc'd strings;
 * release with pshm_names_free. */
PSHM_API int pshm_manager_names(pshm_manager *m, char ***names, size_t *count);
PSHM_API void pshm_names_free(char **names, size_t count);
/* Unlink one block the server owns, and forget it. */
PSHM_API int pshm_manager_release(pshm_manager *m, const char *name);

/*
 * Tell the server to unlink every block it owns and exit; frees the handle
 * (also on error). If this handle started the server, waits for it to exit.
 */
PSHM_API int pshm_manager_shutdown(pshm_manager *m);

/*
 * Close the connection and free the handle; the server keeps running. On
 * the handle that started the server, the server still ends when this
 * process exits (the link it watches stays open until then), and this
 * process reaps nothing: the exited server stays a zombie until then.
 * Use pshm_manager_shutdown to end a server you started.
 */
PSHM_API void pshm_manager_disconnect(pshm_manager *m);

/*
 * Run a manager server in the calling process until a client asks for
 * shutdown or SIGTERM/SIGINT arrives; then unlink every block it owns and
 * return 0. ready(address, arg) is called once the server listens (may be
 * NULL). PSHM_ELIMIT, before ready is called, if RLIMIT_NOFILE leaves
 * descriptors for fewer than 4 connections. This is what pshm_manager_start runs in its child process and what
 * `pshm manager serve` runs in the foreground.
 */
PSHM_API int pshm_manager_serve(const char *address, const void *key, size_t keylen,
                                void (*ready)(const char *address, void *arg), void *arg);

/*
 * The scoped pattern (Python's `with SharedMemoryManager() as smm`): start a
 * manager, call fn(m, arg), then shut it down whatever fn returned. Returns
 * fn's value, or the start/shutdown error.
 */
PSHM_API int pshm_manager_with(const char *address, const void *key, size_t keylen,
                               int (*fn)(pshm_manager *m, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* PSHM_H */
