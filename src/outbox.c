/* The outbox: durable send jobs (see outbox.h). */
#include "switchboard/outbox.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- name: outbox-enqueue */
static const char q_enqueue[] =
    "INSERT INTO outbox (kind, channel_id, interaction_id, payload, idempotency_key) "
    "VALUES (?, ?, ?, ?, ?)";
/* -- name: outbox-find-key */
static const char q_find_key[] =
    "SELECT COALESCE(interaction_id, 0) FROM outbox WHERE idempotency_key = ?";

/* -- name: outbox-claim-due
 * Oldest due first, one kind at a time so the (kind, status,
 * next_attempt_at) index bounds the scan. The row locks of this UPDATE keep
 * two senders (two nodes) from claiming one job: the second one re-reads the
 * row after the first commits and no longer finds it queued. */
static const char q_claim_due[] =
    "UPDATE outbox SET status = 'sending', claim_token = ?, "
    "claimed_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, attempts = attempts + 1 "
    "WHERE kind = ? AND status = 'queued' AND next_attempt_at <= UTC_TIMESTAMP(6) "
    "ORDER BY next_attempt_at LIMIT ?";
/* -- name: outbox-claim-expired
 * Jobs of a sender that died (or lost its database) holding them. */
static const char q_claim_expired[] =
    "UPDATE outbox SET claim_token = ?, "
    "claimed_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, attempts = attempts + 1 "
    "WHERE kind = ? AND status = 'sending' AND claimed_until < UTC_TIMESTAMP(6) "
    "ORDER BY claimed_until LIMIT ?";
/* -- name: outbox-claimed */
static const char q_claimed[] =
    "SELECT o.id, o.kind, o.channel_id, COALESCE(o.interaction_id, 0), o.payload, o.attempts, "
    "COALESCE(i.conversation_id, 0), COALESCE(i.client_id, 0) FROM outbox o "
    "LEFT JOIN interactions i ON i.id = o.interaction_id WHERE o.claim_token = ? ORDER BY o.id";

/* -- name: outbox-sent */
static const char q_sent[] =
    "UPDATE outbox SET status = 'sent', sent_at = UTC_TIMESTAMP(6), claim_token = NULL, "
    "claimed_until = NULL, last_error = NULL WHERE id = ? AND claim_token = ?";
/* -- name: outbox-retry */
static const char q_retry[] =
    "UPDATE outbox SET status = 'queued', claim_token = NULL, claimed_until = NULL, "
    "last_error = ?, next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND "
    "WHERE id = ? AND claim_token = ?";
/* -- name: outbox-failed (status 'failed' or 'quarantined') */
static const char q_failed[] =
    "UPDATE outbox SET status = ?, claim_token = NULL, claimed_until = NULL, "
    "last_error = ? WHERE id = ? AND claim_token = ?";

/* -- name: interaction-sent
 * A status webhook may already have moved it further; never backwards. */
static const char q_interaction_sent[] =
    "UPDATE interactions SET external_id = ?, occurred_at = UTC_TIMESTAMP(6), "
    "delivery_status = IF(delivery_status IN ('none', 'queued'), 'sent', delivery_status) "
    "WHERE id = ?";
/* -- name: interaction-sent-keep-id
 * The provider's id is already taken on this channel (a provider reusing
 * ids): keep it in meta rather than lose the send. */
static const char q_interaction_sent_meta[] =
    "UPDATE interactions SET meta = JSON_SET(COALESCE(meta, '{}'), '$.provider_message_id', ?), "
    "delivery_status = IF(delivery_status IN ('none', 'queued'), 'sent', delivery_status) "
    "WHERE id = ?";
/* -- name: interaction-failed */
static const char q_interaction_failed[] =
    "UPDATE interactions SET delivery_status = 'failed', "
    "meta = JSON_SET(COALESCE(meta, '{}'), '$.delivery_error', ?) "
    "WHERE id = ? AND delivery_status NOT IN ('delivered', 'read')";

/* -- name: blob-put */
static const char q_blob_put[] =
    "INSERT INTO blobs (sha256, size, data) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE size = size";
/* -- name: attachment-fetched */
static const char q_attachment_fetched[] =
    "UPDATE attachments SET sha256 = ?, size = ? WHERE id = ? AND sha256 IS NULL";

