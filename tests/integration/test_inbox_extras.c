/* The inbox's counts per filter, teams and search, over HTTP against a real
 * server and MariaDB: every count is checked against the list the same
 * filter returns, as an admin and as agents in and out of a team. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct th_server srv;
static struct sb_db *db;
static int64_t ch_tg, ch_form;
static char admin[512], agent[512], other[512];
static int64_t agent_id, other_id;
static int64_t anna_conv, ivan_conv, olga_conv;
static const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};

static int64_t sql(const char *q, const struct sb_db_val *a, size_t n)
{
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, q, a, n, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", q, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = r.insert_id ? (int64_t)r.insert_id : r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    sb_db_rows_free(&r);
    return v;
}

static int64_t put(int64_t channel, const char *ext, const char *name, const char *text,
                   enum sb_identity_kind k1, const char *v1, enum sb_identity_kind k2,
                   const char *v2)
{
    struct sb_inbound *in = sb_inbound_new();
    in->channel_id = channel;
    in->external_id = sb_inbound_strdup(in, ext);
    in->kind = SB_IK_MESSAGE;
    in->display_name = name ? sb_inbound_strdup(in, name) : NULL;
    in->text = sb_inbound_strdup(in, text);
    if (v1)
        sb_inbound_add_identity(in, k1, v1);
    if (v2)
        sb_inbound_add_identity(in, k2, v2);
    struct sb_ingest_result res;
    char err[256] = "";
    int rc = sb_ingest(db, &opt, in, &res, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "ingest: %s\n", err);
    assert_int_equal(rc, SB_OK);
    sb_inbound_free(&in);
    return res.conversation_id;
}

static int64_t user_id(const char *email)
{
    struct sb_db_val a[] = {SB_TEXT(email)};
    return sql("SELECT id FROM users WHERE email = ?", a, 1);
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    db = th_db_connect();
    static const char ch[] = "INSERT INTO channels (kind, name) VALUES (?, ?)";
    struct sb_db_val a[] = {SB_TEXT("telegram"), SB_TEXT("Bot")};
    ch_tg = sql(ch, a, 2);
    struct sb_db_val b[] = {SB_TEXT("webform"), SB_TEXT("Site")};
    ch_form = sql(ch, b, 2);
    anna_conv = put(ch_tg, "t:1", "Анна-Мария Смирнова", "Хочу кухонный гарнитур", SB_ID_TELEGRAM,
                    "523901177", SB_ID_PHONE, "+79160001122");
    ivan_conv = put(ch_form, "f:1", "Иван Петров", "Прошу перезвонить вечером", SB_ID_PHONE,
                    "8 (999) 123-45-67", SB_ID_EMAIL, "Ivan.Petrov@Example.RU");
    olga_conv =
        put(ch_tg, "t:2", "Ольга Иванова", "Где мой заказ?", SB_ID_TELEGRAM, "77001", 0, NULL);
    /* A spread of statuses, assignees and unread flags for the counts. */
    char ext[32], name[64];
    for (int i = 0; i < 24; i++) {
        snprintf(ext, sizeof ext, "bulk:%d", i);
        snprintf(name, sizeof name, "Клиент %d", i);
        char tgid[16];
        snprintf(tgid, sizeof tgid, "9%04d", i);
        put(i % 3 ? ch_tg : ch_form, ext, name, "Добрый день", SB_ID_TELEGRAM, tgid, 0, NULL);
    }
    th_user("admin@example.com", "admin", "admin-password-1");
    th_user("agent@example.com", "agent", "agent-password-1");
    th_user("other@example.com", "agent", "other-password-1");
    agent_id = user_id("agent@example.com");
    other_id = user_id("other@example.com");
    struct sb_db_val u[] = {SB_INT(agent_id), SB_INT(other_id)};
    sql("UPDATE conversations SET status = ELT(1 + id % 4, 'open', 'pending', 'resolved', "
        "'snoozed'), snoozed_until = IF(id % 4 = 3, NOW() + INTERVAL 1 DAY, NULL), "
        "assignee_id = ELT(1 + id % 3, NULL, ?, ?), unread = id % 2 "
        "WHERE id > 0",
        u, 2);
    th_server_start(&srv, NULL);
    th_login(&srv, "admin@example.com", "admin-password-1", admin, sizeof admin);
    th_login(&srv, "agent@example.com", "agent-password-1", agent, sizeof agent);
    th_login(&srv, "other@example.com", "other-password-1", other, sizeof other);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    sb_db_close(&db);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

