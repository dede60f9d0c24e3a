/* Small pieces every JSON list endpoint shares: paging parameters, the
 * {"items", "next_cursor"} envelope, and table cells as JSON values. */
#ifndef SB_APIUTIL_H
#define SB_APIUTIL_H

#include "switchboard/db.h"
#include "switchboard/http.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SB_PAGE_DEFAULT 50
#define SB_PAGE_MAX     200 /* a page is built in memory on a worker: keep it bounded */

/* ?limit= clamped to 1..SB_PAGE_MAX; SB_PAGE_DEFAULT when absent. */
int sb_api_limit(const struct sb_http_request *req);
/* ?cursor= as the last id of the previous page: 0 and *id_r = 0 when absent,
 * -1 when present but not a positive integer. */
int sb_api_cursor_id(const struct sb_http_request *req, int64_t *id_r);
/* {"items": items, "next_cursor": "<last_id>" or null}; steals `items`. */
json_t *sb_api_page(json_t *items, size_t n, int limit, int64_t last_id);

/* What a free-text search `q` can match: itself as a phone (E.164, "" when
 * it is not one) and as an e-mail address ("" when not), and a LIKE pattern
 * "%q%" with q's own % _ \ escaped, so they match literally. */
struct sb_search_terms {
    char phone[32];
    char email[321];
    char like[600];
};
void sb_api_search_terms(const char *q, const char *region, struct sb_search_terms *t);

/* Who may see a conversation: admins all of them; an agent what is assigned
 * to them, what is unassigned, and what belongs to one of their teams. The
 * inbox, its counts, attachments, canned-response rendering and reports all
 * use this one fragment (ws.c applies the same rule in C to each event), so a
 * change to the rule is made here. SQL over a conversations row aliased `c`;
 * three parameters: is-admin (1/0), the user's id, the user's id again. */
#define SB_SQL_CONV_VISIBLE                                                                        \
    "(? = 1 OR c.assignee_id = ? OR c.assignee_id IS NULL OR c.team_id IN "                        \
    "(SELECT team_id FROM team_members WHERE user_id = ?))"

/* A cell as a JSON string / integer, or null for SQL NULL. */
json_t *sb_json_cell(const struct sb_db_rows *r, size_t row, size_t col);
json_t *sb_json_cell_int(const struct sb_db_rows *r, size_t row, size_t col);
/* interactions.flags bits as ["auto_reply", "bounce", "parse_error", "edited"]. */
json_t *sb_json_flags(int64_t bits);

/* A plain list endpoint: `sql` takes (cursor or NULL, cursor or NULL, limit)
 * and returns rows whose first column is the id; `row` turns one row into
 * JSON. Answers the page (or the error, naming `what`). */
void sb_api_list(struct sb_db *db, const struct sb_http_request *req, struct sb_http_reply *rep,
                 const char *sql, json_t *(*row)(const struct sb_db_rows *r, size_t i),
                 const char *what);

/* The rows `sql` gives for the path's first id (its one parameter). 0 with
 * at least one row in `r` and the id in *id_r; otherwise -1, `rep` holds
 * the answer (404 "no such <what>", or 503/500) and `r` is empty. */
int sb_api_load_by_id(struct sb_db *db, const struct sb_http_request *req,
                      struct sb_http_reply *rep, const char *sql, const char *what, int64_t *id_r,
                      struct sb_db_rows *r);

#endif
