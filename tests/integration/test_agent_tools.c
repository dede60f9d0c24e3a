/* Agents' tools over HTTP on a real server: canned responses (roles,
 * validation, rendering with fallbacks), @mentions in notes making
 * notifications that reach only the mentioned user over the WebSocket,
 * read/unread, and the per-user language. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"
#include "wsclient.h"

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
static char admin[512], ada[512], boris[512], marketer[512];
static long long admin_id, ada_id, boris_id, marketer_id;
static long long anna_conv, boris_conv, nameless_conv;
static const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};

static long long scalar(const char *sql)
{
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    long long v = r.nrows ? (long long)sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

static void exec(const char *sql)
{
    char err[256] = "";
    int rc = sb_db_exec(db, sql, NULL, 0, NULL, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
}

static long long put_as(long long channel, const char *ext, const char *tg, const char *name,
                        const char *text, const char *email, const char *phone)
{
    struct sb_inbound *in = sb_inbound_new();
    in->channel_id = channel;
    in->external_id = sb_inbound_strdup(in, ext);
    in->kind = SB_IK_MESSAGE;
    in->display_name = name ? sb_inbound_strdup(in, name) : NULL;
    in->text = sb_inbound_strdup(in, text);
    sb_inbound_add_identity(in, SB_ID_TELEGRAM, tg);
    if (email)
        sb_inbound_add_identity(in, SB_ID_EMAIL, email);
    if (phone)
        sb_inbound_add_identity(in, SB_ID_PHONE, phone);
    struct sb_ingest_result res;
    char err[256] = "";
    int rc = sb_ingest(db, &opt, in, &res, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "ingest: %s\n", err);
    assert_int_equal(rc, SB_OK);
    sb_inbound_free(&in);
    return (long long)res.conversation_id;
}

static long long put(long long channel, const char *ext, const char *name, const char *text,
                     const char *email, const char *phone)
{
    return put_as(channel, ext, ext, name, text, email, phone);
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    db = th_db_connect();
    exec("INSERT INTO channels (kind, name) VALUES ('telegram', 'Bot')");
    long long ch = scalar("SELECT MAX(id) FROM channels");
    anna_conv = put(ch, "5001", "Анна Смирнова", "Хочу кухню", "anna@example.ru", "+79160001122");
    boris_conv = put(ch, "5002", "Иван Петров", "Перезвоните", NULL, NULL);
    nameless_conv = put(ch, "5003", NULL, "Привет", NULL, NULL);
    th_user("admin@tools.test", "admin", "admin-password-1");
    th_user("ada@tools.test", "agent", "ada-password-1");
    th_user("boris@tools.test", "agent", "boris-password-1");
    th_user("marketer@tools.test", "marketer", "marketer-password-1");
    exec("UPDATE users SET name = 'Vera Admin' WHERE email = 'admin@tools.test'");
    exec("UPDATE users SET name = 'Ada Agent' WHERE email = 'ada@tools.test'");
    exec("UPDATE users SET name = 'Boris Agent' WHERE email = 'boris@tools.test'");
    exec("UPDATE users SET name = 'Mark Marketer' WHERE email = 'marketer@tools.test'");
    admin_id = scalar("SELECT id FROM users WHERE email = 'admin@tools.test'");
    ada_id = scalar("SELECT id FROM users WHERE email = 'ada@tools.test'");
    boris_id = scalar("SELECT id FROM users WHERE email = 'boris@tools.test'");
    marketer_id = scalar("SELECT id FROM users WHERE email = 'marketer@tools.test'");
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE conversations SET assignee_id = %lld WHERE id = %lld",
             boris_id, boris_conv);
    exec(sql);
    exec("UPDATE clients SET custom_fields = '{\"city\":\"Казань\"}' WHERE name = 'Анна Смирнова'");
    th_server_start(&srv, NULL);
    th_login(&srv, "admin@tools.test", "admin-password-1", admin, sizeof admin);
    th_login(&srv, "ada@tools.test", "ada-password-1", ada, sizeof ada);
    th_login(&srv, "boris@tools.test", "boris-password-1", boris, sizeof boris);
    th_login(&srv, "marketer@tools.test", "marketer-password-1", marketer, sizeof marketer);
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

/* One request; asserts the status, returns the JSON body (NULL when none). */
static json_t *call(const char *cookie, const char *method, const char *path, const char *body,
                    long want)
{
    return th_call(&srv, cookie, method, path, body, want);
}

