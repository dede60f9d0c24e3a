/* struct sb_inbound (see inbound.h). Its strings live in an arena (arena.h):
 * an inbound is short-lived (one request, one message), so this trades a
 * little slack for "free once, on every path". */
#include "switchboard/inbound.h"
#include "switchboard/arena.h"
#include "switchboard/err.h"

#include <stdlib.h>
#include <string.h>

struct sb_inbound *sb_inbound_new(void)
{
    struct sb_inbound *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->arena = calloc(1, sizeof *in->arena);
    if (!in->arena) {
        free(in);
        return NULL;
    }
    in->direction = SB_DIR_IN;
    return in;
}

void sb_inbound_free(struct sb_inbound **inp)
{
    struct sb_inbound *in = *inp;
    if (!in)
        return;
    sb_arena_free(in->arena);
    free(in->arena);
    free(in->ids);
    free(in->references);
    free(in->attachments);
    json_decref(in->meta);
    free(in);
    *inp = NULL;
}

void *sb_inbound_memdup(struct sb_inbound *in, const void *p, size_t n)
{
    if (!p)
        return NULL;
    void *d = sb_arena_alloc(in->arena, n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

const char *sb_inbound_strndup(struct sb_inbound *in, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = sb_arena_alloc(in->arena, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

const char *sb_inbound_strdup(struct sb_inbound *in, const char *s)
{
    return s ? sb_inbound_strndup(in, s, strlen(s)) : NULL;
}

/* Grow one of the inbound's arrays; they live on the heap, not in the arena,
 * because they are resized. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return SB_OK;
    size_t ncap = *cap ? *cap * 2 : 4;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*arr, ncap * elem);
    if (!n)
        return SB_ERR_NOMEM;
    *arr = n;
    *cap = ncap;
    return SB_OK;
}

int sb_inbound_add_identity(struct sb_inbound *in, enum sb_identity_kind kind, const char *raw)
{
    if (!raw)
        return SB_ERR_INVALID;
    const char *copy = sb_inbound_strdup(in, raw);
    if (!copy || grow((void **)&in->ids, &in->ids_cap, in->nids + 1, sizeof *in->ids) != SB_OK)
        return SB_ERR_NOMEM;
    in->ids[in->nids++] = (struct sb_inbound_identity){kind, copy};
    return SB_OK;
}

int sb_inbound_add_reference(struct sb_inbound *in, const char *message_id)
{
    size_t cap = in->nreferences; /* references grow one by one; rare and short */
    const char *copy = sb_inbound_strdup(in, message_id);
    if (!copy ||
        grow((void **)&in->references, &cap, in->nreferences + 1, sizeof *in->references) != SB_OK)
        return SB_ERR_NOMEM;
    in->references[in->nreferences++] = copy;
    return SB_OK;
}

int sb_inbound_add_attachment(struct sb_inbound *in, const struct sb_inbound_attachment *att)
{
    struct sb_inbound_attachment a = *att;
    a.filename = sb_inbound_strdup(in, att->filename);
    a.content_type = sb_inbound_strdup(in, att->content_type);
    a.content_id = sb_inbound_strdup(in, att->content_id);
    a.provider_ref = sb_inbound_strdup(in, att->provider_ref);
    a.data = att->data ? sb_inbound_memdup(in, att->data, att->size) : NULL;
    if ((att->filename && !a.filename) || (att->content_type && !a.content_type) ||
        (att->content_id && !a.content_id) || (att->provider_ref && !a.provider_ref) ||
        (att->data && !a.data))
        return SB_ERR_NOMEM;
    if (grow((void **)&in->attachments, &in->attachments_cap, in->nattachments + 1,
             sizeof *in->attachments) != SB_OK)
        return SB_ERR_NOMEM;
    in->attachments[in->nattachments++] = a;
    return SB_OK;
}
