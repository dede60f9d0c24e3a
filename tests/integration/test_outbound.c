/* Outbound end to end: agents' replies through the outbox and the sender
 * thread to a mock provider API on loopback (Telegram sendMessage, WhatsApp
 * /messages, Viber send_message), with retries on 429 and 5xx, permanent
 * failures, a dead sender's claim taken over, provider status webhooks
 * moving the delivery status, and Telegram files fetched into blobs. */
#include "harness.h"
#include "wsclient.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/outbox.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TG_TOKEN    "123456:ABCDEF"
#define TG_SECRET   "fixture-secret-0123456789"
#define WA_TOKEN    "EAAG-test"
#define WA_SECRET   "whatsapp-app-secret"
#define VIBER_TOKEN "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
#define PBX_SECRET  "pbx-secret-0123456789"

static struct th_server srv;
static struct th_mock mock;
static struct sb_db *db;
static long long tg_id, wa_id, vb_id;
static char cookie[512];

static int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q_int(const char *fmt, ...)
{
    char sql[2048], err[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = r.nrows ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

/* Poll until the query gives `want` (the sender works asynchronously). */
static int64_t wait_int(int64_t want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int64_t wait_int(int64_t want, int timeout_ms, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int64_t v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if ((v = q_int("%s", sql)) == want)
            return v;
        usleep(50 * 1000);
    }
    return v;
}

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

static void hmac_hex(const char *secret, const char *body, char *out, size_t outlen)
{
    unsigned char mac[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, outlen, mac, sizeof mac);
}

/* POST a webhook body to the channel's hook, signed the provider's way. */
static void hook(const char *kind, long long id, const char *body)
{
    char path[64], h[200], hex[65];
    snprintf(path, sizeof path, "/hooks/%s/%lld", kind, id);
    if (!strcmp(kind, "telegram")) {
        snprintf(h, sizeof h, "X-Telegram-Bot-Api-Secret-Token: %s", TG_SECRET);
    } else if (!strcmp(kind, "pbx")) {
        hmac_hex(PBX_SECRET, body, hex, sizeof hex);
        snprintf(h, sizeof h, "X-Switchboard-Signature: sha256=%s", hex);
    } else if (!strcmp(kind, "whatsapp")) {
        hmac_hex(WA_SECRET, body, hex, sizeof hex);
        snprintf(h, sizeof h, "X-Hub-Signature-256: sha256=%s", hex);
    } else {
        hmac_hex(VIBER_TOKEN, body, hex, sizeof hex);
        snprintf(h, sizeof h, "X-Viber-Content-Signature: %s", hex);
    }
    const char *headers[] = {"Content-Type: application/json", h, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, headers, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "hook %s: %ld %s\n", kind, r.status, r.body);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

static void hook_fixture(const char *kind, long long id, const char *file)
{
    char *body = fixture(file);
    assert_non_null(body);
    hook(kind, id, body);
    free(body);
}

static long long add_channel(const char *kind, const char *const *sets)
{
    char base[96], out[2048];
    snprintf(base, sizeof base, "api_base=http://127.0.0.1:%d", mock.port);
    const char *args[20] = {"channel", "add", kind, "--name", "Shop", "--set", base};
    int n = 7;
    for (; *sets; sets++) {
        args[n++] = "--set";
        args[n++] = *sets;
    }
    args[n] = NULL;
    if (th_run(args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add %s: %s\n", kind, out);
        return 0;
    }
    json_t *o = json_loads(out, 0, NULL);
    long long id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

/* POST a reply; returns the HTTP status and fills the new interaction id. */
static long reply(long long conv, const char *text, const char *idem, long long *id_r)
{
    char path[96], body[1024], idh[160];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/replies", conv);
    json_t *b = json_pack("{s:s}", "text", text);
    char *t = json_dumps(b, JSON_COMPACT);
    snprintf(body, sizeof body, "%s", t);
    free(t);
    json_decref(b);
    snprintf(idh, sizeof idh, "Idempotency-Key: %s", idem ? idem : "");
    const char *h[] = {cookie, "Content-Type: application/json", idem ? idh : NULL, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, h, &r), 0);
    json_t *o = json_loads(r.body, 0, NULL);
    if (id_r)
        *id_r = json_integer_value(json_object_get(o, "id"));
    if (r.status == 202)
        assert_non_null(json_string_value(json_object_get(o, "delivery_status")));
    json_decref(o);
    long status = r.status;
    th_resp_free(&r);
    return status;
}

static long long conversation_of(long long channel_id)
{
    return q_int("SELECT id FROM conversations WHERE channel_id = %lld ORDER BY id DESC LIMIT 1",
                 channel_id);
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_mock_start(&mock, 200, "{\"ok\":true,\"result\":{\"message_id\":1,\"chat\":{\"id\":1}}}");
    const char *tg[] = {"token=" TG_TOKEN, "secret_token=" TG_SECRET, NULL};
    const char *wa[] = {"access_token=" WA_TOKEN, "app_secret=" WA_SECRET,
                        "verify_token=verify-me-please", "phone_number_id=106540352242922", NULL};
    const char *vb[] = {"auth_token=" VIBER_TOKEN, "sender_name=Кухни на заказ", NULL};
    tg_id = add_channel("telegram", tg);
    wa_id = add_channel("whatsapp", wa);
    vb_id = add_channel("viber", vb);
    if (!tg_id || !wa_id || !vb_id)
        return -1;
    db = th_db_connect();
    th_server_start(&srv, NULL);
    th_user("agent@example.com", "agent", "agent-password-1");
    th_login(&srv, "agent@example.com", "agent-password-1", cookie, sizeof cookie);
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

/* The reply reaches Telegram with the chat id and text, on the token's
 * path; the 429 is retried after its Retry-After and the message is stored
 * once, sent, with Telegram's message id. */
static void telegram_reply_retries_a_429(void **state)
{
    (void)state;
    hook_fixture("telegram", tg_id, "telegram-text.json");
    long long conv = conversation_of(tg_id);
    assert_true(conv > 0);
    int base = mock.requests;
    th_mock_push(&mock, 429, "Retry-After: 1\r\n",
                 "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: retry "
                 "after 1\",\"parameters\":{\"retry_after\":1}}");
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4500,\"chat\":{\"id\":523901177},"
                 "\"date\":1763812900,\"text\":\"ok\"}}");
    long long id;
    assert_int_equal(reply(conv, "Здравствуйте, Анна! Перезвоним сегодня.", NULL, &id), 202);
    assert_true(id > 0);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE interaction_id = %lld", id), 1);

    assert_int_equal(wait_int(1, 15000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4500'",
                              id),
                     1);
    assert_int_equal(mock.requests, base + 2);
    char head[4096], body[4096];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(th_mock_request(&mock, base + i, head, sizeof head, body, sizeof body), 0);
        assert_non_null(strstr(head, "POST /bot" TG_TOKEN "/sendMessage HTTP/1.1"));
        json_t *o = json_loads(body, 0, NULL);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "chat_id")), 523901177);
        assert_string_equal(json_string_value(json_object_get(o, "text")),
                            "Здравствуйте, Анна! Перезвоним сегодня.");
        json_decref(o);
    }
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE direction = 'out'"), 1);
    assert_int_equal(q_int("SELECT attempts FROM outbox WHERE interaction_id = %lld AND status = "
                           "'sent' AND claim_token IS NULL",
                           id),
                     2);
    /* The 429's wait was honoured: the retry was due a second later. */
    assert_int_equal(q_int("SELECT TIMESTAMPDIFF(MICROSECOND, created_at, sent_at) >= 1000000 "
                           "FROM outbox WHERE interaction_id = %lld",
                           id),
                     1);
    /* Agents saw it created and sent. */
    assert_int_equal(q_int("SELECT COUNT(*) FROM events WHERE type = 'interaction.created' AND "
                           "JSON_VALUE(data, '$.id') = %lld AND JSON_VALUE(data, '$.direction') = "
                           "'out'",
                           id),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM events WHERE type = 'interaction.updated' AND "
                           "JSON_VALUE(data, '$.id') = %lld AND JSON_VALUE(data, "
                           "'$.delivery_status') = 'sent'",
                           id),
                     1);
    assert_int_equal(
        q_int("SELECT first_response_at IS NOT NULL FROM conversations WHERE id = %lld", conv), 1);
}

