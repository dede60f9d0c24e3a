/* sb_db_params_parse: the database URL of DESIGN.md, good and broken, and
 * the bound-value helpers of db.h. No server is contacted.
 *
 * Each URL is copied into a malloc'd buffer of exactly its length + 1 so
 * ASan reports any read past its NUL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/db.h"
#include "switchboard/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

/* Freed by the teardown too, so a failed assertion leaks nothing. */
static struct sb_db_params params;
static char *url_copy;

static int test_teardown(void **state)
{
    (void)state;
    sb_db_params_free(&params);
    free(url_copy);
    url_copy = NULL;
    return 0;
}

static const struct url_case {
    const char *url;
    const char *user, *password, *host; /* NULL: not set */
    unsigned port;
    const char *database, *socket;
} good[] = {
    {"mariadb://user:pass@db.example.com:3307/switchboard", "user", "pass", "db.example.com", 3307,
     "switchboard", NULL},
    {"mariadb://user:pass@localhost/sb", "user", "pass", "localhost", 0, "sb", NULL},
    {"mariadb://user@localhost/sb", "user", NULL, "localhost", 0, "sb", NULL},
    {"mariadb://localhost/sb", NULL, NULL, "localhost", 0, "sb", NULL},
    {"mariadb://user:@h/db", "user", "", "h", 0, "db", NULL},
    {"mariadb://u:p%40ss%3Aw%2Frd@h/db", "u", "p@ss:w/rd", "h", 0, "db", NULL},
    {"mariadb://u:P%41%42@h/db", "u", "PAB", "h", 0, "db", NULL},
    /* '@' in the password: the last '@' before the path ends the credentials. */
    {"mariadb://u:p@ss@h/db", "u", "p@ss", "h", 0, "db", NULL},
    {"mariadb://u:a@b@c@h:1/db", "u", "a@b@c", "h", 1, "db", NULL},
    /* ':' in the password: the first ':' ends the user. */
    {"mariadb://u:a:b@h/db", "u", "a:b", "h", 0, "db", NULL},
    {"mariadb://us%65r:x@h/db", "user", "x", "h", 0, "db", NULL},
    /* Percent-escapes at the very end of a part, and broken ones kept as is. */
    {"mariadb://u:x%41@h/db", "u", "xA", "h", 0, "db", NULL},
    {"mariadb://u:x%4@h/db", "u", "x%4", "h", 0, "db", NULL},
    {"mariadb://u:x%@h/db", "u", "x%", "h", 0, "db", NULL},
    {"mariadb://u:%zz@h/db", "u", "%zz", "h", 0, "db", NULL},
    {"mariadb://u:%2f%2F@h/db", "u", "//", "h", 0, "db", NULL},
    {"mariadb://u:p@h/my%5Fdb", "u", "p", "h", 0, "my_db", NULL},
    /* Sockets. */
    {"mariadb://user@localhost/sb?socket=/run/mysqld/mysqld.sock", "user", NULL, "localhost", 0,
     "sb", "/run/mysqld/mysqld.sock"},
    {"mariadb://user@/sb?socket=/tmp/s.sock", "user", NULL, "", 0, "sb", "/tmp/s.sock"},
    {"mariadb://root@localhost/sb?socket=/var/x%20y.sock", "root", NULL, "localhost", 0, "sb",
     "/var/x y.sock"},
    {"mariadb://u@h/db?socket=/a&socket=/b", "u", NULL, "h", 0, "db", "/b"}, /* last wins */
    {"mariadb://u@h/db?", "u", NULL, "h", 0, "db", NULL},
    /* The other scheme. */
    {"mysql://u:p@h/db", "u", "p", "h", 0, "db", NULL},
    /* IPv6 literals. */
    {"mariadb://u@[::1]:3307/db", "u", NULL, "::1", 3307, "db", NULL},
    {"mariadb://u@[::1]/db", "u", NULL, "::1", 0, "db", NULL},
    {"mariadb://u:p@[fe80::1%25eth0]:3306/db", "u", "p", "fe80::1%eth0", 3306, "db", NULL},
    /* Port bounds, exact. */
    {"mariadb://u@h:1/db", "u", NULL, "h", 1, "db", NULL},
    {"mariadb://u@h:65535/db", "u", NULL, "h", 65535, "db", NULL},
};

static void expect_str(const char *field, const char *got, const char *want, const char *url)
{
    if (!want && !got)
        return;
    if (!want || !got || strcmp(got, want) != 0)
        fail_msg("%s: %s is '%s', expected '%s'", url, field, got ? got : "(null)",
                 want ? want : "(null)");
}

static void test_good_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const struct url_case *c = &good[i];
        url_copy = dup_exact(c->url);
        char err[256] = "";
        int rc = sb_db_params_parse(url_copy, &params, err, sizeof err);
        if (rc != SB_OK)
            fail_msg("%s: rc %d (%s)", c->url, rc, err);
        assert_string_equal(err, "");
        expect_str("user", params.user, c->user, c->url);
        expect_str("password", params.password, c->password, c->url);
        expect_str("host", params.host, c->host, c->url);
        expect_str("database", params.database, c->database, c->url);
        expect_str("socket", params.socket, c->socket, c->url);
        if (params.port != c->port)
            fail_msg("%s: port %u, expected %u", c->url, params.port, c->port);
        sb_db_params_free(&params);
        assert_null(params.user);
        assert_null(params.host);
        assert_null(params.database);
        assert_int_equal(params.port, 0);
        free(url_copy);
        url_copy = NULL;
    }
}

