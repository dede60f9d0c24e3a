/* ingest(): every channel's input becomes stored, deduplicated, threaded
 * history here, in one transaction per batch (see ingest.h).
 *
 * DESIGN
 * A batch costs a fixed handful of statements, whatever its size: one round
 * trip per step per inbound (ten or so each) held ingest to a few hundred
 * messages a second, far below what the storage takes. Every statement gets
 * the rows of the whole batch as ONE JSON parameter and expands it on the
 * server with JSON_TABLE, so the SQL text stays a constant prepared
 * statement. What the one-by-one version decided between statements is
 * decided here in C, walking the inbounds in order over what the statements
 * returned plus what earlier inbounds of the same batch did (a new client,
 * an identity, a conversation, a message id): each inbound sees the earlier
 * ones exactly as if they had been stored one at a time, and the stored
 * rows, their ids' order and the events are the same.
 *
 *   1. read_state()         one SELECT: stored interactions by (channel_id,
 *                           external_id); the owners of the verified
 *                           identities (normalised in C by identity.c); the
 *                           conversations of the In-Reply-To and References
 *                           message ids (hashed in C).
 *   2. find_stored()        (C) a (channel, external_id) stored already or
 *                           earlier in the batch is a duplicate: nothing
 *                           changes, except that a provider edit replaces
 *                           the text and keeps the old one in meta.edits.
 *   3. resolve_clients()    (C) verified identities → their owners, the
 *                           database's or the batch's; the oldest (lowest
 *                           id; new ones are younger than all) wins, other
 *                           owners get a merge suggestion; none → a new
 *                           client. Unclaimed identities go to the winner;
 *                           one that does not normalise is kept raw,
 *                           unverified, never matched.
 *   4. store_clients()      one SELECT reads the existing winners, their
 *                           names and their conversations on the inbounds'
 *                           channels, without a lock (see Locks); one
 *                           INSERT … RETURNING id creates the new clients,
 *                           one INSERT adds their identities.
 *   5. place_conversations() (C) e-mail: In-Reply-To, then References,
 *                           newest first; others: the client's latest
 *                           conversation on the channel, reopened when
 *                           resolved within the reopen window, else a new
 *                           one. Then one INSERT … RETURNING id opens the new
 *                           ones.
 *   6. store_interactions() one INSERT … RETURNING (chunked by size), then
 *                           per item the rare parts: raw bytes and
 *                           attachments (content-addressed blobs), edits of
 *                           interactions stored before the batch.
 *   7. verify_locks()       the SELECT of step 4 again, FOR UPDATE, and
 *                           lock_threads() the e-mail threads touched; then
 *                           update_clients() and touch_conversations(): one
 *                           UPDATE touches the stored winners, one INSERT
 *                           adds the identities they gain, one INSERT IGNORE
 *                           the merge suggestions (when any), one UPDATE
 *                           applies each touched conversation's changes,
 *                           summed.
 *   8. store_events()       one INSERT … RETURNING, rows in the order the
 *                           one-by-one version appended them, so event ids
 *                           increase with the changes. After the lock: the
 *                           live tailer (ws.c) waits only ~2 s for an event
 *                           id taken but not yet committed.
 *
 * A typical batch is thus 9 to 11 statements (step 4's rows are read twice,
 * unlocked and locked) plus BEGIN and COMMIT. The
 * transaction runs at READ COMMITTED: each statement reads what is committed
 * when it runs (the locking read of step 7 relies on it) and searches take
 * no gap locks, which would make batches of unrelated clients wait on each
 * other.
 *
 * LOCKS
 * Two batches of one person must not both open a conversation on one
 * channel, nor decide on a status the other changed. The client rows (with
 * their conversations) serialise them. A lock is held to the commit, so it
 * is taken as late as it can be: step 7, after the interactions, the
 * biggest part of the work. (Taken at step 4, it made four workers at 1,000
 * busy clients wait on each other ~44% of their time.) Step 7 reads the
 * rows of step 4 again, now locked, and compares what the batch decided by
 * (lock_digest(): which conversations there are, their status, which is the
 * latest, whether the client was merged away; not the last activity of one
 * that stays the latest, which every message moves and no decision rests
 * on), and locks the e-mail threads it touches, whose status must not have
 * moved either. When another batch changed any of it, the transaction runs
 * again, and that run locks at step 4, as it would likely lose again
 * otherwise.
 *
 * Nothing before step 7 may take a shared lock on a stored client's or
 * conversation's row, as the lock would then have to upgrade it and two
 * batches doing so deadlock. A foreign key check takes one on the parent
 * row, hence: interactions declare no foreign keys to their client and
 * conversation (schema/011_ingest_late_lock.sql); a stored client's new
 * identities and merge suggestions are stored after the lock; and a batch
 * that may open a conversation for a stored client (its first message on
 * a channel; may_open_for_stored()) locks at step 4.
 *
 * INSERT … SELECT inserts in the order the SELECT yields, and RETURNING
 * reports rows as inserted, so the n-th row returned is the n-th row sent:
 * the code checks the count, ascending ids and every key it can see, and
 * fails the batch (SB_ERR_INTERNAL) rather than mix rows up.
 *
 * JSON carries only UTF-8 (MariaDB would store bad bytes as '?' without a
 * word), so text that is not UTF-8 fails the batch with SB_ERR_INVALID,
 * where the utf8mb4 column refused it before ("Incorrect string value");
 * where the old statements stored it only sometimes (an unverified identity
 * already there), that identity goes by the old statements.
 *
 * Races are settled by unique keys, not locks on tables: a concurrent
 * creator of the same identity or the same (channel, external_id) makes our
 * INSERT fail with a duplicate key; the whole transaction is rolled back and
 * run again, and the second run finds what the winner stored. Deadlocks are
 * retried the same way. */
#include "switchboard/ingest.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/identity.h"
#include "switchboard/notify.h"

#include <sodium.h>
#include <pthread.h>
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

/* Upper bound on identities per inbound: a form or a vCard has a handful. */
#define MAX_IDS 16

/* A statement's JSON parameter is flushed past this size, so a batch of
 * large mails never nears max_allowed_packet (16 MiB by default). */
#define CHUNK_BYTES (2u << 20)

/* New clients and conversations get ids above every stored one, in the
 * order they are made: this orders them after all stored ones. */
#define NEW_ORDER (INT64_C(1) << 62)

/* -- name: ingest-read-state
 * One round trip for everything the batch needs to know first (step 1);
 * rows are tagged by part. The JSON_TABLE columns carry the collation of
 * the indexed columns they are compared with (utf8mb4_bin values), so the
 * keys are used (EXPLAIN: eq_ref on uq_interactions_channel_external and
 * uq_client_identities_kind_value, ref on ix_interactions_message_id_hash).
 * The owners' conversations are read later (step 4). */
#define READ_STORED                                                                                \
    "SELECT 'e', j.o, i.id, COALESCE(i.conversation_id, 0), COALESCE(i.client_id, 0), i.text, "    \
    "i.meta, NULL, NULL "                                                                          \
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, ch BIGINT UNSIGNED PATH '$[0]', "        \
    "ext VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]')) j "                  \
    "JOIN interactions i ON i.channel_id = j.ch AND i.external_id = j.ext "
#define READ_OWNERS                                                                                \
    "SELECT 'o', j.o, ci.client_id, NULL, NULL, NULL, NULL, NULL, NULL "                           \
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, "                                        \
    "kind VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$[0]', "              \
    "value VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[1]')) j "                \
    "JOIN client_identities ci ON ci.kind = j.kind AND ci.value = j.value "
#define READ_THREADS                                                                               \
    "SELECT 't', j.o, NULL, v.id, v.client_id, v.channel_id, v.status, v.last_activity_at, "       \
    "COALESCE(v.assignee_id, 0) "                                                                  \
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, "                                        \
    "h CHAR(64) CHARACTER SET ascii PATH '$[0]')) j "                                              \
    "JOIN conversations v ON v.id = (SELECT i.conversation_id FROM interactions i "                \
    "FORCE INDEX (ix_interactions_message_id_hash) "                                               \
    "WHERE i.message_id_hash = UNHEX(j.h) AND i.conversation_id IS NOT NULL "                      \
    "ORDER BY i.id LIMIT 1)"
static const char q_read_state[] = READ_STORED "UNION ALL " READ_OWNERS "UNION ALL " READ_THREADS;

/* -- name: ingest-read-state-no-mail
 * The same without the thread part, for batches without e-mail: an empty
 * JSON_TABLE still costs the server a tenth of a millisecond. */
static const char q_read_state_no_mail[] = READ_STORED "UNION ALL " READ_OWNERS;

/* -- name: client-read-batch
 * The existing winners, ids ascending, each with its conversations on the
 * channels its inbounds came by (ch 0: none): what the batch decides by
 * (step 4). Not locking: the same rows are read again under lock at the
 * end (client-lock-batch) and must still say the same. STRAIGHT_JOIN keeps
 * the JSON rows the driving table: exactly those rows, in that order. */
#define CLIENT_READ                                                                                \
    "SELECT c.id, COALESCE(c.name, ''), v.id, v.client_id, v.channel_id, v.status, "               \
    "v.last_activity_at, COALESCE(v.assignee_id, 0), c.last_activity_at, "                         \
    "COALESCE(c.merged_into, 0) "                                                                  \
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (cl BIGINT UNSIGNED PATH '$[0]', "                          \
    "ch BIGINT UNSIGNED PATH '$[1]')) j "                                                          \
    "STRAIGHT_JOIN clients c ON c.id = j.cl "                                                      \
    "LEFT JOIN conversations v FORCE INDEX (ix_conversations_client_channel_status) "              \
    "ON v.client_id = j.cl AND v.channel_id = j.ch"
static const char q_client_read[] = CLIENT_READ;

/* -- name: client-lock-batch
 * Serialises the ends of two batches of one person (step 7): ids ascending,
 * so that two batches cannot deadlock on them. Being a locking read, it sees
 * what the previous holder committed; under READ COMMITTED it locks only
 * the rows it returns (no gap locks). */
static const char q_client_lock[] = CLIENT_READ " FOR UPDATE";

/* -- name: conversation-lock-batch
 * The stored conversations the batch touches that the client lock does not
 * cover (e-mail threads), ids ascending. */
static const char q_conv_lock[] =
    "SELECT v.id, v.client_id, v.channel_id, v.status, v.last_activity_at, "
    "COALESCE(v.assignee_id, 0) "
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) j "
    "STRAIGHT_JOIN conversations v ON v.id = j.id FOR UPDATE";

/* -- name: ingest-isolation
 * For the next transaction only. Each statement then reads what was
 * committed when it ran, and the locking read above takes no gap locks:
 * under REPEATABLE READ it would lock the index gaps next to each client's
 * conversations and make batches of unrelated clients wait on each other.
 * (With the binary log on, binlog_format must be MIXED, the default, or ROW.) */
static const char q_isolation[] = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED";

/* -- name: client-touch-batch
 * `name` is the first display name of the batch's inbounds for that client:
 * it fills an empty name, as the first of them would have. */
static const char q_client_touch[] =
    "UPDATE JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$[0]', "
    "at VARCHAR(32) PATH '$[1]', name VARCHAR(255) CHARACTER SET utf8mb4 PATH '$[2]')) j "
    "STRAIGHT_JOIN clients c ON c.id = j.id "
    "SET c.last_activity_at = GREATEST(c.last_activity_at, j.at), "
    "c.name = IF(c.name IS NULL OR c.name = '', j.name, c.name)";

/* -- name: client-insert-batch */
static const char q_client_insert[] =
    "INSERT INTO clients (name, last_activity_at) SELECT j.name, j.at "
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, "
    "name VARCHAR(255) CHARACTER SET utf8mb4 PATH '$[0]', at VARCHAR(32) PATH '$[1]')) j "
    "ORDER BY j.o RETURNING id";

/* display_name is stored uncut, as always: the column here is wider than
 * the table's, so a longer one fails the insert instead of being cut. */
#define IDENTITY_INSERT                                                                            \
    "INSERT INTO client_identities (client_id, kind, value, raw, verified, display_name) "         \
    "SELECT j.client_id, j.kind, j.value, j.raw, j.verified, j.display_name "                      \
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, "                                        \
    "client_id BIGINT UNSIGNED PATH '$[0]', "                                                      \
    "kind VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$[1]', "              \
    "value VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[2]', "                   \
    "raw VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci PATH '$[3]', "              \
    "verified INT PATH '$[4]', "                                                                   \
    "display_name VARCHAR(1024) CHARACTER SET utf8mb4 PATH '$[5]')) j "

