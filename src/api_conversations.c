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
#include "switchboard/attachments.h"
#include "switchboard/auth.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/identity.h"
#include "switchboard/log.h"
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

#define VISIBLE SB_SQL_CONV_VISIBLE /* apiutil.h */

#define CONV_COLUMNS                                                                               \
    "c.id, c.client_id, cl.name, c.channel_id, ch.kind, ch.name, c.status, c.assignee_id, "        \
    "c.team_id, c.subject, c.last_activity_at, c.unread, c.created_at, c.snoozed_until "

/* -- name: conversations-list, conversations-counts
 * One statement per combination of the filters present, built on first use
 * and kept (each is still prepared once and cached per connection): with
 * "? IS NULL OR ..." for absent filters MariaDB cannot walk an index in
 * inbox order and sorts every visible conversation (560 ms for 100,000 in
 * bench/inbox; docs/benchmarks.md). The page's ids are picked first in a
 * narrow derived table: with the wide column list the optimiser prefers a
 * filesort to the index walk. Paged by (last_activity_at, id).
 *
 * `q` finds the matching conversations first and filters and orders only
 * those (SEARCH_SQL): walking the inbox and testing each conversation took
 * 330-660 ms when matches are rare, which is what a search usually is.
 * STRAIGHT_JOIN keeps that candidate set the driving table. */
/* Each row's last interaction, for the preview line: the last to arrive
 * (highest id; occurred_at is the provider's clock, in whole seconds for
 * Telegram, so a reply sent in the same second would sort before it). Read
 * from ix_interactions_conversation, which carries the primary key: one
 * short covering range per row of the page, so the cost grows with the
 * page, not with the inbox (bench/inbox, docs/benchmarks.md). The text is
 * cut in SQL so a long e-mail is not carried whole; last_preview() cuts it
 * to characters. */
#define LAST_COLUMNS                                                                               \
    "li.direction, li.kind, LEFT(COALESCE(NULLIF(li.text, ''), li.subject, ''), 480), "            \
    "li.occurred_at "
#define LAST_JOIN                                                                                  \
    " LEFT JOIN interactions li ON li.id = (SELECT MAX(x.id) FROM interactions x"                  \
    " WHERE x.conversation_id = c.id)"
#define LAST_COL    14  /* the first of LAST_COLUMNS */
#define PREVIEW_MAX 120 /* characters */

enum {
    LF_AGENT = 1,      /* visibility clause (not for admins) */
    LF_STATUS = 2,     /* c.status = ? */
    LF_UNASSIGNED = 4, /* c.assignee_id IS NULL */
    LF_ASSIGNEE = 8,   /* c.assignee_id = ? */
    LF_CHANNEL = 16,   /* c.channel_id = ? */
    LF_TEAM = 32,      /* c.team_id = ? */
    LF_CURSOR = 64,    /* after the previous page */
    LF_Q = 128,        /* search */
    LF_COUNTS = 256,   /* the counts per status instead of a page */
    LF_COUNT = 512
};
#define LF_BITS 8

/* What `q` matches, as conversation ids: identities equal to q normalised as
 * ingest stores them (phone in E.164, e-mail) or as typed (a messenger id);
 * clients with, for each of q's first three words, one of the first three
 * words of their name starting with it (clients.name_w1..3, indexed virtual
 * columns, schema/006_inbox.sql: each OR is an index merge and the
 * optimiser starts from the rarest word); interactions whose subject or
 * text match the full-text index (conversations' subjects are their first
 * message's). Parameters: phone, e-mail, q, word 1 three times, word 2 three
 * times, word 3 three times, q. */
#define NAME_WORD "(k.name_w1 LIKE ? OR k.name_w2 LIKE ? OR k.name_w3 LIKE ?)"
#define SEARCH_SQL                                                                                 \
    "(SELECT cv.id FROM client_identities ci JOIN conversations cv ON cv.client_id = ci.client_id" \
    " WHERE ci.kind IN ('email','phone','telegram','whatsapp','viber','other')"                    \
    " AND ci.value IN (?, ?, ?)"                                                                   \
    " UNION SELECT cv.id FROM clients k JOIN conversations cv ON cv.client_id = k.id"              \
    " WHERE " NAME_WORD " AND " NAME_WORD " AND " NAME_WORD                                        \
    " UNION SELECT conversation_id FROM interactions"                                              \
    " WHERE MATCH(subject, text) AGAINST (? IN NATURAL LANGUAGE MODE)"                             \
    " AND conversation_id IS NOT NULL) m STRAIGHT_JOIN conversations c ON c.id = m.id"
#define SEARCH_WORDS 3

static int valid_status(const char *s);