/* A double-click sends once: the same Idempotency-Key (or client_id)
 * answers with the first reply. */
static void the_same_key_sends_once(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    int base = mock.requests;
    long long a, b;
    assert_int_equal(reply(conv, "Один раз", "click-1", &a), 202);
    assert_int_equal(reply(conv, "Один раз", "click-1", &b), 202);
    assert_int_equal(a, b);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE text = 'Один раз'"), 1);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM outbox WHERE interaction_id = %lld AND "
                              "status = 'sent'",
                              a),
                     1);
    usleep(300 * 1000);
    assert_int_equal(mock.requests, base + 1);
}

/* A 5xx is retried with backoff. */
static void a_5xx_is_retried(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    int base = mock.requests;
    th_mock_push(&mock, 502, NULL, "{\"ok\":false}");
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4501,\"chat\":{\"id\":523901177}}}");
    long long id;
    assert_int_equal(reply(conv, "После 502", NULL, &id), 202);
    assert_int_equal(wait_int(1, 15000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4501'",
                              id),
                     1);
    assert_int_equal(mock.requests, base + 2);
}

/* A permanent refusal fails at once with the provider's reason. */
static void a_permanent_400_fails_with_the_reason(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    int base = mock.requests;
    th_mock_push(&mock, 400, NULL,
                 "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: chat not "
                 "found\"}");
    long long id;
    assert_int_equal(reply(conv, "В никуда", NULL, &id), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'failed' AND JSON_VALUE(meta, "
                              "'$.delivery_error') LIKE '%%chat not found%%'",
                              id),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE interaction_id = %lld AND status = "
                           "'failed' AND last_error LIKE '400 Bad Request: chat not found' AND "
                           "attempts = 1",
                           id),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM events WHERE type = 'interaction.updated' AND "
                           "JSON_VALUE(data, '$.id') = %lld AND JSON_VALUE(data, "
                           "'$.delivery_status') = 'failed' AND JSON_VALUE(data, '$.error') LIKE "
                           "'%%chat not found%%'",
                           id),
                     1);
    usleep(300 * 1000);
    assert_int_equal(mock.requests, base + 1);
    /* So far: three sent, two retried (the 429, the 502), this one failed. */
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_non_null(strstr(r.body, "\nswitchboard_outbox_sent_total 3\n"));
    assert_non_null(strstr(r.body, "\nswitchboard_outbox_retries_total 2\n"));
    assert_non_null(strstr(r.body, "\nswitchboard_outbox_failed_total 1\n"));
    assert_non_null(strstr(r.body, "\nswitchboard_outbox_inflight 0\n"));
    th_resp_free(&r);

    /* The agent fixes things and retries: the same interaction goes out. */
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4502,\"chat\":{\"id\":523901177}}}");
    char path[128];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/interactions/%lld/retry", conv, id);
    const char *h[] = {cookie, NULL};
    assert_int_equal(th_http(&srv, "POST", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"delivery_status\":\"queued\""));
    th_resp_free(&r);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4502' AND "
                              "JSON_VALUE(meta, '$.delivery_error') IS NULL",
                              id),
                     1);
    assert_int_equal(mock.requests, base + 2);
    /* Only failed replies can be retried. */
    assert_int_equal(th_http(&srv, "POST", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 409);
    th_resp_free(&r);
}