/* -- name: identity-insert */
static const char q_identity_insert_one[] =
    "INSERT INTO client_identities (client_id, kind, value, raw, verified, display_name) "
    "VALUES (?, ?, ?, ?, ?, ?)";

/* -- name: identity-unverified-exists */
static const char q_unverified_exists[] =
    "SELECT 1 FROM client_identities WHERE client_id = ? AND kind = ? AND value IS NULL "
    "AND raw = ? LIMIT 1";

/* -- name: identity-insert-batch */
static const char q_identity_insert[] = IDENTITY_INSERT "ORDER BY j.o";

/* -- name: identity-insert-unverified-batch
 * Unverified identities have no unique key (value is NULL); one already
 * stored for the client (compared as the column compares) is not added
 * again, so that redelivered junk does not pile up rows. Rows of one
 * statement never share (client, kind) among the unverified: the statement
 * would not see its own earlier rows. */
static const char q_identity_insert_unverified[] =
    IDENTITY_INSERT "WHERE j.verified = 1 OR NOT EXISTS (SELECT 1 FROM client_identities x "
                    "WHERE x.client_id = j.client_id AND x.kind = j.kind AND x.value IS NULL "
                    "AND x.raw = j.raw) ORDER BY j.o";

/* -- name: merge-suggest-batch
 * pair_lo/pair_hi make the pair unique in either order; a pair already
 * suggested (or dismissed) is left alone. */
static const char q_merge_suggest[] =
    "INSERT IGNORE INTO merge_suggestions (client_id, other_client_id, reason) "
    "SELECT j.a, j.b, j.reason FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, "
    "a BIGINT UNSIGNED PATH '$[0]', b BIGINT UNSIGNED PATH '$[1]', "
    "reason VARCHAR(400) CHARACTER SET utf8mb4 PATH '$[2]')) j ORDER BY j.o";

/* The batch's inbound (from a person) and outbound times of a conversation
 * (struct vslot): first and last inbound, last outbound, and `w`, the first
 * inbound after the batch's last outbound (the first inbound when none). */
#define CONV_TIMES                                                                                 \
    "fi DATETIME(6) PATH '$[5]', li DATETIME(6) PATH '$[6]', lo DATETIME(6) PATH '$[7]', "         \
    "w DATETIME(6) PATH '$[8]'"

/* -- name: conversation-insert-batch */
static const char q_conv_insert[] =
    "INSERT INTO conversations (client_id, channel_id, status, subject, last_activity_at, unread, "
    "first_inbound_at, last_inbound_at, last_outbound_at, waiting_since) "
    "SELECT j.client_id, j.channel_id, 'open', j.subject, j.at, j.unread, j.fi, j.li, j.lo, j.w "
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (o FOR ORDINALITY, client_id BIGINT UNSIGNED PATH '$[0]', "
    "channel_id BIGINT UNSIGNED PATH '$[1]', "
    "subject VARCHAR(998) CHARACTER SET utf8mb4 PATH '$[2]', at VARCHAR(32) PATH '$[3]', "
    "unread INT PATH '$[4]', " CONV_TIMES ")) j ORDER BY j.o RETURNING id, client_id, channel_id";

/* -- name: conversation-touch-batch
 * One row per conversation, with the batch's changes to it summed: the
 * status its last touch left, unread increments added, and `reopen` when
 * any touch set it open (which clears resolved_at/snoozed_until).
 * The reports' columns (008_reports.sql) merge the batch's times with the
 * stored ones; COALESCE(LEAST(a, b), a, b) is the smaller of the two that
 * are not NULL. waiting_since: the first inbound after the latest outbound,
 * stored or of the batch. A batch's outbound older than a stored inbound
 * (rare: times are the channels') cannot say which stored inbound followed
 * it; the latest stored one stands in. The expressions read only old
 * column values: a multi-table UPDATE does not promise an order. */
#define OUT_NOW "GREATEST(COALESCE(c.last_outbound_at, '1000-01-01'), COALESCE(j.lo, '1000-01-01'))"
#define WAIT_STORED                                                                                \
    "CASE WHEN c.waiting_since > " OUT_NOW                                                         \
    " THEN c.waiting_since WHEN c.last_inbound_at > " OUT_NOW " THEN c.last_inbound_at END"
#define WAIT_BATCH "CASE WHEN j.w > " OUT_NOW " THEN j.w WHEN j.li > " OUT_NOW " THEN j.li END"
static const char q_conv_touch[] =
    "UPDATE JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$[0]', "
    "at VARCHAR(32) PATH '$[1]', unread INT PATH '$[2]', status VARCHAR(16) PATH '$[3]', "
    "reopen INT PATH '$[4]', " CONV_TIMES ")) j "
    "STRAIGHT_JOIN conversations c ON c.id = j.id "
    "SET c.last_activity_at = GREATEST(c.last_activity_at, j.at), c.unread = c.unread + j.unread, "
    "c.status = j.status, c.resolved_at = IF(j.reopen, NULL, c.resolved_at), "
    "c.snoozed_until = IF(j.reopen, NULL, c.snoozed_until), "
    "c.waiting_since = COALESCE(LEAST(" WAIT_STORED ", " WAIT_BATCH "), " WAIT_STORED
    ", " WAIT_BATCH
    "), c.first_inbound_at = COALESCE(LEAST(c.first_inbound_at, j.fi), c.first_inbound_at, j.fi), "
    "c.last_inbound_at = COALESCE(GREATEST(c.last_inbound_at, j.li), c.last_inbound_at, j.li), "
    "c.last_outbound_at = COALESCE(GREATEST(c.last_outbound_at, j.lo), c.last_outbound_at, j.lo)";

/* -- name: interaction-insert-batch
 * Text columns are declared wider than the table's, so that an over-long
 * value fails the insert as it always did instead of being cut here. meta
 * comes as a JSON value (its text is taken verbatim), absent when NULL. No
 * ORDER BY: sorting rows with LONGTEXT columns makes the server re-read
 * each by position (a quarter of the statement's time); JSON_TABLE alone
 * yields them in array order, and the RETURNING keys are checked. */
static const char q_interaction_insert[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, "
    "external_id, message_id, in_reply_to, sender, subject, text, html, meta, flags, "
    "parse_error, raw_sha256, occurred_at) "
    "SELECT j.conversation_id, j.client_id, j.channel_id, j.direction, j.kind, j.external_id, "
    "j.message_id, j.in_reply_to, j.sender, j.subject, j.text, j.html, j.meta, j.flags, "
    "j.parse_error, UNHEX(j.raw_sha256), j.occurred_at "
    "FROM JSON_TABLE(?, '$[*]' COLUMNS ("
    "conversation_id BIGINT UNSIGNED PATH '$[0]', client_id BIGINT UNSIGNED PATH '$[1]', "
    "channel_id BIGINT UNSIGNED PATH '$[2]', direction VARCHAR(8) PATH '$[3]', "
    "kind VARCHAR(8) PATH '$[4]', "
    "external_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[5]', "
    "message_id MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[6]', "
    "in_reply_to MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$[7]', "
    "sender VARCHAR(512) CHARACTER SET utf8mb4 PATH '$[8]', "
    "subject VARCHAR(998) CHARACTER SET utf8mb4 PATH '$[9]', "
    "flags INT PATH '$[10]', parse_error LONGTEXT CHARACTER SET utf8mb4 PATH '$[11]', "
    "raw_sha256 CHAR(64) CHARACTER SET ascii PATH '$[12]', "
    "occurred_at VARCHAR(32) PATH '$[13]', "
    "text LONGTEXT CHARACTER SET utf8mb4 PATH '$[14]', "
    "html LONGTEXT CHARACTER SET utf8mb4 PATH '$[15]', meta JSON PATH '$[16]')) j "
    "RETURNING id, channel_id, external_id";

/* -- name: interaction-edit
 * The previous text goes into meta.edits so an edit never loses words. */
static const char q_edit[] =
    "UPDATE interactions SET text = ?, meta = ?, flags = flags | 8 WHERE id = ?";

/* -- name: blob-insert
 * Content-addressed: the same bytes are stored once however often they arrive. */
static const char q_blob_insert[] =
    "INSERT IGNORE INTO blobs (sha256, size, data) VALUES (?, ?, ?)";

/* -- name: blob-insert-batch
 * The raw bodies of a batch, up to 64 in a statement rather than one
 * statement each: the round trips were a fifth of the server's CPU under
 * bench/webhooks. One text per power of two (a statement is cached by its
 * text's address); a chunk is padded to the next size by repeating its
 * smallest row, which IGNORE drops. */
#define BLOB_ROW    "(?, ?, ?)"
#define BLOB_2      BLOB_ROW ", " BLOB_ROW
#define BLOB_4      BLOB_2 ", " BLOB_2
#define BLOB_8      BLOB_4 ", " BLOB_4
#define BLOB_16     BLOB_8 ", " BLOB_8
#define BLOB_32     BLOB_16 ", " BLOB_16
#define BLOB_64     BLOB_32 ", " BLOB_32
#define BLOB_INSERT "INSERT IGNORE INTO blobs (sha256, size, data) VALUES "
static const char *const q_blob_insert_n[] = {
    BLOB_INSERT BLOB_ROW, BLOB_INSERT BLOB_2,  BLOB_INSERT BLOB_4,  BLOB_INSERT BLOB_8,
    BLOB_INSERT BLOB_16,  BLOB_INSERT BLOB_32, BLOB_INSERT BLOB_64,
};
#define BLOB_ROWS_MAX 64

/* -- name: attachment-insert */
static const char q_attachment_insert[] =
    "INSERT INTO attachments (interaction_id, filename, content_type, size, sha256, content_id, "
    "disposition, provider_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

/* -- name: event-insert-rows
 * The same rows events.c writes one at a time (user_id NULL), up to
 * EVENT_ROWS_MAX in one statement of that many VALUES rows (texts made once,
 * event_rows_build). VALUES, not INSERT … SELECT: for a statement whose row
 * count it cannot know ahead, InnoDB hands out ids in growing blocks and
 * drops the rest, so every batch left holes among the event ids, which the
 * tailer (ws.c) takes for transactions still running and looks for again
 * for two seconds. RETURNING shows the order, which is checked. */
#define EVENT_ROWS_MAX 64
#define EVENT_ROW      "(?, ?, ?, ?)"
static char *q_event_rows[EVENT_ROWS_MAX + 1];
static pthread_once_t event_rows_once = PTHREAD_ONCE_INIT;

static void event_rows_build(void)
{
    static const char head[] =
        "INSERT INTO events (type, conversation_id, client_id, data) VALUES ",
                      tail[] = " RETURNING id, type, conversation_id, client_id";
    for (size_t k = 1; k <= EVENT_ROWS_MAX; k++) {
        size_t len = sizeof head + k * (sizeof EVENT_ROW + 1) + sizeof tail;
        char *q = malloc(len);
        if (!q)
            return; /* the statements from here on fail with "out of memory" */
        size_t o = (size_t)snprintf(q, len, "%s", head);
        for (size_t i = 0; i < k; i++)
            o += (size_t)snprintf(q + o, len - o, "%s" EVENT_ROW, i ? ", " : "");
        snprintf(q + o, len - o, "%s", tail);
        q_event_rows[k] = q;
    }
}

static const char *const direction_names[] = {"in", "out", "note"};
static const char *const kind_names[] = {"email", "message", "form", "call", "note"};

/* ---- JSON parameters ------------------------------------------------- */

/* A JSON array of row arrays under construction. Errors stick (rc) and are
 * reported once, when the text is used. */
struct jbuf {
    char *p;
    size_t len, cap;
    int rc;
};

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    if (b->rc)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->rc = SB_ERR_NOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* A value or row after another one in the same array needs a comma. */
static void jb_sep(struct jbuf *b)
{
    if (b->len && b->p[b->len - 1] != '[')
        jb_put(b, ",", 1);
}

static void jb_reset(struct jbuf *b)
{
    b->len = 0;
    b->rc = SB_OK;
    jb_put(b, "[", 1);
}

static void jb_open(struct jbuf *b)
{
    jb_sep(b);
    jb_put(b, "[", 1);
}

static void jb_close(struct jbuf *b)
{
    jb_put(b, "]", 1);
}

static void jb_null(struct jbuf *b)
{
    jb_sep(b);
    jb_put(b, "null", 4);
}

static void jb_int(struct jbuf *b, int64_t v)
{
    char s[24];
    jb_sep(b);
    jb_put(b, s, (size_t)snprintf(s, sizeof s, "%lld", (long long)v));
}

/* Ids: 0 means none and is stored as NULL (as events.c does). */
static void jb_id(struct jbuf *b, int64_t v)
{
    if (v)
        jb_int(b, v);
    else
        jb_null(b);
}

/* Length of the UTF-8 sequence at s, 0 when invalid: what MariaDB's utf8mb4
 * accepts (RFC 3629 less its ban on surrogates). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) { /* surrogates pass, as utf8mb4 columns take them */
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
        return s[1] >= lo && s[1] <= 0xBF && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

/* A JSON string, or null. Non-ASCII goes through as UTF-8: MariaDB's JSON
 * parser does not join \u surrogate pairs. Text that is not UTF-8 could
 * not be stored in a utf8mb4 column either ("Incorrect string value"). */
static void jb_str(struct jbuf *b, const char *s)
{
    if (!s) {
        jb_null(b);
        return;
    }
    jb_sep(b);
    jb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s, *run = p;
    while (*p) {
        if (*p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) {
            p++;
            continue;
        }
        jb_put(b, (const char *)run, (size_t)(p - run));
        if (*p >= 0x80) {
            size_t n = utf8_seq(p);
            if (!n) {
                if (!b->rc)
                    b->rc = SB_ERR_INVALID;
                return;
            }
            jb_put(b, (const char *)p, n);
            p += n;
        } else {
            char esc[8];
            if (*p == '"' || *p == '\\')
                snprintf(esc, sizeof esc, "\\%c", *p);
            else
                snprintf(esc, sizeof esc, "\\u%04x", *p);
            jb_put(b, esc, strlen(esc));
            p++;
        }
        run = p;
    }
    jb_put(b, (const char *)run, (size_t)(p - run));
    jb_put(b, "\"", 1);
}

/* A JSON text made by jansson, as a value: JSON_TABLE columns of type JSON
 * take it verbatim, with no escaping to undo. */
static void jb_json(struct jbuf *b, const char *json)
{
    jb_sep(b);
    jb_put(b, json, strlen(json));
}

static void jb_hex(struct jbuf *b, const unsigned char *bytes, size_t n)
{
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, bytes, n);
    jb_str(b, hex);
}

/* ---- a small hash map: byte-string keys → int ---------------------------- */

struct smap_ent {
    char *key; /* NULL = empty slot */
    size_t klen;
    uint64_t hash;
    int val;
};

struct smap {
    struct smap_ent *e;
    size_t cap, n;
};

static uint64_t fnv1a(const void *k, size_t n)
{
    const unsigned char *p = k;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static struct smap_ent *smap_slot(const struct smap *m, const void *k, size_t klen, uint64_t h)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct smap_ent *e = &m->e[i];
        if (!e->key || (e->hash == h && e->klen == klen && !memcmp(e->key, k, klen)))
            return e;
    }
}

