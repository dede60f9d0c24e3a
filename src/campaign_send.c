/* The campaign sender (campaign_send.h).
 *
 * DESIGN
 *   driver thread: refresh running campaigns (SB_CAMP_REFRESH_MS), claim
 *   due recipient rows into `pending`, write `done` results in one
 *   transaction per round, finish campaigns with nothing left.
 *   worker threads (opt->connections): pop from `pending`, pace, render,
 *   compose, submit over the worker's own curl easy handle (its connection
 *   stays open between messages), push the result onto `done`.
 *
 * Locking: cs->lock guards pending, done, the campaign list's `stopped`
 * flags and each campaign's pacing slot. Everything the driver reads from
 * the database stays on the driver thread. A campaign context is shared by
 * its items; it is freed when its refcount (under the lock) drops to 0. */
#include "switchboard/campaign_send.h"
#include "switchboard/campaign.h"
#include "switchboard/channel.h"
#include "switchboard/channel_store.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/mailcompose.h"
#include "switchboard/send_journal.h"
#include "switchboard/template.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECTIONS_MAX 64

struct camp {
    int64_t id, channel_id;
    int refs;    /* under cs->lock */
    int stopped; /* under cs->lock: paused, cancelled or gone */
    int seen;    /* driver only: still running at the last refresh */
    int rate;
    double next_slot; /* under cs->lock: monotonic time of the next send */
    char url[600], domain[256], from[1000], mail_from[330];
    char *username, *password;
    int require_tls, tls_verify;
    char *subject, *html, *text;
    char salt[17];
    struct camp *next; /* driver's list */
};

enum outcome { OUT_SENT, OUT_RETRY, OUT_FAILED, OUT_SKIPPED, OUT_RELEASED };

struct item {
    struct camp *c;
    int64_t rid, client_id;
    int attempts;
    char *email, *name, *custom;
    int suppressed;
    unsigned char token[16];
    unsigned jfile; /* the send journal's file with its H line; 0: none */
    /* result */
    enum outcome outcome;
    char message_id[320];
    char error[512];
    char *subject, *text; /* what was sent, for the interaction */
    struct item *next;
};

struct sb_campaign_sender {
    pthread_t driver;
    pthread_t workers[CONNECTIONS_MAX];
    int nworkers;
    pthread_mutex_t lock;
    pthread_cond_t work_cv, done_cv;
    int stop;
    struct item *pending, *pending_tail;
    size_t npending;
    struct item *done;
    size_t inflight; /* popped by a worker, result not yet pushed */
    pthread_t writer;
    pthread_cond_t result_cv; /* results waiting in `done` */
    int writer_stop;          /* under lock: workers are gone, write the rest and end */
    /* writer thread only */
    struct sb_db *wdb;
    /* counters for the log line at stop (__atomic) */
    unsigned long long n_sent, n_connects, n_batches;
    double write_s, stmt_s[4]; /* writer: conversations, read-back, interactions, rows */
    /* the send journal (send_journal.h): NULL when it could not be opened */
    struct sb_journal *journal;
    char journal_dir[PATH_MAX];
    char journal_tag[SB_JOURNAL_TAG_MAX];
    unsigned long long n_journal_errors; /* __atomic */
    /* driver only */
    struct sb_db *db;
    struct camp *camps;
    unsigned char key[32];    /* signs links (sb_camp_key) */
    unsigned char master[32]; /* opens channel secrets */
    int has_key;
    int lease_s;
    char public_url[512];
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void camp_unref_locked(struct camp *c)
{
    if (--c->refs > 0)
        return;
    free(c->username);
    free(c->password);
    free(c->subject);
    free(c->html);
    free(c->text);
    sodium_memzero(c, sizeof *c);
    free(c);
}

static void item_free(struct item *it)
{
    free(it->email);
    free(it->name);
    free(it->custom);
    free(it->subject);
    free(it->text);
    free(it);
}

/* -- Rendering ------------------------------------------------------------- */

struct link_ctx {
    const struct sb_camp_render_in *in;
};

static char *link_url(const struct sb_camp_render_in *in, int kind, const char *target)
{
    char tok[SB_CAMP_TOKEN_MAX + 1];
    if (sb_camp_token_make(in->key, kind, in->campaign_id ? in->campaign_id : 1,
                           in->recipient_id ? in->recipient_id : 1, target, tok,
                           sizeof tok) != SB_OK)
        return NULL;
    const char *path = kind == SB_TOK_CLICK  ? "t/c"
                       : kind == SB_TOK_OPEN ? "t/o"
                       : kind == SB_TOK_VIEW ? "v"
                                             : "u";
    char *u = NULL, *q = NULL;
    if (kind == SB_TOK_CLICK) {
        /* The target beside the token, percent-encoded. */
        size_t n = strlen(target);
        q = malloc(n * 3 + 1);
        if (!q)
            return NULL;
        char *w = q;
        for (const unsigned char *p = (const unsigned char *)target; *p; p++) {
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                *p == '-' || *p == '_' || *p == '.' || *p == '~')
                *w++ = (char)*p;
            else
                w += sprintf(w, "%%%02X", *p);
        }
        *w = '\0';
    }
    if (asprintf(&u, "%s/%s/%s%s%s", in->public_url, path, tok, q ? "?u=" : "", q ? q : "") < 0)
        u = NULL;
    free(q);
    return u;
}

static char *on_link(const char *url, void *arg)
{
    struct link_ctx *l = arg;
    return link_url(l->in, SB_TOK_CLICK, url);
}

int sb_camp_render(const struct sb_camp_render_in *in, struct sb_camp_render_out *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *custom = in->custom_json ? json_loads(in->custom_json, 0, &je) : NULL;
    char *unsub = link_url(in, SB_TOK_UNSUB, NULL), *view = link_url(in, SB_TOK_VIEW, NULL);
    int rc = unsub && view ? SB_OK : sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct sb_tpl_vars v = {.name = in->name,
                            .email = in->email,
                            .custom = json_is_object(custom) ? custom : NULL,
                            .unsubscribe_url = unsub,
                            .view_url = view};
    struct link_ctx l = {in};
    if (rc == SB_OK)
        rc = sb_tpl_render(in->subject, 0, &v, NULL, NULL, &out->subject, NULL, err, errlen);
    if (rc == SB_OK && in->text && *in->text)
        rc = sb_tpl_render(in->text, 0, &v, NULL, NULL, &out->text, NULL, err, errlen);
    if (rc == SB_OK && in->html && *in->html)
        rc = sb_tpl_render(in->html, 1, &v, in->track ? on_link : NULL, &l, &out->html, NULL, err,
                           errlen);
    /* A visible unsubscribe link in every part that lacks one. */
    int text_has = in->text && strstr(in->text, "unsubscribe_url");
    int html_has = in->html && strstr(in->html, "unsubscribe_url");
    if (rc == SB_OK && out->text && !text_has) {
        char *t = NULL;
        if (asprintf(&t, "%s\r\n\r\n--\r\nUnsubscribe: %s\r\n", out->text, unsub) < 0)
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        free(out->text);
        out->text = t;
    }
    if (rc == SB_OK && out->html) {
        char *pixel = in->track ? link_url(in, SB_TOK_OPEN, NULL) : NULL;
        char *t = NULL;
        const char *body_end = strstr(out->html, "</body>");
        int at = body_end ? (int)(body_end - out->html) : (int)strlen(out->html);
        if (asprintf(&t, "%.*s%s%s%s%s%s%s", at, out->html,
                     html_has ? "" : "<p style=\"font-size:12px;color:#666\"><a href=\"",
                     html_has ? "" : unsub, html_has ? "" : "\">Unsubscribe</a></p>",
                     pixel ? "<img src=\"" : "", pixel ? pixel : "",
                     pixel ? "\" width=\"1\" height=\"1\" alt=\"\">" : "") < 0 ||
            !t)
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        if (t) {
            char *full = NULL;
            if (asprintf(&full, "%s%s", t, out->html + at) < 0)
                full = NULL;
            free(t);
            t = full;
            if (!t)
                rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        }
        free(out->html);
        out->html = t;
        free(pixel);
    }
    if (unsub)
        snprintf(out->unsubscribe_url, sizeof out->unsubscribe_url, "%s", unsub);
    free(unsub);
    free(view);
    json_decref(custom);
    if (rc != SB_OK)
        sb_camp_render_free(out);
    return rc;
}