/* An error answer: the status and the JSON error code. */
static void refused(const char *cookie, const char *method, const char *path, const char *body,
                    long status, const char *code)
{
    json_t *o = call(cookie, method, path, body, status);
    assert_non_null(o);
    const char *c = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
    assert_non_null(c);
    if (strcmp(c, code))
        fprintf(stderr, "%s %s: code %s, wanted %s\n", method, path, c, code);
    assert_string_equal(c, code);
    assert_non_null(json_string_value(json_object_get(json_object_get(o, "error"), "message")));
    json_decref(o);
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long num(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void canned_roles_validation_and_crud(void **state)
{
    (void)state;
    const char *good = "{\"short_code\":\"hello\",\"title\":\"Greeting\",\"body\":\"Hi "
                       "{{client.first_name|there}}\"}";
    refused(ada, "POST", "/api/v1/canned", good, 403, "forbidden");
    refused(marketer, "GET", "/api/v1/canned", NULL, 403, "forbidden");
    refused(admin, "POST", "/api/v1/canned", "{\"short_code\":\"x\"}", 400, "bad_request");
    refused(admin, "POST", "/api/v1/canned", "{not json", 400, "bad_request");
    refused(admin, "POST", "/api/v1/canned",
            "{\"short_code\":\"two words\",\"title\":\"T\",\"body\":\"b\"}", 400, "bad_request");
    refused(admin, "POST", "/api/v1/canned",
            "{\"short_code\":\"a/b\",\"title\":\"T\",\"body\":\"b\"}", 400, "bad_request");
    refused(admin, "POST", "/api/v1/canned",
            "{\"short_code\":\"x\",\"title\":\"T\",\"body\":\"b\",\"colour\":\"red\"}", 400,
            "bad_request");
    refused(admin, "POST", "/api/v1/canned", "{\"short_code\":\"x\",\"title\":\"T\",\"body\":5}",
            400, "bad_request");
    /* A campaign-only field and an unknown one are refused when saved. */
    json_t *o =
        call(admin, "POST", "/api/v1/canned",
             "{\"short_code\":\"x\",\"title\":\"T\",\"body\":\"{{unsubscribe_url}}\"}", 400);
    assert_non_null(strstr(str(json_object_get(o, "error"), "message"), "unsubscribe_url"));
    json_decref(o);
    refused(admin, "POST", "/api/v1/canned",
            "{\"short_code\":\"x\",\"title\":\"T\",\"body\":\"Hi {{client.name\"}", 400,
            "bad_request");
    size_t big = 17000;
    char *huge = malloc(big + 100);
    int n = snprintf(huge, 100, "{\"short_code\":\"big\",\"title\":\"T\",\"body\":\"");
    memset(huge + n, 'a', big);
    strcpy(huge + n + big, "\"}");
    refused(admin, "POST", "/api/v1/canned", huge, 413, "too_large");
    free(huge);

    o = call(admin, "POST", "/api/v1/canned", good, 201);
    long long id = num(o, "id");
    assert_true(id > 0);
    assert_string_equal(str(o, "short_code"), "hello");
    assert_string_equal(str(o, "body"), "Hi {{client.first_name|there}}");
    json_decref(o);
    /* Short codes are unique regardless of case. */
    refused(admin, "POST", "/api/v1/canned",
            "{\"short_code\":\"HELLO\",\"title\":\"Again\",\"body\":\"b\"}", 409, "conflict");
    o = call(admin, "POST", "/api/v1/canned",
             "{\"short_code\":\"доставка\",\"title\":\"Сроки доставки\",\"body\":\"3 дня\"}", 201);
    long long id2 = num(o, "id");
    json_decref(o);

    /* Agents list and search them, by code or title, with or without the "/". */
    o = call(ada, "GET", "/api/v1/canned", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 2);
    json_decref(o);
    o = call(ada, "GET", "/api/v1/canned?q=hel", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    assert_int_equal(num(json_array_get(json_object_get(o, "items"), 0), "id"), id);
    json_decref(o);
    o = call(ada, "GET", "/api/v1/canned?q=%2F%D0%B4%D0%BE%D1%81", NULL, 200); /* /дос */
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    assert_int_equal(num(json_array_get(json_object_get(o, "items"), 0), "id"), id2);
    json_decref(o);
    o = call(ada, "GET", "/api/v1/canned?q=%25", NULL, 200); /* a literal % matches nothing */
    assert_int_equal(json_array_size(json_object_get(o, "items")), 0);
    json_decref(o);

    char path[96];
    snprintf(path, sizeof path, "/api/v1/canned/%lld", id2);
    refused(ada, "PATCH", path, "{\"title\":\"x\"}", 403, "forbidden");
    o = call(admin, "PATCH", path, "{\"title\":\"Доставка\"}", 200);
    assert_string_equal(str(o, "title"), "Доставка");
    assert_string_equal(str(o, "body"), "3 дня");
    json_decref(o);
    refused(admin, "PATCH", path, "{\"short_code\":\"Hello\"}", 409, "conflict");
    refused(admin, "PATCH", path, "{\"body\":\"{{agent.nam}}\"}", 400, "bad_request");
    refused(admin, "PATCH", "/api/v1/canned/999999", "{\"title\":\"x\"}", 404, "not_found");
    refused(ada, "DELETE", path, NULL, 403, "forbidden");
    o = call(admin, "DELETE", path, NULL, 204);
    json_decref(o);
    refused(admin, "DELETE", path, NULL, 404, "not_found");
}

static long long canned(const char *code, const char *body)
{
    json_t *b = json_pack("{s:s,s:s,s:s}", "short_code", code, "title", code, "body", body);
    char *text = json_dumps(b, 0);
    json_t *o = call(admin, "POST", "/api/v1/canned", text, 201);
    long long id = num(o, "id");
    json_decref(o);
    free(text);
    json_decref(b);
    return id;
}

static char *render(const char *cookie, long long conv, long long cid, long status)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/canned/%lld/render", conv, cid);
    json_t *o = call(cookie, "POST", path, NULL, status);
    char *s = status == 200 ? strdup(str(o, "text")) : NULL;
    json_decref(o);
    return s;
}

static void canned_renders_for_the_conversation_with_fallbacks(void **state)
{
    (void)state;
    long long id = canned(
        "greet", "Здравствуйте, {{client.first_name|коллега}}! Я {{agent.name}}, "
                 "обращение №{{conversation.id}}. Почта: {{client.email|нет}}, телефон: "
                 "{{client.phone|нет}}, город: {{custom.city|не указан}}. <b>{{client.name}}");
    char want[512];
    snprintf(want, sizeof want,
             "Здравствуйте, Анна! Я Ada Agent, обращение №%lld. Почта: anna@example.ru, "
             "телефон: +79160001122, город: Казань. <b>Анна Смирнова",
             anna_conv);
    char *s = render(ada, anna_conv, id, 200);
    assert_string_equal(s, want);
    free(s);
    /* A client with no name, e-mail, phone or custom fields: every fallback. */
    snprintf(want, sizeof want,
             "Здравствуйте, коллега! Я Vera Admin, обращение №%lld. Почта: нет, телефон: нет, "
             "город: не указан. <b>",
             nameless_conv);
    s = render(admin, nameless_conv, id, 200);
    assert_string_equal(s, want);
    free(s);
    /* Only for a conversation the caller may see; only an existing response. */
    render(ada, boris_conv, id, 404);
    s = render(boris, boris_conv, id, 200);
    assert_non_null(strstr(s, "Я Boris Agent"));
    free(s);
    render(ada, anna_conv, 999999, 404);
    render(marketer, anna_conv, id, 403);
}

static json_t *find_id(const json_t *items, long long id)
{
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v)
    {
        if (num(v, "id") == id)
            return v;
    }
    return NULL;
}

static void agents_list_for_mentions(void **state)
{
    (void)state;
    json_t *o = call(ada, "GET", "/api/v1/agents", NULL, 200);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 3); /* admin, two agents; no marketer */
    assert_non_null(find_id(items, admin_id));
    assert_null(find_id(items, marketer_id));
    assert_string_equal(str(find_id(items, boris_id), "name"), "Boris Agent");
    assert_null(json_object_get(find_id(items, boris_id), "can_see"));
    json_decref(o);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/agents?conversation=%lld", boris_conv);
    o = call(admin, "GET", path, NULL, 200);
    items = json_object_get(o, "items");
    assert_true(json_is_true(json_object_get(find_id(items, boris_id), "can_see")));
    assert_true(json_is_true(json_object_get(find_id(items, admin_id), "can_see")));
    assert_true(json_is_false(json_object_get(find_id(items, ada_id), "can_see")));
    json_decref(o);
    refused(ada, "GET", path, NULL, 404, "not_found");
    refused(ada, "GET", "/api/v1/agents?conversation=x", NULL, 400, "bad_request");
    refused(marketer, "GET", "/api/v1/agents", NULL, 403, "forbidden");
}

