/* Conversations over HTTP: the inbox list with filters and paging, one
 * conversation, status and assignment changes, its interactions, notes and
 * replies (stored with their outbox job; the sender delivers them).
 *
 * Visibility: admins see every conversation; an agent sees those assigned
 * to them, unassigned ones, and those of their teams (the WebSocket layer
 * applies the same rule to events). */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/identity.h"
#include "switchboard/channel.h"
#include "switchboard/mailcompose.h"
#include "switchboard/mime.h"
#include "switchboard/notify.h"
#include "switchboard/outbox.h"
#include "switchboard/sender.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 50
#define PAGE_MAX     200

#define VISIBLE                                                                                    \
    "(? = 1 OR c.assignee_id = ? OR c.assignee_id IS NULL OR c.team_id IN "                        \
    "(SELECT team_id FROM team_members WHERE user_id = ?))"

#define CONV_COLUMNS                                                                               \
    "c.id, c.client_id, cl.name, c.channel_id, ch.kind, ch.name, c.status, c.assignee_id, "        \
    "c.team_id, c.subject, c.last_activity_at, c.unread, c.created_at, c.snoozed_until "

/* -- name: conversations-list
 * One statement per combination of the filters present, built once: with
 * "? IS NULL OR ..." for absent filters MariaDB cannot walk an index in
 * inbox order and sorts every visible conversation (560 ms for 100,000 in
 * bench/inbox; docs/benchmarks.md). The page's ids are picked first in a
 * narrow derived table: with the wide column list the optimiser prefers a
 * filesort to the index walk. STRAIGHT_JOIN keeps conversations the driving
 * table, so the LIMIT stops the walk. Paged by (last_activity_at, id). `q`
 * matches subjects and texts (full-text), client names, and identities
 * normalised the way ingest stores them. */
enum {
    LF_AGENT = 1,      /* visibility clause (not for admins) */
    LF_STATUS = 2,     /* c.status = ? */
    LF_UNASSIGNED = 4, /* c.assignee_id IS NULL */
    LF_ASSIGNEE = 8,   /* c.assignee_id = ? */
    LF_CHANNEL = 16,   /* c.channel_id = ? */
    LF_CURSOR = 32,    /* after the previous page */
    LF_Q = 64,         /* search */
    LF_COUNT = 128
};
static char list_sql[LF_COUNT][2048]; /* the longest is about 1,300 bytes */
static pthread_once_t list_sql_once = PTHREAD_ONCE_INIT;

static void list_sql_build(void)
{
    static const char *const clause[] = {
        " AND (c.assignee_id = ? OR c.assignee_id IS NULL OR c.team_id IN "
        "(SELECT team_id FROM team_members WHERE user_id = ?))",
        " AND c.status = ?",
        " AND c.assignee_id IS NULL",
        " AND c.assignee_id = ?",
        " AND c.channel_id = ?",
        " AND (c.last_activity_at < ? OR (c.last_activity_at = ? AND c.id < ?))",
        " AND (cl.name LIKE ? OR c.subject LIKE ?"
        " OR c.client_id IN (SELECT client_id FROM client_identities WHERE value IN (?, ?))"
        " OR c.id IN (SELECT conversation_id FROM interactions"
        " WHERE MATCH(subject, text) AGAINST (? IN NATURAL LANGUAGE MODE)))",
    };
    for (int f = 0; f < LF_COUNT; f++) {
        char *b = list_sql[f];
        size_t n = (size_t)snprintf(b, sizeof list_sql[f],
                                    "SELECT " CONV_COLUMNS
                                    "FROM (SELECT c.id FROM conversations c STRAIGHT_JOIN "
                                    "clients cl ON cl.id = c.client_id WHERE 1 = 1");
        for (int bit = 0; bit < 7; bit++)
            if (f & (1 << bit))
                n += (size_t)snprintf(b + n, sizeof list_sql[f] - n, "%s", clause[bit]);
        snprintf(b + n, sizeof list_sql[f] - n,
                 " ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ?) page"
                 " JOIN conversations c ON c.id = page.id JOIN clients cl ON cl.id = c.client_id"
                 " JOIN channels ch ON ch.id = c.channel_id"
                 " ORDER BY c.last_activity_at DESC, c.id DESC");
    }
}

/* -- name: conversation-get */
static const char q_get[] =
    "SELECT " CONV_COLUMNS "FROM conversations c JOIN clients cl ON cl.id = c.client_id "
    "JOIN channels ch ON ch.id = c.channel_id WHERE c.id = ? AND " VISIBLE;

/* -- name: conversation-interactions */
static const char q_interactions[] =
    "SELECT id, direction, kind, sender, subject, text, html, meta, delivery_status, flags + 0, "
    "author_user_id, occurred_at FROM interactions "
    "WHERE conversation_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?";

static const char q_set_status[] =
    "UPDATE conversations SET status = ?, resolved_at = IF(? = 'resolved', NOW(6), NULL), "
    "snoozed_until = IF(? = 'snoozed', ?, NULL) WHERE id = ?";