/* The value stored under the key, or -1. */
static int smap_get(const struct smap *m, const void *k, size_t klen)
{
    if (!m->cap)
        return -1;
    const struct smap_ent *e = smap_slot(m, k, klen, fnv1a(k, klen));
    return e->key ? e->val : -1;
}

static int smap_put(struct smap *m, const void *k, size_t klen, int val)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct smap bigger = {calloc(m->cap ? m->cap * 2 : 64, sizeof *m->e),
                              m->cap ? m->cap * 2 : 64, m->n};
        if (!bigger.e)
            return SB_ERR_NOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].key)
                *smap_slot(&bigger, m->e[i].key, m->e[i].klen, m->e[i].hash) = m->e[i];
        free(m->e);
        *m = bigger;
    }
    uint64_t h = fnv1a(k, klen);
    struct smap_ent *e = smap_slot(m, k, klen, h);
    if (!e->key) {
        if (!(e->key = malloc(klen ? klen : 1)))
            return SB_ERR_NOMEM;
        memcpy(e->key, k, klen);
        e->klen = klen;
        e->hash = h;
        m->n++;
    }
    e->val = val;
    return SB_OK;
}

static void smap_free(struct smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->e[i].key);
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* Keys of integers and strings, written into a caller's buffer. */
struct key {
    char b[8 + 8 + SB_EMAIL_MAX + 256];
    size_t n;
};

static void key_int(struct key *k, int64_t v)
{
    memcpy(k->b + k->n, &v, sizeof v);
    k->n += sizeof v;
}

static void key_str(struct key *k, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof k->b - k->n)
        n = sizeof k->b - k->n; /* callers' strings are capped well below this */
    memcpy(k->b + k->n, s, n);
    k->n += n;
}

/* ---- times and text ------------------------------------------------------ */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void format_time(int64_t us, char out[64])
{
    if (us <= 0)
        us = now_us();
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* A DATETIME(6) as the server prints it ("2024-05-01 10:00:00.123456", UTC
 * session) → microseconds since the epoch. */
static int64_t parse_time(const char *s)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, n = 0;
    if (!s || sscanf(s, "%d-%d-%d %d:%d:%d%n", &y, &mo, &d, &h, &mi, &sec, &n) < 6)
        return 0;
    int64_t us = 0;
    if (s[n] == '.') {
        int digits = 0;
        for (const char *p = s + n + 1; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
            us = us * 10 + (*p - '0');
        for (; digits < 6; digits++)
            us *= 10;
    }
    return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * INT64_C(60000000) +
           (int64_t)sec * 1000000 + us;
}

/* `s` cut to at most `max` bytes at a character boundary (a column's
 * length; a cut inside a character would make the text unstorable).
 * Returns `s` itself when it fits. */
static const char *cut_utf8(const char *s, size_t max, char *buf)
{
    if (!s || strlen(s) <= max)
        return s;
    size_t n = max;
    while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* ---- the batch ---------------------------------------------------------- */

struct norm_id {
    enum sb_identity_kind kind;
    const char *raw;
    char value[SB_EMAIL_MAX + 1];
    int verified;
    int owner; /* client slot that holds it already, -1 = unclaimed */
};

/* One inbound of the batch and what was decided for it. */
struct item {
    const struct sb_inbound *in;
    struct sb_ingest_result *res;
    int64_t when_us;
    char when[64];
    const char *name; /* display name cut for clients.name; NULL when none */
    char name_buf[256];
    struct norm_id ids[MAX_IDS];
    size_t nids;
    int bounce;
    int dup;          /* stored already (or earlier in the batch): nothing is added */
    int srec;         /* the stored interaction it repeats or, lazily, creates; -1 */
    int edit_event;   /* a duplicate whose edit was applied: interaction.updated */
    int client;       /* winner client slot; -1 for bounces and duplicates */
    int client_event; /* 0, or client.updated (name filled) */
    int conv;         /* conversation slot; -1 for bounces and duplicates */
    const char *conv_old_status, *conv_new_status; /* for conversation.updated */
    int has_msgid;
    unsigned char msgid_hash[32];
    unsigned char raw_hash[32];
    char *meta_text; /* meta as stored (JSON text) */
};

/* A client seen by the batch: an owner, a winner, or one it creates. */
struct cslot {
    int64_t id; /* 0 until a new one is inserted */
    int64_t order;
    int is_new, winner, name_empty;
    int nameless;            /* locked with an empty name: the touch may fill it */
    const char *create_name; /* new: the name it is created with */
    const char *first_name;  /* the first display name of the inbounds touching it */
    int64_t max_when_us;     /* its last activity after the batch */
    const char *max_when;
    int64_t stored_la_us; /* locked: its stored last activity (0: none) */
};

/* A client's last_activity_at moves only when it is older than this: a
 * client writing every few seconds does not rewrite its row (and its
 * index entry) with every message. It is a date for segments and the
 * clients list; the conversations keep exact times. */
#define CLIENT_TOUCH_SLACK_US (INT64_C(60) * 1000000)

/* A conversation seen by the batch: read, or opened by it. */
struct vslot {
    int64_t id; /* 0 until a new one is inserted */
    int64_t order;
    int client; /* client slot */
    int64_t channel_id;
    const char *status;      /* static string */
    const char *read_status; /* as read: what the batch decided on */
    int held;                /* read under lock: nobody changes it until the commit */
    int64_t la_us;           /* its last activity, stored or as the batch left it */
    const char *at;          /* the latest time the batch gives it; NULL when none */
    int64_t at_us;
    int is_new, touched, reopen;
    int unread;
    int64_t assignee;    /* as read (0: none); a new one has none */
    const char *subject; /* new: the opening inbound's subject */
    /* The reports' times (q_conv_touch): inbound from a person, first and
     * last; last outbound; the first inbound after that outbound. */
    const char *fi, *li, *lo, *w;
    int64_t fi_us, li_us, lo_us, w_us;
};

/* An inbound the reports count as the client's (008_reports.sql). */
static int person_inbound(const struct sb_inbound *in)
{
    return in->direction == SB_DIR_IN && !(in->flags & (SB_IN_AUTO_REPLY | SB_IN_BOUNCE));
}

/* A stored interaction that a duplicate of the batch refers to. */
struct srec {
    int64_t id, conv, client; /* stored ones; the creator's results otherwise */
    int creator;              /* item that inserts it in this batch, -1 when stored */
    const char *text;         /* current text: a result cell or an inbound's */
    char *meta;               /* current meta JSON text, NULL = SQL NULL */
    int edited;
};

struct idadd {
    int client, item, id;
};

struct merge {
    int client, other;
    char reason[400];
};

struct batch {
    struct sb_db *db;
    const struct sb_ingest_options *opt;
    struct item *items;
    size_t n;
    struct cslot *cs;
    size_t ncs, cap_cs;
    struct vslot *vs;
    size_t nvs, cap_vs;
    struct srec *sr;
    size_t nsr, cap_sr;
    struct idadd *adds;
    size_t nadds, cap_adds;
    struct merge *merges;
    size_t nmerges, cap_merges;
    int new_clients, new_convs;
    struct smap ext;         /* channel+external_id → item (≥ 0) or -(srec + 2) */
    struct smap owner;       /* kind+value → client slot */
    struct smap client_id;   /* id → client slot */
    struct smap conv_id;     /* id → conversation slot */
    struct smap pair;        /* client slot+channel → latest conversation slot */
    struct smap thread_db;   /* message-id hash → conversation slot, stored interactions */
    struct smap thread_in;   /* message-id hash → conversation slot, this batch's */
    struct sb_db_rows state; /* read_state() rows: srec texts point into them */
    char *lock_param;        /* read_clients()'s JSON: the lock reads the same rows */
    char *lock_digest;       /* what those rows said when the batch decided */
    int lock_first;          /* read_clients() locks: the batch ran stale before */
    int locked;              /* the rows are locked (verify_locks() done) */
    int stale;               /* the lock found what the batch read changed */
    struct jbuf jb;
    size_t ev_bytes; /* JSON text of the events not yet flushed */
    char *err;
    size_t errlen;
};

/* Grow an array for one more element; the new element is zeroed. */
static void *push(void *arrp, size_t *n, size_t *cap, size_t size)
{
    void **arr = arrp;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void *p = realloc(*arr, c * size);
        if (!p)
            return NULL;
        *arr = p;
        *cap = c;
    }
    void *e = (char *)*arr + (*n)++ * size;
    memset(e, 0, size);
    return e;
}

#define PUSH(b, arr) push(&(b)->arr, &(b)->n##arr, &(b)->cap_##arr, sizeof *(b)->arr)

static int nomem(struct batch *b)
{
    return sb_fail(b->err, b->errlen, SB_ERR_NOMEM, "out of memory");
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i].meta_text);
    for (size_t i = 0; i < b->nsr; i++)
        free(b->sr[i].meta);
    free(b->cs);
    free(b->vs);
    free(b->sr);
    free(b->adds);
    free(b->merges);
    smap_free(&b->ext);
    smap_free(&b->owner);
    smap_free(&b->client_id);
    smap_free(&b->conv_id);
    smap_free(&b->pair);
    smap_free(&b->thread_db);
    smap_free(&b->thread_in);
    sb_db_rows_free(&b->state);
    free(b->lock_param);
    free(b->lock_digest);
    free(b->jb.p);
}

/* The slot of stored client `id`, made on first sight. */
static int client_slot(struct batch *b, int64_t id)
{
    struct key k = {.n = 0};
    key_int(&k, id);
    int s = smap_get(&b->client_id, k.b, k.n);
    if (s >= 0)
        return s;
    struct cslot *c = PUSH(b, cs);
    if (!c)
        return -1;
    c->id = id;
    c->order = id;
    s = (int)(b->ncs - 1);
    return smap_put(&b->client_id, k.b, k.n, s) == SB_OK ? s : -1;
}