/* -- name: fetch-candidates
 * Attachments past the watermark still waiting for their bytes. */
static const char q_fetch_candidates[] =
    "SELECT a.id, i.channel_id, a.interaction_id, a.provider_ref FROM attachments a "
    "JOIN interactions i ON i.id = a.interaction_id JOIN channels c ON c.id = i.channel_id "
    "WHERE a.id > ? AND a.sha256 IS NULL AND a.provider_ref IS NOT NULL "
    "AND FIND_IN_SET(c.kind, ?) ORDER BY a.id LIMIT ?";
static const char q_attachments_max[] = "SELECT COALESCE(MAX(id), 0) FROM attachments";
/* -- name: fetch-enqueue (one job per attachment, whoever sweeps) */
static const char q_fetch_enqueue[] =
    "INSERT INTO outbox (kind, channel_id, interaction_id, payload, idempotency_key) "
    "VALUES ('fetch', ?, ?, JSON_OBJECT('attachment_id', ?, 'provider_ref', ?), ?) "
    "ON DUPLICATE KEY UPDATE id = id";

/* -- name: reply-requeue-interaction */
static const char q_requeue_interaction[] =
    "UPDATE interactions SET delivery_status = 'queued', meta = JSON_REMOVE(meta, "
    "'$.delivery_error') WHERE id = ? AND conversation_id = ? AND direction = 'out' AND "
    "delivery_status = 'failed'";
/* -- name: reply-requeue-job
 * 'sent' too: the provider accepted it, then reported it failed. */
static const char q_requeue_job[] =
    "UPDATE outbox SET status = 'queued', attempts = 0, next_attempt_at = UTC_TIMESTAMP(6), "
    "last_error = NULL, claim_token = NULL, claimed_until = NULL "
    "WHERE interaction_id = ? AND kind = 'reply' AND status IN ('failed', 'sent', 'quarantined')";

static const char q_packet[] = "SELECT @@max_allowed_packet";

#define SWEEP_BATCH 100

int sb_outbox_enqueue(struct sb_db *db, const char *kind, int64_t channel_id,
                      int64_t interaction_id, const json_t *payload, const char *idempotency_key,
                      int64_t *job_id_r, int64_t *existing_interaction_r, char *err, size_t errlen)
{
    *job_id_r = 0;
    *existing_interaction_r = 0;
    char *text = json_dumps(payload, JSON_COMPACT);
    if (!text)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct sb_db_val a[] = {SB_TEXT(kind), SB_INT(channel_id),
                            interaction_id ? SB_INT(interaction_id) : SB_NULL, SB_TEXT(text),
                            SB_TEXT(idempotency_key)};
    struct sb_db_rows r;
    char dberr[256] = "";
    int rc = sb_db_exec(db, q_enqueue, a, 5, &r, dberr, sizeof dberr);
    free(text);
    if (rc == SB_OK) {
        *job_id_r = (int64_t)r.insert_id;
        sb_db_rows_free(&r);
        return SB_OK;
    }
    sb_db_rows_free(&r);
    if (rc == SB_ERR_EXISTS && idempotency_key) {
        int rc2 = sb_outbox_find_key(db, idempotency_key, existing_interaction_r, err, errlen);
        return rc2 == SB_OK ? SB_ERR_EXISTS : rc2;
    }
    return sb_fail(err, errlen, rc, "enqueue: %s", dberr);
}

int sb_outbox_find_key(struct sb_db *db, const char *idempotency_key, int64_t *interaction_id_r,
                       char *err, size_t errlen)
{
    *interaction_id_r = 0;
    struct sb_db_val a[] = {SB_TEXT(idempotency_key)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_find_key, a, 1, &r, err, errlen);
    if (rc == SB_OK && r.nrows)
        *interaction_id_r = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    return rc;
}

