/* Clients over HTTP: search, one client with its cross-channel timeline,
 * edits, merges and merge suggestions. */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/app.h"
#include "switchboard/clients.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 50
#define PAGE_MAX     200

/* -- name: clients-search
 * One statement for every filter combination: a filter whose parameter is
 * NULL is switched off. The identity filters match normalised values, so
 * "8 (916) 000-11-22" finds +79160001122. Newest first, paged by id. */
static const char q_search[] =
    "SELECT c.id, c.name, c.company, c.created_at, c.last_activity_at FROM clients c "
    "WHERE c.merged_into IS NULL AND (? IS NULL OR c.id < ?) "
    "AND (? IS NULL OR c.id IN (SELECT client_id FROM client_identities WHERE kind = 'email' AND "
    "value = ?)) "
    "AND (? IS NULL OR c.id IN (SELECT client_id FROM client_identities WHERE kind = 'phone' AND "
    "value = ?)) "
    "AND (? IS NULL OR c.name LIKE ? OR c.company LIKE ? "
    "     OR c.id IN (SELECT client_id FROM client_identities WHERE value IN (?, ?) OR raw LIKE "
    "?)) "
    "ORDER BY c.id DESC LIMIT ?";

/* -- name: client-identity-list */
static const char q_idents[] =
    "SELECT kind, value, raw, verified FROM client_identities WHERE client_id = ? ORDER BY id";

/* -- name: client-timeline
 * Every interaction with the client on every channel, newest first. */
static const char q_timeline[] =
    "SELECT i.id, i.conversation_id, i.channel_id, ch.kind, i.direction, i.kind, i.sender, "
    "i.subject, LEFT(i.text, 500), i.flags + 0, i.delivery_status, i.occurred_at "
    "FROM interactions i JOIN channels ch ON ch.id = i.channel_id "
    "WHERE i.client_id = ? AND (? IS NULL OR i.id < ?) "
    /* the conversations' visibility rule (api_conversations.c): an agent
     * sees their own, unassigned and their teams' conversations */
    "AND (? = 1 OR i.conversation_id IS NULL OR i.conversation_id IN ("
    " SELECT c.id FROM conversations c WHERE c.client_id = i.client_id AND (c.assignee_id = ? OR "
    " c.assignee_id IS NULL OR c.team_id IN (SELECT team_id FROM team_members WHERE user_id = "
    "?)))) "
    "ORDER BY i.id DESC LIMIT ?";

/* -- name: merge-suggestions-list */
static const char q_suggestions[] =
    "SELECT s.id, s.client_id, a.name, s.other_client_id, b.name, s.reason, s.status, s.created_at "
    "FROM merge_suggestions s JOIN clients a ON a.id = s.client_id "
    "JOIN clients b ON b.id = s.other_client_id "
    "WHERE s.status = ? AND (? IS NULL OR s.id < ?) ORDER BY s.id DESC LIMIT ?";
static const char q_suggestion_get[] =
    "SELECT pair_lo, pair_hi, status FROM merge_suggestions WHERE id = ?";
static const char q_suggestion_dismiss[] =
    "UPDATE merge_suggestions SET status = 'dismissed', decided_by = ?, decided_at = NOW(6) "
    "WHERE id = ? AND status = 'open'";