static const char *status_name(const char *s)
{
    static const char *const names[] = {"open", "pending", "resolved", "snoozed"};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i]))
            return names[i];
    return ""; /* as the one-by-one version read a missing row */
}

static int conv_newer(const struct vslot *a, const struct vslot *than)
{
    return a->la_us != than->la_us ? a->la_us > than->la_us : a->order > than->order;
}

/* Keep the pair map pointing at the latest conversation of (client,
 * channel): ORDER BY last_activity_at DESC, id DESC, over what was read and
 * what the batch did (while inbounds are placed, last activity only grows,
 * so comparing the one that changed is enough). */
static int conv_bump(struct batch *b, int s)
{
    struct vslot *v = &b->vs[s];
    struct key k = {.n = 0};
    key_int(&k, v->client);
    key_int(&k, v->channel_id);
    int cur = smap_get(&b->pair, k.b, k.n);
    if (cur >= 0 && cur != s && !conv_newer(v, &b->vs[cur]))
        return SB_OK;
    return smap_put(&b->pair, k.b, k.n, s);
}

/* A conversation row (id, client_id, channel_id, status, last_activity_at,
 * assignee or 0) from cells c..c+5 → its slot. A row read under lock is the latest and
 * replaces what an earlier read said. */
static int conv_from_row(struct batch *b, const struct sb_db_rows *r, size_t row, size_t c,
                         int locked)
{
    int64_t id = sb_db_cell_int(r, row, c);
    struct key k = {.n = 0};
    key_int(&k, id);
    int s = smap_get(&b->conv_id, k.b, k.n);
    if (s < 0) {
        int cl = client_slot(b, sb_db_cell_int(r, row, c + 1));
        struct vslot *v = cl >= 0 ? PUSH(b, vs) : NULL;
        if (!v)
            return -1;
        v->id = v->order = id;
        v->client = cl;
        v->channel_id = sb_db_cell_int(r, row, c + 2);
        s = (int)(b->nvs - 1);
        if (smap_put(&b->conv_id, k.b, k.n, s) != SB_OK)
            return -1;
    } else if (!locked) {
        return s;
    }
    b->vs[s].status = b->vs[s].read_status = status_name(sb_db_cell(r, row, c + 3));
    b->vs[s].held = locked == 2;
    b->vs[s].la_us = parse_time(sb_db_cell(r, row, c + 4));
    b->vs[s].assignee = sb_db_cell_int(r, row, c + 5);
    return s;
}

static void normalise_ids(const struct sb_ingest_options *opt, struct item *it)
{
    const struct sb_inbound *in = it->in;
    size_t n = 0;
    const char *region = in->region ? in->region : opt->default_region;
    for (size_t i = 0; i < in->nids && n < MAX_IDS; i++) {
        struct norm_id *id = &it->ids[n];
        memset(id, 0, sizeof *id);
        id->kind = in->ids[i].kind;
        id->raw = in->ids[i].raw;
        id->owner = -1;
        char why[128] = "";
        id->verified = sb_identity_normalize(id->kind, id->raw, region, id->value, sizeof id->value,
                                             why, sizeof why) == SB_OK;
        if (!id->verified)
            id->value[0] = '\0';
        /* The same identity twice in one inbound (a form with the phone in
         * two fields) is one identity. */
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = it->ids[j].kind == id->kind && it->ids[j].verified == id->verified &&
                  (id->verified ? !strcmp(it->ids[j].value, id->value)
                                : !strcmp(it->ids[j].raw, id->raw));
        if (!dup)
            n++;
    }
    it->nids = n;
}

static void prepare_item(const struct sb_ingest_options *opt, struct item *it)
{
    const struct sb_inbound *in = it->in;
    memset(it->res, 0, sizeof *it->res);
    it->srec = it->client = it->conv = -1;
    it->when_us = in->occurred_at_us > 0 ? in->occurred_at_us : now_us();
    format_time(it->when_us, it->when);
    it->bounce = (in->flags & SB_IN_BOUNCE) != 0;
    const char *name = in->display_name && *in->display_name ? in->display_name : NULL;
    if (name) { /* clients.name holds 255 characters; cut at a UTF-8 boundary */
        snprintf(it->name_buf, sizeof it->name_buf, "%s", name);
        size_t n = strlen(it->name_buf);
        while (n && ((unsigned char)it->name_buf[n - 1] & 0xC0) == 0x80)
            n--;
        if (n && (unsigned char)it->name_buf[n - 1] >= 0xC0 &&
            strlen(name) > sizeof it->name_buf - 1)
            it->name_buf[n - 1] = '\0';
        it->name = it->name_buf;
    }
    if (!it->bounce)
        normalise_ids(opt, it);
    if (in->message_id) {
        crypto_hash_sha256(it->msgid_hash, (const unsigned char *)in->message_id,
                           strlen(in->message_id));
        it->has_msgid = 1;
    }
}

static void ext_key(struct key *k, const struct sb_inbound *in)
{
    k->n = 0;
    key_int(k, in->channel_id);
    key_str(k, in->external_id);
}

static void owner_key(struct key *k, const struct norm_id *id)
{
    k->n = 0;
    key_int(k, id->kind);
    key_str(k, id->value);
}

/* The finished array, or the reason it could not be built. */
static int jb_finish(struct batch *b, struct jbuf *j)
{
    jb_put(j, "]", 1);
    if (j->rc == SB_ERR_INVALID)
        return sb_fail(b->err, b->errlen, SB_ERR_INVALID,
                       "an inbound holds text that is not UTF-8");
    return j->rc ? nomem(b) : SB_OK;
}

/* Run `sql` with the batch's array as its one parameter. */
static int jb_exec(struct batch *b, const char *sql, struct sb_db_rows *rows)
{
    if (rows)
        memset(rows, 0, sizeof *rows);
    int rc = jb_finish(b, &b->jb);
    if (rc != SB_OK)
        return rc;
    struct sb_db_val a[] = {SB_TEXT(b->jb.p)};
    return sb_db_exec(b->db, sql, a, 1, rows, b->err, b->errlen);
}

/* Step 1. */
static int read_state(struct batch *b)
{
    struct jbuf ext = {0}, own = {0}, thr = {0};
    struct smap seen_ext = {0}, seen_own = {0}, seen_thr = {0};
    size_t nref = 0;
    for (size_t i = 0; i < b->n; i++)
        nref += 1 + b->items[i].in->nreferences;
    size_t *ext_req = calloc(b->n + 1, sizeof *ext_req);
    /* What each row of the owner part asked for. */
    const struct norm_id **own_req = calloc(b->n * MAX_IDS + 1, sizeof *own_req);
    unsigned char(*thr_req)[32] = calloc(nref + 1, 32);
    size_t next = 0, nown = 0, nthr = 0;
    int rc = ext_req && own_req && thr_req ? SB_OK : SB_ERR_NOMEM;
    jb_reset(&ext);
    jb_reset(&own);
    jb_reset(&thr);
    for (size_t i = 0; rc == SB_OK && i < b->n; i++) {
        struct item *it = &b->items[i];
        const struct sb_inbound *in = it->in;
        struct key k;
        /* A key that is not UTF-8 cannot have been stored: not looked up
         * (storing it fails later, as it always did). */
        if (in->external_id && utf8_valid(in->external_id)) {
            ext_key(&k, in);
            if (smap_get(&seen_ext, k.b, k.n) < 0) {
                rc = smap_put(&seen_ext, k.b, k.n, 1);
                ext_req[next++] = i;
                jb_open(&ext);
                jb_int(&ext, in->channel_id);
                jb_str(&ext, in->external_id);
                jb_close(&ext);
            }
        }
        if (it->bounce)
            continue;
        for (size_t j = 0; rc == SB_OK && j < it->nids; j++) {
            const struct norm_id *id = &it->ids[j];
            if (!id->verified || !utf8_valid(id->value))
                continue;
            owner_key(&k, id);
            if (smap_get(&seen_own, k.b, k.n) >= 0)
                continue;
            rc = smap_put(&seen_own, k.b, k.n, 1);
            own_req[nown++] = id;
            jb_open(&own);
            jb_str(&own, sb_identity_kind_name(id->kind));
            jb_str(&own, id->value);
            jb_close(&own);
        }
        for (size_t j = 0; rc == SB_OK && in->kind == SB_IK_EMAIL && j <= in->nreferences; j++) {
            const char *mid = j == 0 ? in->in_reply_to : in->references[j - 1];
            if (!mid)
                continue;
            unsigned char *h = thr_req[nthr];
            crypto_hash_sha256(h, (const unsigned char *)mid, strlen(mid));
            if (smap_get(&seen_thr, h, 32) >= 0)
                continue;
            rc = smap_put(&seen_thr, h, 32, 1);
            nthr++;
            jb_open(&thr);
            jb_hex(&thr, h, 32);
            jb_close(&thr);
        }
    }
    if (rc != SB_OK)
        rc = nomem(b);
    if (rc == SB_OK)
        rc = jb_finish(b, &ext);
    if (rc == SB_OK)
        rc = jb_finish(b, &own);
    if (rc == SB_OK)
        rc = jb_finish(b, &thr);
    if (rc == SB_OK) {
        struct sb_db_val a[] = {SB_TEXT(ext.p), SB_TEXT(own.p), SB_TEXT(thr.p)};
        rc = sb_db_exec(b->db, nthr ? q_read_state : q_read_state_no_mail, a, nthr ? 3 : 2,
                        &b->state, b->err, b->errlen);
    }
    const struct sb_db_rows *r = &b->state;
    for (size_t row = 0; rc == SB_OK && row < r->nrows; row++) {
        const char *tag = sb_db_cell(r, row, 0);
        int64_t o = sb_db_cell_int(r, row, 1) - 1; /* FOR ORDINALITY counts from 1 */
        struct key k;
        if (*tag == 'e' && o >= 0 && (size_t)o < next) {
            struct srec *s = PUSH(b, sr);
            if (!s) {
                rc = nomem(b);
                break;
            }
            s->id = sb_db_cell_int(r, row, 2);
            s->conv = sb_db_cell_int(r, row, 3);
            s->client = sb_db_cell_int(r, row, 4);
            s->text = sb_db_cell(r, row, 5);
            s->creator = -1;
            const char *meta = sb_db_cell(r, row, 6);
            ext_key(&k, b->items[ext_req[o]].in);
            if ((meta && !(s->meta = strdup(meta))) ||
                smap_put(&b->ext, k.b, k.n, -(int)(b->nsr - 1) - 2) != SB_OK)
                rc = nomem(b);
        } else if (*tag == 'o' && o >= 0 && (size_t)o < nown) {
            int cl = client_slot(b, sb_db_cell_int(r, row, 2));
            owner_key(&k, own_req[o]);
            if (cl < 0 || smap_put(&b->owner, k.b, k.n, cl) != SB_OK)
                rc = nomem(b);
        } else if (*tag == 't' && o >= 0 && (size_t)o < nthr) {
            int v = conv_from_row(b, r, row, 3, 0);
            if (v < 0 || smap_put(&b->thread_db, thr_req[o], 32, v) != SB_OK)
                rc = nomem(b);
        }
    }
    smap_free(&seen_ext);
    smap_free(&seen_own);
    smap_free(&seen_thr);
    free(ext_req);
    free(own_req);
    free(thr_req);
    free(ext.p);
    free(own.p);
    free(thr.p);
    return rc;
}

/* The stored interaction an earlier inbound of the batch creates, made on
 * the first duplicate of it: its text and meta as they would be read back. */
static int srec_of_creator(struct batch *b, int item)
{
    struct item *c = &b->items[item];
    if (c->srec >= 0)
        return c->srec;
    struct srec *s = PUSH(b, sr);
    if (!s)
        return -1;
    s->creator = item;
    s->text = c->in->text;
    if (c->in->meta && !(s->meta = json_dumps(c->in->meta, JSON_COMPACT)))
        return -1;
    c->srec = (int)(b->nsr - 1);
    return c->srec;
}

/* A provider edit of a stored message: the new text, the old one appended
 * to meta.edits. */