static const char q_set_assignee[] = "UPDATE conversations SET assignee_id = ? WHERE id = ?";
static const char q_set_read[] = "UPDATE conversations SET unread = 0 WHERE id = ?";
static const char q_user_exists[] = "SELECT 1 FROM users WHERE id = ? AND disabled = 0";
static const char q_assignee_of[] = "SELECT assignee_id FROM conversations WHERE id = ? FOR UPDATE";
/* meta is {"mentions": [user ids]} when the note names colleagues (notify.h). */
static const char q_note_insert[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, text, "
    "author_user_id, sender, meta) SELECT id, client_id, channel_id, 'note', 'note', ?, ?, ?, ? "
    "FROM conversations WHERE id = ?";
static const char q_note_touch[] =
    "UPDATE conversations SET last_activity_at = NOW(6) WHERE id = ?";

/* -- name: interaction-get (the shape of one item of the interactions list) */
static const char q_interaction_get[] =
    "SELECT id, direction, kind, sender, subject, text, html, meta, delivery_status, flags + 0, "
    "author_user_id, occurred_at, conversation_id FROM interactions WHERE id = ?";

/* -- name: reply-target
 * Where a reply goes: for Telegram the chat of the client's latest message
 * in this conversation (a group chat is not the user), else the client's
 * newest verified identity of the channel's kind (wa_id, Viber id, e-mail). */
static const char q_reply_target[] =
    "SELECT COALESCE("
    " (SELECT JSON_VALUE(i.meta, '$.telegram.chat_id') FROM interactions i"
    "  WHERE i.conversation_id = ? AND i.direction = 'in' AND ? = 'telegram'"
    "  AND JSON_VALUE(i.meta, '$.telegram.chat_id') IS NOT NULL ORDER BY i.id DESC LIMIT 1),"
    " (SELECT ci.value FROM client_identities ci WHERE ci.client_id = ? AND ci.kind = ?"
    "  AND ci.verified = 1 ORDER BY ci.id DESC LIMIT 1))";

/* -- name: reply-insert
 * message_id, in_reply_to, subject and html are NULL except for e-mail: the
 * Message-ID we generate is stored now, so the client's answer threads into
 * this conversation through ingest's In-Reply-To/References lookup. */
static const char q_reply_insert[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, text, "
    "author_user_id, sender, delivery_status, message_id, in_reply_to, subject, html) "
    "SELECT id, client_id, channel_id, 'out', ?, ?, ?, ?, 'queued', ?, ?, ?, ? "
    "FROM conversations WHERE id = ?";

/* -- name: reply-email-parent
 * The message an e-mail reply answers: the conversation's latest inbound
 * mail from a person (not an auto-reply or a bounce), with the head of its
 * raw message for its References header. */
static const char q_email_parent[] =
    "SELECT i.message_id, i.subject, i.in_reply_to, LEFT(b.data, 65536), i.sender, "
    "UNIX_TIMESTAMP(i.occurred_at), LEFT(i.text, 16384) FROM interactions i "
    "LEFT JOIN blobs b ON b.sha256 = i.raw_sha256 "
    "WHERE i.conversation_id = ? AND i.direction = 'in' AND i.kind = 'email' "
    "AND i.message_id IS NOT NULL AND NOT FIND_IN_SET('auto_reply', i.flags) "
    "AND NOT FIND_IN_SET('bounce', i.flags) ORDER BY i.id DESC LIMIT 1";
/* -- name: reply-channel-from */
static const char q_channel_from[] =
    "SELECT JSON_VALUE(config, '$.from') FROM channels WHERE id = ?";

/* References kept in a reply: the first (the thread's root) and the most
 * recent ones, as RFC 5322 section 3.6.4 suggests when trimming. */
#define REPLY_REFERENCES_MAX 20
/* -- name: reply-touch */
static const char q_reply_touch[] =
    "UPDATE conversations SET last_activity_at = NOW(6), "
    "first_response_at = COALESCE(first_response_at, NOW(6)) WHERE id = ?";

/* A reply's text: more than any messenger takes, less than a wall. */
#define REPLY_TEXT_MAX 65536

static json_t *conv_json(const struct sb_db_rows *r, size_t i)
{
    return json_pack("{s:I,s:{s:I,s:o},s:{s:I,s:o,s:o},s:o,s:o,s:o,s:o,s:o,s:I,s:o,s:o}", "id",
                     (json_int_t)sb_db_cell_int(r, i, 0), "client", "id",
                     (json_int_t)sb_db_cell_int(r, i, 1), "name", sb_json_cell(r, i, 2), "channel",
                     "id", (json_int_t)sb_db_cell_int(r, i, 3), "kind", sb_json_cell(r, i, 4),
                     "name", sb_json_cell(r, i, 5), "status", sb_json_cell(r, i, 6), "assignee_id",
                     sb_json_cell_int(r, i, 7), "team_id", sb_json_cell_int(r, i, 8), "subject",
                     sb_json_cell(r, i, 9), "last_activity_at", sb_json_cell(r, i, 10), "unread",
                     (json_int_t)sb_db_cell_int(r, i, 11), "created_at", sb_json_cell(r, i, 12),
                     "snoozed_until", sb_json_cell(r, i, 13));
}

static int valid_status(const char *s)
{
    return !strcmp(s, "open") || !strcmp(s, "pending") || !strcmp(s, "resolved") ||
           !strcmp(s, "snoozed");
}

void sb_api_conversations_list(struct sb_app *app, struct sb_db *db,
                               const struct sb_http_request *req, struct sb_http_reply *rep)
{
    char status[16] = "", assignee[24] = "", channel[24] = "", cursor[80] = "", q[256] = "";
    char err[256] = "";
    sb_request_query(req, "status", status, sizeof status);
    sb_request_query(req, "assignee", assignee, sizeof assignee);
    sb_request_query(req, "channel", channel, sizeof channel);
    sb_request_query(req, "cursor", cursor, sizeof cursor);
    sb_request_query(req, "q", q, sizeof q);
    if (*status && !valid_status(status)) {
        sb_reply_error(rep, SB_ERR_INVALID, "status must be open, pending, resolved or snoozed");
        return;
    }
    /* assignee: "me", "unassigned" or a user id; absent or "all" = no filter */
    int64_t assignee_id = -1;
    if (!strcmp(assignee, "me"))
        assignee_id = req->user.id;
    else if (!strcmp(assignee, "unassigned"))
        assignee_id = 0;
    else if (*assignee && strcmp(assignee, "all")) {
        char *end;
        assignee_id = strtoll(assignee, &end, 10);
        if (*end || assignee_id <= 0) {
            sb_reply_error(rep, SB_ERR_INVALID,
                           "assignee must be me, unassigned, all or a user id");
            return;
        }
    }
    int64_t channel_id = 0;
    if (*channel) {
        char *end;
        channel_id = strtoll(channel, &end, 10);
        if (*end || channel_id <= 0) {
            sb_reply_error(rep, SB_ERR_INVALID, "channel must be a channel id");
            return;
        }
    }
    /* cursor: "<last_activity_at>_<id>" of the last item of the previous page */
    char cur_time[40] = "";
    long long cur_id = 0;
    if (*cursor) {
        char *us = strrchr(cursor, '_');
        char *end = NULL;
        if (us)
            cur_id = strtoll(us + 1, &end, 10);
        if (!us || !end || *end || cur_id <= 0 || us - cursor >= (long)sizeof cur_time ||
            us - cursor < 19) {
            sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
            return;
        }
        memcpy(cur_time, cursor, (size_t)(us - cursor));
        cur_time[us - cursor] = '\0';
        char *t = strchr(cur_time, 'T');
        if (t)
            *t = ' ';
    }
    struct sb_search_terms t;
    sb_api_search_terms(q, app->cfg->default_region, &t);
    int limit = sb_api_limit(req);
    int admin = req->user.role == SB_ROLE_ADMIN;
    struct sb_db_val a[16];
    size_t na = 0;
    int f = 0;
    if (!admin) {
        f |= LF_AGENT;
        a[na++] = SB_INT(req->user.id);
        a[na++] = SB_INT(req->user.id);
    }
    if (*status) {
        f |= LF_STATUS;
        a[na++] = SB_TEXT(status);
    }
    if (assignee_id == 0) {
        f |= LF_UNASSIGNED;
    } else if (assignee_id > 0) {
        f |= LF_ASSIGNEE;
        a[na++] = SB_INT(assignee_id);
    }
    if (channel_id) {
        f |= LF_CHANNEL;
        a[na++] = SB_INT(channel_id);
    }
    if (*cur_time) {
        f |= LF_CURSOR;
        a[na++] = SB_TEXT(cur_time);
        a[na++] = SB_TEXT(cur_time);
        a[na++] = SB_INT(cur_id);
    }
    if (*q) {
        f |= LF_Q;
        a[na++] = SB_TEXT(t.like);
        a[na++] = SB_TEXT(t.like);
        a[na++] = SB_TEXT(*t.phone ? t.phone : NULL);
        a[na++] = SB_TEXT(*t.email ? t.email : NULL);
        a[na++] = SB_TEXT(q);
    }
    a[na++] = SB_INT(limit);
    pthread_once(&list_sql_once, list_sql_build);
    struct sb_db_rows r;
    int rc = sb_db_exec(db, list_sql[f], a, na, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list conversations", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(items, conv_json(&r, i));
    json_t *next = json_null();
    if ((int)r.nrows == limit) {
        char c[80];
        snprintf(c, sizeof c, "%s_%lld", sb_db_cell(&r, r.nrows - 1, 10),
                 (long long)sb_db_cell_int(&r, r.nrows - 1, 0));
        char *sp = strchr(c, ' ');
        if (sp)
            *sp = 'T';
        next = json_string(c);
    }
    sb_db_rows_free(&r);
    sb_reply_json(rep, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

/* Load one visible conversation; replies 404 itself when there is none. */
static int load_as(struct sb_db *db, const struct sb_http_request *req, struct sb_http_reply *rep,
                   int64_t *id_r, json_t **conv_r, int see_all);

static int load(struct sb_db *db, const struct sb_http_request *req, struct sb_http_reply *rep,
                int64_t *id_r, json_t **conv_r)
{
    return load_as(db, req, rep, id_r, conv_r, req->user.role == SB_ROLE_ADMIN);
}

static int load_as(struct sb_db *db, const struct sb_http_request *req, struct sb_http_reply *rep,
                   int64_t *id_r, json_t **conv_r, int see_all)
{
    char err[256] = "";
    if (sb_request_param_id(req, 0, id_r) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad conversation id");
        return -1;
    }
    struct sb_db_val a[] = {SB_INT(*id_r), SB_INT(see_all), SB_INT(req->user.id),
                            SB_INT(req->user.id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_get, a, 4, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "get conversation", err);
        return -1;
    }
    if (!r.nrows) {
        sb_db_rows_free(&r);
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such conversation");
        return -1;
    }
    if (conv_r)
        *conv_r = conv_json(&r, 0);
    sb_db_rows_free(&r);
    return 0;
}

void sb_api_conversations_get(struct sb_app *app, struct sb_db *db,
                              const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    json_t *conv;
    if (load(db, req, rep, &id, &conv) == 0)
        sb_reply_json(rep, 200, conv);
}

static int patch_body(struct sb_db *db, int64_t id, const json_t *body, int64_t user_id,
                      const char *user_name, char *err, size_t errlen)
{
    /* Statement errors land here, not in `err`: MariaDB's wording is for
     * the log, never for the client. */
    char dberr[256] = "";
    const char *key;
    json_t *v;
    int rc = SB_OK;
    json_object_foreach((json_t *)body, key, v)
    {
        if (!strcmp(key, "status")) {
            const char *s = json_string_value(v);
            if (!s || !valid_status(s))
                return sb_fail(err, errlen, SB_ERR_INVALID,
                               "\"status\" must be open, pending, resolved or snoozed");
            json_t *until = json_object_get(body, "snoozed_until");
            if (!strcmp(s, "snoozed") && !json_is_string(until))
                return sb_fail(err, errlen, SB_ERR_INVALID,
                               "snoozing needs \"snoozed_until\": \"YYYY-MM-DD HH:MM:SS\" (UTC)");
            struct sb_db_val a[] = {SB_TEXT(s), SB_TEXT(s), SB_TEXT(s),
                                    SB_TEXT(json_string_value(until)), SB_INT(id)};
            rc = sb_db_exec(db, q_set_status, a, 5, NULL, dberr, sizeof dberr);
        } else if (!strcmp(key, "assignee_id")) {
            if (!json_is_null(v) && !json_is_integer(v))
                return sb_fail(err, errlen, SB_ERR_INVALID,
                               "\"assignee_id\" must be a user id or null");
            if (json_is_integer(v)) {
                struct sb_db_val u[] = {SB_INT(json_integer_value(v))};
                struct sb_db_rows r;
                rc = sb_db_exec(db, q_user_exists, u, 1, &r, dberr, sizeof dberr);
                size_t n = r.nrows;
                sb_db_rows_free(&r);
                if (rc == SB_OK && !n)
                    return sb_fail(err, errlen, SB_ERR_INVALID, "no active user %lld",
                                   (long long)json_integer_value(v));
            }
            struct sb_db_val a[] = {json_is_integer(v) ? SB_INT(json_integer_value(v)) : SB_NULL,
                                    SB_INT(id)};
            /* Only a change of hands is news to the new assignee. */
            int64_t before = 0;
            if (rc == SB_OK) {
                struct sb_db_val c[] = {SB_INT(id)};
                struct sb_db_rows r;
                rc = sb_db_exec(db, q_assignee_of, c, 1, &r, dberr, sizeof dberr);
                before = rc == SB_OK && r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
                sb_db_rows_free(&r);
            }
            if (rc == SB_OK)
                rc = sb_db_exec(db, q_set_assignee, a, 2, NULL, dberr, sizeof dberr);
            if (rc == SB_OK && json_is_integer(v) && json_integer_value(v) != before)
                rc = sb_notify_assigned(db, id, json_integer_value(v), user_id, user_name, dberr,
                                        sizeof dberr);
        } else if (!strcmp(key, "unread")) {
            if (!json_is_integer(v) || json_integer_value(v) != 0)
                return sb_fail(err, errlen, SB_ERR_INVALID, "\"unread\" can only be set to 0");
            struct sb_db_val a[] = {SB_INT(id)};
            rc = sb_db_exec(db, q_set_read, a, 1, NULL, dberr, sizeof dberr);
            if (rc == SB_OK) /* read it: its "new message" notification is read too */
                rc = sb_notify_conversation_read(db, id, user_id, dberr, sizeof dberr);
        } else if (strcmp(key, "snoozed_until")) {
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "unknown field \"%s\" (status, assignee_id, snoozed_until, unread)",
                           key);
        }
        if (rc == SB_ERR_INVALID || rc == SB_ERR_DB) /* e.g. a snoozed_until MariaDB cannot read */
            return sb_fail(err, errlen, SB_ERR_INVALID, "invalid value for \"%s\"", key);
        if (rc != SB_OK)
            return sb_fail(err, errlen, rc, "%s", dberr);
    }
    return sb_event_append(db, "conversation.updated", id, 0, user_id,
                           json_pack("{s:I,s:O}", "id", (json_int_t)id, "changes", body), err,
                           errlen);
}

void sb_api_conversations_patch(struct sb_app *app, struct sb_db *db,
                                const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (load(db, req, rep, &id, NULL) != 0)
        return;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    char err[256] = "";
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = patch_body(db, id, body, req->user.id, req->user.name, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, sizeof err);
    else
        sb_db_rollback(db);
    json_decref(body);
    if (rc == SB_ERR_INVALID) {
        sb_reply_error(rep, rc, "%s", err);
        return;
    }
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "update conversation", err);
        return;
    }
    sb_audit(db, req->user.id, "conversation.update", "conversation", id, req->peer);
    /* The caller may just have assigned it away from themselves; they still
     * get the result of their own change. */
    json_t *conv;
    if (load_as(db, req, rep, &id, &conv, 1) == 0)
        sb_reply_json(rep, 200, conv);
}

static json_t *interaction_json(const struct sb_db_rows *r, size_t i)
{
    json_t *flags = sb_json_flags(sb_db_cell_int(r, i, 9));
    const char *meta = sb_db_cell(r, i, 7);
    json_t *m = meta ? json_loads(meta, 0, NULL) : NULL;
    return json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                     (json_int_t)sb_db_cell_int(r, i, 0), "direction", sb_json_cell(r, i, 1),
                     "kind", sb_json_cell(r, i, 2), "sender", sb_json_cell(r, i, 3), "subject",
                     sb_json_cell(r, i, 4), "text", sb_json_cell(r, i, 5), "html",
                     sb_json_cell(r, i, 6), "meta", m ? m : json_null(), "delivery_status",
                     sb_json_cell(r, i, 8), "flags", flags, "author_user_id",
                     sb_json_cell_int(r, i, 10), "occurred_at", sb_json_cell(r, i, 11));
}

void sb_api_conversations_interactions(struct sb_app *app, struct sb_db *db,
                                       const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (load(db, req, rep, &id, NULL) != 0)
        return;
    char cursor[24] = "", err[256] = "";
    long long cur = 0;
    if (sb_request_query(req, "cursor", cursor, sizeof cursor) == 0 && *cursor) {
        char *end;
        cur = strtoll(cursor, &end, 10);
        if (*end || cur <= 0) {
            sb_reply_error(rep, SB_ERR_INVALID, "bad cursor");
            return;
        }
    }
    int limit = sb_api_limit(req);
    struct sb_db_val a[] = {SB_INT(id), cur ? SB_INT(cur) : SB_NULL, SB_INT(cur), SB_INT(limit)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_interactions, a, 4, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list interactions", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++) {
        json_array_append_new(items, interaction_json(&r, i));
    }
    int64_t last = r.nrows ? sb_db_cell_int(&r, r.nrows - 1, 0) : 0;
    json_t *next = (int)r.nrows == limit ? json_sprintf("%lld", (long long)last) : json_null();
    sb_db_rows_free(&r);
    sb_reply_json(rep, 200, json_pack("{s:o,s:o}", "items", items, "next_cursor", next));
}

void sb_api_conversations_note(struct sb_app *app, struct sb_db *db,
                               const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    json_t *conv;
    if (load(db, req, rep, &id, &conv) != 0)
        return;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK) {
        json_decref(conv);
        return;
    }
    const char *text = json_string_value(json_object_get(body, "text"));
    char err[256] = "";
    json_t *mentions = NULL;
    char *meta = NULL;
    if (!text || !*text) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"text\" is required");
        goto out;
    }
    if (sb_mentions_parse(db, json_object_get(body, "mentions"), id, &mentions, rep) != 0)
        goto out;
    if (json_array_size(mentions)) {
        json_t *m = json_pack("{s:O}", "mentions", mentions);
        meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
        json_decref(m);
        if (!meta) {
            sb_reply_error(rep, SB_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    struct sb_db_rows r;
    struct sb_db_val a[] = {SB_TEXT(text), SB_INT(req->user.id), SB_TEXT(req->user.name),
                            SB_TEXT(meta), SB_INT(id)};
    struct sb_db_val c[] = {SB_INT(id)};
    int64_t client_id = json_integer_value(json_object_get(json_object_get(conv, "client"), "id"));
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_note_insert, a, 5, &r, err, sizeof err);
    int64_t note_id = rc == SB_OK ? (int64_t)r.insert_id : 0;
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_note_touch, c, 1, NULL, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_event_append(db, "interaction.created", id, client_id, req->user.id,
                             json_pack("{s:I,s:I,s:I,s:s,s:s,s:s,s:I}", "id", (json_int_t)note_id,
                                       "conversation_id", (json_int_t)id, "client_id",
                                       (json_int_t)client_id, "kind", "note", "direction", "note",
                                       "preview", text, "author_user_id", (json_int_t)req->user.id),
                             err, sizeof err);
    if (rc == SB_OK)
        rc = sb_mentions_notify(db, mentions, id, note_id, req->user.id, req->user.name, text, err,
                                sizeof err);
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, sizeof err);
    else
        sb_db_rollback(db);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "add note", err);
        goto out;
    }
    sb_reply_json(rep, 201,
                  json_pack("{s:I,s:I,s:s,s:s,s:s,s:I,s:o}", "id", (json_int_t)note_id,
                            "conversation_id", (json_int_t)id, "direction", "note", "kind", "note",
                            "text", text, "author_user_id", (json_int_t)req->user.id, "meta",
                            meta ? json_pack("{s:O}", "mentions", mentions) : json_null()));
