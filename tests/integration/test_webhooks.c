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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#define SECRET     "fixture-secret-0123456789"
#define APP_SECRET "whatsapp-app-secret"
#define VERIFY     "verify-me-please"

static struct th_server srv;
static struct sb_db *db;
static long long tg_id, wa_id, vb_id, pbx_id;
static char hook[64], wa_hook[64], vb_hook[64], pbx_hook[64];

#define VIBER_TOKEN "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
#define PBX_SECRET  "pbx-secret-0123456789"
/* The server's sender fetches files of stored messages: point it at a
 * closed loopback port, never at the real provider. */
#define NO_PROVIDER "api_base=http://127.0.0.1:9"

/* `switchboard channel add …`; returns the new id. */
static long long add_channel(const char *const *args)
{
    char out[2048];
    if (th_run(args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add: %s\n", out);
        return 0;
    }
    json_t *o = json_loads(out, 0, NULL);
    long long id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

/* Set by the test that posts the shared files as they are. */
static int shared_only;

static char *fixture(const char *name)
{
    char path[1024];
    /* Ours first (tests/fixtures/webhooks), then the shared ones. */
    snprintf(path, sizeof path, "%s/tests/fixtures/webhooks/%s", th_root(), name);
    if (shared_only || access(path, R_OK) != 0)
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
                          "--set",
                          NO_PROVIDER,
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
    const char *wa_args[] = {"channel",
                             "add",
                             "whatsapp",
                             "--name",
                             "WhatsApp",
                             "--set",
                             "access_token=EAAG-test",
                             "--set",
                             "app_secret=" APP_SECRET,
                             "--set",
                             "verify_token=" VERIFY,
                             "--set",
                             "phone_number_id=106540352242922",
                             "--set",
                             NO_PROVIDER,
                             NULL};
    if (th_run(wa_args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add whatsapp: %s\n", out);
        return -1;
    }
    o = json_loads(out, 0, NULL);
    wa_id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    snprintf(wa_hook, sizeof wa_hook, "/hooks/whatsapp/%lld", wa_id);
    const char *vb_args[] = {
        "channel", "add",       "viber", "--name", "Viber", "--set", "auth_token=" VIBER_TOKEN,
        "--set",   NO_PROVIDER, NULL};
    const char *pbx_args[] = {
        "channel", "add", "pbx", "--name", "Office PBX", "--set", "secret=" PBX_SECRET, NULL};
    vb_id = add_channel(vb_args);
    pbx_id = add_channel(pbx_args);
    if (!vb_id || !pbx_id)
        return -1;
    snprintf(vb_hook, sizeof vb_hook, "/hooks/viber/%lld", vb_id);
    snprintf(pbx_hook, sizeof pbx_hook, "/hooks/pbx/%lld", pbx_id);
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
    /* The channel's status shows the last success before, and the error after. */
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM channels WHERE id = %lld AND last_success_at IS NOT NULL AND "
             "last_error IS NULL",
             tg_id);
    assert_int_equal(count(sql), 1);
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
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM channels WHERE id = %lld AND last_error LIKE 'not a Telegram%%'",
             tg_id);
    assert_int_equal(count(sql), 1);
}

struct burst {
    int n;
    long status;
};

static void *post_one(void *arg)
{
    struct burst *b = arg;
    char body[512];
    /* ten senders, four messages each, all new to the database */
    snprintf(body, sizeof body,
             "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":%d,"
             "\"first_name\":\"Burst\"},\"chat\":{\"id\":%d,\"type\":\"private\"},"
             "\"date\":1763812800,\"text\":\"message %d\"}}",
             900000 + b->n, 5000 + b->n, 777000 + b->n % 10, 777000 + b->n % 10, b->n);
    const char *headers[] = {"Content-Type: application/json",
                             "X-Telegram-Bot-Api-Secret-Token: " SECRET, NULL};
    struct th_resp r;
    b->status = th_http(&srv, "POST", hook, body, headers, &r) == 0 ? r.status : -1;
    th_resp_free(&r);
    return NULL;
}

/* Requests that queue up together are stored in one transaction (group
 * commit): every one is answered 200 only once stored, none is lost or
 * doubled, and a sender's messages share one client and one conversation. */
static void a_burst_of_webhooks_is_stored_whole(void **state)
{
    (void)state;
    enum { N = 40 };
    pthread_t t[N];
    struct burst b[N];
    int64_t before = count("SELECT COUNT(*) FROM interactions");
    for (int i = 0; i < N; i++) {
        b[i] = (struct burst){.n = i};
        pthread_create(&t[i], NULL, post_one, &b[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(b[i].status, 200);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), before + N);
    assert_int_equal(count("SELECT COUNT(DISTINCT client_id) FROM client_identities WHERE kind = "
                           "'telegram' AND value LIKE '777%'"),
                     10);
    assert_int_equal(count("SELECT COUNT(*) FROM conversations c JOIN client_identities i ON "
                           "i.client_id = c.client_id WHERE i.kind = 'telegram' AND i.value LIKE "
                           "'777%'"),
                     10);
}

/* Admins see the quarantine, download the raw body and mark it dealt with. */
static void admins_work_the_quarantine(void **state)
{
    (void)state;
    th_user("admin@example.com", "admin", "admin-password-1");
    char cookie[512];
    th_login(&srv, "admin@example.com", "admin-password-1", cookie, sizeof cookie);
    const char *h[] = {cookie, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/api/v1/quarantine", NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    th_resp_free(&r);
    json_t *item = json_array_get(json_object_get(o, "items"), 0);
    assert_non_null(item);
    assert_string_equal(json_string_value(json_object_get(item, "source")), "webhook:telegram");
    long long id = json_integer_value(json_object_get(item, "id"));
    json_decref(o);

    char path[96];
    snprintf(path, sizeof path, "/api/v1/quarantine/%lld/body", id);
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"not\": \"an update\"");
    char v[128];
    assert_int_equal(th_header(&r, "content-disposition", v, sizeof v), 0);
    assert_string_equal(v, "attachment");
    th_resp_free(&r);

    snprintf(path, sizeof path, "/api/v1/quarantine/%lld/resolve", id);
    assert_int_equal(th_http(&srv, "POST", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 204);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "POST", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "GET", "/api/v1/quarantine", NULL, h, &r), 0);
    assert_non_null(strstr(r.body, "\"items\":[]"));
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "GET", "/api/v1/quarantine", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
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

/* POST a fixture signed with HMAC-SHA256 of the body under `secret` (NULL:
 * unsigned) in `header`, hex after `prefix`. */
static long post_signed(const char *path, const char *file, const char *header, const char *prefix,
                        const char *secret, struct th_resp *r)
{
    char *body = fixture(file);
    assert_non_null(body);
    char h[160];
    snprintf(h, sizeof h, "%s: %s", header, prefix);
    if (secret) {
        unsigned char mac[32];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
        crypto_auth_hmacsha256_final(&st, mac);
        sodium_bin2hex(h + strlen(h), sizeof h - strlen(h), mac, sizeof mac);
    }
    const char *headers[] = {"Content-Type: application/json", secret ? h : NULL, NULL};
    assert_int_equal(th_http(&srv, "POST", path, body, headers, r), 0);
    free(body);
    return r->status;
}

static long post_wa(const char *file, const char *secret, struct th_resp *r)
{
    return post_signed(wa_hook, file, "X-Hub-Signature-256", "sha256=", secret, r);
}

static void viber_message_and_statuses(void **state)
{
    (void)state;
    struct th_resp r;
    const char *sig = "X-Viber-Content-Signature";
    assert_int_equal(post_signed(vb_hook, "viber-message.json", sig, "", "wrong", &r), 401);
    th_resp_free(&r);
    assert_int_equal(post_signed(vb_hook, "viber-subscribed.json", sig, "", VIBER_TOKEN, &r), 200);
    th_resp_free(&r);
    assert_int_equal(post_signed(vb_hook, "viber-message.json", sig, "", VIBER_TOKEN, &r), 200);
    th_resp_free(&r);
    assert_int_equal(post_signed(vb_hook, "viber-message.json", sig, "", VIBER_TOKEN, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE external_id = "
                           "'5741311803571721087' AND text LIKE '%субботу%'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM clients c JOIN client_identities i ON "
                           "i.client_id = c.id WHERE i.kind = 'viber' AND i.value = "
                           "'01234567890A=' AND c.name = 'Ольга Кузнецова'"),
                     1);
    char err[256] = "", sql[400];
    snprintf(sql, sizeof sql,
             "INSERT INTO interactions (channel_id, direction, kind, external_id, text, "
             "delivery_status) VALUES (%lld, 'out', 'message', '5741311803571721099', 'Да', "
             "'sent')",
             vb_id);
    assert_int_equal(sb_db_exec_text(db, sql, err, sizeof err), SB_OK);
    assert_int_equal(post_signed(vb_hook, "viber-delivered.json", sig, "", VIBER_TOKEN, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE external_id = "
                           "'5741311803571721099' AND delivery_status = 'delivered'"),
                     1);
}

static void pbx_calls_join_the_client_by_phone(void **state)
{
    (void)state;
    struct th_resp r;
    const char *sig = "X-Switchboard-Signature";
    assert_int_equal(post_signed(pbx_hook, "pbx-missed.json", sig, "sha256=", "wrong", &r), 401);
    th_resp_free(&r);
    assert_int_equal(post_signed(pbx_hook, "pbx-missed.json", sig, "sha256=", PBX_SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(post_signed(pbx_hook, "pbx-answered.json", sig, "sha256=", PBX_SECRET, &r),
                     200);
    th_resp_free(&r);
    /* Both calls belong to Анна (the phone her Telegram contact gave), in one
     * open conversation on the PBX channel, the missed one unread. */
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM interactions i JOIN client_identities ci ON ci.client_id = "
             "i.client_id AND ci.kind = 'phone' AND ci.value = '+79160001122' "
             "WHERE i.channel_id = %lld AND i.kind = 'call'",
             pbx_id);
    assert_int_equal(count(sql), 2);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM conversations WHERE channel_id = %lld AND status = 'open' "
             "AND unread = 1",
             pbx_id);
    assert_int_equal(count(sql), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE external_id = "
                           "'1763813600.4411' AND JSON_EXTRACT(meta, '$.call.missed') = true"),
                     1);
}

static void whatsapp_verification_echoes_the_challenge(void **state)
{
    (void)state;
    char path[256];
    struct th_resp r;
    snprintf(path, sizeof path,
             "%s?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=1158201444", wa_hook, VERIFY);
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "1158201444");
    th_resp_free(&r);
    snprintf(path, sizeof path, "%s?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
             wa_hook);
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 403);
    th_resp_free(&r);
}

