/* The HTTP server on libwebsockets (see server.h).
 *
 * DESIGN
 * Each HTTP transaction owns one heap `struct xfer`, pointed to by the
 * connection's per-session data. Its life:
 *
 *   READING --body complete--> dispatch --loop route--> READY
 *                                 \--DB route--> QUEUED --job done--> READY
 *   READY --WRITEABLE--> headers, body chunks --last chunk--> freed
 *   READY (static file) --lws_serve_http_file--> FILE --FILE_COMPLETION--> freed
 *
 * A connection that closes while its job is QUEUED leaves the xfer behind
 * with wsi = NULL; the job's completion (on the loop) frees it instead of
 * answering. Only the loop thread touches `wsi` and `state`; while QUEUED,
 * the worker owns `req` and `rep` and the loop leaves them alone.
 *
 * Threads: the loop thread runs everything in this file except run_job(),
 * which runs on a DB worker. Workers reach the loop only through
 * lws_cancel_service() -> LWS_CALLBACK_EVENT_WAIT_CANCELLED -> drain. */
#include "switchboard/server.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/campaign_send.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/dbpool.h"
#include "switchboard/err.h"
#include "switchboard/http.h"
#include "switchboard/limits.h"
#include "switchboard/log.h"
#include "switchboard/mailbox.h"
#include "switchboard/metrics.h"
#include "switchboard/ratelimit.h"
#include "switchboard/secrets.h"
#include "switchboard/sender.h"
#include "switchboard/static.h"
#include "switchboard/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum xfer_state { X_READING, X_QUEUED, X_READY, X_FILE };

/* The largest refused body read to its end before the 413 (see on_request). */
#define DISCARD_MAX (64u * 1024 * 1024)

struct xfer {
    struct lws *wsi; /* NULL once the connection has gone */
    struct sb_app *app;
    enum xfer_state state;
    struct sb_route *route;
    struct sb_http_request req;
    struct sb_http_reply rep;
    size_t body_cap;
    int body_too_large;
    int close_after;
    int headers_sent;
    size_t sent;
    double started;
};

struct pss {
    struct xfer *x;
};

/* Written by the signal handler, read by the loop. */
static volatile sig_atomic_t stop_requested;
static struct lws_context *signal_ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void xfer_free(struct xfer *x)
{
    if (!x)
        return;
    free(x->req.body);
    sb_reply_free(&x->rep);
    free(x);
}

/* The transaction is over for the client (answered, or the client left). */
static void xfer_end(struct xfer *x)
{
    if (x->app->inflight > 0)
        x->app->inflight--;
}

static void copy_header(struct lws *wsi, enum lws_token_indexes h, char *dst, size_t dstlen)
{
    dst[0] = '\0';
    int len = lws_hdr_total_length(wsi, h);
    if (len <= 0 || (size_t)len >= dstlen)
        return; /* absent, or longer than any value we would accept */
    if (lws_hdr_copy(wsi, dst, (int)dstlen, h) < 0)
        dst[0] = '\0';
}

/* Headers that webhook adapters verify. Copied here, on the loop thread,
 * because the worker that runs the adapter cannot touch the connection. */
static const char *const provider_header_names[] = {
    "x-telegram-bot-api-secret-token:",
    "x-hub-signature-256:",
    "x-viber-content-signature:",
    "x-switchboard-signature:",
    /* website forms (api_forms.c, channels/webform.c) */
    "idempotency-key:",
    "sec-fetch-mode:",
    NULL,
};

static void capture_provider_headers(struct lws *wsi, struct sb_http_request *req)
{
    size_t o = 0;
    char value[512];
    for (const char *const *h = provider_header_names; *h; h++) {
        int n = lws_hdr_custom_length(wsi, *h, (int)strlen(*h));
        if (n <= 0 || (size_t)n >= sizeof value ||
            lws_hdr_custom_copy(wsi, value, sizeof value, *h, (int)strlen(*h)) < 0)
            continue;
        int w = snprintf(req->provider_headers + o, sizeof req->provider_headers - o, "%.*s: %s\n",
                         (int)strlen(*h) - 1, *h, value);
        if (w < 0 || (size_t)w >= sizeof req->provider_headers - o)
            break;
        o += (size_t)w;
    }
    req->provider_headers[o] = '\0';
}

