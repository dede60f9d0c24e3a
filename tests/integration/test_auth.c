/* Signing in, sessions, API tokens, roles and login rate limits, against a
 * real server and database. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct th_server srv;
static const char *json_h[] = {"Content-Type: application/json", NULL};

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_user("admin@example.com", "admin", "admin-password-1");
    th_user("Agent@Example.com", "agent", "agent-password-1");
    th_user("marketer@example.com", "marketer", "marketer-password-1");
    th_user("victim@example.com", "agent", "victim-password-1");
    /* Limits high enough that the functional tests never trip them; the
     * rate-limit tests start servers of their own. */
    const char *env[] = {"SWITCHBOARD_AUTH_LOGIN_IP_LIMIT=1000", NULL};
    th_server_start(&srv, env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

static long login_status(const struct th_server *s, const char *email, const char *pw,
                         struct th_resp *r)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
    assert_int_equal(th_http(s, "POST", "/api/v1/session", body, json_h, r), 0);
    return r->status;
}

static void login_sets_a_safe_cookie(void **state)
{
    (void)state;
    struct th_resp r;
    /* E-mail case and surrounding spaces do not matter. */
    assert_int_equal(login_status(&srv, "  AGENT@example.COM ", "agent-password-1", &r), 200);
    char v[512];
    assert_int_equal(th_header(&r, "set-cookie", v, sizeof v), 0);
    assert_non_null(strstr(v, "sb_session="));
    assert_non_null(strstr(v, "HttpOnly"));
    assert_non_null(strstr(v, "SameSite=Lax"));
    assert_non_null(strstr(r.body, "\"role\":\"agent\""));
    th_resp_free(&r);

    char cookie[512];
    th_login(&srv, "agent@example.com", "agent-password-1", cookie, sizeof cookie);
    const char *h[] = {cookie, NULL};
    assert_int_equal(th_http(&srv, "GET", "/api/v1/me", NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"email\":\"agent@example.com\""));
    assert_null(strstr(r.body, "password"));
    th_resp_free(&r);
}

static void wrong_credentials_are_401_alike(void **state)
{
    (void)state;
    struct th_resp r1, r2;
    assert_int_equal(login_status(&srv, "admin@example.com", "not-the-password", &r1), 401);
    assert_int_equal(login_status(&srv, "nobody@example.com", "not-the-password", &r2), 401);
    assert_string_equal(r1.body, r2.body);
    th_resp_free(&r1);
    th_resp_free(&r2);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* An unknown e-mail must cost an Argon2id verification like a wrong
 * password does; without it the answer would come back in a millisecond
 * and reveal which addresses have accounts. */
static void unknown_email_takes_as_long_as_wrong_password(void **state)
{
    (void)state;
    double known[5], unknown[5];
    struct th_resp r;
    for (int i = 0; i < 5; i++) {
        login_status(&srv, "marketer@example.com", "wrong-password", &r);
        known[i] = r.seconds;
        th_resp_free(&r);
        char email[64];
        snprintf(email, sizeof email, "ghost%d@example.com", i);
        login_status(&srv, email, "wrong-password", &r);
        unknown[i] = r.seconds;
        th_resp_free(&r);
        /* Stay under the per-account limit of 5 failures. */
        if (i == 3)
            break;
    }
    qsort(known, 4, sizeof known[0], cmp_double);
    qsort(unknown, 4, sizeof unknown[0], cmp_double);
    double mk = (known[1] + known[2]) / 2, mu = (unknown[1] + unknown[2]) / 2;
    printf("# median wrong password %.1f ms, unknown e-mail %.1f ms\n", mk * 1e3, mu * 1e3);
    assert_true(mu > mk * 0.5);
    assert_true(mk > mu * 0.5);
}

static void logout_ends_the_session(void **state)
{
    (void)state;
    char cookie[512];
    th_login(&srv, "admin@example.com", "admin-password-1", cookie, sizeof cookie);
    const char *h[] = {cookie, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "DELETE", "/api/v1/session", NULL, h, &r), 0);
    assert_int_equal(r.status, 204);
    char v[256];
    assert_int_equal(th_header(&r, "set-cookie", v, sizeof v), 0);
    assert_non_null(strstr(v, "Max-Age=0"));
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "GET", "/api/v1/me", NULL, h, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
}

