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

/* ---- assignments, inbound messages, preferences ---------------------------- */

static const char q_prefs_get[] = "SELECT notify_assigned, notify_message FROM users WHERE id = ?";
static const char q_prefs_set[] =
    "UPDATE users SET notify_assigned = ?, notify_message = ? WHERE id = ?";

/* -- name: notification-assigned
 * The row only when the assignee is active and wants it: one statement
 * decides and writes. */
static const char q_assigned_insert[] =
    "INSERT INTO notifications (user_id, kind, conversation_id, actor_user_id) "
    "SELECT u.id, 'assigned', ?, ? FROM users u "
    "WHERE u.id = ? AND u.disabled = 0 AND u.notify_assigned = 1";
static const char q_conv_client[] =
    "SELECT cl.name, c.subject FROM conversations c LEFT JOIN clients cl ON cl.id = c.client_id "
    "WHERE c.id = ?";

/* -- name: notification-message-upsert
 * One row per conversation of the batch whose assignee wants it; the
 * unique (user_id, unread_message) key (schema/010) turns a second unread
 * into a refresh of the first. The newest interaction wins (MAX). */
static const char q_message_upsert[] =
    "INSERT INTO notifications (user_id, kind, conversation_id, interaction_id) "
    "SELECT c.assignee_id, 'message', c.id, MAX(j.iid) "
    "FROM JSON_TABLE(?, '$[*]' COLUMNS (conv BIGINT UNSIGNED PATH '$[0]', "
    "iid BIGINT UNSIGNED PATH '$[1]')) j "
    "STRAIGHT_JOIN conversations c ON c.id = j.conv "
    "STRAIGHT_JOIN users u ON u.id = c.assignee_id "
    "WHERE u.disabled = 0 AND u.notify_message = 1 GROUP BY c.id, c.assignee_id "
    "ON DUPLICATE KEY UPDATE interaction_id = GREATEST(interaction_id, VALUES(interaction_id)), "
    "created_at = CURRENT_TIMESTAMP(6)";

/* -- name: notification-message-events
 * The events of the rows just written or refreshed, found again by that
 * same key (the assignee's one unread row of each conversation). */
static const char q_message_events[] =
    "INSERT INTO events (type, conversation_id, user_id, data) "
    "SELECT 'notification.created', n.conversation_id, n.user_id, "
    "JSON_OBJECT('id', n.id, 'kind', 'message', 'conversation_id', n.conversation_id, "
    "'interaction_id', n.interaction_id, 'preview', LEFT(i.text, 200), 'client_name', cl.name) "
    "FROM (SELECT DISTINCT j.conv FROM JSON_TABLE(?, '$[*]' COLUMNS (conv BIGINT UNSIGNED "
    "PATH '$[0]')) j) d "
    "STRAIGHT_JOIN conversations c ON c.id = d.conv "
    "STRAIGHT_JOIN notifications n ON n.user_id = c.assignee_id AND n.unread_message = c.id "
    "LEFT JOIN interactions i ON i.id = n.interaction_id "
    "LEFT JOIN clients cl ON cl.id = c.client_id "
    "ORDER BY n.id";

static const char q_conversation_read[] = "UPDATE notifications SET read_at = UTC_TIMESTAMP(6) "
                                          "WHERE user_id = ? AND unread_message = ?";

int sb_notify_prefs_get(struct sb_db *db, int64_t user_id, struct sb_notify_prefs *p, char *err,
                        size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(user_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_prefs_get, a, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!r.nrows) {
        sb_db_rows_free(&r);
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no user %lld", (long long)user_id);
    }
    p->assigned = sb_db_cell_int(&r, 0, 0) != 0;
    p->message = sb_db_cell_int(&r, 0, 1) != 0;
    sb_db_rows_free(&r);
    return SB_OK;
}

int sb_notify_prefs_parse(const json_t *notify, struct sb_notify_prefs *p, char *err, size_t errlen)
{
    if (!json_is_object(notify))
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "\"notify\" must be an object {\"assigned\": bool, \"message\": bool}");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)notify, key, v)
    {
        int *slot = !strcmp(key, "assigned")  ? &p->assigned
                    : !strcmp(key, "message") ? &p->message
                                              : NULL;
        if (!slot)
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "unknown notification kind \"%s\" (assigned, message)", key);
        if (!json_is_boolean(v))
            return sb_fail(err, errlen, SB_ERR_INVALID, "\"notify.%s\" must be true or false", key);
        *slot = json_is_true(v);
    }
    return SB_OK;
}

int sb_notify_prefs_set(struct sb_db *db, int64_t user_id, const struct sb_notify_prefs *p,
                        char *err, size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(p->assigned), SB_INT(p->message), SB_INT(user_id)};
    return sb_db_exec(db, q_prefs_set, a, 3, NULL, err, errlen);
}

json_t *sb_notify_prefs_json(const struct sb_notify_prefs *p)
{
    return json_pack("{s:b,s:b}", "assigned", p->assigned, "message", p->message);
}

int sb_notify_assigned(struct sb_db *db, int64_t conv_id, int64_t assignee_id, int64_t actor_id,
                       const char *actor_name, char *err, size_t errlen)
{
    if (assignee_id <= 0 || assignee_id == actor_id)
        return SB_OK;
    struct sb_db_val a[] = {SB_INT(conv_id), SB_INT(actor_id), SB_INT(assignee_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_assigned_insert, a, 3, &r, err, errlen);
    int64_t nid = (int64_t)r.insert_id;
    uint64_t n = r.affected;
    sb_db_rows_free(&r);
    if (rc != SB_OK || !n)
        return rc;
    struct sb_db_val c[] = {SB_INT(conv_id)};
    rc = sb_db_exec(db, q_conv_client, c, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    json_t *data =
        json_pack("{s:I,s:s,s:I,s:{s:I,s:s?},s:o,s:o}", "id", (json_int_t)nid, "kind", "assigned",
                  "conversation_id", (json_int_t)conv_id, "actor", "id", (json_int_t)actor_id,
                  "name", actor_name, "client_name", r.nrows ? sb_json_cell(&r, 0, 0) : json_null(),
                  "preview", r.nrows ? sb_json_cell(&r, 0, 1) : json_null());
    sb_db_rows_free(&r);
    return sb_event_append(db, "notification.created", conv_id, 0, assignee_id, data, err, errlen);
}

int sb_notify_inbound(struct sb_db *db, const char *pairs, char *err, size_t errlen)
{
    struct sb_db_val a[] = {SB_TEXT(pairs)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_message_upsert, a, 1, &r, err, errlen);
    uint64_t n = r.affected;
    sb_db_rows_free(&r);
    if (rc != SB_OK || !n)
        return rc;
    return sb_db_exec(db, q_message_events, a, 1, NULL, err, errlen);
}

int sb_notify_conversation_read(struct sb_db *db, int64_t conv_id, int64_t user_id, char *err,
                                size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(user_id), SB_INT(conv_id)};
    return sb_db_exec(db, q_conversation_read, a, 2, NULL, err, errlen);
}