static int apply_edit(struct batch *b, int si, struct item *it)
{
    const struct sb_inbound *in = it->in;
    struct srec *s = &b->sr[si];
    if (!(in->flags & SB_IN_EDITED) || !in->text || (s->text && !strcmp(s->text, in->text)))
        return SB_OK;
    /* Only the last text is written, but each would have been: one that
     * cannot be stored fails the batch as it did ("Incorrect string
     * value"). */
    if (!utf8_valid(in->text) || (s->text && !utf8_valid(s->text)))
        return sb_fail(b->err, b->errlen, SB_ERR_INVALID,
                       "an inbound holds text that is not UTF-8");
    json_t *meta = json_loads(s->meta ? s->meta : "{}", 0, NULL);
    if (!json_is_object(meta)) {
        json_decref(meta);
        meta = json_object();
    }
    json_t *edits = json_object_get(meta, "edits");
    if (!json_is_array(edits)) {
        edits = json_array();
        json_object_set_new(meta, "edits", edits);
    }
    json_array_append_new(edits, json_pack("{s:s?,s:s}", "text", s->text, "replaced_at", it->when));
    char *text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    if (!text)
        return nomem(b);
    free(s->meta);
    s->meta = text;
    s->text = in->text;
    s->edited = 1;
    it->edit_event = 1;
    return SB_OK;
}

/* Step 2. */
static int find_stored(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (!it->in->external_id)
            continue;
        struct key k;
        ext_key(&k, it->in);
        int v = smap_get(&b->ext, k.b, k.n);
        if (v == -1) { /* new: later ones with this key repeat this one */
            if (smap_put(&b->ext, k.b, k.n, (int)i) != SB_OK)
                return nomem(b);
            continue;
        }
        int si = v >= 0 ? srec_of_creator(b, v) : -v - 2;
        if (si < 0)
            return nomem(b);
        it->dup = 1;
        it->srec = si;
        it->res->duplicate = 1;
        int rc = apply_edit(b, si, it);
        if (rc != SB_OK)
            return rc;
    }
    return SB_OK;
}

/* Step 3. */
static int resolve_clients(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (it->dup || it->bounce)
            continue;
        int winner = -1;
        struct key k;
        for (size_t j = 0; j < it->nids; j++) {
            struct norm_id *id = &it->ids[j];
            id->owner = -1;
            if (!id->verified)
                continue;
            owner_key(&k, id);
            id->owner = smap_get(&b->owner, k.b, k.n);
            if (id->owner >= 0 && (winner < 0 || b->cs[id->owner].order < b->cs[winner].order))
                winner = id->owner;
        }
        if (winner < 0) {
            struct cslot *c = PUSH(b, cs);
            if (!c)
                return nomem(b);
            c->is_new = 1;
            c->order = NEW_ORDER + b->new_clients++;
            c->create_name = it->name;
            c->name_empty = !it->name;
            winner = (int)(b->ncs - 1);
            it->res->client_created = 1;
        }
        struct cslot *w = &b->cs[winner];
        w->winner = 1;
        if (!w->max_when || it->when_us > w->max_when_us) {
            w->max_when_us = it->when_us;
            w->max_when = it->when;
        }
        it->client = winner;
        for (size_t j = 0; j < it->nids; j++) {
            struct norm_id *id = &it->ids[j];
            if (id->owner == winner && id->verified)
                continue;
            if (id->owner >= 0) {
                /* The identity belongs to another client: leave it there
                 * and let a person decide whether they are one. */
                struct merge *m = PUSH(b, merges);
                if (!m)
                    return nomem(b);
                m->client = winner;
                m->other = id->owner;
                /* It fits: a kind name and a value of 320 bytes at most. */
                snprintf(m->reason, sizeof m->reason, "both have %s %s",
                         sb_identity_kind_name(id->kind), id->value);
                continue;
            }
            struct idadd *a = PUSH(b, adds);
            if (!a)
                return nomem(b);
            *a = (struct idadd){winner, (int)i, (int)j};
            if (id->verified) {
                owner_key(&k, id);
                if (smap_put(&b->owner, k.b, k.n, winner) != SB_OK)
                    return nomem(b);
            }
        }
    }
    return SB_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* RETURNING gives the rows in the order inserted; ids must ascend. */
static int check_ids(struct batch *b, const struct sb_db_rows *r, size_t want, int64_t *last)
{
    if (r->nrows != want)
        return sb_fail(b->err, b->errlen, SB_ERR_INTERNAL,
                       "INSERT … RETURNING gave %zu rows for %zu", r->nrows, want);
    for (size_t i = 0; i < r->nrows; i++) {
        int64_t id = sb_db_cell_int(r, i, 0);
        if (id <= *last)
            return sb_fail(b->err, b->errlen, SB_ERR_INTERNAL,
                           "INSERT … RETURNING ids out of order");
        *last = id;
    }
    return SB_OK;
}

/* One identity the one-by-one way, for text that is not UTF-8: the server
 * refuses it exactly when it would be stored (JSON would turn it into '?'
 * silently), and an unverified one already there is not stored. */
static int store_identity_one(struct batch *b, const struct idadd *a)
{
    const struct norm_id *id = &b->items[a->item].ids[a->id];
    char raw[513];
    const char *kind = sb_identity_kind_name(id->kind);
    const char *r = cut_utf8(id->raw, sizeof raw - 1, raw);
    int64_t client = b->cs[a->client].id;
    if (!id->verified) {
        struct sb_db_val e[] = {SB_INT(client), SB_TEXT(kind), SB_TEXT(r)};
        struct sb_db_rows rows;
        int rc = sb_db_exec(b->db, q_unverified_exists, e, 3, &rows, b->err, b->errlen);
        size_t exists = rows.nrows;
        sb_db_rows_free(&rows);
        if (rc != SB_OK || exists)
            return rc;
    }
    struct sb_db_val v[] = {
        SB_INT(client), SB_TEXT(kind),        id->verified ? SB_TEXT(id->value) : SB_NULL,
        SB_TEXT(r),     SB_INT(id->verified), SB_TEXT(b->items[a->item].in->display_name)};
    return sb_db_exec(b->db, q_identity_insert_one, v, 6, NULL, b->err, b->errlen);
}

static int identity_is_utf8(const struct batch *b, const struct idadd *a)
{
    const struct norm_id *id = &b->items[a->item].ids[a->id];
    const char *dn = b->items[a->item].in->display_name;
    char raw[513];
    return utf8_valid(cut_utf8(id->raw, sizeof raw - 1, raw)) && utf8_valid(id->value) &&
           (!dn || utf8_valid(dn));
}

/* The identities of new clients (`of_new`) or of stored ones, in the order
 * the one-by-one version added them; a wave ends where an unverified one
 * shares (client, kind) with an earlier one of the wave, so that the NOT
 * EXISTS sees it, and around one whose text is not UTF-8, which goes alone.
 * New clients' go before the lock (nobody else can see those clients);
 * stored clients' after it, as their foreign key check takes a shared lock
 * on the client row, which the lock would then have to upgrade. */
static int store_identities(struct batch *b, int of_new)
{
    size_t i = 0;
    while (i < b->nadds) {
        if (b->cs[b->adds[i].client].is_new != of_new) {
            i++;
            continue;
        }
        if (!identity_is_utf8(b, &b->adds[i])) {
            int rc = store_identity_one(b, &b->adds[i++]);
            if (rc != SB_OK)
                return rc == SB_ERR_EXISTS ? SB_ERR_RETRY : rc;
            continue;
        }
        struct smap wave = {0};
        int unverified = 0;
        jb_reset(&b->jb);
        for (; i < b->nadds && identity_is_utf8(b, &b->adds[i]); i++) {
            const struct idadd *a = &b->adds[i];
            const struct norm_id *id = &b->items[a->item].ids[a->id];
            if (b->cs[a->client].is_new != of_new)
                continue;
            if (!id->verified) {
                struct key k = {.n = 0};
                key_int(&k, a->client);
                key_int(&k, id->kind);
                if (smap_get(&wave, k.b, k.n) >= 0)
                    break;
                if (smap_put(&wave, k.b, k.n, 1) != SB_OK) {
                    smap_free(&wave);
                    return nomem(b);
                }
                unverified = 1;
            }
            char raw[513]; /* the column holds 512 characters at most */
            jb_open(&b->jb);
            jb_int(&b->jb, b->cs[a->client].id);
            jb_str(&b->jb, sb_identity_kind_name(id->kind));
            jb_str(&b->jb, id->verified ? id->value : NULL);
            jb_str(&b->jb, cut_utf8(id->raw, sizeof raw - 1, raw));
            jb_int(&b->jb, id->verified);
            jb_str(&b->jb, b->items[a->item].in->display_name);
            jb_close(&b->jb);
        }
        smap_free(&wave);
        int rc = jb_exec(b, unverified ? q_identity_insert_unverified : q_identity_insert, NULL);
        /* Someone claimed one since our snapshot: run the transaction again. */
        if (rc != SB_OK)
            return rc == SB_ERR_EXISTS ? SB_ERR_RETRY : rc;
    }
    return SB_OK;
}

/* Step 4. */
static int cmp_pair(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What rows of client-read-batch say that the batch's decisions rest on,
 * as one text (malloc'd): each client with whether its name is empty and
 * whether it was merged away; each conversation with its status, whether
 * it is the latest of its (client, channel) and, for a resolved latest, its
 * last activity (the reopen window). A last activity that grew on a
 * conversation that stays the latest decides nothing and is left out: a
 * person writing through two workers at once makes neither run again. The
 * batch's own new conversations never show: a batch that opens one for a
 * stored client has locked before (place_conversations()). */
static char *lock_digest(const struct sb_db_rows *r)
{
    size_t n = r->nrows, total = 1;
    char **ent = calloc(n + 1, sizeof *ent);
    int64_t *la = calloc(n + 1, sizeof *la);
    char *out = NULL;
    if (!ent || !la)
        goto done;
    for (size_t i = 0; i < n; i++)
        la[i] = sb_db_cell(r, i, 2) ? parse_time(sb_db_cell(r, i, 6)) : 0;
    for (size_t i = 0; i < n; i++) {
        int64_t client = sb_db_cell_int(r, i, 0), ch = sb_db_cell_int(r, i, 4);
        long long merged = (long long)sb_db_cell_int(r, i, 9);
        int name_empty = !*sb_db_cell(r, i, 1);
        char buf[160];
        if (!sb_db_cell(r, i, 2)) { /* no conversation on that channel */
            snprintf(buf, sizeof buf, "%lld:%d:%lld:-", (long long)client, name_empty, merged);
        } else {
            int64_t id = sb_db_cell_int(r, i, 2);
            int latest = 1;
            for (size_t j = 0; j < n && latest; j++) {
                if (j == i || !sb_db_cell(r, j, 2) || sb_db_cell_int(r, j, 0) != client ||
                    sb_db_cell_int(r, j, 4) != ch)
                    continue;
                latest = la[j] != la[i] ? la[j] < la[i] : sb_db_cell_int(r, j, 2) < id;
            }
            const char *st = status_name(sb_db_cell(r, i, 5));
            snprintf(buf, sizeof buf, "%lld:%d:%lld:%lld:%s:%d:%lld", (long long)client, name_empty,
                     merged, (long long)id, st, latest,
                     latest && !strcmp(st, "resolved") ? (long long)la[i] : 0LL);
        }
        if (!(ent[i] = strdup(buf)))
            goto done;
        total += strlen(buf) + 1;
    }
    qsort(ent, n, sizeof *ent, cmp_str);
    if (!(out = malloc(total)))
        goto done;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, total - o, "%s;", ent[i]);
    out[o] = '\0';
done:
    for (size_t i = 0; ent && i < n; i++)
        free(ent[i]);
    free(ent);
    free(la);
    return out;
}

static int stored_thread(struct batch *b, const char *message_id)
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)message_id, strlen(message_id));
    return smap_get(&b->thread_db, h, 32) >= 0;
}

/* Whether an inbound of a stored client may open a conversation: no
 * conversation on its channel, or the latest resolved (the reopen window
 * decides); an e-mail that no stored thread takes. */
static int may_open_for_stored(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->items[i];
        if (it->client < 0 || b->cs[it->client].is_new)
            continue;
        const struct sb_inbound *in = it->in;
        if (in->kind == SB_IK_EMAIL) {
            int found = in->in_reply_to && stored_thread(b, in->in_reply_to);
            for (size_t r = 0; !found && r < in->nreferences; r++)
                found = stored_thread(b, in->references[r]);
            if (!found)
                return 1;
            continue;
        }
        struct key k = {.n = 0};
        key_int(&k, it->client);
        key_int(&k, in->channel_id);
        int latest = smap_get(&b->pair, k.b, k.n);
        if (latest < 0 || !strcmp(b->vs[latest].status, "resolved"))
            return 1;
    }
    return 0;
}

