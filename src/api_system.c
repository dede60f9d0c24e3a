/* Probes and metrics: what load balancers and Prometheus ask. */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/metrics.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Liveness: the loop answers, nothing else is checked, so a database outage
 * never gets the process restarted by an orchestrator. */
void sb_api_healthz(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                    struct sb_http_reply *rep)
{
    (void)app, (void)db, (void)req;
    sb_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
}

/* Readiness: a worker can reach the database now. Each worker reconnects on
 * its own, so this turns 200 again as soon as MariaDB is back. */
void sb_api_readyz(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                   struct sb_http_reply *rep)
{
    (void)app, (void)req;
    char err[256] = "";
    if (sb_db_ping(db, err, sizeof err) != SB_OK) {
        sb_warn("readyz", "not ready: %s", err);
        sb_reply_json(rep, 503,
                      json_pack("{s:s,s:{s:s,s:s}}", "status", "unavailable", "error", "code",
                                "unavailable", "message", "the database is unreachable"));
        return;
    }
    sb_reply_json(rep, 200, json_pack("{s:s}", "status", "ready"));
}

/* The scraper's token against server.metrics_token. Both sides are hashed
 * first so the comparison takes the same time whatever the length or the
 * first wrong byte. */
static int metrics_token_ok(const char *want, const char *authorization)
{
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *got = authorization + 7;
    while (*got == ' ')
        got++;
    unsigned char a[32], b[32];
    crypto_generichash(a, sizeof a, (const unsigned char *)want, strlen(want), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)got, strlen(got), NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

/* Route counts, queue depths and channel failures say more about a company
 * than it may want public, so a configured token closes the door; without
 * one the page stays open (restrict it at the proxy, docs/operations.md). */
void sb_api_metrics(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                    struct sb_http_reply *rep)
{
    (void)db;
    const char *want = app->cfg->metrics_token;
    if (want && want[0] && !metrics_token_ok(want, req->authorization)) {
        sb_reply_header(rep, "WWW-Authenticate", "Bearer realm=\"metrics\"");
        sb_reply_error(rep, SB_ERR_UNAUTHORIZED,
                       "/metrics needs Authorization: Bearer <server.metrics_token>");
        return;
    }
    char *text;
    size_t len;
    if (sb_metrics_render(app, &text, &len) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOMEM, "internal error");
        return;
    }
    free(rep->body);
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    rep->body = text;
    rep->body_len = len;
}
