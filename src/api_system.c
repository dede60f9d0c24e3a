/* Probes and metrics: what load balancers and Prometheus ask. */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/metrics.h"

#include <stdlib.h>

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

void sb_api_metrics(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                    struct sb_http_reply *rep)
{
    (void)db, (void)req;
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
