/* Channels: the adapter contract (DESIGN.md, "Channel adapter contract") and
 * the stored channel a request or poller works with.
 *
 * An adapter only translates: provider input in, struct sb_inbound out, and
 * a queued message in, a provider call out (send_prepare / send_result
 * below). It never touches SQL, never runs a transfer and never decides
 * identity or threading: ingest and the sender (sender.h) do. Each kind is one file in
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

/* -- Sending ------------------------------------------------------------------
 * The sender thread drives every transfer through one libcurl multi handle,
 * so an adapter never performs I/O: send_prepare describes one transfer in a
 * struct sb_send_req (an HTTP request, or an SMTP submission for smtp(s)://
 * URLs), the sender runs it, and send_result reads the answer into a struct
 * sb_send_result. Network failures never reach send_result: the sender
 * treats them as retryable itself. */

/* A file sent with a message (an agent's upload, see attachments.h): the
 * sender reads the bytes before send_prepare. Borrowed. */
struct sb_out_file {
    const char *filename;     /* cleaned, UTF-8 */
    const char *content_type; /* from attachments.h's list */
    const unsigned char *data;
    size_t len;
};

/* One queued message, as the sender hands it to an adapter. Borrowed for the
 * duration of the call. */
struct sb_outbound {
    int64_t outbox_id;
    int64_t interaction_id;
    const char *to;   /* recipient: Telegram chat id, wa_id, Viber user id, e-mail address */
    const char *text; /* plain text body */
    /* The outbox row's whole payload, for what only some kinds use (e-mail:
     * "subject", "html", "in_reply_to", "references", "message_id"). */
    const json_t *payload;
    /* Files to send with the text (kinds flagged SB_CH_SEND_FILES). */
    const struct sb_out_file *files;
    size_t nfiles;
};

#define SB_SEND_HEADERS_MAX 16
#define SB_SEND_RCPT_MAX    16

/* One transfer, curl-like and explicit. Zero-initialise, then fill; the
 * sender frees it with sb_send_req_free(). */
struct sb_send_req {
    char url[2048]; /* https://…, http://… (tests), smtp://…, smtps://…, imap(s):// (APPEND) */
    const char *method;                 /* NULL: POST when there is a body, GET otherwise */
    char *headers[SB_SEND_HEADERS_MAX]; /* "Name: value" lines, malloc'd */
    size_t nheaders;
    char *body; /* malloc'd; the upload for SMTP (the whole RFC 5322 message) */
    size_t body_len;
    /* SMTP only: the envelope and credentials. */
    char *mail_from;
    char *rcpt[SB_SEND_RCPT_MAX];
    size_t nrcpt;
    char *username, *password;
    int require_tls;   /* STARTTLS must succeed (CURLUSESSL_ALL) */
    int tls_no_verify; /* accept any certificate (a relay with a self-signed one) */
    long timeout_s;    /* 0: the sender's default (30 s) */
    size_t max_answer; /* 0: 64 KiB; a larger answer fails the transfer (downloads raise it) */
};

/* Helpers for adapters; each returns SB_OK or SB_ERR_NOMEM / SB_ERR_TOO_LARGE. */
int sb_send_req_header(struct sb_send_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The body as compact JSON with Content-Type: application/json; `body` is
 * borrowed. */
int sb_send_req_json(struct sb_send_req *req, const json_t *body);
int sb_send_req_rcpt(struct sb_send_req *req, const char *address);
void sb_send_req_free(struct sb_send_req *req);

enum sb_send_outcome {
    SB_SEND_OK,     /* accepted by the provider: external_id says under which id */
    SB_SEND_RETRY,  /* temporary (429, 5xx, SMTP 4xx): try again later */
    SB_SEND_FAILED, /* permanent (bad recipient, blocked, 4xx): error says why */
};

struct sb_send_result {
    enum sb_send_outcome outcome;
    char external_id[256]; /* the provider's id of the message, for status webhooks */
    char error[512];       /* the provider's reason, shown to agents */
    int retry_after_s;     /* for SB_SEND_RETRY: the provider's wish; 0 = our backoff */
};

/* The common reading of an HTTP answer, for adapters to start from: 2xx OK,
 * 408/429/5xx retry (Retry-After honoured, in seconds or as an HTTP date),
 * other statuses failed with "HTTP <status>". */
void sb_send_result_http(long status, const char *retry_after, struct sb_send_result *res);

/* Fetching a file the provider holds (a Telegram file_id) is a chain of
 * transfers: fetch_step is called with step 0 and no answer first, then with
 * each answer in turn. It either fills `req` for the next transfer and sets
 * *more_r = 1, or sets *more_r = 0 and the outcome in `res`: SB_SEND_OK
 * means the last answer's body is the file. */
struct sb_fetch_step {
    const char *provider_ref;
    int step;
    long status; /* of the previous transfer; 0 on step 0 */
    const char *body;
    size_t len;
    const char *retry_after;
};

enum sb_channel_flags {
    SB_CH_POLLS = 1 << 0,      /* runs a poller thread (IMAP) */
    SB_CH_WEBHOOK = 1 << 1,    /* takes POST /hooks/{kind}/{id} */
    SB_CH_SENDS = 1 << 2,      /* can deliver replies */
    SB_CH_SEND_FILES = 1 << 3, /* send_prepare sends sb_outbound.files */
    /* Sends one file per message by a public link the provider downloads:
     * payload "files": [{"url", "filename", "content_type", "size"}]. */
    SB_CH_SEND_FILE_LINKS = 1 << 4,
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
    /* Describe the transfer that delivers `msg` (URL, headers, body; for
     * e-mail an SMTP envelope and message). SB_ERR_INVALID with `err` when
     * the message cannot be sent at all (no recipient, text too long): the
     * job fails permanently. NULL when the kind cannot send. */
    int (*send_prepare)(struct sb_channel *ch, const struct sb_outbound *msg,
                        struct sb_send_req *req, char *err, size_t errlen);
    /* Read the provider's answer: `body` is NUL-terminated, `retry_after`
     * the Retry-After header or NULL. For SMTP `http_status` is the last
     * SMTP reply code (250 when accepted); a refusal (550 to RCPT TO, 452
     * to DATA…) also arrives here, with curl's message as `body`, so the
     * adapter decides: 5xx SB_SEND_FAILED, 4xx SB_SEND_RETRY. Transfers
     * that got no answer at all never reach send_result (always retried). */
    int (*send_result)(struct sb_channel *ch, const struct sb_outbound *msg, long http_status,
                       const char *body, size_t len, const char *retry_after,
                       struct sb_send_result *res);
    /* After a message was accepted and recorded as sent: an optional
     * follow-up transfer (e-mail: IMAP APPEND of the sent message to the
     * Sent folder). `sent` is the request that was sent (its body is the
     * message). Returns 1 with `req` filled, 0 for none. Best effort: its
     * outcome is only logged, and a crash in between loses it. NULL when
     * the kind has none. */
    int (*after_send)(struct sb_channel *ch, const struct sb_outbound *msg,
                      const struct sb_send_req *sent, struct sb_send_req *req);
    /* Fetch a provider-held attachment (see struct sb_fetch_step); NULL
     * when the kind has none to fetch. */
    int (*fetch_step)(struct sb_channel *ch, const struct sb_fetch_step *st,
                      struct sb_send_req *req, struct sb_send_result *res, int *more_r);
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
