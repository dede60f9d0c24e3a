/* Live updates over WebSocket (see ws.h for the design).
 *
 * Memory: a frame is built once and shared by every connection it goes to
 * (a reference count, loop thread only); a connection's queue is an array
 * of frame pointers that starts small and grows up to live.queue, so an
 * idle connection costs its struct and lws's own state. */
#include "switchboard/ws.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/dbpool.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* How long an id the tailer skipped is looked for again: a transaction that
 * took the id and commits later than this is not delivered live (it is
 * still in the table for resume). */
#define MISSING_GRACE_MS 2000
#define MISSING_MAX      1024
#define TAIL_BATCH       1000
#define PRUNE_EVERY_S    60
#define AUTH_CACHE_SIZE  256 /* a power of two */
#define AUTH_TTL_S       30
#define AUTH_NEG_TTL_S   5
#define RX_MAX           4096
#define HOLD_US          200000
/* Socket writes a second the fan-out may start: the tailer reads new events
 * at most every connections / WRITES_PER_S seconds, so each connection gets
 * what arrived meanwhile in one write: with 1,000 agents, every 8 ms; with
 * 20, every 0.2 ms. One write(2) to a loopback socket costs about 8 us here
 * (BENCH-NOTES.md), so at full rate this is more than the loop can do: the
 * wait for the drain below then stretches the interval. 40,000 (25 ms at
 * 1,000 agents) gave p99 25 ms at 100 webhooks/s against 16-27 ms now. */
#define WRITES_PER_S 120000
/* When the loop has not yet written the previous batch to most connections
 * by then, the tailer waits for it (BATCH_POLL_MS steps), up to
 * BATCH_MAX_MS after the previous read: the interval follows how long the
 * sockets actually took, and a batch read early would only wait in the
 * queues. A CPU-starved loop thus gets fewer, fuller writes (one write per
 * agent per batch whatever the batch holds), enough to keep up; a 40 ms cap
 * delivered a fifth fewer frames a second than 200 ms on a starved machine
 * (docs/benchmarks.md). The rule before (double the interval whenever frames
 * were still queued) overshot to 200 ms on a passing stall: p99 219 ms at
 * 100 webhooks/s. */
#define BATCH_MAX_MS  200
#define BATCH_POLL_MS 1

/* --- frames -------------------------------------------------------------- */

struct frame {
    struct frame *next; /* tailer → loop hand-over */
    int refs;           /* loop thread only */
    int late;           /* a skipped id that committed after higher ones */
    int mark;           /* no event: the tailer skipped to `id` (nobody connected) */
    int64_t id;         /* event id; 0 for a relayed message (typing, pong) */
    int64_t conversation_id, assignee_id, team_id, user_id;
    char type[64];
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes for lws, then the text */
};

static struct frame *frame_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct frame *frame_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    struct frame *f = calloc(1, sizeof *f + LWS_PRE + (size_t)n + 1);
    if (!f)
        return NULL;
    va_start(ap, fmt);
    vsnprintf((char *)f->buf + LWS_PRE, (size_t)n + 1, fmt, ap);
    va_end(ap);
    f->len = (size_t)n;
    return f;
}

static void frame_unref(struct frame *f)
{
    if (f && --f->refs <= 0)
        free(f);
}

static void frames_free(struct frame *f)
{
    while (f) {
        struct frame *next = f->next;
        free(f);
        f = next;
    }
}

/* One row of the events query (columns in q_tail's order) as a frame. */
static struct frame *frame_from_row(const struct sb_db_rows *r, size_t i)
{
    const char *type = sb_db_cell(r, i, 1);
    const char *data = sb_db_cell(r, i, 7);
    int64_t conv = sb_db_cell_int(r, i, 2), client = sb_db_cell_int(r, i, 3);
    struct frame *f =
        frame_printf("{\"type\":\"event\",\"id\":%lld,\"event\":\"%s\",\"conversation_id\":%lld,"
                     "\"client_id\":%lld,\"data\":%s}",
                     (long long)sb_db_cell_int(r, i, 0), type ? type : "", (long long)conv,
                     (long long)client, data && *data ? data : "{}");
    if (!f)
        return NULL;
    f->id = sb_db_cell_int(r, i, 0);
    snprintf(f->type, sizeof f->type, "%s", type ? type : "");
    f->conversation_id = conv;
    f->user_id = sb_db_cell_int(r, i, 4);
    f->assignee_id = sb_db_cell_int(r, i, 5);
    f->team_id = sb_db_cell_int(r, i, 6);
    return f;
}

static struct sb_ws_scope frame_scope(const struct frame *f)
{
    return (struct sb_ws_scope){.type = f->type,
                                .conversation_id = f->conversation_id,
                                .assignee_id = f->assignee_id,
                                .team_id = f->team_id,
                                .user_id = f->user_id};
}

/* --- visibility ---------------------------------------------------------- */

static int has_prefix(const char *s, const char *p)
{
    return !strncmp(s, p, strlen(p));
}

int sb_ws_may_see(const struct sb_ws_viewer *v, const struct sb_ws_scope *e)
{
    const char *type = e->type ? e->type : "";
    if (has_prefix(type, "notification."))
        return e->user_id == v->user_id;
    if (v->role & SB_ROLE_ADMIN)
        return 1;
    if (v->role & SB_ROLE_MARKETER && !(v->role & SB_ROLE_AGENT))
        return has_prefix(type, "campaign.") || has_prefix(type, "client.");
    if (!(v->role & SB_ROLE_AGENT))
        return 0;
    if (e->conversation_id) {
        if (!e->assignee_id || e->assignee_id == v->user_id)
            return 1;
        for (size_t i = 0; i < v->nteams; i++)
            if (e->team_id && v->teams[i] == e->team_id)
                return 1;
        return 0;
    }
    return has_prefix(type, "client.") || has_prefix(type, "agent.");
}

/* --- connections ----------------------------------------------------------- */

enum catchup_state { CU_NONE, CU_RUNNING, CU_SENDING };

