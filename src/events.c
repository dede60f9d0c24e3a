/* Appending to the events table (see events.h). */
#include "switchboard/events.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <stdlib.h>

/* -- name: event-insert */
static const char q_event_insert[] =
    "INSERT INTO events (type, conversation_id, client_id, user_id, data) VALUES (?, ?, ?, ?, ?)";

static struct sb_db_val id_or_null(int64_t id)
{
    return id ? SB_INT(id) : SB_NULL;
}

int sb_event_append(struct sb_db *db, const char *type, int64_t conversation_id, int64_t client_id,
                    int64_t user_id, json_t *data, char *err, size_t errlen)
{
    if (!data)
        data = json_object();
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct sb_db_val args[] = {SB_TEXT(type), id_or_null(conversation_id), id_or_null(client_id),
                               id_or_null(user_id), SB_TEXT(text)};
    int rc = sb_db_exec(db, q_event_insert, args, 5, NULL, err, errlen);
    free(text);
    return rc;
}
