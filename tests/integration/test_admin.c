/* Admin pages' API on a real server: changing a channel (secrets write-only,
 * sealed at rest, kept when omitted; disabled channels' webhooks answer 404),
 * test connection through the API against a mock Telegram, changing users
 * (a disabled user is signed out at once, the last admin is kept), and the
 * last message of each conversation in the inbox list. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <time.h>

#define TOKEN       "111111:FIRST-TOKEN"
#define NEW_TOKEN   "222222:SECOND-TOKEN"
#define HOOK_SECRET "hook-secret-0123456789"

static struct th_server srv;
static struct th_mock mock;
static struct sb_db *db;
static char admin[512], agent[512];
static long long admin_id, agent_id, tg_id;

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

/* The first cell of a query as a string (caller frees), NULL for no row. */
static char *text(const char *sql)
{
    struct sb_db_rows r;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err), SB_OK);
    char *v = r.nrows && sb_db_cell(&r, 0, 0) ? strdup(sb_db_cell(&r, 0, 0)) : NULL;
    sb_db_rows_free(&r);
    return v;
}

static json_t *call(const char *cookie, const char *method, const char *path, const char *body,
                    long want)
{
    return th_call(&srv, cookie, method, path, body, want);
}

static void refused(const char *cookie, const char *method, const char *path, const char *body,
                    long status, const char *code)
{
    json_t *o = call(cookie, method, path, body, status);
    const char *c = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
    assert_non_null(c);
    if (strcmp(c, code))
        fprintf(stderr, "%s %s: code %s, wanted %s\n", method, path, c, code);
    assert_string_equal(c, code);
    json_decref(o);
}