struct catchup;

struct conn {
    struct lws *wsi;
    struct conn *prev, *next;
    struct sb_ws_viewer viewer;
    char name[128];
    int64_t viewing; /* the conversation the agent has open, for typing */
    int64_t cursor;  /* highest event id sent (or passed over) */
    /* Ids sent live before a resume arrived: (skip_lo, skip_hi] are not
     * sent again from the table. */
    int64_t live_from, skip_lo, skip_hi;
    /* A new connection holds its live events until its first message (a
     * resume, usually) or HOLD_US: what the client asks for decides the
     * order, not a race with our own agent.online event. */
    int holding;
    int resumed; /* a resume came (or the upgrade asked for one) */
    /* live frames waiting to be written: a ring that grows up to live.queue */
    struct frame **q;
    size_t qcap, qhead, qlen;
    /* resume */
    enum catchup_state cu;
    struct catchup *job;
    struct frame **backlog;
    size_t nbacklog, backlog_pos;
    int64_t cu_to, cu_next_from;
    int cu_more;   /* the page was full: fetch the next after sending this one */
    int live_lost; /* the queue overflowed while catching up: catch up again */
    /* a message from the browser split over several frames */
    char *rx;
    size_t rxlen;
    int close_code;
    char close_reason[64];
};

struct catchup {
    struct conn *conn; /* NULL once the connection has gone */
    struct sb_ws_viewer viewer;
    int64_t from, to;
    int pruned; /* events after `from` are gone: the client must reload */
    struct frame **frames;
    size_t n, nrows;
    int failed;
};

/* The module's state. The lock guards the hand-over list and the tailer's
 * wake-up; the rest is the loop thread's or the tailer's alone, as marked. */
static struct {
    struct sb_app *app;
    struct lws_context *ctx;
    const struct sb_db_params *params;
    int poll_ms, retention_days, sndbuf;
    size_t queue_max;

    pthread_t tailer;
    int tailer_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop, nudged;
    struct frame *ready, *ready_tail; /* frames for the loop */

    /* loop thread */
    struct conn *conns;
    size_t nconns;
    size_t queued;     /* frames in all connections' queues (loop writes, tailer reads) */
    size_t backlogged; /* connections with frames queued (loop writes, tailer reads) */
    int64_t watermark; /* highest id handed to connections */
    struct sb_db *auth_db;
    time_t auth_db_down_until;
    struct {
        unsigned char key[32];
        time_t expires;
        int ok;
        struct sb_ws_viewer viewer;
        char name[128];
    } auth_cache[AUTH_CACHE_SIZE];
    struct {
        struct lws *wsi;
        struct sb_ws_viewer viewer;
        char name[128];
        int64_t after; /* ?after=N on the upgrade: a resume from the start; -1 none */
    } pending;         /* between CONFIRM_UPGRADE and the ws protocol's first callback */
} ws = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t sb_ws_connections(void)
{
    return ws.nconns;
}

