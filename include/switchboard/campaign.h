/* E-mail campaigns: segments, the campaign state machine, signed link tokens,
 * unsubscribes and tracking (docs/campaigns.md). The sending itself is
 * campaign_send.h.
 *
 * States (one function moves them, sb_campaign_transition):
 *
 *     draft --start--> scheduled --(send_at reached, by the driver)--> running
 *     draft --start (no send_at or due)--> running
 *     running --pause--> paused --resume--> running
 *     running --(no recipient left to send)--> finished   (driver)
 *     draft|scheduled|running|paused --cancel--> cancelled
 *
 * Starting materialises the recipients in the same transaction
 * (INSERT … SELECT from the segment, UNIQUE(campaign, client), suppressed
 * addresses left out) and snapshots the template into the campaign row.
 * A scheduled campaign is made again on every edit (sb_campaign_refresh).
 * An illegal move is SB_ERR_EXISTS (HTTP 409, "conflict") with the reason.
 *
 * Tokens are compact base64url strings (44 characters): kind, campaign id,
 * recipient id and a 128-bit HMAC-SHA256 tag; for clicks the tag also covers
 * the target URL, so the redirect goes only where the token says. The key is derived from
 * security.secret_key (crypto_kdf, its own context), checked in constant
 * time. */
#ifndef SB_CAMPAIGN_H
#define SB_CAMPAIGN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

enum sb_camp_token_kind {
    SB_TOK_UNSUB = 'u',
    SB_TOK_OPEN = 'o',
    SB_TOK_CLICK = 'c',
    SB_TOK_VIEW = 'v',
    /* A file's public link (/f/TOKEN, attachments.h): the "campaign id" is
     * the attachment id, the "recipient id" the link's expiry (Unix time). */
    SB_TOK_FILE = 'f'
};

#define SB_CAMP_TOKEN_MAX 48 /* 33 bytes in base64url */

/* The tracking key from the master secret key. */
void sb_camp_key(const unsigned char master[32], unsigned char key[32]);

/* base64url token into out (NUL-terminated). A click token's tag also
 * covers `url`, which travels beside it (/t/c/TOKEN?u=URL): the redirect
 * goes only to the URL the token was made for. */
int sb_camp_token_make(const unsigned char key[32], int kind, int64_t campaign_id,
                       int64_t recipient_id, const char *url, char *out, size_t outlen);
/* SB_OK and the ids when the token is intact, of `kind`, and (clicks) made
 * for `url`; SB_ERR_INVALID otherwise. Constant-time tag comparison. */
int sb_camp_token_check(const unsigned char key[32], int kind, const char *token, const char *url,
                        int64_t *campaign_id_r, int64_t *recipient_id_r);

/* -- Segments ------------------------------------------------------------ */

/* A filter read from JSON into bound parameters. Keys: tag, custom (object
 * of exact values), channel_id (channel of the first conversation),
 * identity_kind, created_after, created_before, active_after,
 * active_before (ISO dates), has_email. Unknown keys are refused. */
struct sb_segment_filter {
    char tag[101];
    char *custom; /* JSON text or NULL */
    int64_t channel_id;
    char identity_kind[16];
    char created_after[32], created_before[32], active_after[32], active_before[32];
};
int sb_segment_filter_parse(const json_t *filter, struct sb_segment_filter *f, char *err,
                            size_t errlen);
void sb_segment_filter_free(struct sb_segment_filter *f);
/* Clients the filter selects that have a deliverable (verified, not
 * suppressed) e-mail address. */
int sb_segment_count(struct sb_db *db, const struct sb_segment_filter *f, int64_t *count_r,
                     char *err, size_t errlen);

/* -- Campaign state ------------------------------------------------------ */

enum sb_camp_action { SB_CAMP_START, SB_CAMP_PAUSE, SB_CAMP_RESUME, SB_CAMP_CANCEL };

/* Apply an action; *status_r is the new status. SB_ERR_NOT_FOUND, or
 * SB_ERR_EXISTS (HTTP 409) with the reason when the move is illegal from
 * the current status. Runs its own transaction. */
int sb_campaign_transition(struct sb_db *db, int64_t campaign_id, enum sb_camp_action action,
                           char *status_r, size_t statuslen, char *err, size_t errlen);
/* After an edit of a scheduled campaign, of its segment or of its template:
 * a scheduled campaign has sent nothing, so its recipients and its copy of
 * the template are made again from what the segment and template are now
 * (and a campaign.updated event written). Any other status is left alone:
 * from running on, what the campaign sends never changes. Locks the
 * campaign row; runs inside the caller's transaction. */
int sb_campaign_refresh(struct sb_db *db, int64_t campaign_id, char *err, size_t errlen);

/* {"recipients", "queued", "sending", "sent", "failed", "skipped", "cancelled",
 *  "bounced_hard", "bounced_soft", "complaints", "opened", "clicked",
 *  "unsubscribed", "hourly": [{"hour", "sent", "opened", "clicked",
 *  "unsubscribed"}…]} */
int sb_campaign_stats(struct sb_db *db, int64_t campaign_id, json_t **stats_r, char *err,
                      size_t errlen);

/* -- Public links -------------------------------------------------------- */

/* Suppress the recipient's address (reason unsubscribe), stamp the row,
 * record the tracking row and an event; idempotent. */
int sb_campaign_unsubscribe(struct sb_db *db, int64_t campaign_id, int64_t recipient_id, char *err,
                            size_t errlen);
/* Record an open or a click (url). SB_ERR_NOT_FOUND when the recipient is
 * not of that campaign. */
int sb_campaign_track(struct sb_db *db, int64_t campaign_id, int64_t recipient_id, int kind,
                      const char *url, char *err, size_t errlen);

/* A bounce report for one of our messages: mark the recipient whose
 * Message-ID it names (hard, soft or complaint). In the caller's
 * transaction; nothing happens when no campaign message has that id. */
int sb_campaign_bounce(struct sb_db *db, const char *original_message_id, const char *cls,
                       char *err, size_t errlen);

#endif
