/* User management for admins. */
#include "switchboard/api.h"
#include "switchboard/auth.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/users.h"

#include <string.h>

void sb_api_users_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                       struct sb_http_reply *rep)
{
    (void)app, (void)req;
    json_t *users;
    char err[256] = "";
    int rc = sb_user_list(db, &users, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list users", err);
        return;
    }
    sb_reply_json(rep, 200, json_pack("{s:o}", "users", users));
}

void sb_api_users_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *email = json_string_value(json_object_get(body, "email"));
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *role_s = json_string_value(json_object_get(body, "role"));
    const char *password = json_string_value(json_object_get(body, "password"));
    enum sb_role role;
    char err[256] = "";
    if (!email || !name || !password) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"email\", \"name\" and \"password\" are required");
        goto out;
    }
    if (sb_role_parse(role_s ? role_s : "agent", &role) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"role\" must be admin, agent or marketer");
        goto out;
    }
    int64_t id;
    int rc = sb_user_create(db, email, name, role, password, &id, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "create user", err);
        goto out;
    }
    sb_audit(db, req->user.id, "user.create", "user", id, req->peer);
    struct sb_user u = {.id = id, .role = role};
    sb_user_email_normalize(email, u.email, sizeof u.email, err, sizeof err);
    snprintf(u.name, sizeof u.name, "%s", name);
    sb_reply_json(rep, 201, sb_user_json(&u));
out:
    json_decref(body);
}

/* PATCH /api/v1/users/{id}: {"name", "role", "disabled", "password"}, any
 * subset. The last enabled admin cannot be demoted or disabled (409). */
void sb_api_users_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such user");
        return;
    }
    json_t *body, *user = NULL;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "role") && strcmp(key, "disabled") &&
            strcmp(key, "password")) {
            sb_reply_error(rep, SB_ERR_INVALID,
                           "unknown field \"%s\" (name, role, disabled, password)", key);
            goto out;
        }
    }
    json_t *name = json_object_get(body, "name"), *role = json_object_get(body, "role");
    json_t *disabled = json_object_get(body, "disabled"), *pw = json_object_get(body, "password");
    enum sb_role r = 0;
    if ((name && !json_is_string(name)) || (disabled && !json_is_boolean(disabled)) ||
        (pw && !json_is_string(pw))) {
        sb_reply_error(rep, SB_ERR_INVALID,
                       "\"name\" and \"password\" are strings, \"disabled\" a boolean");
        goto out;
    }
    if (role && sb_role_parse(json_string_value(role), &r) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"role\" must be admin, agent or marketer");
        goto out;
    }
    char err[256] = "";
    int rc =
        sb_user_update(db, id, json_string_value(name), r, disabled ? json_is_true(disabled) : -1,
                       json_string_value(pw), &user, err, sizeof err);
    if (rc == SB_ERR_EXISTS) {
        sb_reply_error_status(rep, 409, "last_admin", err);
        goto out;
    }
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "update user", err);
        goto out;
    }
    if (pw)
        sb_audit(db, req->user.id, "user.password_reset", "user", id, req->peer);
    if (disabled)
        sb_audit(db, req->user.id, json_is_true(disabled) ? "user.disable" : "user.enable", "user",
                 id, req->peer);
    if (name || role)
        sb_audit(db, req->user.id, "user.update", "user", id, req->peer);
    sb_reply_json(rep, 200, user ? user : json_object());
    user = NULL;
out:
    json_decref(user);
    json_decref(body);
}
