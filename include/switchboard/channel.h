/* Channels: the adapter contract (DESIGN.md, "Channel adapter contract") and
 * the stored channel a request or poller works with.
 *
 * An adapter only translates: provider input in, struct sb_inbound out (and,
 * later, a queued message in, a provider call out). It never touches SQL and
 * never decides identity or threading; ingest does. Each kind is one file in
 * channels/ exporting one struct sb_channel_kind, listed in channels/kinds.c
 * (cf. curl's protocol handler table). A hook that does not apply is NULL. */
#ifndef SB_CHANNEL_H
#define SB_CHANNEL_H

#include "switchboard/http.h"
#include "switchboard/inbound.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_channel;

/* What webhook parsing hands to ingest: owned inbounds, stored in one
 * transaction. */
/* A provider's word on one of our outbound messages (WhatsApp statuses,
 * Viber delivered/seen/failed). */
enum sb_delivery { SB_DELIVERY_SENT, SB_DELIVERY_DELIVERED, SB_DELIVERY_READ, SB_DELIVERY_FAILED };

struct sb_status_update {
    char external_id[256]; /* the provider's id of our message */
    enum sb_delivery status;
    char error[256]; /* for failed: the provider's reason */
};

struct sb_inbound_batch {
    struct sb_inbound **items;
    size_t n, cap;
    struct sb_status_update *statuses;
    size_t nstatuses, statuses_cap;
};

int sb_inbound_batch_add_status(struct sb_inbound_batch *b, const struct sb_status_update *st);

/* Takes ownership of `in` (freed on failure too). */
int sb_inbound_batch_add(struct sb_inbound_batch *b, struct sb_inbound *in);
void sb_inbound_batch_free(struct sb_inbound_batch *b);

enum sb_channel_flags {
    SB_CH_POLLS = 1 << 0,   /* runs a poller thread (IMAP) */
    SB_CH_WEBHOOK = 1 << 1, /* takes POST /hooks/{kind}/{id} */
    SB_CH_SENDS = 1 << 2,   /* can deliver replies */
};

struct sb_channel_kind {
    const char *name; /* "telegram", "webform", ... */
    unsigned flags;
    /* Config keys that are secrets: encrypted at rest, never returned by
     * the API. NULL-terminated. */
    const char *const *secret_keys;
    /* Check a configuration before it is stored; fill defaults into `cfg`. */
    int (*validate_config)(json_t *cfg, char *err, size_t errlen);
    /* Verify and parse one webhook request. SB_OK with zero or more
     * inbounds (a status ping may carry none); SB_ERR_UNAUTHORIZED when the
     * signature or secret is wrong (nothing is stored); SB_ERR_INVALID when
     * the verified body cannot be understood (it is quarantined raw and the
     * provider gets 200). `reply` may be set for provider-specific answers;
     * otherwise the core answers {"ok":true}. */
    int (*on_webhook)(struct sb_channel *ch, const struct sb_http_request *req,
                      struct sb_inbound_batch *out, struct sb_http_reply *reply, char *err,
                      size_t errlen);
    /* GET /hooks/{kind}/{id}: a provider's subscription check (WhatsApp's
     * hub.challenge). Fills `reply`; NULL when the kind has none. */
    int (*on_verify)(struct sb_channel *ch, const struct sb_http_request *req,
                     struct sb_http_reply *reply);
    /* `switchboard channel webhook ID --url URL`: tell the provider where to
     * post (Telegram setWebhook with our secret_token, Viber set_webhook).
     * Blocking; CLI only. */
    int (*set_webhook)(struct sb_channel *ch, const char *url, char *msg, size_t msglen);
    /* `switchboard channel test`: check the provider credentials. */
    int (*test)(struct sb_channel *ch, char *msg, size_t msglen);
};

/* A stored channel with its configuration decrypted (secrets in memory
 * only). Owned by whoever loaded it; free with sb_channel_free(). */
struct sb_channel {
    int64_t id;
    const struct sb_channel_kind *kind;
    char name[101];
    char public_key[65];
    int enabled;
    json_t *config;
};

/* The kind table (channels/kinds.c). */
const struct sb_channel_kind *sb_channel_kind_find(const char *name);
extern const struct sb_channel_kind *const sb_channel_kinds[];

/* A config value as a string, or NULL. */
const char *sb_channel_conf(const struct sb_channel *ch, const char *key);

void sb_channel_free(struct sb_channel **ch);

#endif
