/* ingest(): every channel's input becomes stored, deduplicated, threaded
 * history here, in one transaction per batch (see ingest.h).
 *
 * DESIGN
 * The steps for one inbound, all inside the caller's transaction:
 *
 *   1. find_existing()      (channel_id, external_id) already stored? Then
 *                           nothing changes, except that a provider edit
 *                           replaces the text and keeps the old one in meta.
 *   2. normalise_ids()      every identity through identity.c; one that does
 *                           not normalise is kept raw, unverified, unmatched.
 *   3. resolve_client()     verified identities → their clients; the oldest
 *                           (lowest id) wins; others get a merge suggestion;
 *                           none → a new client. Unclaimed identities are
 *                           attached to the winner. The client row is locked
 *                           (FOR UPDATE) so that two messages of one person
 *                           cannot open two conversations at once.
 *   4. find_conversation()  e-mail: In-Reply-To, then References, newest
 *                           first; others: the client's latest conversation
 *                           on the channel, reopened when resolved within
 *                           the reopen window, else a new one.
 *   5. insert_interaction() + attachments (content-addressed blobs) + events.
 *
 * Races are settled by unique keys, not locks on tables: a concurrent
 * creator of the same identity or the same (channel, external_id) makes our
 * INSERT fail with a duplicate key; the whole transaction is rolled back and
 * run again, and the second run finds what the winner stored. Deadlocks are
 * retried the same way. */
#include "switchboard/ingest.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/identity.h"
#include "switchboard/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Attempts for a batch that keeps losing races before we give up. */
#define INGEST_RETRIES 8

/* Characters of text carried in an interaction.created event; the client
 * fetches the rest. */
#define PREVIEW_CHARS 200

/* -- name: interaction-by-external-id */
static const char q_existing[] =
    "SELECT id, COALESCE(conversation_id, 0), COALESCE(client_id, 0), text, meta "
    "FROM interactions WHERE channel_id = ? AND external_id = ?";

/* -- name: interaction-edit
 * The previous text goes into meta.edits so an edit never loses words. */
static const char q_edit[] =
    "UPDATE interactions SET text = ?, meta = ?, flags = flags | 8 WHERE id = ?";

/* -- name: identity-owner */
static const char q_identity_owner[] =
    "SELECT client_id FROM client_identities WHERE kind = ? AND value = ?";

/* -- name: identity-insert */
static const char q_identity_insert[] =
    "INSERT INTO client_identities (client_id, kind, value, raw, verified, display_name) "
    "VALUES (?, ?, ?, ?, ?, ?)";

/* -- name: identity-unverified-exists
 * Unverified identities have no unique key (value is NULL); look before
 * adding one so that redelivered junk does not pile up rows. */
static const char q_unverified_exists[] =
    "SELECT 1 FROM client_identities WHERE client_id = ? AND kind = ? AND value IS NULL "
    "AND raw = ? LIMIT 1";

/* -- name: client-insert */
static const char q_client_insert[] = "INSERT INTO clients (name, last_activity_at) VALUES (?, ?)";

/* -- name: client-lock
 * Serialises ingests of one person (see step 3). */
static const char q_client_lock[] =
    "SELECT COALESCE(name, '') FROM clients WHERE id = ? FOR UPDATE";

/* -- name: client-touch */
static const char q_client_touch[] =
    "UPDATE clients SET last_activity_at = GREATEST(last_activity_at, ?), "
    "name = IF(name IS NULL OR name = '', ?, name) WHERE id = ?";

/* -- name: merge-suggest
 * pair_lo/pair_hi make the pair unique in either order; a pair already
 * suggested (or dismissed) is left alone. */
static const char q_merge_suggest[] =
    "INSERT IGNORE INTO merge_suggestions (client_id, other_client_id, reason) VALUES (?, ?, ?)";

