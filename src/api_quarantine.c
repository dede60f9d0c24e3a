/* The quarantine for admins: provider input we could not read, kept raw
 * (raw_inbound) so nothing is lost and someone can look at it, download it
 * and mark it dealt with. */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/auth.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <stdlib.h>
#include <string.h>

/* -- name: quarantine-list
 * Open items first by default; ?status=resolved|all widens it. */
static const char q_list[] =
    "SELECT id, channel_id, source, error, content_type, LENGTH(body), created_at, resolved_at, "
    "resolved_by FROM raw_inbound WHERE (? = 'all' OR (? = 'open') = (resolved_at IS NULL)) "
    "AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?";
static const char q_body[] = "SELECT content_type, body FROM raw_inbound WHERE id = ?";
static const char q_resolve[] = "UPDATE raw_inbound SET resolved_at = NOW(6), resolved_by = ? "
                                "WHERE id = ? AND resolved_at IS NULL";

void sb_api_quarantine_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    char status[16] = "open", err[256] = "";
    int64_t cursor;
    sb_request_query(req, "status", status, sizeof status);
    if (strcmp(status, "open") && strcmp(status, "resolved") && strcmp(status, "all")) {
        sb_reply_error(rep, SB_ERR_INVALID, "status must be open, resolved or all");
        return;
    }
    if (sb_api_cursor_id(req, &cursor) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
        return;
    }
    int limit = sb_api_limit(req);
    struct sb_db_val a[] = {SB_TEXT(status), SB_TEXT(status), cursor ? SB_INT(cursor) : SB_NULL,
                            SB_INT(cursor), SB_INT(limit)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_list, a, 5, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list quarantine", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(
            items, json_pack("{s:I,s:o,s:o,s:o,s:o,s:I,s:o,s:o,s:o}", "id",
                             (json_int_t)sb_db_cell_int(&r, i, 0), "channel_id",
                             sb_json_cell_int(&r, i, 1), "source", sb_json_cell(&r, i, 2), "error",
                             sb_json_cell(&r, i, 3), "content_type", sb_json_cell(&r, i, 4), "size",
                             (json_int_t)sb_db_cell_int(&r, i, 5), "created_at",
                             sb_json_cell(&r, i, 6), "resolved_at", sb_json_cell(&r, i, 7),
                             "resolved_by", sb_json_cell_int(&r, i, 8)));
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    sb_reply_json(rep, 200, sb_api_page(items, r.nrows, limit, last));
    sb_db_rows_free(&r);
}

/* The raw body as a download: never rendered by the browser, whatever the
 * provider claimed its type was. */
void sb_api_quarantine_body(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    char err[256] = "";
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad id");
        return;
    }
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_body, a, 1, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "read quarantine", err);
        return;
    }
    if (!r.nrows) {
        sb_db_rows_free(&r);
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such quarantined item");
        return;
    }
    sb_reply_text(rep, 200, "application/octet-stream", sb_db_cell(&r, 0, 1), r.lens[1]);
    sb_reply_header(rep, "Content-Disposition", "attachment");
    sb_db_rows_free(&r);
}

void sb_api_quarantine_resolve(struct sb_app *app, struct sb_db *db,
                               const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    char err[256] = "";
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad id");
        return;
    }
    struct sb_db_val a[] = {SB_INT(req->user.id), SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_resolve, a, 2, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "resolve quarantine", err);
        return;
    }
    if (!r.affected) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no open quarantined item %lld", (long long)id);
        return;
    }
    sb_audit(db, req->user.id, "quarantine.resolve", "raw_inbound", id, req->peer);
    rep->status = 204;
}
