/* The outbox: durable send jobs (DESIGN.md, "Outbox"), the SQL side of the
 * sender.
 *
 * A job is enqueued in the same transaction as the change that wants it sent
 * (an agent's reply and its outbound interaction), so a message is never
 * stored without its job nor sent without its message. A sender claims due
 * jobs by stamping its claim token and a lease (claimed_until) on them;
 * every result is written only WHERE the token still matches, so a sender
 * whose lease ran out and was taken over can no longer write. A crash leaves
 * jobs leased; once the lease passes, any sender claims them again. The
 * provider may therefore see a message twice after a crash at the wrong
 * moment, but our rows never double: one interaction, one job.
 *
 * Job kinds: "reply" (payload {"to", "text", …}, sent through the channel's
 * send_prepare/send_result) and "fetch" (payload {"attachment_id",
 * "provider_ref"}: download a provider-held attachment). Other modules may
 * add kinds and run their own claimers with their own kind lists. */
#ifndef SB_OUTBOX_H
#define SB_OUTBOX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

#define SB_OUTBOX_TOKEN_LEN 16

/* A claimed job. Free with sb_outbox_jobs_free(). */
struct sb_outbox_job {
    int64_t id;
    char kind[33];
    int64_t channel_id;
    int64_t interaction_id;             /* 0 when none */
    int64_t conversation_id, client_id; /* of the interaction, for events; 0 when none */
    json_t *payload;                    /* {} when the stored payload was not JSON (bad_payload) */
    int bad_payload;
    int attempts; /* including the one just claimed */
};

/* Enqueue a job in the caller's transaction. With an idempotency key that is
 * already taken, nothing is added and SB_ERR_EXISTS is returned with
 * *existing_interaction_r set to that job's interaction (the enqueue of a
 * double-click). `payload` is borrowed. */
int sb_outbox_enqueue(struct sb_db *db, const char *kind, int64_t channel_id,
                      int64_t interaction_id, const json_t *payload, const char *idempotency_key,
                      int64_t *job_id_r, int64_t *existing_interaction_r, char *err, size_t errlen);

/* The interaction of the job with this idempotency key; 0 when none. */
int sb_outbox_find_key(struct sb_db *db, const char *idempotency_key, int64_t *interaction_id_r,
                       char *err, size_t errlen);

/* Claim up to `max` due jobs whose kind is in `kinds` (comma-separated):
 * queued ones whose time has come, then leased ones whose lease has run out.
 * Each claim counts as an attempt. */
int sb_outbox_claim(struct sb_db *db, const char *kinds, const unsigned char *token, int lease_s,
                    size_t max, struct sb_outbox_job **jobs_r, size_t *n_r, char *err,
                    size_t errlen);
void sb_outbox_jobs_free(struct sb_outbox_job **jobs, size_t n);

/* Results. Each writes only while `token` still owns the job; *owned_r
 * says whether it did (0: another sender took over, nothing was written).
 * Replies also move their interaction's delivery status and append an
 * interaction.updated event, in the same transaction. */
int sb_outbox_sent(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                   const char *external_id, int *owned_r, char *err, size_t errlen);
int sb_outbox_retry(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                    int64_t delay_ms, const char *error, int *owned_r, char *err, size_t errlen);
int sb_outbox_failed(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                     const char *error, int *owned_r, char *err, size_t errlen);
/* Like failed, for a job that cannot even be read (its payload): status
 * 'quarantined', kept for an admin, never deleted. */
int sb_outbox_quarantine(struct sb_db *db, const struct sb_outbox_job *job,
                         const unsigned char *token, const char *error, int *owned_r, char *err,
                         size_t errlen);
/* A fetch job's bytes: stored as a content-addressed blob, linked to the
 * attachment, the job marked sent. */
int sb_outbox_fetched(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                      const void *data, size_t len, int *owned_r, char *err, size_t errlen);

/* An agent's "retry" of a failed reply, in the caller's transaction: the
 * interaction (of that conversation) goes back to queued, its reply job to
 * queued with a fresh attempt count. *done_r = 0 when there is no failed
 * reply with a job to retry (nothing is changed then). */
int sb_outbox_requeue_reply(struct sb_db *db, int64_t conversation_id, int64_t interaction_id,
                            int *done_r, char *err, size_t errlen);

/* The largest file one blob INSERT can store on this server
 * (max_allowed_packet less room for the statement); 15 MiB when the server
 * will not say. Fetches are capped to it. */
void sb_outbox_blob_max(struct sb_db *db, size_t *max_r);

/* Enqueue a "fetch" job for every attachment that has a provider_ref and no
 * bytes yet, on channels whose kind is in `kinds`, past *watermark_r (an
 * attachment id; advanced past what was seen). Idempotent: one job per
 * attachment, whichever node sweeps. *added_r counts new jobs. */
int sb_outbox_sweep_fetches(struct sb_db *db, const char *kinds, int64_t *watermark_r,
                            size_t *added_r, char *err, size_t errlen);

#endif