void sb_ws_nudge(void)
{
    /* Nobody listening: the periodic read keeps the position; waking the
     * tailer for every committed webhook would only cost queries. */
    if (!__atomic_load_n(&ws.nconns, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&ws.lock);
    ws.nudged = 1;
    pthread_cond_signal(&ws.wake);
    pthread_mutex_unlock(&ws.lock);
}

static void conn_close(struct conn *c, int code, const char *reason)
{
    if (c->close_code)
        return;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    lws_callback_on_writable(c->wsi);
}

static void catchup_submit(struct conn *c, int64_t from, int64_t to);
static void conn_clear_queue(struct conn *c);

/* Live frames up to the watermark did not reach the connection: it reads
 * them from the table (now, or when its hold or catch-up ends). */
static void conn_lost_live(struct conn *c)
{
    c->live_lost = 1;
    if (c->cu == CU_NONE) {
        conn_clear_queue(c);
        if (!c->holding) /* else when the hold ends (conn_release) */
            catchup_submit(c, c->cursor, ws.watermark);
    }
}

/* The queue is full. A burst (an import of thousands of clients) fills it
 * while the socket still takes data: the connection then reads the rest
 * from the table, as a resume does. A consumer whose socket is full as
 * well is too slow: it is closed with 4008 and resumes when it is back. */
static void conn_overflow(struct conn *c)
{
    if (lws_send_pipe_choked(c->wsi) ||
        (c->cu != CU_NONE && ws.watermark - c->cursor > (int64_t)ws.queue_max * 64)) {
        conn_close(c, SB_WS_CLOSE_TOO_SLOW, "too slow: reconnect and resume");
        return;
    }
    conn_lost_live(c);
}

/* The hold of a new connection ends. */
static void conn_release(struct conn *c)
{
    if (!c->holding)
        return;
    c->holding = 0;
    lws_set_timer_usecs(c->wsi, -1);
    if (c->live_lost && c->cu == CU_NONE) {
        c->live_lost = 0;
        catchup_submit(c, c->cursor, ws.watermark);
    }
    lws_callback_on_writable(c->wsi);
}

/* Queue a frame for one connection; see conn_overflow() for a full queue. */
static void conn_push(struct conn *c, struct frame *f)
{
    if (c->close_code)
        return;
    if (c->cu != CU_NONE && c->live_lost)
        return;
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? c->qcap * 2 : 8;
        if (cap > ws.queue_max)
            cap = ws.queue_max;
        if (c->qlen >= cap) {
            conn_overflow(c);
            return;
        }
        struct frame **nq = malloc(cap * sizeof *nq);
        if (!nq) {
            conn_close(c, 1011, "out of memory");
            return;
        }
        for (size_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = cap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = f;
    if (c->qlen++ == 0)
        __atomic_add_fetch(&ws.backlogged, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ws.queued, 1, __ATOMIC_RELAXED);
    f->refs++;
    /* Asking lws for a writeable callback costs a poll change: once, when
     * the queue stops being empty (on_writeable asks again while frames
     * remain). */
    if (c->qlen == 1 && c->cu == CU_NONE && !c->holding)
        lws_callback_on_writable(c->wsi);
}

static void conn_clear_queue(struct conn *c)
{
    while (c->qlen) {
        frame_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        if (--c->qlen == 0)
            __atomic_sub_fetch(&ws.backlogged, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&ws.queued, 1, __ATOMIC_RELAXED);
    }
}

static void backlog_free(struct frame **b, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        free(b[i]);
    free(b);
}

/* A message for this connection alone (errors, pong, resync). */
static void conn_say(struct conn *c, struct frame *f)
{
    if (!f)
        return;
    conn_push(c, f);
    if (!f->refs)
        free(f);
}

/* --- resume -------------------------------------------------------------- */

static const char q_page[] =
    "SELECT e.id, e.type, e.conversation_id, e.client_id, e.user_id, c.assignee_id, c.team_id, "
    "e.data FROM events e LEFT JOIN conversations c ON c.id = e.conversation_id "
    "WHERE e.id > ? AND e.id <= ? ORDER BY e.id LIMIT " SB_STR(SB_LIVE_PAGE);
static const char q_min_id[] = "SELECT MIN(id) FROM events";

static void catchup_run(struct sb_db *db, void *arg)
{
    struct catchup *j = arg;
    char err[256];
    struct sb_db_rows r;
    if (j->from > 0) {
        if (sb_db_exec(db, q_min_id, NULL, 0, &r, err, sizeof err) != SB_OK) {
            j->failed = 1;
            return;
        }
        int64_t min = r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
        sb_db_rows_free(&r);
        if (min > j->from + 1) {
            j->pruned = 1;
            return;
        }
    }
    struct sb_db_val args[] = {SB_INT(j->from), SB_INT(j->to)};
    if (sb_db_exec(db, q_page, args, 2, &r, err, sizeof err) != SB_OK) {
        sb_warn("ws", "resume: %s", err);
        j->failed = 1;
        return;
    }
    j->nrows = r.nrows;
    j->frames = calloc(r.nrows ? r.nrows : 1, sizeof *j->frames);
    for (size_t i = 0; j->frames && i < r.nrows; i++) {
        struct frame *f = frame_from_row(&r, i);
        if (!f) {
            j->failed = 1;
            break;
        }
        struct sb_ws_scope s = frame_scope(f);
        if (!sb_ws_may_see(&j->viewer, &s)) {
            j->from = f->id; /* passed over, but still the page's position */
            free(f);
            continue;
        }
        j->frames[j->n++] = f;
    }
    if (!j->frames)
        j->failed = 1;
    if (r.nrows)
        j->from = sb_db_cell_int(&r, r.nrows - 1, 0);
    sb_db_rows_free(&r);
}

static void catchup_done(void *arg)
{
    struct catchup *j = arg;
    struct conn *c = j->conn;
    if (!c) {
        backlog_free(j->frames, 0, j->n);
        free(j);
        return;
    }
    c->job = NULL;
    if (j->pruned || j->failed) {
        backlog_free(j->frames, 0, j->n);
        c->cu = CU_NONE;
        c->cursor = c->cu_to;
        conn_say(c, j->pruned ? frame_printf("{\"type\":\"resync\",\"reason\":\"older events "
                                             "were pruned; reload\"}")
                              : frame_printf("{\"type\":\"resync\",\"reason\":\"could not read "
                                             "past events; reload\"}"));
        free(j);
        lws_callback_on_writable(c->wsi);
        return;
    }
    c->backlog = j->frames;
    c->nbacklog = j->n;
    c->backlog_pos = 0;
    c->cu_more = j->nrows == SB_LIVE_PAGE;
    c->cu_next_from = j->from;
    c->cu = CU_SENDING;
    free(j);
    lws_callback_on_writable(c->wsi);
}

static void catchup_submit(struct conn *c, int64_t from, int64_t to)
{
    struct catchup *j = calloc(1, sizeof *j);
    if (!j) {
        conn_close(c, 1011, "out of memory");
        return;
    }
    j->conn = c;
    j->viewer = c->viewer;
    j->from = from;
    j->to = to;
    c->cu = CU_RUNNING;
    c->cu_to = to;
    c->job = j;
    if (sb_dbpool_submit(ws.app->pool, catchup_run, catchup_done, j) != SB_OK) {
        c->job = NULL;
        c->cu = CU_NONE;
        free(j);
        conn_close(c, 1013, "server busy: try again");
    }
}

/* The backlog is sent: fetch the next page, or go live. */
static void catchup_next(struct conn *c)
{
    free(c->backlog);
    c->backlog = NULL;
    c->nbacklog = c->backlog_pos = 0;
    if (c->cu_more) {
        catchup_submit(c, c->cu_next_from, c->cu_to);
        return;
    }
    c->cu = CU_NONE;
    if (c->cu_to > c->cursor)
        c->cursor = c->cu_to;
    if (c->live_lost) {
        c->live_lost = 0;
        conn_clear_queue(c);
        catchup_submit(c, c->cursor, ws.watermark);
    }
}

static void on_resume(struct conn *c, int64_t after)
{
    if (c->cu != CU_NONE) {
        conn_say(c, frame_printf("{\"type\":\"error\",\"message\":\"a resume is already "
                                 "running\"}"));
        return;
    }
    conn_clear_queue(c); /* everything up to the watermark comes from the table */
    c->live_lost = 0;
    c->resumed = 1;
    c->skip_lo = c->live_from;
    c->skip_hi = c->cursor > c->live_from ? c->cursor : c->live_from;
    c->cursor = after;
    if (after >= ws.watermark)
        return;
    catchup_submit(c, after, ws.watermark);
}

/* --- presence ------------------------------------------------------------ */

struct presence {
    int64_t user_id;
    char name[128];
    int online;
};

static void presence_run(struct sb_db *db, void *arg)
{
    struct presence *p = arg;
    char err[256];
    json_t *data = json_pack("{sIss}", "user_id", (json_int_t)p->user_id, "name", p->name);
    if (sb_event_append(db, p->online ? "agent.online" : "agent.offline", 0, 0, p->user_id, data,
                        err, sizeof err) != SB_OK)
        sb_warn("ws", "presence: %s", err);
}

static void presence_done(void *arg)
{
    free(arg);
    sb_ws_nudge();
}

static void presence_change(const struct conn *c, int online)
{
    for (struct conn *o = ws.conns; o; o = o->next)
        if (o != c && o->viewer.user_id == c->viewer.user_id)
            return; /* another tab of the same agent is still here */
    struct presence *p = calloc(1, sizeof *p);
    if (!p)
        return;
    p->user_id = c->viewer.user_id;
    p->online = online;
    snprintf(p->name, sizeof p->name, "%s", c->name);
    if (ws.app->draining || !ws.app->pool ||
        sb_dbpool_submit(ws.app->pool, presence_run, presence_done, p) != SB_OK)
        free(p);
}

/* --- messages from the browser ------------------------------------------- */

static void on_typing(struct conn *c, int64_t conversation_id)
{
    char name[256];
    json_t *n = json_string(c->name);
    char *esc = n ? json_dumps(n, JSON_ENCODE_ANY) : NULL;
    snprintf(name, sizeof name, "%s", esc ? esc : "\"\"");
    free(esc);
    json_decref(n);
    struct frame *f =
        frame_printf("{\"type\":\"typing\",\"conversation_id\":%lld,\"user_id\":%lld,\"name\":%s}",
                     (long long)conversation_id, (long long)c->viewer.user_id, name);
    if (!f)
        return;
    for (struct conn *o = ws.conns; o; o = o->next)
        if (o != c && o->viewing == conversation_id && o->viewer.user_id != c->viewer.user_id)
            conn_push(o, f);
    if (!f->refs)
        free(f);
}

static void on_message(struct conn *c, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *m = json_loadb(text, len, 0, &jerr);
    const char *type = m ? json_string_value(json_object_get(m, "type")) : NULL;
    json_t *conv = m ? json_object_get(m, "conversation_id") : NULL;
    if (!type) {
        conn_say(c, frame_printf("{\"type\":\"error\",\"message\":\"a message is a JSON object "
                                 "with a type\"}"));
    } else if (!strcmp(type, "resume")) {
        json_t *after = json_object_get(m, "after");
        if (!json_is_integer(after) || json_integer_value(after) < 0)
            conn_say(c, frame_printf("{\"type\":\"error\",\"message\":\"resume needs \\\"after\\\":"
                                     " the last event id seen (0 for all)\"}"));
        else
            on_resume(c, (int64_t)json_integer_value(after));
    } else if (!strcmp(type, "view")) {
        c->viewing = json_is_integer(conv) ? (int64_t)json_integer_value(conv) : 0;
    } else if (!strcmp(type, "typing")) {
        if (json_is_integer(conv) && json_integer_value(conv) > 0)
            on_typing(c, (int64_t)json_integer_value(conv));
    } else if (!strcmp(type, "ping")) {
        conn_say(c, frame_printf("{\"type\":\"pong\"}"));
    } else {
        conn_say(c, frame_printf("{\"type\":\"error\",\"message\":\"unknown message type\"}"));
    }
    json_decref(m);
}

static int on_receive(struct lws *wsi, struct conn *c, const char *in, size_t len)
{
    conn_release(c);
    int whole = lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
                !lws_remaining_packet_payload(wsi);
    if (whole && !c->rx) {
        on_message(c, in, len);
        return 0;
    }
    if (c->rxlen + len > RX_MAX) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)"too large", 9);
        return -1;
    }
    char *nrx = realloc(c->rx, c->rxlen + len + 1);
    if (!nrx)
        return -1;
    c->rx = nrx;
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        on_message(c, c->rx, c->rxlen);
        free(c->rx);
        c->rx = NULL;
        c->rxlen = 0;
    }
    return 0;
}