void sb_api_clients_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    char q[256] = "", email_in[330] = "", phone_in[128] = "", err[256] = "";
    char email[SB_EMAIL_MAX + 1] = "";
    struct sb_phone ph;
    int64_t cursor;
    if (sb_api_cursor_id(req, &cursor) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
        return;
    }
    sb_request_query(req, "q", q, sizeof q);
    if (sb_request_query(req, "email", email_in, sizeof email_in) == 0 && *email_in &&
        sb_email_normalize(email_in, email, sizeof email, NULL, 0, err, sizeof err) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "email: %s", err);
        return;
    }
    if (sb_request_query(req, "phone", phone_in, sizeof phone_in) == 0 && *phone_in &&
        sb_phone_normalize(phone_in, app->cfg->default_region, &ph, err, sizeof err) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "phone: %s", err);
        return;
    }
    if (*phone_in)
        snprintf(phone_in, sizeof phone_in, "%s", ph.e164);
    /* A free-text query may itself be a phone or an address in any format. */
    struct sb_search_terms t;
    sb_api_search_terms(q, app->cfg->default_region, &t);
    int limit = sb_api_limit(req);
    struct sb_db_val a[] = {
        cursor ? SB_INT(cursor) : SB_NULL,
        SB_INT(cursor),
        SB_TEXT(*email ? email : NULL),
        SB_TEXT(email),
        SB_TEXT(*phone_in ? phone_in : NULL),
        SB_TEXT(phone_in),
        SB_TEXT(*q ? q : NULL),
        SB_TEXT(t.like),
        SB_TEXT(t.like),
        SB_TEXT(*t.phone ? t.phone : NULL),
        SB_TEXT(*t.email ? t.email : NULL),
        SB_TEXT(t.like),
        SB_INT(limit),
    };
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_search, a, sizeof a / sizeof a[0], &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "search clients", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++) {
        int64_t id = sb_db_cell_int(&r, i, 0);
        struct sb_db_val ia[] = {SB_INT(id)};
        struct sb_db_rows ids;
        json_t *idents = json_array();
        if (sb_db_exec(db, q_idents, ia, 1, &ids, err, sizeof err) == SB_OK)
            for (size_t j = 0; j < ids.nrows; j++)
                json_array_append_new(idents, json_pack("{s:o,s:o,s:o,s:b}", "kind",
                                                        sb_json_cell(&ids, j, 0), "value",
                                                        sb_json_cell(&ids, j, 1), "raw",
                                                        sb_json_cell(&ids, j, 2), "verified",
                                                        sb_db_cell_int(&ids, j, 3) != 0));
        sb_db_rows_free(&ids);
        json_array_append_new(items,
                              json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)id, "name",
                                        sb_json_cell(&r, i, 1), "company", sb_json_cell(&r, i, 2),
                                        "identities", idents, "created_at", sb_json_cell(&r, i, 3),
                                        "last_activity_at", sb_json_cell(&r, i, 4)));
    }
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    sb_reply_json(rep, 200, sb_api_page(items, r.nrows, limit, last));
    sb_db_rows_free(&r);
}

/* 301 with the surviving id, so old links keep working. */
static void reply_merged(struct sb_http_reply *rep, int64_t into)
{
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/clients/%lld", (long long)into);
    sb_reply_json(rep, 301, json_pack("{s:I}", "merged_into", (json_int_t)into));
    sb_reply_header(rep, "Location", loc);
}

void sb_api_clients_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    (void)app;
    int64_t id, merged, cursor;
    char err[256] = "";
    if (sb_request_param_id(req, 0, &id) != SB_OK || sb_api_cursor_id(req, &cursor) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad client id or cursor");
        return;
    }
    json_t *client;
    int rc = sb_client_get(db, id, &client, &merged, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "get client", err);
        return;
    }
    if (merged) {
        reply_merged(rep, merged);
        return;
    }
    if (req->user.role == SB_ROLE_MARKETER) {
        /* Marketers segment clients; they do not read conversations. */
        json_object_set_new(client, "timeline", json_null());
        sb_reply_json(rep, 200, client);
        return;
    }
    int limit = sb_api_limit(req);
    struct sb_db_val a[] = {SB_INT(id),           cursor ? SB_INT(cursor) : SB_NULL,
                            SB_INT(cursor),       SB_INT(req->user.role == SB_ROLE_ADMIN),
                            SB_INT(req->user.id), SB_INT(req->user.id),
                            SB_INT(limit)};
    struct sb_db_rows r;
    rc = sb_db_exec(db, q_timeline, a, 7, &r, err, sizeof err);
    if (rc != SB_OK) {
        json_decref(client);
        sb_reply_failure(rep, rc, "client timeline", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++) {
        json_t *flags = sb_json_flags(sb_db_cell_int(&r, i, 9));
        json_array_append_new(
            items,
            json_pack("{s:I,s:o,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                      (json_int_t)sb_db_cell_int(&r, i, 0), "conversation_id",
                      sb_db_cell(&r, i, 1) ? json_integer(sb_db_cell_int(&r, i, 1)) : json_null(),
                      "channel_id", (json_int_t)sb_db_cell_int(&r, i, 2), "channel_kind",
                      sb_json_cell(&r, i, 3), "direction", sb_json_cell(&r, i, 4), "kind",
                      sb_json_cell(&r, i, 5), "sender", sb_json_cell(&r, i, 6), "subject",
                      sb_json_cell(&r, i, 7), "text", sb_json_cell(&r, i, 8), "flags", flags,
                      "delivery_status", sb_json_cell(&r, i, 10), "occurred_at",
                      sb_json_cell(&r, i, 11)));
    }
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    json_object_set_new(client, "timeline", sb_api_page(items, r.nrows, limit, last));
    sb_db_rows_free(&r);
    sb_reply_json(rep, 200, client);
}

