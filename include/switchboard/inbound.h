/* struct sb_inbound: one normalised interaction, as a channel adapter hands
 * it to ingest (DESIGN.md, "Data flow").
 *
 * Every string in an inbound lives in the inbound's own arena: an adapter
 * copies provider text in with sb_inbound_strdup() and never frees a field;
 * sb_inbound_free() releases everything at once. Fields an adapter does not
 * know stay NULL/0. Identities are raw as the provider gave them; ingest
 * normalises them (an adapter never decides what a phone number is). */
#ifndef SB_INBOUND_H
#define SB_INBOUND_H

#include "switchboard/identity.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum sb_direction { SB_DIR_IN, SB_DIR_OUT, SB_DIR_NOTE };
enum sb_ikind { SB_IK_EMAIL, SB_IK_MESSAGE, SB_IK_FORM, SB_IK_CALL, SB_IK_NOTE };

/* interactions.flags bits, in the order of the SQL SET. */
enum sb_inbound_flags {
    SB_IN_AUTO_REPLY = 1 << 0,  /* vacation/auto-responder: stored, does not reopen */
    SB_IN_BOUNCE = 1 << 1,      /* delivery report: no client, no conversation */
    SB_IN_PARSE_ERROR = 1 << 2, /* kept raw; parse_error says why */
    SB_IN_EDITED = 1 << 3,      /* a provider edit of an already stored message */
};

/* A phone the provider gives as international digits without '+' (a
 * WhatsApp wa_id, a Telegram contact) is added with the '+' in front, so it
 * never depends on the default region. */
struct sb_inbound_identity {
    enum sb_identity_kind kind;
    const char *raw;
};

struct sb_inbound_attachment {
    const char *filename;
    const char *content_type;
    const char *content_id; /* inline images: the cid without <> */
    int inline_part;
    const unsigned char *data; /* NULL when only provider_ref is known yet */
    size_t size;
    const char *provider_ref; /* e.g. a Telegram file_id to fetch later */
};

struct sb_inbound {
    int64_t channel_id;
    const char *external_id; /* unique per channel; the idempotency key */
    enum sb_ikind kind;
    enum sb_direction direction;
    int64_t occurred_at_us; /* microseconds since the epoch; 0 = now */
    const char *display_name;
    const char *region; /* default region for phones; NULL = configuration's */

    struct sb_inbound_identity *ids;
    size_t nids, ids_cap;

    const char *subject, *text, *html;
    const char *sender; /* as shown: "Анна Смирнова <anna@…>", "@anna" */

    /* threading hints */
    const char *message_id;  /* without <> */
    const char *in_reply_to; /* without <> */
    const char **references; /* oldest first, without <> */
    size_t nreferences;
    const char *chat_id; /* provider conversation/chat id */

    struct sb_inbound_attachment *attachments;
    size_t nattachments, attachments_cap;

    json_t *meta; /* provider details worth keeping; owned by the inbound */
    unsigned flags;
    const char *parse_error;
    const unsigned char *raw; /* the provider's bytes, stored content-addressed */
    size_t raw_len;

    struct sb_arena *arena;
};

/* A new, empty inbound; NULL when out of memory. */
struct sb_inbound *sb_inbound_new(void);
void sb_inbound_free(struct sb_inbound **in);

/* Copy into the inbound's arena; NULL in → NULL out. NULL on allocation
 * failure too, which callers treat as SB_ERR_NOMEM. */
const char *sb_inbound_strdup(struct sb_inbound *in, const char *s);
const char *sb_inbound_strndup(struct sb_inbound *in, const char *s, size_t n);
void *sb_inbound_memdup(struct sb_inbound *in, const void *p, size_t n);

int sb_inbound_add_identity(struct sb_inbound *in, enum sb_identity_kind kind, const char *raw);
int sb_inbound_add_reference(struct sb_inbound *in, const char *message_id);
int sb_inbound_add_attachment(struct sb_inbound *in, const struct sb_inbound_attachment *att);

#endif