/* --- writing ------------------------------------------------------------- */

/* The next frame to write, or NULL: the resume backlog first, then (when
 * not catching up) the live queue. The caller owns one reference. */
static struct frame *conn_next(struct conn *c)
{
    while (c->cu == CU_SENDING) {
        if (c->backlog_pos < c->nbacklog) {
            struct frame *f = c->backlog[c->backlog_pos++];
            if (f->id > c->skip_lo && f->id <= c->skip_hi) {
                free(f); /* went out live before the resume */
                continue;
            }
            f->refs = 1;
            return f;
        }
        catchup_next(c);
    }
    if (c->cu != CU_NONE || c->holding || !c->qlen)
        return NULL;
    struct frame *f = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    if (--c->qlen == 0)
        __atomic_sub_fetch(&ws.backlogged, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&ws.queued, 1, __ATOMIC_RELAXED);
    return f;
}

/* Frames are coalesced: everything queued for a connection, up to 64 KiB,
 * goes out as several WebSocket frames in one write. One write(2) per event
 * per agent cannot keep up with hundreds of events a second to a thousand
 * agents (about 8 us each on loopback; BENCH-NOTES.md); one per wake-up can. */
#define COALESCE_MAX 65536

static size_t put_frame_header(unsigned char *p, size_t len)
{
    p[0] = 0x81; /* FIN, text */
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static int on_writeable(struct lws *wsi, struct conn *c)
{
    if (c->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason, strlen(c->close_reason));
        return -1;
    }
    static unsigned char out[LWS_PRE + COALESCE_MAX]; /* loop thread only */
    size_t used = 0;
    int more = 0;
    for (;;) {
        struct frame *f = conn_next(c);
        if (!f)
            break;
        if (f->id && !f->late && f->id <= c->cursor) {
            frame_unref(f);
            continue; /* already came from the table during a resume */
        }
        if (f->id > c->cursor)
            c->cursor = f->id;
        if (f->len + 10 > COALESCE_MAX) { /* too big to gather: alone */
            int n = used ? lws_write(wsi, out + LWS_PRE, used, LWS_WRITE_HTTP) : 0;
            if (n >= 0)
                n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
            frame_unref(f);
            if (n < 0)
                return -1;
            used = 0;
            more = 1;
            break;
        }
        used += put_frame_header(out + LWS_PRE + used, f->len);
        memcpy(out + LWS_PRE + used, f->buf + LWS_PRE, f->len);
        used += f->len;
        frame_unref(f);
        if (used + 4096 > COALESCE_MAX) {
            more = 1;
            break;
        }
    }
    /* Pre-framed bytes go out as they are (lws passes HTTP writes through
     * on a WebSocket connection). */
    if (used && lws_write(wsi, out + LWS_PRE, used, LWS_WRITE_HTTP) < 0)
        return -1;
    if (more)
        lws_callback_on_writable(wsi);
    return 0;
}

