/* GET /api/v1/reports: is every request answered? One JSON document for a
 * range of days in a time zone: conversations created per channel and day,
 * per agent first-response and resolution times, the conversations whose
 * client is waiting for an answer now, and totals.
 *
 * Days: the range's local midnights are computed here (tzinfo.h, from the
 * system's zone files) and handed to MariaDB as one JSON array of
 * [day, start, end) in UTC, which JSON_TABLE turns into rows to join with.
 * So named zones work without MariaDB's time zone tables, days across a
 * clock change have their true length, and each day is an index range on
 * conversations.created_at.
 *
 * Visibility: the conversation list's rule (api_conversations.c): admins
 * count every conversation; an agent counts those assigned to them,
 * unassigned ones and those of their teams, whoever answered them.
 *
 * Definitions (docs/api.md), read from each conversation's summary columns
 * (008_reports.sql, kept by ingest, the reply and campaign sends):
 * - first response: from a conversation's first inbound message from a
 *   person to the first reply an agent wrote after it (first_response_at,
 *   first_responder_id), credited to that agent; conversations created in
 *   the range.
 * - resolution: created_at -> resolved_at of conversations resolved in the
 *   range (resolved_at is set when the status becomes resolved and cleared
 *   on reopening), credited to the assignee: the events table would name who
 *   clicked, but it is pruned by age, so it cannot answer for old ranges.
 * - unanswered: open or pending now, and the latest inbound/outbound
 *   interaction (notes, auto-replies and bounces aside) is inbound; waiting
 *   since the first inbound after the last outbound (waiting_since). Not
 *   limited to the range: it is the state now. */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/tzinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A year and a day: a report over a range this long is still one page. */
#define REPORT_DAYS_MAX 367

#define VISIBLE SB_SQL_CONV_VISIBLE /* apiutil.h */

#define DAYS_TABLE                                                                                 \
    "JSON_TABLE(?, '$[*]' COLUMNS (day VARCHAR(10) PATH '$[0]', s DATETIME(6) PATH '$[1]', "       \
    "e DATETIME(6) PATH '$[2]')) d"

/* -- name: report-by-channel-day
 * Days drive: each is a range on ix_conversations_created (008_reports),
 * which also carries the columns counted and filtered, so no row is read.
 * STRAIGHT_JOIN: left free, the optimiser starts from conversations and
 * checks every conversation of a channel against every day (14 times
 * slower with 100,000 conversations). Counted per (day, channel) before
 * the three or so channels are joined: joining each conversation with its
 * channel first took three times as long over a year. */
static const char q_by_channel_day[] =
    "SELECT z.day, z.channel_id, ch.name, ch.kind, z.n FROM (SELECT d.day, c.channel_id, "
    "COUNT(*) n FROM " DAYS_TABLE
    " STRAIGHT_JOIN conversations c FORCE INDEX (ix_conversations_created) "
    "ON c.created_at >= d.s AND c.created_at < d.e WHERE " VISIBLE
    " GROUP BY d.day, c.channel_id) z JOIN channels ch ON ch.id = z.channel_id "
    "ORDER BY z.channel_id, z.day";

/* -- name: report-first-responses
 * One row per conversation of the range that had an agent's answer: the
 * agent and the microseconds it took, from the conversation's summary
 * columns (008_reports.sql) on ix_conversations_created alone. Medians and
 * p90 are taken in C over these rows (one pass, and the totals come from
 * the same data). Names come once from q_agent_names, not per row. */
static const char q_first_responses[] =
    "SELECT c.first_responder_id, TIMESTAMPDIFF(MICROSECOND, c.first_inbound_at, "
    "c.first_response_at) FROM conversations c FORCE INDEX (ix_conversations_created) "
    "WHERE c.created_at >= ? AND c.created_at < ? AND c.first_response_at IS NOT NULL AND " VISIBLE;

/* -- name: report-resolutions (a range on ix_conversations_resolved, which
 * carries every column read) */
