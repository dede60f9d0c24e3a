/* The sender thread (see sender.h): claim due outbox jobs, run them through
 * one curl multi handle, record each outcome. */
#include "switchboard/sender.h"
#include "switchboard/ws.h"
#include "switchboard/attachments.h"
#include "switchboard/channel.h"
#include "switchboard/channel_store.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/outbox.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Job kinds this sender runs. */
#define KINDS              "reply,fetch"
#define ANSWER_DEFAULT_MAX 65536
#define TIMEOUT_DEFAULT_S  30
#define STOP_GRACE_MS      2000
/* Sweeps for new attachments to fetch start over from the first id now and
 * then, for rows whose transactions committed out of id order. */
#define SWEEP_RESTART_S 60
/* Unsent uploads are pruned at start and then this often. */
#define UPLOAD_PRUNE_S 600

/* One job in flight. Owned by the sender thread. */
struct job {
    struct sb_outbox_job row;
    unsigned char token[SB_OUTBOX_TOKEN_LEN]; /* the claim that owns row */
    struct sb_channel *ch;
    struct sb_outbound msg;
    struct sb_send_req req;
    int fetch_step; /* fetch jobs: which transfer of the chain */
    CURL *easy;
    struct curl_slist *headers, *rcpt;
    char *answer;
    size_t answer_len, answer_max;
    int too_large;
    char retry_after[128];
    size_t upload_off;
    char errbuf[CURL_ERROR_SIZE];
    char refusal[256];           /* SMTP: the server's last 4xx/5xx reply line, its own words */
    int followup;                /* running the kind's after_send transfer; the job is recorded */
    struct sb_db_rows file_rows; /* replies: the files' names, types and bytes */
    struct sb_out_file *files;
    struct job *next;
};

struct sb_sender {
    pthread_t thread;
    pthread_mutex_t lock;
    int stop, woken; /* guarded by lock */
    CURLM *multi;    /* curl_multi_wakeup is the only call other threads make */
    struct sb_db *db;
    unsigned char key[32];
    int has_key;
    /* sender thread only */
    struct job *jobs;
    size_t inflight;
    int64_t retry_at_ms; /* earliest retry this sender scheduled (0: none) */
    int more_due;        /* the last claim was full: there may be more */
    size_t blob_max;     /* the largest file one INSERT can store (max_allowed_packet) */
    /* written by the sender thread, read by any (__atomic) */
    struct sb_sender_stats stats;
    int64_t fetch_watermark;
    time_t sweep_restart_at;
    time_t prune_at;
    char fetch_kinds[256]; /* channel kinds with a fetch_step, comma-separated */
};

int64_t sb_sender_backoff_ms(int attempt, int retry_after_s, uint32_t rnd)
{
    if (retry_after_s > 0)
        return (int64_t)retry_after_s * 1000;
    if (attempt < 1)
        attempt = 1;
    int64_t base = SB_SEND_BACKOFF_MIN_MS;
    for (int i = 1; i < attempt && base < SB_SEND_BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > SB_SEND_BACKOFF_MAX_MS)
        base = SB_SEND_BACKOFF_MAX_MS;
    int64_t half = base / 2;
    return half + (int64_t)(rnd % (uint32_t)(half + 1));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_answer(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t add = size * n;
    if (j->answer_len + add > j->answer_max) {
        j->too_large = 1;
        return 0; /* aborts the transfer */
    }
    char *p = realloc(j->answer, j->answer_len + add + 1);
    if (!p)
        return 0;
    memcpy(p + j->answer_len, data, add);
    j->answer = p;
    j->answer_len += add;
    p[j->answer_len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(data, "Retry-After:", 12)) {
        const char *v = data + 12;
        size_t vl = len - 12;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        snprintf(j->retry_after, sizeof j->retry_after, "%.*s", (int)vl, v);
    } else if (len >= 4 && (data[0] == '4' || data[0] == '5') && data[1] >= '0' && data[1] <= '9' &&
               data[2] >= '0' && data[2] <= '9' && (data[3] == ' ' || data[3] == '-')) {
        /* curl hands SMTP server replies to the header callback; its error
         * text says only "RCPT failed: 550", the server says why. */
        size_t vl = len;
        while (vl && (data[vl - 1] == '\r' || data[vl - 1] == '\n'))
            vl--;
        snprintf(j->refusal, sizeof j->refusal, "%.*s", (int)vl, data);
    }
    return len;
}

static size_t on_upload(char *buf, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t room = size * n, left = j->req.body_len - j->upload_off;
    size_t take = left < room ? left : room;
    memcpy(buf, j->req.body + j->upload_off, take);
    j->upload_off += take;
    return take;
}

static void transfer_reset(struct job *j)
{
    if (j->easy)
        curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->headers);
    curl_slist_free_all(j->rcpt);
    free(j->answer);
    j->easy = NULL;
    j->headers = j->rcpt = NULL;
    j->answer = NULL;
    j->answer_len = 0;
    j->too_large = 0;
    j->retry_after[0] = '\0';
    j->upload_off = 0;
    j->errbuf[0] = '\0';
    j->refusal[0] = '\0';
}

