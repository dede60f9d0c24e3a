/* Shared pieces of the JSON list endpoints (see apiutil.h). */
#include "switchboard/apiutil.h"

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