/* A Telegram update through the webhook, signed with `secret`. */
static long tg_post(long long channel, const char *secret, int update_id, const char *msg)
{
    char path[64], sh[160];
    snprintf(path, sizeof path, "/hooks/telegram/%lld", channel);
    snprintf(sh, sizeof sh, "X-Telegram-Bot-Api-Secret-Token: %s", secret);
    json_t *u =
        json_pack("{s:i,s:{s:i,s:{s:i,s:s},s:{s:i,s:s},s:i,s:s}}", "update_id", update_id,
                  "message", "message_id", update_id, "from", "id", 4242, "first_name", "Анна",
                  "chat", "id", 4242, "type", "private", "date", (int)time(NULL), "text", msg);
    char *body = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    const char *h[] = {"Content-Type: application/json", sh, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, h, &r), 0);
    free(body);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    db = th_db_connect();
    th_mock_start(&mock, 200, "{\"ok\":true,\"result\":{\"id\":1,\"username\":\"shop_bot\"}}");
    th_user("admin@admin.test", "admin", "admin-password-1");
    th_user("agent@admin.test", "agent", "agent-password-1");
    admin_id = scalar("SELECT id FROM users WHERE email = 'admin@admin.test'");
    agent_id = scalar("SELECT id FROM users WHERE email = 'agent@admin.test'");
    th_server_start(&srv, NULL);
    th_login(&srv, "admin@admin.test", "admin-password-1", admin, sizeof admin);
    th_login(&srv, "agent@admin.test", "agent-password-1", agent, sizeof agent);
    char body[512];
    snprintf(body, sizeof body,
             "{\"kind\":\"telegram\",\"name\":\"Shop bot\",\"config\":{\"token\":\"" TOKEN
             "\",\"secret_token\":\"" HOOK_SECRET "\",\"api_base\":\"http://127.0.0.1:%d\"}}",
             mock.port);
    json_t *ch = call(admin, "POST", "/api/v1/channels", body, 201);
    tg_id = (long long)json_integer_value(json_object_get(ch, "id"));
    json_decref(ch);
    assert_true(tg_id > 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    th_mock_stop(&mock);
    sb_db_close(&db);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

static void roles_and_validation(void **state)
{
    (void)state;
    char p[96], t[96];
    snprintf(p, sizeof p, "/api/v1/channels/%lld", tg_id);
    snprintf(t, sizeof t, "/api/v1/channels/%lld/test", tg_id);
    refused(agent, "PATCH", p, "{\"name\":\"x\"}", 403, "forbidden");
    refused(agent, "POST", t, "{}", 403, "forbidden");
    refused(agent, "PATCH", "/api/v1/users/1", "{\"name\":\"x\"}", 403, "forbidden");
    refused(admin, "PATCH", "/api/v1/channels/999999", "{\"name\":\"x\"}", 404, "not_found");
    refused(admin, "POST", "/api/v1/channels/999999/test", "{}", 404, "not_found");
    refused(admin, "PATCH", "/api/v1/users/999999", "{\"name\":\"x\"}", 404, "not_found");
    refused(admin, "PATCH", p, "{\"colour\":\"red\"}", 400, "bad_request");
    refused(admin, "PATCH", p, "{\"name\":\"\"}", 400, "bad_request");
    refused(admin, "PATCH", p, "{\"enabled\":\"yes\"}", 400, "bad_request");
    refused(admin, "PATCH", p, "{\"config\":[1]}", 400, "bad_request");
    refused(admin, "PATCH", p, "{not json", 400, "bad_request");
    /* The kind's own validation runs on the merged settings. */
    refused(admin, "PATCH", p, "{\"config\":{\"token\":\"no-colon\"}}", 400, "bad_request");
    char u[96];
    snprintf(u, sizeof u, "/api/v1/users/%lld", agent_id);
    refused(admin, "PATCH", u, "{\"role\":\"boss\"}", 400, "bad_request");
    refused(admin, "PATCH", u, "{\"password\":\"short\"}", 400, "bad_request");
    refused(admin, "PATCH", u, "{\"disabled\":1}", 400, "bad_request");
    refused(admin, "PATCH", u, "{\"email\":\"x@y.z\"}", 400, "bad_request");
    refused(admin, "PATCH", u, "{\"name\":\"\"}", 400, "bad_request");
}

static void channel_edit_keeps_and_seals_secrets(void **state)
{
    (void)state;
    char p[96], sql[256];
    snprintf(p, sizeof p, "/api/v1/channels/%lld", tg_id);
    snprintf(sql, sizeof sql,
             "SELECT JSON_UNQUOTE(JSON_EXTRACT(config, '$.secret_token')) FROM channels "
             "WHERE id = %lld",
             tg_id);
    char *sealed_before = text(sql);
    assert_non_null(sealed_before);
    assert_null(strstr(sealed_before, HOOK_SECRET));

    /* A new token and a new name; secret_token omitted. */
    json_t *o = call(admin, "PATCH", p,
                     "{\"name\":\"Shop bot 2\",\"config\":{\"token\":\"" NEW_TOKEN "\"}}", 200);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "Shop bot 2");
    json_t *cfg = json_object_get(o, "config");
    assert_string_equal(json_string_value(json_object_get(cfg, "token")), "********");
    assert_string_equal(json_string_value(json_object_get(cfg, "secret_token")), "********");
    char *dump = json_dumps(o, 0);
    assert_null(strstr(dump, "SECOND-TOKEN"));
    assert_null(strstr(dump, HOOK_SECRET));
    free(dump);
    json_decref(o);

    /* Sealed at rest: the raw column holds neither secret. */
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM channels WHERE id = %lld AND (config LIKE "
             "'%%SECOND-TOKEN%%' OR config LIKE '%%" HOOK_SECRET "%%')",
             tg_id);
    assert_int_equal(scalar(sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT JSON_UNQUOTE(JSON_EXTRACT(config, '$.secret_token')) FROM channels "
             "WHERE id = %lld",
             tg_id);
    char *sealed_after = text(sql);
    assert_string_equal(sealed_before, sealed_after); /* omitted: untouched */
    free(sealed_after);
    /* "" and the mask keep it too. */
    o = call(admin, "PATCH", p, "{\"config\":{\"secret_token\":\"\",\"token\":\"********\"}}", 200);
    json_decref(o);
    sealed_after = text(sql);
    assert_string_equal(sealed_before, sealed_after);
    free(sealed_after);
    free(sealed_before);

    /* The kept secret still verifies webhooks, the new token is the one used. */
    assert_int_equal(tg_post(tg_id, HOOK_SECRET, 900001, "Привет после правки"), 200);
    assert_int_equal(tg_post(tg_id, "wrong-secret-0123456789", 900002, "x"), 401);
    snprintf(sql, sizeof sql, "/api/v1/channels/%lld/test", tg_id);
    int before = mock.requests;
    o = call(admin, "POST", sql, "{}", 200);
    assert_true(json_is_true(json_object_get(o, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(o, "message")), "shop_bot"));
    json_decref(o);
    assert_int_equal(mock.requests, before + 1);
    assert_non_null(strstr(mock.seen, "GET /bot" NEW_TOKEN "/getMe"));

    /* The provider refuses: ok false with its words, recorded as the status. */
    th_mock_respond(&mock, 401,
                    "{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}");
    o = call(admin, "POST", sql, "{}", 200);
    assert_true(json_is_false(json_object_get(o, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(o, "message")), "Unauthorized"));
    assert_null(strstr(json_string_value(json_object_get(o, "message")), "SECOND-TOKEN"));
    json_decref(o);
    th_mock_respond(&mock, 200, "{\"ok\":true,\"result\":{\"id\":1,\"username\":\"shop_bot\"}}");
    char q[256];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM channels WHERE id = %lld AND last_error LIKE "
             "'%%Unauthorized%%'",
             tg_id);
    assert_int_equal(scalar(q), 1);

    /* Audit rows and a channel.updated event naming the secret, not its value. */
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM audit_log WHERE action = 'channel.update' AND target_id = %lld",
             tg_id);
    assert_int_equal(scalar(q), 2);
    assert_int_equal(scalar("SELECT COUNT(*) FROM events WHERE type = 'channel.updated' AND "
                            "JSON_CONTAINS(data, '\"token\"', '$.changed')"),
                     1);
    assert_int_equal(scalar("SELECT COUNT(*) FROM events WHERE type = 'channel.updated' AND "
                            "data LIKE '%SECOND-TOKEN%'"),
                     0);
}