static void job_free(struct job *j)
{
    transfer_reset(j);
    sb_send_req_free(&j->req);
    sb_channel_free(&j->ch);
    sb_db_rows_free(&j->file_rows);
    free(j->files);
    json_decref(j->row.payload);
    free(j);
}

/* Hand j->req to curl. */
/* Build j->easy from j->req. */
static int transfer_setup(struct job *j, char *err, size_t errlen)
{
    struct sb_send_req *r = &j->req;
    int smtp = !strncmp(r->url, "smtp://", 7) || !strncmp(r->url, "smtps://", 8);
    int imap = !strncmp(r->url, "imap://", 7) || !strncmp(r->url, "imaps://", 8);
    if (strncmp(r->url, "https://", 8) && strncmp(r->url, "http://", 7) && !smtp && !imap)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "unsupported URL scheme in api_base");
    CURL *e = j->easy = curl_easy_init();
    if (!e)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "cannot start a transfer");
    for (size_t i = 0; i < r->nheaders; i++) {
        struct curl_slist *h = curl_slist_append(j->headers, r->headers[i]);
        if (!h)
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        j->headers = h;
    }
    j->answer_max = r->max_answer ? r->max_answer : ANSWER_DEFAULT_MAX;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps,imap,imaps");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, r->timeout_s ? r->timeout_s : (long)TIMEOUT_DEFAULT_S);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "Switchboard");
    if (smtp || imap) { /* an upload: SMTP submission or IMAP APPEND */
        for (size_t i = 0; smtp && i < r->nrcpt; i++) {
            struct curl_slist *h = curl_slist_append(j->rcpt, r->rcpt[i]);
            if (!h)
                return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
            j->rcpt = h;
        }
        if (smtp && r->mail_from)
            curl_easy_setopt(e, CURLOPT_MAIL_FROM, r->mail_from);
        if (smtp)
            curl_easy_setopt(e, CURLOPT_MAIL_RCPT, j->rcpt);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(e, CURLOPT_READDATA, j);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        if (r->username)
            curl_easy_setopt(e, CURLOPT_USERNAME, r->username);
        if (r->password)
            curl_easy_setopt(e, CURLOPT_PASSWORD, r->password);
        if (r->require_tls)
            curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        if (r->tls_no_verify) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    } else {
        /* No "Expect: 100-continue" round trip for our small bodies. */
        struct curl_slist *h = curl_slist_append(j->headers, "Expect:");
        if (!h)
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        j->headers = h;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
        if (r->body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        }
        if (r->method)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return SB_OK;
}

static int transfer_start(struct sb_sender *s, struct job *j, char *err, size_t errlen)
{
    /* A downloaded file is stored with one INSERT: never fetch more than
     * the database will take (it would fail on every retry). */
    struct sb_send_req *r = &j->req;
    if (!strcmp(j->row.kind, "fetch") && r->max_answer > s->blob_max)
        r->max_answer = s->blob_max;
    int rc = transfer_setup(j, err, errlen);
    if (rc == SB_OK && curl_multi_add_handle(s->multi, j->easy) != CURLM_OK)
        rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot add a transfer");
    return rc;
}

