/* ratelimit.h: fixed windows per key, with `now` passed explicitly so no
 * test sleeps. Keys are copied into exact-size buffers (ASan over-reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/limits.h"
#include "switchboard/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A realistic clock value: windows are measured from real epoch seconds. */
#define T0 ((time_t)1700000000)

static struct sb_ratelimit *rl;

static int test_teardown(void **state)
{
    (void)state;
    sb_ratelimit_free(&rl);
    assert_null(rl);
    return 0;
}

static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

static void hit(const char *key, time_t now)
{
    char *k = dup_exact(key);
    sb_ratelimit_hit(rl, k, now);
    free(k);
}

static int check(const char *key, time_t now, int *retry)
{
    char *k = dup_exact(key);
    int rc = sb_ratelimit_check(rl, k, now, retry);
    free(k);
    return rc;
}

static void test_under_and_at_limit(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(3, 60, &rl), SB_OK);
    int retry = -12345;
    /* A key never seen is fine, and retry_after is left alone. */
    assert_int_equal(check("10.0.0.1", T0, &retry), SB_OK);
    assert_int_equal(retry, -12345);
    hit("10.0.0.1", T0);
    assert_int_equal(check("10.0.0.1", T0, &retry), SB_OK);
    hit("10.0.0.1", T0 + 1);
    assert_int_equal(check("10.0.0.1", T0 + 1, &retry), SB_OK); /* one under */
    hit("10.0.0.1", T0 + 2);
    /* At the limit: refused, with the seconds left in the window. */
    assert_int_equal(check("10.0.0.1", T0 + 2, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 58);
    assert_in_range(retry, 1, 60);
    /* retry_after may be NULL. */
    assert_int_equal(check("10.0.0.1", T0 + 2, NULL), SB_ERR_LIMIT);
    /* Over the limit stays refused. */
    hit("10.0.0.1", T0 + 3);
    assert_int_equal(check("10.0.0.1", T0 + 3, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 57);
}

static void test_retry_after_range(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(2, 300, &rl), SB_OK);
    hit("k", T0);
    hit("k", T0);
    int retry = 0;
    /* Same second as the window start: the whole window. */
    assert_int_equal(check("k", T0, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 300);
    /* Each second in the window: (0, window]. */
    for (time_t t = T0; t < T0 + 300; t++) {
        retry = 0;
        assert_int_equal(check("k", t, &retry), SB_ERR_LIMIT);
        assert_int_equal(retry, (int)(T0 + 300 - t));
        assert_in_range(retry, 1, 300);
    }
}

static void test_window_expiry(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(2, 60, &rl), SB_OK);
    hit("user@example.com", T0);
    hit("user@example.com", T0 + 10);
    int retry;
    assert_int_equal(check("user@example.com", T0 + 59, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 1); /* last second of the window */
    /* The window ends exactly `window` seconds after it started. */
    assert_int_equal(check("user@example.com", T0 + 60, &retry), SB_OK);
    assert_int_equal(check("user@example.com", T0 + 1000, &retry), SB_OK);
    /* A hit after expiry starts a new window with a count of one. */
    hit("user@example.com", T0 + 60);
    assert_int_equal(check("user@example.com", T0 + 60, &retry), SB_OK);
    hit("user@example.com", T0 + 61);
    assert_int_equal(check("user@example.com", T0 + 61, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 59); /* measured from the new window's start */
    assert_int_equal(check("user@example.com", T0 + 120, &retry), SB_OK);
}

static void test_reset(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(1, 300, &rl), SB_OK);
    hit("a", T0);
    hit("b", T0);
    assert_int_equal(check("a", T0, NULL), SB_ERR_LIMIT);
    assert_int_equal(check("b", T0, NULL), SB_ERR_LIMIT);
    char *k = dup_exact("a");
    sb_ratelimit_reset(rl, k);
    free(k);
    assert_int_equal(check("a", T0, NULL), SB_OK);
    assert_int_equal(check("b", T0, NULL), SB_ERR_LIMIT); /* untouched */
    /* Counting starts again from zero. */
    hit("a", T0 + 1);
    assert_int_equal(check("a", T0 + 1, NULL), SB_ERR_LIMIT);
    /* Resetting an unknown key is harmless. */
    sb_ratelimit_reset(rl, "never-seen");
    assert_int_equal(check("never-seen", T0, NULL), SB_OK);
}

static void test_independent_keys(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(2, 60, &rl), SB_OK);
    hit("10.0.0.1", T0);
    hit("10.0.0.1", T0);
    assert_int_equal(check("10.0.0.1", T0, NULL), SB_ERR_LIMIT);
    /* Neighbours, prefixes and the empty key count separately. */
    static const char *const others[] = {"10.0.0.2",  "10.0.0.10", "10.0.0.",
                                         "10.0.0.1 ", "",          "::1"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        assert_int_equal(check(others[i], T0, NULL), SB_OK);
        hit(others[i], T0);
        assert_int_equal(check(others[i], T0, NULL), SB_OK);
    }
    assert_int_equal(check("10.0.0.1", T0, NULL), SB_ERR_LIMIT);
    hit("", T0);
    assert_int_equal(check("", T0, NULL), SB_ERR_LIMIT);
}