int sb_outbox_claim(struct sb_db *db, const char *kinds, const unsigned char *token, int lease_s,
                    size_t max, struct sb_outbox_job **jobs_r, size_t *n_r, char *err,
                    size_t errlen)
{
    *jobs_r = NULL;
    *n_r = 0;
    struct sb_db_rows r;
    uint64_t got = 0;
    int rc = SB_OK;
    /* Each kind in turn, due jobs before expired claims, until `max`. */
    for (const char *const *q = (const char *const[]){q_claim_due, q_claim_expired, NULL};
         *q && rc == SB_OK && got < max; q++) {
        for (const char *k = kinds; *k && rc == SB_OK && got < max;) {
            size_t n = strcspn(k, ",");
            char kind[33];
            snprintf(kind, sizeof kind, "%.*s", (int)(n < 32 ? n : 32), k);
            k += n + (k[n] == ',');
            struct sb_db_val a[] = {SB_BLOB(token, SB_OUTBOX_TOKEN_LEN), SB_INT(lease_s),
                                    SB_TEXT(kind), SB_INT(max - got)};
            rc = sb_db_exec(db, *q, a, 4, &r, err, errlen);
            got += rc == SB_OK ? r.affected : 0;
            sb_db_rows_free(&r);
        }
    }
    /* Jobs already claimed are read back even when the second claim
     * failed: left alone they would wait out their lease. */
    if (!got)
        return rc;
    struct sb_db_val t[] = {SB_BLOB(token, SB_OUTBOX_TOKEN_LEN)};
    rc = sb_db_exec(db, q_claimed, t, 1, &r, err, errlen);
    if (rc != SB_OK) {
        sb_db_rows_free(&r);
        return rc;
    }
    struct sb_outbox_job *jobs = r.nrows ? calloc(r.nrows, sizeof *jobs) : NULL;
    if (r.nrows && !jobs) {
        sb_db_rows_free(&r);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < r.nrows; i++) {
        struct sb_outbox_job *j = &jobs[i];
        j->id = sb_db_cell_int(&r, i, 0);
        snprintf(j->kind, sizeof j->kind, "%s", sb_db_cell(&r, i, 1) ? sb_db_cell(&r, i, 1) : "");
        j->channel_id = sb_db_cell_int(&r, i, 2);
        j->interaction_id = sb_db_cell_int(&r, i, 3);
        const char *p = sb_db_cell(&r, i, 4);
        j->payload = p ? json_loads(p, 0, NULL) : NULL;
        if (!json_is_object(j->payload)) {
            json_decref(j->payload);
            j->payload = json_object();
            j->bad_payload = 1;
        }
        j->attempts = (int)sb_db_cell_int(&r, i, 5);
        j->conversation_id = sb_db_cell_int(&r, i, 6);
        j->client_id = sb_db_cell_int(&r, i, 7);
    }
    *jobs_r = jobs;
    *n_r = r.nrows;
    sb_db_rows_free(&r);
    return SB_OK;
}

void sb_outbox_jobs_free(struct sb_outbox_job **jobs, size_t n)
{
    if (!*jobs)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref((*jobs)[i].payload);
    free(*jobs);
    *jobs = NULL;
}

/* Run `sql` (ending in "id = ? AND claim_token = ?") inside the open
 * transaction; *owned_r = 1 when it touched the job. */
static int job_update(struct sb_db *db, const char *sql, struct sb_db_val *args, size_t nargs,
                      int *owned_r, char *err, size_t errlen)
{
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, args, nargs, &r, err, errlen);
    *owned_r = rc == SB_OK && r.affected == 1;
    sb_db_rows_free(&r);
    return rc;
}

static int finish(struct sb_db *db, int rc, int owned, char *err, size_t errlen)
{
    if (rc == SB_OK && owned)
        return sb_db_commit(db, err, errlen);
    sb_db_rollback(db);
    return rc;
}

static int delivery_event(struct sb_db *db, const struct sb_outbox_job *job, json_t *data,
                          char *err, size_t errlen)
{
    return sb_event_append(db, "interaction.updated", job->conversation_id, job->client_id, 0, data,
                           err, errlen);
}

