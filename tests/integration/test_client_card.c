/* The client card's edits over HTTP: custom fields and the name (PATCH
 * /api/v1/clients/{id}) with their limits, the audit row and the
 * client.updated event written with the change and never without it; and
 * the manual merge the card offers: find the other client by a phone typed
 * in another format, merge it into the older one, the old id resolves. */
#include "harness.h"
#include "switchboard/clients.h"
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
static char agent[512];
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

static int64_t q_int(const char *sql, int64_t arg)
{
    struct sb_db_val a[] = {SB_INT(arg)};
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, a, 1, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = r.nrows && sb_db_cell(&r, 0, 0) ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

/* One text cell as parsed JSON (NULL for SQL NULL). */
static json_t *q_json(const char *sql, int64_t arg)
{
    struct sb_db_val a[] = {SB_INT(arg)};
    struct sb_db_rows r;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, sql, a, 1, &r, err, sizeof err), SB_OK);
    json_t *o = r.nrows && sb_db_cell(&r, 0, 0) ? json_loads(sb_db_cell(&r, 0, 0), 0, NULL) : NULL;
    sb_db_rows_free(&r);
    return o;
}

/* A client that wrote once on `channel` with up to two identities. */
static int64_t client(int64_t channel, const char *ext, const char *name, enum sb_identity_kind k1,
                      const char *v1, enum sb_identity_kind k2, const char *v2)
{
    struct sb_inbound *in = sb_inbound_new();
    in->channel_id = channel;
    in->external_id = sb_inbound_strdup(in, ext);
    in->kind = SB_IK_MESSAGE;
    in->display_name = sb_inbound_strdup(in, name);
    in->text = sb_inbound_strdup(in, "Здравствуйте");
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
    return res.client_id;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    db = th_db_connect();
    static const char ch[] = "INSERT INTO channels (kind, name) VALUES (?, ?)";
    struct sb_db_val a[] = {SB_TEXT("telegram"), SB_TEXT("Bot")};
    ch_tg = exec_insert(ch, a, 2);
    struct sb_db_val b[] = {SB_TEXT("webform"), SB_TEXT("Site")};
    ch_form = exec_insert(ch, b, 2);
    th_user("agent@example.com", "agent", "agent-password-1");
    th_server_start(&srv, NULL);
    th_login(&srv, "agent@example.com", "agent-password-1", agent, sizeof agent);
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

/* The request's status; the parsed body in *body_r when asked. */
static long call(const char *method, const char *path, const char *body, json_t **body_r)
{
    const char *h[] = {agent, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, method, path, body, h, &r), 0);
    if (body_r)
        *body_r = r.body && *r.body ? json_loads(r.body, 0, NULL) : NULL;
    long status = r.status;
    th_resp_free(&r);
    return status;
}

static long patch(int64_t id, const char *body, json_t **body_r)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)id);
    return call("PATCH", path, body, body_r);
}

static const char q_events[] =
    "SELECT COUNT(*) FROM events WHERE type = 'client.updated' AND client_id = ?";
static const char q_audits[] = "SELECT COUNT(*) FROM audit_log WHERE action = 'client.update' "
                               "AND target_type = 'client' AND target_id = ?";