out:
    free(meta);
    json_decref(mentions);
    json_decref(body);
    json_decref(conv);
}

/* Reply with the interaction as stored (202: accepted, not yet delivered). */
static void reply_interaction(struct sb_db *db, int64_t id, struct sb_http_reply *rep)
{
    char err[256] = "";
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_interaction_get, a, 1, &r, err, sizeof err);
    if (rc != SB_OK || !r.nrows) {
        sb_db_rows_free(&r);
        sb_reply_failure(rep, rc != SB_OK ? rc : SB_ERR_INTERNAL, "load reply", err);
        return;
    }
    json_t *o = interaction_json(&r, 0);
    json_object_set_new(o, "conversation_id", sb_json_cell_int(&r, 0, 12));
    sb_db_rows_free(&r);
    sb_reply_json(rep, 202, o);
}

/* The reply's interaction, its outbox job, the conversation's activity and
 * the event, in the caller's transaction. *dup_r is set (and nothing
 * written) when the idempotency key was already used. */
static int reply_store(struct sb_db *db, const struct sb_http_request *req, int64_t conv_id,
                       int64_t client_id, int64_t channel_id, const char *kind,
                       const json_t *payload, const char *key, int64_t *id_r, int64_t *dup_r,
                       char *err, size_t errlen)
{
    const char *ikind = !strcmp(kind, "email") ? "email" : "message";
    const char *text = json_string_value(json_object_get(payload, "text"));
    struct sb_db_val a[] = {SB_TEXT(ikind),
                            SB_TEXT(text),
                            SB_INT(req->user.id),
                            SB_TEXT(req->user.name),
                            SB_TEXT(json_string_value(json_object_get(payload, "message_id"))),
                            SB_TEXT(json_string_value(json_object_get(payload, "in_reply_to"))),
                            SB_TEXT(json_string_value(json_object_get(payload, "subject"))),
                            SB_TEXT(json_string_value(json_object_get(payload, "html"))),
                            SB_INT(conv_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_reply_insert, a, 9, &r, err, errlen);
    *id_r = rc == SB_OK ? (int64_t)r.insert_id : 0;
    sb_db_rows_free(&r);
    if (rc != SB_OK)
        return rc;
    int64_t job;
    rc = sb_outbox_enqueue(db, "reply", channel_id, *id_r, payload, key, &job, dup_r, err, errlen);
    struct sb_db_val c[] = {SB_INT(conv_id)};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_reply_touch, c, 1, NULL, err, errlen);
    if (rc == SB_OK)
        rc = sb_event_append(db, "interaction.created", conv_id, client_id, req->user.id,
                             json_pack("{s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:I}", "id", (json_int_t)*id_r,
                                       "conversation_id", (json_int_t)conv_id, "client_id",
                                       (json_int_t)client_id, "kind", ikind, "direction", "out",
                                       "delivery_status", "queued", "preview", text,
                                       "author_user_id", (json_int_t)req->user.id),
                             err, errlen);
    return rc;
}

