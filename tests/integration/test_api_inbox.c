/* The clients and conversations API over HTTP, on data stored by ingest(). */
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
static char admin[512], agent[512], marketer[512];
static int64_t anna, anna_conv, ivan, ivan_conv, agent_id;
static const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};

static int64_t exec_insert(const char *sql, const struct sb_db_val *a, size_t n)
{
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, a, n, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    return (int64_t)r.insert_id;
}

static struct sb_ingest_result put(int64_t channel, const char *ext, const char *name,
                                   const char *text, enum sb_identity_kind k1, const char *v1,
                                   enum sb_identity_kind k2, const char *v2)
{
    struct sb_inbound *in = sb_inbound_new();
    in->channel_id = channel;
    in->external_id = sb_inbound_strdup(in, ext);
    in->kind = SB_IK_MESSAGE;
    in->display_name = sb_inbound_strdup(in, name);
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
    return res;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    struct sb_db_params p;
    char err[256] = "";
    sb_db_params_parse(th_db_url(), &p, err, sizeof err);
    sb_db_open(&p, 0, &db, err, sizeof err);
    sb_db_params_free(&p);
    static const char ch[] = "INSERT INTO channels (kind, name) VALUES (?, ?)";
    struct sb_db_val a[] = {SB_TEXT("telegram"), SB_TEXT("Bot")};
    ch_tg = exec_insert(ch, a, 2);
    struct sb_db_val b[] = {SB_TEXT("webform"), SB_TEXT("Site")};
    ch_form = exec_insert(ch, b, 2);
    struct sb_ingest_result r = put(ch_tg, "523901177:4412", "Анна Смирнова", "Хочу кухню",
                                    SB_ID_TELEGRAM, "523901177", SB_ID_PHONE, "+79160001122");
    anna = r.client_id;
    anna_conv = r.conversation_id;
    r = put(ch_form, "lead:1", "Иван Петров", "Прошу перезвонить", SB_ID_PHONE, "8 (999) 123-45-67",
            SB_ID_EMAIL, "Ivan.Petrov@Example.RU");
    ivan = r.client_id;
    ivan_conv = r.conversation_id;

    th_user("admin@example.com", "admin", "admin-password-1");
    th_user("agent@example.com", "agent", "agent-password-1");
    th_user("marketer@example.com", "marketer", "marketer-password-1");
    static const char q[] = "SELECT id FROM users WHERE email = 'agent@example.com'";
    struct sb_db_rows rows;
    sb_db_exec(db, q, NULL, 0, &rows, err, sizeof err);
    agent_id = sb_db_cell_int(&rows, 0, 0);
    sb_db_rows_free(&rows);
    th_server_start(&srv, NULL);
    th_login(&srv, "admin@example.com", "admin-password-1", admin, sizeof admin);
    th_login(&srv, "agent@example.com", "agent-password-1", agent, sizeof agent);
    th_login(&srv, "marketer@example.com", "marketer-password-1", marketer, sizeof marketer);
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

static json_t *get_json(const char *cookie, const char *method, const char *path, const char *body,
                        long want)
{
    return th_call(&srv, cookie, method, path, body, want);
}

static void phone_in_any_format_finds_the_client(void **state)
{
    (void)state;
    json_t *o = get_json(agent, "GET", "/api/v1/clients?phone=8%20(916)%20000-11-22", NULL, 200);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), anna);
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/clients?email=IVAN.petrov@example.ru", NULL, 200);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(json_object_get(o, "items"), 0), "id")),
        ivan);
    json_decref(o);
    /* q accepts a phone in another format, and names. */
    o = get_json(agent, "GET", "/api/v1/clients?q=%2B7+999+123+45+67", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/clients?q=%D0%90%D0%BD%D0%BD%D0%B0", NULL, 200); /* Анна */
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/clients?phone=abc", NULL, 400);
    json_decref(o);
}