static void custom_fields_and_name_edited(void **state)
{
    (void)state;
    int64_t id = client(ch_tg, "cf:1", "Ольга", SB_ID_TELEGRAM, "700100", 0, NULL);
    json_t *c;
    assert_int_equal(patch(id,
                           "{\"name\":\"Ольга Васильева\",\"custom_fields\":{\"Город\":\"Москва\","
                           "\"floor\":3,\"vip\":true,\"Номер договора\":\"Д-17\"}}",
                           &c),
                     200);
    /* The answer is the card as GET gives it, timeline included. */
    assert_string_equal(json_string_value(json_object_get(c, "name")), "Ольга Васильева");
    json_t *f = json_object_get(c, "custom_fields");
    assert_string_equal(json_string_value(json_object_get(f, "Город")), "Москва");
    assert_int_equal(json_integer_value(json_object_get(f, "floor")), 3);
    assert_true(json_is_true(json_object_get(f, "vip")));
    assert_non_null(json_object_get(c, "timeline"));
    json_decref(c);
    assert_int_equal(q_int(q_events, id), 1);
    assert_int_equal(q_int(q_audits, id), 1);

    /* null removes a key, others are replaced, the rest stay. */
    assert_int_equal(patch(id, "{\"custom_fields\":{\"floor\":null,\"Город\":\"Казань\"}}", NULL),
                     200);
    char path[64];
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)id);
    assert_int_equal(call("GET", path, NULL, &c), 200);
    f = json_object_get(c, "custom_fields");
    assert_int_equal(json_object_size(f), 3);
    assert_null(json_object_get(f, "floor"));
    assert_string_equal(json_string_value(json_object_get(f, "Город")), "Казань");
    assert_string_equal(json_string_value(json_object_get(f, "Номер договора")), "Д-17");
    json_decref(c);

    /* The event carries the edit; the audit row what it replaced. */
    assert_int_equal(q_int(q_events, id), 2);
    json_t *ev = q_json("SELECT data FROM events WHERE type = 'client.updated' AND client_id = ? "
                        "ORDER BY id DESC LIMIT 1",
                        id);
    assert_int_equal(json_integer_value(json_object_get(ev, "id")), id);
    json_t *ch = json_object_get(json_object_get(ev, "changes"), "custom_fields");
    assert_true(json_is_null(json_object_get(ch, "floor")));
    assert_string_equal(json_string_value(json_object_get(ch, "Город")), "Казань");
    json_decref(ev);
    assert_int_equal(q_int(q_audits, id), 2);
    json_t *au = q_json("SELECT detail FROM audit_log WHERE action = 'client.update' AND "
                        "target_id = ? ORDER BY id DESC LIMIT 1",
                        id);
    json_t *was = json_object_get(json_object_get(au, "before"), "custom_fields");
    assert_string_equal(json_string_value(json_object_get(was, "Город")), "Москва");
    assert_int_equal(json_integer_value(json_object_get(was, "floor")), 3);
    assert_non_null(json_object_get(json_object_get(au, "changes"), "custom_fields"));
    json_decref(au);
    assert_int_equal(q_int("SELECT COUNT(*) FROM audit_log WHERE action = 'client.update' AND "
                           "target_id = ? AND user_id IS NOT NULL AND ip IS NOT NULL",
                           id),
                     2);

    /* An emptied name is no name. */
    assert_int_equal(patch(id, "{\"name\":\"\"}", &c), 200);
    assert_true(json_is_null(json_object_get(c, "name")));
    json_decref(c);
    assert_int_equal(patch(id, "{\"name\":\"Ольга Васильева\"}", NULL), 200);
}

/* A 400 with a JSON error naming the problem, and nothing written. */
static void refused(int64_t id, const char *body, const char *why)
{
    int64_t events = q_int(q_events, id), audits = q_int(q_audits, id);
    json_t *before = q_json("SELECT JSON_OBJECT('n', name, 'f', custom_fields) FROM clients "
                            "WHERE id = ?",
                            id);
    json_t *e;
    long st = patch(id, body, &e);
    if (st != 400)
        fprintf(stderr, "PATCH %s -> %ld\n", body, st);
    assert_int_equal(st, 400);
    json_t *err = json_object_get(e, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "bad_request");
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (!msg || !strstr(msg, why))
        fprintf(stderr, "PATCH %s: \"%s\", want \"%s\"\n", body, msg ? msg : "(none)", why);
    assert_non_null(msg && strstr(msg, why) ? msg : NULL);
    json_decref(e);
    json_t *after = q_json("SELECT JSON_OBJECT('n', name, 'f', custom_fields) FROM clients "
                           "WHERE id = ?",
                           id);
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    assert_int_equal(q_int(q_events, id), events);
    assert_int_equal(q_int(q_audits, id), audits);
}