/* Two limiters do not share state (each has its own table and hash key). */
static void test_two_limiters(void **state)
{
    (void)state;
    struct sb_ratelimit *other = NULL;
    assert_int_equal(sb_ratelimit_new(1, 60, &rl), SB_OK);
    assert_int_equal(sb_ratelimit_new(1, 60, &other), SB_OK);
    hit("k", T0);
    assert_int_equal(check("k", T0, NULL), SB_ERR_LIMIT);
    assert_int_equal(sb_ratelimit_check(other, "k", T0, NULL), SB_OK);
    sb_ratelimit_free(&other);
    assert_null(other);
    sb_ratelimit_free(&other); /* freeing NULL is harmless */
}

/* A flood of distinct keys fills the bounded table many times over; a key
 * hit right before its check must still be counted. */
static void test_flood(void **state)
{
    (void)state;
    const int limit = 5;
    assert_int_equal(sb_ratelimit_new(limit, 300, &rl), SB_OK);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "198.51.%d.%d", i / 256, i % 256);
        sb_ratelimit_hit(rl, key, T0);
    }
    /* The same second as the flood, so the victim's slot is no fresher than
     * the flood's: still it must not be evicted by its own hits. */
    for (int i = 0; i < limit - 1; i++) {
        hit("203.0.113.7", T0);
        assert_int_equal(check("203.0.113.7", T0, NULL), SB_OK);
    }
    hit("203.0.113.7", T0);
    int retry = 0;
    assert_int_equal(check("203.0.113.7", T0, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 300);
    /* A later second, after another flood. */
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        sb_ratelimit_hit(rl, key, T0 + 1);
    }
    for (int i = 0; i < limit; i++)
        hit("victim@example.com", T0 + 2);
    assert_int_equal(check("victim@example.com", T0 + 2, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 300);
    /* A key hit once in the flood is far below the limit. */
    assert_int_equal(check("k99999", T0 + 2, NULL), SB_OK);
    /* Hammering one key far past its limit keeps it limited. */
    for (int i = 0; i < 10000; i++)
        sb_ratelimit_hit(rl, "hammer", T0 + 3);
    assert_int_equal(check("hammer", T0 + 3, NULL), SB_ERR_LIMIT);
}

/* Entries from an earlier window are the stalest: a flood of them never
 * evicts a key counted in the current window. */
static void test_flood_of_stale_keys(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(3, 60, &rl), SB_OK);
    for (int i = 0; i < 3; i++)
        hit("current", T0 + 10);
    char key[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "old%d", i);
        sb_ratelimit_hit(rl, key, T0);
    }
    int retry = 0;
    assert_int_equal(check("current", T0 + 10, &retry), SB_ERR_LIMIT);
    assert_int_equal(retry, 60);
}

/* More keys in use than the table holds, all hit in one window: none may
 * be reported as limited that was not hit `limit` times. */
static void test_no_false_positives(void **state)
{
    (void)state;
    assert_int_equal(sb_ratelimit_new(3, 60, &rl), SB_OK);
    char key[32];
    const int nkeys = SB_RATELIMIT_SLOTS * 2;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < nkeys; i++) {
            snprintf(key, sizeof key, "u%d@example.org", i);
            sb_ratelimit_hit(rl, key, T0);
        }
    for (int i = 0; i < nkeys; i++) {
        snprintf(key, sizeof key, "u%d@example.org", i);
        assert_int_equal(sb_ratelimit_check(rl, key, T0, NULL), SB_OK);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_under_and_at_limit),
        T(test_retry_after_range),
        T(test_window_expiry),
        T(test_reset),
        T(test_independent_keys),
        T(test_two_limiters),
        T(test_flood),
        T(test_flood_of_stale_keys),
        T(test_no_false_positives),
    };
#undef T
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