static void whatsapp_message_joins_anna(void **state)
{
    (void)state;
    struct th_resp r;
    int64_t before = count("SELECT COUNT(*) FROM interactions");
    assert_int_equal(post_wa("whatsapp-text.json", "not-the-secret", &r), 401);
    th_resp_free(&r);
    assert_int_equal(post_wa("whatsapp-text.json", NULL, &r), 401);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), before);

    assert_int_equal(post_wa("whatsapp-text.json", APP_SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(post_wa("whatsapp-image.json", APP_SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(post_wa("whatsapp-text.json", APP_SECRET, &r), 200); /* redelivery */
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), before + 2);
    /* One Анна across Telegram and WhatsApp: telegram, phone and whatsapp identities. */
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities WHERE kind = 'whatsapp' AND "
                           "value = '79160001122'"),
                     1);
    assert_int_equal(count("SELECT COUNT(DISTINCT client_id) FROM client_identities"), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM attachments WHERE provider_ref = "
                           "'1234567890123456' AND content_type = 'image/jpeg'"),
                     1);
}

static void whatsapp_status_moves_our_message_forward_only(void **state)
{
    (void)state;
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, "
             "external_id, text, delivery_status) SELECT c.id, c.client_id, %lld, 'out', "
             "'message', 'wamid.HBgLNzkxNjAwMDExMjIVAgARGBI0QjQ2NDlDRkIzRkE5ODFDMkUA', "
             "'Здравствуйте, Анна!', 'sent' FROM conversations c WHERE c.channel_id = %lld",
             wa_id, wa_id);
    char err[256] = "";
    assert_int_equal(sb_db_exec_text(db, sql, err, sizeof err), SB_OK);
    struct th_resp r;
    assert_int_equal(post_wa("whatsapp-status-read.json", APP_SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE direction = 'out' AND "
                           "delivery_status = 'read'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM events WHERE type = 'interaction.updated' AND "
                           "JSON_VALUE(data, '$.delivery_status') = 'read'"),
                     1);
    /* Again: nothing moves, no new event. */
    assert_int_equal(post_wa("whatsapp-status-read.json", APP_SECRET, &r), 200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM events WHERE type = 'interaction.updated' AND "
                           "JSON_VALUE(data, '$.delivery_status') = 'read'"),
                     1);
}