static int detect_method(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes tok;
        int method;
    } map[] = {
        {WSI_TOKEN_GET_URI, SB_GET},       {WSI_TOKEN_POST_URI, SB_POST},
        {WSI_TOKEN_PUT_URI, SB_PUT},       {WSI_TOKEN_PATCH_URI, SB_PATCH},
        {WSI_TOKEN_DELETE_URI, SB_DELETE}, {WSI_TOKEN_OPTIONS_URI, SB_OPTIONS},
        {WSI_TOKEN_HEAD_URI, SB_HEAD},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (lws_hdr_total_length(wsi, map[i].tok) > 0)
            return map[i].method;
    return 0;
}

/* --- answering ----------------------------------------------------------- */

static void make_ready(struct xfer *x)
{
    x->state = X_READY;
    if (x->wsi)
        lws_callback_on_writable(x->wsi);
}

static void reply_error_now(struct xfer *x, int err, const char *msg)
{
    sb_reply_error(&x->rep, err, "%s", msg);
    make_ready(x);
}

/* Headers every answer carries: no MIME sniffing, no referrer leaks. */
static int add_common_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                       (const unsigned char *)"nosniff", 7, p, end) ||
           lws_add_http_header_by_name(wsi, (const unsigned char *)"referrer-policy:",
                                       (const unsigned char *)"same-origin", 11, p, end);
}

/* Copy the handler's "Name: value\r\n" lines into lws's header buffer. */
static int add_extra_headers(struct lws *wsi, const struct sb_http_reply *rep, unsigned char **p,
                             unsigned char *end)
{
    const char *s = rep->headers;
    while (*s) {
        const char *colon = strchr(s, ':');
        const char *eol = strstr(s, "\r\n");
        if (!colon || !eol || colon > eol)
            return -1;
        char name[128];
        size_t nlen = (size_t)(colon - s);
        if (nlen + 2 > sizeof name)
            return -1;
        for (size_t i = 0; i < nlen; i++)
            name[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
        name[nlen] = ':';
        name[nlen + 1] = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
                                        (int)(eol - v), p, end))
            return -1;
        s = eol + 2;
    }
    return 0;
}

static int write_headers(struct lws *wsi, struct xfer *x)
{
    /* Headers go out in one lws_write; 4 KiB of handler headers plus ours fit. */
    unsigned char buf[LWS_PRE + SB_EXTRA_HEADERS_MAX + 2048];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    struct sb_http_reply *rep = &x->rep;
    int no_body = rep->status == 204 || rep->status == 304;
    if (lws_add_http_header_status(wsi, (unsigned int)rep->status, &p, end))
        return -1;
    if (!no_body) {
        if (rep->content_type &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                         (const unsigned char *)rep->content_type,
                                         (int)strlen(rep->content_type), &p, end))
            return -1;
        if (lws_add_http_header_content_length(wsi, rep->body_len, &p, end))
            return -1;
    }
    if (!strncmp(x->req.path, "/api/", 5) &&
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (add_common_headers(wsi, &p, end) || add_extra_headers(wsi, rep, &p, end))
        return -1;
    if (x->close_after && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                                       (const unsigned char *)"close", 5, &p, end))
        return -1;
    if (lws_finalize_http_header(wsi, &p, end))
        return -1;
    int n = (int)(p - start);
    if (lws_write(wsi, start, (size_t)n, LWS_WRITE_HTTP_HEADERS) != n)
        return -1;
    return 0;
}

/* Finish the transaction: count it, free it, and keep the connection for the
 * next request unless we promised to close. Returns the callback's value. */