/* -- Per-kind reply payloads ---------------------------------------------------
 * Everything a channel adapter needs beyond "to" and "text" is read here, at
 * enqueue time, and written into the outbox payload: adapters read no
 * database, and a job sent an hour later still says what the agent saw. */

/* The parent's References as its raw header says, then its own id; at most
 * REPLY_REFERENCES_MAX, keeping the first. */
static int email_references(const struct sb_db_rows *r, json_t *refs)
{
    const char *head = sb_db_cell(r, 0, 3);
    const char *mid = sb_db_cell(r, 0, 0);
    struct sb_inbound *in = NULL;
    char err[128] = "";
    if (head &&
        sb_mime_parse((const unsigned char *)head, r->lens[3], &in, err, sizeof err) != SB_OK)
        return SB_ERR_NOMEM;
    const char *const *v = in ? (const char *const *)in->references : NULL;
    size_t n = in ? in->nreferences : 0;
    const char *irt = sb_db_cell(r, 0, 2);
    if (!n && irt) { /* no raw or no References: its In-Reply-To at least */
        v = &irt;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && n - i > REPLY_REFERENCES_MAX - 2)
            continue;
        if (strcmp(v[i], mid) && json_array_append_new(refs, json_string(v[i])) != 0)
            break;
    }
    sb_inbound_free(&in);
    return json_array_append_new(refs, json_string(mid)) == 0 ? SB_OK : SB_ERR_NOMEM;
}