static const char q_resolutions[] =
    "SELECT c.assignee_id, TIMESTAMPDIFF(MICROSECOND, c.created_at, c.resolved_at) "
    "FROM conversations c FORCE INDEX (ix_conversations_resolved) "
    "WHERE c.resolved_at >= ? AND c.resolved_at < ? AND c.status = 'resolved' AND " VISIBLE;

/* -- name: report-agent-names (the agents of the rows above: a handful) */
static const char q_agent_names[] =
    "SELECT u.id, u.name FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) j "
    "JOIN users u ON u.id = j.id";

/* -- name: report-unanswered
 * Open and pending conversations whose client waits for an answer
 * (waiting_since, 008_reports.sql): two ranges on ix_conversations_waiting,
 * read from the index alone. COUNT(*) OVER () counts them all before the
 * LIMIT keeps the 20 waiting longest; only those 20 are joined with their
 * client and channel. */
static const char q_unanswered[] =
    "SELECT w.id, c.client_id, cl.name, c.channel_id, ch.name, ch.kind, w.waiting_since, "
    "TIMESTAMPDIFF(SECOND, w.waiting_since, UTC_TIMESTAMP(6)), w.n "
    "FROM (SELECT c.id, c.waiting_since, COUNT(*) OVER () n "
    " FROM conversations c FORCE INDEX (ix_conversations_waiting) "
    " WHERE c.status IN ('open', 'pending') AND c.waiting_since IS NOT NULL AND " VISIBLE
    " ORDER BY c.waiting_since, c.id LIMIT 20) w "
    "STRAIGHT_JOIN conversations c ON c.id = w.id JOIN clients cl ON cl.id = c.client_id "
    "JOIN channels ch ON ch.id = c.channel_id ORDER BY w.waiting_since, w.id";

/* Durations of one agent (or of everyone) in seconds. */
struct durations {
    double *v;
    size_t n, cap;
};

static int durations_add(struct durations *d, double v)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        double *p = realloc(d->v, cap * sizeof *p);
        if (!p)
            return -1;
        d->v = p;
        d->cap = cap;
    }
    d->v[d->n++] = v;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile with linear interpolation between closest ranks (as
 * PERCENTILE_CONT); JSON null when there is nothing to take it of. */
static json_t *percentile(struct durations *d, double p)
{
    if (!d->n)
        return json_null();
    qsort(d->v, d->n, sizeof *d->v, cmp_double); /* d->n > 0: v is set */
    double pos = p * (double)(d->n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < d->n ? lo + 1 : lo;
    double v = d->v[lo] + (d->v[hi] - d->v[lo]) * (pos - (double)lo);
    /* A tenth of a second is plenty (and no libm for round()). */
    return json_real((double)(int64_t)(v * 10 + (v < 0 ? -0.5 : 0.5)) / 10);
}

/* One row of "agents"; id 0 is "nobody" (resolutions of unassigned ones). */
struct agent {
    int64_t id;
    char *name;
    struct durations first, resolve;
};

struct agents {
    struct agent *a;
    size_t n, cap;
};

static struct agent *agent_get(struct agents *as, int64_t id)
{
    for (size_t i = 0; i < as->n; i++)
        if (as->a[i].id == id)
            return &as->a[i];
    if (as->n == as->cap) {
        size_t cap = as->cap ? as->cap * 2 : 16;
        struct agent *p = realloc(as->a, cap * sizeof *p);
        if (!p)
            return NULL;
        as->a = p;
        as->cap = cap;
    }
    struct agent *ag = &as->a[as->n];
    memset(ag, 0, sizeof *ag);
    ag->id = id;
    as->n++;
    return ag;
}

/* The agents' names, in one query; a deleted user's stays NULL. */
static int agents_name(struct agents *as, struct sb_db *db, char *err, size_t errlen)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < as->n; i++)
        if (as->a[i].id)
            json_array_append_new(ids, json_integer(as->a[i].id));
    char *text = json_dumps(ids, JSON_COMPACT);
    json_decref(ids);
    if (!text)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct sb_db_val a[] = {SB_TEXT(text)};
    struct sb_db_rows r = {0};
    int rc = sb_db_exec(db, q_agent_names, a, 1, &r, err, errlen);
    free(text);
    for (size_t i = 0; rc == SB_OK && i < r.nrows; i++) {
        int64_t id = sb_db_cell_int(&r, i, 0);
        for (size_t k = 0; k < as->n; k++)
            if (as->a[k].id == id && !as->a[k].name && sb_db_cell(&r, i, 1) &&
                !(as->a[k].name = strdup(sb_db_cell(&r, i, 1))))
                rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    sb_db_rows_free(&r);
    return rc;
}

