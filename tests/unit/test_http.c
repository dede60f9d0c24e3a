/* http.h without a socket: route matching against a local table, method
 * names, reply building, extra headers at their cap, JSON request bodies,
 * cookies and the per-route status slots.
 *
 * Inputs that the code reads through a pointer (bodies, header values,
 * cookie names, output buffers) are copied into malloc'd buffers of exactly
 * their size, so ASan reports a read or write one byte past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/http.h"
#include "switchboard/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A copy of `s` in a buffer of exactly strlen(s) + 1 bytes. */
static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

static void dummy_handler(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app, (void)db, (void)req, (void)rep;
}

/* -- Route matching ---------------------------------------------------- */

enum {
    R_ROOT,
    R_HEALTHZ,
    R_CONV,
    R_CONV_INTER,
    R_MERGE,
    R_HOOK_POST,
    R_HOOK_GET,
    R_SESSION_POST,
    R_SESSION_DELETE,
    R_CLIENTS,
    R_DEEP,
    NROUTES
};

static struct sb_route routes[NROUTES] = {
    [R_ROOT] = {SB_GET, "/", dummy_handler, SB_ROUTE_PUBLIC, 0},
    [R_HEALTHZ] = {SB_GET, "/healthz", dummy_handler, SB_ROUTE_PUBLIC | SB_ROUTE_LOOP, 0},
    [R_CONV] = {SB_GET | SB_PATCH, "/api/v1/conversations/{id}", dummy_handler, 0, SB_ROLE_ANY},
    [R_CONV_INTER] = {SB_GET, "/api/v1/conversations/{id}/interactions/{iid}", dummy_handler, 0,
                      SB_ROLE_ANY},
    [R_MERGE] = {SB_POST, "/api/v1/clients/{id}/merge", dummy_handler, 0, SB_ROLE_ADMIN},
    /* The same pattern twice with different methods: the matcher must look
     * past the first entry whose path matches. */
    [R_HOOK_POST] = {SB_POST, "/hooks/{kind}/{channel_id}", dummy_handler, SB_ROUTE_PUBLIC, 0},
    [R_HOOK_GET] = {SB_GET, "/hooks/{kind}/{channel_id}", dummy_handler, SB_ROUTE_PUBLIC, 0},
    [R_SESSION_POST] = {SB_POST, "/api/v1/session", dummy_handler, SB_ROUTE_PUBLIC, 0},
    [R_SESSION_DELETE] = {SB_DELETE, "/api/v1/session", dummy_handler, 0, SB_ROLE_ANY},
    [R_CLIENTS] = {SB_GET | SB_POST, "/api/v1/clients", dummy_handler, 0, SB_ROLE_ANY},
    [R_DEEP] = {SB_PUT, "/a/{p1}/{p2}/{p3}/{p4}", dummy_handler, 0, SB_ROLE_ANY},
};