static const struct bad_case {
    const char *url;
    const char *why; /* a substring of the message */
} bad[] = {
    {"", "no database configured"},
    {"postgres://u@h/db", "mariadb://"},
    {"mariadb:/h/db", "mariadb://"},
    {"mariadb:h/db", "mariadb://"},
    {"http://u@h/db", "mariadb://"},
    {"mariadb//u@h/db", "mariadb://"},
    {"mariadb://", "no /database"},
    {"mariadb://u:p@h", "no /database"},
    {"mariadb://u:p@h:3306", "no /database"},
    {"mariadb://u:p@h/", "empty database"},
    {"mariadb://u:p@h/?socket=/tmp/s", "empty database"},
    {"mariadb://u@h:0/db", "bad port"},
    {"mariadb://u@h:70000/db", "bad port"},
    {"mariadb://u@h:65536/db", "bad port"}, /* one over */
    {"mariadb://u@h:abc/db", "bad port"},
    {"mariadb://u@h:/db", "bad port"},
    {"mariadb://u@h:3306x/db", "bad port"},
    /* An unencoded '/' in the password ends the host part early. */
    {"mariadb://u:p/w@h/db", "bad port"},
    {"mariadb://u@h:-1/db", "bad port"},
    {"mariadb://u@h:99999999999999999999999/db", "bad port"},
    {"mariadb://u@[::1]:0/db", "bad port"},
    {"mariadb://u@[::1]:x/db", "bad port"},
    {"mariadb://u@[::1/db", "unclosed"},
    {"mariadb://u@h/db?ssl=1", "unknown option"},
    {"mariadb://u@h/db?socket=/x&foo=bar", "unknown option"},
    {"mariadb://u@h/db?sock=/x", "unknown option"},
    {"mariadb://u@h/db?socket=", "unknown option"},
    {"mariadb:///db", "no host"},
    {"mariadb://u:p@/db", "no host"},
};

static void test_bad_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        url_copy = dup_exact(bad[i].url);
        char err[256] = "";
        int rc = sb_db_params_parse(url_copy, &params, err, sizeof err);
        if (rc != SB_ERR_CONFIG)
            fail_msg("'%s': rc %d, expected SB_ERR_CONFIG", bad[i].url, rc);
        if (!strstr(err, bad[i].why))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].url, err, bad[i].why);
        /* Nothing half-filled is left behind. */
        assert_null(params.user);
        assert_null(params.password);
        assert_null(params.host);
        assert_null(params.database);
        assert_null(params.socket);
        assert_int_equal(params.port, 0);
        sb_db_params_free(&params);
        free(url_copy);
        url_copy = NULL;
    }
}

static void test_null_url(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(sb_db_params_parse(NULL, &params, err, sizeof err), SB_ERR_CONFIG);
    assert_non_null(strstr(err, "SWITCHBOARD_DB"));
    /* Without an error buffer. */
    assert_int_equal(sb_db_params_parse("nope", &params, NULL, 0), SB_ERR_CONFIG);
    sb_db_params_free(&params);
}

/* The parse starts from a clean struct: stale pointers are not freed or
 * kept (the caller may pass an uninitialised one). */
static void test_params_reused(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(sb_db_params_parse("mariadb://a:b@c:1/d?socket=/s", &params, err, sizeof err),
                     SB_OK);
    sb_db_params_free(&params);
    memset(&params, 0xA5, sizeof params); /* garbage, as from an uninitialised stack */
    assert_int_equal(sb_db_params_parse("mariadb://x@y/z", &params, err, sizeof err), SB_OK);
    assert_string_equal(params.user, "x");
    assert_null(params.password);
    assert_null(params.socket);
    assert_int_equal(params.port, 0);
    sb_db_params_free(&params);
}

/* A long URL, to make sure nothing has a fixed-size buffer. */
static void test_long_url(void **state)
{
    (void)state;
    size_t n = 10000;
    char *url = malloc(n + 64);
    assert_non_null(url);
    int off = sprintf(url, "mariadb://u:");
    memset(url + off, 'p', n);
    sprintf(url + off + n, "@host:3306/db");
    url_copy = dup_exact(url);
    free(url);
    char err[256] = "";
    assert_int_equal(sb_db_params_parse(url_copy, &params, err, sizeof err), SB_OK);
    assert_int_equal(strlen(params.password), n);
    assert_string_equal(params.host, "host");
    assert_int_equal(params.port, 3306);
}

static void test_db_values(void **state)
{
    (void)state;
    struct sb_db_val v = sb_db_text(NULL);
    assert_int_equal(v.type, SB_DB_NULL);
    v = SB_TEXT(NULL);
    assert_int_equal(v.type, SB_DB_NULL);
    char *s = dup_exact("héllo");
    v = sb_db_text(s);
    assert_int_equal(v.type, SB_DB_TEXT);
    assert_ptr_equal(v.p, s); /* bound in place, not copied */
    assert_int_equal(v.len, strlen("héllo"));
    free(s);
    v = sb_db_text("");
    assert_int_equal(v.type, SB_DB_TEXT);
    assert_int_equal(v.len, 0);
    v = SB_INT(-42);
    assert_int_equal(v.type, SB_DB_INT);
    assert_int_equal(v.i, -42);
    v = SB_INT(INT64_MAX);
    assert_true(v.i == INT64_MAX);
    unsigned char blob[3] = {0, 1, 2};
    v = SB_BLOB(blob, sizeof blob);
    assert_int_equal(v.type, SB_DB_BLOB);
    assert_ptr_equal(v.p, blob);
    assert_int_equal(v.len, 3);
    v = SB_NULL;
    assert_int_equal(v.type, SB_DB_NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_good_urls),     T(test_bad_urls), T(test_null_url),
        T(test_params_reused), T(test_long_url), T(test_db_values),
    };
#undef T
    return cmocka_run_group_tests_name("db_url", tests, NULL, NULL);
}
