/* Agents' tools over HTTP: canned responses (saved replies with merge
 * fields), the list of colleagues for @mentions, notifications, and the
 * signed-in user's own settings (PATCH /api/v1/me).
 *
 * Canned responses are rendered on the server (POST
 * /conversations/{id}/canned/{cid}/render): the one template engine
 * (template.c) fills them, with the client's data read here, so the browser
 * needs neither a second engine nor the client's custom fields. */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/notify.h"
#include "switchboard/template.h"
#include "switchboard/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHORT_CODE_MAX 64
#define TITLE_MAX      255
/* A saved reply is a message, not a document (the column is TEXT). */
#define BODY_MAX 16384

/* The conversations rule of api_conversations.c (VISIBLE), for the caller. */
#define VISIBLE SB_SQL_CONV_VISIBLE /* apiutil.h */

/* -- name: canned-list
 * `q` matches short codes and titles anywhere (LIKE pattern with its own
 * wildcards escaped); the picker asks for both as the agent types. */
static const char q_canned_list[] =
    "SELECT id, short_code, title, body, updated_at FROM canned_responses "
    "WHERE ? IS NULL OR short_code LIKE ? OR title LIKE ? ORDER BY short_code LIMIT ?";
/* -- name: canned-get */
static const char q_canned_get[] =
    "SELECT id, short_code, title, body, updated_at FROM canned_responses WHERE id = ?";
static const char q_canned_insert[] =
    "INSERT INTO canned_responses (short_code, title, body, created_by) VALUES (?, ?, ?, ?)";
static const char q_canned_update[] =
    "UPDATE canned_responses SET short_code = ?, title = ?, body = ? WHERE id = ?";
static const char q_canned_delete[] = "DELETE FROM canned_responses WHERE id = ?";

/* -- name: canned-render-client
 * The client behind a conversation the caller may see, with the e-mail and
 * phone a saved reply may name (verified first, then the newest). */
static const char q_render_client[] =
    "SELECT cl.name, cl.custom_fields, "
    "(SELECT ci.value FROM client_identities ci WHERE ci.client_id = cl.id AND ci.kind = 'email' "
    " ORDER BY ci.verified DESC, ci.id DESC LIMIT 1), "
    "(SELECT ci.value FROM client_identities ci WHERE ci.client_id = cl.id AND ci.kind = 'phone' "
    " ORDER BY ci.verified DESC, ci.id DESC LIMIT 1) "
    "FROM conversations c JOIN clients cl ON cl.id = c.client_id WHERE c.id = ? AND " VISIBLE;
static const char q_conv_visible[] = "SELECT 1 FROM conversations c WHERE c.id = ? AND " VISIBLE;

/* -- name: notifications-list */
static const char q_notifications[] =
    "SELECT n.id, n.kind, n.conversation_id, n.interaction_id, n.actor_user_id, u.name, "
    "LEFT(i.text, 200), cl.name, n.created_at, n.read_at FROM notifications n "
    "LEFT JOIN users u ON u.id = n.actor_user_id "
    "LEFT JOIN interactions i ON i.id = n.interaction_id "
    "LEFT JOIN conversations c ON c.id = n.conversation_id "
    "LEFT JOIN clients cl ON cl.id = c.client_id "
    "WHERE n.user_id = ? AND (? = 0 OR n.read_at IS NULL) AND (? IS NULL OR n.id < ?) "
    "ORDER BY n.id DESC LIMIT ?";
static const char q_unread_count[] =
    "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND read_at IS NULL";
static const char q_notification_state[] =
    "SELECT read_at FROM notifications WHERE id = ? AND user_id = ?";
static const char q_notification_read[] =
    "UPDATE notifications SET read_at = UTC_TIMESTAMP(6) WHERE id = ? AND read_at IS NULL";
static const char q_notifications_read_all[] =
    "UPDATE notifications SET read_at = UTC_TIMESTAMP(6) WHERE user_id = ? AND read_at IS NULL";

static const char q_set_locale[] = "UPDATE users SET locale = ? WHERE id = ?";

/* ---- canned responses ------------------------------------------------------ */