static struct th_ws *connect_as(const char *cookie)
{
    char why[256] = "";
    struct th_ws *c = th_ws_connect(srv.port, cookie, why, sizeof why);
    if (!c)
        fprintf(stderr, "ws connect: %s\n", why);
    assert_non_null(c);
    return c;
}

/* Events of `type` seen within `quiet_ms` of silence; the first one's
 * frame in *first (malloc'd) when asked. */
static int count_events(struct th_ws *c, const char *type, int quiet_ms, char **first)
{
    char key[80];
    snprintf(key, sizeof key, "\"event\":\"%s\"", type);
    int n = 0;
    char *m;
    while ((m = th_ws_recv_type(c, "event", quiet_ms)) != NULL) {
        if (strstr(m, key) && n++ == 0 && first) {
            *first = m;
            continue;
        }
        free(m);
    }
    return n;
}

static long long note(const char *cookie, long long conv, const char *body, long status)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/notes", conv);
    json_t *o = call(cookie, "POST", path, body, status);
    long long id = status == 201 ? num(o, "id") : 0;
    json_decref(o);
    return id;
}

static void mention_notifies_only_the_mentioned_user(void **state)
{
    (void)state;
    struct th_ws *wa = connect_as(admin), *wada = connect_as(ada), *wb = connect_as(boris);
    th_ws_pump(wa, 300);
    char body[256], path[128], sql[256];
    snprintf(body, sizeof body,
             "{\"text\":\"@Vera Admin посмотрите, пожалуйста\",\"mentions\":[%lld,%lld]}", admin_id,
             admin_id);
    char p[96];
    snprintf(p, sizeof p, "/api/v1/conversations/%lld/notes", anna_conv);
    json_t *o = call(ada, "POST", p, body, 201);
    long long nid = num(o, "id");
    json_t *m = json_object_get(json_object_get(o, "meta"), "mentions");
    assert_int_equal(json_array_size(m), 1); /* the duplicate is dropped */
    assert_int_equal(json_integer_value(json_array_get(m, 0)), admin_id);
    json_decref(o);
    /* The note stores its mentions; one notification row for the admin. */
    snprintf(sql, sizeof sql,
             "SELECT JSON_VALUE(meta, '$.mentions[0]') FROM interactions WHERE id = %lld", nid);
    assert_int_equal(scalar(sql), admin_id);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM notifications WHERE interaction_id = %lld AND user_id = %lld "
             "AND kind = 'mention' AND actor_user_id = %lld AND conversation_id = %lld AND "
             "read_at IS NULL",
             nid, admin_id, ada_id, anna_conv);
    assert_int_equal(scalar(sql), 1);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM notifications WHERE interaction_id = %lld",
             nid);
    assert_int_equal(scalar(sql), 1);

    /* Over the WebSocket: the admin gets notification.created, nobody else. */
    char *frame = NULL;
    assert_int_equal(count_events(wa, "notification.created", 1500, &frame), 1);
    json_t *ev = json_loads(frame, 0, NULL);
    free(frame);
    json_t *d = json_object_get(ev, "data");
    assert_int_equal(num(d, "interaction_id"), nid);
    assert_int_equal(num(d, "conversation_id"), anna_conv);
    assert_string_equal(str(json_object_get(d, "actor"), "name"), "Ada Agent");
    assert_string_equal(str(d, "preview"), "@Vera Admin посмотрите, пожалуйста");
    long long notif = num(d, "id");
    json_decref(ev);
    assert_int_equal(count_events(wada, "notification.created", 500, NULL), 0);
    assert_int_equal(count_events(wb, "notification.created", 300, NULL), 0);

    /* The list: the admin's unread one; Boris has none. */
    o = call(admin, "GET", "/api/v1/notifications?unread=1", NULL, 200);
    assert_int_equal(num(o, "unread_count"), 1);
    json_t *it = json_array_get(json_object_get(o, "items"), 0);
    assert_int_equal(num(it, "id"), notif);
    assert_string_equal(str(it, "kind"), "mention");
    assert_string_equal(str(json_object_get(it, "actor"), "name"), "Ada Agent");
    assert_string_equal(str(it, "client_name"), "Анна Смирнова");
    assert_true(json_is_null(json_object_get(it, "read_at")));
    json_decref(o);
    o = call(boris, "GET", "/api/v1/notifications", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 0);
    assert_int_equal(num(o, "unread_count"), 0);
    json_decref(o);
    refused(boris, "GET", "/api/v1/notifications?unread=yes", NULL, 400, "bad_request");

    /* Someone else's notification cannot be touched; the owner marks it read. */
    snprintf(path, sizeof path, "/api/v1/notifications/%lld/read", notif);
    refused(boris, "POST", path, NULL, 404, "not_found");
    refused(admin, "POST", "/api/v1/notifications/abc/read", NULL, 400, "bad_request");
    o = call(admin, "POST", path, NULL, 200);
    assert_int_equal(num(o, "updated"), 1);
    assert_int_equal(num(o, "unread_count"), 0);
    json_decref(o);
    assert_int_equal(count_events(wa, "notification.read", 1500, NULL), 1);
    assert_int_equal(count_events(wb, "notification.read", 300, NULL), 0);
    o = call(admin, "POST", path, NULL, 200); /* again: nothing changes */
    assert_int_equal(num(o, "updated"), 0);
    json_decref(o);
    o = call(admin, "GET", "/api/v1/notifications?unread=1", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 0);
    json_decref(o);
    o = call(admin, "GET", "/api/v1/notifications", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    assert_non_null(str(json_array_get(json_object_get(o, "items"), 0), "read_at"));
    json_decref(o);

    /* Two more (one by the admin naming Ada and Boris on Boris's conversation
     * is refused for Ada: below), then read-all. */
    snprintf(body, sizeof body, "{\"text\":\"@Vera Admin ещё\",\"mentions\":[%lld]}", admin_id);
    note(boris, boris_conv, body, 201);
    note(ada, anna_conv, body, 201);
    o = call(admin, "GET", "/api/v1/notifications?unread=1&limit=1", NULL, 200);
    assert_int_equal(num(o, "unread_count"), 2);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    assert_true(json_is_string(json_object_get(o, "next_cursor")));
    json_decref(o);
    o = call(admin, "POST", "/api/v1/notifications/read-all", NULL, 200);
    assert_int_equal(num(o, "updated"), 2);
    assert_int_equal(num(o, "unread_count"), 0);
    json_decref(o);
    th_ws_free(&wa);
    th_ws_free(&wada);
    th_ws_free(&wb);
}

