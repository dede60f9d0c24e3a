/* POST and OPTIONS /forms/{public_key}: website forms into ingest.
 *
 * The route is public: a visitor's browser posts here straight from a
 * customer's site. What guards it is a per-IP rate limit (forms.rate_limit
 * posts a minute, counted before anything touches the database beyond the
 * channel lookup), the honeypot (channels/webform.c) and CORS, which only
 * decides who may *read* our answer: a plain HTML form post is a navigation
 * and needs no CORS, so a post from an origin not in allowed_origins is still
 * stored (a www/non-www slip must not lose leads), it just gets no
 * Access-Control-Allow-Origin. A preflight from such an origin gets 403.
 *
 * Two kinds of caller get two kinds of answer. A browser form post gets 303
 * See Other to the channel's redirect_url, or a small thank-you page; a
 * script (JSON body, Accept: application/json, or a Sec-Fetch-Mode other
 * than navigate) gets {"ok": true, "id": <interaction id>}. Errors are JSON
 * for both, as everywhere in the API.
 *
 * Like /hooks (api_hooks.c), the answer goes out after the ingest
 * transaction commits, 503 when the database is down, and a body we cannot
 * read is kept in the quarantine: a browser then sees the usual thank-you
 * (the visitor can do nothing about it and the lead is kept for admins), a
 * script gets 400 with "quarantined": true so its author notices. */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/channel.h"
#include "switchboard/channel_store.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/ingest.h"
#include "switchboard/log.h"
#include "switchboard/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Browsers cap the preflight cache anyway (Chromium at 2 hours). */
#define PREFLIGHT_MAX_AGE "7200"

static int public_key_ok(const char *k)
{
    size_t n = strlen(k);
    return n >= 1 && n <= 64 && strspn(k, "0123456789abcdef") == n;
}

/* The channel behind the key, or an answer already in `rep`. */
static struct sb_channel *load(struct sb_app *app, struct sb_db *db,
                               const struct sb_http_request *req, struct sb_http_reply *rep)
{
    struct sb_channel *ch = NULL;
    char err[512] = "";
    int rc = public_key_ok(req->params[0])
                 ? sb_channel_load_public(db, app->has_secret_key ? app->secret_key : NULL,
                                          req->params[0], &ch, err, sizeof err)
                 : SB_ERR_NOT_FOUND;
    if (rc == SB_OK && strcmp(ch->kind->name, "webform") != 0)
        rc = SB_ERR_NOT_FOUND; /* another kind's public key */
    if (rc == SB_ERR_NOT_FOUND)
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such form");
    else if (rc != SB_OK)
        sb_reply_failure(rep, rc, "load form channel", err);
    if (rc != SB_OK)
        sb_channel_free(&ch);
    return ch;
}

/* Is `origin` (the request's Origin header) one the channel lists? */
static int origin_allowed(const struct sb_channel *ch, const char *origin)
{
    const char *list = sb_channel_conf(ch, "allowed_origins");
    if (!origin[0] || !list || !strcmp(origin, "null"))
        return 0;
    size_t on = strlen(origin);
    while (*list) {
        const char *comma = strchr(list, ',');
        size_t n = comma ? (size_t)(comma - list) : strlen(list);
        if ((n == 1 && list[0] == '*') || (n == on && !strncasecmp(list, origin, n)))
            return 1;
        list += n + (comma ? 1 : 0);
    }
    return 0;
}

/* Access-Control-Allow-Origin for an allowed origin. The answer depends on
 * Origin whenever the channel lists origins, so caches must key on it. */
static int cors(const struct sb_channel *ch, const struct sb_http_request *req,
                struct sb_http_reply *rep)
{
    const char *list = sb_channel_conf(ch, "allowed_origins");
    if (list && *list)
        sb_reply_header(rep, "Vary", "Origin");
    if (!origin_allowed(ch, req->origin))
        return 0;
    sb_reply_header(rep, "Access-Control-Allow-Origin", req->origin);
    return 1;
}

static int wants_json(const struct sb_http_request *req)
{
    char v[256];
    const char *ct = req->content_type;
    while (*ct == ' ')
        ct++;
    if (!strncasecmp(ct, "application/json", 16))
        return 1;
    if (strcasestr(req->accept, "application/json"))
        return 1;
    /* fetch() and XMLHttpRequest say "cors", "same-origin" or "no-cors";
     * a form submission is a navigation. */
    if (sb_request_header(req, "sec-fetch-mode", v, sizeof v) == 0 && v[0] &&
        strcasecmp(v, "navigate") != 0 && strcasecmp(v, "nested-navigate") != 0)
        return 1;
    return 0;
}

static const char thanks_page[] =
    "<!doctype html>\n"
    "<html lang=\"ru\">\n"
    "<head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>Спасибо! · Thank you!</title></head>\n"
    "<body>\n"
    "<h1>Спасибо!</h1>\n"
    "<p>Мы получили вашу заявку и скоро свяжемся с вами.</p>\n"
    "<p lang=\"en\">Thank you! We have received your message and will be in touch soon.</p>\n"
    "</body>\n"
    "</html>\n";