static int email_reply_prepare(struct sb_db *db, int64_t conv_id, int64_t channel_id,
                               const json_t *conv, const json_t *body, json_t *payload, char *err,
                               size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(conv_id)}, c[] = {SB_INT(channel_id)};
    struct sb_db_rows r = {0}, f = {0};
    int rc = sb_db_exec(db, q_email_parent, a, 1, &r, err, errlen);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_channel_from, c, 1, &f, err, errlen);
    char dom[256] = "", mid[512];
    if (rc == SB_OK && f.nrows)
        sb_mail_addr_domain(sb_db_cell(&f, 0, 0), dom, sizeof dom);
    sb_mail_message_id(dom, mid, sizeof mid);
    const char *subject = json_string_value(json_object_get(body, "subject"));
    if (!subject || !*subject)
        subject = r.nrows && sb_db_cell(&r, 0, 1)
                      ? sb_db_cell(&r, 0, 1)
                      : json_string_value(json_object_get(conv, "subject"));
    char *re = sb_mail_reply_subject(subject);
    /* The answered mail is quoted as a mail client would, unless the agent
     * leaves it out ("quote": false); mailcompose writes both parts. */
    struct sb_mail_quote q = {0};
    if (r.nrows && !json_is_false(json_object_get(body, "quote"))) {
        q.author = sb_db_cell(&r, 0, 4);
        q.date = sb_db_cell(&r, 0, 5) ? (time_t)sb_db_cell_int(&r, 0, 5) : 0;
        q.text = sb_db_cell(&r, 0, 6);
    }
    char *text = NULL, *html = NULL;
    if (rc == SB_OK)
        rc = sb_mail_reply_quote(json_string_value(json_object_get(payload, "text")), &q, &text,
                                 &html, err, errlen);
    json_t *refs = json_array();
    if (rc == SB_OK && (!re || !refs))
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (rc == SB_OK && r.nrows) {
        rc = email_references(&r, refs);
        if (rc == SB_OK &&
            (json_object_set_new(payload, "in_reply_to", json_string(sb_db_cell(&r, 0, 0))) ||
             json_object_set(payload, "references", refs)))
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    if (rc == SB_OK && (json_object_set_new(payload, "subject", json_string(re)) ||
                        json_object_set_new(payload, "text", json_string(text)) ||
                        json_object_set_new(payload, "html", json_string(html)) ||
                        json_object_set_new(payload, "message_id", json_string(mid))))
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    json_decref(refs);
    free(re);
    free(html);
    free(text);
    sb_db_rows_free(&r);
    sb_db_rows_free(&f);
    return rc;
}