static json_t *call(const char *cookie, const char *method, const char *path, const char *body,
                    long want)
{
    return th_call(&srv, cookie, method, path, body, want);
}

/* How many conversations the list returns for `query` (all pages), and how
 * many of them are unread; whether `conv` is among them. */
static int list_count(const char *cookie, const char *query, int *unread_r, int64_t conv,
                      int *has_r)
{
    char path[1024], cursor[128] = "";
    int n = 0, unread = 0, has = 0;
    for (;;) {
        snprintf(path, sizeof path, "/api/v1/conversations?limit=10%s%s%s%s", *query ? "&" : "",
                 query, *cursor ? "&cursor=" : "", cursor);
        json_t *o = call(cookie, "GET", path, NULL, 200);
        json_t *items = json_object_get(o, "items"), *it;
        size_t i;
        json_array_foreach(items, i, it)
        {
            n++;
            unread += json_integer_value(json_object_get(it, "unread")) > 0;
            has |= json_integer_value(json_object_get(it, "id")) == conv;
        }
        const char *next = json_string_value(json_object_get(o, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(o);
        if (!*cursor)
            break;
    }
    if (unread_r)
        *unread_r = unread;
    if (has_r)
        *has_r = has;
    return n;
}

static long long num(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return json_integer_value(b ? json_object_get(v, b) : v);
}

/* For one user and one scope (channel/team/q), every number of the counts
 * under every status and assignee view is the length of that list. */
static void check_counts(const char *cookie, const char *scope)
{
    static const char *const statuses[] = {"", "open", "pending", "resolved", "snoozed"};
    static const char *const views[] = {"all", "me", "unassigned"};
    static const char *const keys[] = {"all", "mine", "unassigned"};
    char q[512], path[768];
    int nonzero = 0;
    for (int s = 0; s < 5; s++)
        for (int v = 0; v < 3; v++) {
            snprintf(path, sizeof path, "/api/v1/conversations/counts?assignee=%s%s%s%s%s",
                     views[v], *statuses[s] ? "&status=" : "", statuses[s], *scope ? "&" : "",
                     scope);
            json_t *c = call(cookie, "GET", path, NULL, 200);
            /* the assignee buttons within this status */
            for (int k = 0; k < 3; k++) {
                snprintf(q, sizeof q, "assignee=%s%s%s%s%s", views[k],
                         *statuses[s] ? "&status=" : "", statuses[s], *scope ? "&" : "", scope);
                int unread, n = list_count(cookie, q, &unread, 0, NULL);
                assert_int_equal(num(c, "assignee", keys[k]), n);
                if (k == v)
                    assert_int_equal(num(c, "unread", NULL), unread);
                nonzero += n > 0;
            }
            /* the status tabs within this assignee view */
            for (int t = 1; t < 5; t++) {
                snprintf(q, sizeof q, "assignee=%s&status=%s%s%s", views[v], statuses[t],
                         *scope ? "&" : "", scope);
                assert_int_equal(num(c, "status", statuses[t]),
                                 list_count(cookie, q, NULL, 0, NULL));
            }
            json_decref(c);
        }
    (void)nonzero;
}

static void counts_match_the_list(void **state)
{
    (void)state;
    char scope[64];
    check_counts(admin, "");
    check_counts(agent, "");
    snprintf(scope, sizeof scope, "channel_id=%lld", (long long)ch_tg);
    check_counts(admin, scope);
    check_counts(agent, scope);
    check_counts(agent, "q=%D0%94%D0%BE%D0%B1%D1%80%D1%8B%D0%B9"); /* Добрый */
    /* The figures themselves, once, against the database. */
    json_t *c = call(admin, "GET", "/api/v1/conversations/counts", NULL, 200);
    int64_t open = sql("SELECT COUNT(*) FROM conversations WHERE status = 'open'", NULL, 0);
    int64_t all = sql("SELECT COUNT(*) FROM conversations", NULL, 0);
    assert_true(open > 0);
    assert_int_equal(num(c, "status", "open"), open);
    assert_int_equal(num(c, "assignee", "all"), all);
    assert_int_equal(num(c, "cap", NULL), 1000);
    json_decref(c);
    /* An agent does not see the other agent's conversations. */
    c = call(agent, "GET", "/api/v1/conversations/counts", NULL, 200);
    struct sb_db_val a[] = {SB_INT(agent_id)};
    assert_int_equal(num(c, "assignee", "all"),
                     sql("SELECT COUNT(*) FROM conversations WHERE assignee_id IS NULL OR "
                         "assignee_id = ?",
                         a, 1));
    json_decref(c);
    /* Bad filters are refused, not ignored. */
    json_decref(call(agent, "GET", "/api/v1/conversations/counts?status=closed", NULL, 400));
    json_decref(call(agent, "GET", "/api/v1/conversations/counts?team_id=x", NULL, 400));
    json_decref(call(agent, "GET", "/api/v1/conversations/counts?channel_id=-1", NULL, 400));
}

static void counts_move_with_changes(void **state)
{
    (void)state;
    json_t *c = call(admin, "GET", "/api/v1/conversations/counts?status=open", NULL, 200);
    long long open = num(c, "status", "open"), resolved = num(c, "status", "resolved");
    json_decref(c);
    int64_t conv = sql("SELECT id FROM conversations WHERE status = 'open' LIMIT 1", NULL, 0);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", (long long)conv);
    json_decref(call(admin, "PATCH", path, "{\"status\":\"resolved\"}", 200));
    c = call(admin, "GET", "/api/v1/conversations/counts?status=open", NULL, 200);
    assert_int_equal(num(c, "status", "open"), open - 1);
    assert_int_equal(num(c, "status", "resolved"), resolved + 1);
    json_decref(c);
    json_decref(call(admin, "PATCH", path, "{\"status\":\"open\"}", 200));
}

static void teams_api_roles_and_validation(void **state)
{
    (void)state;
    /* Agents read, admins change. */
    json_decref(call(agent, "POST", "/api/v1/teams", "{\"name\":\"Sales\"}", 403));
    json_t *t = call(admin, "POST", "/api/v1/teams", "{\"name\":\"  Sales \"}", 201);
    int64_t sales = json_integer_value(json_object_get(t, "id"));
    assert_string_equal(json_string_value(json_object_get(t, "name")), "Sales");
    assert_int_equal(json_integer_value(json_object_get(t, "member_count")), 0);
    json_decref(t);
    json_decref(call(admin, "POST", "/api/v1/teams", "{\"name\":\"Sales\"}", 409));
    json_decref(call(admin, "POST", "/api/v1/teams", "{\"name\":\"   \"}", 400));
    json_decref(call(admin, "POST", "/api/v1/teams", "{}", 400));
    json_decref(call(admin, "POST", "/api/v1/teams", "{\"name\":\"a\\nb\"}", 400));
    char longname[160] = "{\"name\":\"";
    memset(longname + 9, 'x', 101);
    strcpy(longname + 110, "\"}");
    json_decref(call(admin, "POST", "/api/v1/teams", longname, 400));
    t = call(admin, "POST", "/api/v1/teams", "{\"name\":\"Поддержка\"}", 201);
    int64_t support = json_integer_value(json_object_get(t, "id"));
    json_decref(t);

    char path[128], body[128];
    snprintf(path, sizeof path, "/api/v1/teams/%lld", (long long)sales);
    json_decref(call(agent, "PATCH", path, "{\"name\":\"Sales EU\"}", 403));
    t = call(admin, "PATCH", path, "{\"name\":\"Sales EU\"}", 200);
    assert_string_equal(json_string_value(json_object_get(t, "name")), "Sales EU");
    json_decref(t);
    json_decref(call(admin, "PATCH", path, "{\"name\":\"Поддержка\"}", 409));
    json_decref(call(admin, "PATCH", path, "{\"colour\":\"red\"}", 400));
    json_decref(call(admin, "PATCH", "/api/v1/teams/999999", "{\"name\":\"X\"}", 404));

    /* Members: only active users; adding twice is fine. */
    snprintf(path, sizeof path, "/api/v1/teams/%lld/members/%lld", (long long)sales,
             (long long)agent_id);
    json_decref(call(agent, "PUT", path, NULL, 403));
    json_decref(call(admin, "PUT", path, NULL, 204));
    json_decref(call(admin, "PUT", path, NULL, 204));
    snprintf(path, sizeof path, "/api/v1/teams/%lld/members/999999", (long long)sales);
    json_decref(call(admin, "PUT", path, NULL, 404));
    snprintf(path, sizeof path, "/api/v1/teams/999999/members/%lld", (long long)agent_id);
    json_decref(call(admin, "PUT", path, NULL, 404));

    /* The agent reads every team and sees which are theirs. */
    json_t *l = call(agent, "GET", "/api/v1/teams", NULL, 200), *it;
    size_t i;
    int seen = 0;
    json_array_foreach(json_object_get(l, "items"), i, it)
    {
        int64_t id = json_integer_value(json_object_get(it, "id"));
        if (id == sales) {
            seen++;
            assert_true(json_is_true(json_object_get(it, "is_member")));
            assert_int_equal(json_integer_value(json_object_get(it, "member_count")), 1);
            json_t *m = json_array_get(json_object_get(it, "members"), 0);
            assert_int_equal(json_integer_value(json_object_get(m, "id")), agent_id);
            assert_non_null(json_string_value(json_object_get(m, "name")));
        } else if (id == support) {
            seen++;
            assert_true(json_is_false(json_object_get(it, "is_member")));
        }
    }
    assert_int_equal(seen, 2);
    json_decref(l);

    /* A conversation routed to a team; the team must exist. */
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", (long long)ivan_conv);
    json_decref(call(admin, "PATCH", path, "{\"team_id\":999999}", 400));
    json_decref(call(admin, "PATCH", path, "{\"team_id\":\"Sales\"}", 400));
    snprintf(body, sizeof body, "{\"team_id\":%lld}", (long long)support);
    t = call(admin, "PATCH", path, body, 200);
    assert_int_equal(json_integer_value(json_object_get(t, "team_id")), support);
    json_decref(t);
    char q[64];
    snprintf(q, sizeof q, "team_id=%lld", (long long)support);
    int has;
    assert_int_equal(list_count(admin, q, NULL, ivan_conv, &has), 1);
    assert_true(has);
    snprintf(q, sizeof q, "team_id=%lld", (long long)sales);
    assert_int_equal(list_count(admin, q, NULL, 0, NULL), 0);
    t = call(admin, "PATCH", path, "{\"team_id\":null}", 200);
    assert_true(json_is_null(json_object_get(t, "team_id")));
    json_decref(t);

    /* Deleting a team frees its conversations and memberships. */
    snprintf(body, sizeof body, "{\"team_id\":%lld}", (long long)sales);
    json_decref(call(admin, "PATCH", path, body, 200));
    snprintf(path, sizeof path, "/api/v1/teams/%lld", (long long)sales);
    json_decref(call(agent, "DELETE", path, NULL, 403));
    json_decref(call(admin, "DELETE", path, NULL, 204));
    json_decref(call(admin, "DELETE", path, NULL, 404));
    struct sb_db_val a[] = {SB_INT(ivan_conv)};
    assert_int_equal(
        sql("SELECT COUNT(*) FROM conversations WHERE id = ? AND team_id IS NULL", a, 1), 1);
    struct sb_db_val b[] = {SB_INT(sales)};
    assert_int_equal(sql("SELECT COUNT(*) FROM team_members WHERE team_id = ?", b, 1), 0);
    snprintf(path, sizeof path, "/api/v1/teams/%lld", (long long)support);
    json_decref(call(admin, "DELETE", path, NULL, 204));
}

/* An agent sees another agent's conversation only through a team. */
static void team_membership_decides_visibility(void **state)
{
    (void)state;
    json_t *t = call(admin, "POST", "/api/v1/teams", "{\"name\":\"Night shift\"}", 201);
    int64_t team = json_integer_value(json_object_get(t, "id"));
    json_decref(t);
    struct sb_db_val a[] = {SB_INT(other_id), SB_INT(team), SB_INT(olga_conv)};
    sql("UPDATE conversations SET assignee_id = ?, team_id = ?, status = 'open' WHERE id = ?", a,
        3);
    char conv[96], member[128], q[64];
    snprintf(conv, sizeof conv, "/api/v1/conversations/%lld", (long long)olga_conv);
    snprintf(member, sizeof member, "/api/v1/teams/%lld/members/%lld", (long long)team,
             (long long)agent_id);
    snprintf(q, sizeof q, "team_id=%lld", (long long)team);
    int has;

    json_decref(call(agent, "GET", conv, NULL, 404));
    assert_int_equal(list_count(agent, q, NULL, 0, NULL), 0);
    list_count(agent, "", NULL, olga_conv, &has);
    assert_false(has);
    json_t *c = call(agent, "GET", "/api/v1/conversations/counts?status=open", NULL, 200);
    long long before = num(c, "status", "open");
    json_decref(c);

    json_decref(call(admin, "PUT", member, NULL, 204));
    json_decref(call(agent, "GET", conv, NULL, 200));
    assert_int_equal(list_count(agent, q, NULL, olga_conv, &has), 1);
    assert_true(has);
    c = call(agent, "GET", "/api/v1/conversations/counts?status=open", NULL, 200);
    assert_int_equal(num(c, "status", "open"), before + 1);
    json_decref(c);
    check_counts(agent, q);

    json_decref(call(admin, "DELETE", member, NULL, 204));
    json_decref(call(agent, "GET", conv, NULL, 404));
    /* The admin sees it all along; the assignee too. */
    assert_int_equal(list_count(admin, q, NULL, olga_conv, &has), 1);
    json_decref(call(other, "GET", conv, NULL, 200));
}

static int64_t first_hit(const char *cookie, const char *query, int *n_r)
{
    int64_t first = 0;
    char path[512];
    snprintf(path, sizeof path, "/api/v1/conversations?%s", query);
    json_t *o = call(cookie, "GET", path, NULL, 200);
    json_t *items = json_object_get(o, "items");
    *n_r = (int)json_array_size(items);
    if (*n_r)
        first = json_integer_value(json_object_get(json_array_get(items, 0), "id"));
    json_decref(o);
    return first;
}

static void search_finds_by_name_phone_email_text(void **state)
{
    (void)state;
    static const struct {
        const char *q; /* URL-encoded */
        int64_t *conv;
        const char *why;
    } cases[] = {
        {"q=%D0%A1%D0%BC%D0%B8%D1%80%D0%BD", &anna_conv, "Смирн: a word's prefix"},
        {"q=%D0%BC%D0%B0%D1%80%D0%B8%D1%8F%20%D1%81%D0%BC%D0%B8%D1%80%D0%BD%D0%BE%D0%B2%D0%B0",
         &anna_conv, "мария смирнова: the words of a hyphenated name, any case"},
        {"q=%D0%B8%D0%B2%D0%B0%D0%BD%20%D0%BF%D0%B5%D1%82", &ivan_conv, "иван пет"},
        {"q=8%20916%20000-11-22", &anna_conv, "a phone in national format"},
        {"q=%2B7%20(999)%20123%2045%2067", &ivan_conv, "a phone with spaces and brackets"},
        {"q=IVAN.PETROV%40example.ru", &ivan_conv, "an e-mail in another case"},
        {"q=%D0%BF%D0%B5%D1%80%D0%B5%D0%B7%D0%B2%D0%BE%D0%BD%D0%B8%D1%82%D1%8C", &ivan_conv,
         "перезвонить: a word of text"},
        {"q=%D0%B3%D0%B0%D1%80%D0%BD%D0%B8%D1%82%D1%83%D1%80", &anna_conv, "гарнитур"},
        {"q=77001", &olga_conv, "a messenger id as stored"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int n;
        int64_t id = first_hit(admin, cases[i].q, &n);
        if (n != 1 || id != *cases[i].conv)
            fprintf(stderr, "search %s (%s): %d hits, first %lld\n", cases[i].q, cases[i].why, n,
                    (long long)id);
        assert_int_equal(n, 1);
        assert_int_equal(id, *cases[i].conv);
    }
    /* Nothing, and odd input, is an empty page, not an error. */
    static const char *const none[] = {"q=%D0%9D%D0%B5%D1%82%D0%A2%D0%B0%D0%BA%D0%BE%D0%B3%D0%BE",
                                       "q=%25",
                                       "q=_",
                                       "q=%5C",
                                       "q=---",
                                       "q=%27%20OR%201%3D1%20--"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        int n;
        first_hit(admin, none[i], &n);
        assert_int_equal(n, 0);
    }
    /* Combined with filters, and paged. */
    int n;
    char q[128];
    snprintf(q, sizeof q, "q=%%D0%%9A%%D0%%BB%%D0%%B8%%D0%%B5%%D0%%BD%%D1%%82&channel_id=%lld",
             (long long)ch_form); /* Клиент, on the form channel */
    int64_t want =
        sql("SELECT COUNT(*) FROM conversations c JOIN clients cl ON cl.id = c.client_id "
            "WHERE cl.name LIKE 'Клиент %' AND c.channel_id = (SELECT id FROM channels "
            "WHERE kind = 'webform')",
            NULL, 0);
    assert_true(want > 7);
    assert_int_equal(list_count(admin, q, NULL, 0, NULL), want);
    /* A renamed client is found by the new name only (the words follow). */
    int64_t client = sql("SELECT client_id FROM conversations WHERE id = (SELECT MIN(id) FROM "
                         "conversations WHERE client_id IN (SELECT id FROM clients WHERE name = "
                         "'Ольга Иванова'))",
                         NULL, 0);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)client);
    json_decref(call(admin, "PATCH", path, "{\"name\":\"Olga Sidorova\"}", 200));
    int64_t id = first_hit(admin, "q=sidor", &n);
    assert_int_equal(n, 1);
    assert_int_equal(id, olga_conv);
    first_hit(admin, "q=%D0%9E%D0%BB%D1%8C%D0%B3%D0%B0", &n); /* Ольга */
    assert_int_equal(n, 0);
    /* An agent's search keeps their visibility. */
    struct sb_db_val a[] = {SB_INT(other_id), SB_INT(olga_conv)};
    sql("UPDATE conversations SET assignee_id = ?, team_id = NULL WHERE id = ?", a, 2);
    first_hit(agent, "q=sidor", &n);
    assert_int_equal(n, 0);
}

/* The name words the search uses (schema/006_inbox.sql): the first three,
 * split at runs of spaces and punctuation, NULL where a name has fewer, and
 * following a rename; an update that leaves the name alone keeps them. */
static void name_words_are_the_first_three(void **state)
{
    (void)state;
    struct sb_db_val name[] = {SB_TEXT("  (Пётр)   Сергеевич,Кузнецов-Младший  ")};
    int64_t id = sql("INSERT INTO clients (name) VALUES (?)", name, 1);
    struct sb_db_val a[] = {SB_INT(id)};
    assert_int_equal(sql("SELECT COUNT(*) FROM clients WHERE id = ? AND name_w1 = 'пётр' AND "
                         "name_w2 = 'СЕРГЕЕВИЧ' AND name_w3 = 'Кузнецов'",
                         a, 1),
                     1);
    assert_int_equal(sql("SELECT COUNT(*) FROM clients WHERE id = ? AND 'младший' IN "
                         "(name_w1, name_w2, name_w3)",
                         a, 1),
                     0);
    sql("UPDATE clients SET last_activity_at = NOW(6) WHERE id = ?", a, 1);
    assert_int_equal(
        sql("SELECT COUNT(*) FROM clients WHERE name_w3 = 'Кузнецов' AND id = ?", a, 1), 1);
    sql("UPDATE clients SET name = 'Zoe' WHERE id = ?", a, 1);
    assert_int_equal(sql("SELECT COUNT(*) FROM clients WHERE id = ? AND name_w1 = 'zoe' AND "
                         "name_w2 IS NULL AND name_w3 IS NULL",
                         a, 1),
                     1);
    sql("UPDATE clients SET name = NULL WHERE id = ?", a, 1);
    assert_int_equal(sql("SELECT COUNT(*) FROM clients WHERE id = ? AND name_w1 IS NULL", a, 1), 1);
    sql("DELETE FROM clients WHERE id = ?", a, 1);
}

/* The inbox prepares one statement per combination of filters: a
 * connection that meets more distinct statements than its cache holds
 * drops one and goes on (src/db.c), instead of failing the request. */
static void statement_cache_overflow_drops_one(void **state)
{
    (void)state;
    static char texts[400][40];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 400; i++) {
            snprintf(texts[i], sizeof texts[i], "SELECT %d + 0 * ?", i);
            struct sb_db_val a[] = {SB_INT(round)};
            assert_int_equal(sql(texts[i], a, 1), i);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_match_the_list),
        cmocka_unit_test(counts_move_with_changes),
        cmocka_unit_test(teams_api_roles_and_validation),
        cmocka_unit_test(team_membership_decides_visibility),
        cmocka_unit_test(search_finds_by_name_phone_email_text),
        cmocka_unit_test(name_words_are_the_first_three),
        cmocka_unit_test(statement_cache_overflow_drops_one),
    };
    return cmocka_run_group_tests_name("inbox extras", tests, setup, teardown);
}