/* -- name: thread-by-message-id */
static const char q_thread[] =
    "SELECT conversation_id FROM interactions WHERE message_id_hash = UNHEX(SHA2(?, 256)) "
    "AND conversation_id IS NOT NULL ORDER BY id LIMIT 1";

/* -- name: conversation-latest
 * The client's most recent conversation on this channel, whatever its
 * status; `age` decides between reopening and starting anew. */
static const char q_conv_latest[] =
    "SELECT id, status, TIMESTAMPDIFF(SECOND, last_activity_at, ?) FROM conversations "
    "WHERE client_id = ? AND channel_id = ? ORDER BY last_activity_at DESC, id DESC LIMIT 1";

/* -- name: conversation-status */
static const char q_conv_status[] = "SELECT status, client_id FROM conversations WHERE id = ?";

/* -- name: conversation-insert */
static const char q_conv_insert[] =
    "INSERT INTO conversations (client_id, channel_id, status, subject, last_activity_at, unread) "
    "VALUES (?, ?, 'open', ?, ?, ?)";

/* -- name: conversation-touch */
static const char q_conv_touch[] =
    "UPDATE conversations SET last_activity_at = GREATEST(last_activity_at, ?), "
    "unread = unread + ?, status = ?, "
    "resolved_at = IF(? = 'open', NULL, resolved_at), "
    "snoozed_until = IF(? = 'open', NULL, snoozed_until) WHERE id = ?";