/* One row per kind whose replies need more than "to" and "text". */
static const struct {
    const char *kind;
    int (*prepare)(struct sb_db *db, int64_t conv_id, int64_t channel_id, const json_t *conv,
                   const json_t *body, json_t *payload, char *err, size_t errlen);
} reply_preparers[] = {
    {"email", email_reply_prepare},
};

static int reply_payload(struct sb_db *db, int64_t conv_id, int64_t channel_id, const char *kind,
                         const json_t *conv, const json_t *body, const char *to, const char *text,
                         json_t **payload_r, char *err, size_t errlen)
{
    json_t *p = *payload_r = json_pack("{s:s,s:s}", "to", to, "text", text);
    if (!p)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sizeof reply_preparers / sizeof *reply_preparers; i++)
        if (!strcmp(kind, reply_preparers[i].kind))
            return reply_preparers[i].prepare(db, conv_id, channel_id, conv, body, p, err, errlen);
    return SB_OK;
}

void sb_api_conversations_reply(struct sb_app *app, struct sb_db *db,
                                const struct sb_http_request *req, struct sb_http_reply *rep)
{
    int64_t id;
    json_t *conv, *body = NULL;
    if (load(db, req, rep, &id, &conv) != 0)
        return;
    if (sb_request_json(req, rep, &body) != SB_OK) {
        json_decref(conv);
        return;
    }
    char err[512] = "", key[192] = "", hdr[160];
    const char *text = json_string_value(json_object_get(body, "text"));
    json_t *chan = json_object_get(conv, "channel");
    const char *kind = json_string_value(json_object_get(chan, "kind"));
    const struct sb_channel_kind *k = sb_channel_kind_find(kind);
    int64_t channel_id = json_integer_value(json_object_get(chan, "id"));
    int64_t client_id = json_integer_value(json_object_get(json_object_get(conv, "client"), "id"));
    /* A double-click or a retried request carries the same key and gets the
     * first reply back instead of a second message. */
    const char *client_key = json_string_value(json_object_get(body, "client_id"));
    if (sb_request_header(req, "idempotency-key", hdr, sizeof hdr) == 0 && *hdr)
        client_key = hdr;
    if (client_key && (!*client_key || strlen(client_key) > 128)) {
        sb_reply_error(rep, SB_ERR_INVALID, "Idempotency-Key / client_id: 1 to 128 characters");
        goto out;
    }
    if (client_key)
        snprintf(key, sizeof key, "reply:%lld:%s", (long long)id, client_key);
    if (!text || !*text) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"text\" is required");
        goto out;
    }
    if (strlen(text) > REPLY_TEXT_MAX) {
        sb_reply_error(rep, SB_ERR_TOO_LARGE, "\"text\" is longer than %d bytes", REPLY_TEXT_MAX);
        goto out;
    }
    /* E-mail's own subject: one header line, refused here rather than by
     * the composer when the job runs. */
    json_t *subj = json_object_get(body, "subject");
    if (subj && !json_is_null(subj) &&
        (!json_is_string(subj) || strpbrk(json_string_value(subj), "\r\n") ||
         strlen(json_string_value(subj)) > 900)) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"subject\" must be one line of text");
        goto out;
    }
    json_t *quote = json_object_get(body, "quote");
    if (quote && !json_is_boolean(quote)) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"quote\" must be true or false");
        goto out;
    }
    if (!k || !k->send_prepare) {
        sb_reply_error_status(rep, 422, "cannot_send",
                              "replies cannot be sent through this channel; add a note instead");
        goto out;
    }
    int64_t dup = 0, iid = 0;
    int rc = SB_OK;
    if (*key && (rc = sb_outbox_find_key(db, key, &dup, err, sizeof err)) == SB_OK && dup) {
        reply_interaction(db, dup, rep);
        goto out;
    }
    struct sb_db_val t[] = {SB_INT(id), SB_TEXT(kind), SB_INT(client_id), SB_TEXT(kind)};
    struct sb_db_rows r = {0};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_reply_target, t, 4, &r, err, sizeof err);
    const char *to = rc == SB_OK && r.nrows ? sb_db_cell(&r, 0, 0) : NULL;
    if (rc == SB_OK && !to) {
        sb_db_rows_free(&r);
        sb_reply_error_status(rep, 422, "no_recipient",
                              "the client has no address on this channel to reply to");
        goto out;
    }
    json_t *payload = NULL;
    if (rc == SB_OK)
        rc = reply_payload(db, id, channel_id, kind, conv, body, to, text, &payload, err,
                           sizeof err);
    if (rc == SB_OK)
        rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = reply_store(db, req, id, client_id, channel_id, kind, payload, *key ? key : NULL, &iid,
                         &dup, err, sizeof err);
    json_decref(payload);
    sb_db_rows_free(&r);
    if (rc == SB_OK) {
        rc = sb_db_commit(db, err, sizeof err);
    } else {
        sb_db_rollback(db);
        if (rc == SB_ERR_EXISTS && dup) { /* the same key, committed meanwhile */
            reply_interaction(db, dup, rep);
            goto out;
        }
    }
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "store reply", err);
        goto out;
    }
    sb_sender_wake(app->sender);
    reply_interaction(db, iid, rep);