/* --- fan-out (loop thread) ----------------------------------------------- */

void sb_ws_drain(void)
{
    pthread_mutex_lock(&ws.lock);
    struct frame *list = ws.ready;
    ws.ready = ws.ready_tail = NULL;
    pthread_mutex_unlock(&ws.lock);
    while (list) {
        struct frame *f = list;
        list = f->next;
        f->next = NULL;
        f->refs = 1; /* held while fanning out */
        if (f->mark) {
            /* The tailer skipped to here while nobody was connected. A
             * connection that came in since, before this mark, never sees
             * those events live: it reads them from the table (at most
             * one poll interval of them). */
            if (f->id > ws.watermark) {
                ws.watermark = f->id;
                for (struct conn *c = ws.conns; c; c = c->next) {
                    if (c->cursor >= f->id || c->close_code)
                        continue;
                    /* New and not (yet) resuming: it is live from here, as
                     * if it had come a moment later. A catch-up started
                     * for it now would refuse the resume it is about to
                     * send ("a resume is already running"). */
                    if (c->holding && !c->resumed)
                        c->cursor = c->live_from = f->id;
                    else
                        conn_lost_live(c);
                }
            }
            frame_unref(f);
            continue;
        }
        struct sb_ws_scope s = frame_scope(f);
        for (struct conn *c = ws.conns; c; c = c->next)
            if (sb_ws_may_see(&c->viewer, &s))
                conn_push(c, f);
        if (!f->late && f->id > ws.watermark)
            ws.watermark = f->id;
        frame_unref(f);
    }
}

void sb_ws_close_all(void)
{
    for (struct conn *c = ws.conns; c; c = c->next)
        conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server stopping: reconnect and resume");
}

/* --- the protocol callback ----------------------------------------------- */

static void conn_unlink(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (ws.conns == c)
        ws.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Only an upgrade that sb_ws_confirm_upgrade() let through. */
        if (ws.pending.wsi != wsi)
            return 1;
        memset(c, 0, sizeof *c);
        c->viewer = ws.pending.viewer;
        memcpy(c->name, ws.pending.name, sizeof c->name);
        c->cursor = ws.pending.after; /* read at ESTABLISHED */
        ws.pending.wsi = NULL;
        return 0;
    case LWS_CALLBACK_ESTABLISHED: {
        int64_t after = c->cursor;
        c->wsi = wsi;
        if (ws.sndbuf > 0) /* bound the kernel's share of a slow agent */
            setsockopt(lws_get_socket_fd(wsi), SOL_SOCKET, SO_SNDBUF, &ws.sndbuf, sizeof ws.sndbuf);
        c->cursor = c->live_from = ws.watermark;
        c->next = ws.conns;
        if (ws.conns)
            ws.conns->prev = c;
        ws.conns = c;
        __atomic_add_fetch(&ws.nconns, 1, __ATOMIC_RELAXED);
        if (after >= 0) {
            on_resume(c, after);
        } else {
            c->holding = 1;
            lws_set_timer_usecs(wsi, HOLD_US);
        }
        presence_change(c, 1);
        return 0;
    }
    case LWS_CALLBACK_TIMER:
        conn_release(c);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return on_receive(wsi, c, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(wsi, c);
    case LWS_CALLBACK_CLOSED:
        if (!c || !c->wsi)
            return 0;
        presence_change(c, 0);
        conn_unlink(c);
        __atomic_sub_fetch(&ws.nconns, 1, __ATOMIC_RELAXED);
        conn_clear_queue(c);
        free(c->q);
        if (c->backlog)
            backlog_free(c->backlog, c->backlog_pos, c->nbacklog);
        if (c->job)
            c->job->conn = NULL; /* catchup_done frees it */
        free(c->rx);
        c->wsi = NULL;
        return 0;
    default:
        return 0;
    }
}

/* tx_packet_size: lws cuts every send() to this (to rx_buffer_size when it
 * is 0, and buffers the rest for later POLLOUTs), which made a coalesced
 * write of 60 KB into sixty 1 KB sends: 69,000 send(2) calls a second at
 * 1,000 agents (docs/benchmarks.md, 2026-11-24). */
const struct lws_protocols sb_ws_protocol = {.name = SB_WS_PROTOCOL,
                                             .callback = ws_callback,
                                             .per_session_data_size = sizeof(struct conn),
                                             .rx_buffer_size = 1024,
                                             .tx_packet_size = COALESCE_MAX};

/* --- the upgrade: path, subprotocol, credentials ---------------------------- */

