/* The pure parts of sending: retry backoff, the common reading of HTTP
 * answers, and each adapter's send_prepare / send_result / fetch_step. */
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/sender.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void backoff_grows_with_jitter_and_is_capped(void **state)
{
    (void)state;
    /* attempt 1: 1-2 s; each attempt doubles; "equal jitter" keeps half */
    assert_int_equal(sb_sender_backoff_ms(1, 0, 0), SB_SEND_BACKOFF_MIN_MS / 2);
    assert_int_equal(sb_sender_backoff_ms(1, 0, UINT32_MAX - 0),
                     SB_SEND_BACKOFF_MIN_MS / 2 + (int64_t)(UINT32_MAX % 1001));
    for (int a = 1; a <= 30; a++)
        for (uint32_t rnd = 0; rnd < 5000; rnd += 997) {
            int64_t base = SB_SEND_BACKOFF_MIN_MS;
            for (int i = 1; i < a && base < SB_SEND_BACKOFF_MAX_MS; i++)
                base *= 2;
            if (base > SB_SEND_BACKOFF_MAX_MS)
                base = SB_SEND_BACKOFF_MAX_MS;
            int64_t d = sb_sender_backoff_ms(a, 0, rnd);
            assert_true(d >= base / 2 && d <= base);
        }
    assert_true(sb_sender_backoff_ms(1000, 0, 12345) <= SB_SEND_BACKOFF_MAX_MS);
    assert_true(sb_sender_backoff_ms(0, 0, 1) >= SB_SEND_BACKOFF_MIN_MS / 2);
    /* The provider's Retry-After wins, exactly. */
    assert_int_equal(sb_sender_backoff_ms(1, 7, 999), 7000);
    assert_int_equal(sb_sender_backoff_ms(9, 1, 999), 1000);
}

static void http_answers_are_classified(void **state)
{
    (void)state;
    struct sb_send_result r;
    sb_send_result_http(200, NULL, &r);
    assert_int_equal(r.outcome, SB_SEND_OK);
    sb_send_result_http(429, "3", &r);
    assert_int_equal(r.outcome, SB_SEND_RETRY);
    assert_int_equal(r.retry_after_s, 3);
    sb_send_result_http(503, NULL, &r);
    assert_int_equal(r.outcome, SB_SEND_RETRY);
    assert_int_equal(r.retry_after_s, 0);
    assert_string_equal(r.error, "HTTP 503");
    sb_send_result_http(400, "5", &r);
    assert_int_equal(r.outcome, SB_SEND_FAILED);
    sb_send_result_http(403, NULL, &r);
    assert_int_equal(r.outcome, SB_SEND_FAILED);
    /* Retry-After as an HTTP date: roughly that many seconds from now. */
    char date[64];
    time_t when = time(NULL) + 120;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&when));
    sb_send_result_http(429, date, &r);
    assert_true(r.retry_after_s >= 115 && r.retry_after_s <= 121);
    sb_send_result_http(429, "garbage", &r);
    assert_int_equal(r.retry_after_s, 0);
    sb_send_result_http(429, "99999999", &r);
    assert_int_equal(r.retry_after_s, 86400);
}

static struct sb_channel channel(const char *kind, json_t *config)
{
    struct sb_channel ch = {
        .id = 7, .kind = sb_channel_kind_find(kind), .enabled = 1, .config = config};
    snprintf(ch.name, sizeof ch.name, "Shop with a rather long name for Viber");
    return ch;
}

static int has_header(const struct sb_send_req *req, const char *line)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (!strcmp(req->headers[i], line))
            return 1;
    return 0;
}