int sb_send_once(const struct sb_send_req *req, long *status_r, char **answer_r, size_t *len_r,
                 char *err, size_t errlen)
{
    *status_r = 0;
    *answer_r = NULL;
    *len_r = 0;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    j->req = *req; /* borrowed: handed back before the job is freed */
    int rc = transfer_setup(j, err, errlen);
    if (rc == SB_OK) {
        CURLcode cc = curl_easy_perform(j->easy);
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, status_r);
        if (cc != CURLE_OK && !*status_r)
            rc = sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "%s",
                         j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc));
        else if (cc != CURLE_OK)
            sb_fail(err, errlen, SB_OK, "%s%s%s%s",
                    j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc), j->refusal[0] ? " (" : "",
                    j->refusal, j->refusal[0] ? ")" : "");
    }
    if (rc == SB_OK) {
        *answer_r = j->answer ? j->answer : strdup("");
        *len_r = j->answer_len;
        j->answer = NULL;
        if (!*answer_r)
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    memset(&j->req, 0, sizeof j->req);
    job_free(j);
    return rc;
}

/* Write an outcome. A write that fails (the database went away) is tried
 * once more on a fresh connection; after that the job stays leased and is
 * tried again once the lease passes. */
static void record(struct sb_sender *s, struct job *j, const struct sb_send_result *in)
{
    struct sb_send_result res = *in;
    /* The reason is the provider's text: it goes to agents and the log, so
     * no control characters (a forged line in the log). */
    for (char *c = res.error; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    if (res.outcome == SB_SEND_RETRY && j->row.attempts >= SB_SEND_ATTEMPTS_MAX) {
        char error[sizeof res.error];
        snprintf(error, sizeof error, "gave up after %d attempts: %.400s", j->row.attempts,
                 res.error[0] ? res.error : "temporary failure");
        memcpy(res.error, error, sizeof error);
        res.outcome = SB_SEND_FAILED;
    }
    int64_t delay = 0;
    if (res.outcome == SB_SEND_RETRY)
        delay = sb_sender_backoff_ms(j->row.attempts, res.retry_after_s, randombytes_random());
    if (res.outcome == SB_SEND_RETRY) {
        /* A retry should not round up to the next poll (Retry-After: 1
         * would become 2 s); a little slack covers the database clock. */
        int64_t at = now_ms() + delay + 20;
        if (!s->retry_at_ms || at < s->retry_at_ms)
            s->retry_at_ms = at;
    }
    char err[512] = "";
    int owned = 0, rc = SB_ERR_INTERNAL;
    for (int attempt = 0; attempt < 2 && rc != SB_OK; attempt++) {
        err[0] = '\0';
        if (res.outcome == SB_SEND_OK && !strcmp(j->row.kind, "fetch"))
            rc = sb_outbox_fetched(s->db, &j->row, j->token, j->answer ? j->answer : "",
                                   j->answer_len, &owned, err, sizeof err);
        else if (res.outcome == SB_SEND_OK)
            rc = sb_outbox_sent(s->db, &j->row, j->token, res.external_id, &owned, err, sizeof err);
        else if (res.outcome == SB_SEND_RETRY)
            rc = sb_outbox_retry(s->db, &j->row, j->token, delay, res.error, &owned, err,
                                 sizeof err);
        else if (j->row.bad_payload)
            rc = sb_outbox_quarantine(s->db, &j->row, j->token, res.error, &owned, err, sizeof err);
        else
            rc = sb_outbox_failed(s->db, &j->row, j->token, res.error, &owned, err, sizeof err);
        if (rc != SB_ERR_UNAVAILABLE && rc != SB_ERR_RETRY)
            break;
    }
    if (rc != SB_OK && rc != SB_ERR_UNAVAILABLE && rc != SB_ERR_UNKNOWN_COMMIT &&
        res.outcome == SB_SEND_OK && !strcmp(j->row.kind, "fetch")) {
        /* The database refuses the file itself: retrying cannot help. */
        char why[sizeof res.error];
        snprintf(why, sizeof why, "cannot store the file: %.400s", err);
        sb_error("sender", "job %lld: %s", (long long)j->row.id, why);
        err[0] = '\0';
        rc = sb_outbox_failed(s->db, &j->row, j->token, why, &owned, err, sizeof err);
        res.outcome = SB_SEND_FAILED;
        memcpy(res.error, why, sizeof why);
    }
    if (rc == SB_OK && owned)
        sb_ws_nudge(); /* the status change is an event: agents see the tick now */
    if (rc == SB_OK && owned) {
        unsigned long long *c = res.outcome == SB_SEND_RETRY    ? &s->stats.retried
                                : res.outcome == SB_SEND_FAILED ? &s->stats.failed
                                : !strcmp(j->row.kind, "fetch") ? &s->stats.fetched
                                                                : &s->stats.sent;
        __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
    }
    if (rc != SB_OK)
        sb_error("sender", "job %lld: cannot record the outcome (%s); retried after the lease",
                 (long long)j->row.id, err);
    else if (!owned)
        sb_warn("sender", "job %lld: claim lost to another sender; outcome not recorded",
                (long long)j->row.id);
    else if (res.outcome == SB_SEND_OK)
        sb_info("sender", "job %lld (%s, channel %lld): sent%s%s", (long long)j->row.id,
                j->row.kind, (long long)j->row.channel_id, res.external_id[0] ? " as " : "",
                res.external_id);
    else if (res.outcome == SB_SEND_RETRY)
        sb_warn("sender", "job %lld (channel %lld): attempt %d: %s; retry in %lld ms",
                (long long)j->row.id, (long long)j->row.channel_id, j->row.attempts, res.error,
                (long long)delay);
    else
        sb_warn("sender", "job %lld (channel %lld): failed: %s", (long long)j->row.id,
                (long long)j->row.channel_id, res.error);
}

static void fail_now(struct sb_sender *s, struct job *j, enum sb_send_outcome outcome,
                     const char *why)
{
    struct sb_send_result res = {.outcome = outcome};
    snprintf(res.error, sizeof res.error, "%s", why);
    record(s, j, &res);
}

/* Prepare the first transfer of a freshly claimed job; on failure the
 * outcome is recorded and the caller frees the job. */
static int job_begin(struct sb_sender *s, struct job *j)
{
    char err[512] = "";
    int rc = sb_channel_load(s->db, s->has_key ? s->key : NULL, j->row.channel_id, NULL, &j->ch,
                             err, sizeof err);
    if (rc == SB_ERR_NOT_FOUND) {
        fail_now(s, j, SB_SEND_FAILED, "the channel is disabled or gone");
        return -1;
    }
    if (rc != SB_OK) {
        fail_now(s, j, SB_SEND_RETRY, err);
        return -1;
    }
    if (j->row.bad_payload) {
        fail_now(s, j, SB_SEND_FAILED, "unreadable job payload (not a JSON object)");
        return -1;
    }
    const struct sb_channel_kind *k = j->ch->kind;
    j->msg.outbox_id = j->row.id;
    j->msg.interaction_id = j->row.interaction_id;
    j->msg.payload = j->row.payload;
    j->msg.to = json_string_value(json_object_get(j->row.payload, "to"));
    j->msg.text = json_string_value(json_object_get(j->row.payload, "text"));
    if (!strcmp(j->row.kind, "fetch")) {
        struct sb_fetch_step st = {
            .provider_ref = json_string_value(json_object_get(j->row.payload, "provider_ref"))};
        struct sb_send_result res = {0};
        int more = 0;
        if (!k->fetch_step || !st.provider_ref) {
            fail_now(s, j, SB_SEND_FAILED, "nothing to fetch for this channel kind");
            return -1;
        }
        rc = k->fetch_step(j->ch, &st, &j->req, &res, &more);
        if (rc != SB_OK || !more) {
            fail_now(s, j, SB_SEND_FAILED, "cannot start the fetch");
            return -1;
        }
    } else {
        if (!k->send_prepare || !k->send_result) {
            fail_now(s, j, SB_SEND_FAILED, "this channel kind cannot send");
            return -1;
        }
        if (j->row.interaction_id && (k->flags & SB_CH_SEND_FILES)) {
            rc = sb_att_out_files(s->db, j->row.interaction_id, &j->file_rows, err, sizeof err);
            if (rc == SB_OK && j->file_rows.nrows &&
                !(j->files = calloc(j->file_rows.nrows, sizeof *j->files)))
                rc = sb_fail(err, sizeof err, SB_ERR_NOMEM, "out of memory");
            if (rc != SB_OK) {
                fail_now(s, j, SB_SEND_RETRY, err);
                return -1;
            }
            for (size_t i = 0; i < j->file_rows.nrows; i++) {
                const struct sb_db_rows *f = &j->file_rows;
                j->files[i] = (struct sb_out_file){
                    .filename = sb_db_cell(f, i, 0) ? sb_db_cell(f, i, 0) : "file",
                    .content_type = sb_att_served_type(sb_db_cell(f, i, 1)),
                    .data = (const unsigned char *)sb_db_cell(f, i, 2),
                    .len = f->lens[i * f->ncols + 2]};
            }
            j->msg.files = j->files;
            j->msg.nfiles = j->file_rows.nrows;
        }
        rc = k->send_prepare(j->ch, &j->msg, &j->req, err, sizeof err);
        if (rc != SB_OK) {
            fail_now(s, j, rc == SB_ERR_NOMEM ? SB_SEND_RETRY : SB_SEND_FAILED,
                     err[0] ? err : sb_strerror(rc));
            return -1;
        }
    }
    rc = transfer_start(s, j, err, sizeof err);
    if (rc != SB_OK) {
        fail_now(s, j, rc == SB_ERR_CONFIG ? SB_SEND_FAILED : SB_SEND_RETRY, err);
        return -1;
    }
    return 0;
}

/* Claim as many due jobs as there is room for and start them; `sweep` also
 * queues fetch jobs for new attachments first. */
static void claim(struct sb_sender *s, int sweep)
{
    char err[512] = "";
    if (sweep && s->fetch_kinds[0]) {
        size_t added = 0;
        if (time(NULL) >= s->sweep_restart_at) {
            s->fetch_watermark = 0;
            s->sweep_restart_at = time(NULL) + SWEEP_RESTART_S;
        }
        if (sb_outbox_sweep_fetches(s->db, s->fetch_kinds, &s->fetch_watermark, &added, err,
                                    sizeof err) != SB_OK)
            sb_warn("sender", "attachment sweep: %s", err);
        else if (added)
            sb_debug("sender", "%zu attachment(s) to fetch", added);
    }
    if (sweep && time(NULL) >= s->prune_at) {
        size_t pruned = 0;
        s->prune_at = time(NULL) + UPLOAD_PRUNE_S;
        err[0] = '\0';
        if (sb_att_prune(s->db, &pruned, err, sizeof err) != SB_OK)
            sb_warn("sender", "pruning unsent uploads: %s", err);
        else if (pruned)
            sb_info("sender", "pruned %zu unsent upload(s) older than a day", pruned);
    }
    size_t room = SB_SEND_INFLIGHT_MAX - s->inflight;
    if (!room) {
        s->more_due = 1; /* whatever woke us waits for a free slot */
        return;
    }
    unsigned char token[SB_OUTBOX_TOKEN_LEN];
    randombytes_buf(token, sizeof token);
    struct sb_outbox_job *rows = NULL;
    size_t n = 0;
    err[0] = '\0';
    if (sb_outbox_claim(s->db, KINDS, token, SB_SEND_LEASE_S, room, &rows, &n, err, sizeof err) !=
        SB_OK) {
        sb_warn("sender", "claiming jobs: %s", err);
        s->more_due = 0; /* the next poll tries again */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct job *j = calloc(1, sizeof *j);
        if (!j) {
            json_decref(rows[i].payload); /* stays leased; retried after the lease */
            continue;
        }
        j->row = rows[i];
        memcpy(j->token, token, sizeof token);
        if (job_begin(s, j) != 0) {
            job_free(j);
            continue;
        }
        j->next = s->jobs;
        s->jobs = j;
        s->inflight++;
        __atomic_store_n(&s->stats.inflight, s->inflight, __ATOMIC_RELAXED);
    }
    free(rows); /* payloads now belong to the jobs */
    /* A full claim may have left due jobs behind: claim again as soon as
     * a transfer finishes, not at the next poll. */
    s->more_due = n == room;
}

static void unlink_job(struct sb_sender *s, struct job *j)
{
    for (struct job **p = &s->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            s->inflight--;
            __atomic_store_n(&s->stats.inflight, s->inflight, __ATOMIC_RELAXED);
            return;
        }
}

/* A transfer finished: read the answer, then record it or start the next
 * step of a fetch. */
static void finished(struct sb_sender *s, struct job *j, CURLcode cc)
{
    curl_multi_remove_handle(s->multi, j->easy);
    struct sb_send_result res = {0};
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *body = j->answer ? j->answer : "";
    if (j->followup) {
        /* Best effort, after the job was recorded: only the log says. */
        if (cc != CURLE_OK)
            sb_warn("sender", "job %lld (channel %lld): follow-up failed: %s%s%s%s",
                    (long long)j->row.id, (long long)j->row.channel_id,
                    j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc), j->refusal[0] ? " (" : "",
                    j->refusal, j->refusal[0] ? ")" : "");
        else
            sb_info("sender", "job %lld (channel %lld): follow-up done", (long long)j->row.id,
                    (long long)j->row.channel_id);
        unlink_job(s, j);
        job_free(j);
        return;
    }
    if (cc != CURLE_OK && j->too_large) {
        res.outcome = SB_SEND_FAILED;
        snprintf(res.error, sizeof res.error, "answer larger than %zu bytes", j->answer_max);
    } else if (cc != CURLE_OK && status >= 400 && strcmp(j->row.kind, "fetch")) {
        /* A refusal with a reply code (SMTP answers 550 to RCPT TO and
         * curl reports an error): the adapter says whether it is final. */
        char why[CURL_ERROR_SIZE + sizeof j->refusal + 8];
        snprintf(why, sizeof why, "%s%s%s%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc),
                 j->refusal[0] ? " (" : "", j->refusal, j->refusal[0] ? ")" : "");
        j->ch->kind->send_result(j->ch, &j->msg, status, why, strlen(why),
                                 j->retry_after[0] ? j->retry_after : NULL, &res);
    } else if (cc != CURLE_OK) {
        res.outcome = SB_SEND_RETRY;
        snprintf(res.error, sizeof res.error, "%s",
                 j->errbuf[0] ? j->errbuf : curl_easy_strerror(cc));
    } else if (!strcmp(j->row.kind, "fetch")) {
        struct sb_fetch_step st = {
            .provider_ref = json_string_value(json_object_get(j->row.payload, "provider_ref")),
            .step = ++j->fetch_step,
            .status = status,
            .body = body,
            .len = j->answer_len,
            .retry_after = j->retry_after[0] ? j->retry_after : NULL};
        struct sb_send_req next = {0};
        int more = 0;
        int rc = j->ch->kind->fetch_step(j->ch, &st, &next, &res, &more);
        if (rc == SB_OK && more) {
            char err[256] = "";
            transfer_reset(j);
            sb_send_req_free(&j->req);
            j->req = next;
            if (transfer_start(s, j, err, sizeof err) == SB_OK)
                return;
            res.outcome = SB_SEND_RETRY;
            snprintf(res.error, sizeof res.error, "%s", err);
        } else if (rc != SB_OK) {
            sb_send_req_free(&next);
            res.outcome = SB_SEND_RETRY;
            snprintf(res.error, sizeof res.error, "%s", sb_strerror(rc));
        }
    } else {
        j->ch->kind->send_result(j->ch, &j->msg, status, body, j->answer_len,
                                 j->retry_after[0] ? j->retry_after : NULL, &res);
    }
    record(s, j, &res);
    if (res.outcome == SB_SEND_OK && strcmp(j->row.kind, "fetch") && j->ch->kind->after_send) {
        struct sb_send_req next = {0};
        if (j->ch->kind->after_send(j->ch, &j->msg, &j->req, &next) == 1) {
            char err[256] = "";
            transfer_reset(j);
            sb_send_req_free(&j->req);
            j->req = next;
            j->followup = 1;
            if (transfer_start(s, j, err, sizeof err) == SB_OK)
                return;
            sb_warn("sender", "job %lld: follow-up not started: %s", (long long)j->row.id, err);
        } else {
            sb_send_req_free(&next);
        }
    }
    unlink_job(s, j);
    job_free(j);
}

