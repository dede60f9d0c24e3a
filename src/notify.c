/* Mentions and the notifications they make (notify.h). */
#include "switchboard/notify.h"
#include "switchboard/apiutil.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"

#include <stdio.h>
#include <string.h>

/* -- name: agents-list
 * can_see repeats the conversations rule of api_conversations.c (VISIBLE)
 * for each user instead of the caller: admins see everything, an agent the
 * unassigned conversations, their own and their teams'. Without a
 * conversation (NULL) the join finds nothing and can_see is 1. */
static const char q_agents[] =
    "SELECT u.id, u.name, u.role, (u.role = 'admin' OR c.assignee_id IS NULL OR "
    "c.assignee_id = u.id OR c.team_id IN (SELECT tm.team_id FROM team_members tm "
    "WHERE tm.user_id = u.id)) FROM users u LEFT JOIN conversations c ON c.id = ? "
    "WHERE u.disabled = 0 AND u.role IN ('admin', 'agent') ORDER BY u.name, u.id LIMIT 1000";

/* -- name: notification-insert */
static const char q_notification_insert[] =
    "INSERT INTO notifications (user_id, kind, conversation_id, interaction_id, actor_user_id) "
    "VALUES (?, 'mention', ?, ?, ?)";

/* Previews in events and lists: enough to recognise the note. */
#define PREVIEW_MAX 200

int sb_agents_list(struct sb_db *db, int64_t conv_id, json_t **items_r, char *err, size_t errlen)
{
    *items_r = NULL;
    struct sb_db_val a[] = {conv_id > 0 ? SB_INT(conv_id) : SB_NULL};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_agents, a, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    json_t *items = json_array();
    for (size_t i = 0; items && i < r.nrows; i++) {
        json_t *o = json_pack("{s:I,s:o,s:o}", "id", (json_int_t)sb_db_cell_int(&r, i, 0), "name",
                              sb_json_cell(&r, i, 1), "role", sb_json_cell(&r, i, 2));
        if (o && conv_id > 0)
            json_object_set_new(o, "can_see", json_boolean(sb_db_cell_int(&r, i, 3) != 0));
        if (!o || json_array_append_new(items, o) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    sb_db_rows_free(&r);
    if (!items)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    *items_r = items;
    return SB_OK;
}

static json_t *find_agent(const json_t *agents, int64_t id)
{
    size_t i;
    json_t *a;
    json_array_foreach(agents, i, a)
    {
        if (json_integer_value(json_object_get(a, "id")) == id)
            return a;
    }
    return NULL;
}

static int contains_id(const json_t *ids, int64_t id)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (json_integer_value(v) == id)
            return 1;
    }
    return 0;
}

int sb_mentions_parse(struct sb_db *db, const json_t *mentions, int64_t conv_id, json_t **ids_r,
                      struct sb_http_reply *rep)
{
    *ids_r = NULL;
    json_t *ids = json_array();
    if (!ids) {
        sb_reply_error(rep, SB_ERR_NOMEM, "out of memory");
        return -1;
    }
    if (!mentions || json_is_null(mentions)) {
        *ids_r = ids;
        return 0;
    }
    size_t i;
    json_t *v;
    int ok = json_is_array(mentions) && json_array_size(mentions) <= SB_MENTIONS_MAX;
    json_array_foreach(mentions, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            ok = 0;
    }
    if (!ok) {
        json_decref(ids);
        sb_reply_error(rep, SB_ERR_INVALID, "\"mentions\" must be an array of at most %d user ids",
                       SB_MENTIONS_MAX);
        return -1;
    }
    if (!json_array_size(mentions)) {
        *ids_r = ids;
        return 0;
    }
    json_t *agents;
    char err[256] = "";
    int rc = sb_agents_list(db, conv_id, &agents, err, sizeof err);
    if (rc != SB_OK) {
        json_decref(ids);
        sb_reply_failure(rep, rc, "list agents", err);
        return -1;
    }
    char msg[512] = "";
    const char *code = NULL;
    json_array_foreach(mentions, i, v)
    {
        int64_t id = json_integer_value(v);
        json_t *a = find_agent(agents, id);
        if (!a) {
            code = "unknown_user";
            snprintf(msg, sizeof msg, "user %lld is not an active agent or admin", (long long)id);
            break;
        }
        if (!json_is_true(json_object_get(a, "can_see"))) {
            code = "mention_not_visible";
            snprintf(msg, sizeof msg,
                     "%s cannot see this conversation; assign it to them (or unassign it) "
                     "before mentioning them",
                     json_string_value(json_object_get(a, "name")));
            break;
        }
        if (!contains_id(ids, id))
            json_array_append_new(ids, json_integer(id));
    }
    json_decref(agents);
    if (code) {
        json_decref(ids);
        sb_reply_error_status(rep, 422, code, msg);
        return -1;
    }
    *ids_r = ids;
    return 0;
}

/* The first PREVIEW_MAX bytes of `text`, cut before a UTF-8 continuation
 * byte so the JSON stays valid text. */
static json_t *preview(const char *text)
{
    size_t n = text ? strlen(text) : 0;
    if (n > PREVIEW_MAX) {
        n = PREVIEW_MAX;
        while (n && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    return json_stringn(text ? text : "", n);
}

int sb_mentions_notify(struct sb_db *db, const json_t *ids, int64_t conv_id, int64_t interaction_id,
                       int64_t actor_id, const char *actor_name, const char *text, char *err,
                       size_t errlen)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        int64_t uid = json_integer_value(v);
        if (uid == actor_id) /* naming yourself tells you nothing */
            continue;
        struct sb_db_val a[] = {SB_INT(uid), SB_INT(conv_id), SB_INT(interaction_id),
                                SB_INT(actor_id)};
        struct sb_db_rows r;
        int rc = sb_db_exec(db, q_notification_insert, a, 4, &r, err, errlen);
        int64_t nid = (int64_t)r.insert_id;
        sb_db_rows_free(&r);
        if (rc != SB_OK)
            return rc;
        /* events.user_id is the recipient here, not the actor: that is what
         * routes a notification.* event to one user (ws.c). */
        rc = sb_event_append(db, "notification.created", conv_id, 0, uid,
                             json_pack("{s:I,s:s,s:I,s:I,s:{s:I,s:s?},s:o}", "id", (json_int_t)nid,
                                       "kind", "mention", "conversation_id", (json_int_t)conv_id,
                                       "interaction_id", (json_int_t)interaction_id, "actor", "id",
                                       (json_int_t)actor_id, "name", actor_name, "preview",
                                       preview(text)),
                             err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    return SB_OK;
}