/* The stored conversations the client lock does not cover (found by an
 * e-mail's thread), locked, ids ascending. `refresh` (step 4 of a batch
 * that locks first): what they say now replaces what step 1 read, before
 * anything is decided; otherwise (step 7) those the batch touches must
 * still have the status it decided on, or the batch runs again: an agent
 * who resolved the thread meanwhile is not overruled by a copy of our own
 * reply or an auto-reply. */
static int lock_threads(struct batch *b, int refresh)
{
    int64_t *ids = malloc((b->nvs + 1) * sizeof *ids);
    if (!ids)
        return nomem(b);
    size_t n = 0;
    for (size_t s = 0; s < b->nvs; s++) {
        const struct vslot *v = &b->vs[s];
        if (!v->is_new && !v->held && (refresh || v->touched))
            ids[n++] = v->id;
    }
    qsort(ids, n, sizeof *ids, cmp_i64);
    jb_reset(&b->jb);
    for (size_t i = 0; i < n; i++)
        jb_int(&b->jb, ids[i]);
    free(ids);
    if (!n)
        return SB_OK;
    struct sb_db_rows r = {0};
    int rc = jb_exec(b, q_conv_lock, &r);
    for (size_t row = 0; rc == SB_OK && row < r.nrows; row++) {
        struct key k = {.n = 0};
        key_int(&k, sb_db_cell_int(&r, row, 0));
        int s = smap_get(&b->conv_id, k.b, k.n);
        if (s < 0)
            continue;
        struct vslot *v = &b->vs[s];
        if (refresh) {
            if (conv_from_row(b, &r, row, 0, 2) < 0)
                rc = nomem(b);
        } else if (strcmp(status_name(sb_db_cell(&r, row, 3)), v->read_status) != 0) {
            b->stale = 1;
            rc = sb_fail(b->err, b->errlen, SB_ERR_RETRY,
                         "a conversation's status changed while the batch was being stored");
        } else {
            v->assignee = sb_db_cell_int(&r, row, 5);
            v->held = 1;
        }
    }
    sb_db_rows_free(&r);
    return rc;
}

/* Step 4: the existing winners with their conversations on the channels
 * their inbounds came by (e-mail threads by message id instead), read
 * without a lock; verify_locks() reads them again under lock. */
static int read_clients(struct batch *b)
{
    int64_t(*pairs)[2] = malloc((b->n + 1) * sizeof *pairs);
    if (!pairs)
        return nomem(b);
    size_t np = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->items[i];
        if (it->client < 0 || b->cs[it->client].is_new)
            continue;
        pairs[np][0] = b->cs[it->client].id;
        pairs[np++][1] = it->in->kind == SB_IK_EMAIL ? 0 : it->in->channel_id;
    }
    qsort(pairs, np, sizeof *pairs, cmp_pair);
    jb_reset(&b->jb);
    for (size_t i = 0; i < np; i++) {
        if (i && !cmp_pair(pairs[i], pairs[i - 1]))
            continue;
        jb_open(&b->jb);
        jb_int(&b->jb, pairs[i][0]);
        jb_int(&b->jb, pairs[i][1]);
        jb_close(&b->jb);
    }
    free(pairs);
    if (!np)
        return b->lock_first ? lock_threads(b, 1) : SB_OK;
    struct sb_db_rows r = {0};
    int rc = jb_exec(b, b->lock_first ? q_client_lock : q_client_read, &r);
    b->locked = b->lock_first;
    free(b->lock_param);
    free(b->lock_digest);
    b->lock_param = b->lock_digest = NULL;
    if (rc == SB_OK &&
        (!(b->lock_param = strdup(b->jb.p)) || (!b->locked && !(b->lock_digest = lock_digest(&r)))))
        rc = nomem(b);
    for (size_t row = 0; rc == SB_OK && row < r.nrows; row++) {
        int s = client_slot(b, sb_db_cell_int(&r, row, 0));
        if (s < 0 ||
            (sb_db_cell(&r, row, 2) && conv_from_row(b, &r, row, 2, b->locked ? 2 : 1) < 0))
            rc = nomem(b);
        else {
            b->cs[s].name_empty = b->cs[s].nameless = !*sb_db_cell(&r, row, 1);
            const char *la = sb_db_cell(&r, row, 8);
            b->cs[s].stored_la_us = la ? parse_time(la) : 0;
        }
    }
    sb_db_rows_free(&r);
    /* Which conversation is each pair's latest, now that all are known. */
    smap_free(&b->pair);
    for (size_t s = 0; rc == SB_OK && s < b->nvs; s++)
        if (conv_bump(b, (int)s) != SB_OK)
            rc = nomem(b);
    /* A stored client about to get a new conversation: lock now (see
     * place_conversations()), and decide on what the lock reads. */
    if (rc == SB_OK && !b->locked && may_open_for_stored(b)) {
        b->lock_first = 1;
        return read_clients(b);
    }
    if (rc == SB_OK && b->locked)
        rc = lock_threads(b, 1);
    return rc;
}

/* Step 7: lock what read_clients() read and check it still says the same;
 * when another batch changed it meanwhile (opened a conversation for one
 * of these clients, resolved or reopened one, named a client), what this
 * batch decided may be wrong: the transaction runs again from the start. */
static int verify_locks(struct batch *b)
{
    if (!b->lock_param || b->locked)
        return SB_OK;
    b->locked = 1;
    struct sb_db_rows r = {0};
    struct sb_db_val a[] = {SB_TEXT(b->lock_param)};
    int rc = sb_db_exec(b->db, q_client_lock, a, 1, &r, b->err, b->errlen);
    char *now = rc == SB_OK ? lock_digest(&r) : NULL;
    if (rc == SB_OK && !now)
        rc = nomem(b);
    if (rc == SB_OK && strcmp(now, b->lock_digest) != 0 && (b->stale = 1))
        rc = sb_fail(b->err, b->errlen, SB_ERR_RETRY,
                     "a client's conversations changed while the batch was being stored");
    /* The assignee is not decided on; who gets notified follows the lock. */
    for (size_t row = 0; rc == SB_OK && row < r.nrows; row++) {
        if (!sb_db_cell(&r, row, 2))
            continue;
        struct key k = {.n = 0};
        key_int(&k, sb_db_cell_int(&r, row, 2));
        int s = smap_get(&b->conv_id, k.b, k.n);
        if (s >= 0) {
            b->vs[s].assignee = sb_db_cell_int(&r, row, 7);
            b->vs[s].held = 1;
        }
    }
    free(now);
    sb_db_rows_free(&r);
    return rc;
}

/* Step 4: what the stored winners look like, and the new clients with
 * their identities (before the lock: no other batch can see them). */
static int store_clients(struct batch *b)
{
    int rc = read_clients(b);
    /* A name fills an empty one once: the first inbound with a name after
     * the client was created or read. */
    for (size_t i = 0; rc == SB_OK && i < b->n; i++) {
        struct item *it = &b->items[i];
        if (it->client < 0 || it->res->client_created)
            continue;
        struct cslot *c = &b->cs[it->client];
        if (!c->first_name)
            c->first_name = it->name;
        if (c->name_empty && it->name) {
            it->client_event = 1;
            c->name_empty = 0;
        }
    }
    if (rc == SB_OK && b->new_clients) {
        jb_reset(&b->jb);
        for (size_t s = 0; s < b->ncs; s++) {
            const struct cslot *c = &b->cs[s];
            if (!c->is_new)
                continue;
            jb_open(&b->jb);
            jb_str(&b->jb, c->create_name ? c->create_name : c->first_name);
            jb_str(&b->jb, c->max_when);
            jb_close(&b->jb);
        }
        struct sb_db_rows r;
        int64_t last = 0;
        rc = jb_exec(b, q_client_insert, &r);
        if (rc == SB_OK)
            rc = check_ids(b, &r, (size_t)b->new_clients, &last);
        for (size_t s = 0, row = 0; rc == SB_OK && s < b->ncs; s++)
            if (b->cs[s].is_new)
                b->cs[s].id = sb_db_cell_int(&r, row++, 0);
        sb_db_rows_free(&r);
    }
    if (rc == SB_OK)
        rc = store_identities(b, 1);
    return rc;
}

/* Step 7, under the lock: the stored winners' last activity and empty
 * names, the identities they gain, the merge suggestions. */
static int update_clients(struct batch *b)
{
    int64_t *ids = malloc((b->ncs + 1) * sizeof *ids);
    if (!ids)
        return nomem(b);
    size_t nw = 0;
    int rc = SB_OK;
    for (size_t s = 0; s < b->ncs; s++) {
        const struct cslot *c = &b->cs[s];
        if (c->winner && !c->is_new &&
            (c->nameless || c->stored_la_us < c->max_when_us - CLIENT_TOUCH_SLACK_US))
            ids[nw++] = c->id;
    }
    qsort(ids, nw, sizeof *ids, cmp_i64);
    if (nw) {
        jb_reset(&b->jb);
        for (size_t i = 0; i < nw; i++) {
            const struct cslot *c = &b->cs[client_slot(b, ids[i])];
            jb_open(&b->jb);
            jb_int(&b->jb, c->id);
            jb_str(&b->jb, c->max_when);
            /* Unused unless the name is empty (see q_client_touch): then
             * only is it sent, as the one-by-one version only stored it then. */
            jb_str(&b->jb, c->nameless ? c->first_name : NULL);
            jb_close(&b->jb);
        }
        rc = jb_exec(b, q_client_touch, NULL);
    }
    free(ids);
    if (rc == SB_OK)
        rc = store_identities(b, 0);
    if (rc == SB_OK && b->nmerges) {
        jb_reset(&b->jb);
        for (size_t i = 0; i < b->nmerges; i++) {
            jb_open(&b->jb);
            jb_int(&b->jb, b->cs[b->merges[i].client].id);
            jb_int(&b->jb, b->cs[b->merges[i].other].id);
            jb_str(&b->jb, b->merges[i].reason);
            jb_close(&b->jb);
        }
        rc = jb_exec(b, q_merge_suggest, NULL);
    }
    return rc;
}

/* The conversation of the first interaction carrying this message id:
 * stored ones first (lower ids), then the batch's. */
static int thread_lookup(struct batch *b, const char *message_id)
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)message_id, strlen(message_id));
    int v = smap_get(&b->thread_db, h, 32);
    return v >= 0 ? v : smap_get(&b->thread_in, h, 32);
}

/* Step 5. */
/* Items 5-8 of a conversation's row: CONV_TIMES. */
static void conv_times(struct jbuf *j, const struct vslot *v)
{
    jb_str(j, v->fi);
    jb_str(j, v->li);
    jb_str(j, v->lo);
    jb_str(j, v->w);
}