static char *list_sql[LF_COUNT];
static pthread_mutex_t list_sql_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *list_sql_get(int f)
{
    static const char *const clause[LF_BITS] = {
        " AND (c.assignee_id = ? OR c.assignee_id IS NULL OR c.team_id IN "
        "(SELECT team_id FROM team_members WHERE user_id = ?))",
        " AND c.status = ?",
        " AND c.assignee_id IS NULL",
        " AND c.assignee_id = ?",
        " AND c.channel_id = ?",
        " AND c.team_id = ?",
        " AND (c.last_activity_at < ? OR (c.last_activity_at = ? AND c.id < ?))",
        "", /* LF_Q: the FROM part */
    };
    pthread_mutex_lock(&list_sql_lock);
    if (!list_sql[f] && (list_sql[f] = malloc(4096))) {
        char *b = list_sql[f];
        const size_t cap = 4096;
        const char *from = f & LF_Q ? SEARCH_SQL : "conversations c";
        size_t n;
        if (f & LF_COUNTS)
            n = (size_t)snprintf(
                b, cap,
                "SELECT c.status, COUNT(*), SUM(c.assignee_id = ?), SUM(c.assignee_id IS NULL), "
                "SUM(c.unread > 0), SUM(c.unread > 0 AND c.assignee_id = ?), "
                "SUM(c.unread > 0 AND c.assignee_id IS NULL) FROM %s WHERE 1 = 1",
                from);
        else
            n = (size_t)snprintf(b, cap,
                                 "SELECT " CONV_COLUMNS ", " LAST_COLUMNS
                                 "FROM (SELECT c.id FROM %s WHERE 1 = 1",
                                 from);
        for (int bit = 0; bit < LF_BITS; bit++)
            if (f & (1 << bit))
                n += (size_t)snprintf(b + n, cap - n, "%s", clause[bit]);
        if (f & LF_COUNTS)
            snprintf(b + n, cap - n, " GROUP BY c.status");
        else
            snprintf(
                b + n, cap - n,
                " ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ?) page"
                " JOIN conversations c ON c.id = page.id JOIN clients cl ON cl.id = c.client_id"
                " JOIN channels ch ON ch.id = c.channel_id" LAST_JOIN
                " ORDER BY c.last_activity_at DESC, c.id DESC");
    }
    pthread_mutex_unlock(&list_sql_lock);
    return list_sql[f];
}

/* The words of q as name-word prefixes ("петр%"), split as the migration
 * splits names. Unused slots repeat the first word (the same condition
 * again); no word at all gives "" patterns, which match nothing (a name
 * word is never stored empty: NULL) and, unlike NULL, are still an index
 * range: LIKE NULL read every word in bench/inbox. */
static void search_words(const char *q, char words[SEARCH_WORDS][200])
{
    static const char sep[] = " \t,.;:-()\"'/";
    int n = 0;
    const char *p = q;
    while (*p && n < SEARCH_WORDS) {
        p += strspn(p, sep);
        size_t len = strcspn(p, sep);
        if (!len)
            break;
        size_t o = 0;
        for (size_t i = 0; i < len && o + 3 < sizeof words[n]; i++) {
            if (p[i] == '%' || p[i] == '_' || p[i] == '\\')
                words[n][o++] = '\\';
            words[n][o++] = p[i];
        }
        words[n][o++] = '%';
        words[n][o] = '\0';
        n++;
        p += len;
    }
    for (int i = n; i < SEARCH_WORDS; i++)
        if (n)
            memcpy(words[i], words[0], sizeof words[0]);
        else
            words[i][0] = '\0';
}

/* Filters shared by the list and the counts, parsed from the query string. */
struct conv_filter {
    char status[16], q[256];
    int64_t assignee_id; /* -1 all, 0 unassigned, else the user */
    int64_t channel_id, team_id;
    struct sb_search_terms t;
    char words[SEARCH_WORDS][200];
};

static int query_id(const struct sb_http_request *req, const char *name, const char *alias,
                    int64_t *id_r)
{
    char v[24] = "";
    *id_r = 0;
    if (sb_request_query(req, name, v, sizeof v) != 0 || !*v)
        sb_request_query(req, alias, v, sizeof v);
    if (!*v)
        return 0;
    char *end;
    long long id = strtoll(v, &end, 10);
    if (*end || id <= 0)
        return -1;
    *id_r = id;
    return 0;
}