static void telegram_send(void **state)
{
    (void)state;
    json_t *cfg = json_pack("{s:s,s:s}", "token", "123:ABC", "api_base", "http://mock");
    struct sb_channel ch = channel("telegram", cfg);
    assert_non_null(ch.kind->send_prepare);
    struct sb_outbound msg = {.outbox_id = 1, .interaction_id = 2, .to = "-100200", .text = "Hi"};
    struct sb_send_req req = {0};
    char err[256] = "";
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
    assert_string_equal(req.url, "http://mock/bot123:ABC/sendMessage");
    assert_true(has_header(&req, "Content-Type: application/json"));
    json_t *b = json_loadb(req.body, req.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "chat_id")), -100200);
    assert_string_equal(json_string_value(json_object_get(b, "text")), "Hi");
    json_decref(b);
    sb_send_req_free(&req);

    struct sb_send_result res;
    const char *ok = "{\"ok\":true,\"result\":{\"message_id\":55,\"chat\":{\"id\":-100200}}}";
    ch.kind->send_result(&ch, &msg, 200, ok, strlen(ok), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_OK);
    assert_string_equal(res.external_id, "-100200:55");
    const char *slow = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many Requests: "
                       "retry after 9\",\"parameters\":{\"retry_after\":9}}";
    ch.kind->send_result(&ch, &msg, 429, slow, strlen(slow), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_RETRY);
    assert_int_equal(res.retry_after_s, 9);
    const char *blocked = "{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was "
                          "blocked by the user\"}";
    ch.kind->send_result(&ch, &msg, 403, blocked, strlen(blocked), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    assert_string_equal(res.error, "403 Forbidden: bot was blocked by the user");
    ch.kind->send_result(&ch, &msg, 502, "<html>bad gateway", 17, NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_RETRY);
    const char *odd = "{\"ok\":false}";
    ch.kind->send_result(&ch, &msg, 200, odd, strlen(odd), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_FAILED);

    /* Nothing to send is refused before any transfer. */
    struct sb_outbound empty = {.to = "1", .text = ""};
    assert_int_equal(ch.kind->send_prepare(&ch, &empty, &req, err, sizeof err), SB_ERR_INVALID);
    sb_send_req_free(&req);
    json_decref(cfg);
}