/* WhatsApp: the body and Bearer token are right, the wamid is recorded, and
 * Meta's status notifications for that wamid move the delivery status. */
static void whatsapp_reply_and_status_webhooks(void **state)
{
    (void)state;
    hook_fixture("whatsapp", wa_id, "whatsapp-text.json");
    long long conv = conversation_of(wa_id);
    assert_true(conv > 0);
    int base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"messaging_product\":\"whatsapp\",\"contacts\":[{\"input\":\"79160001122\","
                 "\"wa_id\":\"79160001122\"}],\"messages\":[{\"id\":\"wamid.OUT-1\"}]}");
    long long id;
    assert_int_equal(reply(conv, "Да, кухня будет готова в пятницу", NULL, &id), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = 'wamid.OUT-1'",
                              id),
                     1);
    char head[4096], body[4096];
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, body, sizeof body), 0);
    assert_non_null(strstr(head, "POST /106540352242922/messages HTTP/1.1"));
    assert_non_null(strstr(head, "Authorization: Bearer " WA_TOKEN "\r\n"));
    assert_non_null(strstr(head, "Content-Type: application/json"));
    json_t *o = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "messaging_product")), "whatsapp");
    assert_string_equal(json_string_value(json_object_get(o, "to")), "79160001122");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "text"), "body")),
                        "Да, кухня будет готова в пятницу");
    json_decref(o);

    const char *status_fmt =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{"
        "\"value\":{\"messaging_product\":\"whatsapp\",\"statuses\":[{\"id\":\"wamid.OUT-1\","
        "\"status\":\"%s\",\"timestamp\":\"1763813400\",\"recipient_id\":\"79160001122\"}]},"
        "\"field\":\"messages\"}]}]}";
    char st[1024];
    snprintf(st, sizeof st, status_fmt, "delivered");
    hook("whatsapp", wa_id, st);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                           "delivery_status = 'delivered'",
                           id),
                     1);
    snprintf(st, sizeof st, status_fmt, "read");
    hook("whatsapp", wa_id, st);
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM interactions WHERE id = %lld AND delivery_status = 'read'", id),
        1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM events WHERE type = 'interaction.updated' AND "
                           "JSON_VALUE(data, '$.id') = %lld",
                           id),
                     3); /* sent, delivered, read */
}