static const struct route_case {
    int method;
    const char *path;
    int rc;
    int route; /* index into routes, -1 when rc != SB_OK */
    int nparams;
    const char *params[SB_ROUTE_PARAMS_MAX];
} route_cases[] = {
    /* Static paths. */
    {SB_GET, "/", SB_OK, R_ROOT, 0, {NULL}},
    {SB_GET, "/healthz", SB_OK, R_HEALTHZ, 0, {NULL}},
    {SB_HEAD, "/healthz", SB_OK, R_HEALTHZ, 0, {NULL}}, /* HEAD wherever GET */
    {SB_POST, "/healthz", SB_ERR_INVALID, -1, 0, {NULL}},
    {SB_OPTIONS, "/healthz", SB_ERR_INVALID, -1, 0, {NULL}},
    {0, "/healthz", SB_ERR_INVALID, -1, 0, {NULL}}, /* unknown method */
    {SB_GET, "/healthz/", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/healthzz", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/health", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/HEALTHZ", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "healthz", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "//", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "//healthz", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/api/v1/clients", SB_OK, R_CLIENTS, 0, {NULL}},
    {SB_POST, "/api/v1/clients", SB_OK, R_CLIENTS, 0, {NULL}},
    {SB_HEAD, "/api/v1/clients", SB_OK, R_CLIENTS, 0, {NULL}},
    {SB_DELETE, "/api/v1/clients", SB_ERR_INVALID, -1, 0, {NULL}},
    {SB_GET, "/api/v1/clients/", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_POST, "/api/v1/session", SB_OK, R_SESSION_POST, 0, {NULL}},
    {SB_DELETE, "/api/v1/session", SB_OK, R_SESSION_DELETE, 0, {NULL}},
    {SB_GET, "/api/v1/session", SB_ERR_INVALID, -1, 0, {NULL}},
    /* HEAD is only implied by GET. */
    {SB_HEAD, "/api/v1/session", SB_ERR_INVALID, -1, 0, {NULL}},
    /* One parameter. */
    {SB_GET, "/api/v1/conversations/42", SB_OK, R_CONV, 1, {"42"}},
    {SB_PATCH, "/api/v1/conversations/42", SB_OK, R_CONV, 1, {"42"}},
    {SB_HEAD, "/api/v1/conversations/abc-def", SB_OK, R_CONV, 1, {"abc-def"}},
    {SB_DELETE, "/api/v1/conversations/42", SB_ERR_INVALID, -1, 0, {NULL}},
    {SB_GET, "/api/v1/conversations/", SB_ERR_NOT_FOUND, -1, 0, {NULL}}, /* empty segment */
    {SB_GET, "/api/v1/conversations", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/api/v1/conversations/42/", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/api/v1/conversations/{id}", SB_OK, R_CONV, 1, {"{id}"}},
    /* Two parameters, captured in order. */
    {SB_GET, "/api/v1/conversations/7/interactions/9", SB_OK, R_CONV_INTER, 2, {"7", "9"}},
    {SB_GET, "/api/v1/conversations//interactions/9", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/api/v1/conversations/7/interactions/", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/api/v1/conversations/7/interaction/9", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_POST, "/api/v1/clients/5/merge", SB_OK, R_MERGE, 1, {"5"}},
    {SB_POST, "/api/v1/clients/5/merge/", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_GET, "/api/v1/clients/5/merge", SB_ERR_INVALID, -1, 0, {NULL}},
    {SB_POST, "/api/v1/clients//merge", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    /* Same pattern in two entries. */
    {SB_POST, "/hooks/telegram/12", SB_OK, R_HOOK_POST, 2, {"telegram", "12"}},
    {SB_GET, "/hooks/whatsapp/3", SB_OK, R_HOOK_GET, 2, {"whatsapp", "3"}},
    {SB_HEAD, "/hooks/whatsapp/3", SB_OK, R_HOOK_GET, 2, {"whatsapp", "3"}},
    {SB_PUT, "/hooks/telegram/12", SB_ERR_INVALID, -1, 0, {NULL}},
    {SB_POST, "/hooks/telegram", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_POST, "/hooks/telegram/12/x", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_POST, "/hooks//12", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    /* The most parameters a route may have. */
    {SB_PUT, "/a/1/2/3/4", SB_OK, R_DEEP, 4, {"1", "2", "3", "4"}},
    {SB_PUT, "/a/1/2/3", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_PUT, "/a/1/2/3/4/5", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
    {SB_PUT, "/a/1/2//4", SB_ERR_NOT_FOUND, -1, 0, {NULL}},
};

static void check_route_case(const struct route_case *c)
{
    struct sb_http_request *req = calloc(1, sizeof *req);
    assert_non_null(req);
    req->method = c->method;
    snprintf(req->path, sizeof req->path, "%s", c->path);
    struct sb_route *r = (struct sb_route *)&req; /* poison: must be overwritten */
    int rc = sb_route_match(routes, NROUTES, req, &r);
    if (rc != c->rc)
        fail_msg("%s %s: rc %d, expected %d", sb_method_name(c->method), c->path, rc, c->rc);
    if (c->rc == SB_OK) {
        assert_ptr_equal(r, &routes[c->route]);
        assert_ptr_equal(req->route, &routes[c->route]);
        assert_int_equal(req->nparams, c->nparams);
        for (int i = 0; i < c->nparams; i++)
            assert_string_equal(req->params[i], c->params[i]);
    } else {
        assert_null(r);
        assert_null(req->route);
        assert_int_equal(req->nparams, 0);
    }
    free(req);
}

static void test_route_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++)
        check_route_case(&route_cases[i]);
}

static void test_route_empty_table(void **state)
{
    (void)state;
    struct sb_http_request req;
    memset(&req, 0, sizeof req);
    req.method = SB_GET;
    strcpy(req.path, "/");
    struct sb_route *r = routes;
    assert_int_equal(sb_route_match(routes, 0, &req, &r), SB_ERR_NOT_FOUND);
    assert_null(r);
}

/* A parameter value must fit req->params[i] (256 bytes with its NUL):
 * 255 characters is the exact fit, 256 is one over and does not match. */
static void test_route_param_length(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        int rc;
    } cases[] = {
        {1, SB_OK}, {254, SB_OK}, {255, SB_OK}, {256, SB_ERR_NOT_FOUND}, {1000, SB_ERR_NOT_FOUND}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sb_http_request req;
        memset(&req, 0, sizeof req);
        req.method = SB_GET;
        int n = snprintf(req.path, sizeof req.path, "/api/v1/conversations/");
        memset(req.path + n, 'x', cases[i].len);
        req.path[(size_t)n + cases[i].len] = '\0';
        struct sb_route *r;
        assert_int_equal(sb_route_match(routes, NROUTES, &req, &r), cases[i].rc);
        if (cases[i].rc == SB_OK) {
            assert_ptr_equal(r, &routes[R_CONV]);
            assert_int_equal(req.nparams, 1);
            assert_int_equal(strlen(req.params[0]), cases[i].len);
            assert_int_equal(strspn(req.params[0], "x"), cases[i].len);
        }
        /* The same over-long value in the middle of a two-parameter path. */
        memset(&req, 0, sizeof req);
        req.method = SB_GET;
        n = snprintf(req.path, sizeof req.path, "/api/v1/conversations/");
        memset(req.path + n, 'y', cases[i].len);
        snprintf(req.path + (size_t)n + cases[i].len, sizeof req.path - (size_t)n - cases[i].len,
                 "/interactions/1");
        assert_int_equal(sb_route_match(routes, NROUTES, &req, &r), cases[i].rc);
        if (cases[i].rc == SB_OK) {
            assert_ptr_equal(r, &routes[R_CONV_INTER]);
            assert_int_equal(strlen(req.params[0]), cases[i].len);
            assert_string_equal(req.params[1], "1");
        }
    }
}

/* A route matched after a failed partial match must not carry parameters
 * captured during the failed attempt. */
static void test_route_params_reset(void **state)
{
    (void)state;
    struct sb_http_request req;
    memset(&req, 0, sizeof req);
    req.method = SB_GET;
    strcpy(req.path, "/api/v1/conversations/1/interactions/2");
    struct sb_route *r;
    assert_int_equal(sb_route_match(routes, NROUTES, &req, &r), SB_OK);
    assert_int_equal(req.nparams, 2);
    /* Re-use the request for a path with fewer parameters. */
    strcpy(req.path, "/api/v1/conversations/77");
    assert_int_equal(sb_route_match(routes, NROUTES, &req, &r), SB_OK);
    assert_int_equal(req.nparams, 1);
    assert_string_equal(req.params[0], "77");
    /* And for one that fails: no parameters left over. */
    strcpy(req.path, "/nowhere/1");
    req.route = NULL;
    assert_int_equal(sb_route_match(routes, NROUTES, &req, &r), SB_ERR_NOT_FOUND);
    assert_int_equal(req.nparams, 0);
}

/* -- Methods ------------------------------------------------------------- */

static const struct {
    const char *name;
    int method;
} method_cases[] = {
    {"GET", SB_GET},
    {"HEAD", SB_HEAD},
    {"POST", SB_POST},
    {"PUT", SB_PUT},
    {"PATCH", SB_PATCH},
    {"DELETE", SB_DELETE},
    {"OPTIONS", SB_OPTIONS},
    /* Broken: methods are case-sensitive (RFC 9110 9.1); no prefixes. */
    {"get", 0},
    {"Get", 0},
    {"", 0},
    {"GE", 0},
    {"GETT", 0},
    {"GET ", 0},
    {" GET", 0},
    {"TRACE", 0},
    {"CONNECT", 0},
    {"POSTS", 0},
    {"DELET", 0},
};

static void test_method_parse_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof method_cases / sizeof method_cases[0]; i++) {
        char *name = dup_exact(method_cases[i].name);
        int m = sb_method_parse(name);
        if (m != method_cases[i].method)
            fail_msg("'%s': %d, expected %d", name, m, method_cases[i].method);
        if (m)
            assert_string_equal(sb_method_name(m), method_cases[i].name);
        free(name);
    }
    assert_string_equal(sb_method_name(0), "?");
    assert_string_equal(sb_method_name(SB_GET | SB_POST), "?");
    assert_string_equal(sb_method_name(1 << 7), "?");
    assert_string_equal(sb_method_name(-1), "?");
}