static int finish(struct lws *wsi, struct pss *pss, struct xfer *x, int status)
{
    sb_metrics_observe(x->route, status, now_s() - x->started);
    int close_after = x->close_after || x->app->draining;
    xfer_end(x);
    xfer_free(x);
    pss->x = NULL;
    if (close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int on_writeable(struct lws *wsi, struct pss *pss)
{
    struct xfer *x = pss->x;
    if (!x || x->state != X_READY)
        return 0;
    if (x->app->draining)
        x->close_after = 1;
    if (!x->headers_sent) {
        if (write_headers(wsi, x) != 0)
            return -1;
        x->headers_sent = 1;
        if (x->req.method == SB_HEAD || x->rep.body_len == 0 || x->rep.status == 204 ||
            x->rep.status == 304)
            return finish(wsi, pss, x, x->rep.status);
        lws_callback_on_writable(wsi);
        return 0;
    }
    /* The body goes in chunks, one per WRITEABLE, so a large answer never
     * makes lws buffer it all or starve other connections. */
    static unsigned char chunk[LWS_PRE + 16384]; /* loop thread only */
    size_t left = x->rep.body_len - x->sent;
    size_t n = left < sizeof chunk - LWS_PRE ? left : sizeof chunk - LWS_PRE;
    memcpy(chunk + LWS_PRE, x->rep.body + x->sent, n);
    int final = n == left;
    if (lws_write(wsi, chunk + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    x->sent += n;
    if (final)
        return finish(wsi, pss, x, x->rep.status);
    lws_callback_on_writable(wsi);
    return 0;
}

/* --- dispatch ------------------------------------------------------------ */

/* On a DB worker: authenticate, authorise, run the handler. */
static void run_job(struct sb_db *db, void *arg)
{
    struct xfer *x = arg;
    const struct sb_route *r = x->route;
    if (!(r->flags & SB_ROUTE_PUBLIC)) {
        char err[256] = "";
        int rc = sb_auth_resolve(db, &x->req, &x->req.user, err, sizeof err);
        if (rc == SB_ERR_UNAUTHORIZED) {
            sb_reply_error(&x->rep, rc, "%s", err);
            return;
        }
        if (rc != SB_OK) {
            sb_reply_failure(&x->rep, rc, "check credentials", err);
            return;
        }
        if (!(x->req.user.role & r->roles)) {
            sb_reply_error(&x->rep, SB_ERR_FORBIDDEN, "your role may not do this");
            return;
        }
        /* A cookie rides along on cross-site requests that SameSite=Lax
         * lets through; refuse writes from another origin outright. */
        if (!x->req.user.via_token && x->req.method != SB_GET && x->req.method != SB_HEAD &&
            x->req.origin[0]) {
            const char *o = strstr(x->req.origin, "://");
            if (!o || strcasecmp(o + 3, x->req.host) != 0) {
                sb_reply_error(&x->rep, SB_ERR_FORBIDDEN, "cross-origin request refused");
                return;
            }
        }
    }
    r->handler(x->app, db, &x->req, &x->rep);
}

/* On a DB worker: queued requests of grouped routes, handled together.
 * The pool groups by this function, so one call may hold several routes;
 * each route's group handler gets its own requests. */
static void run_group(struct sb_db *db, void **args, size_t n)
{
    struct xfer **xs = (struct xfer **)args;
    const struct sb_http_request *reqs[SB_DB_GROUP_MAX];
    struct sb_http_reply *reps[SB_DB_GROUP_MAX];
    int done[SB_DB_GROUP_MAX] = {0};
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (!done[j] && xs[j]->route->group == xs[i]->route->group) {
                reqs[m] = &xs[j]->req;
                reps[m] = &xs[j]->rep;
                m++;
                done[j] = 1;
            }
        xs[i]->route->group(xs[i]->app, db, reqs, reps, m);
    }
}

/* Back on the loop thread. */
static void job_done(void *arg)
{
    struct xfer *x = arg;
    if (!x->wsi) {
        xfer_free(x); /* the client left; its slot in `inflight` was released then */
        return;
    }
    if (!x->rep.status)
        sb_reply_error(&x->rep, SB_ERR_INTERNAL, "internal error");
    /* A write may have appended events: let the tailer read them now
     * rather than at its next poll. */
    if (x->req.method != SB_GET && x->req.method != SB_HEAD)
        sb_ws_nudge();
    make_ready(x);
}

static void dispatch(struct xfer *x)
{
    if (x->route->flags & SB_ROUTE_LOOP) {
        x->route->handler(x->app, NULL, &x->req, &x->rep);
        make_ready(x);
        return;
    }
    if ((x->route->flags & SB_ROUTE_PUBLIC) &&
        sb_dbpool_queued(x->app->pool) >= SB_DB_QUEUE_PUBLIC_MAX) {
        sb_reply_error(&x->rep, SB_ERR_UNAVAILABLE, "the server is busy; retry shortly");
        sb_reply_header(&x->rep, "Retry-After", "1");
        make_ready(x);
        return;
    }
    x->state = X_QUEUED;
    int rc = x->route->group && (x->route->flags & SB_ROUTE_PUBLIC)
                 ? sb_dbpool_submit_group(x->app->pool, run_group, job_done, x)
                 : sb_dbpool_submit(x->app->pool, run_job, job_done, x);
    if (rc != SB_OK) {
        sb_reply_error(&x->rep, SB_ERR_UNAVAILABLE, "the server is overloaded; retry shortly");
        sb_reply_header(&x->rep, "Retry-After", "1");
        make_ready(x);
    }
}

/* Read a small file whole into the reply: one open/read/close, then the
 * same write path as every other answer. */
static int read_small_file(const char *path, size_t size, struct sb_http_reply *rep)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SB_ERR_NOT_FOUND;
    char *buf = malloc(size + 1);
    size_t got = 0;
    while (buf && got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf || got != size) { /* changed under us: let the client retry */
        free(buf);
        return SB_ERR_IO;
    }
    free(rep->body);
    rep->body = buf;
    rep->body_len = size;
    return SB_OK;
}

static int serve_static(struct lws *wsi, struct xfer *x)
{
    struct sb_static_file f;
    if (sb_static_resolve(x->app->cfg->web_root, x->req.path, &f) != SB_OK)
        return SB_ERR_NOT_FOUND;
    x->route = &sb_route_static;
    x->app->static_hits++;
    struct sb_http_reply *rep = &x->rep;
    sb_reply_header(rep, "ETag", f.etag);
    sb_reply_header(rep, "Cache-Control", f.cache_control);
    if (!strncmp(f.content_type, "text/html", 9))
        /* The web view is ours alone: no framing by others, no plugins, and
         * script only from our own origin. */
        sb_reply_header(rep, "Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data: blob:; "
                        "style-src 'self' 'unsafe-inline'; frame-src 'self' blob: data:; "
                        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    if (x->req.if_none_match[0] && !strcmp(x->req.if_none_match, f.etag)) {
        rep->status = 304;
        make_ready(x);
        return SB_OK;
    }
    if (f.size <= SB_STATIC_INLINE_MAX) {
        int rc = read_small_file(f.path, (size_t)f.size, rep);
        if (rc != SB_OK)
            return rc;
        rep->status = 200;
        rep->content_type = f.content_type;
        make_ready(x);
        return SB_OK;
    }
    /* Large files stream from disk through lws, chunk by chunk. */
    unsigned char hdr[SB_EXTRA_HEADERS_MAX + 256], *p = hdr, *end = hdr + sizeof hdr;
    if (add_common_headers(wsi, &p, end) || add_extra_headers(wsi, rep, &p, end))
        return SB_ERR_INTERNAL;
    x->state = X_FILE;
    if (lws_serve_http_file(wsi, f.path, f.content_type, (const char *)hdr, (int)(p - hdr)) < 0)
        return SB_ERR_IO;
    return SB_OK;
}

static void on_closed(struct pss *pss)
{
    if (!pss) /* closed before lws bound our protocol and its per-session data */
        return;
    struct xfer *x = pss->x;
    if (!x)
        return;
    pss->x = NULL;
    xfer_end(x);
    if (x->state == X_QUEUED)
        x->wsi = NULL; /* job_done frees it */
    else
        xfer_free(x);
}

/* LWS_CALLBACK_HTTP: headers are in; decide what this request is. */
static int on_request(struct lws *wsi, struct pss *pss, struct sb_app *app, const char *uri,
                      size_t urilen)
{
    if (pss->x) /* cannot happen with HTTP/1.1 framing; be safe */
        on_closed(pss);
    struct xfer *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    pss->x = x;
    x->wsi = wsi;
    x->app = app;
    x->started = now_s();
    x->state = X_READY;
    app->inflight++;
    struct sb_http_request *req = &x->req;
    req->method = detect_method(wsi);
    if (app->draining) {
        x->close_after = 1;
        reply_error_now(x, SB_ERR_UNAVAILABLE, "the server is shutting down");
        return 0;
    }
    if (urilen >= sizeof req->path) {
        reply_error_now(x, SB_ERR_INVALID, "the request path is too long");
        return 0;
    }
    memcpy(req->path, uri, urilen);
    req->path[urilen] = '\0';
    /* lws has split the query at '&' and URL-decoded each part; keep the parts
     * apart ('\0' between them) so a decoded '&' or ',' in a value stays data. */
    size_t qlen = 0;
    for (int f = 0;; f++) {
        int n = lws_hdr_copy_fragment(wsi, req->query + qlen, (int)(sizeof req->query - qlen - 1),
                                      WSI_TOKEN_HTTP_URI_ARGS, f);
        if (n < 0)
            break; /* no such fragment: the end */
        if (n == 0)
            continue; /* "a=1&&b=2": an empty part, keep going */
        qlen += (size_t)n + 1;
    }
    req->query[qlen] = '\0';
    copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, req->content_type, sizeof req->content_type);
    copy_header(wsi, WSI_TOKEN_HTTP_COOKIE, req->cookie, sizeof req->cookie);
    copy_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, req->authorization, sizeof req->authorization);
    copy_header(wsi, WSI_TOKEN_ORIGIN, req->origin, sizeof req->origin);
    copy_header(wsi, WSI_TOKEN_HOST, req->host, sizeof req->host);
    copy_header(wsi, WSI_TOKEN_HTTP_USER_AGENT, req->user_agent, sizeof req->user_agent);
    copy_header(wsi, WSI_TOKEN_HTTP_ACCEPT, req->accept, sizeof req->accept);
    copy_header(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH, req->if_none_match, sizeof req->if_none_match);
    lws_get_peer_simple(wsi, req->peer, sizeof req->peer);
    capture_provider_headers(wsi, req);
    sb_debug("http", "%s %s from %s", sb_method_name(req->method), req->path, req->peer);

    char clen[32];
    copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen, sizeof clen);
    char te[32];
    copy_header(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, te, sizeof te);
    unsigned long long content_length = clen[0] ? strtoull(clen, NULL, 10) : 0;
    int has_body = content_length > 0;
    /* lws 4.1 delivers no body callbacks for a chunked HTTP/1 upload, so the
     * request would hang until the timeout: ask for a length instead. */
    if (te[0] && strcasestr(te, "chunked") && !clen[0]) {
        x->close_after = 1;
        sb_reply_error_status(&x->rep, 411, "length_required",
                              "send the body with a Content-Length, not chunked");
        make_ready(x);
        return 0;
    }

    struct sb_route *route;
    int rc = sb_route_match(sb_routes, sb_nroutes, req, &route);
    x->route = route;
    /* An oversized body is refused. Answering before it has arrived and
     * closing would reset the connection under a client still sending (a
     * browser uploading a file shows a network error, not our 413), so a
     * body up to DISCARD_MAX is read and thrown away, and the answer comes
     * when it is complete, on a connection that stays usable. A larger one
     * is refused at once and the connection closed after the answer. */
    if (content_length > app->cfg->body_limit && content_length <= DISCARD_MAX) {
        x->body_too_large = 1;
        x->state = X_READING;
        return 0;
    }
    if (content_length > app->cfg->body_limit) {
        x->close_after = 1;
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes",
                 app->cfg->body_limit);
        reply_error_now(x, SB_ERR_TOO_LARGE, msg);
        return 0;
    }

    if (rc == SB_ERR_NOT_FOUND && (req->method & (SB_GET | SB_HEAD)) &&
        strncmp(req->path, "/api/", 5) != 0) {
        rc = serve_static(wsi, x);
        if (rc == SB_OK)
            return 0;
        if (rc != SB_ERR_NOT_FOUND)
            return -1;
    }
    if (has_body)
        x->close_after = rc != SB_OK; /* an unread body poisons keep-alive */
    if (rc == SB_ERR_NOT_FOUND) {
        reply_error_now(x, SB_ERR_NOT_FOUND, "no such resource");
        return 0;
    }
    if (rc == SB_ERR_INVALID) {
        sb_reply_error_status(&x->rep, 405, "method_not_allowed",
                              "this method is not allowed here");
        char allow[64] = "";
        for (size_t i = 0; i < sb_nroutes; i++) {
            struct sb_http_request probe = {.method = 0};
            memcpy(probe.path, req->path, sizeof probe.path);
            for (int m = SB_GET; m <= SB_OPTIONS; m <<= 1) {
                probe.method = m;
                struct sb_route *hit;
                if ((sb_routes[i].methods & m) &&
                    sb_route_match(&sb_routes[i], 1, &probe, &hit) == SB_OK &&
                    !strstr(allow, sb_method_name(m)))
                    snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                             allow[0] ? ", " : "", sb_method_name(m));
            }
        }
        if (allow[0])
            sb_reply_header(&x->rep, "Allow", allow);
        make_ready(x);
        return 0;
    }
    x->route = route;
    if (has_body) {
        x->state = X_READING;
        return 0; /* dispatch once the body is complete */
    }
    dispatch(x);
    return 0;
}