/* Viber: receiver, sender name, auth token header; the message_token is
 * recorded so delivered/seen callbacks find the message. */
static void viber_reply(void **state)
{
    (void)state;
    hook_fixture("viber", vb_id, "viber-message.json");
    long long conv = conversation_of(vb_id);
    assert_true(conv > 0);
    int base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"status\":0,\"status_message\":\"ok\",\"message_token\":5741311803571729999,"
                 "\"chat_hostname\":\"SN-CHAT-05_\"}");
    long long id;
    assert_int_equal(reply(conv, "Да, доставляем в Казань", NULL, &id), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '5741311803571729999'",
                              id),
                     1);
    char head[4096], body[4096];
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, body, sizeof body), 0);
    assert_non_null(strstr(head, "POST /send_message HTTP/1.1"));
    assert_non_null(strstr(head, "X-Viber-Auth-Token: " VIBER_TOKEN "\r\n"));
    json_t *o = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "receiver")), "01234567890A=");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(o, "text")), "Да, доставляем в Казань");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "sender"), "name")),
                        "Кухни на заказ");
    json_decref(o);

    const char *seen = "{\"event\":\"seen\",\"timestamp\":1763813600000,\"message_token\":"
                       "5741311803571729999,\"user_id\":\"01234567890A=\"}";
    hook("viber", vb_id, seen);
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM interactions WHERE id = %lld AND delivery_status = 'read'", id),
        1);
}

/* A job whose sender died holding it (lease passed) is sent once by the
 * running sender; one whose lease is still running is left alone; the dead
 * sender's token can no longer write. */