static void telegram_fetch_chain(void **state)
{
    (void)state;
    json_t *cfg = json_pack("{s:s,s:s}", "token", "123:ABC", "api_base", "http://mock");
    struct sb_channel ch = channel("telegram", cfg);
    struct sb_send_req req = {0};
    struct sb_send_result res = {0};
    int more = 0;
    struct sb_fetch_step st = {.provider_ref = "AgAC+x/y"};
    assert_int_equal(ch.kind->fetch_step(&ch, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 1);
    assert_string_equal(req.url, "http://mock/bot123:ABC/getFile?file_id=AgAC%2Bx%2Fy");
    sb_send_req_free(&req);

    const char *answer = "{\"ok\":true,\"result\":{\"file_path\":\"documents/file_3.pdf\"}}";
    st = (struct sb_fetch_step){
        .provider_ref = "x", .step = 1, .status = 200, .body = answer, .len = strlen(answer)};
    assert_int_equal(ch.kind->fetch_step(&ch, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 1);
    assert_string_equal(req.url, "http://mock/file/bot123:ABC/documents/file_3.pdf");
    assert_true(req.max_answer >= 20u << 20);
    sb_send_req_free(&req);

    st = (struct sb_fetch_step){.step = 2, .status = 200, .body = "bytes", .len = 5};
    assert_int_equal(ch.kind->fetch_step(&ch, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    assert_int_equal(res.outcome, SB_SEND_OK);

    /* A file too big for bots, and a path that tries to climb out. */
    const char *big = "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: file is "
                      "too big\"}";
    st = (struct sb_fetch_step){.step = 1, .status = 400, .body = big, .len = strlen(big)};
    assert_int_equal(ch.kind->fetch_step(&ch, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    assert_non_null(strstr(res.error, "too big"));
    const char *climb = "{\"ok\":true,\"result\":{\"file_path\":\"../../etc/passwd\"}}";
    st = (struct sb_fetch_step){.step = 1, .status = 200, .body = climb, .len = strlen(climb)};
    assert_int_equal(ch.kind->fetch_step(&ch, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    sb_send_req_free(&req);
    json_decref(cfg);
}

static void whatsapp_send(void **state)
{
    (void)state;
    json_t *cfg = json_pack("{s:s,s:s,s:s}", "access_token", "EAAG", "phone_number_id", "1065",
                            "api_base", "http://mock/v19.0");
    struct sb_channel ch = channel("whatsapp", cfg);
    struct sb_outbound msg = {.to = "79160001122", .text = "Привет"};
    struct sb_send_req req = {0};
    char err[256] = "";
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
    assert_string_equal(req.url, "http://mock/v19.0/1065/messages");
    assert_true(has_header(&req, "Authorization: Bearer EAAG"));
    json_t *b = json_loadb(req.body, req.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "to")), "79160001122");
    assert_string_equal(json_string_value(json_object_get(b, "messaging_product")), "whatsapp");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "text"), "body")),
                        "Привет");
    json_decref(b);
    sb_send_req_free(&req);

    struct sb_send_result res;
    const char *ok = "{\"messages\":[{\"id\":\"wamid.ABC\"}]}";
    ch.kind->send_result(&ch, &msg, 200, ok, strlen(ok), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_OK);
    assert_string_equal(res.external_id, "wamid.ABC");
    /* Throttling comes as HTTP 400 with a code that means "later". */
    const char *throttled = "{\"error\":{\"message\":\"Rate limit hit\",\"code\":130429}}";
    ch.kind->send_result(&ch, &msg, 400, throttled, strlen(throttled), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_RETRY);
    const char *window = "{\"error\":{\"message\":\"Re-engagement message\",\"code\":131047,"
                         "\"error_data\":{\"details\":\"More than 24 hours have passed\"}}}";
    ch.kind->send_result(&ch, &msg, 400, window, strlen(window), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    assert_string_equal(res.error, "131047 Re-engagement message: More than 24 hours have passed");
    json_decref(cfg);
}

static void viber_send(void **state)
{
    (void)state;
    json_t *cfg = json_pack("{s:s,s:s}", "auth_token", "tok", "api_base", "http://mock/pa");
    struct sb_channel ch = channel("viber", cfg);
    struct sb_outbound msg = {.interaction_id = 42, .to = "01234567890A=", .text = "Да"};
    struct sb_send_req req = {0};
    char err[256] = "";
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
    assert_string_equal(req.url, "http://mock/pa/send_message");
    assert_true(has_header(&req, "X-Viber-Auth-Token: tok"));
    json_t *b = json_loadb(req.body, req.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "receiver")), "01234567890A=");
    /* sender.name is capped at Viber's 28 characters */
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "sender"), "name")),
                        "Shop with a rather long name");
    assert_string_equal(json_string_value(json_object_get(b, "tracking_data")), "sb:42");
    json_decref(b);
    sb_send_req_free(&req);

    struct sb_send_result res;
    const char *ok =
        "{\"status\":0,\"status_message\":\"ok\",\"message_token\":5741311803571721087}";
    ch.kind->send_result(&ch, &msg, 200, ok, strlen(ok), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_OK);
    assert_string_equal(res.external_id, "5741311803571721087");
    const char *unsub = "{\"status\":6,\"status_message\":\"notSubscribed\"}";
    ch.kind->send_result(&ch, &msg, 200, unsub, strlen(unsub), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    assert_string_equal(res.error, "6 notSubscribed");
    const char *busy = "{\"status\":12,\"status_message\":\"tooManyRequests\"}";
    ch.kind->send_result(&ch, &msg, 200, busy, strlen(busy), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_RETRY);
    json_decref(cfg);
}

/* Media URLs from provider answers are followed over https only (http only
 * when the channel itself talks http, as to a test's mock). */