static void invalid_edits_refused(void **state)
{
    (void)state;
    int64_t id = client(ch_tg, "cf:2", "Пётр", SB_ID_TELEGRAM, "700200", 0, NULL);
    assert_int_equal(patch(id, "{\"custom_fields\":{\"city\":\"Тверь\"}}", NULL), 200);

    refused(id, "{\"custom_fields\":{\"a\":{\"b\":1}}}", "must be a string, number");
    refused(id, "{\"custom_fields\":{\"a\":[1,2]}}", "must be a string, number");
    refused(id, "{\"custom_fields\":[\"a\"]}", "\"custom_fields\" must be an object");
    refused(id, "{\"custom_fields\":{\"\":\"x\"}}", "names must be 1 to 64 characters");
    refused(id, "{\"custom_fields\":{\"   \":\"x\"}}", "names must be 1 to 64 characters");
    refused(id, "{\"custom_fields\":{\"a\\nb\":\"x\"}}", "names must be 1 to 64 characters");

    /* 64 characters is the limit for a name, 1000 for a value; Cyrillic
     * counts by characters, not bytes. */
    char key[200] = "", body[4200];
    for (int i = 0; i < 64; i++)
        strcat(key, "ж");
    snprintf(body, sizeof body, "{\"custom_fields\":{\"%s\":1}}", key);
    assert_int_equal(patch(id, body, NULL), 200);
    snprintf(body, sizeof body, "{\"custom_fields\":{\"%sж\":1}}", key);
    refused(id, body, "names must be 1 to 64 characters");
    snprintf(body, sizeof body, "{\"custom_fields\":{\"%s\":null}}", key);
    assert_int_equal(patch(id, body, NULL), 200);

    char *val = malloc(2 * 1001 + 1);
    assert_non_null(val);
    val[0] = '\0';
    for (int i = 0; i < 1000; i++)
        strcat(val, "ж");
    snprintf(body, sizeof body, "{\"custom_fields\":{\"note\":\"%s\"}}", val);
    assert_int_equal(patch(id, body, NULL), 200);
    strcat(val, "ж");
    snprintf(body, sizeof body, "{\"custom_fields\":{\"note\":\"%s\"}}", val);
    refused(id, body, "longer than 1000 characters");
    free(val);

    /* At most 50 fields: "city" and "note" are there, 48 more fit. */
    json_t *many = json_object();
    char k[16];
    for (int i = 0; i < 48; i++) {
        snprintf(k, sizeof k, "f%02d", i);
        json_object_set_new(many, k, json_integer(i));
    }
    json_t *wrap = json_pack("{s:O}", "custom_fields", many);
    char *s = json_dumps(wrap, JSON_COMPACT);
    assert_int_equal(patch(id, s, NULL), 200);
    free(s);
    json_decref(wrap);
    assert_int_equal(q_int("SELECT JSON_LENGTH(custom_fields) FROM clients WHERE id = ?", id), 50);
    refused(id, "{\"custom_fields\":{\"one more\":1}}", "at most 50 custom fields");
    /* Replacing and removing still work at the limit. */
    assert_int_equal(patch(id, "{\"custom_fields\":{\"f00\":\"zero\",\"f01\":null}}", NULL), 200);
    json_decref(many);

    /* Name and company: type, length (characters), one line. */
    refused(id, "{\"name\":5}", "\"name\" must be a string or null");
    char name[600] = "";
    for (int i = 0; i < 256; i++)
        strcat(name, "ж");
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    refused(id, body, "\"name\" is longer than 255");
    name[strlen(name) - 2] = '\0'; /* 255 characters, 510 bytes */
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    assert_int_equal(patch(id, body, NULL), 200);
    refused(id, "{\"name\":\"a\\r\\nb\"}", "\"name\" must be one line");
    refused(id, "{\"colour\":\"red\"}", "unknown field \"colour\"");
    /* One bad member rejects the whole edit: the name is not changed. */
    refused(id, "{\"name\":\"Другое имя\",\"custom_fields\":{\"bad\":[1]}}",
            "must be a string, number");
    refused(id, "[1]", "body must be an object");

    /* A merged-away or unknown client is not edited. */
    assert_int_equal(patch(999999, "{\"name\":\"x\"}", NULL), 404);
}

