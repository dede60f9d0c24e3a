/* Prometheus text exposition (see metrics.h). */
#include "switchboard/metrics.h"
#include "switchboard/app.h"
#include "switchboard/dbpool.h"
#include "switchboard/err.h"
#include "switchboard/mailbox.h"
#include "switchboard/sender.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double bucket_le[SB_LATENCY_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct sb_route sb_route_static = {.methods = SB_GET, .pattern = "static"};
struct sb_route sb_route_unmatched = {.pattern = "unmatched"};

void sb_metrics_observe(struct sb_route *route, int status, double seconds)
{
    if (!route)
        route = &sb_route_unmatched;
    route->count_by_status[sb_status_slot(status)]++;
    int b = 0;
    while (b < SB_LATENCY_BUCKETS - 1 && seconds > bucket_le[b])
        b++;
    route->latency_buckets[b]++;
    route->latency_sum += seconds;
}

struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, cap);
        if (!nb) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

static void route_lines(struct out *o, const struct sb_route *r)
{
    for (int s = 0; s < SB_STATUS_SLOTS; s++) {
        if (!r->count_by_status[s])
            continue;
        int code = sb_status_of_slot(s);
        if (code)
            put(o, "switchboard_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", r->pattern,
                code, (unsigned long long)r->count_by_status[s]);
        else
            put(o, "switchboard_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                r->pattern, (unsigned long long)r->count_by_status[s]);
    }
}

static void route_histogram(struct out *o, const struct sb_route *r)
{
    unsigned long long cum = 0;
    for (int b = 0; b < SB_LATENCY_BUCKETS; b++) {
        cum += r->latency_buckets[b];
        if (b < SB_LATENCY_BUCKETS - 1)
            put(o,
                "switchboard_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                r->pattern, bucket_le[b], cum);
        else
            put(o,
                "switchboard_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                r->pattern, cum);
    }
    put(o, "switchboard_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", r->pattern,
        r->latency_sum);
    put(o, "switchboard_http_request_duration_seconds_count{route=\"%s\"} %llu\n", r->pattern, cum);
}

int sb_metrics_render(const struct sb_app *app, char **text_r, size_t *len_r)
{
    struct out o = {malloc(16384), 0, 16384, 0};
    if (!o.buf)
        return SB_ERR_NOMEM;
    o.buf[0] = '\0';

    put(&o, "# HELP switchboard_http_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE switchboard_http_requests_total counter\n");
    for (size_t i = 0; i < sb_nroutes; i++)
        route_lines(&o, &sb_routes[i]);
    route_lines(&o, &sb_route_static);
    route_lines(&o, &sb_route_unmatched);

    put(&o, "# HELP switchboard_http_request_duration_seconds Time from request to last byte "
            "written.\n"
            "# TYPE switchboard_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < sb_nroutes; i++)
        route_histogram(&o, &sb_routes[i]);
    route_histogram(&o, &sb_route_static);
    route_histogram(&o, &sb_route_unmatched);

    put(&o,
        "# HELP switchboard_http_inflight_requests Requests received and not yet answered.\n"
        "# TYPE switchboard_http_inflight_requests gauge\n"
        "switchboard_http_inflight_requests %lu\n",
        app->inflight);

    if (app->pool) {
        struct sb_dbpool_stats st;
        sb_dbpool_stats(app->pool, &st);
        put(&o,
            "# HELP switchboard_db_workers DB worker threads, each with one connection.\n"
            "# TYPE switchboard_db_workers gauge\nswitchboard_db_workers %d\n"
            "# HELP switchboard_db_workers_busy DB workers running a job now.\n"
            "# TYPE switchboard_db_workers_busy gauge\nswitchboard_db_workers_busy %d\n"
            "# HELP switchboard_db_queue_length Jobs waiting for a DB worker.\n"
            "# TYPE switchboard_db_queue_length gauge\nswitchboard_db_queue_length %zu\n"
            "# HELP switchboard_db_jobs_total DB jobs accepted.\n"
            "# TYPE switchboard_db_jobs_total counter\nswitchboard_db_jobs_total %llu\n"
            "# HELP switchboard_db_jobs_rejected_total DB jobs refused because the queue was "
            "full.\n"
            "# TYPE switchboard_db_jobs_rejected_total counter\n"
            "switchboard_db_jobs_rejected_total %llu\n"
            "# HELP switchboard_db_queue_wait_seconds_total Time jobs spent waiting for a "
            "worker.\n"
            "# TYPE switchboard_db_queue_wait_seconds_total counter\n"
            "switchboard_db_queue_wait_seconds_total %.6f\n",
            st.workers, st.busy, st.queued, (unsigned long long)st.submitted,
            (unsigned long long)st.rejected, (double)st.wait_us_total / 1e6);
    }
    put(&o,
        "# HELP switchboard_forms_honeypot_total Form posts accepted and dropped because the "
        "honeypot field was filled.\n"
        "# TYPE switchboard_forms_honeypot_total counter\n"
        "switchboard_forms_honeypot_total %llu\n",
        __atomic_load_n(&app->forms_honeypot, __ATOMIC_RELAXED));
    if (app->mailboxes) {
        struct sb_mailbox_stats ms;
        sb_mailboxes_stats(app->mailboxes, &ms);
        put(&o,
            "# HELP switchboard_imap_mailboxes IMAP mailboxes this node polls.\n"
            "# TYPE switchboard_imap_mailboxes gauge\nswitchboard_imap_mailboxes %u\n"
            "# HELP switchboard_imap_mailboxes_failing Mailboxes whose last 3 or more passes "
            "failed.\n"
            "# TYPE switchboard_imap_mailboxes_failing gauge\n"
            "switchboard_imap_mailboxes_failing %u\n"
            "# HELP switchboard_imap_messages_total Messages fetched and stored.\n"
            "# TYPE switchboard_imap_messages_total counter\n"
            "switchboard_imap_messages_total %llu\n"
            "# HELP switchboard_imap_errors_total Mailbox passes that failed (login, network, "
            "database).\n"
            "# TYPE switchboard_imap_errors_total counter\nswitchboard_imap_errors_total %llu\n"
            "# HELP switchboard_imap_quarantined_total Messages that could not be stored and "
            "were kept raw.\n"
            "# TYPE switchboard_imap_quarantined_total counter\n"
            "switchboard_imap_quarantined_total %llu\n",
            ms.mailboxes, ms.failing, ms.fetched, ms.errors, ms.quarantined);
    }
    struct sb_sender_stats ss;
    sb_sender_stats(app->sender, &ss);
    put(&o,
        "# HELP switchboard_outbox_sent_total Replies accepted by providers.\n"
        "# TYPE switchboard_outbox_sent_total counter\nswitchboard_outbox_sent_total %llu\n"
        "# HELP switchboard_outbox_fetched_total Provider-held files downloaded.\n"
        "# TYPE switchboard_outbox_fetched_total counter\nswitchboard_outbox_fetched_total %llu\n"
        "# HELP switchboard_outbox_retries_total Send attempts that failed temporarily.\n"
        "# TYPE switchboard_outbox_retries_total counter\nswitchboard_outbox_retries_total %llu\n"
        "# HELP switchboard_outbox_failed_total Outbox jobs that failed for good.\n"
        "# TYPE switchboard_outbox_failed_total counter\nswitchboard_outbox_failed_total %llu\n"
        "# HELP switchboard_outbox_inflight Transfers the sender is running now.\n"
        "# TYPE switchboard_outbox_inflight gauge\nswitchboard_outbox_inflight %llu\n",
        ss.sent, ss.fetched, ss.retried, ss.failed, ss.inflight);
    put(&o,
        "# HELP switchboard_start_time_seconds When this process started.\n"
        "# TYPE switchboard_start_time_seconds gauge\n"
        "switchboard_start_time_seconds %lld\n",
        (long long)app->started_at);
    if (o.failed) {
        free(o.buf);
        return SB_ERR_NOMEM;
    }
    *text_r = o.buf;
    *len_r = o.len;
    return SB_OK;
}
