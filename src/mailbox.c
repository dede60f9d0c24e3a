/* Mailbox poller (see mailbox.h).
 *
 * DESIGN
 * Scheduling. One list of mailboxes (struct box) under mb->mu; each box is
 * either free (due at `due`) or busy (held by one worker, which then owns
 * every field not marked "mu"). A worker loop: scan the channels table when
 * the scan is due (one worker at a time), else take the free box due
 * soonest and run one step() on it, else sleep on the condition variable
 * until something is due.
 *
 * A step: (1) take or renew the lease; (2) connect and log in when there is
 * no session; (3) sync every folder; (4) then either IDLE on the last
 * folder for a while (the box is exclusive: no more boxes than threads, so
 * holding the thread starves no one) and come back due at once, or leave
 * the session open (exclusive, no IDLE) or log out (shared), due again
 * after poll_seconds. A failure records the channel's status, closes the
 * session and backs off (5 s doubling to 5 min).
 *
 * Sync of one folder: EXAMINE (read-only), compare UIDVALIDITY with the
 * cursor, then walk UID windows of WINDOW up to UIDNEXT-1: list UIDs and
 * sizes, fetch bodies (BODY.PEEK[]) in batches of imap.batch messages or
 * BATCH_BYTES, parse each, store the batch with sb_ingest_batch_hook()
 * whose hook, inside the same transaction, checks and extends the lease
 * (fencing), moves the cursor to the batch's last UID and records bounce
 * suppressions. A batch the database refuses as a whole is stored one by
 * one; a message refused alone is quarantined raw (the cursor passes it in
 * that same transaction), so one broken message never blocks the rest.
 *
 * Memory is bounded by a window's UID list plus one batch, whatever the
 * size of the mailbox. */
#include "switchboard/mailbox.h"
#include "switchboard/campaign.h"
#include "switchboard/ws.h"
#include "switchboard/channel.h"
#include "switchboard/channel_store.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/identity.h"
#include "switchboard/imap.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"
#include "switchboard/log.h"
#include "switchboard/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 2000u /* UIDs listed per UID FETCH (UID RFC822.SIZE) */
#define BATCH_BYTES                                                                                \
    (16u * 1024 * 1024) /* a batch's fetched bytes, at most (one message may exceed) */
#define BACKOFF_MIN    5.0
#define BACKOFF_MAX    300.0
#define FAILING_AFTER  3 /* failures in a row before admins hear of it */
#define SOFT_THRESHOLD 3 /* soft bounces before an address is suppressed */

static const char q_scan[] =
    "SELECT id, name, SHA2(config, 256) FROM channels WHERE kind = 'email' AND enabled = 1 AND "
    "JSON_EXTRACT(config, '$.host') IS NOT NULL";
static const char q_lease_read[] =
    "SELECT owner, generation, expires_at > NOW(6) FROM leases WHERE name = ? FOR UPDATE";
static const char q_lease_insert[] = "INSERT INTO leases (name, owner, generation, expires_at) "
                                     "VALUES (?, ?, 1, NOW(6) + INTERVAL ? SECOND)";
static const char q_lease_take[] =
    "UPDATE leases SET owner = ?, generation = generation + 1, acquired_at = NOW(6), "
    "expires_at = NOW(6) + INTERVAL ? SECOND WHERE name = ?";
/* Renewal doubles as the fence: it only matches while the lease is still
 * ours, and inside a batch's transaction it locks the row until COMMIT. */
static const char q_lease_renew[] =
    "UPDATE leases SET expires_at = NOW(6) + INTERVAL ? SECOND "
    "WHERE name = ? AND owner = ? AND generation = ? AND expires_at > NOW(6)";
static const char q_lease_release[] =
    "UPDATE leases SET expires_at = NOW(6) WHERE name = ? AND owner = ? AND generation = ?";
static const char q_cursor_read[] =
    "SELECT uidvalidity, last_uid FROM channel_cursors WHERE channel_id = ? AND folder = ?";
static const char q_cursor_write[] =
    "INSERT INTO channel_cursors (channel_id, folder, uidvalidity, last_uid) VALUES (?, ?, ?, ?) "
    "ON DUPLICATE KEY UPDATE uidvalidity = VALUES(uidvalidity), last_uid = VALUES(last_uid)";
/* Hard bounces and complaints suppress at once; a weaker reason never
 * replaces a stronger one (a complaint stays a complaint). */
static const char q_suppress_hard[] =
    "INSERT INTO suppressions (email, reason, suppressed, last_status, source_interaction_id) "
    "VALUES (?, ?, 1, ?, ?) ON DUPLICATE KEY UPDATE "
    "reason = IF(reason IN ('unsubscribe', 'manual', 'complaint'), reason, VALUES(reason)), "
    "suppressed = 1, last_status = VALUES(last_status), "
    "source_interaction_id = VALUES(source_interaction_id)";
/* Soft bounces count; the address is suppressed once the count reaches the
 * threshold (assignments run left to right: soft_count is the new one). */