static void a_dead_senders_claim_is_taken_over(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    char err[256] = "";
    const char *ins =
        "INSERT INTO interactions (conversation_id, client_id, channel_id, direction, kind, text, "
        "delivery_status) SELECT id, client_id, channel_id, 'out', 'message', ?, 'queued' FROM "
        "conversations WHERE id = ?";
    const char *job = "INSERT INTO outbox (kind, channel_id, interaction_id, payload, status, "
                      "attempts, claim_token, claimed_until) VALUES ('reply', ?, ?, ?, 'sending', "
                      "1, ?, UTC_TIMESTAMP(6) + INTERVAL ? SECOND)";
    unsigned char dead[SB_OUTBOX_TOKEN_LEN], alive[SB_OUTBOX_TOKEN_LEN];
    randombytes_buf(dead, sizeof dead);
    randombytes_buf(alive, sizeof alive);
    long long ids[2];
    int64_t jobs[2];
    const char *texts[2] = {"Осиротевшее сообщение", "Чужое сообщение"};
    int base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4600,\"chat\":{\"id\":523901177}}}");
    for (int i = 0; i < 2; i++) {
        struct sb_db_val a[] = {SB_TEXT(texts[i]), SB_INT(conv)};
        struct sb_db_rows r;
        assert_int_equal(sb_db_exec(db, ins, a, 2, &r, err, sizeof err), SB_OK);
        ids[i] = (long long)r.insert_id;
        sb_db_rows_free(&r);
        char payload[256];
        snprintf(payload, sizeof payload, "{\"to\":\"523901177\",\"text\":\"%s\"}", texts[i]);
        struct sb_db_val b[] = {SB_INT(tg_id), SB_INT(ids[i]), SB_TEXT(payload),
                                SB_BLOB(i ? alive : dead, SB_OUTBOX_TOKEN_LEN),
                                SB_INT(i ? 600 : -5)};
        assert_int_equal(sb_db_exec(db, job, b, 5, &r, err, sizeof err), SB_OK);
        jobs[i] = (int64_t)r.insert_id;
        sb_db_rows_free(&r);
    }
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4600'",
                              ids[0]),
                     1);
    usleep(1500 * 1000); /* past a poll: the live claim is still not touched */
    assert_int_equal(mock.requests, base + 1);
    char body[4096];
    assert_int_equal(th_mock_request(&mock, base, NULL, 0, body, sizeof body), 0);
    assert_non_null(strstr(body, "Осиротевшее"));
    assert_int_equal(q_int("SELECT attempts FROM outbox WHERE id = %lld", (long long)jobs[0]), 2);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE id = %lld AND status = 'sending'",
                           (long long)jobs[1]),
                     1);
    /* The dead sender comes back to life: its writes are refused. */
    struct sb_outbox_job j = {.id = jobs[0], .interaction_id = ids[0]};
    snprintf(j.kind, sizeof j.kind, "reply");
    int owned = 1;
    assert_int_equal(sb_outbox_failed(db, &j, dead, "late", &owned, err, sizeof err), SB_OK);
    assert_int_equal(owned, 0);
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM interactions WHERE id = %lld AND delivery_status = 'sent'",
              ids[0]),
        1);
    /* Let the live claim go so later tests see a quiet outbox. */
    struct sb_db_val c[] = {SB_INT(jobs[1])};
    assert_int_equal(
        sb_db_exec(db, "UPDATE outbox SET status = 'failed', claim_token = NULL WHERE id = ?", c, 1,
                   NULL, err, sizeof err),
        SB_OK);
}

/* kill -9 while a reply waits for its retry: after a restart it is sent,
 * once. */
static void a_killed_server_sends_after_restart(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    int base = mock.requests;
    th_mock_push(&mock, 503, "Retry-After: 3\r\n", "{\"ok\":false}");
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4700,\"chat\":{\"id\":523901177}}}");
    long long id;
    assert_int_equal(reply(conv, "Переживёт падение", NULL, &id), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM outbox WHERE interaction_id = %lld AND status "
                              "= 'queued' AND attempts = 1 AND last_error IS NOT NULL",
                              id),
                     1);
    kill(srv.pid, SIGKILL);
    waitpid(srv.pid, NULL, 0);
    th_server_start(&srv, NULL);
    assert_int_equal(wait_int(1, 15000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4700'",
                              id),
                     1);
    usleep(300 * 1000);
    assert_int_equal(mock.requests, base + 2);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE text = 'Переживёт падение'"),
                     1);
}

/* SIGTERM while a provider hangs: the server still stops within seconds
 * (cleanly, leak-checked); the job it abandoned stays claimed and is sent
 * once its lease has passed. */