static void mentions_are_validated(void **state)
{
    (void)state;
    char sql[160], body[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM interactions WHERE conversation_id = %lld",
             anna_conv);
    long long before = scalar(sql);
    char p[96];
    snprintf(p, sizeof p, "/api/v1/conversations/%lld/notes", anna_conv);
    refused(ada, "POST", p, "{\"text\":\"x\",\"mentions\":\"Vera\"}", 400, "bad_request");
    refused(ada, "POST", p, "{\"text\":\"x\",\"mentions\":[0]}", 400, "bad_request");
    refused(ada, "POST", p, "{\"text\":\"x\",\"mentions\":[\"1\"]}", 400, "bad_request");
    refused(ada, "POST", p, "{\"text\":\"x\",\"mentions\":[999999]}", 422, "unknown_user");
    snprintf(body, sizeof body, "{\"text\":\"x\",\"mentions\":[%lld]}", marketer_id);
    refused(ada, "POST", p, body, 422, "unknown_user");
    /* Ada cannot see Boris's conversation: the admin may not name her there. */
    snprintf(p, sizeof p, "/api/v1/conversations/%lld/notes", boris_conv);
    snprintf(body, sizeof body, "{\"text\":\"@Ada\",\"mentions\":[%lld]}", ada_id);
    json_t *o = call(admin, "POST", p, body, 422);
    assert_string_equal(str(json_object_get(o, "error"), "code"), "mention_not_visible");
    assert_non_null(strstr(str(json_object_get(o, "error"), "message"), "Ada Agent"));
    json_decref(o);
    assert_int_equal(scalar(sql), before); /* nothing stored by a refused note */
    /* Naming yourself stores the mention but notifies nobody. */
    snprintf(body, sizeof body, "{\"text\":\"@me\",\"mentions\":[%lld]}", ada_id);
    long long nid = note(ada, anna_conv, body, 201);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM notifications WHERE interaction_id = %lld",
             nid);
    assert_int_equal(scalar(sql), 0);
    /* No mentions, or an empty list: a plain note with no meta. */
    nid = note(ada, anna_conv, "{\"text\":\"plain\",\"mentions\":[]}", 201);
    snprintf(sql, sizeof sql, "SELECT meta IS NULL FROM interactions WHERE id = %lld", nid);
    assert_int_equal(scalar(sql), 1);
}

