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
#include "switchboard/sender.h"

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
    sb_channel_status(db, ch->id, why);
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
    int rc = sb_channel_load_cached(db, app->has_secret_key ? app->secret_key : NULL, id,
                                    req->params[0], &ch, err, sizeof err);
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

/* One webhook request between parsing and storing. */
struct hook {
    const struct sb_http_request *req;
    struct sb_http_reply *rep;
    struct sb_channel *ch;
    int borrowed; /* `ch` belongs to an earlier request of the same group */
    struct sb_inbound_batch batch;
    int pending; /* parsed, has inbounds, not yet answered */
};

/* Verify and parse; answer everything that needs no ingest. */
static void hook_parse(struct sb_app *app, struct sb_db *db, struct hook *h)
{
    char err[512] = "";
    if (!h->ch)
        h->ch = path_channel(app, db, h->req, h->rep);
    if (!h->ch)
        return;
    if (!h->ch->kind->on_webhook) {
        sb_reply_error(h->rep, SB_ERR_NOT_FOUND, "no such channel");
        return;
    }
    int rc = h->ch->kind->on_webhook(h->ch, h->req, &h->batch, h->rep, err, sizeof err);
    if (rc == SB_OK)
        rc = apply_statuses(db, h->ch, &h->batch, err, sizeof err);
    if (rc == SB_ERR_UNAUTHORIZED || rc == SB_ERR_FORBIDDEN)
        sb_reply_error(h->rep, rc, "%s", err);
    else if (rc == SB_ERR_INVALID)
        quarantine(db, h->ch, h->req, err, h->rep);
    else if (rc != SB_OK)
        sb_reply_failure(h->rep, rc, "webhook", err);
    else if (h->batch.n)
        h->pending = 1;
    else if (!h->rep->status)
        sb_reply_json(h->rep, 200, json_pack("{s:b}", "ok", 1));
}

static void hook_answer(struct hook *h, const struct sb_ingest_result *res)
{
    h->pending = 0;
    if (h->rep->status)
        return; /* the adapter answered in the provider's own way */
    json_t *ids = json_array();
    for (size_t i = 0; i < h->batch.n; i++)
        json_array_append_new(ids, json_integer(res[i].interaction_id));
    sb_reply_json(h->rep, 200, json_pack("{s:b,s:o}", "ok", 1, "interactions", ids));
}

/* Files the provider holds are fetched by the sender thread: once they are
 * stored, tell it now rather than at its next poll. */
static void wake_for_files(struct sb_app *app, const struct hook *h)
{
    for (size_t i = 0; i < h->batch.n; i++)
        for (size_t j = 0; j < h->batch.items[i]->nattachments; j++)
            if (h->batch.items[i]->attachments[j].provider_ref) {
                sb_sender_wake(app->sender);
                return;
            }
}

/* Store one request's inbounds in a transaction of its own. */
static void hook_ingest_one(struct sb_app *app, struct sb_db *db, struct hook *h)
{
    char err[512] = "";
    struct sb_ingest_options opt = {app->cfg->default_region, app->cfg->reopen_window};
    struct sb_ingest_result *res = calloc(h->batch.n, sizeof *res);
    int rc = res ? sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)h->batch.items,
                                   h->batch.n, res, err, sizeof err)
                 : SB_ERR_NOMEM;
    if (rc == SB_ERR_INVALID) {
        h->pending = 0;
        quarantine(db, h->ch, h->req, err, h->rep);
    } else if (rc != SB_OK) {
        h->pending = 0;
        sb_reply_failure(h->rep, rc, "ingest webhook", err);
    } else {
        hook_answer(h, res);
        wake_for_files(app, h);
        sb_channel_status(db, h->ch->id, NULL);
    }
    free(res);
}

static void hook_free(struct hook *h)
{
    sb_inbound_batch_free(&h->batch);
    if (!h->borrowed)
        sb_channel_free(&h->ch);
}

void sb_api_hook(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                 struct sb_http_reply *rep)
{
    struct hook h = {.req = req, .rep = rep};
    hook_parse(app, db, &h);
    if (h.pending)
        hook_ingest_one(app, db, &h);
    hook_free(&h);
}

/* Several webhook requests that were queued together: their inbounds go into
 * one ingest transaction, so a burst costs one commit. If that transaction
 * fails (one request's input refused, a conflict that kept losing), each
 * request is stored on its own, so one bad request never fails the others. */
void sb_api_hook_group(struct sb_app *app, struct sb_db *db,
                       const struct sb_http_request *const *reqs, struct sb_http_reply **reps,
                       size_t n)
{
    struct hook *hs = calloc(n, sizeof *hs);
    if (!hs) {
        for (size_t i = 0; i < n; i++)
            sb_api_hook(app, db, reqs[i], reps[i]);
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        hs[i] = (struct hook){.req = reqs[i], .rep = reps[i]};
        /* A burst is mostly one provider posting to one channel: load and
         * decrypt it once for the group. */
        for (size_t j = 0; j < i && !hs[i].ch; j++)
            if (hs[j].ch && !hs[j].borrowed && !strcmp(reqs[j]->path, reqs[i]->path)) {
                hs[i].ch = hs[j].ch;
                hs[i].borrowed = 1;
            }
        hook_parse(app, db, &hs[i]);
        total += hs[i].pending ? hs[i].batch.n : 0;
    }
    const struct sb_inbound **all = total ? calloc(total, sizeof *all) : NULL;
    struct sb_ingest_result *res = total ? calloc(total, sizeof *res) : NULL;
    int rc = SB_ERR_NOMEM;
    if (all && res) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; hs[i].pending && j < hs[i].batch.n; j++)
                all[k++] = hs[i].batch.items[j];
        char err[512] = "";
        struct sb_ingest_options opt = {app->cfg->default_region, app->cfg->reopen_window};
        rc = sb_ingest_batch(db, &opt, all, total, res, err, sizeof err);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hs[i].pending)
            continue;
        if (rc == SB_OK) {
            hook_answer(&hs[i], res + k);
            wake_for_files(app, &hs[i]);
            /* one status write per channel of the group, not per request */
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++)
                seen = hs[j].ch && hs[j].ch->id == hs[i].ch->id && hs[j].batch.n;
            if (!seen)
                sb_channel_status(db, hs[i].ch->id, NULL);
        } else {
            hook_ingest_one(app, db, &hs[i]);
        }
        k += hs[i].batch.n;
    }
    for (size_t i = 0; i < n; i++)
        hook_free(&hs[i]);
    free(all);
    free(res);
    free(hs);
}