static void stop_is_prompt_while_a_provider_hangs(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    int base = mock.requests;
    th_mock_push_delayed(
        &mock, 6000, 200, NULL,
        "{\"ok\":true,\"result\":{\"message_id\":4800,\"chat\":{\"id\":523901177}}}");
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4801,\"chat\":{\"id\":523901177}}}");
    long long id;
    assert_int_equal(reply(conv, "Провайдер завис", NULL, &id), 202);
    assert_int_equal(th_mock_wait(&mock, base + 1, 5000), base + 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(th_server_stop(&srv), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took < 5.0);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE interaction_id = %lld AND status = "
                           "'sending' AND claimed_until > UTC_TIMESTAMP(6)",
                           id),
                     1);
    /* Its lease runs out (rather than waiting 120 s). */
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE outbox SET claimed_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE "
             "interaction_id = %lld",
             id);
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, sql, NULL, 0, NULL, err, sizeof err), SB_OK);
    th_server_start(&srv, NULL);
    assert_int_equal(wait_int(1, 20000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4801'",
                              id),
                     1);
    /* The provider saw it twice (at-least-once); we stored it once. */
    assert_int_equal(mock.requests, base + 2);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE text = 'Провайдер завис'"), 1);
}

/* An agent's browser sees the reply appear (queued) and go out (sent) live,
 * over the WebSocket, from the events the reply and the sender wrote. */
static void agents_see_the_reply_go_out_live(void **state)
{
    (void)state;
    char why[256] = "";
    struct th_ws *ws = th_ws_connect(srv.port, cookie, why, sizeof why);
    if (!ws)
        fprintf(stderr, "ws connect: %s\n", why);
    assert_non_null(ws);
    long long conv = conversation_of(tg_id);
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4900,\"chat\":{\"id\":523901177}}}");
    long long id;
    assert_int_equal(reply(conv, "Вижу вживую", NULL, &id), 202);
    int created = 0, sent = 0;
    char *m;
    while ((!created || !sent) && (m = th_ws_recv_type(ws, "event", 5000)) != NULL) {
        json_t *o = json_loads(m, 0, NULL);
        const char *ev = json_string_value(json_object_get(o, "event"));
        json_t *d = json_object_get(o, "data");
        if (json_integer_value(json_object_get(d, "id")) == id && ev) {
            const char *st = json_string_value(json_object_get(d, "delivery_status"));
            if (!strcmp(ev, "interaction.created") && st && !strcmp(st, "queued"))
                created = 1;
            if (!strcmp(ev, "interaction.updated") && st && !strcmp(st, "sent") && created)
                sent = 1;
        }
        json_decref(o);
        free(m);
    }
    th_ws_free(&ws);
    assert_true(created);
    assert_true(sent);
}

/* Notes are private: stored, announced, never sent. Channels that cannot
 * send refuse replies clearly. */
static void notes_are_never_sent(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    int64_t jobs = q_int("SELECT COUNT(*) FROM outbox");
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/notes", conv);
    const char *h[] = {cookie, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, "{\"text\":\"Клиентка VIP\"}", h, &r), 0);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox"), jobs);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE direction = 'note' AND kind = "
                           "'note' AND text = 'Клиентка VIP' AND delivery_status = 'none'"),
                     1);
    long long id;
    assert_int_equal(reply(conv, "", NULL, &id), 400);
    assert_int_equal(reply(999999, "кому?", NULL, &id), 404);

    /* A PBX cannot carry a message: 422, and nothing is stored. */
    const char *pbx[] = {"secret=" PBX_SECRET, NULL};
    long long pbx_id = add_channel("pbx", pbx);
    assert_true(pbx_id > 0);
    hook("pbx", pbx_id,
         "{\"call_id\":\"c-1\",\"direction\":\"in\",\"from\":\"+7 916 000-11-22\",\"to\":"
         "\"74951234567\",\"started_at\":\"2025-11-22T12:13:20Z\",\"duration\":0,\"status\":"
         "\"missed\"}");
    int64_t out = q_int("SELECT COUNT(*) FROM interactions WHERE direction = 'out'");
    assert_int_equal(reply(conversation_of(pbx_id), "алло", NULL, &id), 422);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE direction = 'out'"), out);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox"), jobs);
}

/* A job whose payload cannot be read is quarantined, not retried forever
 * and not deleted; its reply shows failed. */
