/* The HTTP skeleton against a real server and database: probes, error
 * bodies, body limits, routing, static files and metrics. */
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
#include <sys/stat.h>
#include <unistd.h>

static struct th_server srv;
static char web_root[256];

static const char *json_h[] = {"Content-Type: application/json", NULL};

/* The error body of DESIGN.md, with the expected code. */
static void assert_error_body(const struct th_resp *r, const char *code)
{
    json_error_t e;
    json_t *o = json_loads(r->body, 0, &e);
    assert_non_null(o);
    json_t *err = json_object_get(o, "error");
    assert_true(json_is_object(err));
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_true(json_string_length(json_object_get(err, "message")) > 0);
    char ct[128];
    assert_int_equal(th_header(r, "content-type", ct, sizeof ct), 0);
    assert_string_equal(ct, "application/json");
    json_decref(o);
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    snprintf(web_root, sizeof web_root, "%s/tests/webroot-%d", getenv("SB_BUILD"), (int)getpid());
    mkdir(web_root, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/assets", web_root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/index.html", web_root);
    FILE *f = fopen(path, "w");
    fputs("<!doctype html><title>Switchboard</title>", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/assets/app-1234.js", web_root);
    f = fopen(path, "w");
    fputs("console.log('hi');\n", f);
    fclose(f);
    static char web_env[300];
    snprintf(web_env, sizeof web_env, "SWITCHBOARD_WEB_ROOT=%s", web_root);
    const char *env[] = {web_env, "SWITCHBOARD_SERVER_BODY_LIMIT=65536", NULL};
    th_server_start(&srv, env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    th_db_teardown();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", web_root);
    if (system(cmd) != 0)
        return -1;
    return status == 0 ? 0 : -1;
}

static void healthz_is_ok(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    th_resp_free(&r);
}

static void readyz_is_ready(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "ready"));
    th_resp_free(&r);
}

static void unknown_route_is_json_404(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/api/v1/nothing-here", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_error_body(&r, "not_found");
    th_resp_free(&r);
    /* Outside /api too, when no static file matches. */
    assert_int_equal(th_http(&srv, "POST", "/no/such/thing", "{}", json_h, &r), 0);
    assert_int_equal(r.status, 404);
    assert_error_body(&r, "not_found");
    th_resp_free(&r);
}

static void wrong_method_is_405(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "PUT", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    assert_error_body(&r, "method_not_allowed");
    th_resp_free(&r);
}

static void bad_json_is_400(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session", "{\"email\": ", json_h, &r), 0);
    assert_int_equal(r.status, 400);
    assert_error_body(&r, "bad_request");
    assert_non_null(strstr(r.body, "invalid JSON"));
    th_resp_free(&r);
    /* Valid JSON of the wrong shape is a 400 too. */
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session", "[1,2]", json_h, &r), 0);
    assert_int_equal(r.status, 400);
    assert_error_body(&r, "bad_request");
    th_resp_free(&r);
    /* And a form body where JSON is expected is a 415. */
    const char *form_h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session", "a=b", form_h, &r), 0);
    assert_int_equal(r.status, 415);
    assert_error_body(&r, "unsupported_media_type");
    th_resp_free(&r);
}

