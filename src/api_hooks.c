/* POST /hooks/{kind}/{id}: provider webhooks into ingest.
 *
 * Acknowledge only what is safe (cf. Postfix mail_stream.c): the provider
 * gets 200 after the ingest transaction commits, 503 when the database is
 * down so it redelivers, 401 for a bad signature (nothing stored), and 200
 * for a verified body we cannot understand, which is kept raw in the
 * quarantine so the provider does not retry it forever and nothing is lost. */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/channel.h"
#include "switchboard/channel_store.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/delivery.h"
#include "switchboard/err.h"
#include "switchboard/ingest.h"
#include "switchboard/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quarantine(struct sb_db *db, const struct sb_channel *ch,
                       const struct sb_http_request *req, const char *why,
                       struct sb_http_reply *rep)
{
    char err[256] = "", source[64];
    snprintf(source, sizeof source, "webhook:%s", ch->kind->name);
    int rc = sb_quarantine(db, ch->id, source, why, req->content_type, req->body, req->body_len,
                           err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "quarantine webhook body", err);
        return;
    }
    sb_warn("hooks", "%s channel %lld: quarantined a body we cannot read: %s", ch->kind->name,
            (long long)ch->id, why);
    sb_reply_json(rep, 200, json_pack("{s:b,s:b}", "ok", 1, "quarantined", 1));
}

/* Provider statuses of our messages, in one transaction. */
static int apply_statuses(struct sb_db *db, const struct sb_channel *ch,
                          const struct sb_inbound_batch *b, char *err, size_t errlen)
{
    if (!b->nstatuses)
        return SB_OK;
    int rc = sb_db_begin(db, err, errlen);
    for (size_t i = 0; rc == SB_OK && i < b->nstatuses; i++) {
        int changed;
        rc = sb_delivery_update(db, ch->id, &b->statuses[i], &changed, err, errlen);
    }
    if (rc == SB_OK)
        return sb_db_commit(db, err, errlen);
    sb_db_rollback(db);
    return rc;
}

/* Load the channel named by the path; answers 404 itself when there is none. */
static struct sb_channel *path_channel(struct sb_app *app, struct sb_db *db,
                                       const struct sb_http_request *req, struct sb_http_reply *rep)
{
    int64_t id;
    char err[512] = "";
    struct sb_channel *ch = NULL;
    if (sb_request_param_id(req, 1, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such channel");
        return NULL;
    }
    int rc = sb_channel_load(db, app->has_secret_key ? app->secret_key : NULL, id, req->params[0],
                             &ch, err, sizeof err);
    if (rc == SB_ERR_NOT_FOUND) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such channel");
        return NULL;
    }
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "load channel", err);
        return NULL;
    }
    return ch;
}

void sb_api_hook_verify(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    struct sb_channel *ch = path_channel(app, db, req, rep);
    if (!ch)
        return;
    if (ch->kind->on_verify)
        ch->kind->on_verify(ch, req, rep);
    else
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such channel");
    sb_channel_free(&ch);
}

void sb_api_hook(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                 struct sb_http_reply *rep)
{
    char err[512] = "";
    struct sb_channel *ch = path_channel(app, db, req, rep);
    if (!ch)
        return;
    if (!ch->kind->on_webhook) {
        sb_channel_free(&ch);
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such channel");
        return;
    }
    struct sb_inbound_batch batch = {0};
    int rc = ch->kind->on_webhook(ch, req, &batch, rep, err, sizeof err);
    if (rc == SB_OK)
        rc = apply_statuses(db, ch, &batch, err, sizeof err);
    if (rc != SB_OK && rc != SB_ERR_UNAUTHORIZED && rc != SB_ERR_FORBIDDEN &&
        rc != SB_ERR_INVALID) {
        sb_reply_failure(rep, rc, "webhook", err);
        sb_inbound_batch_free(&batch);
        sb_channel_free(&ch);
        return;
    }
    if (rc == SB_ERR_UNAUTHORIZED || rc == SB_ERR_FORBIDDEN) {
        sb_reply_error(rep, rc, "%s", err);
    } else if (rc == SB_ERR_INVALID) {
        quarantine(db, ch, req, err, rep);
    } else if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "parse webhook", err);
    } else if (batch.n) {
        struct sb_ingest_options opt = {app->cfg->default_region, app->cfg->reopen_window};
        struct sb_ingest_result *res = calloc(batch.n, sizeof *res);
        rc = res ? sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)batch.items, batch.n,
                                   res, err, sizeof err)
                 : SB_ERR_NOMEM;
        if (rc == SB_ERR_INVALID) {
            quarantine(db, ch, req, err, rep);
        } else if (rc != SB_OK) {
            sb_reply_failure(rep, rc, "ingest webhook", err);
        } else if (!rep->status) {
            json_t *ids = json_array();
            for (size_t i = 0; i < batch.n; i++)
                json_array_append_new(ids, json_integer(res[i].interaction_id));
            sb_reply_json(rep, 200, json_pack("{s:b,s:o}", "ok", 1, "interactions", ids));
        }
        free(res);
    } else if (!rep->status) {
        sb_reply_json(rep, 200, json_pack("{s:b}", "ok", 1));
    }
    sb_inbound_batch_free(&batch);
    sb_channel_free(&ch);
}