static const char q_suppress_soft[] =
    "INSERT INTO suppressions (email, reason, suppressed, soft_count, last_status, "
    "source_interaction_id) VALUES (?, 'soft_bounce', ?, 1, ?, ?) ON DUPLICATE KEY UPDATE "
    "soft_count = soft_count + 1, suppressed = IF(suppressed = 1 OR soft_count >= ?, 1, 0), "
    "last_status = VALUES(last_status), source_interaction_id = VALUES(source_interaction_id)";
static const char q_quarantine[] = "INSERT INTO raw_inbound (channel_id, source, error, "
                                   "content_type, body) VALUES (?, 'imap', ?, 'message/rfc822', ?)";

struct box {
    int64_t id;
    char name[101];
    char updated[72];     /* mu: digest of the configuration at the last scan */
    int busy;             /* mu */
    int removed;          /* mu: disabled or deleted; the next step lets go */
    int reload;           /* mu: configuration changed; reconnect */
    double due;           /* mu: monotonic seconds */
    struct sb_imap *imap; /* mu for the pointer (sb_imap_cancel); the holder uses it */

    struct sb_channel *ch; /* with secrets, loaded at connect */
    int64_t generation;    /* our lease's; 0 when we hold none */
    int fails;
    int failing; /* admins were told; they hear of the recovery */
    double sync_due;
    int idle_ok;
    /* where a sync's time goes, for the log line at its end */
    double t_fetch, t_parse, t_store;
    size_t n_synced;
};

struct sb_mailboxes {
    struct sb_db_params params;
    unsigned char key[32];
    int has_key;
    int nthreads, lease_s, scan_s, batch;
    struct sb_ingest_options opt;
    char *region;
    char owner[160];
    int wake[2]; /* written once at stop: IDLE polls it */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int scanning;
    double next_scan;
    struct box **boxes;
    size_t nboxes;
    pthread_t *threads;
    int started;