static void body_over_limit_is_413(void **state)
{
    (void)state;
    size_t n = 65536 + 1;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session", big, json_h, &r), 0);
    assert_int_equal(r.status, 413);
    assert_error_body(&r, "too_large");
    th_resp_free(&r);
    /* Exactly at the limit is read and judged on its content (bad JSON). */
    big[65536] = '\0';
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session", big, json_h, &r), 0);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    /* A chunked body is refused with 411 at once rather than left hanging
     * (lws 4.1 never hands a chunked HTTP/1 upload to us). */
    const char *chunked_h[] = {"Content-Type: application/json", "Transfer-Encoding: chunked",
                               NULL};
    assert_int_equal(th_http(&srv, "POST", "/api/v1/session", "{}", chunked_h, &r), 0);
    assert_int_equal(r.status, 411);
    assert_true(r.seconds < 5);
    th_resp_free(&r);
    free(big);
    /* The server is still fine afterwards. */
    assert_int_equal(th_http(&srv, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

static void static_files_have_types_and_caching(void **state)
{
    (void)state;
    struct th_resp r;
    char v[256], etag[128];
    assert_int_equal(th_http(&srv, "GET", "/", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "<title>Switchboard</title>"));
    assert_int_equal(th_header(&r, "content-type", v, sizeof v), 0);
    assert_string_equal(v, "text/html; charset=utf-8");
    assert_int_equal(th_header(&r, "cache-control", v, sizeof v), 0);
    assert_string_equal(v, "no-cache");
    assert_int_equal(th_header(&r, "content-security-policy", v, sizeof v), 0);
    assert_int_equal(th_header(&r, "etag", etag, sizeof etag), 0);
    th_resp_free(&r);

    /* Revalidation with the ETag answers 304 without a body. */
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    const char *h[] = {inm, NULL};
    assert_int_equal(th_http(&srv, "GET", "/index.html", NULL, h, &r), 0);
    assert_int_equal(r.status, 304);
    assert_int_equal(strlen(r.body), 0);
    th_resp_free(&r);

    assert_int_equal(th_http(&srv, "GET", "/assets/app-1234.js", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(th_header(&r, "content-type", v, sizeof v), 0);
    assert_string_equal(v, "text/javascript; charset=utf-8");
    assert_int_equal(th_header(&r, "cache-control", v, sizeof v), 0);
    assert_non_null(strstr(v, "immutable"));
    th_resp_free(&r);

    /* No escape from the web root, no hidden files. */
    assert_int_equal(th_http(&srv, "GET", "/assets/../../harness.c", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "GET", "/%2e%2e/%2e%2e/Makefile", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
}

static void metrics_count_requests(void **state)
{
    (void)state;
    struct th_resp r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_http(&srv, "GET", "/healthz", NULL, NULL, &r), 0);
        th_resp_free(&r);
    }
    assert_int_equal(th_http(&srv, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    char v[128];
    assert_int_equal(th_header(&r, "content-type", v, sizeof v), 0);
    assert_non_null(strstr(v, "text/plain"));
    /* healthz was asked at start-up, in healthz_is_ok, in body_over_limit and 3 times here. */
    const char *line =
        strstr(r.body, "switchboard_http_requests_total{route=\"/healthz\",status=\"200\"} ");
    assert_non_null(line);
    long count = strtol(strchr(line, '}') + 2, NULL, 10);
    assert_true(count >= 5);
    assert_non_null(
        strstr(r.body, "switchboard_http_requests_total{route=\"unmatched\",status=\"404\"}"));
    assert_non_null(
        strstr(r.body,
               "switchboard_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}"));
    assert_non_null(strstr(r.body, "switchboard_db_workers "));
    assert_non_null(strstr(r.body, "switchboard_db_jobs_total "));
    th_resp_free(&r);
}

/* With server.metrics_token set, a scraper must present it; a wrong or
 * missing one gets 401 with a JSON error and learns nothing. */
static void metrics_token_closes_the_page(void **state)
{
    (void)state;
    struct th_server guarded;
    const char *env[] = {"SWITCHBOARD_SERVER_METRICS_TOKEN=scrape-me-0123", NULL};
    th_server_start(&guarded, env);
    struct th_resp r;
    assert_int_equal(th_http(&guarded, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    assert_error_body(&r, "unauthorized");
    assert_null(strstr(r.body, "switchboard_http_requests_total"));
    th_resp_free(&r);
    const char *wrong[] = {"Authorization: Bearer scrape-me-0124", NULL};
    assert_int_equal(th_http(&guarded, "GET", "/metrics", NULL, wrong, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
    const char *right[] = {"Authorization: Bearer scrape-me-0123", NULL};
    assert_int_equal(th_http(&guarded, "GET", "/metrics", NULL, right, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "switchboard_http_requests_total"));
    th_resp_free(&r);
    /* Probes stay open: load balancers carry no token. */
    assert_int_equal(th_http(&guarded, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    assert_int_equal(th_server_stop(&guarded), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(healthz_is_ok),
        cmocka_unit_test(readyz_is_ready),
        cmocka_unit_test(unknown_route_is_json_404),
        cmocka_unit_test(wrong_method_is_405),
        cmocka_unit_test(bad_json_is_400),
        cmocka_unit_test(body_over_limit_is_413),
        cmocka_unit_test(static_files_have_types_and_caching),
        cmocka_unit_test(metrics_count_requests),
        cmocka_unit_test(metrics_token_closes_the_page),
    };
    return cmocka_run_group_tests_name("http", tests, setup, teardown);
}
