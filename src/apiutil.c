/* Shared pieces of the JSON list endpoints (see apiutil.h). */
#include "switchboard/apiutil.h"
#include "switchboard/err.h"
#include "switchboard/identity.h"

#include <stdio.h>
#include <string.h>

#include <stdlib.h>

int sb_api_limit(const struct sb_http_request *req)
{
    char v[16];
    if (sb_request_query(req, "limit", v, sizeof v) != 0 || !*v)
        return SB_PAGE_DEFAULT;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end)
        return SB_PAGE_DEFAULT;
    return n < 1 ? 1 : n > SB_PAGE_MAX ? SB_PAGE_MAX : (int)n;
}

int sb_api_cursor_id(const struct sb_http_request *req, int64_t *id_r)
{
    char v[24];
    *id_r = 0;
    if (sb_request_query(req, "cursor", v, sizeof v) != 0 || !*v)
        return 0;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || n <= 0)
        return -1;
    *id_r = n;
    return 0;
}

json_t *sb_api_page(json_t *items, size_t n, int limit, int64_t last_id)
{
    return json_pack("{s:o,s:o}", "items", items, "next_cursor",
                     (int)n == limit ? json_sprintf("%lld", (long long)last_id) : json_null());
}

json_t *sb_json_cell(const struct sb_db_rows *r, size_t row, size_t col)
{
    const char *v = sb_db_cell(r, row, col);
    return v ? json_string(v) : json_null();
}

json_t *sb_json_cell_int(const struct sb_db_rows *r, size_t row, size_t col)
{
    return sb_db_cell(r, row, col) ? json_integer(sb_db_cell_int(r, row, col)) : json_null();
}

json_t *sb_json_flags(int64_t bits)
{
    static const char *const names[] = {"auto_reply", "bounce", "parse_error", "edited"};
    json_t *a = json_array();
    for (int b = 0; b < 4; b++)
        if (bits & (1 << b))
            json_array_append_new(a, json_string(names[b]));
    return a;
}

void sb_api_search_terms(const char *q, const char *region, struct sb_search_terms *t)
{
    char ignored[128];
    struct sb_phone ph;
    memset(t, 0, sizeof *t);
    if (sb_phone_normalize(q, region, &ph, ignored, sizeof ignored) == SB_OK)
        snprintf(t->phone, sizeof t->phone, "%s", ph.e164);
    if (sb_email_normalize(q, t->email, sizeof t->email, NULL, 0, ignored, sizeof ignored) != SB_OK)
        t->email[0] = '\0';
    size_t o = 0;
    t->like[o++] = '%';
    for (const char *c = q; *c && o + 3 < sizeof t->like; c++) {
        if (*c == '%' || *c == '_' || *c == '\\')
            t->like[o++] = '\\';
        t->like[o++] = *c;
    }
    t->like[o++] = '%';
    t->like[o] = '\0';
}

void sb_api_list(struct sb_db *db, const struct sb_http_request *req, struct sb_http_reply *rep,
                 const char *sql, json_t *(*row)(const struct sb_db_rows *r, size_t i),
                 const char *what)
{
    int64_t cursor;
    if (sb_api_cursor_id(req, &cursor) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
        return;
    }
    int limit = sb_api_limit(req);
    struct sb_db_val c = cursor ? SB_INT(cursor) : SB_NULL;
    struct sb_db_val a[] = {c, c, SB_INT(limit)};
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, a, 3, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_db_rows_free(&r);
        char doing[96];
        snprintf(doing, sizeof doing, "list %s", what);
        sb_reply_failure(rep, rc, doing, err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(items, row(&r, i));
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    sb_reply_json(rep, 200, sb_api_page(items, r.nrows, limit, last));
    sb_db_rows_free(&r);
}

int sb_api_load_by_id(struct sb_db *db, const struct sb_http_request *req,
                      struct sb_http_reply *rep, const char *sql, const char *what, int64_t *id_r,
                      struct sb_db_rows *r)
{
    memset(r, 0, sizeof *r);
    if (sb_request_param_id(req, 0, id_r) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such %s", what);
        return -1;
    }
    struct sb_db_val a = SB_INT(*id_r);
    char err[256] = "";
    int rc = sb_db_exec(db, sql, &a, 1, r, err, sizeof err);
    if (rc == SB_OK && !r->nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such %s", what);
    if (rc != SB_OK) {
        sb_db_rows_free(r);
        char doing[96];
        snprintf(doing, sizeof doing, "load %s", what);
        sb_reply_result(rep, rc, doing, err);
        return -1;
    }
    return 0;
}