static void manual_merge_by_phone_search(void **state)
{
    (void)state;
    /* The agent is on the card of the newer client and searches the other
     * by a phone typed in another format. */
    int64_t older =
        client(ch_tg, "mm:1", "Ирина", SB_ID_TELEGRAM, "700300", SB_ID_PHONE, "+79035550177");
    int64_t newer = client(ch_form, "mm:2", "Ирина К.", SB_ID_EMAIL, "irina@example.ru", 0, NULL);
    assert_true(older < newer);
    assert_int_equal(patch(older, "{\"custom_fields\":{\"city\":\"Тула\"}}", NULL), 200);
    assert_int_equal(patch(newer, "{\"custom_fields\":{\"city\":\"Орёл\",\"size\":\"L\"}}", NULL),
                     200);

    json_t *found;
    assert_int_equal(call("GET", "/api/v1/clients?q=8%20(903)%20555-01-77", NULL, &found), 200);
    json_t *items = json_object_get(found, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), older);
    json_decref(found);

    /* The card merges into the older one, whichever card it is on. */
    char path[96], body[64];
    snprintf(path, sizeof path, "/api/v1/clients/%lld/merge", (long long)older);
    snprintf(body, sizeof body, "{\"other_id\":%lld}", (long long)newer);
    json_t *kept;
    assert_int_equal(call("POST", path, body, &kept), 200);
    assert_int_equal(json_integer_value(json_object_get(kept, "id")), older);
    /* Identities moved; the kept client's fields win, the other's fill gaps. */
    json_t *f = json_object_get(kept, "custom_fields");
    assert_string_equal(json_string_value(json_object_get(f, "city")), "Тула");
    assert_string_equal(json_string_value(json_object_get(f, "size")), "L");
    int emails = 0;
    size_t i;
    json_t *idn;
    json_array_foreach(json_object_get(kept, "identities"), i, idn)
    {
        emails += !strcmp(json_string_value(json_object_get(idn, "kind")), "email");
    }
    assert_int_equal(emails, 1);
    json_decref(kept);

    /* The old id resolves to the survivor; search finds the survivor by the
     * moved e-mail. */
    snprintf(path, sizeof path, "/api/v1/clients/%lld", (long long)newer);
    json_t *moved;
    assert_int_equal(call("GET", path, NULL, &moved), 301);
    assert_int_equal(json_integer_value(json_object_get(moved, "merged_into")), older);
    json_decref(moved);
    assert_int_equal(call("GET", "/api/v1/clients?q=Irina@Example.RU", NULL, &found), 200);
    items = json_object_get(found, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(items, 0), "id")), older);
    json_decref(found);
    assert_int_equal(q_int("SELECT COUNT(*) FROM events WHERE type = 'client.merged' AND "
                           "client_id = ?",
                           older),
                     1);
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM audit_log WHERE action = 'client.merge' AND target_id = ?",
              older),
        1);
    /* A second merge of the same pair is refused; the tombstone is not edited. */
    snprintf(path, sizeof path, "/api/v1/clients/%lld/merge", (long long)older);
    assert_int_equal(call("POST", path, body, NULL), 400);
    assert_int_equal(patch(newer, "{\"name\":\"x\"}", NULL), 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(custom_fields_and_name_edited),
        cmocka_unit_test(invalid_edits_refused),
        cmocka_unit_test(manual_merge_by_phone_search),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