static void an_unreadable_job_is_quarantined(void **state)
{
    (void)state;
    long long conv = conversation_of(tg_id);
    char err[256] = "";
    struct sb_db_val a[] = {SB_INT(conv)};
    struct sb_db_rows r;
    assert_int_equal(sb_db_exec(db,
                                "INSERT INTO interactions (conversation_id, client_id, channel_id, "
                                "direction, kind, text, delivery_status) SELECT id, client_id, "
                                "channel_id, 'out', 'message', 'broken', 'queued' FROM "
                                "conversations WHERE id = ?",
                                a, 1, &r, err, sizeof err),
                     SB_OK);
    long long id = (long long)r.insert_id;
    sb_db_rows_free(&r);
    struct sb_db_val b[] = {SB_INT(tg_id), SB_INT(id)};
    assert_int_equal(sb_db_exec(db,
                                "INSERT INTO outbox (kind, channel_id, interaction_id, payload) "
                                "VALUES ('reply', ?, ?, '[1, 2]')",
                                b, 2, NULL, err, sizeof err),
                     SB_OK);
    int base = mock.requests;
    assert_int_equal(wait_int(1, 5000,
                              "SELECT COUNT(*) FROM outbox WHERE interaction_id = %lld AND status "
                              "= 'quarantined' AND last_error LIKE 'unreadable%%'",
                              id),
                     1);
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM interactions WHERE id = %lld AND delivery_status = 'failed'",
              id),
        1);
    assert_int_equal(mock.requests, base);
}

/* More replies than the sender runs at once (16): every one reaches the
 * provider exactly once and gets its own provider id. */
static void a_burst_of_replies_is_sent_once_each(void **state)
{
    (void)state;
    enum { N = 40 };
    long long conv = conversation_of(tg_id);
    int base = mock.requests;
    for (int i = 0; i < N; i++) {
        char answer[200];
        snprintf(answer, sizeof answer,
                 "{\"ok\":true,\"result\":{\"message_id\":%d,\"chat\":{\"id\":523901177}}}",
                 7000 + i);
        th_mock_push(&mock, 200, NULL, answer);
    }
    long long first = 0;
    for (int i = 0; i < N; i++) {
        char text[64];
        long long id;
        snprintf(text, sizeof text, "burst %02d", i);
        assert_int_equal(reply(conv, text, NULL, &id), 202);
        if (!first)
            first = id;
    }
    assert_int_equal(wait_int(N, 20000,
                              "SELECT COUNT(DISTINCT external_id) FROM interactions WHERE id >= "
                              "%lld AND text LIKE 'burst %%' AND delivery_status = 'sent'",
                              first),
                     N);
    usleep(300 * 1000);
    assert_int_equal(mock.requests, base + N);
    int seen[N] = {0};
    for (int i = 0; i < N; i++) {
        char body[4096];
        assert_int_equal(th_mock_request(&mock, base + i, NULL, 0, body, sizeof body), 0);
        const char *t = strstr(body, "burst ");
        assert_non_null(t);
        seen[atoi(t + 6)]++;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
}

/* A Telegram photo's file is fetched by the sender (getFile, then the
 * file) into a content-addressed blob; the webhook never waits for it. */
static void telegram_files_are_fetched(void **state)
{
    (void)state;
    int base = mock.requests;
    const char *bytes = "\xff\xd8\xff\xe0 not really a jpeg";
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"file_id\":\"AgACAgIAAxkBAAIBa2Vh1\",\"file_size\":24,"
                 "\"file_path\":\"photos/file_7.jpg\"}}");
    th_mock_push(&mock, 200, NULL, bytes);
    hook_fixture("telegram", tg_id, "telegram-photo.json");
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM attachments a JOIN blobs b ON b.sha256 = "
                              "a.sha256 WHERE a.provider_ref = 'AgACAgIAAxkBAAIBa2Vh1' AND "
                              "b.size = %zu",
                              strlen(bytes)),
                     1);
    char head[4096];
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, NULL, 0), 0);
    assert_non_null(
        strstr(head, "GET /bot" TG_TOKEN "/getFile?file_id=AgACAgIAAxkBAAIBa2Vh1 HTTP/1.1"));
    assert_int_equal(th_mock_request(&mock, base + 1, head, sizeof head, NULL, 0), 0);
    assert_non_null(strstr(head, "GET /file/bot" TG_TOKEN "/photos/file_7.jpg HTTP/1.1"));
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE kind = 'fetch' AND status = 'sent'"),
                     1);
    usleep(1500 * 1000); /* the next sweeps add nothing */
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE kind = 'fetch'"), 1);
    assert_int_equal(mock.requests, base + 2);
}