static void drain_finished(struct sb_sender *s)
{
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct job *j = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        if (j)
            finished(s, j, m->data.result);
    }
}

static void *run(void *arg)
{
    struct sb_sender *s = arg;
    int64_t next_poll = 0, stop_by = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int stop = s->stop, woken = s->woken;
        s->woken = 0;
        pthread_mutex_unlock(&s->lock);
        int64_t now = now_ms();
        if (stop && !stop_by)
            stop_by = now + STOP_GRACE_MS;
        if (stop && (!s->inflight || now >= stop_by))
            break;
        int poll = woken || now >= next_poll;
        int refill = s->more_due && s->inflight < SB_SEND_INFLIGHT_MAX;
        if (!stop && (poll || refill)) {
            if (poll) {
                next_poll = now + SB_SEND_POLL_MS;
                if (s->retry_at_ms && s->retry_at_ms <= now)
                    s->retry_at_ms = 0;
            }
            claim(s, poll);
        }
        int running = 0;
        curl_multi_perform(s->multi, &running);
        drain_finished(s);
        now = now_ms();
        if (s->retry_at_ms && s->retry_at_ms < next_poll)
            next_poll = s->retry_at_ms;
        int64_t wait = stop ? 100 : next_poll - now;
        pthread_mutex_lock(&s->lock);
        if (s->woken || s->stop != stop ||
            (!stop && s->more_due && s->inflight < SB_SEND_INFLIGHT_MAX))
            wait = 0;
        pthread_mutex_unlock(&s->lock);
        if (wait > 0)
            curl_multi_poll(s->multi, NULL, 0,
                            (int)(wait > SB_SEND_POLL_MS ? SB_SEND_POLL_MS : wait), NULL);
    }
    /* Past the grace: what is still running stays leased (see sender.h). */
    while (s->jobs) {
        struct job *j = s->jobs;
        s->jobs = j->next;
        sb_warn("sender", "job %lld abandoned at shutdown; retried after its lease",
                (long long)j->row.id);
        curl_multi_remove_handle(s->multi, j->easy);
        job_free(j);
    }
    s->inflight = 0;
    return NULL;
}