static void client_has_identities_and_timeline(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)anna);
    json_t *o = get_json(marketer, "GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "Анна Смирнова");
    json_t *ids = json_object_get(o, "identities");
    assert_int_equal(json_array_size(ids), 2);
    int phone_ok = 0;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "kind")), "phone")) {
            assert_string_equal(json_string_value(json_object_get(v, "value")), "+79160001122");
            assert_true(json_is_true(json_object_get(v, "verified")));
            phone_ok = 1;
        }
    }
    assert_true(phone_ok);
    /* Marketers see the card, not the conversations. */
    assert_true(json_is_null(json_object_get(o, "timeline")));
    json_decref(o);
    o = get_json(agent, "GET", path, NULL, 200);
    json_t *tl = json_object_get(json_object_get(o, "timeline"), "items");
    assert_int_equal(json_array_size(tl), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 0), "channel_kind")),
                        "telegram");
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/clients/999999", NULL, 404);
    json_decref(o);
}

static void patch_client_fields_and_tags(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)ivan);
    json_t *o = get_json(marketer, "PATCH", path,
                         "{\"company\":\"Мебель ООО\",\"tags\":[\"vip\",\"kitchen\"],"
                         "\"custom_fields\":{\"city\":\"Москва\"}}",
                         200);
    assert_string_equal(json_string_value(json_object_get(o, "company")), "Мебель ООО");
    assert_int_equal(json_array_size(json_object_get(o, "tags")), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(o, "custom_fields"), "city")), "Москва");
    json_decref(o);
    o = get_json(marketer, "PATCH", path, "{\"colour\":\"red\"}", 400);
    json_decref(o);
    o = get_json(marketer, "PATCH", path, "{\"tags\":\"vip\"}", 400);
    json_decref(o);
}

static void conversations_filter_page_and_change(void **state)
{
    (void)state;
    json_t *o = get_json(agent, "GET", "/api/v1/conversations?status=open&limit=1", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    const char *cursor = json_string_value(json_object_get(o, "next_cursor"));
    assert_non_null(cursor);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/conversations?status=open&limit=1&cursor=%s", cursor);
    json_t *first = json_incref(json_array_get(json_object_get(o, "items"), 0));
    json_decref(o);
    o = get_json(agent, "GET", path, NULL, 200);
    json_t *second = json_array_get(json_object_get(o, "items"), 0);
    assert_non_null(second);
    assert_int_not_equal(json_integer_value(json_object_get(first, "id")),
                         json_integer_value(json_object_get(second, "id")));
    json_decref(first);
    json_decref(o);

    /* Assign to the agent, resolve, filter. */
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", (long long)ivan_conv);
    char body[128];
    snprintf(body, sizeof body, "{\"assignee_id\":%lld,\"status\":\"resolved\"}",
             (long long)agent_id);
    o = get_json(agent, "PATCH", path, body, 200);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "resolved");
    assert_int_equal(json_integer_value(json_object_get(o, "assignee_id")), agent_id);
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/conversations?assignee=me", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/conversations?status=resolved", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    o = get_json(agent, "PATCH", path, "{\"status\":\"closed\"}", 400);
    json_decref(o);
    o = get_json(agent, "PATCH", path, "{\"assignee_id\":424242}", 400);
    json_decref(o);
    /* A snooze time MariaDB cannot read is the client's error, in our words. */
    o = get_json(agent, "PATCH", path, "{\"status\":\"snoozed\",\"snoozed_until\":\"soon\"}", 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "message")),
                        "invalid value for \"status\"");
    json_decref(o);
    /* Search over message text. */
    o = get_json(agent, "GET", "/api/v1/conversations?q=%D0%BA%D1%83%D1%85%D0%BD%D1%8E", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    /* Marketers do not work the inbox. */
    o = get_json(marketer, "GET", "/api/v1/conversations", NULL, 403);
    json_decref(o);
}

static void notes_and_interactions(void **state)
{
    (void)state;
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/notes", (long long)anna_conv);
    json_t *o = get_json(agent, "POST", path, "{\"text\":\"перезвонить в 18:00\"}", 201);
    assert_string_equal(json_string_value(json_object_get(o, "direction")), "note");
    json_decref(o);
    o = get_json(agent, "POST", path, "{}", 400);
    json_decref(o);
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/interactions", (long long)anna_conv);
    o = get_json(agent, "GET", path, NULL, 200);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "kind")),
                        "note");
    json_decref(o);
}