static int on_body(struct pss *pss, const void *in, size_t len)
{
    struct xfer *x = pss->x;
    if (!x || x->state != X_READING || x->body_too_large)
        return 0;
    size_t limit = x->app->cfg->body_limit;
    if (x->req.body_len + len > limit) {
        /* Chunked bodies announce no length: the cap is checked as bytes
         * arrive. */
        x->close_after = 1;
        free(x->req.body);
        x->req.body = NULL;
        x->req.body_len = 0;
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes", limit);
        reply_error_now(x, SB_ERR_TOO_LARGE, msg);
        return 0;
    }
    if (x->req.body_len + len + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        while (cap < x->req.body_len + len + 1)
            cap *= 2;
        if (cap > limit + 1)
            cap = limit + 1;
        char *nb = realloc(x->req.body, cap);
        if (!nb)
            return -1;
        x->req.body = nb;
        x->body_cap = cap;
    }
    memcpy(x->req.body + x->req.body_len, in, len);
    x->req.body_len += len;
    x->req.body[x->req.body_len] = '\0';
    return 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct pss *pss = user;
    struct sb_app *app = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_request(wsi, pss, app, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->x && pss->x->state == X_READING && pss->x->body_too_large) {
            char msg[96];
            snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes",
                     app->cfg->body_limit);
            reply_error_now(pss->x, SB_ERR_TOO_LARGE, msg);
        } else if (pss->x && pss->x->state == X_READING) {
            if (!pss->x->req.body) {
                pss->x->req.body = calloc(1, 1);
                if (!pss->x->req.body)
                    return -1;
            }
            dispatch(pss->x);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(wsi, pss);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        if (pss->x)
            return finish(wsi, pss, pss->x, 200);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        on_closed(pss);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (strcmp(in ? (const char *)in : "", "websocket") != 0)
            return -1; /* h2c and the like: not offered */
        return sb_ws_confirm_upgrade(wsi, app);
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (app && app->pool)
            sb_dbpool_drain(app->pool);
        sb_ws_drain();
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* --- the listening socket ------------------------------------------------ */

/* We own the listening socket instead of letting lws open it: lws 4.1's
 * lws_context_deprecate() reads freed memory, and an orderly stop must close
 * the listener while connections in flight go on. The socket is adopted as a
 * raw descriptor; when it is readable we accept and hand each connection to
 * lws as HTTP. On stop, shutdown(2) makes new connects fail at once and the
 * next wake-up closes the descriptor through lws. Loop thread only. */
static int listen_fd = -1;

static int listener_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                             void *in, size_t len)
{
    (void)user, (void)in, (void)len;
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    struct lws_vhost *vh = lws_get_vhost(wsi);
    /* Accept a bounded batch per wake-up so a connection storm cannot starve
     * the requests already in flight. */
    for (int i = 0; i < 64; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return 0;
            if (errno == EMFILE || errno == ENFILE) {
                sb_warn("http", "out of file descriptors; not accepting for now");
                return 0;
            }
            return -1; /* shut down for the stop: lws closes the descriptor */
        }
        /* Headers and body leave in separate writes; without NODELAY, Nagle
         * and the client's delayed ACK add 40 ms to every answer. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!lws_adopt_socket_vhost(vh, fd))
            sb_warn("http", "could not take over an accepted connection");
    }
    return 0;
}

static int open_listener(const char *addr, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(addr, portstr, &hints, &res);
    if (gai != 0)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "cannot use listen address %s: %s", addr,
                       gai_strerror(gai));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return sb_fail(err, errlen, SB_ERR_IO, "cannot listen on %s:%d: %s", addr, port,
                       strerror(e));
    }
    freeaddrinfo(res);
    listen_fd = fd;
    return SB_OK;
}

static struct lws_protocols protocols[] = {
    {"http", http_callback, sizeof(struct pss), 0, 0, NULL, 0},
    {"sb-listener", listener_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* the WebSocket protocol goes here at start-up */
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    if (signal_ctx)
        lws_cancel_service(signal_ctx); /* a write(2) to lws's pipe: async-signal-safe */
}

