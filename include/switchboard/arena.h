/* A bump allocator for short-lived groups of objects (one inbound, one
 * import batch): allocations are never freed one by one; sb_arena_free()
 * releases them all, so every path frees everything with one call. */
#ifndef SB_ARENA_H
#define SB_ARENA_H

#include <stddef.h>

struct sb_arena_block;

struct sb_arena {
    struct sb_arena_block *head;
    size_t block; /* bytes per block; 0 = 8 KiB */
};

/* Memory aligned for any type; NULL when out of memory. */
void *sb_arena_alloc(struct sb_arena *a, size_t n);
/* A NUL-terminated copy of n bytes of s; NULL when out of memory. */
char *sb_arena_strndup(struct sb_arena *a, const char *s, size_t n);
void sb_arena_free(struct sb_arena *a);

#endif