void sb_camp_render_free(struct sb_camp_render_out *out)
{
    free(out->subject);
    free(out->html);
    free(out->text);
    memset(out, 0, sizeof *out);
}

/* -- Workers ------------------------------------------------------------- */

struct upload {
    const char *p;
    size_t len, off;
    struct sb_campaign_sender *cs;
    struct item *it;
};

/* Returning 0 ends the body: curl sends the end-of-data "<CRLF>.<CRLF>" at
 * once, in the same call chain (7.88: Curl_done_sending, then smtp_done
 * writes it; 8.x: the EOB client reader appends it to the same read). So
 * the journal line written here precedes the hand-over by microseconds.
 * Before, not after: a kill -9 between the two loses that one message
 * (journalled, never completed), where after it would duplicate it — but
 * curl has no hook between sending the EOB and reading the 250, and the
 * next one (the 250) leaves a window of a round trip plus the server's
 * queue-file fsync, a thousand times longer. CURLOPT_INFILESIZE is not set
 * so that the callback is always asked once more at the end: with a known
 * size, curl 7.88 ends the upload after the last byte without asking. */
static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct upload *u = arg;
    size_t room = size * n, left = u->len - u->off, take = left < room ? left : room;
    if (!take && u->it && !u->it->jfile && u->cs->journal) {
        char err[256] = "";
        if (sb_journal_handed(u->cs->journal, u->it->c->id, u->it->rid, u->it->token, &u->it->jfile,
                              err, sizeof err) != SB_OK &&
            !__atomic_fetch_add(&u->cs->n_journal_errors, 1, __ATOMIC_RELAXED))
            /* Sent anyway: without its line the message is at-least-once
             * (re-sent after a crash), as without a journal. Logged once. */
            sb_warn("campaigns", "send journal: %s (sending continues without it)", err);
    }
    memcpy(buf, u->p + u->off, take);
    u->off += take;
    return take;
}

static size_t on_discard(char *d, size_t size, size_t n, void *arg)
{
    (void)d, (void)arg;
    return size * n;
}

/* The recipient's message exactly as it is sent: it->message_id and the
 * rendered parts in *r (the caller frees them). Also used by recovery to
 * record a journalled message the way the writer records a sent one. */
static int render_item(struct sb_campaign_sender *cs, struct item *it, struct sb_camp_render_out *r,
                       char *err, size_t errlen)
{
    struct camp *c = it->c;
    snprintf(it->message_id, sizeof it->message_id, "c%lldr%lld.%s@%s", (long long)c->id,
             (long long)it->rid, c->salt, c->domain);
    struct sb_camp_render_in in = {.key = cs->key,
                                   .public_url = cs->public_url,
                                   .campaign_id = c->id,
                                   .recipient_id = it->rid,
                                   .subject = c->subject,
                                   .html = c->html,
                                   .text = c->text,
                                   .name = it->name,
                                   .email = it->email,
                                   .custom_json = it->custom,
                                   .track = 1};
    return sb_camp_render(&in, r, err, errlen);
}