static void agents_free(struct agents *as)
{
    for (size_t i = 0; i < as->n; i++) {
        free(as->a[i].name);
        free(as->a[i].first.v);
        free(as->a[i].resolve.v);
    }
    free(as->a);
}

/* Rows of (agent id or NULL, microseconds) into per-agent lists and the
 * total list `all`. */
static int collect(const struct sb_db_rows *r, struct agents *as, int resolve,
                   struct durations *all)
{
    for (size_t i = 0; i < r->nrows; i++) {
        struct agent *ag = agent_get(as, sb_db_cell(r, i, 0) ? sb_db_cell_int(r, i, 0) : 0);
        double secs = (double)sb_db_cell_int(r, i, 1) / 1e6;
        if (!ag || durations_add(resolve ? &ag->resolve : &ag->first, secs) ||
            durations_add(all, secs))
            return -1;
    }
    return 0;
}

static int cmp_agent(const void *a, const void *b)
{
    const struct agent *x = a, *y = b;
    if (!x->id || !y->id) /* nobody last */
        return !x->id - !y->id;
    return (x->id > y->id) - (x->id < y->id);
}

static json_t *agents_json(struct agents *as)
{
    if (as->n) /* qsort(NULL, 0, ...) is undefined */
        qsort(as->a, as->n, sizeof *as->a, cmp_agent);
    json_t *arr = json_array();
    for (size_t i = 0; i < as->n; i++) {
        struct agent *ag = &as->a[i];
        json_array_append_new(arr, json_pack("{s:o,s:o,s:I,s:o,s:o,s:I,s:o}", "id",
                                             ag->id ? json_integer(ag->id) : json_null(), "name",
                                             ag->name ? json_string(ag->name) : json_null(),
                                             "first_replied", (json_int_t)ag->first.n,
                                             "first_response_median_s", percentile(&ag->first, 0.5),
                                             "first_response_p90_s", percentile(&ag->first, 0.9),
                                             "resolved", (json_int_t)ag->resolve.n,
                                             "resolution_median_s", percentile(&ag->resolve, 0.5)));
    }
    return arr;
}

static void utc_text(int64_t t, char *out, size_t outlen)
{
    int y, m, d;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t s = t - days * 86400;
    sb_civil_from_days(days, &y, &m, &d);
    snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d", y, m, d, (int)(s / 3600),
             (int)(s / 60 % 60), (int)(s % 60));
}

/* "by_channel_day": {"days": [...], "channels": [{id, name, kind, counts,
 * total}]} from rows ordered by channel then day. */