static void language_is_saved_on_the_server(void **state)
{
    (void)state;
    json_t *o = call(ada, "PATCH", "/api/v1/me", "{\"locale\":\"ru\"}", 200);
    assert_string_equal(str(json_object_get(o, "user"), "locale"), "ru");
    json_decref(o);
    o = call(ada, "GET", "/api/v1/me", NULL, 200);
    assert_string_equal(str(json_object_get(o, "user"), "locale"), "ru");
    json_decref(o);
    /* A new session (another browser) gets it at sign-in. */
    char again[512];
    th_login(&srv, "ada@tools.test", "ada-password-1", again, sizeof again);
    o = call(again, "GET", "/api/v1/me", NULL, 200);
    assert_string_equal(str(json_object_get(o, "user"), "locale"), "ru");
    json_decref(o);
    refused(ada, "PATCH", "/api/v1/me", "{\"locale\":\"de\"}", 400, "bad_request");
    refused(ada, "PATCH", "/api/v1/me", "{\"locale\":1}", 400, "bad_request");
    refused(ada, "PATCH", "/api/v1/me", "{\"name\":\"Eve\"}", 400, "bad_request");
    refused(ada, "PATCH", "/api/v1/me", "{}", 400, "bad_request");
    o = call(marketer, "PATCH", "/api/v1/me", "{\"locale\":\"en\"}", 200);
    json_decref(o);
    o = call(ada, "PATCH", "/api/v1/me", "{\"locale\":null}", 200);
    assert_true(json_is_null(json_object_get(json_object_get(o, "user"), "locale")));
    json_decref(o);
    assert_int_equal(scalar("SELECT locale IS NULL FROM users WHERE email = 'ada@tools.test'"), 1);
}