static void wake_loop(void *arg)
{
    lws_cancel_service(arg);
}

int sb_listen_parse(const char *listen, char *addr, size_t addrlen, int *port_r, char *err,
                    size_t errlen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "listen address '%s' is not ADDR:PORT", listen);
    const char *a = listen;
    size_t alen = (size_t)(colon - listen);
    if (a[0] == '[' && alen >= 2 && a[alen - 1] == ']')
        a++, alen -= 2;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || alen == 0 || alen >= addrlen)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "listen address '%s' is not ADDR:PORT", listen);
    memcpy(addr, a, alen);
    addr[alen] = '\0';
    *port_r = (int)port;
    return SB_OK;
}

static void lws_log_to_ours(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    sb_log(level & LLL_ERR ? SB_LOG_ERROR : SB_LOG_WARN, "lws", "%.*s", (int)n, line);
}

int sb_server_run(const struct sb_config *cfg, char *err, size_t errlen)
{
    char addr[128];
    int port;
    int rc = sb_listen_parse(cfg->listen, addr, sizeof addr, &port, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct sb_db_params params;
    rc = sb_db_params_parse(cfg->db_url, &params, err, errlen);
    if (rc != SB_OK)
        return rc;
    rc = sb_auth_init(err, errlen);
    if (rc != SB_OK) {
        sb_db_params_free(&params);
        return rc;
    }

    /* A loop route skips the credential checks (they need the database). */
    for (size_t i = 0; i < sb_nroutes; i++)
        if ((sb_routes[i].flags & SB_ROUTE_LOOP) && !(sb_routes[i].flags & SB_ROUTE_PUBLIC)) {
            sb_db_params_free(&params);
            return sb_fail(err, errlen, SB_ERR_INTERNAL,
                           "bug: route %s runs on the loop but is not public",
                           sb_routes[i].pattern);
        }

    struct sb_app app = {0};
    app.cfg = cfg;
    app.started_at = time(NULL);
    app.cookie_secure =
        cfg->cookie_secure >= 0 ? cfg->cookie_secure : !strncmp(cfg->public_url, "https:", 6);
    if (cfg->secret_key && *cfg->secret_key) {
        rc = sb_secret_key_parse(cfg->secret_key, app.secret_key, err, errlen);
        if (rc != SB_OK) {
            sb_db_params_free(&params);
            return rc;
        }
        app.has_secret_key = 1;
    } else {
        sb_warn("http", "no security.secret_key: channels with secrets cannot be used");
    }
    char derr[64];
    if (sb_password_hash("not a real password; equalises login timing", app.dummy_hash,
                         sizeof app.dummy_hash, derr, sizeof derr) != SB_OK ||
        sb_ratelimit_new(cfg->login_ip_limit, cfg->login_window, &app.login_ip) != SB_OK ||
        sb_ratelimit_new(cfg->login_account_limit, cfg->login_window, &app.login_account) !=
            SB_OK ||
        sb_ratelimit_new(cfg->forms_rate_limit, 60, &app.forms_ip) != SB_OK) {
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory at start-up");
        goto out;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
    rc = open_listener(addr, port, err, errlen);
    if (rc != SB_OK)
        goto out;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    protocols[2] = sb_ws_protocol; /* not a constant initialiser in C */
    info.protocols = protocols;
    /* WebSocket liveness: ping a connection idle for live.ping_seconds,
     * drop one that has not answered within live.timeout_seconds. lws keeps
     * the pointer: `idle` lives as long as this function, like the context. */
    lws_retry_bo_t idle = {.secs_since_valid_ping = (uint16_t)cfg->live_ping_seconds,
                           .secs_since_valid_hangup = (uint16_t)cfg->live_timeout_seconds};
    info.retry_and_idle_policy = &idle;
    info.user = &app;
    info.options = LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
    info.keepalive_timeout = 5;
    info.timeout_secs = 30;
    info.pt_serv_buf_size = 32768;
    struct lws_context *ctx = lws_create_context(&info);
    struct lws_vhost *vh = ctx ? lws_get_vhost_by_name(ctx, "default") : NULL;
    lws_sock_file_fd_type desc = {.filefd = listen_fd};
    if (!vh ||
        !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, desc, "sb-listener", NULL)) {
        rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start the HTTP server");
        if (ctx)
            lws_context_destroy(ctx);
        close(listen_fd);
        listen_fd = -1;
        goto out;
    }
    rc = sb_dbpool_start(&params, cfg->db_workers, wake_loop, ctx, &app.pool, err, errlen);
    if (rc != SB_OK) {
        lws_context_destroy(ctx);
        goto out;
    }
    rc = sb_ws_start(&app, ctx, &params, err, errlen);
    if (rc != SB_OK) {
        sb_dbpool_stop(&app.pool);
        lws_context_destroy(ctx);
        goto out;
    }
    /* The outbox sender (its own thread and connection). */
    struct sb_sender_options sender_opt = {&params, app.has_secret_key ? app.secret_key : NULL};
    rc = sb_sender_start(&sender_opt, &app.sender, err, errlen);
    if (rc != SB_OK) {
        sb_dbpool_stop(&app.pool);
        sb_ws_stop();
        lws_context_destroy(ctx);
        goto out;
    }

    /* Campaign sending: its own threads and connections (campaign_send.h). */
    struct sb_campaign_sender *campaigns = NULL;
    struct sb_campaign_sender_options camp_opt = {&params,
                                                  app.has_secret_key ? app.secret_key : NULL,
                                                  cfg->public_url,
                                                  cfg->campaign_connections,
                                                  cfg->campaign_lease_seconds,
                                                  cfg->campaign_journal_dir,
                                                  0};
    if (sb_campaign_sender_start(&camp_opt, &campaigns, derr, sizeof derr) != SB_OK)
        sb_warn("campaigns", "campaign sender not started: %s", derr);

    signal_ctx = ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* IMAP pollers: their own threads and connections (mailbox.h); after
     * SIGPIPE is ignored, since libetpan writes to sockets with send(…, 0). */
    if (sb_mailboxes_start(cfg, &params, app.has_secret_key ? app.secret_key : NULL, &app.mailboxes,
                           derr, sizeof derr) != SB_OK)
        sb_warn("imap", "mailbox poller not started: %s", derr);

    sb_info("http", "listening on http://%s:%d (web root %s, %d DB workers)", addr, port,
            cfg->web_root, cfg->db_workers);
    double deadline = 0;
    int serr = 0;
    while (serr >= 0) {
        if (stop_requested && !app.draining) {
            /* Close the listening socket, answer what is in flight, then go. */
            app.draining = 1;
            deadline = now_s() + cfg->drain_timeout;
            sb_info("http", "stopping: no new connections, finishing %lu request(s)", app.inflight);
            shutdown(listen_fd, SHUT_RDWR);
            sb_ws_close_all();       /* agents reconnect to another node and resume */
            lws_cancel_service(ctx); /* wake the listener so lws closes it */
        }
        if (app.draining &&
            ((app.inflight == 0 && sb_ws_connections() == 0) || now_s() > deadline)) {
            if (app.inflight) {
                sb_warn("http", "drain timeout: abandoning %lu request(s)", app.inflight);
                sb_dbpool_abandon_queued(app.pool); /* do not run what nobody will hear */
            }
            break;
        }
        serr = lws_service(ctx, 0);
    }
    sb_mailboxes_stop(&app.mailboxes);
    sb_campaign_sender_stop(&campaigns);
    /* Workers may still be finishing jobs: stop them first so every
     * job_done runs (and frees its xfer) while the context still exists. */
    sb_dbpool_stop(&app.pool);
    sb_sender_stop(&app.sender); /* after the workers: none can wake it any more */
    sb_ws_stop();                /* before the context: the tailer wakes the loop through it */
    signal_ctx = NULL;
    lws_context_destroy(ctx);
    listen_fd = -1;
    sb_info("http", "stopped");
    rc = SB_OK;
out:
    sodium_memzero(app.secret_key, sizeof app.secret_key);
    sb_ratelimit_free(&app.login_ip);
    sb_ratelimit_free(&app.forms_ip);
    sb_ratelimit_free(&app.login_account);
    sb_db_params_free(&params);
    return rc;
}