int sb_outbox_sent(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                   const char *external_id, int *owned_r, char *err, size_t errlen)
{
    *owned_r = 0;
    struct sb_db_val a[] = {SB_INT(job->id), SB_BLOB(token, SB_OUTBOX_TOKEN_LEN)};
    int rc = sb_db_begin(db, err, errlen);
    if (rc == SB_OK)
        rc = job_update(db, q_sent, a, 2, owned_r, err, errlen);
    if (rc == SB_OK && *owned_r && job->interaction_id) {
        const char *ext = external_id && *external_id ? external_id : NULL;
        struct sb_db_val b[] = {SB_TEXT(ext), SB_INT(job->interaction_id)};
        char dberr[256] = "";
        rc = sb_db_exec(db, q_interaction_sent, b, 2, NULL, dberr, sizeof dberr);
        if (rc == SB_ERR_EXISTS) {
            sb_warn("outbox",
                    "job %lld: provider id %s already taken on channel %lld; kept in meta",
                    (long long)job->id, ext, (long long)job->channel_id);
            rc = sb_db_exec(db, q_interaction_sent_meta, b, 2, NULL, err, errlen);
        } else if (rc != SB_OK) {
            sb_fail(err, errlen, rc, "%s", dberr);
        }
        if (rc == SB_OK)
            rc = delivery_event(db, job,
                                json_pack("{s:I,s:s,s:s?}", "id", (json_int_t)job->interaction_id,
                                          "delivery_status", "sent", "external_id", ext),
                                err, errlen);
    }
    return finish(db, rc, *owned_r, err, errlen);
}

int sb_outbox_retry(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                    int64_t delay_ms, const char *error, int *owned_r, char *err, size_t errlen)
{
    *owned_r = 0;
    struct sb_db_val a[] = {SB_TEXT(error), SB_INT(delay_ms * 1000), SB_INT(job->id),
                            SB_BLOB(token, SB_OUTBOX_TOKEN_LEN)};
    return job_update(db, q_retry, a, 4, owned_r, err, errlen);
}

static int failed_as(struct sb_db *db, const char *status, const struct sb_outbox_job *job,
                     const unsigned char *token, const char *error, int *owned_r, char *err,
                     size_t errlen)
{
    *owned_r = 0;
    struct sb_db_val a[] = {SB_TEXT(status), SB_TEXT(error), SB_INT(job->id),
                            SB_BLOB(token, SB_OUTBOX_TOKEN_LEN)};
    int rc = sb_db_begin(db, err, errlen);
    if (rc == SB_OK)
        rc = job_update(db, q_failed, a, 4, owned_r, err, errlen);
    if (rc == SB_OK && *owned_r && job->interaction_id && strcmp(job->kind, "fetch")) {
        struct sb_db_rows r;
        struct sb_db_val b[] = {SB_TEXT(error), SB_INT(job->interaction_id)};
        rc = sb_db_exec(db, q_interaction_failed, b, 2, &r, err, errlen);
        int changed = rc == SB_OK && r.affected;
        sb_db_rows_free(&r);
        if (changed)
            rc = delivery_event(db, job,
                                json_pack("{s:I,s:s,s:s}", "id", (json_int_t)job->interaction_id,
                                          "delivery_status", "failed", "error", error),
                                err, errlen);
    }
    return finish(db, rc, *owned_r, err, errlen);
}

int sb_outbox_failed(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                     const char *error, int *owned_r, char *err, size_t errlen)
{
    return failed_as(db, "failed", job, token, error, owned_r, err, errlen);
}

int sb_outbox_quarantine(struct sb_db *db, const struct sb_outbox_job *job,
                         const unsigned char *token, const char *error, int *owned_r, char *err,
                         size_t errlen)
{
    return failed_as(db, "quarantined", job, token, error, owned_r, err, errlen);
}

