/* Teams: groups of agents. A conversation routed to a team (its team_id) is
 * visible to every member of that team besides its assignee
 * (api_conversations.c, ws.c). Admins manage teams and their members; every
 * agent reads the list, to filter the inbox by team and to route a
 * conversation, with `is_member` saying which are theirs.
 *
 * A membership change reaches the WebSocket stream of a signed-in member at
 * their next connection (ws.c reads a user's teams when the socket opens);
 * the list and the counts see it at once. */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/auth.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEAM_NAME_MAX 100 /* teams.name VARCHAR(100) */

/* -- name: teams-list
 * Members as one "id\tname\n…" string per team, so the list is one round
 * trip; a tab or newline inside a user's name is sent as a space. */
static const char q_list[] =
    "SELECT t.id, t.name, t.created_at, "
    "(SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id), "
    "EXISTS (SELECT 1 FROM team_members m WHERE m.team_id = t.id AND m.user_id = ?), "
    "(SELECT GROUP_CONCAT(u.id, '\\t', REPLACE(REPLACE(u.name, '\\t', ' '), '\\n', ' ') "
    " ORDER BY u.name SEPARATOR '\\n') FROM team_members m JOIN users u ON u.id = m.user_id "
    " WHERE m.team_id = t.id) "
    "FROM teams t WHERE ? IS NULL OR t.id = ? ORDER BY t.name";
static const char q_insert[] = "INSERT INTO teams (name) VALUES (?)";
static const char q_rename[] = "UPDATE teams SET name = ? WHERE id = ?";
static const char q_delete[] = "DELETE FROM teams WHERE id = ?";
static const char q_exists[] = "SELECT 1 FROM teams WHERE id = ?";
static const char q_user_active[] = "SELECT 1 FROM users WHERE id = ? AND disabled = 0";
static const char q_member_add[] =
    "INSERT IGNORE INTO team_members (team_id, user_id) VALUES (?, ?)";
static const char q_member_remove[] = "DELETE FROM team_members WHERE team_id = ? AND user_id = ?";

static json_t *team_json(const struct sb_db_rows *r, size_t i)
{
    json_t *members = json_array();
    const char *m = sb_db_cell(r, i, 5);
    while (m && *m) {
        const char *nl = strchr(m, '\n');
        size_t len = nl ? (size_t)(nl - m) : strlen(m);
        const char *tab = memchr(m, '\t', len);
        if (tab) {
            long long id = strtoll(m, NULL, 10);
            json_array_append_new(members,
                                  json_pack("{s:I,s:s%}", "id", (json_int_t)id, "name", tab + 1,
                                            (size_t)(len - (size_t)(tab + 1 - m))));
        }
        m = nl ? nl + 1 : NULL;
    }
    return json_pack("{s:I,s:o,s:o,s:I,s:b,s:o}", "id", (json_int_t)sb_db_cell_int(r, i, 0), "name",
                     sb_json_cell(r, i, 1), "created_at", sb_json_cell(r, i, 2), "member_count",
                     (json_int_t)sb_db_cell_int(r, i, 3), "is_member", (int)sb_db_cell_int(r, i, 4),
                     "members", members);
}

/* One team as JSON (NULL and *found_r = 0 when there is none). */
static int team_load(struct sb_db *db, int64_t viewer, int64_t id, json_t **team_r, char *err,
                     size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(viewer), SB_INT(id), SB_INT(id)};
    struct sb_db_rows r;
    *team_r = NULL;
    int rc = sb_db_exec(db, q_list, a, 3, &r, err, errlen);
    if (rc == SB_OK && r.nrows)
        *team_r = team_json(&r, 0);
    sb_db_rows_free(&r);
    return rc;
}

static int exists(struct sb_db *db, const char *sql, int64_t id, int *yes_r, char *err,
                  size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, a, 1, &r, err, errlen);
    *yes_r = rc == SB_OK && r.nrows > 0;
    sb_db_rows_free(&r);
    return rc;
}

/* The "name" of a create or rename body, trimmed; replies the error itself. */
static int body_name(const json_t *body, struct sb_http_reply *rep, char *name, size_t cap)
{
    const char *s = json_string_value(json_object_get(body, "name"));
    if (!s) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"name\" is required");
        return -1;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    size_t chars = 0;
    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (!len || chars > TEAM_NAME_MAX || len >= cap || strpbrk(s, "\r\n")) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"name\": one line of 1 to %d characters",
                       TEAM_NAME_MAX);
        return -1;
    }
    memcpy(name, s, len);
    name[len] = '\0';
    return 0;
}