/* -- Replies ------------------------------------------------------------- */

static void reply_init(struct sb_http_reply *rep)
{
    memset(rep, 0, sizeof *rep);
}

/* Parse the reply as the DESIGN.md error body and check code and message. */
static void assert_error_reply(const struct sb_http_reply *rep, int status, const char *code,
                               const char *message)
{
    assert_int_equal(rep->status, status);
    assert_non_null(rep->content_type);
    assert_string_equal(rep->content_type, "application/json");
    assert_non_null(rep->body);
    assert_int_equal(strlen(rep->body), rep->body_len);
    json_error_t jerr;
    json_t *root = json_loadb(rep->body, rep->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        fail_msg("reply body is not JSON: %s (%s)", rep->body, jerr.text);
    assert_true(json_is_object(root));
    assert_int_equal(json_object_size(root), 1);
    json_t *err = json_object_get(root, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(err), 2);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    const char *msg = json_string_value(json_object_get(err, "message"));
    assert_non_null(msg);
    if (message)
        assert_string_equal(msg, message);
    else
        assert_true(strlen(msg) > 0);
    json_decref(root);
}

static void test_reply_error_codes(void **state)
{
    (void)state;
    static const struct {
        int err;
        int status;
        const char *code;
    } cases[] = {
        {SB_ERR_INVALID, 400, "bad_request"},
        {SB_ERR_NOT_FOUND, 404, "not_found"},
        {SB_ERR_EXISTS, 409, "conflict"},
        {SB_ERR_UNAUTHORIZED, 401, "unauthorized"},
        {SB_ERR_FORBIDDEN, 403, "forbidden"},
        {SB_ERR_LIMIT, 429, "rate_limited"},
        {SB_ERR_TOO_LARGE, 413, "too_large"},
        {SB_ERR_UNAVAILABLE, 503, "unavailable"},
        {SB_ERR_UNSUPPORTED_MEDIA, 415, "unsupported_media_type"},
        {SB_ERR_INTERNAL, 500, "internal"},
        {SB_ERR_DB, 500, "internal"},
        {SB_ERR__LAST, 500, "internal"},
        {-7, 500, "internal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sb_http_reply rep;
        reply_init(&rep);
        sb_reply_error(&rep, cases[i].err, "case %zu: %s", i, "details");
        char expect[64];
        snprintf(expect, sizeof expect, "case %zu: details", i);
        assert_int_equal(cases[i].status, sb_err_http_status(cases[i].err));
        assert_error_reply(&rep, cases[i].status, cases[i].code, expect);
        sb_reply_free(&rep);
        assert_null(rep.body);
        assert_int_equal(rep.body_len, 0);
        assert_int_equal(rep.status, 0);
    }
}

static void test_reply_error_escapes_and_replaces(void **state)
{
    (void)state;
    struct sb_http_reply rep;
    reply_init(&rep);
    sb_reply_text(&rep, 200, "text/plain", "earlier body", 12);
    /* Quotes, backslashes and a newline must come back intact through JSON. */
    sb_reply_error(&rep, SB_ERR_INVALID, "bad \"%s\" \\ %s", "name", "line\nbreak");
    assert_error_reply(&rep, 400, "bad_request", "bad \"name\" \\ line\nbreak");
    assert_null(strchr(rep.body, '\n')); /* one line on the wire */
    /* A second error replaces the first (ASan would report the leak). */
    sb_reply_error(&rep, SB_ERR_NOT_FOUND, "gone");
    assert_error_reply(&rep, 404, "not_found", "gone");
    sb_reply_free(&rep);
}

static void test_reply_error_long_message(void **state)
{
    (void)state;
    char *big = malloc(2001);
    assert_non_null(big);
    memset(big, 'm', 2000);
    big[2000] = '\0';
    struct sb_http_reply rep;
    reply_init(&rep);
    sb_reply_error(&rep, SB_ERR_INVALID, "%s", big);
    assert_error_reply(&rep, 400, "bad_request", NULL);
    /* Cut, not dropped: a prefix of the message survives. */
    assert_non_null(strstr(rep.body, "mmmmmmmmmm"));
    sb_reply_free(&rep);
    free(big);
}

static void test_reply_error_status(void **state)
{
    (void)state;
    struct sb_http_reply rep;
    reply_init(&rep);
    sb_reply_error_status(&rep, 405, "method_not_allowed", "use POST");
    assert_error_reply(&rep, 405, "method_not_allowed", "use POST");
    sb_reply_free(&rep);
}

static void test_reply_failure(void **state)
{
    (void)state;
    struct sb_http_reply rep;
    reply_init(&rep);
    /* Internal failures: 500, generic message, the detail never leaks. */
    sb_reply_failure(&rep, SB_ERR_DB, "insert user", "Duplicate secret-detail-123");
    assert_error_reply(&rep, 500, "internal", "internal error");
    assert_null(strstr(rep.body, "secret-detail-123"));
    assert_int_equal(rep.headers_len, 0);
    sb_reply_free(&rep);
    /* Database unreachable: 503 with Retry-After. */
    reply_init(&rep);
    sb_reply_failure(&rep, SB_ERR_UNAVAILABLE, "select", "Lost connection secret-detail-456");
    assert_error_reply(&rep, 503, "unavailable", NULL);
    assert_null(strstr(rep.body, "secret-detail-456"));
    assert_string_equal(rep.headers, "Retry-After: 2\r\n");
    sb_reply_free(&rep);
    reply_init(&rep);
    sb_reply_failure(&rep, SB_ERR_UNKNOWN_COMMIT, "commit", "gone away");
    assert_int_equal(rep.status, 503);
    sb_reply_free(&rep);
}

static void test_reply_json_and_text(void **state)
{
    (void)state;
    struct sb_http_reply rep;
    reply_init(&rep);
    sb_reply_json(&rep, 201, json_pack("{s:i}", "id", 7));
    assert_int_equal(rep.status, 201);
    assert_string_equal(rep.content_type, "application/json");
    assert_string_equal(rep.body, "{\"id\":7}");
    assert_int_equal(rep.body_len, 8);
    /* Text: copied with its length, NUL-terminated, embedded bytes kept. */
    char *src = malloc(5); /* exactly 5 bytes, no NUL: only `len` may be read */
    assert_non_null(src);
    memcpy(src, "ab\0cd", 5);
    sb_reply_text(&rep, 200, "text/plain; charset=utf-8", src, 5);
    free(src);
    assert_int_equal(rep.status, 200);
    assert_string_equal(rep.content_type, "text/plain; charset=utf-8");
    assert_int_equal(rep.body_len, 5);
    assert_memory_equal(rep.body, "ab\0cd", 6);
    /* Empty text. */
    sb_reply_text(&rep, 204, "text/plain", "", 0);
    assert_int_equal(rep.status, 204);
    assert_int_equal(rep.body_len, 0);
    assert_non_null(rep.body);
    assert_string_equal(rep.body, "");
    sb_reply_free(&rep);
    sb_reply_free(&rep); /* twice is harmless */
    assert_null(rep.body);
}

/* -- Extra headers ------------------------------------------------------- */

/* A value of `n` copies of 'v' in an exact-size buffer. */
static char *value_of(size_t n)
{
    char *v = malloc(n + 1);
    assert_non_null(v);
    memset(v, 'v', n);
    v[n] = '\0';
    return v;
}

static void test_reply_header_basic(void **state)
{
    (void)state;
    struct sb_http_reply rep;
    reply_init(&rep);
    char *name = dup_exact("Location");
    char *value = dup_exact("/api/v1/clients/9");
    assert_int_equal(sb_reply_header(&rep, name, value), SB_OK);
    assert_string_equal(rep.headers, "Location: /api/v1/clients/9\r\n");
    assert_int_equal(rep.headers_len, strlen(rep.headers));
    assert_int_equal(sb_reply_header(&rep, "Set-Cookie", "sb_session=abc; HttpOnly"), SB_OK);
    assert_string_equal(rep.headers,
                        "Location: /api/v1/clients/9\r\nSet-Cookie: sb_session=abc; HttpOnly\r\n");
    assert_int_equal(rep.headers_len, strlen(rep.headers));
    free(name);
    free(value);
    sb_reply_free(&rep);
}

/* "X: " + value + "\r\n" is value + 5 bytes; the buffer holds
 * SB_EXTRA_HEADERS_MAX - 1 bytes of text and its NUL. */
static void test_reply_header_exact_fit(void **state)
{
    (void)state;
    const size_t cap = SB_EXTRA_HEADERS_MAX - 1;
    static const struct {
        size_t prefill; /* bytes already used by "A: " + n*'a' + "\r\n", 0 = none */
        long delta;     /* the new header's length minus the room left */
        int rc;
    } cases[] = {
        {0, 0, SB_OK},            /* exact fit in an empty buffer */
        {0, 1, SB_ERR_TOO_LARGE}, /* one byte over */
        {0, -1, SB_OK},           /* one byte under */
        {0, 1000, SB_ERR_TOO_LARGE},
        {6, 0, SB_OK}, /* exact fit after "A: b\r\n" */
        {6, 1, SB_ERR_TOO_LARGE},
        {1000, 0, SB_OK},
        {1000, 1, SB_ERR_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sb_http_reply rep;
        reply_init(&rep);
        char before[SB_EXTRA_HEADERS_MAX] = "";
        if (cases[i].prefill) {
            char *pv = value_of(cases[i].prefill - 5);
            assert_int_equal(sb_reply_header(&rep, "A", pv), SB_OK);
            free(pv);
            assert_int_equal(rep.headers_len, cases[i].prefill);
            memcpy(before, rep.headers, rep.headers_len + 1);
        }
        size_t room = cap - rep.headers_len;
        size_t total = (size_t)((long)room + cases[i].delta);
        char *v = value_of(total - 5);
        int rc = sb_reply_header(&rep, "X", v);
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d, expected %d", i, rc, cases[i].rc);
        if (rc == SB_OK) {
            assert_int_equal(rep.headers_len, cases[i].prefill + total);
            assert_int_equal(strlen(rep.headers), rep.headers_len);
            assert_memory_equal(rep.headers + cases[i].prefill, "X: v", 4);
            assert_memory_equal(rep.headers + rep.headers_len - 2, "\r\n", 2);
        } else {
            /* Nothing half-written: the earlier headers are intact. */
            assert_int_equal(rep.headers_len, cases[i].prefill);
            assert_string_equal(rep.headers, before);
        }
        free(v);
        sb_reply_free(&rep);
    }
}

static void test_reply_header_full_buffer(void **state)
{
    (void)state;
    struct sb_http_reply rep;
    reply_init(&rep);
    char *v = value_of(SB_EXTRA_HEADERS_MAX - 1 - 5);
    assert_int_equal(sb_reply_header(&rep, "X", v), SB_OK);
    assert_int_equal(rep.headers_len, SB_EXTRA_HEADERS_MAX - 1);
    /* Nothing fits any more, not even an empty header. */
    assert_int_equal(sb_reply_header(&rep, "A", "b"), SB_ERR_TOO_LARGE);
    assert_int_equal(sb_reply_header(&rep, "", ""), SB_ERR_TOO_LARGE);
    assert_int_equal(rep.headers_len, SB_EXTRA_HEADERS_MAX - 1);
    assert_int_equal(strlen(rep.headers), SB_EXTRA_HEADERS_MAX - 1);
    free(v);
    /* Many small headers until the cap: each either fits whole or fails. */
    reply_init(&rep);
    int ok = 0;
    while (sb_reply_header(&rep, "Set-Cookie", "k=v") == SB_OK)
        ok++;
    assert_int_equal(ok, (SB_EXTRA_HEADERS_MAX - 1) / strlen("Set-Cookie: k=v\r\n"));
    assert_int_equal(rep.headers_len, (size_t)ok * strlen("Set-Cookie: k=v\r\n"));
    assert_int_equal(strlen(rep.headers), rep.headers_len);
    sb_reply_free(&rep);
}

/* -- JSON request bodies ------------------------------------------------- */

static const struct json_case {
    const char *content_type;
    const char *body;
    size_t body_len; /* 0: strlen(body) */
    int rc;
    int status; /* of the error reply */
    const char *code;
} json_cases[] = {
    {"application/json", "{\"a\":1}", 0, SB_OK, 0, NULL},
    {"application/json; charset=utf-8", "{\"a\":1}", 0, SB_OK, 0, NULL},
    {"Application/JSON", "{\"a\":1}", 0, SB_OK, 0, NULL},
    {"", "{\"a\":1}", 0, SB_OK, 0, NULL}, /* curl -d without a type */
    {"application/json", "  {\"a\" : 1}\n", 0, SB_OK, 0, NULL},
    /* Not JSON at all: 415. */
    {"application/x-www-form-urlencoded", "a=1", 0, SB_ERR_UNSUPPORTED_MEDIA, 415,
     "unsupported_media_type"},
    {"multipart/form-data; boundary=xyz", "{\"a\":1}", 0, SB_ERR_UNSUPPORTED_MEDIA, 415,
     "unsupported_media_type"},
    {"text/plain", "{\"a\":1}", 0, SB_ERR_UNSUPPORTED_MEDIA, 415, "unsupported_media_type"},
    {"application/jso", "{\"a\":1}", 0, SB_ERR_UNSUPPORTED_MEDIA, 415, "unsupported_media_type"},
    /* 415 wins over an empty body: the type is checked first. */
    {"application/x-www-form-urlencoded", "", 0, SB_ERR_UNSUPPORTED_MEDIA, 415,
     "unsupported_media_type"},
    /* Broken JSON: 400. */
    {"application/json", "", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"", "", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{\"a\":}", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{'a':1}", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{\"a\":1} trailing", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{\"a\":1}{\"b\":2}", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "[1,2]", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "[]", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "\"text\"", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "42", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "null", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{\"a\":1,\"a\":2}", 0, SB_ERR_INVALID, 400, "bad_request"},
    {"application/json", "{\"a\":\"\xff\"}", 0, SB_ERR_INVALID, 400, "bad_request"},
    /* A NUL inside the body: the length, not the NUL, bounds the parse. */
    {"application/json", "{\"a\":1}\0junk", 12, SB_ERR_INVALID, 400, "bad_request"},
    /* A valid object followed by bytes past body_len that must be ignored. */
    {"application/json", "{\"a\":1}garbage", 7, SB_OK, 0, NULL},
};

static void test_request_json(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
        const struct json_case *c = &json_cases[i];
        struct sb_http_request *req = calloc(1, sizeof *req);
        assert_non_null(req);
        snprintf(req->content_type, sizeof req->content_type, "%s", c->content_type);
        size_t len = c->body_len ? c->body_len : strlen(c->body);
        /* Exactly the body and its NUL (http.h: body is NUL-terminated). */
        req->body = malloc(len + 1);
        assert_non_null(req->body);
        memcpy(req->body, c->body, len);
        req->body[len] = '\0';
        req->body_len = len;
        struct sb_http_reply rep;
        reply_init(&rep);
        json_t *obj = (json_t *)req; /* poison */
        int rc = sb_request_json(req, &rep, &obj);
        if (rc != c->rc)
            fail_msg("case %zu (%s, %s): rc %d, expected %d", i, c->content_type, c->body, rc,
                     c->rc);
        if (rc == SB_OK) {
            assert_true(json_is_object(obj));
            assert_int_equal(json_integer_value(json_object_get(obj, "a")), 1);
            /* Success leaves the reply alone. */
            assert_int_equal(rep.status, 0);
            assert_null(rep.body);
            json_decref(obj);
        } else {
            assert_null(obj);
            assert_error_reply(&rep, c->status, c->code, NULL);
        }
        sb_reply_free(&rep);
        free(req->body);
        free(req);
    }
}

/* -- Cookies ------------------------------------------------------------- */

static const struct cookie_case {
    const char *header;
    const char *name;
    int rc;
    const char *value;
} cookie_cases[] = {
    {"a=1; sb=short; sb_session=tok123", "sb_session", 0, "tok123"},
    {"a=1; sb=short; sb_session=tok123", "sb", 0, "short"},
    {"a=1; sb=short; sb_session=tok123", "a", 0, "1"},
    /* "sb" is a prefix of "sb_session": neither may be mistaken for the other. */
    {"sb_session=tok123; sb=short", "sb", 0, "short"},
    {"sb_session=tok123", "sb", -1, NULL},
    {"sb=short", "sb_session", -1, NULL},
    {"sb_session=tok123", "sb_sess", -1, NULL},
    {"sb_session=tok123", "session", -1, NULL},
    {"xsb_session=evil; sb_session=good", "sb_session", 0, "good"},
    /* Separators. */
    {"a=1;b=2", "b", 0, "2"},
    {"a=1;  b=2", "b", 0, "2"},
    {"a=1;", "a", 0, "1"},
    {"  a=1", "a", 0, "1"},
    {";;a=1;;", "a", 0, "1"},
    {"flag; sb=1", "sb", 0, "1"},
    {"t=a=b", "t", 0, "a=b"},
    {"sb=", "sb", 0, ""},
    {"sb=; x=1", "sb", 0, ""},
    /* First of duplicates wins. */
    {"sb=first; sb=second", "sb", 0, "first"},
    /* Missing. */
    {"", "sb_session", -1, NULL},
    {"a=1; b=2", "sb_session", -1, NULL},
    {"sb_session", "sb_session", -1, NULL},
    {";;;", "a", -1, NULL},
    {"   ", "a", -1, NULL},
};

static void test_request_cookie(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cookie_cases / sizeof cookie_cases[0]; i++) {
        const struct cookie_case *c = &cookie_cases[i];
        struct sb_http_request *req = calloc(1, sizeof *req);
        assert_non_null(req);
        snprintf(req->cookie, sizeof req->cookie, "%s", c->header);
        char *name = dup_exact(c->name);
        char out[64];
        memset(out, '#', sizeof out);
        int rc = sb_request_cookie(req, name, out, sizeof out);
        if (rc != c->rc)
            fail_msg("case %zu ('%s' in '%s'): rc %d, expected %d", i, c->name, c->header, rc,
                     c->rc);
        if (rc == 0)
            assert_string_equal(out, c->value);
        free(name);
        free(req);
    }
}

/* The out buffer at its exact size and one byte short. */
static void test_request_cookie_out_size(void **state)
{
    (void)state;
    struct sb_http_request *req = calloc(1, sizeof *req);
    assert_non_null(req);
    strcpy(req->cookie, "sb=short; sb_session=0123456789; z=9");
    static const struct {
        size_t outlen;
        int rc;
    } cases[] = {{11, 0}, {12, 0}, {10, -1}, {1, -1}, {0, -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = malloc(cases[i].outlen ? cases[i].outlen : 1);
        assert_non_null(out);
        int rc = sb_request_cookie(req, "sb_session", out, cases[i].outlen);
        if (rc != cases[i].rc)
            fail_msg("outlen %zu: rc %d, expected %d", cases[i].outlen, rc, cases[i].rc);
        if (rc == 0)
            assert_string_equal(out, "0123456789");
        free(out);
    }
    /* An empty value needs only the NUL. */
    strcpy(req->cookie, "sb=");
    char *one = malloc(1);
    assert_non_null(one);
    assert_int_equal(sb_request_cookie(req, "sb", one, 1), 0);
    assert_string_equal(one, "");
    free(one);
    /* A cookie header filling the whole field. */
    memset(req->cookie, 0, sizeof req->cookie);
    memcpy(req->cookie, "big=", 4);
    memset(req->cookie + 4, 'q', sizeof req->cookie - 5);
    char *big = malloc(sizeof req->cookie - 4);
    assert_non_null(big);
    assert_int_equal(sb_request_cookie(req, "big", big, sizeof req->cookie - 4), 0);
    assert_int_equal(strlen(big), sizeof req->cookie - 5);
    assert_int_equal(sb_request_cookie(req, "big", big, sizeof req->cookie - 5), -1);
    free(big);
    free(req);
}

/* -- Status slots -------------------------------------------------------- */

static void test_status_slots(void **state)
{
    (void)state;
    static const int known[] = {101, 200, 201, 204, 301, 302, 303, 304, 400, 401,
                                403, 404, 405, 409, 413, 415, 429, 500, 503};
    int seen[SB_STATUS_SLOTS] = {0};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        int slot = sb_status_slot(known[i]);
        assert_in_range(slot, 0, SB_STATUS_SLOTS - 2);
        assert_int_equal(seen[slot], 0); /* one slot per status */
        seen[slot] = 1;
        assert_int_equal(sb_status_of_slot(slot), known[i]);
    }
    /* Every slot but the last names a status that maps back to it. */
    for (int s = 0; s < SB_STATUS_SLOTS - 1; s++) {
        int st = sb_status_of_slot(s);
        assert_in_range(st, 100, 599);
        assert_int_equal(sb_status_slot(st), s);
    }
    static const int unknown[] = {0, -1, 100, 202, 418, 422, 502, 504, 599, 600, 99999};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal(sb_status_slot(unknown[i]), SB_STATUS_SLOTS - 1);
    assert_int_equal(sb_status_of_slot(SB_STATUS_SLOTS - 1), 0);
    assert_int_equal(sb_status_of_slot(SB_STATUS_SLOTS), 0);
    assert_int_equal(sb_status_of_slot(-1), 0);
}

static int group_setup(void **state)
{
    (void)state;
    /* sb_reply_failure logs; keep the test output readable. */
    sb_log_setup(SB_LOG_FATAL, SB_LOG_TEXT);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sb_log_setup(SB_LOG_INFO, SB_LOG_TEXT);
    return 0;
}

/* The server stores the decoded query parts one after another, each ended by
 * a NUL, the list ended by an empty part (see server.c). */
static void set_query(struct sb_http_request *req, const char *const *parts)
{
    size_t o = 0;
    for (; *parts; parts++) {
        size_t n = strlen(*parts) + 1;
        memcpy(req->query + o, *parts, n);
        o += n;
    }
    req->query[o] = '\0';
}

static void test_request_query(void **state)
{
    (void)state;
    struct sb_http_request *req = calloc(1, sizeof *req);
    const char *parts[] = {"status=open", "q=a,b&c", "flag", "limit=", "statusx=1", NULL};
    set_query(req, parts);
    char v[8];
    assert_int_equal(sb_request_query(req, "status", v, sizeof v), 0);
    assert_string_equal(v, "open");
    assert_int_equal(sb_request_query(req, "q", v, sizeof v), 0);
    assert_string_equal(v, "a,b&c"); /* a decoded ',' or '&' stays data */
    assert_int_equal(sb_request_query(req, "flag", v, sizeof v), 0);
    assert_string_equal(v, "");
    assert_int_equal(sb_request_query(req, "limit", v, sizeof v), 0);
    assert_string_equal(v, "");
    assert_int_equal(sb_request_query(req, "stat", v, sizeof v), -1); /* no prefix matches */
    assert_int_equal(sb_request_query(req, "missing", v, sizeof v), -1);
    /* exact fit: "open" needs 5 bytes */
    char fit[5], small[4];
    assert_int_equal(sb_request_query(req, "status", fit, sizeof fit), 0);
    assert_int_equal(sb_request_query(req, "status", small, sizeof small), -1);
    free(req);
}

static void test_request_param_id(void **state)
{
    (void)state;
    struct sb_http_request *req = calloc(1, sizeof *req);
    req->nparams = 1;
    static const struct {
        const char *in;
        int ok;
        int64_t want;
    } cases[] = {
        {"1", 1, 1}, {"42", 1, 42}, {"999999999999999999", 1, 999999999999999999LL},
        {"0", 0, 0}, {"-1", 0, 0},  {"1a", 0, 0},
        {"", 0, 0},  {" 1", 0, 0},  {"1000000000000000000", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(req->params[0], sizeof req->params[0], "%s", cases[i].in);
        int64_t id = 0;
        int rc = sb_request_param_id(req, 0, &id);
        assert_int_equal(rc, cases[i].ok ? SB_OK : SB_ERR_INVALID);
        if (cases[i].ok)
            assert_int_equal(id, cases[i].want);
    }
    int64_t id;
    assert_int_equal(sb_request_param_id(req, 1, &id), SB_ERR_INVALID); /* no second param */
    free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_table),
        cmocka_unit_test(test_route_empty_table),
        cmocka_unit_test(test_route_param_length),
        cmocka_unit_test(test_route_params_reset),
        cmocka_unit_test(test_method_parse_name),
        cmocka_unit_test(test_reply_error_codes),
        cmocka_unit_test(test_reply_error_escapes_and_replaces),
        cmocka_unit_test(test_reply_error_long_message),
        cmocka_unit_test(test_reply_error_status),
        cmocka_unit_test(test_reply_failure),
        cmocka_unit_test(test_reply_json_and_text),
        cmocka_unit_test(test_reply_header_basic),
        cmocka_unit_test(test_reply_header_exact_fit),
        cmocka_unit_test(test_reply_header_full_buffer),
        cmocka_unit_test(test_request_json),
        cmocka_unit_test(test_request_cookie),
        cmocka_unit_test(test_request_cookie_out_size),
        cmocka_unit_test(test_status_slots),
        cmocka_unit_test(test_request_query),
        cmocka_unit_test(test_request_param_id),
    };
    return cmocka_run_group_tests_name("http", tests, group_setup, group_teardown);
}