static int answer(struct lws *wsi, int status, const char *code, const char *msg)
{
    struct sb_http_reply rep = {0};
    sb_reply_error_status(&rep, status, code, msg);
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    int rc = 1;
    if (lws_add_http_header_status(wsi, (unsigned)status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        lws_add_http_header_content_length(wsi, rep.body_len, &p, end) ||
        lws_finalize_http_header(wsi, &p, end) ||
        lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0 ||
        lws_write(wsi, (unsigned char *)rep.body, rep.body_len, LWS_WRITE_HTTP_FINAL) < 0)
        rc = -1;
    sb_reply_free(&rep);
    return rc;
}

static const char q_teams[] =
    "SELECT team_id FROM team_members WHERE user_id = ? LIMIT " SB_STR(SB_LIVE_TEAMS_MAX);

/* Credentials → viewer, from the cache or the database. The one database
 * call on the loop: a credential not seen for AUTH_TTL_S costs an indexed
 * lookup (a fraction of a millisecond); reconnects within that are free.
 * While the database is down the answer is 503 at once, not a wait. */
static int authenticate(struct sb_http_request *req, struct sb_ws_viewer *v, char *name,
                        size_t namelen)
{
    unsigned char key[32];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)req->authorization,
                              strlen(req->authorization) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)req->cookie, strlen(req->cookie));
    crypto_hash_sha256_final(&st, key);
    size_t slot = (key[0] | (size_t)key[1] << 8) & (AUTH_CACHE_SIZE - 1);
    time_t now = time(NULL);
    if (ws.auth_cache[slot].expires > now && !memcmp(ws.auth_cache[slot].key, key, sizeof key)) {
        if (!ws.auth_cache[slot].ok)
            return SB_ERR_UNAUTHORIZED;
        *v = ws.auth_cache[slot].viewer;
        snprintf(name, namelen, "%s", ws.auth_cache[slot].name);
        return SB_OK;
    }
    if (now < ws.auth_db_down_until)
        return SB_ERR_UNAVAILABLE;
    char err[256];
    if (!ws.auth_db && sb_db_open(ws.params, 0, &ws.auth_db, err, sizeof err) != SB_OK) {
        sb_warn("ws", "cannot check credentials: %s", err);
        ws.auth_db_down_until = now + 2;
        return SB_ERR_UNAVAILABLE;
    }
    int rc = sb_auth_resolve(ws.auth_db, req, &req->user, err, sizeof err);
    if (rc == SB_ERR_UNAUTHORIZED) {
        memcpy(ws.auth_cache[slot].key, key, sizeof key);
        ws.auth_cache[slot].ok = 0;
        ws.auth_cache[slot].expires = now + AUTH_NEG_TTL_S;
        return rc;
    }
    struct sb_db_rows r = {0};
    if (rc == SB_OK) {
        struct sb_db_val arg = SB_INT(req->user.id);
        rc = sb_db_exec(ws.auth_db, q_teams, &arg, 1, &r, err, sizeof err);
    }
    if (rc != SB_OK) {
        sb_warn("ws", "cannot check credentials: %s", err);
        sb_db_close(&ws.auth_db); /* reconnect next time */
        ws.auth_db_down_until = now + 2;
        return SB_ERR_UNAVAILABLE;
    }
    memset(v, 0, sizeof *v);
    v->user_id = req->user.id;
    v->role = req->user.role;
    for (size_t i = 0; i < r.nrows && i < SB_LIVE_TEAMS_MAX; i++)
        v->teams[v->nteams++] = sb_db_cell_int(&r, i, 0);
    sb_db_rows_free(&r);
    snprintf(name, namelen, "%.*s", (int)namelen - 1, req->user.name);
    memcpy(ws.auth_cache[slot].key, key, sizeof key);
    ws.auth_cache[slot].ok = 1;
    ws.auth_cache[slot].expires = now + AUTH_TTL_S;
    ws.auth_cache[slot].viewer = *v;
    snprintf(ws.auth_cache[slot].name, sizeof ws.auth_cache[slot].name, "%s", name);
    return SB_OK;
}

static void header(struct lws *wsi, enum lws_token_indexes h, char *dst, size_t dstlen)
{
    dst[0] = '\0';
    int n = lws_hdr_total_length(wsi, h);
    if (n > 0 && (size_t)n < dstlen && lws_hdr_copy(wsi, dst, (int)dstlen, h) < 0)
        dst[0] = '\0';
}

/* Does the comma-separated Sec-WebSocket-Protocol list name ours? */
static int offers_protocol(const char *list)
{
    size_t n = strlen(SB_WS_PROTOCOL);
    for (const char *p = list; (p = strstr(p, SB_WS_PROTOCOL)) != NULL; p += n) {
        int starts = p == list || p[-1] == ',' || p[-1] == ' ';
        int ends = p[n] == '\0' || p[n] == ',' || p[n] == ' ';
        if (starts && ends)
            return 1;
    }
    return 0;
}

int sb_ws_confirm_upgrade(struct lws *wsi, struct sb_app *app)
{
    static struct sb_http_request req; /* loop thread only; large */
    memset(&req, 0, sizeof req);
    header(wsi, WSI_TOKEN_GET_URI, req.path, sizeof req.path);
    if (strcmp(req.path, "/ws") != 0)
        return answer(wsi, 404, "not_found", "WebSocket connections go to /ws");
    char proto[256];
    header(wsi, WSI_TOKEN_PROTOCOL, proto, sizeof proto);
    if (!offers_protocol(proto))
        return answer(wsi, 400, "invalid", "ask for the subprotocol " SB_WS_PROTOCOL);
    if (app->draining)
        return answer(wsi, 503, "unavailable", "the server is shutting down");
    if (!ws.ctx)
        return answer(wsi, 503, "unavailable", "live updates are not running");
    header(wsi, WSI_TOKEN_HTTP_COOKIE, req.cookie, sizeof req.cookie);
    header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, req.authorization, sizeof req.authorization);
    header(wsi, WSI_TOKEN_ORIGIN, req.origin, sizeof req.origin);
    header(wsi, WSI_TOKEN_HOST, req.host, sizeof req.host);
    lws_get_peer_simple(wsi, req.peer, sizeof req.peer);
    struct sb_ws_viewer v;
    char name[128];
    int rc = authenticate(&req, &v, name, sizeof name);
    if (rc == SB_ERR_UNAUTHORIZED)
        return answer(wsi, 401, "unauthorized", "sign in, or send a bearer token");
    if (rc != SB_OK)
        return answer(wsi, 503, "unavailable", "cannot check credentials now; retry shortly");
    /* Browsers let any site open a WebSocket with our cookie attached: a
     * cookie only counts from our own origin (a bearer token is not sent by
     * a browser on its own). */
    if (!req.authorization[0] && req.origin[0]) {
        const char *o = strstr(req.origin, "://");
        if (!o || strcasecmp(o + 3, req.host) != 0)
            return answer(wsi, 403, "forbidden", "cross-origin WebSocket refused");
    }
    char after[32];
    ws.pending.after = -1;
    if (lws_get_urlarg_by_name(wsi, "after=", after, sizeof after)) {
        char *end;
        long long n = strtoll(after, &end, 10);
        if (*end || n < 0)
            return answer(wsi, 400, "invalid", "after must be an event id (0 or more)");
        ws.pending.after = n;
    }
    ws.pending.wsi = wsi;
    ws.pending.viewer = v;
    snprintf(ws.pending.name, sizeof ws.pending.name, "%s", name);
    return 0;
}