/* What a successful (or quietly dropped, or quarantined) browser post sees. */
static void browser_done(const struct sb_channel *ch, struct sb_http_reply *rep)
{
    const char *redirect = sb_channel_conf(ch, "redirect_url");
    if (redirect && *redirect) {
        sb_reply_text(rep, 303, "text/plain; charset=utf-8", "See Other\n", 10);
        sb_reply_header(rep, "Location", redirect);
        return;
    }
    sb_reply_text(rep, 200, "text/html; charset=utf-8", thanks_page, sizeof thanks_page - 1);
    /* Nothing on the page needs anything: no script, no style, no framing
     * limits (a form may live in an iframe on the customer's site). */
    sb_reply_header(rep, "Content-Security-Policy",
                    "default-src 'none'; base-uri 'none'; form-action 'none'");
    sb_reply_header(rep, "Cache-Control", "no-store");
}

static void quarantine(struct sb_db *db, const struct sb_channel *ch,
                       const struct sb_http_request *req, const char *why, int json,
                       struct sb_http_reply *rep)
{
    char err[256] = "";
    int rc = sb_quarantine(db, ch->id, "form", why, req->content_type, req->body, req->body_len,
                           err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "quarantine form post", err);
        return;
    }
    sb_warn("forms", "channel %lld: quarantined a post from %s we cannot read: %s",
            (long long)ch->id, req->peer, why);
    if (json)
        sb_reply_json(rep, 400,
                      json_pack("{s:{s:s,s:s},s:b}", "error", "code", sb_err_code(SB_ERR_INVALID),
                                "message", why, "quarantined", 1));
    else
        browser_done(ch, rep);
}

void sb_api_form_post(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                      struct sb_http_reply *rep)
{
    /* Count first, so a flood costs one lookup a post at most. */
    char ip[80];
    sb_ratelimit_ip_key(req->peer[0] ? req->peer : "unknown", ip, sizeof ip);
    time_t now = time(NULL);
    int retry_after = 0;
    int limited = sb_ratelimit_take(app->forms_ip, ip, now, &retry_after) == SB_ERR_LIMIT;

    struct sb_channel *ch = load(app, db, req, rep);
    if (!ch)
        return;
    cors(ch, req, rep); /* so a script can read even our errors */
    int json = wants_json(req);
    if (limited) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", retry_after);
        sb_reply_error(rep, SB_ERR_LIMIT, "too many form posts from your address; retry in %d s",
                       retry_after);
        sb_reply_header(rep, "Retry-After", secs);
        sb_channel_free(&ch);
        return;
    }

    char err[512] = "";
    struct sb_inbound_batch batch = {0};
    int rc = ch->kind->on_webhook(ch, req, &batch, rep, err, sizeof err);
    if (rc == SB_ERR_INVALID) {
        quarantine(db, ch, req, err, json, rep);
    } else if (rc == SB_ERR_UNSUPPORTED_MEDIA || rc == SB_ERR_FORBIDDEN) {
        sb_reply_error(rep, rc, "%s", err);
    } else if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "parse form post", err);
    } else if (!batch.n) {
        /* The honeypot caught it: answer exactly as for a lead, keep nothing. */
        __atomic_fetch_add(&app->forms_honeypot, 1, __ATOMIC_RELAXED);
        if (json)
            sb_reply_json(rep, 200, json_pack("{s:b}", "ok", 1));
        else
            browser_done(ch, rep);
    } else {
        struct sb_ingest_options opt = {app->cfg->default_region, app->cfg->reopen_window};
        struct sb_ingest_result res = {0};
        rc = sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)batch.items, batch.n, &res,
                             err, sizeof err);
        if (rc == SB_ERR_INVALID)
            quarantine(db, ch, req, err, json, rep);
        else if (rc != SB_OK)
            sb_reply_failure(rep, rc, "ingest form post", err);
        else if (json)
            sb_reply_json(rep, 200,
                          json_pack("{s:b,s:I,s:b}", "ok", 1, "id", (json_int_t)res.interaction_id,
                                    "duplicate", res.duplicate));
        else
            browser_done(ch, rep);
    }
    sb_inbound_batch_free(&batch);
    sb_channel_free(&ch);
}

void sb_api_form_preflight(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    struct sb_channel *ch = load(app, db, req, rep);
    if (!ch)
        return;
    if (!cors(ch, req, rep)) {
        sb_reply_error(rep, SB_ERR_FORBIDDEN, "this origin is not in the form's allowed_origins");
        sb_channel_free(&ch);
        return;
    }
    sb_reply_header(rep, "Access-Control-Allow-Methods", "POST");
    sb_reply_header(rep, "Access-Control-Allow-Headers", "Content-Type, Accept, Idempotency-Key");
    sb_reply_header(rep, "Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
    sb_reply_text(rep, 204, NULL, "", 0);
    sb_channel_free(&ch);
}