static void merge_moves_everything_and_old_id_resolves(void **state)
{
    (void)state;
    char path[96], body[64];
    snprintf(path, sizeof path, "/api/v1/clients/%lld/merge", (long long)anna);
    snprintf(body, sizeof body, "{\"other_id\":%lld}", (long long)ivan);
    json_t *o = get_json(agent, "POST", path, body, 200);
    assert_int_equal(json_array_size(json_object_get(o, "identities")), 4);
    json_decref(o);
    /* The old id answers 301 with the survivor. */
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)ivan);
    const char *h[] = {agent, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 301);
    char loc[64], want[64];
    assert_int_equal(th_header(&r, "location", loc, sizeof loc), 0);
    snprintf(want, sizeof want, "/api/v1/clients/%lld", (long long)anna);
    assert_string_equal(loc, want);
    assert_non_null(strstr(r.body, "merged_into"));
    th_resp_free(&r);
    /* Conversations moved. */
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", (long long)ivan_conv);
    o = get_json(admin, "GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "client"), "id")), anna);
    json_decref(o);
    /* Merging again is refused clearly. */
    snprintf(path, sizeof path, "/api/v1/clients/%lld/merge", (long long)anna);
    o = get_json(agent, "POST", path, body, 400);
    json_decref(o);
}

static void merge_suggestions_accept_and_dismiss(void **state)
{
    (void)state;
    /* Two clients, then a lead carrying both identities. */
    struct sb_ingest_result a =
        put(ch_form, "lead:s1", "Ольга", "1", SB_ID_EMAIL, "olga@example.com", 0, NULL);
    struct sb_ingest_result b =
        put(ch_form, "lead:s2", "Ольга В.", "2", SB_ID_PHONE, "+79035550101", 0, NULL);
    put(ch_form, "lead:s3", "Ольга", "3", SB_ID_EMAIL, "olga@example.com", SB_ID_PHONE,
        "+79035550101");
    json_t *o = get_json(agent, "GET", "/api/v1/merge-suggestions", NULL, 200);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 1);
    int64_t sid = json_integer_value(json_object_get(json_array_get(items, 0), "id"));
    json_decref(o);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/merge-suggestions/%lld/accept", (long long)sid);
    o = get_json(agent, "POST", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), a.client_id);
    json_decref(o);
    o = get_json(agent, "POST", path, NULL, 409);
    json_decref(o);
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)b.client_id);
    const char *h[] = {agent, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 301);
    th_resp_free(&r);

    struct sb_ingest_result c =
        put(ch_form, "lead:d1", "Пётр", "1", SB_ID_EMAIL, "petr@example.com", 0, NULL);
    put(ch_form, "lead:d2", "Пётр", "2", SB_ID_PHONE, "+79035550202", 0, NULL);
    put(ch_form, "lead:d3", "Пётр", "3", SB_ID_EMAIL, "petr@example.com", SB_ID_PHONE,
        "+79035550202");
    o = get_json(agent, "GET", "/api/v1/merge-suggestions", NULL, 200);
    sid = json_integer_value(json_object_get(json_array_get(json_object_get(o, "items"), 0), "id"));
    json_decref(o);
    snprintf(path, sizeof path, "/api/v1/merge-suggestions/%lld/dismiss", (long long)sid);
    o = get_json(agent, "POST", path, NULL, 204);
    json_decref(o);
    o = get_json(agent, "GET", "/api/v1/merge-suggestions?status=dismissed", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(o, "items")), 1);
    json_decref(o);
    (void)c;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(phone_in_any_format_finds_the_client),
        cmocka_unit_test(client_has_identities_and_timeline),
        cmocka_unit_test(patch_client_fields_and_tags),
        cmocka_unit_test(conversations_filter_page_and_change),
        cmocka_unit_test(notes_and_interactions),
        cmocka_unit_test(merge_moves_everything_and_old_id_resolves),
        cmocka_unit_test(merge_suggestions_accept_and_dismiss),
    };
    return cmocka_run_group_tests_name("inbox api", tests, setup, teardown);
}