/* Render, compose and submit one message; fills it->outcome. */
static void deliver(struct sb_campaign_sender *cs, CURL *e, struct item *it)
{
    struct camp *c = it->c;
    struct sb_camp_render_out r;
    char err[512] = "";
    if (render_item(cs, it, &r, err, sizeof err) != SB_OK) {
        it->outcome = OUT_FAILED;
        snprintf(it->error, sizeof it->error, "render: %s", err);
        return;
    }
    char mailto[700], lu[2048];
    snprintf(mailto, sizeof mailto, "%s", c->mail_from);
    snprintf(lu, sizeof lu, "List-Unsubscribe: <mailto:%s?subject=unsubscribe>, <%s>", mailto,
             r.unsubscribe_url);
    const char *extra[] = {lu, "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                           "Precedence: bulk"};
    const char *to[] = {it->email};
    struct sb_mail_out m = {.from = c->from,
                            .to = to,
                            .nto = 1,
                            .subject = r.subject,
                            .text = r.text,
                            .html = r.html,
                            .message_id = it->message_id,
                            .extra_headers = extra,
                            .nextra = 3};
    char *msg = NULL;
    size_t len = 0;
    if (sb_mail_compose(&m, &msg, &len, err, sizeof err) != SB_OK) {
        it->outcome = OUT_FAILED;
        snprintf(it->error, sizeof it->error, "compose: %s", err);
        sb_camp_render_free(&r);
        return;
    }
    it->subject = r.subject;
    it->text = r.text ? r.text : NULL;
    r.subject = r.text = NULL;
    sb_camp_render_free(&r);

    struct upload up = {msg, len, 0, cs, it};
    struct curl_slist *rcpt = curl_slist_append(NULL, it->email);
    char errbuf[CURL_ERROR_SIZE] = "";
    /* curl_easy_reset keeps the connection cache: the next message goes
     * over the same SMTP session (RSET-free: curl starts MAIL FROM). */
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, c->mail_from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &up);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_discard);
    if (c->username)
        curl_easy_setopt(e, CURLOPT_USERNAME, c->username);
    if (c->password)
        curl_easy_setopt(e, CURLOPT_PASSWORD, c->password);
    if (c->require_tls)
        curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (!c->tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode cc = curl_easy_perform(e);
    long code = 0, connects = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
    if (connects > 0)
        __atomic_fetch_add(&cs->n_connects, (unsigned long long)connects, __ATOMIC_RELAXED);
    curl_slist_free_all(rcpt);
    free(msg);
    if (cc == CURLE_OK) {
        it->outcome = OUT_SENT;
        __atomic_fetch_add(&cs->n_sent, 1, __ATOMIC_RELAXED);
        return;
    }
    if (it->jfile) {
        /* Handed over but not taken (a refusal at end of data, or no
         * answer): a restart must not count it as sent. */
        char jerr[256] = "";
        if (sb_journal_refused(cs->journal, it->jfile, c->id, it->rid, it->token, jerr,
                               sizeof jerr) != SB_OK)
            sb_warn("campaigns", "send journal: %s", jerr);
    }
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    /* A 5xx reply is the server's final word on this recipient; no reply
     * or 4xx is worth another try later. */
    it->outcome = code >= 500 && code < 600 ? OUT_FAILED : OUT_RETRY;
    snprintf(it->error, sizeof it->error, "%ld %s", code, why);
    for (char *p = it->error; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

static void *worker(void *arg)
{
    struct sb_campaign_sender *cs = arg;
    CURL *e = curl_easy_init();
    pthread_mutex_lock(&cs->lock);
    for (;;) {
        while (!cs->stop && !cs->pending)
            pthread_cond_wait(&cs->work_cv, &cs->lock);
        if (cs->stop)
            break;
        struct item *it = cs->pending;
        cs->pending = it->next;
        if (!cs->pending)
            cs->pending_tail = NULL;
        cs->npending--;
        cs->inflight++;
        struct camp *c = it->c;
        double wait = 0;
        if (c->stopped) {
            it->outcome = OUT_RELEASED;
        } else if (it->suppressed) {
            it->outcome = OUT_SKIPPED;
            snprintf(it->error, sizeof it->error, "address suppressed");
        } else if (c->rate > 0) {
            double now = mono();
            if (c->next_slot < now)
                c->next_slot = now;
            wait = c->next_slot - now;
            c->next_slot += 1.0 / c->rate;
            it->outcome = OUT_SENT; /* to be sent below */
        } else {
            it->outcome = OUT_SENT;
        }
        pthread_mutex_unlock(&cs->lock);
        if (it->outcome == OUT_SENT) {
            /* Sleep in short steps so pause and stop are noticed. */
            while (wait > 0) {
                double step = wait > 0.1 ? 0.1 : wait;
                struct timespec ts = {0, (long)(step * 1e9)};
                nanosleep(&ts, NULL);
                wait -= step;
                pthread_mutex_lock(&cs->lock);
                int halt = cs->stop || c->stopped;
                pthread_mutex_unlock(&cs->lock);
                if (halt)
                    break;
            }
            pthread_mutex_lock(&cs->lock);
            int halt = cs->stop || c->stopped;
            pthread_mutex_unlock(&cs->lock);
            if (halt)
                it->outcome = OUT_RELEASED;
            else if (!e) {
                it->outcome = OUT_RETRY;
                snprintf(it->error, sizeof it->error, "cannot start libcurl");
            } else
                deliver(cs, e, it);
        }
        pthread_mutex_lock(&cs->lock);
        it->next = cs->done;
        cs->done = it;
        cs->inflight--;
        pthread_cond_signal(&cs->result_cv);
        pthread_cond_signal(&cs->done_cv);
    }
    pthread_mutex_unlock(&cs->lock);
    if (e)
        curl_easy_cleanup(e);
    return NULL;
}

/* -- Driver: results ------------------------------------------------------- */

/* -- name: campaign-recipient-sent
 * Written only while our claim owns the row (see outbox.h). */
static const char q_sent[] =
    "UPDATE campaign_recipients SET status = 'sent', sent_at = NOW(6), message_id = ?, "
    "interaction_id = COALESCE(?, interaction_id), "
    "claim_token = NULL, claimed_until = NULL, last_error = NULL WHERE id = ? AND claim_token = ?";
static const char q_conv[] =
    "INSERT INTO conversations (client_id, channel_id, status, subject, last_activity_at, "
    "resolved_at, last_outbound_at) VALUES (?, ?, 'resolved', ?, NOW(6), NOW(6), NOW(6))";
static const char q_interaction[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, "
    "external_id, message_id, sender, subject, text, meta, delivery_status) VALUES (?, ?, ?, "
    "'out', 'email', ?, ?, ?, ?, ?, JSON_OBJECT('campaign_id', ?, 'recipient_id', ?), 'sent')";
static const char q_link[] = "UPDATE campaign_recipients SET interaction_id = ? WHERE id = ?";

/* -- name: campaign-sent-batch
 * Every sent message of a result round in three statements instead of
 * three per message (the writer's time is the campaign's ceiling): the
 * conversations in one INSERT … SELECT (their ids read back in order and
 * checked, since only the first id is returned), the interactions in one,
 * (their ids read back the same way; no ORDER BY there: sorting rows with a
 * LONGTEXT makes the server re-read each one, and JSON_TABLE yields them in
 * array order anyway), and the recipient rows in one UPDATE
 * by primary key. The UPDATE must own every row
 * (claim token); when it does not, the round is rolled back and written one by one. */
static const char q_conv_batch[] =
    "INSERT INTO conversations (client_id, channel_id, status, subject, last_activity_at, "
    "resolved_at, last_outbound_at) SELECT j.client, j.ch, 'resolved', j.subj, NOW(6), NOW(6), "
    "NOW(6) FROM JSON_TABLE(?, "
    "'$[*]' COLUMNS (n FOR ORDINALITY, client BIGINT UNSIGNED PATH '$[0]', ch BIGINT UNSIGNED "
    "PATH '$[1]', subj VARCHAR(998) PATH '$[2]')) j ORDER BY j.n";
static const char q_conv_readback[] =
    "SELECT id, client_id FROM conversations WHERE id >= ? ORDER BY id LIMIT ?";
static const char q_interaction_batch[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, "
    "external_id, message_id, sender, subject, text, meta, delivery_status) SELECT j.conv, "
    "j.client, j.ch, 'out', 'email', j.mid, j.mid, j.sender, j.subj, j.txt, "
    "JSON_OBJECT('campaign_id', j.cid, 'recipient_id', j.rid), 'sent' FROM JSON_TABLE(?, '$[*]' "
    "COLUMNS (n FOR ORDINALITY, conv BIGINT UNSIGNED PATH '$[0]', client BIGINT UNSIGNED PATH "
    "'$[1]', ch BIGINT UNSIGNED PATH '$[2]', mid VARCHAR(255) PATH '$[3]', sender VARCHAR(512) "
    "PATH '$[4]', subj VARCHAR(998) PATH '$[5]', txt LONGTEXT PATH '$[6]', cid BIGINT UNSIGNED "
    "PATH '$[7]', rid BIGINT UNSIGNED PATH '$[8]')) j";
static const char q_interaction_readback[] =
    "SELECT id, client_id FROM interactions WHERE id >= ? ORDER BY id LIMIT ?";
static const char q_sent_batch[] =
    "UPDATE JSON_TABLE(?, '$[*]' COLUMNS (rid BIGINT UNSIGNED PATH '$[0]', iid BIGINT UNSIGNED "
    "PATH '$[1]', mid VARCHAR(255) PATH '$[2]', tok VARCHAR(32) PATH '$[3]')) j STRAIGHT_JOIN "
    "campaign_recipients r ON r.id = j.rid SET r.status = 'sent', r.sent_at = NOW(6), "
    "r.message_id = j.mid, r.interaction_id = j.iid, r.claim_token = NULL, r.claimed_until = "
    "NULL, r.last_error = NULL WHERE r.claim_token = UNHEX(j.tok)";
static const char q_retry[] =
    "UPDATE campaign_recipients SET status = IF(attempts >= ?, 'failed', 'queued'), "
    "next_attempt_at = NOW(6) + INTERVAL ? SECOND, last_error = ?, claim_token = NULL, "
    "claimed_until = NULL WHERE id = ? AND claim_token = ?";
static const char q_final[] =
    "UPDATE campaign_recipients SET status = ?, last_error = ?, claim_token = NULL, "
    "claimed_until = NULL WHERE id = ? AND claim_token = ?";
/* Not handed to SMTP (paused, cancelled, stopping): back to queued, and
 * the claim does not count as an attempt. A cancelled campaign's rows then
 * go to cancelled with the rest (campaign.c). */
static const char q_release[] =
    "UPDATE campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id SET r.status = "
    "IF(c.status = 'cancelled', 'cancelled', 'queued'), r.attempts = GREATEST(r.attempts, 1) - 1, "
    "r.claim_token = NULL, r.claimed_until = NULL WHERE r.id = ? AND r.claim_token = ?";

/* -- name: campaign-isolation
 * For the next transaction only (claims and results). The claim's UPDATE
 * … LIMIT walks the (campaign, status) index while the writer moves rows
 * out of 'sending' in it: under REPEATABLE READ each held next-key locks on
 * the other's range and they took turns (a claim took 19 ms). Under READ
 * COMMITTED only the rows changed are locked, and a row another claim holds
 * is read as last committed, so it is still never claimed twice. */
static const char q_isolation[] = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED";

static int begin_rc(struct sb_db *db, char *err, size_t errlen)
{
    int rc = sb_db_exec(db, q_isolation, NULL, 0, NULL, err, errlen);
    return rc == SB_OK ? sb_db_begin(db, err, errlen) : rc;
}

static int write_one(struct sb_db *db, struct item *it, char *err, size_t errlen)
{
    struct sb_db_val tok = SB_BLOB(it->token, sizeof it->token);
    struct sb_db_rows r;
    int rc;
    switch (it->outcome) {
    case OUT_SENT: {
        /* The one-by-one path (the batch path below failed or does not
         * apply): ownership first, then the records. */
        struct sb_db_val sa[] = {SB_TEXT(it->message_id), SB_NULL, SB_INT(it->rid), tok};
        rc = sb_db_exec(db, q_sent, sa, 4, &r, err, errlen);
        uint64_t owned = r.affected;
        sb_db_rows_free(&r);
        if (rc != SB_OK || !owned)
            return rc;
        struct sb_db_val ca[] = {SB_INT(it->client_id), SB_INT(it->c->channel_id),
                                 SB_TEXT(it->subject)};
        rc = sb_db_exec(db, q_conv, ca, 3, &r, err, errlen);
        int64_t conv = (int64_t)r.insert_id;
        sb_db_rows_free(&r);
        if (rc != SB_OK)
            return rc;
        struct sb_db_val ia[] = {SB_INT(conv),
                                 SB_INT(it->client_id),
                                 SB_INT(it->c->channel_id),
                                 SB_TEXT(it->message_id),
                                 SB_TEXT(it->message_id),
                                 SB_TEXT(it->c->mail_from),
                                 SB_TEXT(it->subject),
                                 SB_TEXT(it->text),
                                 SB_INT(it->c->id),
                                 SB_INT(it->rid)};
        rc = sb_db_exec(db, q_interaction, ia, 10, &r, err, errlen);
        int64_t iid = (int64_t)r.insert_id;
        sb_db_rows_free(&r);
        if (rc == SB_OK) {
            struct sb_db_val la[] = {SB_INT(iid), SB_INT(it->rid)};
            rc = sb_db_exec(db, q_link, la, 2, NULL, err, errlen);
        }
        return rc;
    }
    case OUT_RETRY: {
        int delay = SB_CAMP_RETRY_S;
        for (int i = 1; i < it->attempts && delay < 3600; i++)
            delay *= 2;
        struct sb_db_val a[] = {SB_INT(SB_CAMP_ATTEMPTS_MAX), SB_INT(delay), SB_TEXT(it->error),
                                SB_INT(it->rid), tok};
        return sb_db_exec(db, q_retry, a, 5, NULL, err, errlen);
    }
    case OUT_FAILED:
    case OUT_SKIPPED: {
        struct sb_db_val a[] = {SB_TEXT(it->outcome == OUT_FAILED ? "failed" : "skipped"),
                                SB_TEXT(it->error), SB_INT(it->rid), tok};
        return sb_db_exec(db, q_final, a, 4, NULL, err, errlen);
    }
    case OUT_RELEASED: {
        struct sb_db_val a[] = {SB_INT(it->rid), tok};
        return sb_db_exec(db, q_release, a, 2, NULL, err, errlen);
    }
    }
    return SB_OK;
}

/* The sent items of `list` in three statements (campaign-sent-batch), in
 * the caller's transaction. SB_OK with *done_r = 1 when every one was
 * written; *done_r = 0 (nothing to keep: the caller rolls back) when the
 * claim of some row was lost or the conversation ids did not come back in
 * order. */
static int write_sent_batch(double *stmt_s, struct sb_db *db, struct item *list, size_t n,
                            int *done_r, char *err, size_t errlen)
{
    *done_r = 0;
    json_t *convs = json_array(), *ints = json_array(), *rows = json_array();
    char *text = NULL;
    struct sb_db_rows r = {0};
    int rc = SB_ERR_NOMEM;
    if (!convs || !ints || !rows)
        goto out;
    for (struct item *it = list; it; it = it->next)
        if (it->outcome == OUT_SENT)
            json_array_append_new(convs, json_pack("[I, I, s]", (json_int_t)it->client_id,
                                                   (json_int_t)it->c->channel_id,
                                                   it->subject ? it->subject : ""));
    if (json_array_size(convs) != n || !(text = json_dumps(convs, JSON_COMPACT)))
        goto out;
    struct sb_db_val a = SB_TEXT(text);
    double t = mono();
    rc = sb_db_exec(db, q_conv_batch, &a, 1, &r, err, errlen);
    stmt_s[0] += mono() - t;
    t = mono();
    int64_t first = (int64_t)r.insert_id;
    sb_db_rows_free(&r);
    free(text);
    text = NULL;
    if (rc != SB_OK || first <= 0)
        goto out;
    struct sb_db_val ra[] = {SB_INT(first), SB_INT((int64_t)n)};
    rc = sb_db_exec(db, q_conv_readback, ra, 2, &r, err, errlen);
    stmt_s[1] += mono() - t;
    if (rc != SB_OK)
        goto out;
    if (r.nrows != n)
        goto out; /* *done_r = 0 */
    size_t k = 0;
    for (struct item *it = list; it; it = it->next) {
        if (it->outcome != OUT_SENT)
            continue;
        if (sb_db_cell_int(&r, k, 1) != it->client_id)
            goto out; /* another insert came between: one by one */
        json_array_append_new(
            ints, json_pack("[I, I, I, s, s, s, s?, I, I]", (json_int_t)sb_db_cell_int(&r, k, 0),
                            (json_int_t)it->client_id, (json_int_t)it->c->channel_id,
                            it->message_id, it->c->mail_from, it->subject ? it->subject : "",
                            it->text, (json_int_t)it->c->id, (json_int_t)it->rid));
        k++;
    }
    sb_db_rows_free(&r);
    if (!(text = json_dumps(ints, JSON_COMPACT))) {
        rc = SB_ERR_NOMEM;
        goto out;
    }
    a = SB_TEXT(text);
    t = mono();
    rc = sb_db_exec(db, q_interaction_batch, &a, 1, &r, err, errlen);
    stmt_s[2] += mono() - t;
    int64_t ifirst = (int64_t)r.insert_id;
    sb_db_rows_free(&r);
    free(text);
    text = NULL;
    if (rc != SB_OK)
        goto out;
    ra[0] = SB_INT(ifirst);
    rc = sb_db_exec(db, q_interaction_readback, ra, 2, &r, err, errlen);
    if (rc != SB_OK || r.nrows != n)
        goto out;
    k = 0;
    for (struct item *it = list; it; it = it->next) {
        if (it->outcome != OUT_SENT)
            continue;
        if (sb_db_cell_int(&r, k, 1) != it->client_id)
            goto out;
        char tok[33];
        sodium_bin2hex(tok, sizeof tok, it->token, sizeof it->token);
        json_array_append_new(rows,
                              json_pack("[I, I, s, s]", (json_int_t)it->rid,
                                        (json_int_t)sb_db_cell_int(&r, k, 0), it->message_id, tok));
        k++;
    }
    sb_db_rows_free(&r);
    if (!(text = json_dumps(rows, JSON_COMPACT))) {
        rc = SB_ERR_NOMEM;
        goto out;
    }
    a = SB_TEXT(text);
    t = mono();
    rc = sb_db_exec(db, q_sent_batch, &a, 1, &r, err, errlen);
    stmt_s[3] += mono() - t;
    if (rc == SB_OK && r.affected == n)
        *done_r = 1;
out:
    sb_db_rows_free(&r);
    free(text);
    json_decref(convs);
    json_decref(ints);
    json_decref(rows);
    return rc;
}

/* All results at hand in one transaction; frees the list. On a database
 * failure they stay unwritten: their rows keep the lease and are claimed
 * again after it, and their journal lines stay unsettled (campaign_send.h).
 * Once committed, the journal lines of the round are settled. */
static int write_results(struct sb_campaign_sender *cs, struct sb_db *db, struct item *list)
{
    /* The writer's timings are the writer's alone (recovery writes too). */
    int mine = db == cs->wdb;
    double other_s[4] = {0}, *stmt_s = mine ? cs->stmt_s : other_s;
    char err[512] = "";
    int rc = SB_OK;
    double t0 = mono();
    size_t nsent = 0;
    for (struct item *it = list; it; it = it->next)
        nsent += it->outcome == OUT_SENT;
    int batch = nsent > 1;
    for (int attempt = 0; attempt < 3; attempt++) {
        err[0] = '\0';
        rc = begin_rc(db, err, sizeof err);
        int done = 0;
        if (rc == SB_OK && batch) {
            rc = write_sent_batch(stmt_s, db, list, nsent, &done, err, sizeof err);
            if (rc != SB_OK || !done) {
                /* Not ours to write together (a lost claim, ids not in
                 * order, a refused row): again, one by one. */
                sb_db_rollback(db);
                batch = 0;
                attempt--;
                continue;
            }
        }
        for (struct item *it = list; rc == SB_OK && it; it = it->next)
            if (!done || it->outcome != OUT_SENT)
                rc = write_one(db, it, err, sizeof err);
        if (rc == SB_OK)
            rc = sb_db_commit(db, err, sizeof err);
        else
            sb_db_rollback(db);
        if (rc == SB_OK || rc == SB_ERR_UNKNOWN_COMMIT ||
            (rc != SB_ERR_UNAVAILABLE && rc != SB_ERR_RETRY))
            break;
        batch = 0; /* a deadlock or a lost connection: the plain path next */
    }
    if (mine) {
        cs->n_batches++;
        cs->write_s += mono() - t0;
    }
    if (rc != SB_OK)
        sb_error("campaigns", "cannot record results (%s); their rows are retried after the lease",
                 err);
    pthread_mutex_lock(&cs->lock);
    while (list) {
        struct item *n = list->next;
        if (rc == SB_OK)
            sb_journal_settled(cs->journal, list->jfile);
        camp_unref_locked(list->c);
        item_free(list);
        list = n;
    }
    pthread_mutex_unlock(&cs->lock);
    return rc;
}

/* -- Driver: campaigns ------------------------------------------------------ */

static const char q_promote[] =
    "UPDATE campaigns SET status = 'running' WHERE status = 'scheduled' AND send_at <= NOW(6)";
static const char q_running[] =
    "SELECT id, channel_id, rate_per_second, subject, html, text, mid_salt FROM campaigns WHERE "
    "status = 'running' ORDER BY id";
static const char q_left[] =
    "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND status IN ('queued', "
    "'sending')";
static const char q_finish[] =
    "UPDATE campaigns SET status = 'finished', finished_at = NOW(6) WHERE id = ? AND status = "
    "'running'";
static const char q_finish_event[] =
    "INSERT INTO events (type, data) VALUES ('campaign.updated', JSON_OBJECT('campaign_id', ?, "
    "'status', 'finished'))";

static int camp_load(struct sb_campaign_sender *cs, const struct sb_db_rows *r, size_t i,
                     struct camp **c_r)
{
    char err[256] = "";
    struct sb_channel *ch = NULL;
    int64_t chid = sb_db_cell_int(r, i, 1);
    int rc = sb_channel_load(cs->db, cs->master, chid, "email", &ch, err, sizeof err);
    if (rc != SB_OK) {
        sb_warn("campaigns", "campaign %s: channel %lld: %s", sb_db_cell(r, i, 0), (long long)chid,
                err);
        return rc;
    }
    struct camp *c = calloc(1, sizeof *c);
    if (!c) {
        sb_channel_free(&ch);
        return SB_ERR_NOMEM;
    }
    c->id = sb_db_cell_int(r, i, 0);
    c->channel_id = chid;
    c->rate = (int)sb_db_cell_int(r, i, 2);
    c->refs = 1;
    const char *host = sb_channel_conf(ch, "smtp_host");
    const char *tls = sb_channel_conf(ch, "smtp_tls");
    json_t *port = json_object_get(ch->config, "smtp_port");
    json_t *verify = json_object_get(ch->config, "smtp_tls_verify");
    const char *from = sb_channel_conf(ch, "from");
    snprintf(c->from, sizeof c->from, "%s", from ? from : "");
    sb_mail_addr_spec(c->from, c->mail_from, sizeof c->mail_from);
    sb_mail_addr_domain(c->from, c->domain, sizeof c->domain);
    if (!c->domain[0])
        snprintf(c->domain, sizeof c->domain, "switchboard.local");
    int smtps = tls && !strcmp(tls, "smtps");
    c->require_tls = !tls || !strcmp(tls, "starttls"); /* the channel's default */
    c->tls_verify = !verify || json_is_true(verify);
    int none = tls && !strcmp(tls, "none");
    int ipv6 = host && strchr(host, ':') != NULL;
    snprintf(c->url, sizeof c->url, "%s://%s%s%s:%lld/%s", smtps ? "smtps" : "smtp",
             ipv6 ? "[" : "", host ? host : "localhost", ipv6 ? "]" : "",
             (long long)(json_is_integer(port) ? json_integer_value(port)
                         : smtps               ? 465
                         : none                ? 25
                                               : 587),
             c->domain);
    const char *u = sb_channel_conf(ch, "smtp_username"), *p = sb_channel_conf(ch, "smtp_password");
    c->username = u && *u ? strdup(u) : NULL;
    c->password = p && *p ? strdup(p) : NULL;
    sb_channel_free(&ch);
    c->subject = strdup(sb_db_cell(r, i, 3) ? sb_db_cell(r, i, 3) : "");
    c->html = sb_db_cell(r, i, 4) ? strdup(sb_db_cell(r, i, 4)) : NULL;
    c->text = sb_db_cell(r, i, 5) ? strdup(sb_db_cell(r, i, 5)) : NULL;
    snprintf(c->salt, sizeof c->salt, "%s", sb_db_cell(r, i, 6) ? sb_db_cell(r, i, 6) : "x");
    if (!c->mail_from[0] || !c->subject) {
        sb_warn("campaigns", "campaign %lld: channel %lld has no usable from address",
                (long long)c->id, (long long)chid);
        pthread_mutex_lock(&cs->lock);
        camp_unref_locked(c);
        pthread_mutex_unlock(&cs->lock);
        return SB_ERR_CONFIG;
    }
    *c_r = c;
    return SB_OK;
}

/* Which campaigns run now; stop the rest. */
static void refresh(struct sb_campaign_sender *cs)
{
    char err[256] = "";
    struct sb_db_rows r;
    if (sb_db_exec(cs->db, q_promote, NULL, 0, NULL, err, sizeof err) != SB_OK ||
        sb_db_exec(cs->db, q_running, NULL, 0, &r, err, sizeof err) != SB_OK) {
        sb_warn("campaigns", "reading campaigns: %s", err);
        return;
    }
    for (struct camp *c = cs->camps; c; c = c->next)
        c->seen = 0;
    for (size_t i = 0; i < r.nrows; i++) {
        int64_t id = sb_db_cell_int(&r, i, 0);
        struct camp *c = cs->camps;
        while (c && c->id != id)
            c = c->next;
        if (c) {
            c->seen = 1;
            pthread_mutex_lock(&cs->lock);
            c->rate = (int)sb_db_cell_int(&r, i, 2);
            pthread_mutex_unlock(&cs->lock);
            continue;
        }
        if (camp_load(cs, &r, i, &c) == SB_OK) {
            c->seen = 1;
            c->next = cs->camps;
            cs->camps = c;
            sb_info("campaigns", "campaign %lld: sending", (long long)id);
        }
    }
    sb_db_rows_free(&r);
    /* Paused, cancelled or finished: pending items of it are released by
     * the workers; the driver lets go of its reference. */
    for (struct camp **p = &cs->camps; *p;) {
        struct camp *c = *p;
        if (c->seen) {
            p = &c->next;
            continue;
        }
        *p = c->next;
        pthread_mutex_lock(&cs->lock);
        c->stopped = 1;
        camp_unref_locked(c);
        pthread_mutex_unlock(&cs->lock);
    }
}

/* -- name: campaign-claim
 * Due queued rows, or rows whose claim's lease ran out (a crashed node's).
 * No ORDER BY: the (campaign_id, status, next_attempt_at) index gives due
 * rows directly; ordering by id would walk past every row already sent.
 * The index is forced: the optimizer takes the unique (campaign_id,
 * client_id) key as just as good (its statistics see one campaign) and then
 * walks past every sent row all the same, which made a claim cost 36 ms
 * half-way through 50,000 recipients and the whole campaign quadratic. */
static const char q_claim_expired[] =
    "UPDATE campaign_recipients FORCE INDEX (ix_campaign_recipients_due) SET claim_token = ?, "
    "claimed_until = NOW(6) + INTERVAL ? SECOND, attempts = attempts + 1 WHERE campaign_id = ? AND "
    "status = 'sending' AND claimed_until < "
    "NOW(6) LIMIT ?";
static const char q_claim[] =
    "UPDATE campaign_recipients FORCE INDEX (ix_campaign_recipients_due) SET status = 'sending', "
    "claim_token = ?, claimed_until = NOW(6) + INTERVAL ? SECOND, attempts = attempts + 1 WHERE "
    "campaign_id = ? AND status = 'queued' AND "
    "next_attempt_at <= NOW(6) LIMIT ?";
static const char q_claimed[] =
    "SELECT r.id, r.client_id, r.email, r.attempts, c.name, c.custom_fields, s.id IS NOT NULL "
    "FROM campaign_recipients r JOIN clients c ON c.id = r.client_id LEFT JOIN suppressions s ON "
    "s.email = r.email AND s.suppressed = 1 WHERE r.campaign_id = ? AND r.status = 'sending' AND "
    "r.claim_token = ? ORDER BY r.id";

/* Claim up to `max` rows of `c` into pending; returns how many. */
static size_t claim(struct sb_campaign_sender *cs, struct camp *c, size_t max)
{
    unsigned char token[16];
    randombytes_buf(token, sizeof token);
    char err[256] = "";
    struct sb_db_val a[] = {SB_BLOB(token, sizeof token), SB_INT(cs->lease_s), SB_INT(c->id),
                            SB_INT((int64_t)max)};
    struct sb_db_rows r = {0};
    int rc = SB_OK;
    /* The writer moves rows of the same index range at the same time: a
     * deadlock here is expected now and then and simply tried again. */
    for (int attempt = 0; attempt < 5; attempt++) {
        err[0] = '\0';
        a[3] = SB_INT((int64_t)max);
        rc = begin_rc(cs->db, err, sizeof err);
        if (rc == SB_OK)
            rc = sb_db_exec(cs->db, q_claim_expired, a, 4, &r, err, sizeof err);
        if (rc == SB_OK && r.affected < max) {
            a[3] = SB_INT((int64_t)(max - r.affected));
            sb_db_rows_free(&r);
            rc = sb_db_exec(cs->db, q_claim, a, 4, &r, err, sizeof err);
        }
        sb_db_rows_free(&r);
        struct sb_db_val s[] = {SB_INT(c->id), SB_BLOB(token, sizeof token)};
        if (rc == SB_OK)
            rc = sb_db_exec(cs->db, q_claimed, s, 2, &r, err, sizeof err);
        if (rc == SB_OK)
            rc = sb_db_commit(cs->db, err, sizeof err);
        else
            sb_db_rollback(cs->db);
        if (rc != SB_ERR_RETRY)
            break;
        sb_db_rows_free(&r);
    }
    if (rc != SB_OK) {
        /* Still deadlocking after five tries: the next round tries again. */
        if (rc == SB_ERR_RETRY)
            sb_debug("campaigns", "campaign %lld: claiming recipients: %s", (long long)c->id, err);
        else
            sb_warn("campaigns", "campaign %lld: claiming recipients: %s", (long long)c->id, err);
        sb_db_rows_free(&r);
        return 0;
    }
    size_t n = 0;
    pthread_mutex_lock(&cs->lock);
    for (size_t i = 0; i < r.nrows; i++) {
        struct item *it = calloc(1, sizeof *it);
        if (!it)
            break; /* the rest stays leased and is claimed again later */
        it->c = c;
        c->refs++;
        it->rid = sb_db_cell_int(&r, i, 0);
        it->client_id = sb_db_cell_int(&r, i, 1);
        it->email = strdup(sb_db_cell(&r, i, 2));
        it->attempts = (int)sb_db_cell_int(&r, i, 3);
        it->name = sb_db_cell(&r, i, 4) ? strdup(sb_db_cell(&r, i, 4)) : NULL;
        it->custom = sb_db_cell(&r, i, 5) ? strdup(sb_db_cell(&r, i, 5)) : NULL;
        it->suppressed = sb_db_cell_int(&r, i, 6) != 0;
        memcpy(it->token, token, sizeof token);
        if (cs->pending_tail)
            cs->pending_tail->next = it;
        else
            cs->pending = it;
        cs->pending_tail = it;
        cs->npending++;
        n++;
    }
    pthread_cond_broadcast(&cs->work_cv);
    pthread_mutex_unlock(&cs->lock);
    sb_db_rows_free(&r);
    return n;
}

static void maybe_finish(struct sb_campaign_sender *cs, struct camp *c)
{
    char err[256] = "";
    struct sb_db_val id = SB_INT(c->id);
    struct sb_db_rows r;
    if (sb_db_exec(cs->db, q_left, &id, 1, &r, err, sizeof err) != SB_OK) {
        sb_db_rows_free(&r);
        return;
    }
    int64_t left = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    if (left)
        return;
    int rc = sb_db_begin(cs->db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(cs->db, q_finish, &id, 1, &r, err, sizeof err);
    if (rc == SB_OK && r.affected)
        rc = sb_db_exec(cs->db, q_finish_event, &id, 1, NULL, err, sizeof err);
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_commit(cs->db, err, sizeof err);
    else
        sb_db_rollback(cs->db);
    if (rc == SB_OK)
        sb_info("campaigns", "campaign %lld: finished", (long long)c->id);
}

/* Results are written by their own thread, as soon as there are any, so
 * the time between the SMTP server's acceptance and the commit (the
 * exactly-once window) is one commit, never a claim or a refresh. */
static void *writer(void *arg)
{
    struct sb_campaign_sender *cs = arg;
    pthread_mutex_lock(&cs->lock);
    for (;;) {
        while (!cs->done && !cs->writer_stop)
            pthread_cond_wait(&cs->result_cv, &cs->lock);
        struct item *done = cs->done;
        cs->done = NULL;
        if (!done && cs->writer_stop)
            break;
        pthread_mutex_unlock(&cs->lock);
        write_results(cs, cs->wdb, done);
        pthread_mutex_lock(&cs->lock);
    }
    pthread_mutex_unlock(&cs->lock);
    return NULL;
}

/* -- Driver: the send journal of dead processes ------------------------------ */

/* -- name: campaign-journal-row
 * A journalled recipient still leased under the dead process's claim: its
 * message was handed over, only the result is missing. Any other state
 * means the result was recorded, or the row was claimed again. */
static const char q_journal_row[] =
    "SELECT r.client_id, r.email, r.attempts, c.name, c.custom_fields FROM campaign_recipients r "
    "JOIN clients c ON c.id = r.client_id WHERE r.id = ? AND r.campaign_id = ? AND r.status = "
    "'sending' AND r.claim_token = ?";
static const char q_campaign_any[] =
    "SELECT id, channel_id, rate_per_second, subject, html, text, mid_salt FROM campaigns WHERE "
    "id = ?";

static void items_free(struct sb_campaign_sender *cs, struct item *list)
{
    pthread_mutex_lock(&cs->lock);
    while (list) {
        struct item *n = list->next;
        camp_unref_locked(list->c);
        item_free(list);
        list = n;
    }
    pthread_mutex_unlock(&cs->lock);
}

/* The journal lines of dead processes (send_journal.h) whose rows are still
 * leased under their claim are recorded as sent — the same write_results a
 * sent result of our own takes: the row, the recipient's conversation and
 * interaction, the stats. Then the files go. SB_OK when done or nothing
 * was there; otherwise the files stay and the caller tries again.
 *
 * Driver thread, on its own connection: the rows are leased by a dead
 * claim, so our own claims and writer never touch them — except through
 * the lease, which is why the first recovery runs before the first claim. */
static int recover(struct sb_campaign_sender *cs, int first)
{
    struct sb_journal_recovered jr;
    char err[512] = "";
    int rc = sb_journal_recover(cs->journal_dir, cs->journal_tag, &jr, err, sizeof err);
    if (rc != SB_OK) {
        /* Once, not every second. */
        if (first)
            sb_warn("campaigns", "send journal: %s", err);
        return rc;
    }
    if (!jr.files) {
        sb_journal_recover_finish(&jr, 1);
        return SB_OK;
    }
    struct camp *camps = NULL; /* this recovery's own references */
    struct item *list = NULL;
    size_t nlist = 0, recorded = 0, stale = 0, lost = 0;
    for (size_t i = 0; rc == SB_OK && i < jr.nentries; i++) {
        const struct sb_journal_entry *e = &jr.entries[i];
        struct sb_db_val a[] = {SB_INT(e->recipient_id), SB_INT(e->campaign_id),
                                SB_BLOB(e->token, sizeof e->token)};
        struct sb_db_rows r = {0};
        rc = sb_db_exec(cs->db, q_journal_row, a, 3, &r, err, sizeof err);
        if (rc != SB_OK || !r.nrows) {
            stale += rc == SB_OK;
            sb_db_rows_free(&r);
            continue;
        }
        struct camp *c = camps;
        while (c && c->id != e->campaign_id)
            c = c->next;
        if (!c) {
            struct sb_db_val ca = SB_INT(e->campaign_id);
            struct sb_db_rows cr = {0};
            rc = sb_db_exec(cs->db, q_campaign_any, &ca, 1, &cr, err, sizeof err);
            int lrc = rc == SB_OK && cr.nrows ? camp_load(cs, &cr, 0, &c) : SB_ERR_NOT_FOUND;
            if (lrc == SB_OK) {
                c->next = camps;
                camps = c;
            } else if (rc == SB_OK && (lrc == SB_ERR_UNAVAILABLE || lrc == SB_ERR_RETRY)) {
                /* The database, not the campaign: try the whole file later. */
                rc = sb_fail(err, sizeof err, lrc, "loading campaign %lld",
                             (long long)e->campaign_id);
            }
            sb_db_rows_free(&cr);
        }
        struct item *it = c ? calloc(1, sizeof *it) : NULL;
        struct sb_camp_render_out out;
        char rerr[256] = "";
        if (it) {
            it->c = c;
            pthread_mutex_lock(&cs->lock);
            c->refs++;
            pthread_mutex_unlock(&cs->lock);
            it->rid = e->recipient_id;
            it->client_id = sb_db_cell_int(&r, 0, 0);
            it->email = strdup(sb_db_cell(&r, 0, 1));
            it->attempts = (int)sb_db_cell_int(&r, 0, 2);
            it->name = sb_db_cell(&r, 0, 3) ? strdup(sb_db_cell(&r, 0, 3)) : NULL;
            it->custom = sb_db_cell(&r, 0, 4) ? strdup(sb_db_cell(&r, 0, 4)) : NULL;
            memcpy(it->token, e->token, sizeof it->token);
            it->outcome = OUT_SENT;
        }
        sb_db_rows_free(&r);
        if (it && it->email && render_item(cs, it, &out, rerr, sizeof rerr) == SB_OK) {
            it->subject = out.subject;
            it->text = out.text;
            out.subject = out.text = NULL;
            sb_camp_render_free(&out);
            it->next = list;
            list = it;
            nlist++;
        } else {
            /* Nothing to record it with: left to the lease, re-sent with
             * its Message-ID (at-least-once, as without a journal). */
            if (rc == SB_OK)
                sb_warn("campaigns",
                        "send journal: campaign %lld recipient %lld cannot be recorded (%s); "
                        "it is sent again after its lease",
                        (long long)e->campaign_id, (long long)e->recipient_id,
                        rerr[0] ? rerr : "campaign or channel unusable");
            lost++;
            if (it)
                items_free(cs, it);
        }
        if (nlist >= SB_CAMP_BATCH) {
            rc = write_results(cs, cs->db, list);
            recorded += rc == SB_OK ? nlist : 0;
            list = NULL;
            nlist = 0;
        }
    }
    if (list && rc == SB_OK) {
        rc = write_results(cs, cs->db, list);
        recorded += rc == SB_OK ? nlist : 0;
    } else if (list) {
        items_free(cs, list);
    }
    pthread_mutex_lock(&cs->lock);
    while (camps) {
        struct camp *c = camps;
        camps = c->next;
        camp_unref_locked(c);
    }
    pthread_mutex_unlock(&cs->lock);
    if (rc == SB_OK || first)
        sb_info("campaigns",
                "send journal: %zu file(s) of dead processes, %zu handed-over messages recorded "
                "as sent, %zu already recorded or claimed again, %zu not recordable, %zu "
                "malformed lines; %zu file(s) of live processes, %zu of other databases%s%s",
                jr.files, recorded, stale, lost, jr.damaged, jr.busy, jr.other,
                rc == SB_OK ? "" : "; not finished: ", rc == SB_OK ? "" : err);
    sb_journal_recover_finish(&jr, rc == SB_OK);
    return rc;
}

static void *driver(void *arg)
{
    struct sb_campaign_sender *cs = arg;
    double next_refresh = 0, next_recover = 0;
    size_t low = (size_t)cs->nworkers * 4;
    int recovered = !cs->journal_dir[0], first_recovery = 1;
    for (;;) {
        pthread_mutex_lock(&cs->lock);
        int stop = cs->stop;
        size_t queued = cs->npending + cs->inflight;
        pthread_mutex_unlock(&cs->lock);
        if (stop)
            break;
        double now = mono();
        /* Dead processes' journals before any claim (a restart), and then
         * every second: another process on this host that died is noticed
         * (its lock goes with it) long before its leases run out. A
         * directory that cannot be read is not worth waiting for. */
        if (cs->journal_dir[0] && now >= next_recover) {
            int rc = recover(cs, first_recovery);
            first_recovery = 0;
            if (rc == SB_OK || rc == SB_ERR_IO)
                recovered = 1;
            next_recover = now + 1.0;
        }
        if (!recovered) {
            pthread_mutex_lock(&cs->lock);
            if (!cs->stop) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&cs->done_cv, &cs->lock, &ts);
            }
            pthread_mutex_unlock(&cs->lock);
            continue;
        }
        int refreshed = 0;
        if (now >= next_refresh) {
            refresh(cs);
            next_refresh = now + SB_CAMP_REFRESH_MS / 1000.0;
            refreshed = 1;
        }
        if (queued < low) {
            for (struct camp *c = cs->camps; c; c = c->next) {
                size_t max = SB_CAMP_BATCH;
                /* Under a rate cap claim about two seconds' worth, so rows
                 * never wait in memory anywhere near their lease. */
                if (c->rate > 0 && (size_t)c->rate * 2 < max)
                    max = (size_t)c->rate * 2 + 1;
                size_t n = claim(cs, c, max);
                if (!n && refreshed && !queued)
                    maybe_finish(cs, c);
                if (n)
                    break; /* one campaign per round; the next round serves the others */
            }
        }
        pthread_mutex_lock(&cs->lock);
        if (!cs->stop) {
            int hungry = cs->npending + cs->inflight < low && cs->camps;
            double wait = hungry ? 0.02 : 0.05;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            long ns = ts.tv_nsec + (long)(wait * 1e9);
            ts.tv_sec += ns / 1000000000L;
            ts.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&cs->done_cv, &cs->lock, &ts);
        }
        pthread_mutex_unlock(&cs->lock);
    }
    return NULL;
}

int sb_campaign_sender_start(const struct sb_campaign_sender_options *opt,
                             struct sb_campaign_sender **cs_r, char *err, size_t errlen)
{
    *cs_r = NULL;
    if (!opt->secret_key)
        return sb_fail(err, errlen, SB_ERR_CONFIG,
                       "no security.secret_key: campaign links cannot be signed");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sb_campaign_sender *cs = calloc(1, sizeof *cs);
    if (!cs)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&cs->lock, NULL);
    pthread_cond_init(&cs->work_cv, NULL);
    pthread_cond_init(&cs->done_cv, NULL);
    pthread_cond_init(&cs->result_cv, NULL);
    sb_camp_key(opt->secret_key, cs->key);
    cs->has_key = 1;
    memcpy(cs->master, opt->secret_key, 32);
    snprintf(cs->public_url, sizeof cs->public_url, "%s", opt->public_url ? opt->public_url : "");
    size_t pl = strlen(cs->public_url);
    while (pl && cs->public_url[pl - 1] == '/')
        cs->public_url[--pl] = '\0';
    cs->lease_s = opt->lease_s > 0 ? opt->lease_s : SB_CAMP_LEASE_S;
    cs->nworkers = opt->connections < 1                 ? 1
                   : opt->connections > CONNECTIONS_MAX ? CONNECTIONS_MAX
                                                        : opt->connections;
    /* Our own journal file first (so recovery skips it: it is locked). A
     * journal that cannot be opened leaves sending at-least-once across a
     * crash, as it was before journals: said loudly, not fatal. */
    if (opt->journal_dir && *opt->journal_dir) {
        char jerr[512] = "";
        snprintf(cs->journal_dir, sizeof cs->journal_dir, "%s", opt->journal_dir);
        sb_journal_tag(opt->db, cs->journal_tag, sizeof cs->journal_tag);
        if (sb_journal_open(cs->journal_dir, cs->journal_tag, opt->journal_rotate_bytes,
                            &cs->journal, jerr, sizeof jerr) != SB_OK)
            sb_warn("campaigns",
                    "send journal: %s; without it a message sent just before a crash is sent "
                    "again after the restart",
                    jerr);
    }
    int rc = sb_db_open(opt->db, 0, &cs->db, err, errlen);
    if (rc != SB_OK && cs->db) {
        sb_warn("campaigns", "%s (will retry)", err);
        err[0] = '\0';
        rc = SB_OK;
    }
    if (rc == SB_OK) {
        rc = sb_db_open(opt->db, 0, &cs->wdb, err, errlen);
        if (rc != SB_OK && cs->wdb) {
            err[0] = '\0';
            rc = SB_OK;
        }
    }
    int writer_started = 0;
    if (rc == SB_OK && pthread_create(&cs->writer, NULL, writer, cs) != 0)
        rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start the campaign writer");
    else if (rc == SB_OK)
        writer_started = 1;
    if (rc == SB_OK && pthread_create(&cs->driver, NULL, driver, cs) != 0)
        rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start the campaign driver");
    if (rc != SB_OK) {
        /* Only the driver can have failed to start after the writer. */
        if (writer_started) {
            pthread_mutex_lock(&cs->lock);
            cs->writer_stop = 1;
            pthread_cond_broadcast(&cs->result_cv);
            pthread_mutex_unlock(&cs->lock);
            pthread_join(cs->writer, NULL);
        }
        sb_db_close(&cs->db);
        sb_db_close(&cs->wdb);
        sb_journal_close(&cs->journal);
        free(cs);
        return rc;
    }
    for (int i = 0; i < cs->nworkers; i++)
        if (pthread_create(&cs->workers[i], NULL, worker, cs) != 0) {
            cs->nworkers = i;
            break;
        }
    *cs_r = cs;
    return SB_OK;
}

void sb_campaign_sender_stop(struct sb_campaign_sender **csp)
{
    struct sb_campaign_sender *cs = *csp;
    if (!cs)
        return;
    pthread_mutex_lock(&cs->lock);
    cs->stop = 1;
    pthread_cond_broadcast(&cs->work_cv);
    pthread_cond_broadcast(&cs->done_cv);
    pthread_mutex_unlock(&cs->lock);
    for (int i = 0; i < cs->nworkers; i++)
        pthread_join(cs->workers[i], NULL);
    pthread_join(cs->driver, NULL);
    /* The workers are gone: the writer writes what they left and ends.
     * Rows never handed out are released. */
    pthread_mutex_lock(&cs->lock);
    cs->writer_stop = 1;
    pthread_cond_broadcast(&cs->result_cv);
    pthread_mutex_unlock(&cs->lock);
    pthread_join(cs->writer, NULL);
    struct item *rest = NULL;
    for (struct item *it = cs->pending; it;) {
        struct item *n = it->next;
        it->outcome = OUT_RELEASED;
        it->next = rest;
        rest = it;
        it = n;
    }
    cs->pending = cs->pending_tail = NULL;
    if (rest)
        write_results(cs, cs->wdb, rest);
    while (cs->camps) {
        struct camp *c = cs->camps;
        cs->camps = c->next;
        camp_unref_locked(c);
    }
    sb_info("campaigns",
            "sender stopped: %llu messages sent over %llu SMTP connections; %llu "
            "result transactions, %.1f s writing (conversations %.1f, read-back %.1f, "
            "interactions %.1f, rows %.1f)",
            cs->n_sent, cs->n_connects, cs->n_batches, cs->write_s, cs->stmt_s[0], cs->stmt_s[1],
            cs->stmt_s[2], cs->stmt_s[3]);
    sb_db_close(&cs->db);
    sb_db_close(&cs->wdb);
    /* Every result is written: the files go (those with results the
     * database refused stay for the next start). */
    sb_journal_close(&cs->journal);
    pthread_cond_destroy(&cs->result_cv);
    pthread_cond_destroy(&cs->work_cv);
    pthread_cond_destroy(&cs->done_cv);
    pthread_mutex_destroy(&cs->lock);
    sodium_memzero(cs->key, sizeof cs->key);
    sodium_memzero(cs->master, sizeof cs->master);
    free(cs);
    *csp = NULL;
}