static void disabled_channel_hooks_404_and_test_still_works(void **state)
{
    (void)state;
    char p[96], t[96];
    snprintf(p, sizeof p, "/api/v1/channels/%lld", tg_id);
    snprintf(t, sizeof t, "/api/v1/channels/%lld/test", tg_id);
    /* The webhook path keeps a copy of the channel for two seconds
     * (channel_store.h): a change made here drops it at once. */
    assert_int_equal(tg_post(tg_id, HOOK_SECRET, 900009, "just before"), 200);
    json_t *o = call(admin, "PATCH", p, "{\"enabled\":false}", 200);
    assert_true(json_is_false(json_object_get(o, "enabled")));
    json_decref(o);
    assert_int_equal(tg_post(tg_id, HOOK_SECRET, 900010, "while disabled"), 404);
    assert_int_equal(scalar("SELECT COUNT(*) FROM interactions WHERE text = 'while disabled'"), 0);
    o = call(admin, "POST", t, "{}", 200);
    assert_true(json_is_true(json_object_get(o, "ok")));
    json_decref(o);
    o = call(admin, "GET", "/api/v1/channels", NULL, 200);
    json_t *items = json_object_get(o, "items"), *v;
    size_t i;
    int seen = 0;
    json_array_foreach(items, i, v) if (json_integer_value(json_object_get(v, "id")) == tg_id)
    {
        seen = 1;
        assert_true(json_is_false(json_object_get(v, "enabled")));
        assert_string_equal(json_string_value(json_object_get(v, "name")), "Shop bot 2");
    }
    assert_true(seen);
    json_decref(o);
    o = call(admin, "PATCH", p, "{\"enabled\":true}", 200);
    json_decref(o);
    assert_int_equal(tg_post(tg_id, HOOK_SECRET, 900011, "enabled again"), 200);
}

static void disabled_user_is_signed_out_at_once(void **state)
{
    (void)state;
    char u[96], other[512];
    snprintf(u, sizeof u, "/api/v1/users/%lld", agent_id);
    th_login(&srv, "agent@admin.test", "agent-password-1", other, sizeof other);
    json_t *o = call(agent, "GET", "/api/v1/me", NULL, 200);
    json_decref(o);
    o = call(admin, "PATCH", u, "{\"disabled\":true}", 200);
    assert_true(json_is_true(json_object_get(o, "disabled")));
    json_decref(o);
    refused(agent, "GET", "/api/v1/me", NULL, 401, "unauthorized");
    refused(other, "GET", "/api/v1/conversations", NULL, 401, "unauthorized");
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sessions WHERE user_id = %lld", agent_id);
    assert_int_equal(scalar(sql), 0);
    refused("X-No-Cookie: 1", "POST", "/api/v1/session",
            "{\"email\":\"agent@admin.test\",\"password\":\"agent-password-1\"}", 401,
            "unauthorized");

    /* Enabled again with a new password set by the admin (Argon2id). */
    o = call(admin, "PATCH", u,
             "{\"disabled\":false,\"password\":\"agent-password-2\",\"name\":\"Ada Agent\","
             "\"role\":\"agent\"}",
             200);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "Ada Agent");
    assert_true(json_is_false(json_object_get(o, "disabled")));
    assert_null(json_object_get(o, "password"));
    json_decref(o);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM users WHERE id = %lld AND password_hash LIKE '$argon2id$%%'",
             agent_id);
    assert_int_equal(scalar(sql), 1);
    refused("X-No-Cookie: 1", "POST", "/api/v1/session",
            "{\"email\":\"agent@admin.test\",\"password\":\"agent-password-1\"}", 401,
            "unauthorized");
    th_login(&srv, "agent@admin.test", "agent-password-2", agent, sizeof agent);
    o = call(agent, "GET", "/api/v1/me", NULL, 200);
    json_decref(o);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM audit_log WHERE target_id = %lld AND action IN "
             "('user.disable','user.enable','user.password_reset','user.update')",
             agent_id);
    assert_int_equal(scalar(sql), 4);
}

