/*
 * owned.c — the blocks a manager server owns, by name: an open-addressing
 * table with tombstones, shared by every platform's server (server.c,
 * win/server.c). On Windows unlinking does nothing and freeing a block's
 * last handle is what frees it, so the same calls serve both.
 */
#include "manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The names of this many blocks fit one OK_NAMES frame with room to spare. */
#define MAX_OWNED (1u << 20)

static pshm_block tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

/* The slot holding `name`, or (for_insert) where it would go. */
static pshm_block **owned_slot(owned_table *t, const char *name, bool for_insert)
{
    pshm_block **tomb = NULL;
    for (size_t i = name_hash(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        pshm_block **slot = &t->slots[i];
        if (*slot == NULL)
            return for_insert ? (tomb ? tomb : slot) : NULL;
        if (*slot == TOMBSTONE) {
            if (tomb == NULL)
                tomb = slot;
        } else if (strcmp((*slot)->name, name) == 0) {
            return slot;
        }
    }
}

/* Rehash into a table sized for the live entries (at most a quarter full),
 * which also sweeps out the tombstones that create/release cycles leave. */
static bool owned_rehash(owned_table *t)
{
    size_t cap = 64;
    while (cap < (t->live + 1) * 4)
        cap *= 2;
    owned_table bigger = {calloc(cap, sizeof(pshm_block *)), cap, 0, 0};
    if (bigger.slots == NULL)
        return false;
    for (size_t i = 0; i < t->cap; i++) {
        pshm_block *b = t->slots[i];
        if (b != NULL && b != TOMBSTONE) {
            *owned_slot(&bigger, b->name, true) = b;
            bigger.used++;
            bigger.live++;
        }
    }
    free(t->slots);
    *t = bigger;
    return true;
}

/* owned_add's refusal: b goes (unlink does nothing on Windows, where
 * freeing the server's handle is what frees it). */
static int owned_refuse(pshm_block *b, int rc)
{
    pshm_block_unlink(b);
    pshm_block_free(b);
    return rc;
}

int owned_add(owned_table *t, pshm_block *b)
{
    if (t->live >= MAX_OWNED)
        return owned_refuse(
            b, err_set(PSHM_ELIMIT, "manager: the server already owns %u blocks", MAX_OWNED));
    if ((t->used + 1) * 2 > t->cap && !owned_rehash(t))
        return owned_refuse(
            b,
            err_set(PSHM_ELIMIT, "manager: out of memory recording block \"%s\"", b->name));
    pshm_block **slot = owned_slot(t, b->name, true);
    if (*slot == NULL) {
        t->used++;
        t->live++;
    } else if (*slot == TOMBSTONE) {
        t->live++;
    } else {
        /* The same name, live: a client unlinked our old block itself and
         * the name came round again. The new block replaces the stale one. */
        pshm_block_free(*slot);
    }
    *slot = b;
    return 0;
}

pshm_block *owned_take(owned_table *t, const char *name)
{
    pshm_block **slot = t->cap ? owned_slot(t, name, false) : NULL;
    if (slot == NULL)
        return NULL;
    pshm_block *b = *slot;
    *slot = TOMBSTONE;
    t->live--;
    return b;
}

/* Unlink and forget every block; report each failure on stderr. */
void owned_unlink_all(owned_table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        pshm_block *b = t->slots[i];
        if (b == NULL || b == TOMBSTONE)
            continue;
        int rc = pshm_block_unlink(b);
        if (rc < 0 && rc != PSHM_ENOENT) /* ENOENT: a client removed it itself */
            fprintf(stderr, "pshm manager: %s\n", pshm_last_error());
        pshm_block_free(b);
    }
    free(t->slots);
    memset(t, 0, sizeof *t);
}

struct names_cursor {
    const owned_table *t;
    size_t i;
};

static const char *next_name(void *arg)
{
    struct names_cursor *cur = arg;
    for (;;) {
        pshm_block *b = cur->t->slots[cur->i++];
        if (b != NULL && b != TOMBSTONE)
            return b->name;
    }
}

bool owned_put_names(const owned_table *t, proto_buf *b)
{
    struct names_cursor cur = {t, 0};
    return proto_put_ok_names(b, t->live, next_name, &cur);
}