/* *created_r: all conversations of the range (the days cover it exactly). */
static json_t *by_channel_day_json(const struct sb_db_rows *r, json_t *days_list, size_t ndays,
                                   const char *first_day, int64_t *created_r)
{
    *created_r = 0;
    int fy, fm, fd;
    sb_date_parse(first_day, &fy, &fm, &fd);
    int64_t first = sb_days_from_civil(fy, fm, fd);
    json_t *channels = json_array();
    json_t *cur = NULL, *counts = NULL;
    int64_t cur_id = -1, total = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        int64_t id = sb_db_cell_int(r, i, 1);
        if (id != cur_id) {
            if (cur)
                json_object_set_new(cur, "total", json_integer(total));
            counts = json_array();
            for (size_t k = 0; k < ndays; k++)
                json_array_append_new(counts, json_integer(0));
            cur = json_pack("{s:I,s:o,s:o,s:o}", "id", (json_int_t)id, "name",
                            sb_json_cell(r, i, 2), "kind", sb_json_cell(r, i, 3), "counts", counts);
            json_array_append_new(channels, cur);
            cur_id = id;
            total = 0;
        }
        int y, m, d;
        if (sb_date_parse(sb_db_cell(r, i, 0), &y, &m, &d) == 0) {
            int64_t k = sb_days_from_civil(y, m, d) - first;
            if (k >= 0 && (size_t)k < ndays) {
                json_array_set_new(counts, (size_t)k, json_integer(sb_db_cell_int(r, i, 4)));
                total += sb_db_cell_int(r, i, 4);
                *created_r += sb_db_cell_int(r, i, 4);
            }
        }
    }
    if (cur)
        json_object_set_new(cur, "total", json_integer(total));
    return json_pack("{s:O,s:o}", "days", days_list, "channels", channels);
}

static json_t *unanswered_json(const struct sb_db_rows *r, int64_t *count_r)
{
    json_t *oldest = json_array();
    *count_r = r->nrows ? sb_db_cell_int(r, 0, 8) : 0;
    for (size_t i = 0; i < r->nrows; i++)
        json_array_append_new(
            oldest,
            json_pack("{s:I,s:{s:I,s:o},s:{s:I,s:o,s:o},s:o,s:I}", "id",
                      (json_int_t)sb_db_cell_int(r, i, 0), "client", "id",
                      (json_int_t)sb_db_cell_int(r, i, 1), "name", sb_json_cell(r, i, 2), "channel",
                      "id", (json_int_t)sb_db_cell_int(r, i, 3), "name", sb_json_cell(r, i, 4),
                      "kind", sb_json_cell(r, i, 5), "waiting_since", sb_json_cell(r, i, 6),
                      "waiting_s", (json_int_t)sb_db_cell_int(r, i, 7)));
    return json_pack("{s:I,s:o}", "count", (json_int_t)*count_r, "oldest", oldest);
}