/* Every file of ../shared/fixtures/webhooks, as it is, through its channel:
 * refused with a wrong signature (nothing stored), taken with the right
 * one, and a second delivery changes nothing. */
static void every_shared_fixture_is_taken_once(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        char kind;   /* t(elegram), w(hatsapp), v(iber) */
        int message; /* leaves an interaction on its channel */
    } cases[] = {
        {"telegram-text.json", 't', 1},    {"telegram-contact.json", 't', 1},
        {"telegram-edited.json", 't', 1},  {"telegram-photo.json", 't', 1},
        {"whatsapp-text.json", 'w', 1},    {"whatsapp-image.json", 'w', 1},
        {"whatsapp-status.json", 'w', 0},  {"viber-message.json", 'v', 1},
        {"viber-subscribed.json", 'v', 0},
    };
    /* whatsapp-status.json reports on one of our messages: make it exist. */
    char sql[700];
    snprintf(sql, sizeof sql,
             "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, "
             "external_id, text, delivery_status) SELECT c.id, c.client_id, %lld, 'out', "
             "'message', 'wamid.HBgLNzkxNjAwMDExMjIVAgARGBI0NzE1QjJBMDhFNjlFMzQ1RkEA', 'Ответ', "
             "'sent' FROM conversations c WHERE c.channel_id = %lld LIMIT 1",
             wa_id, wa_id);
    char err[256] = "";
    assert_int_equal(sb_db_exec_text(db, sql, err, sizeof err), SB_OK);
    shared_only = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct th_resp r;
        const char *f = cases[i].file;
        long long ch = cases[i].kind == 't' ? tg_id : cases[i].kind == 'w' ? wa_id : vb_id;
        int64_t before = count("SELECT COUNT(*) FROM interactions");
        if (cases[i].kind == 't')
            assert_int_equal(post(f, "not-the-secret-0000000", &r), 401);
        else if (cases[i].kind == 'w')
            assert_int_equal(post_wa(f, "wrong", &r), 401);
        else
            assert_int_equal(post_signed(vb_hook, f, "X-Viber-Content-Signature", "", "wrong", &r),
                             401);
        th_resp_free(&r);
        assert_int_equal(count("SELECT COUNT(*) FROM interactions"), before);
        for (int round = 0; round < 2; round++) {
            long st = cases[i].kind == 't'   ? post(f, SECRET, &r)
                      : cases[i].kind == 'w' ? post_wa(f, APP_SECRET, &r)
                                             : post_signed(vb_hook, f, "X-Viber-Content-Signature",
                                                           "", VIBER_TOKEN, &r);
            if (st != 200)
                fprintf(stderr, "%s: %ld %s\n", f, st, r.body ? r.body : "");
            assert_int_equal(st, 200);
            th_resp_free(&r);
            int64_t after = count("SELECT COUNT(*) FROM interactions");
            if (round == 1)
                assert_int_equal(after, before); /* the second delivery stores nothing */
            before = after;
        }
        if (cases[i].message) {
            snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM interactions WHERE channel_id = %lld",
                     ch);
            assert_true(count(sql) > 0);
        }
    }
    shared_only = 0;
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE external_id = "
                           "'wamid.HBgLNzkxNjAwMDExMjIVAgARGBI0NzE1QjJBMDhFNjlFMzQ1RkEA' AND "
                           "delivery_status = 'read'"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secrets_are_sealed_at_rest),
        cmocka_unit_test(wrong_secret_stores_nothing),
        cmocka_unit_test(anna_text_contact_and_edit),
        cmocka_unit_test(unreadable_body_is_quarantined),
        cmocka_unit_test(admins_work_the_quarantine),
        cmocka_unit_test(unknown_channel_is_404),
        cmocka_unit_test(whatsapp_verification_echoes_the_challenge),
        cmocka_unit_test(whatsapp_message_joins_anna),
        cmocka_unit_test(whatsapp_status_moves_our_message_forward_only),
        cmocka_unit_test(viber_message_and_statuses),
        cmocka_unit_test(pbx_calls_join_the_client_by_phone),
        cmocka_unit_test(a_burst_of_webhooks_is_stored_whole),
        cmocka_unit_test(every_shared_fixture_is_taken_once),
    };
    return cmocka_run_group_tests_name("webhooks", tests, setup, teardown);
}