static int filter_parse(struct sb_app *app, const struct sb_http_request *req,
                        struct sb_http_reply *rep, struct conv_filter *cf)
{
    char assignee[24] = "";
    memset(cf, 0, sizeof *cf);
    sb_request_query(req, "status", cf->status, sizeof cf->status);
    sb_request_query(req, "assignee", assignee, sizeof assignee);
    sb_request_query(req, "q", cf->q, sizeof cf->q);
    if (*cf->status && !valid_status(cf->status)) {
        sb_reply_error(rep, SB_ERR_INVALID, "status must be open, pending, resolved or snoozed");
        return -1;
    }
    /* assignee: "me", "unassigned" or a user id; absent or "all" = no filter */
    cf->assignee_id = -1;
    if (!strcmp(assignee, "me"))
        cf->assignee_id = req->user.id;
    else if (!strcmp(assignee, "unassigned"))
        cf->assignee_id = 0;
    else if (*assignee && strcmp(assignee, "all")) {
        char *end;
        cf->assignee_id = strtoll(assignee, &end, 10);
        if (*end || cf->assignee_id <= 0) {
            sb_reply_error(rep, SB_ERR_INVALID,
                           "assignee must be me, unassigned, all or a user id");
            return -1;
        }
    }
    if (query_id(req, "channel", "channel_id", &cf->channel_id) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "channel_id must be a channel id");
        return -1;
    }
    if (query_id(req, "team_id", "team", &cf->team_id) != 0) {
        sb_reply_error(rep, SB_ERR_INVALID, "team_id must be a team id");
        return -1;
    }
    if (*cf->q) {
        sb_api_search_terms(cf->q, app->cfg->default_region, &cf->t);
        /* A phone number means its owner: its digit groups as name words
         * or text ("900", "001") would only add noise. */
        if (!*cf->t.phone)
            search_words(cf->q, cf->words);
    }
    return 0;
}

/* The parameters of the filters present, in the statement's order: the
 * search (the FROM part), visibility, then status and assignee (not for the
 * counts, which are per status and per assignee view), channel, team. */