int sb_outbox_fetched(struct sb_db *db, const struct sb_outbox_job *job, const unsigned char *token,
                      const void *data, size_t len, int *owned_r, char *err, size_t errlen)
{
    *owned_r = 0;
    unsigned char sum[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(sum, data, len);
    json_int_t att = json_integer_value(json_object_get(job->payload, "attachment_id"));
    struct sb_db_val a[] = {SB_INT(job->id), SB_BLOB(token, SB_OUTBOX_TOKEN_LEN)};
    struct sb_db_val b[] = {SB_BLOB(sum, sizeof sum), SB_INT(len), SB_BLOB(data, len)};
    struct sb_db_val c[] = {SB_BLOB(sum, sizeof sum), SB_INT(len), SB_INT(att)};
    int rc = sb_db_begin(db, err, errlen);
    if (rc == SB_OK)
        rc = job_update(db, q_sent, a, 2, owned_r, err, errlen);
    if (rc == SB_OK && *owned_r)
        rc = sb_db_exec(db, q_blob_put, b, 3, NULL, err, errlen);
    if (rc == SB_OK && *owned_r)
        rc = sb_db_exec(db, q_attachment_fetched, c, 3, NULL, err, errlen);
    if (rc == SB_OK && *owned_r)
        rc = delivery_event(db, job,
                            json_pack("{s:I,s:I,s:I}", "id", (json_int_t)job->interaction_id,
                                      "attachment_id", att, "attachment_size", (json_int_t)len),
                            err, errlen);
    return finish(db, rc, *owned_r, err, errlen);
}

int sb_outbox_requeue_reply(struct sb_db *db, int64_t conversation_id, int64_t interaction_id,
                            int *done_r, char *err, size_t errlen)
{
    *done_r = 0;
    struct sb_db_val a[] = {SB_INT(interaction_id), SB_INT(conversation_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_requeue_interaction, a, 2, &r, err, errlen);
    int changed = rc == SB_OK && r.affected == 1;
    sb_db_rows_free(&r);
    if (!changed)
        return rc;
    rc = sb_db_exec(db, q_requeue_job, a, 1, &r, err, errlen);
    *done_r = rc == SB_OK && r.affected == 1;
    sb_db_rows_free(&r);
    return rc;
}

void sb_outbox_blob_max(struct sb_db *db, size_t *max_r)
{
    char err[256] = "";
    struct sb_db_rows r;
    *max_r = 15u << 20; /* below MariaDB's default of 16 MiB */
    if (sb_db_exec(db, q_packet, NULL, 0, &r, err, sizeof err) == SB_OK && r.nrows) {
        int64_t packet = sb_db_cell_int(&r, 0, 0);
        if (packet > (2 << 20))
            *max_r = (size_t)(packet - (1 << 20)); /* room for the statement */
    }
    sb_db_rows_free(&r);
}

int sb_outbox_sweep_fetches(struct sb_db *db, const char *kinds, int64_t *watermark_r,
                            size_t *added_r, char *err, size_t errlen)
{
    *added_r = 0;
    struct sb_db_rows m, r;
    /* Read the top first: whatever arrives meanwhile is past it and is
     * found by the next sweep. */
    int rc = sb_db_exec(db, q_attachments_max, NULL, 0, &m, err, errlen);
    int64_t top = rc == SB_OK && m.nrows ? sb_db_cell_int(&m, 0, 0) : 0;
    sb_db_rows_free(&m);
    if (rc != SB_OK || top <= *watermark_r)
        return rc;
    struct sb_db_val a[] = {SB_INT(*watermark_r), SB_TEXT(kinds), SB_INT(SWEEP_BATCH)};
    rc = sb_db_exec(db, q_fetch_candidates, a, 3, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    for (size_t i = 0; rc == SB_OK && i < r.nrows; i++) {
        char key[64];
        snprintf(key, sizeof key, "fetch:%lld", (long long)sb_db_cell_int(&r, i, 0));
        struct sb_db_val b[] = {SB_INT(sb_db_cell_int(&r, i, 1)), SB_INT(sb_db_cell_int(&r, i, 2)),
                                SB_INT(sb_db_cell_int(&r, i, 0)), SB_TEXT(sb_db_cell(&r, i, 3)),
                                SB_TEXT(key)};
        struct sb_db_rows ins;
        rc = sb_db_exec(db, q_fetch_enqueue, b, 5, &ins, err, errlen);
        if (rc == SB_OK && ins.affected == 1)
            (*added_r)++;
        sb_db_rows_free(&ins);
        if (rc == SB_OK)
            *watermark_r = sb_db_cell_int(&r, i, 0);
    }
    /* A full batch may have more behind it; otherwise everything up to
     * `top` has been seen. */
    if (rc == SB_OK && r.nrows < SWEEP_BATCH && top > *watermark_r)
        *watermark_r = top;
    sb_db_rows_free(&r);
    return rc;
}