static void media_fetch_follows_only_safe_urls(void **state)
{
    (void)state;
    json_t *cfg =
        json_pack("{s:s,s:s}", "access_token", "EAAG", "api_base", "https://graph.example/v19.0");
    struct sb_channel wa = channel("whatsapp", cfg);
    struct sb_send_req req = {0};
    struct sb_send_result res = {0};
    int more = 0;
    struct sb_fetch_step st = {.provider_ref = "12345"};
    assert_int_equal(wa.kind->fetch_step(&wa, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 1);
    assert_string_equal(req.url, "https://graph.example/v19.0/12345");
    assert_true(has_header(&req, "Authorization: Bearer EAAG"));
    sb_send_req_free(&req);
    const char *good = "{\"url\":\"https://lookaside.example/x?y=1\"}";
    st = (struct sb_fetch_step){.step = 1, .status = 200, .body = good, .len = strlen(good)};
    assert_int_equal(wa.kind->fetch_step(&wa, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 1);
    assert_string_equal(req.url, "https://lookaside.example/x?y=1");
    assert_true(has_header(&req, "Authorization: Bearer EAAG"));
    sb_send_req_free(&req);
    const char *plain = "{\"url\":\"http://169.254.169.254/latest\"}";
    st = (struct sb_fetch_step){.step = 1, .status = 200, .body = plain, .len = strlen(plain)};
    assert_int_equal(wa.kind->fetch_step(&wa, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    sb_send_req_free(&req);
    const char *gone = "{\"error\":{\"message\":\"Unsupported get request\",\"code\":100}}";
    st = (struct sb_fetch_step){.step = 1, .status = 400, .body = gone, .len = strlen(gone)};
    assert_int_equal(wa.kind->fetch_step(&wa, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    assert_non_null(strstr(res.error, "Unsupported get request"));
    json_decref(cfg);

    cfg = json_pack("{s:s,s:s}", "auth_token", "tok", "api_base", "https://chatapi.example/pa");
    struct sb_channel vb = channel("viber", cfg);
    st = (struct sb_fetch_step){.provider_ref = "https://dl-media.example/p.jpg"};
    assert_int_equal(vb.kind->fetch_step(&vb, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 1);
    assert_string_equal(req.url, "https://dl-media.example/p.jpg");
    sb_send_req_free(&req);
    st = (struct sb_fetch_step){.provider_ref = "file:///etc/passwd"};
    assert_int_equal(vb.kind->fetch_step(&vb, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    st = (struct sb_fetch_step){.provider_ref = "http://10.0.0.1/p.jpg"};
    assert_int_equal(vb.kind->fetch_step(&vb, &st, &req, &res, &more), SB_OK);
    assert_int_equal(more, 0);
    sb_send_req_free(&req);
    json_decref(cfg);
}

static void request_helpers_refuse_header_injection(void **state)
{
    (void)state;
    struct sb_send_req req = {0};
    assert_int_equal(sb_send_req_header(&req, "X-Token: %s", "a\r\nX-Evil: 1"), SB_ERR_INVALID);
    assert_int_equal(req.nheaders, 0);
    for (int i = 0; i < SB_SEND_HEADERS_MAX; i++)
        assert_int_equal(sb_send_req_header(&req, "X-%d: v", i), SB_OK);
    assert_int_equal(sb_send_req_header(&req, "X-more: v"), SB_ERR_TOO_LARGE);
    assert_int_equal(sb_send_req_rcpt(&req, "<a@example.com>"), SB_OK);
    assert_int_equal(req.nrcpt, 1);
    sb_send_req_free(&req);
    assert_int_equal(req.nheaders, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_grows_with_jitter_and_is_capped),
        cmocka_unit_test(http_answers_are_classified),
        cmocka_unit_test(telegram_send),
        cmocka_unit_test(telegram_fetch_chain),
        cmocka_unit_test(whatsapp_send),
        cmocka_unit_test(viber_send),
        cmocka_unit_test(media_fetch_follows_only_safe_urls),
        cmocka_unit_test(request_helpers_refuse_header_injection),
    };
    return cmocka_run_group_tests_name("outbound", tests, NULL, NULL);
}