/* WhatsApp media (GET /{media-id}, then its URL, both with the Bearer
 * token) and Viber media (the message's own URL) end up as blobs too. */
static void whatsapp_and_viber_media_are_fetched(void **state)
{
    (void)state;
    int base = mock.requests;
    char answer[256];
    snprintf(answer, sizeof answer,
             "{\"url\":\"http://127.0.0.1:%d/wa-media/42?ext=1\",\"mime_type\":\"image/jpeg\","
             "\"file_size\":9,\"id\":\"1213405049403024\"}",
             mock.port);
    th_mock_push(&mock, 200, NULL, answer);
    th_mock_push(&mock, 200, NULL, "wa-bytes!");
    hook_fixture("whatsapp", wa_id, "whatsapp-image.json");
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM attachments a JOIN blobs b ON b.sha256 = "
                              "a.sha256 WHERE a.provider_ref = '1213405049403024' AND b.data = "
                              "'wa-bytes!'"),
                     1);
    char head[4096];
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, NULL, 0), 0);
    assert_non_null(strstr(head, "GET /1213405049403024 HTTP/1.1"));
    assert_non_null(strstr(head, "Authorization: Bearer " WA_TOKEN "\r\n"));
    assert_int_equal(th_mock_request(&mock, base + 1, head, sizeof head, NULL, 0), 0);
    assert_non_null(strstr(head, "GET /wa-media/42?ext=1 HTTP/1.1"));
    assert_non_null(strstr(head, "Authorization: Bearer " WA_TOKEN "\r\n"));

    base = mock.requests;
    th_mock_push(&mock, 200, NULL, "viber-bytes");
    char body[1024];
    snprintf(body, sizeof body,
             "{\"event\":\"message\",\"timestamp\":1763813700000,\"message_token\":"
             "5741311803571725555,\"sender\":{\"id\":\"01234567890A=\",\"name\":\"Ирина К.\"},"
             "\"message\":{\"type\":\"picture\",\"text\":\"фото\",\"media\":"
             "\"http://127.0.0.1:%d/viber/pic.jpg\"}}",
             mock.port);
    hook("viber", vb_id, body);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM attachments a JOIN blobs b ON b.sha256 = "
                              "a.sha256 WHERE b.data = 'viber-bytes'"),
                     1);
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, NULL, 0), 0);
    assert_non_null(strstr(head, "GET /viber/pic.jpg HTTP/1.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(telegram_reply_retries_a_429),
        cmocka_unit_test(the_same_key_sends_once),
        cmocka_unit_test(a_5xx_is_retried),
        cmocka_unit_test(a_permanent_400_fails_with_the_reason),
        cmocka_unit_test(whatsapp_reply_and_status_webhooks),
        cmocka_unit_test(viber_reply),
        cmocka_unit_test(a_dead_senders_claim_is_taken_over),
        cmocka_unit_test(a_killed_server_sends_after_restart),
        cmocka_unit_test(stop_is_prompt_while_a_provider_hangs),
        cmocka_unit_test(agents_see_the_reply_go_out_live),
        cmocka_unit_test(notes_are_never_sent),
        cmocka_unit_test(an_unreadable_job_is_quarantined),
        cmocka_unit_test(a_burst_of_replies_is_sent_once_each),
        cmocka_unit_test(telegram_files_are_fetched),
        cmocka_unit_test(whatsapp_and_viber_media_are_fetched),
    };
    return cmocka_run_group_tests_name("outbound", tests, setup, teardown);
}