static void api_token_authenticates(void **state)
{
    (void)state;
    char token[256];
    const char *args[] = {"token",  "create", "--user", "marketer@example.com",
                          "--name", "ci",     NULL};
    assert_int_equal(th_run(args, NULL, token, sizeof token), 0);
    token[strcspn(token, "\n")] = '\0';
    assert_true(strncmp(token, "sbt_", 4) == 0);
    char auth[300];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *h[] = {auth, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/api/v1/me", NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"role\":\"marketer\""));
    th_resp_free(&r);

    const char *bad[] = {"Authorization: Bearer sbt_not-a-real-token", NULL};
    assert_int_equal(th_http(&srv, "GET", "/api/v1/me", NULL, bad, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
    const char *basic[] = {"Authorization: Basic YWRtaW46YWRtaW4=", NULL};
    assert_int_equal(th_http(&srv, "GET", "/api/v1/me", NULL, basic, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);

    /* An unknown user gets a clear CLI error and exit 1. */
    const char *args2[] = {"token", "create", "--user", "nobody@example.com", NULL};
    char out[512];
    assert_int_equal(th_run(args2, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "no active user"));
}

static void roles_are_enforced(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/api/v1/users", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);

    char cookie[512];
    th_login(&srv, "agent@example.com", "agent-password-1", cookie, sizeof cookie);
    const char *agent[] = {cookie, NULL};
    assert_int_equal(th_http(&srv, "GET", "/api/v1/users", NULL, agent, &r), 0);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "\"forbidden\""));
    th_resp_free(&r);

    th_login(&srv, "admin@example.com", "admin-password-1", cookie, sizeof cookie);
    const char *admin[] = {cookie, "Content-Type: application/json", NULL};
    assert_int_equal(th_http(&srv, "GET", "/api/v1/users", NULL, admin, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "marketer@example.com"));
    assert_null(strstr(r.body, "argon2"));
    th_resp_free(&r);

    /* Admins create users; a duplicate is a 409, a bad role a 400. */
    const char *u = "{\"email\":\"new@example.com\",\"name\":\"New\",\"role\":\"agent\","
                    "\"password\":\"new-password-1\"}";
    assert_int_equal(th_http(&srv, "POST", "/api/v1/users", u, admin, &r), 0);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "POST", "/api/v1/users", u, admin, &r), 0);
    assert_int_equal(r.status, 409);
    th_resp_free(&r);
    const char *bad = "{\"email\":\"x@example.com\",\"name\":\"X\",\"role\":\"owner\","
                      "\"password\":\"x-password-1\"}";
    assert_int_equal(th_http(&srv, "POST", "/api/v1/users", bad, admin, &r), 0);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    th_login(&srv, "new@example.com", "new-password-1", cookie, sizeof cookie);
}

static void cross_origin_writes_are_refused(void **state)
{
    (void)state;
    char cookie[512];
    th_login(&srv, "admin@example.com", "admin-password-1", cookie, sizeof cookie);
    const char *h[] = {cookie, "Origin: https://evil.example", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "DELETE", "/api/v1/session", NULL, h, &r), 0);
    assert_int_equal(r.status, 403);
    th_resp_free(&r);
    const char *same[] = {cookie, NULL};
    assert_int_equal(th_http(&srv, "GET", "/api/v1/me", NULL, same, &r), 0);
    assert_int_equal(r.status, 200); /* the session survived */
    th_resp_free(&r);
}

static void cross_origin_sign_in_is_refused(void **state)
{
    (void)state;
    const char *h[] = {"Content-Type: application/json", "Origin: https://evil.example", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session",
                             "{\"email\":\"admin@example.com\",\"password\":\"admin-password-1\"}",
                             h, &r),
                     0);
    assert_int_equal(r.status, 403);
    char v[64];
    assert_int_not_equal(th_header(&r, "set-cookie", v, sizeof v), 0);
    th_resp_free(&r);
}

static void account_is_rate_limited(void **state)
{
    (void)state;
    struct th_server s;
    const char *env[] = {"SWITCHBOARD_AUTH_LOGIN_ACCOUNT_LIMIT=3",
                         "SWITCHBOARD_AUTH_LOGIN_IP_LIMIT=100", NULL};
    th_server_start(&s, env);
    struct th_resp r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(login_status(&s, "victim@example.com", "guess", &r), 401);
        th_resp_free(&r);
    }
    /* Locked now, even with the right password... */
    assert_int_equal(login_status(&s, "victim@example.com", "victim-password-1", &r), 429);
    char v[32];
    assert_int_equal(th_header(&r, "retry-after", v, sizeof v), 0);
    assert_true(atoi(v) > 0);
    assert_non_null(strstr(r.body, "\"rate_limited\""));
    th_resp_free(&r);
    /* ...but other accounts from the same address still sign in. */
    assert_int_equal(login_status(&s, "admin@example.com", "admin-password-1", &r), 200);
    th_resp_free(&r);
    assert_int_equal(th_server_stop(&s), 0);
}

static void address_is_rate_limited(void **state)
{
    (void)state;
    struct th_server s;
    const char *env[] = {"SWITCHBOARD_AUTH_LOGIN_IP_LIMIT=4",
                         "SWITCHBOARD_AUTH_LOGIN_ACCOUNT_LIMIT=100", NULL};
    th_server_start(&s, env);
    struct th_resp r;
    for (int i = 0; i < 4; i++) {
        char email[64];
        snprintf(email, sizeof email, "spray%d@example.com", i);
        assert_int_equal(login_status(&s, email, "guess", &r), 401);
        th_resp_free(&r);
    }
    assert_int_equal(login_status(&s, "admin@example.com", "admin-password-1", &r), 429);
    th_resp_free(&r);
    assert_int_equal(th_server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(login_sets_a_safe_cookie),
        cmocka_unit_test(wrong_credentials_are_401_alike),
        cmocka_unit_test(unknown_email_takes_as_long_as_wrong_password),
        cmocka_unit_test(logout_ends_the_session),
        cmocka_unit_test(api_token_authenticates),
        cmocka_unit_test(roles_are_enforced),
        cmocka_unit_test(cross_origin_writes_are_refused),
        cmocka_unit_test(cross_origin_sign_in_is_refused),
        cmocka_unit_test(account_is_rate_limited),
        cmocka_unit_test(address_is_rate_limited),
    };
    return cmocka_run_group_tests_name("auth", tests, setup, teardown);
}