void sb_api_teams_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                       struct sb_http_reply *rep)
{
    (void)app;
    char err[256] = "";
    struct sb_db_val a[] = {SB_INT(req->user.id), SB_NULL, SB_NULL};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_list, a, 3, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list teams", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(items, team_json(&r, i));
    sb_db_rows_free(&r);
    sb_reply_json(rep, 200, json_pack("{s:o}", "items", items));
}

void sb_api_teams_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    (void)app;
    json_t *body, *team = NULL;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    char name[4 * TEAM_NAME_MAX + 1], err[256] = "";
    if (body_name(body, rep, name, sizeof name) != 0)
        goto out;
    struct sb_db_val a[] = {SB_TEXT(name)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_insert, a, 1, &r, err, sizeof err);
    int64_t id = rc == SB_OK ? (int64_t)r.insert_id : 0;
    sb_db_rows_free(&r);
    if (rc == SB_ERR_EXISTS) {
        sb_reply_error(rep, SB_ERR_EXISTS, "a team named \"%s\" exists", name);
        goto out;
    }
    if (rc == SB_OK)
        rc = team_load(db, req->user.id, id, &team, err, sizeof err);
    if (rc != SB_OK || !team) {
        sb_reply_failure(rep, rc != SB_OK ? rc : SB_ERR_INTERNAL, "create team", err);
        goto out;
    }
    sb_audit(db, req->user.id, "team.create", "team", id, req->peer);
    sb_reply_json(rep, 201, team);
out:
    json_decref(body);
}

void sb_api_teams_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad team id");
        return;
    }
    json_t *body, *team = NULL;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    char name[4 * TEAM_NAME_MAX + 1], err[256] = "";
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) if (strcmp(key, "name"))
    {
        sb_reply_error(rep, SB_ERR_INVALID, "unknown field \"%s\" (name)", key);
        goto out;
    }
    if (body_name(body, rep, name, sizeof name) != 0)
        goto out;
    int yes;
    int rc = exists(db, q_exists, id, &yes, err, sizeof err);
    if (rc == SB_OK && !yes) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such team");
        goto out;
    }
    struct sb_db_val a[] = {SB_TEXT(name), SB_INT(id)};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_rename, a, 2, NULL, err, sizeof err);
    if (rc == SB_ERR_EXISTS) {
        sb_reply_error(rep, SB_ERR_EXISTS, "a team named \"%s\" exists", name);
        goto out;
    }
    if (rc == SB_OK)
        rc = team_load(db, req->user.id, id, &team, err, sizeof err);
    if (rc != SB_OK || !team) {
        sb_reply_failure(rep, rc != SB_OK ? rc : SB_ERR_INTERNAL, "rename team", err);
        goto out;
    }
    sb_audit(db, req->user.id, "team.update", "team", id, req->peer);
    sb_reply_json(rep, 200, team);
out:
    json_decref(body);
}

void sb_api_teams_delete(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    char err[256] = "";
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad team id");
        return;
    }
    /* Its conversations keep their assignee and lose the team
     * (ON DELETE SET NULL); memberships go with it (CASCADE). */
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_delete, a, 1, &r, err, sizeof err);
    uint64_t n = rc == SB_OK ? r.affected : 0;
    sb_db_rows_free(&r);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "delete team", err);
        return;
    }
    if (!n) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such team");
        return;
    }
    sb_audit(db, req->user.id, "team.delete", "team", id, req->peer);
    rep->status = 204;
}

/* PUT adds (idempotent), DELETE removes; both answer 204. */
static void member_change(struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep, int add)
{
    int64_t id, uid;
    char err[256] = "";
    if (sb_request_param_id(req, 0, &id) != SB_OK || sb_request_param_id(req, 1, &uid) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad team or user id");
        return;
    }
    int team_ok = 0, user_ok = 1;
    int rc = exists(db, q_exists, id, &team_ok, err, sizeof err);
    if (rc == SB_OK && add)
        rc = exists(db, q_user_active, uid, &user_ok, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "change team members", err);
        return;
    }
    if (!team_ok) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such team");
        return;
    }
    if (!user_ok) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no active user %lld", (long long)uid);
        return;
    }
    struct sb_db_val a[] = {SB_INT(id), SB_INT(uid)};
    rc = sb_db_exec(db, add ? q_member_add : q_member_remove, a, 2, NULL, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "change team members", err);
        return;
    }
    sb_audit(db, req->user.id, add ? "team.member_add" : "team.member_remove", "team", id,
             req->peer);
    rep->status = 204;
}

void sb_api_teams_member_put(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    member_change(db, req, rep, 1);
}

void sb_api_teams_member_delete(struct sb_app *app, struct sb_db *db,
                                const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    member_change(db, req, rep, 0);
}
