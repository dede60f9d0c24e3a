/* Provider webhooks end to end: the Telegram fixtures of ../shared posted to
 * a real server with the right and the wrong secret, stored through ingest. */
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

#define SECRET "fixture-secret-0123456789"

static struct th_server srv;
static struct sb_db *db;
static long long tg_id;
static char hook[64];

static char *fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/../shared/fixtures/webhooks/%s", th_root(), name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int64_t count(const char *sql)
{
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    return v;
}

static long post(const char *file, const char *secret, struct th_resp *r)
{
    char *body = fixture(file);
    assert_non_null(body);
    char h[128];
    snprintf(h, sizeof h, "X-Telegram-Bot-Api-Secret-Token: %s", secret);
    const char *headers[] = {"Content-Type: application/json", secret ? h : NULL, NULL};
    assert_int_equal(th_http(&srv, "POST", hook, body, headers, r), 0);
    free(body);
    return r->status;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    char out[2048];
    const char *args[] = {"channel",
                          "add",
                          "telegram",
                          "--name",
                          "Telegram bot",
                          "--set",
                          "token=123456:ABCDEF",
                          "--set",
                          "secret_token=" SECRET,
                          NULL};
    if (th_run(args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add: %s\n", out);
        return -1;
    }
    json_t *o = json_loads(out, 0, NULL);
    tg_id = json_integer_value(json_object_get(o, "id"));
    /* The secret is not echoed back. */
    if (!tg_id || strstr(out, SECRET)) {
        json_decref(o);
        return -1;
    }
    json_decref(o);
    snprintf(hook, sizeof hook, "/hooks/telegram/%lld", tg_id);
    struct sb_db_params p;
    char err[256] = "";
    sb_db_params_parse(th_db_url(), &p, err, sizeof err);
    sb_db_open(&p, 0, &db, err, sizeof err);
    sb_db_params_free(&p);
    th_server_start(&srv, NULL);
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

static void secrets_are_sealed_at_rest(void **state)
{
    (void)state;
    assert_int_equal(count("SELECT COUNT(*) FROM channels WHERE config LIKE '%" SECRET "%'"), 0);
    assert_int_equal(count("SELECT COUNT(*) FROM channels WHERE JSON_VALUE(config, "
                           "'$.secret_token') LIKE 'sb1:%'"),
                     1);
}

static void wrong_secret_stores_nothing(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(post("telegram-text.json", "not-the-secret-0000000", &r), 401);
    th_resp_free(&r);
    assert_int_equal(post("telegram-text.json", NULL, &r), 401);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), 0);
    assert_int_equal(count("SELECT COUNT(*) FROM raw_inbound"), 0);
}

static void anna_text_contact_and_edit(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(post("telegram-text.json", SECRET, &r), 200);
    assert_non_null(strstr(r.body, "\"ok\":true"));
    th_resp_free(&r);
    assert_int_equal(post("telegram-contact.json", SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(post("telegram-photo.json", SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities WHERE kind = 'telegram' AND "
                           "value = '523901177'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities WHERE kind = 'phone' AND "
                           "value = '+79160001122'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM clients WHERE name = 'Анна Смирнова'"), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM conversations"), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM attachments WHERE provider_ref IS NOT NULL"), 1);

    /* Redelivery changes nothing. */
    int64_t events = count("SELECT COUNT(*) FROM events");
    assert_int_equal(post("telegram-text.json", SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), 3);
    assert_int_equal(count("SELECT COUNT(*) FROM events"), events);

    /* The edit replaces the text and keeps the original. */
    assert_int_equal(post("telegram-edited.json", SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), 3);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE external_id = '523901177:4412' "
                           "AND text LIKE '%и шкаф%' AND JSON_VALUE(meta, '$.edits[0].text') "
                           "NOT LIKE '%шкаф%'"),
                     1);
}

static void unreadable_body_is_quarantined(void **state)
{
    (void)state;
    const char *h[] = {"Content-Type: application/json", "X-Telegram-Bot-Api-Secret-Token: " SECRET,
                       NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", hook, "{\"not\": \"an update\"", h, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "quarantined"));
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM raw_inbound WHERE source = 'webhook:telegram' "
                           "AND body = '{\"not\": \"an update\"'"),
                     1);
}

static void unknown_channel_is_404(void **state)
{
    (void)state;
    const char *h[] = {"Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", "/hooks/telegram/999999", "{}", h, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/hooks/whatsapp/%lld", tg_id); /* right id, wrong kind */
    assert_int_equal(th_http(&srv, "POST", path, "{}", h, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secrets_are_sealed_at_rest),
        cmocka_unit_test(wrong_secret_stores_nothing),
        cmocka_unit_test(anna_text_contact_and_edit),
        cmocka_unit_test(unreadable_body_is_quarantined),
        cmocka_unit_test(unknown_channel_is_404),
    };
    return cmocka_run_group_tests_name("webhooks", tests, setup, teardown);
}
