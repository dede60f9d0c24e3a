/* Channel management for admins: list and create. Secrets never leave the
 * server: the API shows them as "********". */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/channel_store.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

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
