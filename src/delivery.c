/* Delivery statuses of outbound messages (see delivery.h). */
#include "switchboard/delivery.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"

/* -- name: delivery-update
 * The FIELD() ranks make the update a no-op when it would move backwards. */
static const char q_update[] =
    "UPDATE interactions SET delivery_status = ?, "
    "meta = IF(? = '', meta, JSON_SET(COALESCE(meta, '{}'), '$.delivery_error', ?)) "
    "WHERE channel_id = ? AND external_id = ? AND direction = 'out' AND ("
    " (delivery_status <> 'failed' AND"
    "  FIELD(delivery_status, 'none', 'queued', 'sent', 'delivered', 'read') <"
    "  FIELD(?, 'none', 'queued', 'sent', 'delivered', 'read'))"
    " OR (? = 'failed' AND delivery_status NOT IN ('read', 'failed')))";

static const char q_ids[] = "SELECT id, COALESCE(conversation_id, 0), COALESCE(client_id, 0) "
                            "FROM interactions WHERE channel_id = ? AND external_id = ?";

const char *sb_delivery_name(enum sb_delivery d)
{
    static const char *const names[] = {"sent", "delivered", "read", "failed"};
    return (unsigned)d <= SB_DELIVERY_FAILED ? names[d] : "sent";
}

int sb_delivery_update(struct sb_db *db, int64_t channel_id, const struct sb_status_update *st,
                       int *changed_r, char *err, size_t errlen)
{
    *changed_r = 0;
    const char *name = sb_delivery_name(st->status);
    struct sb_db_val a[] = {SB_TEXT(name),      SB_TEXT(st->error),       SB_TEXT(st->error),
                            SB_INT(channel_id), SB_TEXT(st->external_id), SB_TEXT(name),
                            SB_TEXT(name)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_update, a, 7, &r, err, errlen);
    if (rc != SB_OK || r.affected == 0)
        return rc;
    *changed_r = 1;
    struct sb_db_val b[] = {SB_INT(channel_id), SB_TEXT(st->external_id)};
    struct sb_db_rows ids;
    rc = sb_db_exec(db, q_ids, b, 2, &ids, err, errlen);
    if (rc == SB_OK && ids.nrows)
        rc = sb_event_append(
            db, "interaction.updated", sb_db_cell_int(&ids, 0, 1), sb_db_cell_int(&ids, 0, 2), 0,
            json_pack("{s:I,s:s,s:s?}", "id", (json_int_t)sb_db_cell_int(&ids, 0, 0),
                      "delivery_status", name, "error", st->error[0] ? st->error : NULL),
            err, errlen);
    sb_db_rows_free(&ids);
    return rc;
}