static int place_conversations(struct batch *b)
{
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < b->n; i++) {
        struct item *it = &b->items[i];
        if (it->client < 0)
            continue;
        const struct sb_inbound *in = it->in;
        int conv = -1;
        struct key k = {.n = 0};
        if (in->kind == SB_IK_EMAIL) {
            if (in->in_reply_to)
                conv = thread_lookup(b, in->in_reply_to);
            for (size_t r = in->nreferences; conv < 0 && r > 0; r--)
                conv = thread_lookup(b, in->references[r - 1]);
        } else {
            key_int(&k, it->client);
            key_int(&k, in->channel_id);
            int latest = smap_get(&b->pair, k.b, k.n);
            if (latest >= 0) {
                const struct vslot *v = &b->vs[latest];
                int64_t age = (it->when_us - v->la_us) / 1000000; /* TIMESTAMPDIFF(SECOND) */
                if (strcmp(v->status, "resolved") != 0 || age <= b->opt->reopen_window_s)
                    conv = latest;
            }
        }
        int counts = in->direction == SB_DIR_IN && !(in->flags & SB_IN_AUTO_REPLY);
        if (conv < 0) {
            struct vslot *v = PUSH(b, vs);
            if (!v)
                return nomem(b);
            v->is_new = 1;
            v->order = NEW_ORDER + b->new_convs++;
            v->client = it->client;
            v->channel_id = in->channel_id;
            v->status = "open";
            v->la_us = v->at_us = it->when_us;
            v->at = it->when;
            v->unread = counts;
            v->subject = in->subject;
            conv = (int)(b->nvs - 1);
            it->res->conversation_created = 1;
        } else {
            /* A client's message reopens what was resolved or snoozed; an
             * auto-reply ("I am on holiday") and our own outbound never do. */
            struct vslot *v = &b->vs[conv];
            it->conv_old_status = it->conv_new_status = v->status;
            if (counts && (!strcmp(v->status, "resolved") || !strcmp(v->status, "snoozed")))
                it->conv_new_status = "open";
            v->status = it->conv_new_status;
            v->reopen |= !strcmp(v->status, "open");
            v->unread += counts;
            if (!v->at || it->when_us > v->at_us) { /* GREATEST(last_activity_at, ?) */
                v->at = it->when;
                v->at_us = it->when_us;
            }
            if (it->when_us > v->la_us)
                v->la_us = it->when_us;
            v->touched = 1;
        }
        struct vslot *v = &b->vs[conv];
        if (person_inbound(in)) {
            if (!v->fi || it->when_us < v->fi_us)
                v->fi = it->when, v->fi_us = it->when_us;
            if (!v->li || it->when_us > v->li_us)
                v->li = it->when, v->li_us = it->when_us;
        } else if (in->direction == SB_DIR_OUT && (!v->lo || it->when_us > v->lo_us)) {
            v->lo = it->when, v->lo_us = it->when_us;
        }
        it->conv = conv;
        if (conv_bump(b, conv) != SB_OK)
            return nomem(b);
        if (it->has_msgid && smap_get(&b->thread_in, it->msgid_hash, 32) < 0 &&
            smap_put(&b->thread_in, it->msgid_hash, 32, conv) != SB_OK)
            return nomem(b);
    }
    /* The first inbound after the batch's last outbound, now that it is known. */
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->items[i];
        if (it->client < 0 || it->conv < 0 || !person_inbound(it->in))
            continue;
        struct vslot *v = &b->vs[it->conv];
        if ((!v->lo || it->when_us > v->lo_us) && (!v->w || it->when_us < v->w_us))
            v->w = it->when, v->w_us = it->when_us;
    }
    /* A new conversation of a stored client: its foreign key check takes a
     * shared lock on the client row, which the lock would then have to
     * upgrade, and two batches doing so deadlock. Such a batch locks before
     * (a person's first message on a channel; otherwise the lock waits for
     * the end). */
    for (size_t s = 0; rc == SB_OK && !b->locked && s < b->nvs; s++)
        if (b->vs[s].is_new && !b->cs[b->vs[s].client].is_new)
            rc = verify_locks(b);
    if (rc == SB_OK && b->new_convs) {
        jb_reset(&b->jb);
        for (size_t s = 0; s < b->nvs; s++) {
            const struct vslot *v = &b->vs[s];
            if (!v->is_new)
                continue;
            char subject[999];
            jb_open(&b->jb);
            jb_int(&b->jb, b->cs[v->client].id);
            jb_int(&b->jb, v->channel_id);
            jb_str(&b->jb, cut_utf8(v->subject, sizeof subject - 1, subject));
            jb_str(&b->jb, v->at);
            jb_int(&b->jb, v->unread);
            conv_times(&b->jb, v);
            jb_close(&b->jb);
        }
        struct sb_db_rows r;
        int64_t last = 0;
        rc = jb_exec(b, q_conv_insert, &r);
        if (rc == SB_OK)
            rc = check_ids(b, &r, (size_t)b->new_convs, &last);
        for (size_t s = 0, row = 0; rc == SB_OK && s < b->nvs; s++) {
            struct vslot *v = &b->vs[s];
            if (!v->is_new)
                continue;
            v->id = sb_db_cell_int(&r, row, 0);
            if (sb_db_cell_int(&r, row, 1) != b->cs[v->client].id ||
                sb_db_cell_int(&r, row, 2) != v->channel_id)
                rc = sb_fail(b->err, b->errlen, SB_ERR_INTERNAL,
                             "INSERT … RETURNING rows out of order");
            row++;
        }
        sb_db_rows_free(&r);
    }
    return rc;
}

/* Step 7, under the lock: one UPDATE applies each touched stored
 * conversation's changes, summed; ids ascending (lock order). */
static int touch_conversations(struct batch *b)
{
    int rc = SB_OK;
    /* Touched stored conversations, ids ascending (lock order). */
    int64_t *ids = malloc((b->nvs + 1) * sizeof *ids);
    if (!ids)
        return nomem(b);
    size_t nt = 0;
    for (size_t s = 0; s < b->nvs; s++)
        if (b->vs[s].touched && !b->vs[s].is_new)
            ids[nt++] = b->vs[s].id;
    qsort(ids, nt, sizeof *ids, cmp_i64);
    if (nt) {
        jb_reset(&b->jb);
        for (size_t i = 0; i < nt; i++) {
            struct key k = {.n = 0};
            key_int(&k, ids[i]);
            const struct vslot *v = &b->vs[smap_get(&b->conv_id, k.b, k.n)];
            jb_open(&b->jb);
            jb_int(&b->jb, v->id);
            jb_str(&b->jb, v->at);
            jb_int(&b->jb, v->unread);
            jb_str(&b->jb, v->status);
            jb_int(&b->jb, v->reopen);
            conv_times(&b->jb, v);
            jb_close(&b->jb);
        }
        rc = jb_exec(b, q_conv_touch, NULL);
    }
    free(ids);
    return rc;
}

static int store_blob(struct batch *b, const unsigned char *data, size_t len,
                      unsigned char hash[32])
{
    crypto_hash_sha256(hash, data, len);
    struct sb_db_val a[] = {SB_BLOB(hash, 32), SB_INT((int64_t)len), SB_BLOB(data, len)};
    return sb_db_exec(b->db, q_blob_insert, a, 3, NULL, b->err, b->errlen);
}

/* Rows `rows[0..n)` (items with a raw body, hashed) in one statement. */
static int flush_raw(struct batch *b, const size_t *rows, size_t n)
{
    size_t cls = 0;
    while ((size_t)1 << cls < n)
        cls++;
    size_t padded = (size_t)1 << cls, small = 0;
    for (size_t i = 1; i < n; i++)
        if (b->items[rows[i]].in->raw_len < b->items[rows[small]].in->raw_len)
            small = i;
    struct sb_db_val *a = malloc(3 * padded * sizeof *a);
    if (!a)
        return nomem(b);
    for (size_t i = 0; i < padded; i++) {
        const struct item *it = &b->items[rows[i < n ? i : small]];
        a[3 * i] = SB_BLOB(it->raw_hash, 32);
        a[3 * i + 1] = SB_INT((int64_t)it->in->raw_len);
        a[3 * i + 2] = SB_BLOB(it->in->raw, it->in->raw_len);
    }
    int rc = sb_db_exec(b->db, q_blob_insert_n[cls], a, 3 * padded, NULL, b->err, b->errlen);
    free(a);
    return rc;
}

/* Every new raw body of the batch, in chunks of at most BLOB_ROWS_MAX rows
 * and CHUNK_BYTES (a bigger body goes alone). */
static int store_raw(struct batch *b)
{
    size_t *rows = malloc((b->n + 1) * sizeof *rows), n = 0, bytes = 0;
    if (!rows)
        return nomem(b);
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < b->n; i++) {
        struct item *it = &b->items[i];
        if (it->dup || !it->in->raw || !it->in->raw_len)
            continue;
        crypto_hash_sha256(it->raw_hash, it->in->raw, it->in->raw_len);
        if (n && (n == BLOB_ROWS_MAX || bytes + it->in->raw_len > CHUNK_BYTES)) {
            rc = flush_raw(b, rows, n);
            n = bytes = 0;
        }
        rows[n++] = i;
        bytes += it->in->raw_len;
    }
    if (rc == SB_OK && n)
        rc = flush_raw(b, rows, n);
    free(rows);
    return rc;
}

static int flush_interactions(struct batch *b, const size_t *items, size_t n, int64_t *last)
{
    struct sb_db_rows r;
    int rc = jb_exec(b, q_interaction_insert, &r);
    if (rc == SB_ERR_EXISTS)
        rc = SB_ERR_RETRY; /* a concurrent delivery of the same message won */
    if (rc == SB_OK)
        rc = check_ids(b, &r, n, last);
    for (size_t i = 0; rc == SB_OK && i < n; i++) {
        const struct sb_inbound *in = b->items[items[i]].in;
        const char *ext = sb_db_cell(&r, i, 2);
        if (sb_db_cell_int(&r, i, 1) != in->channel_id ||
            (in->external_id && (!ext || strcmp(ext, in->external_id))))
            rc =
                sb_fail(b->err, b->errlen, SB_ERR_INTERNAL, "INSERT … RETURNING rows out of order");
        b->items[items[i]].res->interaction_id = sb_db_cell_int(&r, i, 0);
    }
    sb_db_rows_free(&r);
    jb_reset(&b->jb);
    return rc;
}

static int store_attachments(struct batch *b, const struct item *it)
{
    const struct sb_inbound *in = it->in;
    for (size_t i = 0; i < in->nattachments; i++) {
        const struct sb_inbound_attachment *att = &in->attachments[i];
        unsigned char hash[32];
        if (att->data) {
            int rc = store_blob(b, att->data, att->size, hash);
            if (rc != SB_OK)
                return rc;
        }
        struct sb_db_val a[] = {
            SB_INT(it->res->interaction_id),
            SB_TEXT(att->filename),
            SB_TEXT(att->content_type ? att->content_type : "application/octet-stream"),
            att->data || att->size ? SB_INT((int64_t)att->size) : SB_NULL,
            att->data ? SB_BLOB(hash, 32) : SB_NULL,
            SB_TEXT(att->content_id),
            SB_TEXT(att->inline_part ? "inline" : "attachment"),
            SB_TEXT(att->provider_ref),
        };
        int rc = sb_db_exec(b->db, q_attachment_insert, a, 8, NULL, b->err, b->errlen);
        if (rc != SB_OK)
            return rc;
    }
    return SB_OK;
}

/* Step 6. An edit later in the batch is inserted applied, as the update of
 * the stored row would have left it. */
static int store_interactions(struct batch *b)
{
    int rc = store_raw(b);
    size_t *chunk = malloc((b->n + 1) * sizeof *chunk), nchunk = 0;
    int64_t last = 0;
    if (rc == SB_OK && !chunk)
        rc = nomem(b);
    jb_reset(&b->jb);
    for (size_t i = 0; rc == SB_OK && i < b->n; i++) {
        struct item *it = &b->items[i];
        if (it->dup)
            continue;
        const struct sb_inbound *in = it->in;
        const struct srec *s = it->srec >= 0 ? &b->sr[it->srec] : NULL;
        int edited = s && s->edited;
        if (!edited && in->meta && !(it->meta_text = json_dumps(in->meta, JSON_COMPACT))) {
            rc = nomem(b);
            break;
        }
        /* Column caps (VARCHAR 998/512) are enforced here rather than
         * failing the message: a header this long is odd but still mail. */
        char subject[999], sender[513];
        struct jbuf *j = &b->jb;
        jb_open(j);
        jb_id(j, it->conv >= 0 ? b->vs[it->conv].id : 0);
        jb_id(j, it->client >= 0 ? b->cs[it->client].id : 0);
        jb_int(j, in->channel_id);
        jb_str(j, direction_names[in->direction]);
        jb_str(j, kind_names[in->kind]);
        jb_str(j, in->external_id);
        jb_str(j, in->message_id);
        jb_str(j, in->in_reply_to);
        jb_str(j, cut_utf8(in->sender, sizeof sender - 1, sender));
        jb_str(j, cut_utf8(in->subject, sizeof subject - 1, subject));
        /* The long values last: JSON_TABLE finds $[n] by skipping the
         * elements before it, for every column of every row, so a mail's
         * text in the middle was scanned over five times (the top of a
         * profile of bench/imap). */
        jb_int(j, (in->flags & 0xf) | (edited ? SB_IN_EDITED : 0));
        jb_str(j, in->parse_error);
        if (in->raw && in->raw_len)
            jb_hex(j, it->raw_hash, 32);
        else
            jb_null(j);
        jb_str(j, it->when);
        jb_str(j, edited ? s->text : in->text);
        jb_str(j, in->html);
        const char *meta = edited ? s->meta : it->meta_text;
        if (meta) /* a JSON null would be stored as the text "null" */
            jb_json(j, meta);
        jb_close(j);
        chunk[nchunk++] = i;
        if (j->len >= CHUNK_BYTES) {
            rc = flush_interactions(b, chunk, nchunk, &last);
            nchunk = 0;
        }
    }
    if (rc == SB_OK && nchunk)
        rc = flush_interactions(b, chunk, nchunk, &last);
    free(chunk);
    for (size_t i = 0; rc == SB_OK && i < b->n; i++)
        if (!b->items[i].dup)
            rc = store_attachments(b, &b->items[i]);
    /* Edits of interactions stored before this batch. */
    for (size_t i = 0; rc == SB_OK && i < b->nsr; i++) {
        const struct srec *s = &b->sr[i];
        if (s->creator >= 0 || !s->edited)
            continue;
        struct sb_db_val u[] = {SB_TEXT(s->text), SB_TEXT(s->meta), SB_INT(s->id)};
        rc = sb_db_exec(b->db, q_edit, u, 3, NULL, b->err, b->errlen);
    }
    return rc;
}