static json_t *canned_json(const struct sb_db_rows *r, size_t i)
{
    return json_pack("{s:I,s:o,s:o,s:o,s:o}", "id", (json_int_t)sb_db_cell_int(r, i, 0),
                     "short_code", sb_json_cell(r, i, 1), "title", sb_json_cell(r, i, 2), "body",
                     sb_json_cell(r, i, 3), "updated_at", sb_json_cell(r, i, 4));
}

void sb_api_canned_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    char q[256] = "", err[256] = "";
    sb_request_query(req, "q", q, sizeof q);
    /* The picker's query comes after the "/": a leading one is not part of it. */
    const char *qq = q[0] == '/' ? q + 1 : q;
    struct sb_search_terms t;
    sb_api_search_terms(qq, app->cfg->default_region, &t);
    struct sb_db_val a[] = {*qq ? SB_TEXT(qq) : SB_NULL, SB_TEXT(t.like), SB_TEXT(t.like),
                            SB_INT(sb_api_limit(req))};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_canned_list, a, 4, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list canned responses", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(items, canned_json(&r, i));
    sb_db_rows_free(&r);
    sb_reply_json(rep, 200, json_pack("{s:o}", "items", items));
}

/* A short code: 1..64 bytes of letters (any script), digits, '_', '-' or
 * '.'; it follows a "/" in the composer, so no spaces or slashes. */
static int valid_short_code(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > SHORT_CODE_MAX)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* The fields of a create or patch body over `cur` (the stored values, or
 * NULLs when creating). 0, or -1 with the reply answered (400). */
static int canned_fields(const json_t *body, const char **code, const char **title,
                         const char **text, struct sb_http_reply *rep)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        const char **dst = !strcmp(key, "short_code") ? code
                           : !strcmp(key, "title")    ? title
                           : !strcmp(key, "body")     ? text
                                                      : NULL;
        if (!dst) {
            sb_reply_error(rep, SB_ERR_INVALID, "unknown field \"%s\" (short_code, title, body)",
                           key);
            return -1;
        }
        if (!json_is_string(v)) {
            sb_reply_error(rep, SB_ERR_INVALID, "\"%s\" must be a string", key);
            return -1;
        }
        *dst = json_string_value(v);
    }
    if (!*code || !*title || !*text || !**title || !**text) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"short_code\", \"title\" and \"body\" are required");
        return -1;
    }
    if (!valid_short_code(*code)) {
        sb_reply_error(rep, SB_ERR_INVALID,
                       "\"short_code\": 1 to %d letters, digits, '_', '-' or '.' (no spaces)",
                       SHORT_CODE_MAX);
        return -1;
    }
    if (strlen(*title) > TITLE_MAX || strpbrk(*title, "\r\n")) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"title\": one line of at most %d bytes", TITLE_MAX);
        return -1;
    }
    if (strlen(*text) > BODY_MAX) {
        sb_reply_error(rep, SB_ERR_TOO_LARGE, "\"body\" is longer than %d bytes", BODY_MAX);
        return -1;
    }
    char err[256] = "";
    if (sb_tpl_check_scope(*text, SB_TPL_CANNED, err, sizeof err) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"body\": %s", err);
        return -1;
    }
    return 0;
}

static void canned_reply(struct sb_db *db, int64_t id, int status, struct sb_http_reply *rep)
{
    char err[256] = "";
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_canned_get, a, 1, &r, err, sizeof err);
    if (rc != SB_OK || !r.nrows)
        sb_reply_failure(rep, rc != SB_OK ? rc : SB_ERR_INTERNAL, "load canned response", err);
    else
        sb_reply_json(rep, status, canned_json(&r, 0));
    sb_db_rows_free(&r);
}

static void canned_store_failed(struct sb_http_reply *rep, int rc, const char *code,
                                const char *err)
{
    if (rc == SB_ERR_EXISTS)
        sb_reply_error(rep, rc, "the short code \"%s\" is taken", code);
    else
        sb_reply_failure(rep, rc, "store canned response", err);
}