static size_t filter_args(const struct conv_filter *cf, const struct sb_http_request *req,
                          int counts, struct sb_db_val *a, size_t na, int *f)
{
    if (*cf->q) {
        *f |= LF_Q;
        a[na++] = SB_TEXT(*cf->t.phone ? cf->t.phone : NULL);
        a[na++] = SB_TEXT(*cf->t.email ? cf->t.email : NULL);
        a[na++] = SB_TEXT(cf->q);
        for (int w = 0; w < SEARCH_WORDS; w++)
            for (int col = 0; col < 3; col++)
                a[na++] = SB_TEXT(cf->words[w]);
        a[na++] = SB_TEXT(*cf->t.phone ? NULL : cf->q);
    }
    if (req->user.role != SB_ROLE_ADMIN) {
        *f |= LF_AGENT;
        a[na++] = SB_INT(req->user.id);
        a[na++] = SB_INT(req->user.id);
    }
    if (!counts && *cf->status) {
        *f |= LF_STATUS;
        a[na++] = SB_TEXT(cf->status);
    }
    if (!counts && cf->assignee_id == 0) {
        *f |= LF_UNASSIGNED;
    } else if (!counts && cf->assignee_id > 0) {
        *f |= LF_ASSIGNEE;
        a[na++] = SB_INT(cf->assignee_id);
    }
    if (cf->channel_id) {
        *f |= LF_CHANNEL;
        a[na++] = SB_INT(cf->channel_id);
    }
    if (cf->team_id) {
        *f |= LF_TEAM;
        a[na++] = SB_INT(cf->team_id);
    }
    return na;
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
static const char q_set_team[] = "UPDATE conversations SET team_id = ? WHERE id = ?";
static const char q_team_exists[] = "SELECT 1 FROM teams WHERE id = ?";
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
 * this conversation through ingest's In-Reply-To/References lookup. text and
 * html are what the agent wrote; a quoted history is only in the mail sent
 * (meta names the quoted interaction). */
static const char q_reply_insert[] =
    "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, text, "
    "author_user_id, sender, delivery_status, message_id, in_reply_to, subject, html, meta) "
    "SELECT id, client_id, channel_id, 'out', ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ? "
    "FROM conversations WHERE id = ?";

/* -- name: reply-email-parent
 * The message an e-mail reply answers: the conversation's latest inbound
 * mail from a person (not an auto-reply or a bounce), with the head of its
 * raw message for its References header. */
static const char q_email_parent[] =
    "SELECT i.message_id, i.subject, i.in_reply_to, LEFT(b.data, 65536), i.sender, "
    "UNIX_TIMESTAMP(i.occurred_at), LEFT(i.text, 16384), i.id FROM interactions i "
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
/* -- name: reply-touch
 * The reports' columns (008_reports.sql) take the reply's own time: the
 * first answer to the client's first inbound message, and who gave it, are
 * set once; the client no longer waits. A single-table UPDATE assigns left
 * to right, so the responder is decided before first_response_at changes. */
#define FIRST_ANSWER "first_response_at IS NULL AND first_inbound_at IS NOT NULL"
#define REPLY_AT     "(SELECT occurred_at FROM interactions WHERE id = ?)"
static const char q_reply_touch[] =
    "UPDATE conversations SET last_activity_at = NOW(6), "
    "first_responder_id = IF(" FIRST_ANSWER ", ?, first_responder_id), "
    "first_response_at = IF(" FIRST_ANSWER ", " REPLY_AT ", first_response_at), "
    "last_outbound_at = GREATEST(COALESCE(last_outbound_at, '1000-01-01'), " REPLY_AT "), "
    "waiting_since = NULL WHERE id = ?";

/* A reply's text: more than any messenger takes, less than a wall. */
#define REPLY_TEXT_MAX 65536
/* A Telegram caption (the text sent with files), in characters. */
#define TELEGRAM_CAPTION_MAX 1024

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

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

/* The start of a text on one line: runs of white space become one space,
 * cut at PREVIEW_MAX characters (never inside a UTF-8 sequence) with "…". */
static json_t *last_preview(const char *text)
{
    char out[PREVIEW_MAX * 4 + 64];
    size_t o = 0, chars = 0;
    int space = 0;
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    for (; *p && o + 8 < sizeof out; p++) {
        if (*p == ' ' || *p < 0x20) {
            space = 1;
            continue;
        }
        if ((*p & 0xC0) != 0x80) {
            size_t need = space && chars ? 2 : 1;
            if (chars + need > PREVIEW_MAX) {
                memcpy(out + o, "\xe2\x80\xa6", 3); /* … */
                o += 3;
                break;
            }
            if (space && chars) {
                out[o++] = ' ';
                chars++;
            }
            space = 0;
            chars++;
        }
        out[o++] = (char)*p;
    }
    out[o] = '\0';
    json_t *j = json_string(out); /* NULL only for bytes that are no UTF-8 */
    return j ? j : json_string("");
}

static json_t *last_json(const struct sb_db_rows *r, size_t i)
{
    if (!sb_db_cell(r, i, LAST_COL))
        return json_null();
    return json_pack("{s:o,s:o,s:o,s:o}", "direction", sb_json_cell(r, i, LAST_COL), "kind",
                     sb_json_cell(r, i, LAST_COL + 1), "preview",
                     last_preview(sb_db_cell(r, i, LAST_COL + 2)), "at",
                     sb_json_cell(r, i, LAST_COL + 3));
}

static int valid_status(const char *s)
{
    return !strcmp(s, "open") || !strcmp(s, "pending") || !strcmp(s, "resolved") ||
           !strcmp(s, "snoozed");
}

void sb_api_conversations_list(struct sb_app *app, struct sb_db *db,
                               const struct sb_http_request *req, struct sb_http_reply *rep)
{
    char cursor[80] = "", err[256] = "";
    struct conv_filter cf;
    if (filter_parse(app, req, rep, &cf) != 0)
        return;
    sb_request_query(req, "cursor", cursor, sizeof cursor);
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
    int limit = sb_api_limit(req);
    struct sb_db_val a[40];
    int f = 0;
    size_t na = filter_args(&cf, req, 0, a, 0, &f);
    if (*cur_time) {
        f |= LF_CURSOR;
        a[na++] = SB_TEXT(cur_time);
        a[na++] = SB_TEXT(cur_time);
        a[na++] = SB_INT(cur_id);
    }
    a[na++] = SB_INT(limit);
    const char *sql = list_sql_get(f);
    if (!sql) {
        sb_reply_failure(rep, SB_ERR_NOMEM, "list conversations", "out of memory");
        return;
    }
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, a, na, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "list conversations", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++) {
        json_t *o = conv_json(&r, i);
        json_object_set_new(o, "last_message", last_json(&r, i));
        json_array_append_new(items, o);
    }
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

/* -- Counts per filter ---------------------------------------------------------
 * Each number is the length of the list the same button would show: status
 * tabs are counted within the chosen assignee view, assignee buttons within
 * the chosen status (all statuses without one), unread within both.
 *
 * Without q: eight bounded counts in one statement, each
 * COUNT(*) FROM (SELECT 1 … LIMIT COUNTS_CAP), so each stops after the cap
 * along the same indexes the lists walk. Counting every row instead took
 * 550-700 ms at 100,000 conversations (an index walk plus a row read each;
 * 110-160 ms even from a covering index), and past a thousand the exact
 * number tells an agent nothing the web view's "1000+" does not. With q:
 * one grouped count over the search's matches (exact; a search's matches
 * are few, and that set is bounded by the search itself). */
#define COUNTS_CAP 1000
#define STR_(x)    #x
#define STR(x)     STR_(x)

enum { CF_AGENT = 1, CF_CHANNEL = 2, CF_TEAM = 4, CF_STATUS = 8, CF_VIEW_SHIFT = 4, CF_COUNT = 48 };
/* Two statements of four counts each: eight would pass the 32 parameters
 * sb_db_exec takes with every filter present. */
static char *counts_sql[CF_COUNT][2];
static pthread_mutex_t counts_sql_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const count_statuses[] = {"open", "pending", "resolved", "snoozed"};

/* view: 0 all, 1 mine, 2 unassigned; part 0: the four statuses, part 1:
 * mine, unassigned, all and unread. */
static const char *counts_sql_get(int f, int part)
{
    static const char *const view_clause[] = {"", " AND c.assignee_id = ?",
                                              " AND c.assignee_id IS NULL"};
    const char *scope_agent = f & CF_AGENT ? " AND (c.assignee_id = ? OR c.assignee_id IS NULL OR "
                                             "c.team_id IN (SELECT team_id FROM team_members "
                                             "WHERE user_id = ?))"
                                           : "";
    const char *scope_channel = f & CF_CHANNEL ? " AND c.channel_id = ?" : "";
    const char *scope_team = f & CF_TEAM ? " AND c.team_id = ?" : "";
    const char *st = f & CF_STATUS ? " AND c.status = ?" : "";
    const char *view = view_clause[f >> CF_VIEW_SHIFT];
    pthread_mutex_lock(&counts_sql_lock);
    if (!counts_sql[f][part] && (counts_sql[f][part] = malloc(4096))) {
        char *b = counts_sql[f][part];
        const size_t cap = 4096;
        size_t n = (size_t)snprintf(b, cap, "SELECT ");
        char specific[4][160];
        if (part == 0) {
            for (int i = 0; i < 4; i++)
                snprintf(specific[i], sizeof specific[i], " AND c.status = '%s'%s",
                         count_statuses[i], view);
        } else {
            snprintf(specific[0], sizeof specific[0], "%s AND c.assignee_id = ?", st);
            snprintf(specific[1], sizeof specific[1], "%s AND c.assignee_id IS NULL", st);
            snprintf(specific[2], sizeof specific[2], "%s", st);
            snprintf(specific[3], sizeof specific[3], "%s%s AND c.unread > 0", st, view);
        }
        for (int i = 0; i < 4; i++)
            n += (size_t)snprintf(b + n, cap - n,
                                  "%s(SELECT COUNT(*) FROM (SELECT 1 FROM conversations c "
                                  "WHERE 1 = 1%s%s%s%s LIMIT " STR(COUNTS_CAP) ") x)",
                                  i ? ", " : "", scope_agent, scope_channel, scope_team,
                                  specific[i]);
    }
    pthread_mutex_unlock(&counts_sql_lock);
    return counts_sql[f][part];
}

static size_t counts_scope_args(const struct conv_filter *cf, const struct sb_http_request *req,
                                struct sb_db_val *a, size_t na)
{
    if (req->user.role != SB_ROLE_ADMIN) {
        a[na++] = SB_INT(req->user.id);
        a[na++] = SB_INT(req->user.id);
    }
    if (cf->channel_id)
        a[na++] = SB_INT(cf->channel_id);
    if (cf->team_id)
        a[na++] = SB_INT(cf->team_id);
    return na;
}

/* The bounded counts: fills n[0..3] per status, n[4..6] mine, unassigned,
 * all, n[7] unread. */
static int counts_bounded(struct sb_db *db, const struct sb_http_request *req,
                          const struct conv_filter *cf, int view, long long n[8], char *err,
                          size_t errlen)
{
    int f = (view << CF_VIEW_SHIFT) | (req->user.role != SB_ROLE_ADMIN ? CF_AGENT : 0) |
            (cf->channel_id ? CF_CHANNEL : 0) | (cf->team_id ? CF_TEAM : 0) |
            (*cf->status ? CF_STATUS : 0);
    int rc = SB_OK;
    for (int part = 0; part < 2 && rc == SB_OK; part++) {
        const char *sql = counts_sql_get(f, part);
        if (!sql)
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        struct sb_db_val a[32];
        size_t na = 0;
        for (int i = 4 * part; i < 4 * part + 4; i++) {
            na = counts_scope_args(cf, req, a, na);
            if (*cf->status && i >= 4)
                a[na++] = SB_TEXT(cf->status);
            if ((i < 4 || i == 7) && view == 1)
                a[na++] = SB_INT(req->user.id);
            if (i == 4)
                a[na++] = SB_INT(req->user.id);
        }
        struct sb_db_rows r;
        rc = sb_db_exec(db, sql, a, na, &r, err, errlen);
        for (int i = 0; i < 4; i++)
            n[4 * part + i] = rc == SB_OK && r.nrows ? sb_db_cell_int(&r, 0, (size_t)i) : 0;
        sb_db_rows_free(&r);
    }
    return rc;
}

/* The grouped count over the search's matches; same layout as above. */
static int counts_search(struct sb_db *db, const struct sb_http_request *req,
                         const struct conv_filter *cf, int view, long long n[8], char *err,
                         size_t errlen)
{
    struct sb_db_val a[40];
    int f = LF_COUNTS;
    size_t na = 0;
    a[na++] = SB_INT(req->user.id);
    a[na++] = SB_INT(req->user.id);
    na = filter_args(cf, req, 1, a, na, &f);
    const char *sql = list_sql_get(f);
    if (!sql)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, a, na, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    /* per status: all, mine, unassigned, unread all, unread mine, unread unassigned */
    long long g[4][6] = {{0}};
    for (size_t i = 0; i < r.nrows; i++)
        for (int s = 0; s < 4; s++)
            if (sb_db_cell(&r, i, 0) && !strcmp(sb_db_cell(&r, i, 0), count_statuses[s]))
                for (int k = 0; k < 6; k++)
                    g[s][k] =
                        sb_db_cell(&r, i, 1 + (size_t)k) ? sb_db_cell_int(&r, i, 1 + (size_t)k) : 0;
    sb_db_rows_free(&r);
    memset(n, 0, 8 * sizeof *n);
    for (int s = 0; s < 4; s++) {
        n[s] = g[s][view];
        if (*cf->status && strcmp(cf->status, count_statuses[s]))
            continue;
        n[4] += g[s][1];
        n[5] += g[s][2];
        n[6] += g[s][0];
        n[7] += g[s][3 + view];
    }
    return SB_OK;
}

void sb_api_conversations_counts(struct sb_app *app, struct sb_db *db,
                                 const struct sb_http_request *req, struct sb_http_reply *rep)
{
    char err[256] = "";
    struct conv_filter cf;
    if (filter_parse(app, req, rep, &cf) != 0)
        return;
    if (cf.assignee_id > 0 && cf.assignee_id != req->user.id) {
        sb_reply_error(rep, SB_ERR_INVALID, "assignee must be me, unassigned or all here");
        return;
    }
    int view = cf.assignee_id < 0 ? 0 : cf.assignee_id == 0 ? 2 : 1;
    long long n[8];
    int rc = *cf.q ? counts_search(db, req, &cf, view, n, err, sizeof err)
                   : counts_bounded(db, req, &cf, view, n, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "count conversations", err);
        return;
    }
    json_t *cap = *cf.q ? json_null() : json_integer(COUNTS_CAP);
    sb_reply_json(rep, 200,
                  json_pack("{s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I},s:I,s:o}", "status", "open",
                            (json_int_t)n[0], "pending", (json_int_t)n[1], "resolved",
                            (json_int_t)n[2], "snoozed", (json_int_t)n[3], "assignee", "mine",
                            (json_int_t)n[4], "unassigned", (json_int_t)n[5], "all",
                            (json_int_t)n[6], "unread", (json_int_t)n[7], "cap", cap));
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
        } else if (!strcmp(key, "team_id")) {
            if (!json_is_null(v) && !json_is_integer(v))
                return sb_fail(err, errlen, SB_ERR_INVALID,
                               "\"team_id\" must be a team id or null");
            if (json_is_integer(v)) {
                struct sb_db_val u[] = {SB_INT(json_integer_value(v))};
                struct sb_db_rows r;
                rc = sb_db_exec(db, q_team_exists, u, 1, &r, dberr, sizeof dberr);
                size_t n = r.nrows;
                sb_db_rows_free(&r);
                if (rc == SB_OK && !n)
                    return sb_fail(err, errlen, SB_ERR_INVALID, "no team %lld",
                                   (long long)json_integer_value(v));
            }
            struct sb_db_val a[] = {json_is_integer(v) ? SB_INT(json_integer_value(v)) : SB_NULL,
                                    SB_INT(id)};
            if (rc == SB_OK)
                rc = sb_db_exec(db, q_set_team, a, 2, NULL, dberr, sizeof dberr);
        } else if (!strcmp(key, "unread")) {
            if (!json_is_integer(v) || json_integer_value(v) != 0)
                return sb_fail(err, errlen, SB_ERR_INVALID, "\"unread\" can only be set to 0");
            struct sb_db_val a[] = {SB_INT(id)};
            rc = sb_db_exec(db, q_set_read, a, 1, NULL, dberr, sizeof dberr);
            if (rc == SB_OK) /* read it: its "new message" notification is read too */
                rc = sb_notify_conversation_read(db, id, user_id, dberr, sizeof dberr);
        } else if (strcmp(key, "snoozed_until")) {
            return sb_fail(
                err, errlen, SB_ERR_INVALID,
                "unknown field \"%s\" (status, assignee_id, team_id, snoozed_until, unread)", key);
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
    int64_t first = r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    json_t *next = (int)r.nrows == limit ? json_sprintf("%lld", (long long)last) : json_null();
    sb_db_rows_free(&r);
    rc = sb_att_annotate(db, id, last, first, items, err, sizeof err);
    if (rc != SB_OK) {
        json_decref(items);
        json_decref(next);
        sb_reply_failure(rep, rc, "list attachments", err);
        return;
    }
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
    int64_t conv_id = sb_db_cell_int(&r, 0, 12);
    json_object_set_new(o, "conversation_id", sb_json_cell_int(&r, 0, 12));
    sb_db_rows_free(&r);
    json_t *one = json_pack("[O]", o);
    if (one && sb_att_annotate(db, conv_id, id, id, one, err, sizeof err) != SB_OK)
        sb_warn("api", "reply %lld: attachments not listed: %s", (long long)id, err);
    json_decref(one);
    sb_reply_json(rep, 202, o);
}