static void last_admin_is_kept(void **state)
{
    (void)state;
    char me[96];
    snprintf(me, sizeof me, "/api/v1/users/%lld", admin_id);
    refused(admin, "PATCH", me, "{\"role\":\"agent\"}", 409, "last_admin");
    refused(admin, "PATCH", me, "{\"disabled\":true}", 409, "last_admin");
    /* With a second admin, demoting that one works; then the first is last again. */
    th_user("admin2@admin.test", "admin", "admin-password-2");
    long long a2 = scalar("SELECT id FROM users WHERE email = 'admin2@admin.test'");
    char p2[96];
    snprintf(p2, sizeof p2, "/api/v1/users/%lld", a2);
    json_t *o = call(admin, "PATCH", p2, "{\"role\":\"marketer\"}", 200);
    assert_string_equal(json_string_value(json_object_get(o, "role")), "marketer");
    json_decref(o);
    refused(admin, "PATCH", me, "{\"role\":\"agent\"}", 409, "last_admin");
    o = call(admin, "PATCH", me, "{\"name\":\"Vera Admin\"}", 200);
    assert_string_equal(json_string_value(json_object_get(o, "role")), "admin");
    json_decref(o);
    o = call(admin, "GET", "/api/v1/me", NULL, 200); /* still signed in */
    json_decref(o);
}

/* The row of conversation `conv` in the admin's list. */
static json_t *list_row(long long conv)
{
    json_t *o = call(admin, "GET", "/api/v1/conversations", NULL, 200), *v, *row = NULL;
    size_t i;
    json_array_foreach(json_object_get(o, "items"), i,
                       v) if (json_integer_value(json_object_get(v, "id")) == conv) row =
        json_incref(v);
    json_decref(o);
    assert_non_null(row);
    return row;
}

static void list_rows_carry_the_last_message(void **state)
{
    (void)state;
    assert_int_equal(tg_post(tg_id, HOOK_SECRET, 900020, "  Нужна\n\nдоставка   завтра  "), 200);
    long long conv = scalar("SELECT conversation_id FROM interactions WHERE external_id LIKE "
                            "'%900020%' OR text LIKE '%доставка%' ORDER BY id DESC LIMIT 1");
    assert_true(conv > 0);
    json_t *row = list_row(conv);
    json_t *lm = json_object_get(row, "last_message");
    assert_string_equal(json_string_value(json_object_get(lm, "direction")), "in");
    assert_string_equal(json_string_value(json_object_get(lm, "kind")), "message");
    assert_string_equal(json_string_value(json_object_get(lm, "preview")), "Нужна доставка завтра");
    assert_non_null(json_string_value(json_object_get(lm, "at")));
    json_decref(row);

    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/replies", conv);
    json_t *o = call(admin, "POST", path, "{\"text\":\"Привезём завтра до 12:00\"}", 202);
    json_decref(o);
    row = list_row(conv);
    lm = json_object_get(row, "last_message");
    assert_string_equal(json_string_value(json_object_get(lm, "direction")), "out");
    assert_string_equal(json_string_value(json_object_get(lm, "preview")),
                        "Привезём завтра до 12:00");
    json_decref(row);

    /* A long text is cut at 120 characters with an ellipsis. */
    char longtext[1200] = "";
    for (int i = 0; i < 200; i++)
        strcat(longtext, "я");
    assert_int_equal(tg_post(tg_id, HOOK_SECRET, 900021, longtext), 200);
    row = list_row(conv);
    const char *pv =
        json_string_value(json_object_get(json_object_get(row, "last_message"), "preview"));
    assert_non_null(pv);
    size_t chars = 0;
    for (const char *c = pv; *c; c++)
        chars += ((unsigned char)*c & 0xC0) != 0x80;
    assert_int_equal(chars, 121); /* 120 and the ellipsis */
    assert_non_null(strstr(pv, "\xe2\x80\xa6"));
    json_decref(row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roles_and_validation),
        cmocka_unit_test(channel_edit_keeps_and_seals_secrets),
        cmocka_unit_test(disabled_channel_hooks_404_and_test_still_works),
        cmocka_unit_test(disabled_user_is_signed_out_at_once),
        cmocka_unit_test(last_admin_is_kept),
        cmocka_unit_test(list_rows_carry_the_last_message),
    };
    return cmocka_run_group_tests_name("admin", tests, setup, teardown);
}