/* --- the tailer thread ------------------------------------------------------ */

static const char q_tail[] =
    "SELECT e.id, e.type, e.conversation_id, e.client_id, e.user_id, c.assignee_id, c.team_id, "
    "e.data FROM events e LEFT JOIN conversations c ON c.id = e.conversation_id "
    "WHERE e.id > ? ORDER BY e.id LIMIT " SB_STR(TAIL_BATCH);
/* Ids skipped earlier, looked for again (a JSON array of ids). */
static const char q_late[] =
    "SELECT e.id, e.type, e.conversation_id, e.client_id, e.user_id, c.assignee_id, c.team_id, "
    "e.data FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) j "
    "JOIN events e ON e.id = j.id LEFT JOIN conversations c ON c.id = e.conversation_id "
    "ORDER BY e.id";
static const char q_max_id[] = "SELECT COALESCE(MAX(id), 0) FROM events";
static const char q_prune[] =
    "DELETE FROM events WHERE created_at < NOW(6) - INTERVAL ? DAY ORDER BY id LIMIT 10000";

struct tail {
    struct sb_db *db;
    int64_t last; /* highest id read */
    struct {
        int64_t id, since_ms;
    } missing[MISSING_MAX];
    size_t nmissing;
    struct frame *out, *out_tail;
    time_t next_prune;
};

static void tail_emit(struct tail *t, struct frame *f)
{
    if (t->out_tail)
        t->out_tail->next = f;
    else
        t->out = f;
    t->out_tail = f;
}

static void missing_add(struct tail *t, int64_t from, int64_t to, int64_t now)
{
    if (to - from >= MISSING_MAX)
        return; /* a jump (restart, pruning, Galera offsets): nothing to wait for */
    for (int64_t id = from; id <= to; id++) {
        if (t->nmissing == MISSING_MAX) { /* forget the oldest */
            memmove(&t->missing[0], &t->missing[1], (MISSING_MAX - 1) * sizeof t->missing[0]);
            t->nmissing--;
        }
        t->missing[t->nmissing].id = id;
        t->missing[t->nmissing].since_ms = now;
        t->nmissing++;
    }
}

static int tail_rows(struct tail *t, const struct sb_db_rows *r, int late)
{
    for (size_t i = 0; i < r->nrows; i++) {
        struct frame *f = frame_from_row(r, i);
        if (!f)
            return SB_ERR_NOMEM;
        f->late = late;
        tail_emit(t, f);
    }
    return SB_OK;
}

/* Look again for skipped ids; forget those older than the grace period. */
static int tail_late(struct tail *t, int64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < t->nmissing; i++)
        if (now - t->missing[i].since_ms < MISSING_GRACE_MS)
            t->missing[keep++] = t->missing[i];
    t->nmissing = keep;
    if (!t->nmissing)
        return SB_OK;
    char *ids = malloc(t->nmissing * 21 + 2);
    if (!ids)
        return SB_ERR_NOMEM;
    size_t o = 0;
    ids[o++] = '[';
    for (size_t i = 0; i < t->nmissing; i++)
        o += (size_t)sprintf(ids + o, "%s%lld", i ? "," : "", (long long)t->missing[i].id);
    ids[o++] = ']';
    ids[o] = '\0';
    char err[256];
    struct sb_db_rows r;
    struct sb_db_val arg = SB_TEXT(ids);
    int rc = sb_db_exec(t->db, q_late, &arg, 1, &r, err, sizeof err);
    free(ids);
    if (rc != SB_OK) {
        sb_warn("ws", "events: %s", err);
        return rc;
    }
    rc = tail_rows(t, &r, 1);
    for (size_t i = 0; i < r.nrows; i++) { /* found: stop looking */
        int64_t id = sb_db_cell_int(&r, i, 0);
        for (size_t k = 0; k < t->nmissing; k++)
            if (t->missing[k].id == id) {
                t->missing[k] = t->missing[--t->nmissing];
                break;
            }
    }
    sb_db_rows_free(&r);
    return rc;
}

/* One round: new rows, then skipped ids. Returns 1 when a full batch came
 * (read again at once). */
static int tail_once(struct tail *t)
{
    char err[256];
    struct sb_db_rows r;
    struct sb_db_val arg = SB_INT(t->last);
    if (sb_db_exec(t->db, q_tail, &arg, 1, &r, err, sizeof err) != SB_OK) {
        sb_warn("ws", "events: %s", err);
        sb_db_close(&t->db);
        return 0;
    }
    int64_t now = now_ms();
    int full = r.nrows == TAIL_BATCH;
    for (size_t i = 0; i < r.nrows; i++) {
        int64_t id = sb_db_cell_int(&r, i, 0);
        if (id > t->last + 1)
            missing_add(t, t->last + 1, id - 1, now);
        t->last = id;
    }
    tail_rows(t, &r, 0);
    sb_db_rows_free(&r);
    if (t->db)
        tail_late(t, now);
    return full;
}

