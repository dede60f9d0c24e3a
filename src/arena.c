/* Bump allocation in blocks (see arena.h). */
#include "switchboard/arena.h"

#include <stdlib.h>
#include <string.h>

struct sb_arena_block {
    struct sb_arena_block *next;
    size_t used, cap;
    max_align_t data[]; /* aligned for anything */
};

void *sb_arena_alloc(struct sb_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct sb_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t want = a->block ? a->block : 8192;
        size_t cap = n > want ? n : want;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

char *sb_arena_strndup(struct sb_arena *a, const char *s, size_t n)
{
    char *d = sb_arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void sb_arena_free(struct sb_arena *a)
{
    while (a->head) {
        struct sb_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}