void sb_api_canned_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *code = NULL, *title = NULL, *text = NULL;
    if (canned_fields(body, &code, &title, &text, rep) == 0) {
        char err[256] = "";
        struct sb_db_val a[] = {SB_TEXT(code), SB_TEXT(title), SB_TEXT(text), SB_INT(req->user.id)};
        struct sb_db_rows r;
        int rc = sb_db_exec(db, q_canned_insert, a, 4, &r, err, sizeof err);
        int64_t id = (int64_t)r.insert_id;
        sb_db_rows_free(&r);
        if (rc != SB_OK) {
            canned_store_failed(rep, rc, code, err);
        } else {
            sb_audit(db, req->user.id, "canned.create", "canned_response", id, req->peer);
            canned_reply(db, id, 201, rep);
        }
    }
    json_decref(body);
}

void sb_api_canned_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    struct sb_db_rows cur;
    if (sb_api_load_by_id(db, req, rep, q_canned_get, "canned response", &id, &cur) != 0)
        return;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK) {
        sb_db_rows_free(&cur);
        return;
    }
    const char *code = sb_db_cell(&cur, 0, 1), *title = sb_db_cell(&cur, 0, 2),
               *text = sb_db_cell(&cur, 0, 3);
    if (canned_fields(body, &code, &title, &text, rep) == 0) {
        char err[256] = "";
        struct sb_db_val a[] = {SB_TEXT(code), SB_TEXT(title), SB_TEXT(text), SB_INT(id)};
        int rc = sb_db_exec(db, q_canned_update, a, 4, NULL, err, sizeof err);
        if (rc != SB_OK) {
            canned_store_failed(rep, rc, code, err);
        } else {
            sb_audit(db, req->user.id, "canned.update", "canned_response", id, req->peer);
            canned_reply(db, id, 200, rep);
        }
    }
    json_decref(body);
    sb_db_rows_free(&cur);
}

void sb_api_canned_delete(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad canned response id");
        return;
    }
    char err[256] = "";
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_canned_delete, a, 1, &r, err, sizeof err);
    uint64_t n = r.affected;
    sb_db_rows_free(&r);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "delete canned response", err);
        return;
    }
    if (!n) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such canned response");
        return;
    }
    sb_audit(db, req->user.id, "canned.delete", "canned_response", id, req->peer);
    rep->status = 204;
}

void sb_api_canned_render(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    int64_t conv_id, cid;
    if (sb_request_param_id(req, 0, &conv_id) != SB_OK ||
        sb_request_param_id(req, 1, &cid) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad conversation or canned response id");
        return;
    }
    char err[256] = "";
    int admin = req->user.role == SB_ROLE_ADMIN;
    struct sb_db_val a[] = {SB_INT(conv_id), SB_INT(admin), SB_INT(req->user.id),
                            SB_INT(req->user.id)};
    struct sb_db_val b[] = {SB_INT(cid)};
    struct sb_db_rows cl = {0}, cr = {0};
    int rc = sb_db_exec(db, q_render_client, a, 4, &cl, err, sizeof err);
    if (rc == SB_OK && cl.nrows)
        rc = sb_db_exec(db, q_canned_get, b, 1, &cr, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "render canned response", err);
    } else if (!cl.nrows) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such conversation");
    } else if (!cr.nrows) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such canned response");
    } else {
        const char *custom = sb_db_cell(&cl, 0, 1);
        json_t *cf = custom ? json_loads(custom, 0, NULL) : NULL;
        struct sb_tpl_vars v = {.name = sb_db_cell(&cl, 0, 0),
                                .email = sb_db_cell(&cl, 0, 2),
                                .phone = sb_db_cell(&cl, 0, 3),
                                .custom = json_is_object(cf) ? cf : NULL,
                                .agent_name = req->user.name,
                                .conversation_id = (long long)conv_id};
        char *out = NULL;
        rc = sb_tpl_render(sb_db_cell(&cr, 0, 3), 0, &v, NULL, NULL, &out, NULL, err, sizeof err);
        if (rc != SB_OK)
            sb_reply_result(rep, rc, "render canned response", err);
        else
            sb_reply_json(rep, 200,
                          json_pack("{s:I,s:o,s:I,s:s}", "id", (json_int_t)cid, "short_code",
                                    sb_json_cell(&cr, 0, 1), "conversation_id", (json_int_t)conv_id,
                                    "text", out));
        free(out);
        json_decref(cf);
    }
    sb_db_rows_free(&cl);
    sb_db_rows_free(&cr);
}

/* ---- colleagues ------------------------------------------------------------ */