static long long unread_of(long long user, const char *kind, long long conv)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM notifications WHERE user_id = %lld AND kind = '%s' AND "
             "conversation_id = %lld AND read_at IS NULL",
             user, kind, conv);
    return scalar(sql);
}

/* The frame's data when it is a notification.created of `kind`. */
static json_t *notification_of(struct th_ws *c, const char *kind, int quiet_ms, int *count)
{
    json_t *found = NULL;
    char *m;
    *count = 0;
    while ((m = th_ws_recv_type(c, "event", quiet_ms)) != NULL) {
        json_t *ev = json_loads(m, 0, NULL);
        free(m);
        json_t *d = json_object_get(ev, "data");
        if (ev && !strcmp(str(ev, "event"), "notification.created") &&
            !strcmp(str(d, "kind"), kind)) {
            ++*count;
            json_decref(found);
            found = json_incref(d);
        }
        json_decref(ev);
    }
    return found;
}

static void assignment_and_message_notifications(void **state)
{
    (void)state;
    char path[96], body[128], sql[256];
    struct th_ws *wada = connect_as(ada);
    th_ws_pump(wada, 300);
    json_t *o = call(ada, "GET", "/api/v1/me", NULL, 200);
    json_t *n = json_object_get(json_object_get(o, "user"), "notify");
    assert_true(json_is_true(json_object_get(n, "assigned")));
    assert_true(json_is_true(json_object_get(n, "message")));
    json_decref(o);

    /* The admin hands Anna's conversation to Ada: one 'assigned', pushed to her. */
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", anna_conv);
    snprintf(body, sizeof body, "{\"assignee_id\":%lld}", ada_id);
    json_decref(call(admin, "PATCH", path, body, 200));
    assert_int_equal(unread_of(ada_id, "assigned", anna_conv), 1);
    int cnt;
    json_t *d = notification_of(wada, "assigned", 1500, &cnt);
    assert_int_equal(cnt, 1);
    assert_int_equal(num(d, "conversation_id"), anna_conv);
    assert_string_equal(str(json_object_get(d, "actor"), "name"), "Vera Admin");
    assert_string_equal(str(d, "client_name"), "Анна Смирнова");
    json_decref(d);
    /* The same assignment again, or taking one yourself: no news. */
    json_decref(call(admin, "PATCH", path, body, 200));
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", nameless_conv);
    json_decref(call(ada, "PATCH", path, body, 200));
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM notifications WHERE kind = 'assigned'");
    assert_int_equal(scalar(sql), 1);

    /* Three client messages into her conversation, one of them a batch of
     * two: one unread 'message' row, pointing at the newest. */
    long long ch = scalar("SELECT MAX(id) FROM channels");
    assert_int_equal(put_as(ch, "m-1", "5001", "Анна Смирнова", "Ещё вопрос", NULL, NULL),
                     anna_conv);
    struct sb_inbound *in[2];
    struct sb_ingest_result res[2];
    for (int i = 0; i < 2; i++) {
        in[i] = sb_inbound_new();
        in[i]->channel_id = ch;
        in[i]->external_id = sb_inbound_strdup(in[i], i ? "m-3" : "m-2");
        in[i]->kind = SB_IK_MESSAGE;
        in[i]->text = sb_inbound_strdup(in[i], i ? "И последнее" : "И ещё");
        sb_inbound_add_identity(in[i], SB_ID_TELEGRAM, "5001");
    }
    char err[256] = "";
    int rc =
        sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)in, 2, res, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "ingest: %s\n", err);
    assert_int_equal(rc, SB_OK);
    for (int i = 0; i < 2; i++)
        sb_inbound_free(&in[i]);
    assert_int_equal(unread_of(ada_id, "message", anna_conv), 1);
    snprintf(sql, sizeof sql,
             "SELECT interaction_id FROM notifications WHERE user_id = %lld AND kind = 'message'",
             ada_id);
    assert_int_equal(scalar(sql), (long long)res[1].interaction_id);
    d = notification_of(wada, "message", 1500, &cnt);
    assert_int_equal(cnt, 2); /* created, then refreshed: same id, newest text */
    assert_int_equal(num(d, "interaction_id"), (long long)res[1].interaction_id);
    assert_string_equal(str(d, "preview"), "И последнее");
    assert_string_equal(str(d, "client_name"), "Анна Смирнова");
    long long first = num(d, "id");
    json_decref(d);
    /* Nobody else hears of it: the admin (who sees everything) gets no notification. */
    assert_int_equal(scalar("SELECT COUNT(*) FROM notifications WHERE kind = 'message'"), 1);

    /* Opening the conversation reads it; the next message makes a new one. */
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", anna_conv);
    json_decref(call(ada, "PATCH", path, "{\"unread\":0}", 200));
    assert_int_equal(unread_of(ada_id, "message", anna_conv), 0);
    put_as(ch, "m-4", "5001", "Анна Смирнова", "Вы тут?", NULL, NULL);
    assert_int_equal(unread_of(ada_id, "message", anna_conv), 1);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM notifications WHERE kind = 'message' AND id <> %lld", first);
    assert_int_equal(scalar(sql), 1);
    o = call(ada, "GET", "/api/v1/notifications?unread=1", NULL, 200);
    assert_int_equal(num(o, "unread_count"), 2); /* assigned + message */
    json_decref(o);

    /* Preferences: off means no row, for either kind; bad input is 400. */
    o = call(ada, "PATCH", "/api/v1/me", "{\"notify\":{\"message\":false}}", 200);
    n = json_object_get(json_object_get(o, "user"), "notify");
    assert_true(json_is_true(json_object_get(n, "assigned")));
    assert_true(json_is_false(json_object_get(n, "message")));
    json_decref(o);
    json_decref(call(ada, "PATCH", path, "{\"unread\":0}", 200));
    put_as(ch, "m-5", "5001", "Анна Смирнова", "Алло", NULL, NULL);
    assert_int_equal(unread_of(ada_id, "message", anna_conv), 0);
    json_decref(call(ada, "PATCH", "/api/v1/me", "{\"notify\":{\"assigned\":false}}", 200));
    o = call(ada, "GET", "/api/v1/me", NULL, 200);
    n = json_object_get(json_object_get(o, "user"), "notify");
    assert_true(json_is_false(json_object_get(n, "assigned")));
    assert_true(json_is_false(json_object_get(n, "message")));
    json_decref(o);
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", boris_conv);
    json_decref(call(admin, "PATCH", path, body, 200));
    assert_int_equal(unread_of(ada_id, "assigned", boris_conv), 0);
    refused(ada, "PATCH", "/api/v1/me", "{\"notify\":{\"typing\":true}}", 400, "bad_request");
    refused(ada, "PATCH", "/api/v1/me", "{\"notify\":{\"message\":\"no\"}}", 400, "bad_request");
    refused(ada, "PATCH", "/api/v1/me", "{\"notify\":true}", 400, "bad_request");
    /* Both at once, with the language. */
    o = call(ada, "PATCH", "/api/v1/me",
             "{\"locale\":\"en\",\"notify\":{\"assigned\":true,\"message\":true}}", 200);
    assert_string_equal(str(json_object_get(o, "user"), "locale"), "en");
    json_decref(o);
    assert_int_equal(
        scalar("SELECT notify_assigned + notify_message FROM users WHERE email = 'ada@tools.test'"),
        2);
    th_ws_free(&wada);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canned_roles_validation_and_crud),
        cmocka_unit_test(canned_renders_for_the_conversation_with_fallbacks),
        cmocka_unit_test(agents_list_for_mentions),
        cmocka_unit_test(mention_notifies_only_the_mentioned_user),
        cmocka_unit_test(mentions_are_validated),
        cmocka_unit_test(language_is_saved_on_the_server),
        cmocka_unit_test(assignment_and_message_notifications),
    };
    return cmocka_run_group_tests_name("agent tools", tests, setup, teardown);
}