/* Nobody is connected to this node: reading every new event (its data
 * and its conversation) only to drop it cost a fifth of the database's time
 * under bench/webhooks. The tailer keeps its place with the newest id
 * instead and tells the loop (a mark frame), so that a connection opened
 * meanwhile reads what it skipped from the table. An id still uncommitted
 * below it is not delivered live, as after MISSING_GRACE_MS: it is in the
 * table for a resume. */
static void tail_idle(struct tail *t)
{
    char err[256];
    struct sb_db_rows r;
    if (sb_db_exec(t->db, q_max_id, NULL, 0, &r, err, sizeof err) != SB_OK) {
        sb_warn("ws", "events: %s", err);
        sb_db_close(&t->db);
        return;
    }
    int64_t max = r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    sb_db_rows_free(&r);
    if (max <= t->last)
        return;
    struct frame *f = frame_printf("%s", "");
    if (!f)
        return; /* the next round tries again */
    f->id = max;
    f->mark = 1;
    t->last = max;
    t->nmissing = 0;
    tail_emit(t, f);
}

static void tail_prune(struct tail *t)
{
    time_t now = time(NULL);
    if (now < t->next_prune)
        return;
    t->next_prune = now + PRUNE_EVERY_S;
    char err[256];
    struct sb_db_val arg = SB_INT(ws.retention_days);
    struct sb_db_rows r;
    do {
        if (sb_db_exec(t->db, q_prune, &arg, 1, &r, err, sizeof err) != SB_OK) {
            sb_warn("ws", "pruning events: %s", err);
            return;
        }
        sb_db_rows_free(&r);
    } while (r.affected == 10000);
}

static void *tailer_main(void *arg)
{
    struct tail *t = arg;
    int again = 0;
    int64_t last_read = 0;
    for (;;) {
        /* Batch for the fan-out's sake: see WRITES_PER_S and BATCH_MAX_MS. */
        size_t conns = __atomic_load_n(&ws.nconns, __ATOMIC_RELAXED);
        int64_t floor_ms = (int64_t)(conns * 1000 / WRITES_PER_S);
        int64_t since = now_ms() - last_read;
        if (floor_ms > 0 && since < floor_ms) {
            int64_t ms = floor_ms - since;
            struct timespec pause = {(time_t)(ms / 1000), (long)(ms % 1000 * 1000000)};
            nanosleep(&pause, NULL);
        }
        while (conns && __atomic_load_n(&ws.backlogged, __ATOMIC_RELAXED) > conns / 8 &&
               now_ms() - last_read < BATCH_MAX_MS &&
               !__atomic_load_n(&ws.stop, __ATOMIC_RELAXED)) {
            struct timespec pause = {0, BATCH_POLL_MS * 1000000L};
            nanosleep(&pause, NULL);
        }
        pthread_mutex_lock(&ws.lock);
        if (!again && !ws.nudged && !ws.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (int64_t)ws.poll_ms * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&ws.wake, &ws.lock, &ts);
        }
        int stop = ws.stop;
        ws.nudged = 0;
        pthread_mutex_unlock(&ws.lock);
        if (stop)
            break;
        if (!t->db) {
            char err[256];
            if (sb_db_open(ws.params, 0, &t->db, err, sizeof err) != SB_OK) {
                sb_warn("ws", "events: %s", err);
                struct timespec pause = {1, 0};
                nanosleep(&pause, NULL);
                continue;
            }
        }
        last_read = now_ms();
        if (__atomic_load_n(&ws.nconns, __ATOMIC_RELAXED)) {
            again = tail_once(t);
        } else {
            tail_idle(t);
            again = 0;
        }
        if (t->db)
            tail_prune(t);
        if (t->out) {
            pthread_mutex_lock(&ws.lock);
            if (ws.ready_tail)
                ws.ready_tail->next = t->out;
            else
                ws.ready = t->out;
            ws.ready_tail = t->out_tail;
            pthread_mutex_unlock(&ws.lock);
            t->out = t->out_tail = NULL;
            lws_cancel_service(ws.ctx);
        }
    }
    sb_db_close(&t->db);
    free(t);
    return NULL;
}

int sb_ws_start(struct sb_app *app, struct lws_context *ctx, const struct sb_db_params *params,
                char *err, size_t errlen)
{
    ws.app = app;
    ws.params = params;
    ws.poll_ms = app->cfg->live_poll_ms;
    ws.retention_days = app->cfg->live_retention_days;
    ws.queue_max = (size_t)app->cfg->live_queue;
    ws.sndbuf = app->cfg->live_sndbuf;
    ws.stop = 0;
    struct tail *t = calloc(1, sizeof *t);
    if (!t)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    /* Start at the newest event: a node that starts does not replay
     * history (clients that want it resume). The database may be down at
     * start-up; then the tailer starts from what it finds first. */
    char derr[256];
    struct sb_db_rows r;
    if (sb_db_open(params, 0, &t->db, derr, sizeof derr) == SB_OK &&
        sb_db_exec(t->db, q_max_id, NULL, 0, &r, derr, sizeof derr) == SB_OK) {
        t->last = r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
        sb_db_rows_free(&r);
    } else {
        sb_warn("ws", "events: %s", derr);
        sb_db_close(&t->db);
    }
    t->next_prune = time(NULL) + 5;
    ws.watermark = t->last;
    ws.ctx = ctx;
    if (pthread_create(&ws.tailer, NULL, tailer_main, t) != 0) {
        sb_db_close(&t->db);
        free(t);
        ws.ctx = NULL;
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start the events tailer");
    }
    ws.tailer_started = 1;
    return SB_OK;
}

void sb_ws_stop(void)
{
    if (ws.tailer_started) {
        pthread_mutex_lock(&ws.lock);
        __atomic_store_n(&ws.stop, 1, __ATOMIC_RELAXED);
        pthread_cond_signal(&ws.wake);
        pthread_mutex_unlock(&ws.lock);
        pthread_join(ws.tailer, NULL);
        ws.tailer_started = 0;
    }
    frames_free(ws.ready);
    ws.ready = ws.ready_tail = NULL;
    sb_db_close(&ws.auth_db);
    ws.ctx = NULL;
}