void sb_api_agents_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    (void)app;
    char conv[24] = "", err[256] = "";
    int64_t conv_id = 0;
    if (sb_request_query(req, "conversation", conv, sizeof conv) == 0 && *conv) {
        char *end;
        conv_id = strtoll(conv, &end, 10);
        if (*end || conv_id <= 0) {
            sb_reply_error(rep, SB_ERR_INVALID, "conversation must be a conversation id");
            return;
        }
        /* Who can see a conversation is only told to those who see it. */
        int admin = req->user.role == SB_ROLE_ADMIN;
        struct sb_db_val a[] = {SB_INT(conv_id), SB_INT(admin), SB_INT(req->user.id),
                                SB_INT(req->user.id)};
        struct sb_db_rows r;
        int rc = sb_db_exec(db, q_conv_visible, a, 4, &r, err, sizeof err);
        size_t n = r.nrows;
        sb_db_rows_free(&r);
        if (rc != SB_OK) {
            sb_reply_failure(rep, rc, "list agents", err);
            return;
        }
        if (!n) {
            sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such conversation");
            return;
        }
    }
    json_t *items;
    int rc = sb_agents_list(db, conv_id, &items, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list agents", err);
        return;
    }
    sb_reply_json(rep, 200, json_pack("{s:o}", "items", items));
}

/* ---- notifications --------------------------------------------------------- */

static int unread_count(struct sb_db *db, int64_t user_id, int64_t *n_r, char *err, size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(user_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_unread_count, a, 1, &r, err, errlen);
    *n_r = rc == SB_OK && r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    sb_db_rows_free(&r);
    return rc;
}

static json_t *notification_json(const struct sb_db_rows *r, size_t i)
{
    return json_pack("{s:I,s:o,s:o,s:o,s:{s:o,s:o},s:o,s:o,s:o,s:o}", "id",
                     (json_int_t)sb_db_cell_int(r, i, 0), "kind", sb_json_cell(r, i, 1),
                     "conversation_id", sb_json_cell_int(r, i, 2), "interaction_id",
                     sb_json_cell_int(r, i, 3), "actor", "id", sb_json_cell_int(r, i, 4), "name",
                     sb_json_cell(r, i, 5), "preview", sb_json_cell(r, i, 6), "client_name",
                     sb_json_cell(r, i, 7), "created_at", sb_json_cell(r, i, 8), "read_at",
                     sb_json_cell(r, i, 9));
}

void sb_api_notifications_list(struct sb_app *app, struct sb_db *db,
                               const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    char unread[8] = "", err[256] = "";
    sb_request_query(req, "unread", unread, sizeof unread);
    if (*unread && strcmp(unread, "0") && strcmp(unread, "1")) {
        sb_reply_error(rep, SB_ERR_INVALID, "unread must be 0 or 1");
        return;
    }
    int64_t cursor;
    if (sb_api_cursor_id(req, &cursor) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
        return;
    }
    int limit = sb_api_limit(req);
    struct sb_db_val a[] = {SB_INT(req->user.id), SB_INT(!strcmp(unread, "1")),
                            cursor ? SB_INT(cursor) : SB_NULL, SB_INT(cursor), SB_INT(limit)};
    struct sb_db_rows r;
    int64_t count = 0;
    int rc = sb_db_exec(db, q_notifications, a, 5, &r, err, sizeof err);
    if (rc == SB_OK)
        rc = unread_count(db, req->user.id, &count, err, sizeof err);
    if (rc != SB_OK) {
        sb_db_rows_free(&r);
        sb_reply_failure(rep, rc, "list notifications", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(items, notification_json(&r, i));
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    size_t n = r.nrows;
    sb_db_rows_free(&r);
    json_t *page = sb_api_page(items, n, limit, last);
    json_object_set_new(page, "unread_count", json_integer(count));
    sb_reply_json(rep, 200, page);
}

/* Mark read, tell the user's other tabs (notification.read), answer the
 * new unread count. `id` 0: all of them. */
static void mark_read(struct sb_db *db, const struct sb_http_request *req, int64_t id,
                      struct sb_http_reply *rep)
{
    char err[256] = "";
    int rc = sb_db_begin(db, err, sizeof err);
    uint64_t n = 0;
    if (rc == SB_OK) {
        struct sb_db_val one[] = {SB_INT(id)}, all[] = {SB_INT(req->user.id)};
        struct sb_db_rows r;
        rc = id ? sb_db_exec(db, q_notification_read, one, 1, &r, err, sizeof err)
                : sb_db_exec(db, q_notifications_read_all, all, 1, &r, err, sizeof err);
        n = r.affected;
        sb_db_rows_free(&r);
    }
    if (rc == SB_OK && n) {
        json_t *d = id ? json_pack("{s:[I]}", "ids", (json_int_t)id)
                       : json_pack("{s:b,s:I}", "all", 1, "updated", (json_int_t)n);
        rc = sb_event_append(db, "notification.read", 0, 0, req->user.id, d, err, sizeof err);
    }
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, sizeof err);
    else
        sb_db_rollback(db);
    int64_t count = 0;
    if (rc == SB_OK)
        rc = unread_count(db, req->user.id, &count, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "mark notifications read", err);
        return;
    }
    json_t *o = json_pack("{s:I,s:I}", "updated", (json_int_t)n, "unread_count", (json_int_t)count);
    if (id)
        json_object_set_new(o, "id", json_integer(id));
    sb_reply_json(rep, 200, o);
}