int sb_sender_start(const struct sb_sender_options *opt, struct sb_sender **s_r, char *err,
                    size_t errlen)
{
    *s_r = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sb_sender *s = calloc(1, sizeof *s);
    if (!s)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    if (opt->secret_key) {
        memcpy(s->key, opt->secret_key, sizeof s->key);
        s->has_key = 1;
    }
    for (const struct sb_channel_kind *const *k = sb_channel_kinds; *k; k++)
        if ((*k)->fetch_step) {
            size_t o = strlen(s->fetch_kinds);
            snprintf(s->fetch_kinds + o, sizeof s->fetch_kinds - o, "%s%s", o ? "," : "",
                     (*k)->name);
        }
    int rc = sb_db_open(opt->db, 0, &s->db, err, errlen);
    if (rc != SB_OK && s->db) {
        /* Like the DB workers: the handle reconnects on next use, so a
         * database that is down at start-up only delays sending. */
        sb_warn("sender", "%s (will retry at each poll)", err);
        err[0] = '\0';
        rc = SB_OK;
    }
    if (rc == SB_OK)
        sb_outbox_blob_max(s->db, &s->blob_max);
    if (rc == SB_OK && !(s->multi = curl_multi_init()))
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "cannot start libcurl");
    if (rc == SB_OK && pthread_create(&s->thread, NULL, run, s) != 0)
        rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start the sender thread");
    if (rc != SB_OK) {
        if (s->multi)
            curl_multi_cleanup(s->multi);
        sb_db_close(&s->db);
        pthread_mutex_destroy(&s->lock);
        sodium_memzero(s->key, sizeof s->key);
        free(s);
        return rc;
    }
    *s_r = s;
    return SB_OK;
}

void sb_sender_wake(struct sb_sender *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->woken = 1;
    pthread_mutex_unlock(&s->lock);
    curl_multi_wakeup(s->multi);
}

void sb_sender_stats(struct sb_sender *s, struct sb_sender_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!s)
        return;
    st->sent = __atomic_load_n(&s->stats.sent, __ATOMIC_RELAXED);
    st->fetched = __atomic_load_n(&s->stats.fetched, __ATOMIC_RELAXED);
    st->retried = __atomic_load_n(&s->stats.retried, __ATOMIC_RELAXED);
    st->failed = __atomic_load_n(&s->stats.failed, __ATOMIC_RELAXED);
    st->inflight = __atomic_load_n(&s->stats.inflight, __ATOMIC_RELAXED);
}

void sb_sender_stop(struct sb_sender **sp)
{
    struct sb_sender *s = *sp;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_mutex_unlock(&s->lock);
    curl_multi_wakeup(s->multi);
    pthread_join(s->thread, NULL);
    curl_multi_cleanup(s->multi);
    sb_db_close(&s->db);
    pthread_mutex_destroy(&s->lock);
    sodium_memzero(s->key, sizeof s->key);
    free(s);
    *sp = NULL;
}
