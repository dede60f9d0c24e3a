/* err.h: the code table (text, JSON code, HTTP status) and sb_fail's
 * first-message-wins buffer. Buffers are malloc'd at exactly the size passed
 * as errlen so ASan catches a write one byte past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* A buffer of exactly `len` bytes, all NUL. */
static char *buf_exact(size_t len)
{
    char *b = malloc(len ? len : 1);
    assert_non_null(b);
    memset(b, 0, len ? len : 1);
    return b;
}

/* The codes the HTTP layer promises (DESIGN.md error body, api docs). */
static const struct {
    int err;
    const char *code;
    int status;
} mapping[] = {
    {SB_OK, "ok", 200},
    {SB_ERR_INTERNAL, "internal", 500},
    {SB_ERR_NOMEM, "internal", 500},
    {SB_ERR_INVALID, "bad_request", 400},
    {SB_ERR_NOT_FOUND, "not_found", 404},
    {SB_ERR_EXISTS, "conflict", 409},
    {SB_ERR_UNAUTHORIZED, "unauthorized", 401},
    {SB_ERR_FORBIDDEN, "forbidden", 403},
    {SB_ERR_LIMIT, "rate_limited", 429},
    {SB_ERR_TOO_LARGE, "too_large", 413},
    {SB_ERR_UNAVAILABLE, "unavailable", 503},
    {SB_ERR_IO, "internal", 500},
    {SB_ERR_CONFIG, "internal", 500},
    {SB_ERR_DB, "internal", 500},
    {SB_ERR_UNKNOWN_COMMIT, "unavailable", 503},
    {SB_ERR_UNSUPPORTED_MEDIA, "unsupported_media_type", 415},
    {SB_ERR_RETRY, "unavailable", 503},
};

static void test_every_code_described(void **state)
{
    (void)state;
    for (int e = 0; e < SB_ERR__LAST; e++) {
        const char *text = sb_strerror(e);
        const char *code = sb_err_code(e);
        assert_non_null(text);
        assert_non_null(code);
        assert_true(strlen(text) > 0);
        assert_true(strlen(code) > 0);
        assert_string_not_equal(text, "unknown error");
        int st = sb_err_http_status(e);
        assert_in_range(st, 200, 599);
        /* A code is a stable identifier: lower case, digits and '_'. */
        for (const char *p = code; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
    }
}

static void test_mapping_table(void **state)
{
    (void)state;
    /* The table above must cover every code, so a new code gets a row here. */
    assert_int_equal(sizeof mapping / sizeof mapping[0], SB_ERR__LAST);
    for (size_t i = 0; i < sizeof mapping / sizeof mapping[0]; i++) {
        assert_string_equal(sb_err_code(mapping[i].err), mapping[i].code);
        assert_int_equal(sb_err_http_status(mapping[i].err), mapping[i].status);
    }
}

static void test_texts_distinct(void **state)
{
    (void)state;
    for (int a = 0; a < SB_ERR__LAST; a++)
        for (int b = a + 1; b < SB_ERR__LAST; b++)
            assert_string_not_equal(sb_strerror(a), sb_strerror(b));
}

static void test_out_of_range(void **state)
{
    (void)state;
    const int bad[] = {-1, SB_ERR__LAST, SB_ERR__LAST + 1, 1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(sb_strerror(bad[i]), "unknown error");
        assert_string_equal(sb_err_code(bad[i]), "internal");
        assert_int_equal(sb_err_http_status(bad[i]), 500);
    }
}

static void test_fail_writes_and_returns_code(void **state)
{
    (void)state;
    char *buf = buf_exact(64);
    assert_int_equal(sb_fail(buf, 64, SB_ERR_NOT_FOUND, "no %s %d", "user", 42), SB_ERR_NOT_FOUND);
    assert_string_equal(buf, "no user 42");
    free(buf);
}

static void test_fail_keeps_first_message(void **state)
{
    (void)state;
    char *buf = buf_exact(64);
    assert_int_equal(sb_fail(buf, 64, SB_ERR_IO, "cause: %s", "disk full"), SB_ERR_IO);
    /* The second failure still returns its own code but keeps the cause. */
    assert_int_equal(sb_fail(buf, 64, SB_ERR_INTERNAL, "symptom"), SB_ERR_INTERNAL);
    assert_string_equal(buf, "cause: disk full");
    /* A caller that clears the buffer gets the next message. */
    buf[0] = '\0';
    assert_int_equal(sb_fail(buf, 64, SB_ERR_DB, "again"), SB_ERR_DB);
    assert_string_equal(buf, "again");
    free(buf);
}

static void test_fail_null_and_zero_length(void **state)
{
    (void)state;
    assert_int_equal(sb_fail(NULL, 0, SB_ERR_INVALID, "x"), SB_ERR_INVALID);
    assert_int_equal(sb_fail(NULL, 128, SB_ERR_NOMEM, "x %d", 1), SB_ERR_NOMEM);
    assert_int_equal(sb_fail(NULL, 0, SB_OK, "x"), SB_OK);
    /* errlen 0: the buffer must not even be read. Point just past the end
     * of an allocation, so ASan reports any access. */
    char *four = malloc(4);
    assert_non_null(four);
    memset(four, 0, 4);
    assert_int_equal(sb_fail(four + 4, 0, SB_ERR_LIMIT, "too many"), SB_ERR_LIMIT);
    assert_memory_equal(four, "\0\0\0\0", 4);
    free(four);
}

/* Truncation at exact sizes: "hello" needs 6 bytes. */
static const struct {
    size_t errlen;
    const char *expect;
} trunc_cases[] = {
    {1, ""},        /* room for the NUL only */
    {2, "h"},       /* one character */
    {5, "hell"},    /* one byte short */
    {6, "hello"},   /* exact fit */
    {7, "hello"},   /* one byte over */
    {100, "hello"}, /* plenty */
};

static void test_fail_truncates_at_exact_sizes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof trunc_cases / sizeof trunc_cases[0]; i++) {
        size_t n = trunc_cases[i].errlen;
        char *buf = buf_exact(n);
        assert_int_equal(sb_fail(buf, n, SB_ERR_CONFIG, "%s", "hello"), SB_ERR_CONFIG);
        assert_string_equal(buf, trunc_cases[i].expect);
        assert_true(strlen(buf) < n);
        free(buf);
    }
}

static void test_fail_long_message(void **state)
{
    (void)state;
    /* A formatted message far longer than the buffer. */
    char *big = malloc(5001);
    assert_non_null(big);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    char *buf = buf_exact(32);
    sb_fail(buf, 32, SB_ERR_TOO_LARGE, "%s:%s", big, big);
    assert_int_equal(strlen(buf), 31);
    assert_int_equal(strspn(buf, "x"), 31);
    free(buf);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_described),
        cmocka_unit_test(test_mapping_table),
        cmocka_unit_test(test_texts_distinct),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_fail_writes_and_returns_code),
        cmocka_unit_test(test_fail_keeps_first_message),
        cmocka_unit_test(test_fail_null_and_zero_length),
        cmocka_unit_test(test_fail_truncates_at_exact_sizes),
        cmocka_unit_test(test_fail_long_message),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