out:
    json_decref(body);
    json_decref(conv);
}

/* A failed reply sent again (the agent's "retry"): same interaction, its
 * job queued anew. */
void sb_api_conversations_retry(struct sb_app *app, struct sb_db *db,
                                const struct sb_http_request *req, struct sb_http_reply *rep)
{
    int64_t id, iid;
    json_t *conv;
    if (load(db, req, rep, &id, &conv) != 0)
        return;
    int64_t client_id = json_integer_value(json_object_get(json_object_get(conv, "client"), "id"));
    json_decref(conv);
    if (sb_request_param_id(req, 1, &iid) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "bad interaction id");
        return;
    }
    char err[256] = "";
    int done = 0;
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_outbox_requeue_reply(db, id, iid, &done, err, sizeof err);
    if (rc == SB_OK && done)
        rc = sb_event_append(
            db, "interaction.updated", id, client_id, req->user.id,
            json_pack("{s:I,s:s}", "id", (json_int_t)iid, "delivery_status", "queued"), err,
            sizeof err);
    if (rc == SB_OK && done)
        rc = sb_db_commit(db, err, sizeof err);
    else
        sb_db_rollback(db);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "retry reply", err);
        return;
    }
    if (!done) {
        sb_reply_error_status(rep, 409, "not_failed",
                              "only a failed reply of this conversation can be retried");
        return;
    }
    sb_sender_wake(app->sender);
    reply_interaction(db, iid, rep);
}