static void fill_results(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        struct sb_ingest_result *res = it->res;
        if (!it->dup) {
            res->client_id = it->client >= 0 ? b->cs[it->client].id : 0;
            res->conversation_id = it->conv >= 0 ? b->vs[it->conv].id : 0;
            continue;
        }
        const struct srec *s = &b->sr[it->srec];
        if (s->creator >= 0) {
            const struct sb_ingest_result *c = b->items[s->creator].res;
            res->interaction_id = c->interaction_id;
            res->conversation_id = c->conversation_id;
            res->client_id = c->client_id;
        } else {
            res->interaction_id = s->id;
            res->conversation_id = s->conv;
            res->client_id = s->client;
        }
    }
}

/* The events of the statement being built: RETURNING must give them back
 * in this order. */
struct evrow {
    const char *type;
    int64_t conversation_id, client_id;
    char *data; /* JSON text, owned */
};

static int flush_events(struct batch *b, struct evrow *ev, size_t *n, int64_t *last)
{
    struct sb_db_rows r = {0};
    pthread_once(&event_rows_once, event_rows_build);
    struct sb_db_val *a = malloc(4 * *n * sizeof *a);
    int rc = a && q_event_rows[*n] ? SB_OK : nomem(b);
    for (size_t i = 0; rc == SB_OK && i < *n; i++) {
        a[4 * i] = SB_TEXT(ev[i].type);
        a[4 * i + 1] = ev[i].conversation_id ? SB_INT(ev[i].conversation_id) : SB_NULL;
        a[4 * i + 2] = ev[i].client_id ? SB_INT(ev[i].client_id) : SB_NULL;
        a[4 * i + 3] = SB_TEXT(ev[i].data);
    }
    if (rc == SB_OK)
        rc = sb_db_exec(b->db, q_event_rows[*n], a, 4 * *n, &r, b->err, b->errlen);
    free(a);
    if (rc == SB_OK)
        rc = check_ids(b, &r, *n, last);
    for (size_t i = 0; rc == SB_OK && i < *n; i++)
        if (strcmp(sb_db_cell(&r, i, 1), ev[i].type) ||
            sb_db_cell_int(&r, i, 2) != ev[i].conversation_id ||
            sb_db_cell_int(&r, i, 3) != ev[i].client_id)
            rc =
                sb_fail(b->err, b->errlen, SB_ERR_INTERNAL, "INSERT … RETURNING rows out of order");
    sb_db_rows_free(&r);
    for (size_t i = 0; i < *n; i++)
        free(ev[i].data);
    *n = 0;
    return rc;
}

/* One event row, as sb_event_append() writes it; `data` is stolen. */
static int add_event(struct batch *b, struct evrow *ev, size_t *n, int64_t *last, const char *type,
                     int64_t conversation_id, int64_t client_id, json_t *data)
{
    if (!data)
        data = json_object();
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text)
        return nomem(b);
    ev[*n] = (struct evrow){type, conversation_id, client_id, text};
    b->ev_bytes = *n ? b->ev_bytes + strlen(text) : strlen(text);
    (*n)++;
    return *n < EVENT_ROWS_MAX && b->ev_bytes < CHUNK_BYTES ? SB_OK : flush_events(b, ev, n, last);
}

static json_t *interaction_created(const struct item *it)
{
    const struct sb_inbound *in = it->in;
    const struct sb_ingest_result *res = it->res;
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
    return json_pack("{s:I,s:o,s:o,s:I,s:s,s:s,s:s?,s:s,s:o,s:s,s:s?}", "id",
                     (json_int_t)res->interaction_id, "conversation_id",
                     res->conversation_id ? json_integer(res->conversation_id) : json_null(),
                     "client_id", res->client_id ? json_integer(res->client_id) : json_null(),
                     "channel_id", (json_int_t)in->channel_id, "kind", kind_names[in->kind],
                     "direction", direction_names[in->direction], "subject", in->subject, "preview",
                     preview, "flags", flags, "occurred_at", it->when, "conversation_status",
                     res->conversation_id ? it->conv_new_status : NULL);
}

/* Step 8: each inbound's events in the order the one-by-one version
 * appended them (client, conversation, interaction). */
static int store_events(struct batch *b)
{
    /* At most three events per inbound. */
    struct evrow *ev = malloc((3 * b->n + 1) * sizeof *ev);
    size_t nev = 0;
    int64_t last = 0;
    if (!ev)
        return nomem(b);
    int rc = SB_OK;
    jb_reset(&b->jb);
    for (size_t i = 0; rc == SB_OK && i < b->n; i++) {
        const struct item *it = &b->items[i];
        const struct sb_inbound *in = it->in;
        const struct sb_ingest_result *res = it->res;
        if (it->dup) {
            if (it->edit_event)
                rc = add_event(b, ev, &nev, &last, "interaction.updated", res->conversation_id,
                               res->client_id,
                               json_pack("{s:I,s:s,s:b}", "id", (json_int_t)res->interaction_id,
                                         "text", in->text, "edited", 1));
            continue;
        }
        if (it->client >= 0) {
            const struct cslot *c = &b->cs[it->client];
            if (res->client_created)
                rc = add_event(b, ev, &nev, &last, "client.created", 0, c->id,
                               json_pack("{s:I,s:s?}", "id", (json_int_t)c->id, "name", it->name));
            else if (it->client_event)
                rc = add_event(b, ev, &nev, &last, "client.updated", 0, c->id,
                               json_pack("{s:I,s:s}", "id", (json_int_t)c->id, "name", it->name));
            if (rc != SB_OK)
                break;
            if (res->conversation_created)
                rc = add_event(b, ev, &nev, &last, "conversation.created", res->conversation_id,
                               res->client_id,
                               json_pack("{s:I,s:I,s:I,s:s,s:s?}", "id",
                                         (json_int_t)res->conversation_id, "client_id",
                                         (json_int_t)res->client_id, "channel_id",
                                         (json_int_t)in->channel_id, "status", "open", "subject",
                                         in->subject));
            /* A message to an ongoing conversation says all the inbox needs
             * in its interaction.created (conversation status included); a
             * separate conversation.updated only when the status moved, so
             * a live message is one event, one frame per agent. */
            else if (strcmp(it->conv_new_status, it->conv_old_status) != 0)
                rc = add_event(b, ev, &nev, &last, "conversation.updated", res->conversation_id,
                               res->client_id,
                               json_pack("{s:I,s:s,s:b}", "id", (json_int_t)res->conversation_id,
                                         "status", it->conv_new_status, "reopened",
                                         strcmp(it->conv_new_status, it->conv_old_status) != 0));
        }
        if (rc == SB_OK)
            rc = add_event(b, ev, &nev, &last, "interaction.created", res->conversation_id,
                           res->client_id, interaction_created(it));
    }
    if (rc == SB_OK && nev)
        rc = flush_events(b, ev, &nev, &last);
    for (size_t i = 0; i < nev; i++) /* left by a failure */
        free(ev[i].data);
    free(ev);
    return rc;
}

/* Step 9: the assignee's "new message" notification (notify.h), one
 * set-oriented statement for the whole batch. Only client messages into a
 * conversation that existed before (a new one has no assignee yet); auto-
 * replies and bounces tell nobody anything. */
static int store_notifications(struct batch *b)
{
    size_t cap = 2, len = 0, k = 0;
    char *p = NULL;
    for (size_t i = 0; i < b->n; i++) {
        const struct item *it = &b->items[i];
        const struct sb_ingest_result *res = it->res;
        if (it->dup || it->in->direction != SB_DIR_IN || res->conversation_created ||
            !res->conversation_id || (it->in->flags & (SB_IN_AUTO_REPLY | SB_IN_BOUNCE)))
            continue;
        /* Nobody to tell: the conversation had no assignee when it was read
         * (under the client's lock, or by its thread). An assignment that
         * commits after this transaction's reads notifies from then on,
         * as it would a statement later. */
        if (it->conv >= 0 && !b->vs[it->conv].assignee)
            continue;
        if (!p) {
            cap = 64 * (b->n - i) + 2;
            if (!(p = malloc(cap)))
                return nomem(b);
            p[len++] = '[';
        }
        len += (size_t)snprintf(p + len, cap - len, "%s[%lld,%lld]", k++ ? "," : "",
                                (long long)res->conversation_id, (long long)res->interaction_id);
    }
    if (!p)
        return SB_OK;
    snprintf(p + len, cap - len, "]");
    int rc = sb_notify_inbound(b->db, p, b->err, b->errlen);
    free(p);
    return rc;
}

/* The steps of the DESIGN comment, inside the caller's transaction. */
static int ingest_all(struct sb_db *db, const struct sb_ingest_options *opt,
                      const struct sb_inbound *const *in, size_t n, struct sb_ingest_result *res,
                      int *lock_first, char *err, size_t errlen)
{
    struct batch b = {
        .db = db, .opt = opt, .n = n, .lock_first = *lock_first, .err = err, .errlen = errlen};
    b.items = calloc(n ? n : 1, sizeof *b.items);
    if (!b.items)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        b.items[i].in = in[i];
        b.items[i].res = &res[i];
        prepare_item(opt, &b.items[i]);
    }
    int rc = read_state(&b);
    if (rc == SB_OK)
        rc = find_stored(&b);
    if (rc == SB_OK)
        rc = resolve_clients(&b);
    if (rc == SB_OK)
        rc = store_clients(&b);
    if (rc == SB_OK)
        rc = place_conversations(&b);
    if (rc == SB_OK)
        rc = store_interactions(&b);
    if (rc == SB_OK)
        rc = verify_locks(&b);
    if (rc == SB_OK)
        rc = lock_threads(&b, 0);
    if (rc == SB_OK)
        rc = update_clients(&b);
    if (rc == SB_OK)
        rc = touch_conversations(&b);
    /* Events after the lock: the live tailer (ws.c) waits only briefly for
     * an event id that is not committed yet, so one must not be taken long
     * before its commit. */
    if (rc == SB_OK) {
        fill_results(&b);
        rc = store_events(&b);
    }
    if (rc == SB_OK)
        rc = store_notifications(&b);
    /* Another batch of the same people won the race: the next run locks
     * first, as it would otherwise likely lose again. */
    *lock_first |= b.stale;
    batch_free(&b);
    free(b.items);
    return rc;
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

int sb_ingest_batch(struct sb_db *db, const struct sb_ingest_options *opt,
                    const struct sb_inbound *const *in, size_t n, struct sb_ingest_result *res,
                    char *err, size_t errlen)
{
    return sb_ingest_batch_hook(db, opt, in, n, res, NULL, NULL, err, errlen);
}

int sb_ingest_batch_hook(struct sb_db *db, const struct sb_ingest_options *opt,
                         const struct sb_inbound *const *in, size_t n, struct sb_ingest_result *res,
                         sb_ingest_hook hook, void *arg, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int rc = validate(in[i], err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    int rc = SB_OK, lock_first = 0;
    for (int attempt = 0; attempt < INGEST_RETRIES; attempt++) {
        char msg[512] = "";
        int was_first = lock_first;
        rc = sb_db_exec(db, q_isolation, NULL, 0, NULL, msg, sizeof msg);
        if (rc == SB_OK)
            rc = sb_db_begin(db, msg, sizeof msg);
        if (rc == SB_OK && n)
            rc = ingest_all(db, opt, in, n, res, &lock_first, msg, sizeof msg);
        if (rc == SB_OK && hook)
            rc = hook(db, in, res, n, arg, msg, sizeof msg);
        if (rc == SB_OK) {
            rc = sb_db_commit(db, msg, sizeof msg);
            if (rc == SB_OK)
                return SB_OK;
        } else {
            sb_db_rollback(db);
        }
        if (rc != SB_ERR_RETRY)
            return sb_fail(err, errlen, rc, "%s", msg);
        /* Found stale: the winner has committed (its lock was awaited), so
         * run again at once. Lost another race: back off a little, with
         * jitter so the losers of one collision do not collide again. */
        if (lock_first && !was_first)
            continue;
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