/* The reply's interaction, its outbox job, the conversation's activity and
 * the event, in the caller's transaction. *dup_r is set (and nothing
 * written) when the idempotency key was already used. */
static int reply_store(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                       int64_t conv_id, int64_t client_id, int64_t channel_id, const char *kind,
                       json_t *payload, const char *key, const int64_t *files, size_t nfiles,
                       int64_t *id_r, int64_t *dup_r, char *err, size_t errlen)
{
    const char *ikind = !strcmp(kind, "email") ? "email" : "message";
    const char *text = json_string_value(json_object_get(payload, "text"));
    /* The quote decision stays with the reply: which mail was quoted. */
    json_t *quote = json_object_get(payload, "quote");
    char *meta = NULL;
    if (quote) {
        json_t *m = json_pack("{s:{s:O}}", "quote", "interaction_id",
                              json_object_get(quote, "interaction_id"));
        meta = m ? json_dumps(m, JSON_COMPACT) : NULL;
        json_decref(m);
        if (!meta)
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    struct sb_db_val a[] = {SB_TEXT(ikind),
                            SB_TEXT(text),
                            SB_INT(req->user.id),
                            SB_TEXT(req->user.name),
                            SB_TEXT(json_string_value(json_object_get(payload, "message_id"))),
                            SB_TEXT(json_string_value(json_object_get(payload, "in_reply_to"))),
                            SB_TEXT(json_string_value(json_object_get(payload, "subject"))),
                            SB_TEXT(json_string_value(json_object_get(payload, "html"))),
                            SB_TEXT(meta),
                            SB_INT(conv_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_reply_insert, a, 10, &r, err, errlen);
    free(meta);
    *id_r = rc == SB_OK ? (int64_t)r.insert_id : 0;
    sb_db_rows_free(&r);
    if (rc != SB_OK)
        return rc;
    if (nfiles)
        rc = sb_att_link_uploads(db, req->user.id, *id_r, files, nfiles, err, errlen);
    const struct sb_channel_kind *k = sb_channel_kind_find(kind);
    if (rc == SB_OK && nfiles && k && (k->flags & SB_CH_SEND_FILE_LINKS)) {
        /* The provider downloads the file from us: signed, expiring links,
         * written into the job so the adapter needs no key. */
        json_t *links = NULL;
        rc = sb_att_links(db, app->secret_key, app->cfg->public_url, *id_r, &links, err, errlen);
        if (rc == SB_OK && json_object_set_new(payload, "files", links))
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    int64_t job;
    if (rc == SB_OK)
        rc = sb_outbox_enqueue(db, "reply", channel_id, *id_r, payload, key, &job, dup_r, err,
                               errlen);
    struct sb_db_val c[] = {SB_INT(req->user.id), SB_INT(*id_r), SB_INT(*id_r), SB_INT(conv_id)};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_reply_touch, c, 4, NULL, err, errlen);
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

/* The language of the agent's attribution line: the user's setting, else
 * the first language the browser asks for. */
static void reply_locale(const struct sb_http_request *req, char *buf, size_t buflen)
{
    char al[128] = "";
    snprintf(buf, buflen, "%s", req->user.locale);
    if (*buf || sb_request_header(req, "accept-language", al, sizeof al) != 0)
        return;
    size_t n = strcspn(al, ",;");
    while (n && al[n - 1] == ' ')
        n--;
    snprintf(buf, buflen, "%.*s", (int)n, al + strspn(al, " "));
}

static int email_reply_prepare(struct sb_db *db, const struct sb_http_request *req, int64_t conv_id,
                               int64_t channel_id, const json_t *conv, const json_t *body,
                               json_t *payload, char *err, size_t errlen)
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
     * leaves it out ("quote": false). The stored reply keeps only the
     * agent's words; what is quoted is frozen here, in the job, and the
     * e-mail adapter composes it into the mail it sends, so a retry sends
     * the same quote however the thread has moved on. */
    json_t *quote = NULL;
    const char *old = r.nrows ? sb_db_cell(&r, 0, 6) : NULL;
    if (rc == SB_OK && old && old[strspn(old, " \t\r\n")] &&
        !json_is_false(json_object_get(body, "quote"))) {
        char loc[16];
        reply_locale(req, loc, sizeof loc);
        quote = json_pack("{s:I,s:s?,s:I,s:s,s:s?}", "interaction_id",
                          (json_int_t)sb_db_cell_int(&r, 0, 7), "author", sb_db_cell(&r, 0, 4),
                          "date", (json_int_t)(sb_db_cell(&r, 0, 5) ? sb_db_cell_int(&r, 0, 5) : 0),
                          "text", old, "locale", *loc ? loc : NULL);
        if (!quote)
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    char *html = sb_mail_text_to_html(json_string_value(json_object_get(payload, "text")));
    json_t *refs = json_array();
    if (rc == SB_OK && (!re || !refs || !html))
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (rc == SB_OK && r.nrows) {
        rc = email_references(&r, refs);
        if (rc == SB_OK &&
            (json_object_set_new(payload, "in_reply_to", json_string(sb_db_cell(&r, 0, 0))) ||
             json_object_set(payload, "references", refs)))
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    if (rc == SB_OK && (json_object_set_new(payload, "subject", json_string(re)) ||
                        json_object_set_new(payload, "html", json_string(html)) ||
                        json_object_set_new(payload, "message_id", json_string(mid)) ||
                        (quote && json_object_set(payload, "quote", quote))))
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    json_decref(quote);
    json_decref(refs);
    free(re);
    free(html);
    sb_db_rows_free(&r);
    sb_db_rows_free(&f);
    return rc;
}

/* One row per kind whose replies need more than "to" and "text". */
static const struct {
    const char *kind;
    int (*prepare)(struct sb_db *db, const struct sb_http_request *req, int64_t conv_id,
                   int64_t channel_id, const json_t *conv, const json_t *body, json_t *payload,
                   char *err, size_t errlen);
} reply_preparers[] = {
    {"email", email_reply_prepare},
};

static int reply_payload(struct sb_db *db, const struct sb_http_request *req, int64_t conv_id,
                         int64_t channel_id, const char *kind, const json_t *conv,
                         const json_t *body, const char *to, const char *text, json_t **payload_r,
                         char *err, size_t errlen)
{
    json_t *p = *payload_r = json_pack("{s:s,s:s}", "to", to, "text", text);
    if (!p)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sizeof reply_preparers / sizeof *reply_preparers; i++)
        if (!strcmp(kind, reply_preparers[i].kind))
            return reply_preparers[i].prepare(db, req, conv_id, channel_id, conv, body, p, err,
                                              errlen);
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
    json_t *ids = json_object_get(body, "attachment_ids");
    int64_t files[SB_REPLY_FILES_MAX];
    size_t nfiles = 0;
    if (ids && !json_is_null(ids)) {
        size_t i;
        json_t *v;
        if (!json_is_array(ids) || json_array_size(ids) > SB_REPLY_FILES_MAX) {
            sb_reply_error(rep, SB_ERR_INVALID,
                           "\"attachment_ids\" must be an array of at most %d upload ids",
                           SB_REPLY_FILES_MAX);
            goto out;
        }
        json_array_foreach(ids, i, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                sb_reply_error(rep, SB_ERR_INVALID, "\"attachment_ids\" must hold upload ids");
                goto out;
            }
            files[nfiles++] = json_integer_value(v);
        }
    }
    if (nfiles && text && !*text)
        text = NULL;
    if ((!text || !*text) && !nfiles) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"text\" is required");
        goto out;
    }
    if (!text)
        text = "";
    if (nfiles && k && !(k->flags & (SB_CH_SEND_FILES | SB_CH_SEND_FILE_LINKS))) {
        sb_reply_error_status(rep, 422, "attachments_unsupported",
                              "files cannot be sent through this channel");
        goto out;
    }
    if (nfiles && k && (k->flags & SB_CH_SEND_FILE_LINKS)) {
        /* WhatsApp and Viber take one file per message, by a link to us. */
        if (nfiles > 1) {
            sb_reply_error_status(rep, 422, "one_file_only",
                                  "this channel sends one file per message");
            goto out;
        }
        if (!app->has_secret_key || !app->cfg->public_url ||
            strncmp(app->cfg->public_url, "http", 4)) {
            sb_reply_error_status(rep, 422, "no_public_url",
                                  "files go out through this channel as links: "
                                  "server.public_url and security.secret_key must be set");
            goto out;
        }
    }

    if (nfiles && !strcmp(kind, "telegram") && utf8_chars(text) > TELEGRAM_CAPTION_MAX) {
        sb_reply_error_status(rep, 422, "caption_too_long",
                              "with files, Telegram takes at most 1024 characters of text");
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
        rc = reply_payload(db, req, id, channel_id, kind, conv, body, to, text, &payload, err,
                           sizeof err);
    if (rc == SB_OK)
        rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = reply_store(app, db, req, id, client_id, channel_id, kind, payload, *key ? key : NULL,
                         files, nfiles, &iid, &dup, err, sizeof err);
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
    if (rc == SB_ERR_FORBIDDEN) {
        sb_reply_error_status(rep, 422, "bad_attachment", err);
        goto out;
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