    unsigned long long fetched, errors, quarantined; /* __atomic */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int stopping(struct sb_mailboxes *mb)
{
    return __atomic_load_n(&mb->stopping, __ATOMIC_ACQUIRE);
}

static void count(unsigned long long *c, unsigned long long n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* ---- leases ---- */

static void lease_name(const struct box *b, char *out, size_t len)
{
    snprintf(out, len, "imap:%lld", (long long)b->id);
}

/* Take the box's lease or renew ours: 1 ours, 0 another node's, <0 error. */
static int lease_hold(struct sb_mailboxes *mb, struct sb_db *db, struct box *b, char *err,
                      size_t errlen)
{
    char name[64];
    lease_name(b, name, sizeof name);
    int rc = sb_db_begin(db, err, errlen);
    if (rc != SB_OK)
        return -1;
    struct sb_db_rows r;
    struct sb_db_val a[] = {SB_TEXT(name)};
    rc = sb_db_exec(db, q_lease_read, a, 1, &r, err, errlen);
    int ours = -1;
    if (rc == SB_OK && r.nrows == 0) {
        struct sb_db_val ins[] = {SB_TEXT(name), SB_TEXT(mb->owner), SB_INT(mb->lease_s)};
        rc = sb_db_exec(db, q_lease_insert, ins, 3, NULL, err, errlen);
        if (rc == SB_OK) {
            b->generation = 1;
            ours = 1;
        } else if (rc == SB_ERR_EXISTS) { /* another node inserted it first */
            ours = 0;
            rc = SB_OK;
        }
    } else if (rc == SB_OK) {
        int mine = !strcmp(sb_db_cell(&r, 0, 0), mb->owner);
        int live = sb_db_cell_int(&r, 0, 2) != 0;
        int64_t gen = sb_db_cell_int(&r, 0, 1);
        if (mine && live) {
            struct sb_db_val up[] = {SB_INT(mb->lease_s), SB_TEXT(name), SB_TEXT(mb->owner),
                                     SB_INT(gen)};
            rc = sb_db_exec(db, q_lease_renew, up, 4, NULL, err, errlen);
            b->generation = gen;
            ours = 1;
        } else if (!live) {
            struct sb_db_val up[] = {SB_TEXT(mb->owner), SB_INT(mb->lease_s), SB_TEXT(name)};
            rc = sb_db_exec(db, q_lease_take, up, 3, NULL, err, errlen);
            b->generation = gen + 1;
            ours = 1;
        } else {
            ours = 0;
        }
    }
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, errlen);
    else
        sb_db_rollback(db);
    if (rc != SB_OK || ours <= 0)
        b->generation = 0;
    return rc != SB_OK ? -1 : ours;
}

static void lease_release(struct sb_mailboxes *mb, struct sb_db *db, struct box *b)
{
    if (!b->generation || !db)
        return;
    char name[64], err[256] = "";
    lease_name(b, name, sizeof name);
    struct sb_db_val a[] = {SB_TEXT(name), SB_TEXT(mb->owner), SB_INT(b->generation)};
    if (sb_db_exec(db, q_lease_release, a, 3, NULL, err, sizeof err) != SB_OK)
        sb_warn("imap", "channel %lld: cannot release the lease: %s", (long long)b->id, err);
    b->generation = 0;
}

/* ---- storing a batch ---- */

struct hook_ctx {
    struct sb_mailboxes *mb;
    struct box *b;
    const char *folder;
    uint32_t uidvalidity;
    uint32_t cursor; /* the last UID the transaction covers */
    int lease_lost;
    /* quarantine instead of ingest: */
    const unsigned char *q_raw;
    size_t q_len;
    const char *q_error;
};

static int record_suppression(struct sb_db *db, const struct sb_inbound *in,
                              const struct sb_ingest_result *res, char *err, size_t errlen)
{
    json_t *bounce = json_object_get(in->meta, "bounce");
    json_t *complaint = json_object_get(in->meta, "complaint");
    const char *rcpt = json_string_value(json_object_get(bounce ? bounce : complaint, "recipient"));
    if (!rcpt || !*rcpt)
        return SB_OK;
    char addr[320], msg[128];
    if (sb_email_normalize(rcpt, addr, sizeof addr, NULL, 0, msg, sizeof msg) != SB_OK)
        return SB_OK; /* not an address we could ever mail */
    const char *cls = json_string_value(json_object_get(bounce, "class"));
    const char *status = json_string_value(json_object_get(bounce, "status"));
    char st[33];
    snprintf(st, sizeof st, "%s", status ? status : "");
    struct sb_db_val src = res->interaction_id ? SB_INT(res->interaction_id) : SB_NULL;
    /* The campaign message it reports on, if it is one of ours. */
    int rc = sb_campaign_bounce(
        db, json_string_value(json_object_get(bounce ? bounce : complaint, "original_message_id")),
        complaint ? "complaint" : cls, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (complaint || (cls && !strcmp(cls, "hard"))) {
        struct sb_db_val a[] = {SB_TEXT(addr), SB_TEXT(complaint ? "complaint" : "hard_bounce"),
                                SB_TEXT(st[0] ? st : NULL), src};
        return sb_db_exec(db, q_suppress_hard, a, 4, NULL, err, errlen);
    }
    if (cls && !strcmp(cls, "soft")) {
        struct sb_db_val a[] = {SB_TEXT(addr), SB_INT(SOFT_THRESHOLD <= 1),
                                SB_TEXT(st[0] ? st : NULL), src, SB_INT(SOFT_THRESHOLD)};
        return sb_db_exec(db, q_suppress_soft, a, 5, NULL, err, errlen);
    }
    return SB_OK;
}

static int in_txn(struct sb_db *db, const struct sb_inbound *const *in,
                  const struct sb_ingest_result *res, size_t n, void *arg, char *err, size_t errlen)
{
    struct hook_ctx *h = arg;
    char name[64];
    lease_name(h->b, name, sizeof name);
    struct sb_db_val la[] = {SB_INT(h->mb->lease_s), SB_TEXT(name), SB_TEXT(h->mb->owner),
                             SB_INT(h->b->generation)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_lease_renew, la, 4, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    uint64_t hit = r.affected;
    sb_db_rows_free(&r);
    if (hit != 1) {
        h->lease_lost = 1;
        return sb_fail(err, errlen, SB_ERR_FORBIDDEN,
                       "another node took over this mailbox (lease lost)");
    }
    struct sb_db_val ca[] = {SB_INT(h->b->id), SB_TEXT(h->folder), SB_INT(h->uidvalidity),
                             SB_INT(h->cursor)};
    rc = sb_db_exec(db, q_cursor_write, ca, 4, NULL, err, errlen);
    for (size_t i = 0; rc == SB_OK && i < n; i++)
        if ((in[i]->flags & SB_IN_BOUNCE) && !res[i].duplicate)
            rc = record_suppression(db, in[i], &res[i], err, errlen);
    if (rc == SB_OK && h->q_raw) {
        struct sb_db_val qa[] = {SB_INT(h->b->id), SB_TEXT(h->q_error),
                                 SB_BLOB(h->q_raw, h->q_len)};
        rc = sb_db_exec(db, q_quarantine, qa, 3, NULL, err, errlen);
    }
    return rc;
}

/* Failures that say nothing about the batch itself: the database or the
 * lease. Others (a statement refused) are worth retrying one by one. */
static int transient(int rc)
{
    return rc == SB_ERR_UNAVAILABLE || rc == SB_ERR_UNKNOWN_COMMIT || rc == SB_ERR_NOMEM ||
           rc == SB_ERR_IO || rc == SB_ERR_FORBIDDEN || rc == SB_ERR_RETRY;
}

struct fetched {
    struct sb_inbound **in;
    uint32_t *uid;
    size_t n, cap;
    int64_t channel_id;
    double parse_s;
    char err[256];
};

static int on_message(uint32_t uid, const unsigned char *raw, size_t len, void *arg)
{
    struct fetched *f = arg;
    if (f->n == f->cap)
        return sb_fail(f->err, sizeof f->err, SB_ERR_INTERNAL, "more messages than asked for");
    struct sb_inbound *in = NULL;
    double t0 = mono();
    int rc = sb_mime_parse(raw, len, &in, f->err, sizeof f->err);
    f->parse_s += mono() - t0;
    if (rc != SB_OK)
        return rc;
    in->channel_id = f->channel_id;
    f->in[f->n] = in;
    f->uid[f->n] = uid;
    f->n++;
    return SB_OK;
}

static void fetched_free(struct fetched *f)
{
    for (size_t i = 0; i < f->n; i++)
        sb_inbound_free(&f->in[i]);
    free(f->in);
    free(f->uid);
    memset(f, 0, sizeof *f);
}

static int store(struct sb_mailboxes *mb, struct sb_db *db, struct hook_ctx *h,
                 struct sb_inbound *const *in, size_t n, char *err, size_t errlen)
{
    struct sb_ingest_result *res = calloc(n ? n : 1, sizeof *res);
    if (!res)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    int rc = sb_ingest_batch_hook(db, &mb->opt, (const struct sb_inbound *const *)in, n, res,
                                  in_txn, h, err, errlen);
    free(res);
    if (rc == SB_OK && n)
        sb_ws_nudge(); /* new mail is on agents' screens now, not at the next poll */
    return rc;
}

/* Fetch `n` UIDs and store them; the cursor ends at `cursor_to`. */
static int fetch_store(struct sb_mailboxes *mb, struct sb_db *db, struct box *b, const char *folder,
                       uint32_t uidvalidity, const uint32_t *uids, size_t n, uint32_t cursor_to,
                       char *err, size_t errlen)
{
    struct fetched f = {.channel_id = b->id, .cap = n};
    f.in = calloc(n ? n : 1, sizeof *f.in);
    f.uid = calloc(n ? n : 1, sizeof *f.uid);
    if (!f.in || !f.uid) {
        fetched_free(&f);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    double t0 = mono();
    int rc = sb_imap_fetch(b->imap, uids, n, on_message, &f, err, errlen);
    double t1 = mono();
    b->t_fetch += t1 - t0 - f.parse_s;
    b->t_parse += f.parse_s;
    if (rc != SB_OK) {
        if (f.err[0])
            sb_fail(err, errlen, rc, "%s", f.err);
        fetched_free(&f);
        return rc;
    }
    struct hook_ctx h = {
        .mb = mb, .b = b, .folder = folder, .uidvalidity = uidvalidity, .cursor = cursor_to};
    char msg[512] = "";
    rc = store(mb, db, &h, f.in, f.n, msg, sizeof msg);
    b->t_store += mono() - t1;
    if (rc == SB_OK) {
        count(&mb->fetched, f.n);
        b->n_synced += f.n;
        fetched_free(&f);
        return SB_OK;
    }
    if (transient(rc) || h.lease_lost) {
        fetched_free(&f);
        return sb_fail(err, errlen, rc, "%s", msg);
    }
    /* One of them spoils the batch: one by one, and the one that fails
     * alone is kept raw in the quarantine. */
    sb_warn("imap", "channel %lld %s: a batch of %zu failed (%s); storing one by one",
            (long long)b->id, folder, f.n, msg);
    rc = SB_OK;
    for (size_t i = 0; i < f.n && rc == SB_OK; i++) {
        h.cursor = f.uid[i];
        h.q_raw = NULL;
        msg[0] = '\0';
        rc = store(mb, db, &h, &f.in[i], 1, msg, sizeof msg);
        if (rc == SB_OK) {
            count(&mb->fetched, 1);
            continue;
        }
        if (transient(rc) || h.lease_lost)
            break;
        char why[600];
        snprintf(why, sizeof why, "UID %u in %s could not be stored: %s", f.uid[i], folder, msg);
        sb_warn("imap", "channel %lld: %s; quarantined", (long long)b->id, why);
        h.q_raw = f.in[i]->raw;
        h.q_len = f.in[i]->raw_len;
        h.q_error = why;
        msg[0] = '\0';
        rc = store(mb, db, &h, NULL, 0, msg, sizeof msg);
        if (rc == SB_OK)
            count(&mb->quarantined, 1);
    }
    if (rc == SB_OK) {
        h.cursor = cursor_to;
        h.q_raw = NULL;
        rc = store(mb, db, &h, NULL, 0, msg, sizeof msg);
    }
    fetched_free(&f);
    return rc == SB_OK ? SB_OK : sb_fail(err, errlen, rc, "%s", msg);
}

static int write_cursor(struct sb_mailboxes *mb, struct sb_db *db, struct box *b,
                        const char *folder, uint32_t uidvalidity, uint32_t uid, char *err,
                        size_t errlen)
{
    struct hook_ctx h = {
        .mb = mb, .b = b, .folder = folder, .uidvalidity = uidvalidity, .cursor = uid};
    return store(mb, db, &h, NULL, 0, err, errlen);
}

static int sync_folder(struct sb_mailboxes *mb, struct sb_db *db, struct box *b, const char *folder,
                       int since_days, char *err, size_t errlen)
{
    struct sb_imap_folder f;
    int rc = sb_imap_examine(b->imap, folder, &f, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct sb_db_rows r;
    struct sb_db_val a[] = {SB_INT(b->id), SB_TEXT(folder)};
    rc = sb_db_exec(db, q_cursor_read, a, 2, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    int have = r.nrows > 0;
    uint32_t stored_validity = have ? (uint32_t)sb_db_cell_int(&r, 0, 0) : 0;
    uint32_t last = have ? (uint32_t)sb_db_cell_int(&r, 0, 1) : 0;
    sb_db_rows_free(&r);
    uint32_t top = f.uidnext ? f.uidnext - 1 : 0; /* 0: unknown, no upper bound */
    int fresh = !have || stored_validity != f.uidvalidity;
    if (have && stored_validity != f.uidvalidity) {
        sb_warn("imap", "channel %lld %s: UIDVALIDITY changed (%u -> %u); syncing the folder again",
                (long long)b->id, folder, stored_validity, f.uidvalidity);
        last = 0;
    } else if (!have && since_days > 0) {
        uint32_t first;
        rc = sb_imap_first_uid_since(b->imap, since_days, &first, err, errlen);
        if (rc != SB_OK)
            return rc;
        last = first ? first - 1 : top;
    }
    b->t_fetch = b->t_parse = b->t_store = 0;
    b->n_synced = 0;
    double started = mono();
    if (top && last >= top) {
        /* Nothing new; a new or reset cursor is still written, so the next
         * pass starts from here. */
        return fresh ? write_cursor(mb, db, b, folder, f.uidvalidity, top, err, errlen) : SB_OK;
    }
    while (!stopping(mb)) {
        uint32_t first = last + 1;
        uint32_t wend = top ? (top - last > WINDOW ? last + WINDOW : top) : 0;
        struct sb_imap_uid *list = NULL;
        size_t n = 0;
        rc = sb_imap_uids(b->imap, first, wend, &list, &n, err, errlen);
        if (rc != SB_OK)
            return rc;
        size_t i = 0;
        uint32_t *uids = n ? malloc(n * sizeof *uids) : NULL;
        if (n && !uids) {
            free(list);
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        }
        while (i < n && rc == SB_OK && !stopping(mb)) {
            size_t k = 0;
            unsigned long long bytes = 0;
            while (i + k < n && k < (size_t)mb->batch && (k == 0 || bytes < BATCH_BYTES)) {
                uids[k] = list[i + k].uid;
                bytes += list[i + k].size;
                k++;
            }
            /* The last batch of a window carries the cursor to the window's
             * end: UIDs below UIDNEXT that were not listed are gone. */
            uint32_t to = i + k == n && wend ? wend : uids[k - 1];
            rc = fetch_store(mb, db, b, folder, f.uidvalidity, uids, k, to, err, errlen);
            i += k;
        }
        free(uids);
        free(list);
        if (rc != SB_OK || stopping(mb))
            return rc;
        if (!n && wend) /* an empty window: step over it */
            rc = write_cursor(mb, db, b, folder, f.uidvalidity, wend, err, errlen);
        else if (!n && fresh)
            rc = write_cursor(mb, db, b, folder, f.uidvalidity, last, err, errlen);
        if (rc != SB_OK)
            return rc;
        if (!wend || wend >= top)
            break;
        last = wend;
    }
    if (b->n_synced)
        sb_info("imap",
                "channel %lld %s: %zu messages in %.1f s (IMAP %.1f s, MIME %.1f s, database "
                "%.1f s)",
                (long long)b->id, folder, b->n_synced, mono() - started, b->t_fetch, b->t_parse,
                b->t_store);
    return SB_OK;
}

/* ---- one step on one box ---- */

static void close_session(struct sb_mailboxes *mb, struct box *b)
{
    pthread_mutex_lock(&mb->mu);
    struct sb_imap *s = b->imap;
    b->imap = NULL;
    pthread_mutex_unlock(&mb->mu);
    sb_imap_close(&s);
}

static double backoff(int fails)
{
    double d = BACKOFF_MIN;
    for (int i = 1; i < fails && d < BACKOFF_MAX; i++)
        d *= 2;
    if (d > BACKOFF_MAX)
        d = BACKOFF_MAX;
    /* ±20% so that mailboxes failing together do not retry together. */
    return d * (0.8 + 0.4 * (double)randombytes_uniform(1000) / 1000.0);
}

static double failed(struct sb_mailboxes *mb, struct sb_db *db, struct box *b, const char *msg)
{
    close_session(mb, b);
    if (stopping(mb))
        return 0;
    __atomic_add_fetch(&b->fails, 1, __ATOMIC_RELAXED);
    count(&mb->errors, 1);
    sb_warn("imap", "channel %lld (%s): %s (failure %d in a row)", (long long)b->id, b->name, msg,
            b->fails);
    sb_channel_status(db, b->id, msg);
    if (b->fails >= FAILING_AFTER && !b->failing) {
        char err[256] = "";
        json_t *data = json_pack("{s:I,s:s,s:s,s:s,s:i}", "channel_id", (json_int_t)b->id, "kind",
                                 "email", "name", b->name, "error", msg, "failures", b->fails);
        if (sb_event_append(db, "channel.failing", 0, 0, 0, data, err, sizeof err) == SB_OK)
            b->failing = 1;
        else
            sb_warn("imap", "channel %lld: cannot record channel.failing: %s", (long long)b->id,
                    err);
    }
    return backoff(b->fails);
}

static void succeeded(struct sb_db *db, struct box *b)
{
    if (b->failing) {
        char err[256] = "";
        json_t *data = json_pack("{s:I,s:s,s:s,s:i}", "channel_id", (json_int_t)b->id, "kind",
                                 "email", "name", b->name, "failures", b->fails);
        if (sb_event_append(db, "channel.recovered", 0, 0, 0, data, err, sizeof err) == SB_OK)
            b->failing = 0;
        sb_info("imap", "channel %lld (%s): working again", (long long)b->id, b->name);
    }
    __atomic_store_n(&b->fails, 0, __ATOMIC_RELAXED);
    sb_channel_status(db, b->id, NULL);
}

static double step(struct sb_mailboxes *mb, struct sb_db *db, struct box *b, int exclusive)
{
    char err[512] = "";
    pthread_mutex_lock(&mb->mu);
    int reload = b->reload;
    b->reload = 0;
    pthread_mutex_unlock(&mb->mu);
    if (reload) {
        close_session(mb, b);
        sb_channel_free(&b->ch);
    }
    int held = b->generation != 0;
    int ours = lease_hold(mb, db, b, err, sizeof err);
    if (ours < 0) {
        sb_warn("imap", "channel %lld: lease: %s", (long long)b->id, err);
        close_session(mb, b);
        return BACKOFF_MIN;
    }
    if (!ours) {
        if (held)
            sb_info("imap", "channel %lld: another node has this mailbox now", (long long)b->id);
        close_session(mb, b);
        return mb->lease_s / 2.0;
    }
    double now = mono();
    if (b->imap && now < b->sync_due) /* only the lease needed renewing */
        return b->sync_due - now < mb->lease_s / 3.0 ? b->sync_due - now : mb->lease_s / 3.0;

    if (!b->ch) {
        int rc = sb_channel_load(db, mb->has_key ? mb->key : NULL, b->id, "email", &b->ch, err,
                                 sizeof err);
        if (rc != SB_OK)
            return failed(mb, db, b, err);
        snprintf(b->name, sizeof b->name, "%s", b->ch->name);
    }
    json_t *cfg = b->ch->config;
    int poll_s = (int)json_integer_value(json_object_get(cfg, "poll_seconds"));
    if (poll_s <= 0)
        poll_s = 60;
    if (!b->imap) {
        struct sb_imap_conf c;
        struct sb_imap *s = NULL;
        int rc = sb_imap_conf_read(cfg, &c, err, sizeof err);
        if (rc == SB_OK)
            rc = sb_imap_connect(&c, &s, err, sizeof err);
        if (rc != SB_OK)
            return failed(mb, db, b, err);
        pthread_mutex_lock(&mb->mu);
        b->imap = s;
        int stop = mb->stopping;
        pthread_mutex_unlock(&mb->mu);
        if (stop) /* stop() may have missed it: let go now */
            return failed(mb, db, b, "stopping");
        b->idle_ok = sb_imap_has_idle(s);
    }
    json_t *folders = json_object_get(cfg, "folders");
    int since_days = (int)json_integer_value(json_object_get(cfg, "since_days"));
    size_t i;
    json_t *fv;
    json_array_foreach(folders, i, fv)
    {
        if (stopping(mb))
            return 0;
        char ferr[512] = "";
        int rc = sync_folder(mb, db, b, json_string_value(fv), since_days, ferr, sizeof ferr);
        if (rc != SB_OK)
            return failed(mb, db, b, ferr);
    }
    succeeded(db, b);
    b->sync_due = mono() + poll_s;
    if (!exclusive) {
        close_session(mb, b);
        return poll_s;
    }
    if (b->idle_ok && !stopping(mb)) {
        /* Wait on the last folder examined; other folders are looked at
         * every poll_seconds, and the lease wants renewing meanwhile. */
        int wait = mb->lease_s / 3 > 1 ? mb->lease_s / 3 : 1;
        if (json_array_size(folders) > 1 && poll_s < wait)
            wait = poll_s;
        int rc = sb_imap_idle(b->imap, wait, mb->wake[0], err, sizeof err);
        if (rc != SB_OK && !stopping(mb))
            return failed(mb, db, b, err);
        b->sync_due = 0;
        return 0;
    }
    return poll_s < mb->lease_s / 3.0 ? poll_s : mb->lease_s / 3.0;
}

/* ---- scanning and the worker loop ---- */

static void scan(struct sb_mailboxes *mb, struct sb_db *db)
{
    struct sb_db_rows r;
    char err[512] = "";
    if (sb_db_exec(db, q_scan, NULL, 0, &r, err, sizeof err) != SB_OK) {
        sb_warn("imap", "cannot list the e-mail channels: %s", err);
        return;
    }
    pthread_mutex_lock(&mb->mu);
    for (size_t k = 0; k < mb->nboxes; k++)
        mb->boxes[k]->removed = 1;
    for (size_t i = 0; i < r.nrows; i++) {
        int64_t id = sb_db_cell_int(&r, i, 0);
        const char *updated = sb_db_cell(&r, i, 2) ? sb_db_cell(&r, i, 2) : "";
        struct box *b = NULL;
        for (size_t k = 0; k < mb->nboxes && !b; k++)
            if (mb->boxes[k]->id == id)
                b = mb->boxes[k];
        if (b) {
            b->removed = 0;
            if (strcmp(b->updated, updated)) {
                snprintf(b->updated, sizeof b->updated, "%s", updated);
                b->reload = 1;
                b->due = 0; /* a corrected configuration is tried at once */
            }
            continue;
        }
        struct box **nb = realloc(mb->boxes, (mb->nboxes + 1) * sizeof *nb);
        b = calloc(1, sizeof *b);
        if (!nb || !b) {
            free(b);
            if (nb)
                mb->boxes = nb;
            break;
        }
        mb->boxes = nb;
        b->id = id;
        snprintf(b->name, sizeof b->name, "%s", sb_db_cell(&r, i, 1));
        snprintf(b->updated, sizeof b->updated, "%s", updated);
        b->due = 0;
        mb->boxes[mb->nboxes++] = b;
        sb_info("imap", "channel %lld (%s): mailbox found", (long long)id, b->name);
    }
    pthread_cond_broadcast(&mb->cv);
    pthread_mutex_unlock(&mb->mu);
    sb_db_rows_free(&r);
}

static void box_free(struct box *b)
{
    sb_imap_close(&b->imap);
    sb_channel_free(&b->ch);
    free(b);
}

/* mu held. A removed box is due at once so that a worker lets it go. */
static struct box *pick(struct sb_mailboxes *mb, double now, double *next_r)
{
    struct box *best = NULL;
    double next = mb->next_scan;
    for (size_t k = 0; k < mb->nboxes; k++) {
        struct box *b = mb->boxes[k];
        if (b->busy)
            continue;
        double due = b->removed ? 0 : b->due;
        if (due <= now && (!best || due < best->due))
            best = b;
        else if (due < next)
            next = due;
    }
    *next_r = next;
    return best;
}

static void drop(struct sb_mailboxes *mb, struct box *b)
{
    for (size_t k = 0; k < mb->nboxes; k++)
        if (mb->boxes[k] == b) {
            mb->boxes[k] = mb->boxes[--mb->nboxes];
            break;
        }
}

static void *worker(void *arg)
{
    struct sb_mailboxes *mb = arg;
    struct sb_db *db = NULL;
    pthread_mutex_lock(&mb->mu);
    while (!mb->stopping) {
        double now = mono();
        if (!db) {
            char err[512] = "";
            pthread_mutex_unlock(&mb->mu);
            int rc = sb_db_open(&mb->params, 0, &db, err, sizeof err);
            pthread_mutex_lock(&mb->mu);
            if (rc != SB_OK) {
                sb_warn("imap", "poller cannot reach the database: %s", err);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 5;
                pthread_cond_timedwait(&mb->cv, &mb->mu, &ts);
                continue;
            }
        }
        if (!mb->scanning && now >= mb->next_scan) {
            mb->scanning = 1;
            pthread_mutex_unlock(&mb->mu);
            scan(mb, db);
            pthread_mutex_lock(&mb->mu);
            mb->scanning = 0;
            mb->next_scan = mono() + mb->scan_s;
            continue;
        }
        double next;
        struct box *b = pick(mb, now, &next);
        if (!b) {
            double wait = next - now;
            if (wait > 60)
                wait = 60;
            if (wait < 0.01)
                wait = 0.01;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long long ns = (long long)ts.tv_nsec + (long long)((wait - (long long)wait) * 1e9);
            ts.tv_sec += (time_t)wait + (time_t)(ns / 1000000000LL);
            ts.tv_nsec = (long)(ns % 1000000000LL);
            pthread_cond_timedwait(&mb->cv, &mb->mu, &ts);
            continue;
        }
        b->busy = 1;
        int removed = b->removed;
        int exclusive = mb->nboxes <= (size_t)mb->nthreads;
        pthread_mutex_unlock(&mb->mu);
        double delay = 0;
        if (removed) {
            close_session(mb, b);
            lease_release(mb, db, b);
        } else {
            delay = step(mb, db, b, exclusive);
        }
        pthread_mutex_lock(&mb->mu);
        b->busy = 0;
        b->due = mono() + delay;
        if (removed && b->removed) {
            drop(mb, b);
            sb_info("imap", "channel %lld (%s): mailbox let go", (long long)b->id, b->name);
            box_free(b);
        }
        pthread_cond_broadcast(&mb->cv);
    }
    pthread_mutex_unlock(&mb->mu);
    sb_db_close(&db);
    return NULL;
}

/* ---- start, stop, stats ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int sb_mailboxes_start(const struct sb_config *cfg, const struct sb_db_params *params,
                       const unsigned char *key, struct sb_mailboxes **mb_r, char *err,
                       size_t errlen)
{
    *mb_r = NULL;
    struct sb_mailboxes *mb = calloc(1, sizeof *mb);
    if (!mb)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    mb->wake[0] = mb->wake[1] = -1;
    mb->params.user = dup_or_null(params->user);
    mb->params.password = dup_or_null(params->password);
    mb->params.host = dup_or_null(params->host);
    mb->params.port = params->port;
    mb->params.database = dup_or_null(params->database);
    mb->params.socket = dup_or_null(params->socket);
    if (key) {
        memcpy(mb->key, key, sizeof mb->key);
        mb->has_key = 1;
    }
    mb->nthreads = cfg->imap_max_threads > 0 ? cfg->imap_max_threads : 4;
    mb->lease_s = cfg->imap_lease_seconds > 0 ? cfg->imap_lease_seconds : 60;
    mb->scan_s = cfg->imap_scan_seconds > 0 ? cfg->imap_scan_seconds : 10;
    mb->batch = cfg->imap_batch > 0 ? cfg->imap_batch : 200;
    mb->region = dup_or_null(cfg->default_region);
    mb->opt.default_region = mb->region;
    mb->opt.reopen_window_s = cfg->reopen_window;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    unsigned char rnd[6];
    char hex[13];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
    snprintf(mb->owner, sizeof mb->owner, "%s:%d:%s", host, (int)getpid(), hex);
    mb->threads = calloc((size_t)mb->nthreads, sizeof *mb->threads);
    if ((params->user && !mb->params.user) || (params->host && !mb->params.host) ||
        (params->database && !mb->params.database) || !mb->threads || pipe(mb->wake) != 0) {
        sb_mailboxes_stop(&mb);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "cannot set up the mailbox poller");
    }
    fcntl(mb->wake[0], F_SETFD, FD_CLOEXEC);
    fcntl(mb->wake[1], F_SETFD, FD_CLOEXEC);
    pthread_mutex_init(&mb->mu, NULL);
    pthread_cond_init(&mb->cv, NULL);
    for (int i = 0; i < mb->nthreads; i++) {
        if (pthread_create(&mb->threads[i], NULL, worker, mb) != 0) {
            sb_mailboxes_stop(&mb);
            return sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start mailbox threads");
        }
        mb->started++;
    }
    sb_info("imap", "mailbox poller: %d threads, lease %d s", mb->nthreads, mb->lease_s);
    *mb_r = mb;
    return SB_OK;
}

void sb_mailboxes_stop(struct sb_mailboxes **mbp)
{
    struct sb_mailboxes *mb = *mbp;
    if (!mb)
        return;
    if (mb->started) {
        pthread_mutex_lock(&mb->mu);
        __atomic_store_n(&mb->stopping, 1, __ATOMIC_RELEASE);
        if (mb->wake[1] >= 0) {
            ssize_t w = write(mb->wake[1], "x", 1);
            (void)w;
        }
        for (size_t k = 0; k < mb->nboxes; k++)
            if (mb->boxes[k]->busy)
                sb_imap_cancel(mb->boxes[k]->imap);
        pthread_cond_broadcast(&mb->cv);
        pthread_mutex_unlock(&mb->mu);
        for (int i = 0; i < mb->started; i++)
            pthread_join(mb->threads[i], NULL);
        /* Let other nodes (or our own restart) take the mailboxes at once. */
        struct sb_db *db = NULL;
        char err[256] = "";
        int have_db = 0;
        for (size_t k = 0; k < mb->nboxes; k++)
            if (mb->boxes[k]->generation && !have_db)
                have_db = sb_db_open(&mb->params, 0, &db, err, sizeof err) == SB_OK ? 1 : -1;
        for (size_t k = 0; k < mb->nboxes; k++) {
            if (have_db > 0)
                lease_release(mb, db, mb->boxes[k]);
            box_free(mb->boxes[k]);
        }
        sb_db_close(&db);
        pthread_mutex_destroy(&mb->mu);
        pthread_cond_destroy(&mb->cv);
        sb_info("imap", "mailbox poller stopped");
    }
    free(mb->boxes);
    free(mb->threads);
    if (mb->wake[0] >= 0)
        close(mb->wake[0]);
    if (mb->wake[1] >= 0)
        close(mb->wake[1]);
    free(mb->region);
    sodium_memzero(mb->key, sizeof mb->key);
    sb_db_params_free(&mb->params);
    free(mb);
    *mbp = NULL;
}

void sb_mailboxes_stats(struct sb_mailboxes *mb, struct sb_mailbox_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!mb)
        return;
    pthread_mutex_lock(&mb->mu);
    st->mailboxes = (unsigned)mb->nboxes;
    for (size_t k = 0; k < mb->nboxes; k++) /* `fails` is the holder's: read it atomically */
        st->failing += __atomic_load_n(&mb->boxes[k]->fails, __ATOMIC_RELAXED) >= FAILING_AFTER;
    pthread_mutex_unlock(&mb->mu);
    st->fetched = __atomic_load_n(&mb->fetched, __ATOMIC_RELAXED);
    st->errors = __atomic_load_n(&mb->errors, __ATOMIC_RELAXED);
    st->quarantined = __atomic_load_n(&mb->quarantined, __ATOMIC_RELAXED);
}