void sb_api_clients_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad client id");
        return;
    }
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    char err[256] = "";
    int rc = sb_client_update(db, id, body, req->user.id, req->peer, err, sizeof err);
    json_decref(body);
    if (rc != SB_OK)
        sb_reply_result(rep, rc, "update client", err);
    else
        sb_api_clients_get(app, db, req, rep);
}

static void merge_reply(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep, int64_t keep, int64_t other)
{
    (void)app;
    char err[256] = "";
    int rc = sb_client_merge(db, keep, other, req->user.id, req->peer, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "merge clients", err);
        return;
    }
    json_t *client;
    int64_t merged;
    rc = sb_client_get(db, keep, &client, &merged, err, sizeof err);
    if (rc != SB_OK || !client) {
        sb_reply_failure(rep, rc ? rc : SB_ERR_INTERNAL, "read merged client", err);
        return;
    }
    sb_reply_json(rep, 200, client);
}

void sb_api_clients_merge(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad client id");
        return;
    }
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    json_t *other = json_object_get(body, "other_id");
    json_int_t other_id = json_is_integer(other) ? json_integer_value(other) : 0;
    json_decref(body);
    if (other_id <= 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"other_id\" must be a client id");
        return;
    }
    merge_reply(app, db, req, rep, id, other_id);
}

void sb_api_merge_suggestions_list(struct sb_app *app, struct sb_db *db,
                                   const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    char status[16] = "open", err[256] = "";
    int64_t cursor;
    sb_request_query(req, "status", status, sizeof status);
    if (strcmp(status, "open") && strcmp(status, "accepted") && strcmp(status, "dismissed")) {
        sb_reply_error(rep, SB_ERR_INVALID, "status must be open, accepted or dismissed");
        return;
    }
    if (sb_api_cursor_id(req, &cursor) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
        return;
    }
    int limit = sb_api_limit(req);
    struct sb_db_val a[] = {SB_TEXT(status), cursor ? SB_INT(cursor) : SB_NULL, SB_INT(cursor),
                            SB_INT(limit)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_suggestions, a, 4, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list merge suggestions", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(
            items, json_pack("{s:I,s:{s:I,s:o},s:{s:I,s:o},s:o,s:o,s:o}", "id",
                             (json_int_t)sb_db_cell_int(&r, i, 0), "client", "id",
                             (json_int_t)sb_db_cell_int(&r, i, 1), "name", sb_json_cell(&r, i, 2),
                             "other", "id", (json_int_t)sb_db_cell_int(&r, i, 3), "name",
                             sb_json_cell(&r, i, 4), "reason", sb_json_cell(&r, i, 5), "status",
                             sb_json_cell(&r, i, 6), "created_at", sb_json_cell(&r, i, 7)));
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    sb_reply_json(rep, 200, sb_api_page(items, r.nrows, limit, last));
    sb_db_rows_free(&r);
}

void sb_api_merge_suggestion_decide(struct sb_app *app, struct sb_db *db,
                                    const struct sb_http_request *req, struct sb_http_reply *rep)
{
    int64_t id;
    char err[256] = "";
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad suggestion id");
        return;
    }
    int accept = !strcmp(req->params[1], "accept");
    if (!accept && strcmp(req->params[1], "dismiss")) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "use /accept or /dismiss");
        return;
    }
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_suggestion_get, a, 1, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "get merge suggestion", err);
        return;
    }
    if (!r.nrows || strcmp(sb_db_cell(&r, 0, 2), "open")) {
        int missing = !r.nrows;
        sb_db_rows_free(&r);
        sb_reply_error(rep, missing ? SB_ERR_NOT_FOUND : SB_ERR_EXISTS,
                       missing ? "no such merge suggestion"
                               : "this suggestion was decided already");
        return;
    }
    int64_t lo = sb_db_cell_int(&r, 0, 0), hi = sb_db_cell_int(&r, 0, 1);
    sb_db_rows_free(&r);
    if (accept) {
        merge_reply(app, db, req, rep, lo, hi); /* the older client stays */
        return;
    }
    struct sb_db_val d[] = {SB_INT(req->user.id), SB_INT(id)};
    rc = sb_db_exec(db, q_suggestion_dismiss, d, 2, NULL, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "dismiss merge suggestion", err);
        return;
    }
    rep->status = 204;
}