void sb_api_notification_read(struct sb_app *app, struct sb_db *db,
                              const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad notification id");
        return;
    }
    /* Another user's notification is as absent as a deleted one. */
    char err[256] = "";
    struct sb_db_val a[] = {SB_INT(id), SB_INT(req->user.id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_notification_state, a, 2, &r, err, sizeof err);
    size_t found = r.nrows;
    sb_db_rows_free(&r);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "read notification", err);
        return;
    }
    if (!found) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such notification");
        return;
    }
    mark_read(db, req, id, rep);
}

void sb_api_notifications_read_all(struct sb_app *app, struct sb_db *db,
                                   const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    mark_read(db, req, 0, rep);
}

/* ---- the signed-in user ---------------------------------------------------- */

/* {"locale": "ru"|"en"|null, "notify": {"assigned": bool, "message": bool}},
 * each member optional, saved together in one transaction. */
void sb_api_me_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                     struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    char err[256] = "";
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        (void)v;
        if (strcmp(key, "locale") && strcmp(key, "notify")) {
            sb_reply_error(rep, SB_ERR_INVALID, "unknown field \"%s\" (locale, notify)", key);
            json_decref(body);
            return;
        }
    }
    json_t *loc = json_object_get(body, "locale");
    const char *l = json_string_value(loc);
    json_t *notify = json_object_get(body, "notify");
    if (!loc && !notify) {
        sb_reply_error(rep, SB_ERR_INVALID, "nothing to change (locale, notify)");
        json_decref(body);
        return;
    }
    if (loc && !json_is_null(loc) && (!l || (strcmp(l, "ru") && strcmp(l, "en")))) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"locale\" must be \"ru\", \"en\" or null");
        json_decref(body);
        return;
    }
    struct sb_notify_prefs prefs;
    int rc = sb_notify_prefs_get(db, req->user.id, &prefs, err, sizeof err);
    if (rc == SB_OK && notify) {
        rc = sb_notify_prefs_parse(notify, &prefs, err, sizeof err);
        if (rc == SB_ERR_INVALID) {
            sb_reply_error(rep, rc, "%s", err);
            json_decref(body);
            return;
        }
    }
    if (rc == SB_OK)
        rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK && loc) {
        struct sb_db_val a[] = {SB_TEXT(l), SB_INT(req->user.id)};
        rc = sb_db_exec(db, q_set_locale, a, 2, NULL, err, sizeof err);
    }
    if (rc == SB_OK && notify)
        rc = sb_notify_prefs_set(db, req->user.id, &prefs, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, sizeof err);
    else
        sb_db_rollback(db);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "save settings", err);
    } else {
        struct sb_user u = req->user;
        if (loc)
            snprintf(u.locale, sizeof u.locale, "%s", l ? l : "");
        json_t *uj = sb_user_json(&u);
        json_object_set_new(uj, "notify", sb_notify_prefs_json(&prefs));
        sb_reply_json(rep, 200, json_pack("{s:o}", "user", uj));
    }
    json_decref(body);
}