void sb_api_reports(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                    struct sb_http_reply *rep)
{
    (void)app;
    char from[16] = "", to[16] = "", tzs[72] = "UTC", err[256] = "";
    int fy, fm, fd, ty, tm, td;
    if (sb_request_query(req, "from", from, sizeof from) || sb_date_parse(from, &fy, &fm, &fd) ||
        sb_request_query(req, "to", to, sizeof to) || sb_date_parse(to, &ty, &tm, &td)) {
        sb_reply_error(rep, SB_ERR_INVALID, "from and to are required, as YYYY-MM-DD");
        return;
    }
    int64_t first = sb_days_from_civil(fy, fm, fd), last = sb_days_from_civil(ty, tm, td);
    if (last < first || last - first + 1 > REPORT_DAYS_MAX) {
        sb_reply_error(rep, SB_ERR_INVALID,
                       "to must not be before from, and the range at most %d days",
                       REPORT_DAYS_MAX);
        return;
    }
    if (sb_request_query(req, "tz", tzs, sizeof tzs) == 0 && !*tzs) {
        sb_reply_error(rep, SB_ERR_INVALID, "tz is empty");
        return;
    }
    if (tzs[0] == ' ') /* "tz=+03:00" typed unencoded: the '+' arrives as a space */
        tzs[0] = '+';
    struct sb_tz tz;
    int rc = sb_tz_load(tzs, &tz, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "load time zone", err);
        return;
    }
    size_t ndays = (size_t)(last - first + 1);
    json_t *days = json_array(), *bounds = json_array(), *doc = NULL;
    char range_s[32] = "", range_e[32] = "";
    for (size_t k = 0; k < ndays; k++) {
        int y, m, d, y2, m2, d2;
        sb_civil_from_days(first + (int64_t)k, &y, &m, &d);
        sb_civil_from_days(first + (int64_t)k + 1, &y2, &m2, &d2);
        char day[16], s[32], e[32];
        snprintf(day, sizeof day, "%04d-%02d-%02d", y, m, d);
        utc_text(sb_tz_day_start(&tz, y, m, d), s, sizeof s);
        utc_text(sb_tz_day_start(&tz, y2, m2, d2), e, sizeof e);
        if (!k)
            snprintf(range_s, sizeof range_s, "%s", s);
        snprintf(range_e, sizeof range_e, "%s", e);
        json_array_append_new(days, json_string(day));
        json_array_append_new(bounds, json_pack("[s,s,s]", day, s, e));
    }
    char *bounds_text = json_dumps(bounds, JSON_COMPACT);
    json_decref(bounds);
    int admin = req->user.role == SB_ROLE_ADMIN;
    struct sb_db_val vis[3] = {SB_INT(admin), SB_INT(req->user.id), SB_INT(req->user.id)};
    struct sb_db_val a_days[4] = {SB_TEXT(bounds_text), vis[0], vis[1], vis[2]};
    struct sb_db_val a_range[5] = {SB_TEXT(range_s), SB_TEXT(range_e), vis[0], vis[1], vis[2]};
    struct sb_db_rows r_days = {0}, r_first = {0}, r_res = {0}, r_wait = {0};
    struct agents as = {0};
    struct durations all_first = {0}, all_res = {0};
    const char *what = "report by channel and day";
    rc = bounds_text ? sb_db_exec(db, q_by_channel_day, a_days, 4, &r_days, err, sizeof err)
                     : SB_ERR_NOMEM;
    if (rc == SB_OK) {
        what = "report first responses";
        rc = sb_db_exec(db, q_first_responses, a_range, 5, &r_first, err, sizeof err);
    }
    if (rc == SB_OK) {
        what = "report resolutions";
        rc = sb_db_exec(db, q_resolutions, a_range, 5, &r_res, err, sizeof err);
    }
    if (rc == SB_OK) {
        what = "report unanswered";
        rc = sb_db_exec(db, q_unanswered, vis, 3, &r_wait, err, sizeof err);
    }
    if (rc == SB_OK &&
        (collect(&r_first, &as, 0, &all_first) || collect(&r_res, &as, 1, &all_res))) {
        what = "report";
        rc = SB_ERR_NOMEM;
    }
    if (rc == SB_OK) {
        what = "report agent names";
        rc = agents_name(&as, db, err, sizeof err);
    }
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, what, err);
        goto out;
    }
    int64_t waiting, created;
    json_t *unanswered = unanswered_json(&r_wait, &waiting);
    json_t *bcd = by_channel_day_json(&r_days, days, ndays, from, &created);
    doc = json_pack(
        "{s:s,s:s,s:s,s:o,s:o,s:o,s:{s:I,s:I,s:o,s:o,s:I,s:o,s:I}}", "from", from, "to", to, "tz",
        tz.name, "by_channel_day", bcd, "agents", agents_json(&as), "unanswered", unanswered,
        "totals", "conversations", (json_int_t)created, "first_replied", (json_int_t)all_first.n,
        "first_response_median_s", percentile(&all_first, 0.5), "first_response_p90_s",
        percentile(&all_first, 0.9), "resolved", (json_int_t)all_res.n, "resolution_median_s",
        percentile(&all_res, 0.5), "unanswered", (json_int_t)waiting);
    if (!doc) {
        sb_reply_failure(rep, SB_ERR_NOMEM, "report", "building the document failed");
        goto out;
    }
    sb_reply_json(rep, 200, doc);
out:
    free(bounds_text);
    json_decref(days);
    sb_db_rows_free(&r_days);
    sb_db_rows_free(&r_first);
    sb_db_rows_free(&r_res);
    sb_db_rows_free(&r_wait);
    agents_free(&as);
    free(all_first.v);
    free(all_res.v);
    sb_tz_free(&tz);
}