/* -- name: interaction-insert */
static const char q_interaction_insert[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, "
    "external_id, message_id, in_reply_to, sender, subject, text, html, meta, flags, "
    "parse_error, raw_sha256, occurred_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* -- name: blob-insert
 * Content-addressed: the same bytes are stored once however often they arrive. */
static const char q_blob_insert[] =
    "INSERT IGNORE INTO blobs (sha256, size, data) VALUES (?, ?, ?)";

/* -- name: attachment-insert */
static const char q_attachment_insert[] =
    "INSERT INTO attachments (interaction_id, filename, content_type, size, sha256, content_id, "
    "disposition, provider_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

static const char *const direction_names[] = {"in", "out", "note"};
static const char *const kind_names[] = {"email", "message", "form", "call", "note"};

struct norm_id {
    enum sb_identity_kind kind;
    const char *raw;
    char value[SB_EMAIL_MAX + 1];
    int verified;
    int64_t owner; /* client that holds it already, 0 = unclaimed */
};

/* Upper bound on identities per inbound: a form or a vCard has a handful. */
#define MAX_IDS 16

static void format_time(int64_t us, char out[64])
{
    if (us <= 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

/* Step 1. Returns SB_OK with *found set when stored already. */
static int find_existing(struct sb_db *db, const struct sb_inbound *in,
                         struct sb_ingest_result *res, int *found, char *err, size_t errlen)
{
    *found = 0;
    if (!in->external_id)
        return SB_OK;
    struct sb_db_val a[] = {SB_INT(in->channel_id), SB_TEXT(in->external_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_existing, a, 2, &r, err, errlen);
    if (rc != SB_OK || r.nrows == 0) {
        sb_db_rows_free(&r);
        return rc;
    }
    *found = 1;
    res->duplicate = 1;
    res->interaction_id = sb_db_cell_int(&r, 0, 0);
    res->conversation_id = sb_db_cell_int(&r, 0, 1);
    res->client_id = sb_db_cell_int(&r, 0, 2);
    const char *old_text = sb_db_cell(&r, 0, 3);
    if ((in->flags & SB_IN_EDITED) && in->text && (!old_text || strcmp(old_text, in->text))) {
        json_t *meta = json_loads(sb_db_cell(&r, 0, 4) ? sb_db_cell(&r, 0, 4) : "{}", 0, NULL);
        if (!json_is_object(meta)) {
            json_decref(meta);
            meta = json_object();
        }
        json_t *edits = json_object_get(meta, "edits");
        if (!json_is_array(edits)) {
            edits = json_array();
            json_object_set_new(meta, "edits", edits);
        }
        char when[64];
        format_time(in->occurred_at_us, when);
        json_array_append_new(edits,
                              json_pack("{s:s?,s:s}", "text", old_text, "replaced_at", when));
        char *meta_text = json_dumps(meta, JSON_COMPACT);
        json_decref(meta);
        struct sb_db_val u[] = {SB_TEXT(in->text), SB_TEXT(meta_text), SB_INT(res->interaction_id)};
        rc = meta_text ? sb_db_exec(db, q_edit, u, 3, NULL, err, errlen)
                       : sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        free(meta_text);
        if (rc == SB_OK)
            rc = sb_event_append(db, "interaction.updated", res->conversation_id, res->client_id, 0,
                                 json_pack("{s:I,s:s,s:b}", "id", (json_int_t)res->interaction_id,
                                           "text", in->text, "edited", 1),
                                 err, errlen);
    }
    sb_db_rows_free(&r);
    return rc;
}

/* Step 2. */
static int normalise_ids(const struct sb_ingest_options *opt, const struct sb_inbound *in,
                         struct norm_id *ids, size_t *n_r)
{
    size_t n = 0;
    const char *region = in->region ? in->region : opt->default_region;
    for (size_t i = 0; i < in->nids && n < MAX_IDS; i++) {
        struct norm_id *id = &ids[n];
        memset(id, 0, sizeof *id);
        id->kind = in->ids[i].kind;
        id->raw = in->ids[i].raw;
        char why[128] = "";
        id->verified = sb_identity_normalize(id->kind, id->raw, region, id->value, sizeof id->value,
                                             why, sizeof why) == SB_OK;
        if (!id->verified)
            id->value[0] = '\0';
        /* The same identity twice in one inbound (a form with the phone in
         * two fields) is one identity. */
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = ids[j].kind == id->kind && ids[j].verified == id->verified &&
                  (id->verified ? !strcmp(ids[j].value, id->value) : !strcmp(ids[j].raw, id->raw));
        if (!dup)
            n++;
    }
    *n_r = n;
    return SB_OK;
}

static int add_identity(struct sb_db *db, int64_t client_id, const struct norm_id *id,
                        const char *display_name, char *err, size_t errlen)
{
    char raw[513];
    snprintf(raw, sizeof raw, "%s", id->raw); /* the column holds 512 characters at most */
    if (!id->verified) {
        struct sb_db_val e[] = {SB_INT(client_id), SB_TEXT(sb_identity_kind_name(id->kind)),
                                SB_TEXT(raw)};
        struct sb_db_rows r;
        int rc = sb_db_exec(db, q_unverified_exists, e, 3, &r, err, errlen);
        size_t exists = r.nrows;
        sb_db_rows_free(&r);
        if (rc != SB_OK || exists)
            return rc;
    }
    struct sb_db_val a[] = {SB_INT(client_id),
                            SB_TEXT(sb_identity_kind_name(id->kind)),
                            id->verified ? SB_TEXT(id->value) : SB_NULL,
                            SB_TEXT(raw),
                            SB_INT(id->verified),
                            SB_TEXT(display_name)};
    int rc = sb_db_exec(db, q_identity_insert, a, 6, NULL, err, errlen);
    /* Someone claimed it since our snapshot: run the transaction again. */
    return rc == SB_ERR_EXISTS ? SB_ERR_RETRY : rc;
}

/* Step 3. */
static int resolve_client(struct sb_db *db, const struct sb_inbound *in, struct norm_id *ids,
                          size_t nids, const char *when, struct sb_ingest_result *res, char *err,
                          size_t errlen)
{
    int64_t winner = 0;
    int rc;
    for (size_t i = 0; i < nids; i++) {
        if (!ids[i].verified)
            continue;
        struct sb_db_val a[] = {SB_TEXT(sb_identity_kind_name(ids[i].kind)), SB_TEXT(ids[i].value)};
        struct sb_db_rows r;
        rc = sb_db_exec(db, q_identity_owner, a, 2, &r, err, errlen);
        if (rc != SB_OK)
            return rc;
        ids[i].owner = r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
        sb_db_rows_free(&r);
        if (ids[i].owner && (!winner || ids[i].owner < winner))
            winner = ids[i].owner;
    }
    const char *name = in->display_name && *in->display_name ? in->display_name : NULL;
    char name_buf[256];
    if (name) { /* clients.name holds 255 characters; cut at a UTF-8 boundary */
        snprintf(name_buf, sizeof name_buf, "%s", name);
        size_t n = strlen(name_buf);
        while (n && ((unsigned char)name_buf[n - 1] & 0xC0) == 0x80)
            n--;
        if (n && (unsigned char)name_buf[n - 1] >= 0xC0 && strlen(name) > sizeof name_buf - 1)
            name_buf[n - 1] = '\0';
        name = name_buf;
    }
    if (!winner) {
        struct sb_db_val a[] = {SB_TEXT(name), SB_TEXT(when)};
        struct sb_db_rows r;
        rc = sb_db_exec(db, q_client_insert, a, 2, &r, err, errlen);
        if (rc != SB_OK)
            return rc;
        winner = (int64_t)r.insert_id;
        res->client_created = 1;
        rc = sb_event_append(db, "client.created", 0, winner, 0,
                             json_pack("{s:I,s:s?}", "id", (json_int_t)winner, "name", name), err,
                             errlen);
        if (rc != SB_OK)
            return rc;
    } else {
        struct sb_db_val a[] = {SB_INT(winner)};
        struct sb_db_rows r;
        rc = sb_db_exec(db, q_client_lock, a, 1, &r, err, errlen);
        int was_nameless = r.nrows && !*sb_db_cell(&r, 0, 0);
        sb_db_rows_free(&r);
        if (rc != SB_OK)
            return rc;
        struct sb_db_val t[] = {SB_TEXT(when), SB_TEXT(name), SB_INT(winner)};
        rc = sb_db_exec(db, q_client_touch, t, 3, NULL, err, errlen);
        if (rc == SB_OK && was_nameless && name)
            rc = sb_event_append(db, "client.updated", 0, winner, 0,
                                 json_pack("{s:I,s:s}", "id", (json_int_t)winner, "name", name),
                                 err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    res->client_id = winner;

    for (size_t i = 0; i < nids; i++) {
        if (ids[i].owner == winner && ids[i].verified)
            continue;
        if (ids[i].owner && ids[i].owner != winner) {
            /* The identity belongs to another client: leave it there and let
             * a person decide whether they are one. */
            char reason[400];
            snprintf(reason, sizeof reason, "both have %s %s", sb_identity_kind_name(ids[i].kind),
                     ids[i].value);
            struct sb_db_val m[] = {SB_INT(winner), SB_INT(ids[i].owner), SB_TEXT(reason)};
            rc = sb_db_exec(db, q_merge_suggest, m, 3, NULL, err, errlen);
        } else {
            rc = add_identity(db, winner, &ids[i], in->display_name, err, errlen);
        }
        if (rc != SB_OK)
            return rc;
    }
    return SB_OK;
}

static int conversation_status(struct sb_db *db, int64_t id, char *status, size_t len, char *err,
                               size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_conv_status, a, 1, &r, err, errlen);
    if (rc == SB_OK)
        snprintf(status, len, "%s", r.nrows ? sb_db_cell(&r, 0, 0) : "");
    sb_db_rows_free(&r);
    return rc;
}

static int thread_lookup(struct sb_db *db, const char *message_id, int64_t *conv_r, char *err,
                         size_t errlen)
{
    struct sb_db_val a[] = {SB_TEXT(message_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_thread, a, 1, &r, err, errlen);
    if (rc == SB_OK && r.nrows)
        *conv_r = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    return rc;
}

/* Step 4. */
static int find_conversation(struct sb_db *db, const struct sb_ingest_options *opt,
                             const struct sb_inbound *in, const char *when,
                             struct sb_ingest_result *res, char *err, size_t errlen)
{
    int64_t conv = 0;
    char status[16] = "";
    int rc = SB_OK;
    if (in->kind == SB_IK_EMAIL) {
        if (in->in_reply_to)
            rc = thread_lookup(db, in->in_reply_to, &conv, err, errlen);
        for (size_t i = in->nreferences; rc == SB_OK && !conv && i > 0; i--)
            rc = thread_lookup(db, in->references[i - 1], &conv, err, errlen);
        if (rc == SB_OK && conv)
            rc = conversation_status(db, conv, status, sizeof status, err, errlen);
    } else {
        struct sb_db_val a[] = {SB_TEXT(when), SB_INT(res->client_id), SB_INT(in->channel_id)};
        struct sb_db_rows r;
        rc = sb_db_exec(db, q_conv_latest, a, 3, &r, err, errlen);
        if (rc == SB_OK && r.nrows) {
            const char *st = sb_db_cell(&r, 0, 1);
            int64_t age = sb_db_cell_int(&r, 0, 2);
            if (strcmp(st, "resolved") != 0 || age <= opt->reopen_window_s) {
                conv = sb_db_cell_int(&r, 0, 0);
                snprintf(status, sizeof status, "%s", st);
            }
        }
        sb_db_rows_free(&r);
    }
    if (rc != SB_OK)
        return rc;

    int inbound = in->direction == SB_DIR_IN;
    int auto_reply = (in->flags & SB_IN_AUTO_REPLY) != 0;
    if (!conv) {
        char subject[999];
        snprintf(subject, sizeof subject, "%s", in->subject ? in->subject : "");
        struct sb_db_val a[] = {SB_INT(res->client_id), SB_INT(in->channel_id),
                                SB_TEXT(in->subject ? subject : NULL), SB_TEXT(when),
                                SB_INT(inbound && !auto_reply)};
        struct sb_db_rows r;
        rc = sb_db_exec(db, q_conv_insert, a, 5, &r, err, errlen);
        if (rc != SB_OK)
            return rc;
        res->conversation_id = (int64_t)r.insert_id;
        res->conversation_created = 1;
        return sb_event_append(
            db, "conversation.created", res->conversation_id, res->client_id, 0,
            json_pack("{s:I,s:I,s:I,s:s,s:s?}", "id", (json_int_t)res->conversation_id, "client_id",
                      (json_int_t)res->client_id, "channel_id", (json_int_t)in->channel_id,
                      "status", "open", "subject", in->subject),
            err, errlen);
    }
    res->conversation_id = conv;
    /* A client's message reopens what was resolved or snoozed; an auto-reply
     * ("I am on holiday") and our own outbound never do. */
    const char *new_status = status;
    if (inbound && !auto_reply && (!strcmp(status, "resolved") || !strcmp(status, "snoozed")))
        new_status = "open";
    struct sb_db_val a[] = {SB_TEXT(when),       SB_INT(inbound && !auto_reply),
                            SB_TEXT(new_status), SB_TEXT(new_status),
                            SB_TEXT(new_status), SB_INT(conv)};
    rc = sb_db_exec(db, q_conv_touch, a, 6, NULL, err, errlen);
    if (rc != SB_OK)
        return rc;
    return sb_event_append(db, "conversation.updated", conv, res->client_id, 0,
                           json_pack("{s:I,s:s,s:b}", "id", (json_int_t)conv, "status", new_status,
                                     "reopened", strcmp(new_status, status) != 0),
                           err, errlen);
}

static int store_blob(struct sb_db *db, const unsigned char *data, size_t len,
                      unsigned char hash[32], char *err, size_t errlen)
{
    crypto_hash_sha256(hash, data, len);
    struct sb_db_val a[] = {SB_BLOB(hash, 32), SB_INT((int64_t)len), SB_BLOB(data, len)};
    return sb_db_exec(db, q_blob_insert, a, 3, NULL, err, errlen);
}

/* Step 5. */
static int insert_interaction(struct sb_db *db, const struct sb_inbound *in, const char *when,
                              struct sb_ingest_result *res, char *err, size_t errlen)
{
    int rc;
    unsigned char raw_hash[32];
    if (in->raw && in->raw_len) {
        rc = store_blob(db, in->raw, in->raw_len, raw_hash, err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    char *meta = in->meta ? json_dumps(in->meta, JSON_COMPACT) : NULL;
    if (in->meta && !meta)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    /* Column caps (VARCHAR 998/512) are enforced here rather than failing
     * the message: a header this long is odd but still mail. */
    char subject[999], sender[513];
    snprintf(subject, sizeof subject, "%s", in->subject ? in->subject : "");
    snprintf(sender, sizeof sender, "%s", in->sender ? in->sender : "");
    struct sb_db_val a[] = {
        res->conversation_id ? SB_INT(res->conversation_id) : SB_NULL,
        res->client_id ? SB_INT(res->client_id) : SB_NULL,
        SB_INT(in->channel_id),
        SB_TEXT(direction_names[in->direction]),
        SB_TEXT(kind_names[in->kind]),
        SB_TEXT(in->external_id),
        SB_TEXT(in->message_id),
        SB_TEXT(in->in_reply_to),
        SB_TEXT(in->sender ? sender : NULL),
        SB_TEXT(in->subject ? subject : NULL),
        SB_TEXT(in->text),
        SB_TEXT(in->html),
        SB_TEXT(meta),
        SB_INT(in->flags & 0xf),
        SB_TEXT(in->parse_error),
        in->raw && in->raw_len ? SB_BLOB(raw_hash, 32) : SB_NULL,
        SB_TEXT(when),
    };
    struct sb_db_rows r;
    rc = sb_db_exec(db, q_interaction_insert, a, sizeof a / sizeof a[0], &r, err, errlen);
    free(meta);
    if (rc == SB_ERR_EXISTS)
        return SB_ERR_RETRY; /* a concurrent delivery of the same message won */
    if (rc != SB_OK)
        return rc;
    res->interaction_id = (int64_t)r.insert_id;

    for (size_t i = 0; i < in->nattachments; i++) {
        const struct sb_inbound_attachment *att = &in->attachments[i];
        unsigned char hash[32];
        if (att->data) {
            rc = store_blob(db, att->data, att->size, hash, err, errlen);
            if (rc != SB_OK)
                return rc;
        }
        struct sb_db_val b[] = {
            SB_INT(res->interaction_id),
            SB_TEXT(att->filename),
            SB_TEXT(att->content_type ? att->content_type : "application/octet-stream"),
            att->data || att->size ? SB_INT((int64_t)att->size) : SB_NULL,
            att->data ? SB_BLOB(hash, 32) : SB_NULL,
            SB_TEXT(att->content_id),
            SB_TEXT(att->inline_part ? "inline" : "attachment"),
            SB_TEXT(att->provider_ref),
        };
        rc = sb_db_exec(db, q_attachment_insert, b, 8, NULL, err, errlen);
        if (rc != SB_OK)
            return rc;
    }

    char preview[PREVIEW_CHARS * 4 + 1] = "";
    if (in->text) { /* first PREVIEW_CHARS UTF-8 characters */
        size_t bytes = 0, chars = 0, len = strlen(in->text);
        while (bytes < len && chars < PREVIEW_CHARS) {
            bytes++;
            while (bytes < len && ((unsigned char)in->text[bytes] & 0xC0) == 0x80)
                bytes++;
            chars++;
        }
        memcpy(preview, in->text, bytes);
        preview[bytes] = '\0';
    }
    json_t *flags = json_array();
    static const char *const flag_names[] = {"auto_reply", "bounce", "parse_error", "edited"};
    for (int f = 0; f < 4; f++)
        if (in->flags & (1u << f))
            json_array_append_new(flags, json_string(flag_names[f]));
    return sb_event_append(
        db, "interaction.created", res->conversation_id, res->client_id, 0,
        json_pack("{s:I,s:o,s:o,s:I,s:s,s:s,s:s?,s:s,s:o,s:s}", "id",
                  (json_int_t)res->interaction_id, "conversation_id",
                  res->conversation_id ? json_integer(res->conversation_id) : json_null(),
                  "client_id", res->client_id ? json_integer(res->client_id) : json_null(),
                  "channel_id", (json_int_t)in->channel_id, "kind", kind_names[in->kind],
                  "direction", direction_names[in->direction], "subject", in->subject, "preview",
                  preview, "flags", flags, "occurred_at", when),
        err, errlen);
}

static int validate(const struct sb_inbound *in, char *err, size_t errlen)
{
    if (in->channel_id <= 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an inbound needs its channel");
    if (!in->external_id && in->kind != SB_IK_NOTE)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an inbound needs an external id");
    if (in->external_id && strlen(in->external_id) > 255)
        return sb_fail(err, errlen, SB_ERR_INVALID, "external id longer than 255 bytes");
    if ((unsigned)in->direction > SB_DIR_NOTE || (unsigned)in->kind > SB_IK_NOTE)
        return sb_fail(err, errlen, SB_ERR_INVALID, "unknown direction or kind");
    if (in->nids > MAX_IDS)
        return sb_fail(err, errlen, SB_ERR_INVALID, "more than %d identities", MAX_IDS);
    return SB_OK;
}

static int ingest_one(struct sb_db *db, const struct sb_ingest_options *opt,
                      const struct sb_inbound *in, struct sb_ingest_result *res, char *err,
                      size_t errlen)
{
    memset(res, 0, sizeof *res);
    int found;
    int rc = find_existing(db, in, res, &found, err, errlen);
    if (rc != SB_OK || found)
        return rc;
    char when[64];
    format_time(in->occurred_at_us, when);
    if (!(in->flags & SB_IN_BOUNCE)) {
        struct norm_id ids[MAX_IDS];
        size_t nids;
        normalise_ids(opt, in, ids, &nids);
        rc = resolve_client(db, in, ids, nids, when, res, err, errlen);
        if (rc == SB_OK)
            rc = find_conversation(db, opt, in, when, res, err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    return insert_interaction(db, in, when, res, err, errlen);
}

int sb_ingest_batch(struct sb_db *db, const struct sb_ingest_options *opt,
                    const struct sb_inbound *const *in, size_t n, struct sb_ingest_result *res,
                    char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int rc = validate(in[i], err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    int rc = SB_OK;
    for (int attempt = 0; attempt < INGEST_RETRIES; attempt++) {
        char msg[512] = "";
        rc = sb_db_begin(db, msg, sizeof msg);
        for (size_t i = 0; rc == SB_OK && i < n; i++)
            rc = ingest_one(db, opt, in[i], &res[i], msg, sizeof msg);
        if (rc == SB_OK) {
            rc = sb_db_commit(db, msg, sizeof msg);
            if (rc == SB_OK)
                return SB_OK;
        } else {
            sb_db_rollback(db);
        }
        if (rc != SB_ERR_RETRY)
            return sb_fail(err, errlen, rc, "%s", msg);
        /* Lost a race: back off a little, with jitter so the losers of one
         * collision do not collide again. */
        usleep((useconds_t)(1000 + randombytes_uniform(4000) * (unsigned)(attempt + 1)));
    }
    return sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                   "ingest kept conflicting; gave up after %d tries", INGEST_RETRIES);
}

int sb_ingest(struct sb_db *db, const struct sb_ingest_options *opt, const struct sb_inbound *in,
              struct sb_ingest_result *res, char *err, size_t errlen)
{
    return sb_ingest_batch(db, opt, &in, 1, res, err, errlen);
}
