/* Channel management for admins: list, create, change and test. Secrets never leave the
 * server: the API shows them as "********". */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/channel_store.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"

#include <string.h>

void sb_api_channels_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app, (void)req;
    json_t *arr;
    char err[256] = "";
    int rc = sb_channel_list(db, &arr, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list channels", err);
        return;
    }
    sb_reply_json(rep, 200, json_pack("{s:o}", "items", arr));
}

void sb_api_channels_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *kind = json_string_value(json_object_get(body, "kind"));
    const char *name = json_string_value(json_object_get(body, "name"));
    json_t *config = json_object_get(body, "config");
    config = config ? json_incref(config) : json_object();
    char err[256] = "";
    json_t *out = NULL;
    int rc = sb_channel_create(db, app->has_secret_key ? app->secret_key : NULL, kind ? kind : "",
                               name, config, &out, err, sizeof err);
    json_decref(config);
    json_decref(body);
    if (rc == SB_ERR_CONFIG) { /* the operator must act: say what is missing */
        sb_reply_error_status(rep, 500, "not_configured", err);
        return;
    }
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "create channel", err);
        return;
    }
    sb_audit(db, req->user.id, "channel.create", "channel",
             json_integer_value(json_object_get(out, "id")), req->peer);
    sb_reply_json(rep, 201, out);
}

/* PATCH /api/v1/channels/{id}: {"name", "enabled", "config": {…}} — any
 * subset. "settings" is accepted as another name for "config". */
void sb_api_channels_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such channel");
        return;
    }
    json_t *body, *out = NULL, *changed = NULL;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "enabled") && strcmp(key, "config") &&
            strcmp(key, "settings")) {
            sb_reply_error(rep, SB_ERR_INVALID, "unknown field \"%s\" (name, enabled, config)",
                           key);
            goto out;
        }
    }
    json_t *name = json_object_get(body, "name"), *enabled = json_object_get(body, "enabled");
    json_t *config = json_object_get(body, "config");
    if (!config)
        config = json_object_get(body, "settings");
    if ((name && !json_is_string(name)) || (enabled && !json_is_boolean(enabled)) ||
        (config && !json_is_object(config))) {
        sb_reply_error(rep, SB_ERR_INVALID,
                       "\"name\" is a string, \"enabled\" a boolean, \"config\" an object");
        goto out;
    }
    char err[256] = "";
    if (sb_db_begin(db, err, sizeof err) != SB_OK) {
        sb_reply_failure(rep, SB_ERR_UNAVAILABLE, "update channel", err);
        goto out;
    }
    int rc = sb_channel_update(db, app->has_secret_key ? app->secret_key : NULL, id,
                               json_string_value(name), enabled ? json_is_true(enabled) : -1,
                               config, &out, &changed, err, sizeof err);
    /* Secrets are named in the event, never their values. */
    if (rc == SB_OK)
        rc = sb_event_append(db, "channel.updated", 0, 0, req->user.id,
                             json_pack("{s:I,s:O,s:b}", "channel_id", (json_int_t)id, "changed",
                                       changed, "enabled",
                                       json_is_true(json_object_get(out, "enabled"))),
                             err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, sizeof err);
    else
        sb_db_rollback(db);
    if (rc == SB_ERR_CONFIG)
        sb_reply_error_status(rep, 500, "not_configured", err);
    else if (rc != SB_OK)
        sb_reply_result(rep, rc, "update channel", err);
    if (rc != SB_OK)
        goto out;
    sb_audit(db, req->user.id, "channel.update", "channel", id, req->peer);
    sb_reply_json(rep, 200, out);
    out = NULL;
out:
    json_decref(out);
    json_decref(changed);
    json_decref(body);
}

/* POST /api/v1/channels/{id}/test: what `switchboard channel test` does
 * (Telegram getMe, …), on a DB worker: the provider call blocks that worker
 * for at most the adapter's timeout. The result is recorded as the
 * channel's status, like any call to the provider. */
void sb_api_channels_test(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such channel");
        return;
    }
    struct sb_channel *ch = NULL;
    char err[512] = "";
    int rc = sb_channel_load_any(db, app->has_secret_key ? app->secret_key : NULL, id, &ch, err,
                                 sizeof err);
    if (rc == SB_ERR_CONFIG) {
        sb_reply_error_status(rep, 500, "not_configured", err);
        return;
    }
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "load channel", err);
        return;
    }
    json_t *o;
    if (!ch->kind->test) {
        o = json_pack("{s:b,s:b,s:s}", "ok", 1, "tested", 0, "message",
                      "this kind of channel has nothing to test");
    } else {
        char msg[512] = "";
        rc = ch->kind->test(ch, msg, sizeof msg);
        sb_channel_status(db, id, rc == SB_OK ? NULL : msg);
        o = json_pack("{s:b,s:b,s:s}", "ok", rc == SB_OK, "tested", 1, "message", msg);
    }
    sb_channel_free(&ch);
    sb_audit(db, req->user.id, "channel.test", "channel", id, req->peer);
    sb_reply_json(rep, 200, o);
}
