/* The campaign sender: delivers running campaigns' recipients over SMTP.
 *
 * The recipient rows are the send jobs (campaign.h, schema/004): a driver
 * thread with its own database connection claims due rows in batches
 * (status sending, a random claim token, a lease), and N worker threads each
 * keep one libcurl easy handle — so one SMTP connection, reused from message
 * to message — render the template for their recipient, compose the message
 * (mailcompose.h) and submit it. Results go back to the driver, which writes
 * every result it has in one transaction (a group commit): the recipient row
 * to sent WHERE the claim token still matches, and in the same transaction
 * the recipient's own conversation and outbound interaction with the
 * message's Message-ID, so a reply threads to that recipient alone.
 *
 * Exactly once: a row is sent only by the claim that owns it and is marked
 * sent in the transaction that records the result. Between the SMTP
 * server's acceptance and that commit (a writer round), a crash would leave
 * the row leased and unrecorded; the send journal (send_journal.h) covers
 * it: a line per message, written just before the end of data is handed to
 * the connection. At start, and every second after, the journals of dead
 * processes on this host are read and their still-leased rows recorded as
 * sent (through the writer's own code) before anything is claimed. What
 * stays: a kill -9 in the microseconds between the line and the end of data
 * (that message is lost), a power loss (the page cache goes: at-least-once),
 * and another host taking over a dead node's rows (it cannot see the
 * journal: at-least-once). A message sent twice carries the same
 * Message-ID, derived from the campaign and recipient.
 *
 * Pacing: a campaign's rate_per_second spaces its messages evenly over all
 * connections. Pause, resume and cancel are read from the campaigns table
 * every SB_CAMP_REFRESH_MS: claimed rows not yet handed to SMTP go back to
 * queued, messages in flight finish and are recorded.
 *
 * Threads: sb_campaign_sender_start/stop from the server's thread; all else
 * on the sender's own threads. */
#ifndef SB_CAMPAIGN_SEND_H
#define SB_CAMPAIGN_SEND_H

#include <stddef.h>
#include <stdint.h>

struct sb_db_params;
struct sb_campaign_sender;

#define SB_CAMP_REFRESH_MS   250 /* campaign status changes take effect this fast */
#define SB_CAMP_LEASE_S      60  /* a claimed row is another node's after this */
#define SB_CAMP_BATCH        256 /* rows claimed at once (fewer under a rate cap) */
#define SB_CAMP_ATTEMPTS_MAX 5   /* temporary SMTP failures, then the row fails */
#define SB_CAMP_RETRY_S      30  /* first retry; doubles per attempt */

struct sb_campaign_sender_options {
    const struct sb_db_params *db;
    const unsigned char *secret_key; /* 32 bytes; NULL: campaigns cannot be sent */
    const char *public_url;          /* base of unsubscribe, view and tracking links */
    int connections;                 /* parallel SMTP connections */
    int lease_s;                     /* 0: SB_CAMP_LEASE_S */
    const char *journal_dir;         /* the send journal (send_journal.h); NULL: none */
    size_t journal_rotate_bytes;     /* 0: SB_JOURNAL_ROTATE_BYTES */
};

int sb_campaign_sender_start(const struct sb_campaign_sender_options *opt,
                             struct sb_campaign_sender **cs_r, char *err, size_t errlen);
void sb_campaign_sender_stop(struct sb_campaign_sender **cs);

/* Build one recipient's message exactly as the sender does (preview, test
 * sends, the view-in-browser page). Fields are borrowed; outputs malloc'd. */
struct sb_camp_render_in {
    const unsigned char *key; /* the tracking key (sb_camp_key) */
    const char *public_url;
    int64_t campaign_id, recipient_id; /* 0, 0: a preview or test (links marked so) */
    const char *subject, *html, *text;
    const char *name, *email;
    const char *custom_json;
    int track; /* rewrite links and add the open pixel */
};
struct sb_camp_render_out {
    char *subject, *html, *text;
    char unsubscribe_url[1024];
};
int sb_camp_render(const struct sb_camp_render_in *in, struct sb_camp_render_out *out, char *err,
                   size_t errlen);
void sb_camp_render_free(struct sb_camp_render_out *out);

#endif
