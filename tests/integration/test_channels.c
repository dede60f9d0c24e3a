/* Channel management from the shell against a mock provider API on
 * loopback: channel test (Telegram getMe) and channel webhook (setWebhook
 * with our secret token, Viber set_webhook), and their clear failures. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct th_mock mock;

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_mock_start(&mock, 200, "{\"ok\":true,\"result\":{\"id\":1,\"username\":\"shop_bot\"}}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_mock_stop(&mock);
    th_db_teardown();
    return 0;
}

static long long add(const char *kind, const char *k1, const char *k2, const char *k3)
{
    char base[96], out[2048];
    snprintf(base, sizeof base, "api_base=http://127.0.0.1:%d", mock.port);
    const char *args[] = {"channel", "add",
                          kind,      "--name",
                          kind,      "--set",
                          base,      "--set",
                          k1,        k2 ? "--set" : NULL,
                          k2,        k3 ? "--set" : NULL,
                          k3,        NULL};
    assert_int_equal(th_run(args, NULL, out, sizeof out), 0);
    json_t *o = json_loads(out, 0, NULL);
    long long id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    assert_true(id > 0);
    return id;
}

static void telegram_test_and_webhook(void **state)
{
    (void)state;
    long long id =
        add("telegram", "token=123456:SECRET-TOKEN", "secret_token=hook-secret-0123456789", NULL);
    char sid[32], out[2048];
    snprintf(sid, sizeof sid, "%lld", id);
    const char *test[] = {"channel", "test", sid, NULL};
    assert_int_equal(th_run(test, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "ok: bot @shop_bot"));
    assert_non_null(strstr(mock.seen, "GET /bot123456:SECRET-TOKEN/getMe"));

    const char *hook[] = {
        "channel", "webhook", sid, "--url", "https://crm.example/hooks/telegram/1", NULL};
    th_mock_respond(&mock, 200, "{\"ok\":true,\"result\":true}");
    assert_int_equal(th_run(hook, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "webhook set"));
    assert_non_null(strstr(mock.seen, "POST /bot123456:SECRET-TOKEN/setWebhook"));
    assert_non_null(strstr(mock.seen, "\"secret_token\":\"hook-secret-0123456789\""));
    assert_non_null(strstr(mock.seen, "\"url\":\"https://crm.example/hooks/telegram/1\""));

    /* The provider says no: exit 1 with its words. */
    th_mock_respond(&mock, 401,
                    "{\"ok\":false,\"error_code\":401,\"description\":\"Unauthorized\"}");
    assert_int_equal(th_run(test, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "Unauthorized"));
    /* No token in what we print. */
    assert_null(strstr(out, "SECRET-TOKEN"));
}

static void viber_webhook(void **state)
{
    (void)state;
    long long id = add("viber", "auth_token=viber-token-1", NULL, NULL);
    char sid[32], out[2048];
    snprintf(sid, sizeof sid, "%lld", id);
    th_mock_respond(&mock, 200, "{\"status\":0,\"status_message\":\"ok\"}");
    const char *hook[] = {"channel", "webhook", sid, "--url", "https://crm.example/hooks/viber/2",
                          NULL};
    assert_int_equal(th_run(hook, NULL, out, sizeof out), 0);
    assert_non_null(strstr(mock.seen, "POST /set_webhook"));
    th_mock_respond(&mock, 200, "{\"status\":2,\"status_message\":\"invalidAuthToken\"}");
    assert_int_equal(th_run(hook, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "invalidAuthToken"));
}

static void bad_usage_is_clear(void **state)
{
    (void)state;
    char out[2048];
    const char *unknown[] = {"channel", "add", "fax", "--name", "Fax", NULL};
    assert_int_equal(th_run(unknown, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "unknown channel kind"));
    const char *nourl[] = {"channel", "webhook", "1", NULL};
    assert_int_equal(th_run(nourl, NULL, out, sizeof out), 2);
    const char *missing[] = {"channel", "test", "99999", NULL};
    assert_int_equal(th_run(missing, NULL, out, sizeof out), 1);
    const char *pbx[] = {"channel", "add", "pbx", "--name", "PBX", "--set", "secret=short", NULL};
    assert_int_equal(th_run(pbx, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(telegram_test_and_webhook),
        cmocka_unit_test(viber_webhook),
        cmocka_unit_test(bad_usage_is_clear),
    };
    return cmocka_run_group_tests_name("channels", tests, setup, teardown);
}
