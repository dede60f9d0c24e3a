/* campaign.h tokens: round trip, every kind bound, the click URL bound,
 * any changed byte refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/campaign.h"
#include "switchboard/err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char key[32];

static int setup(void **state)
{
    (void)state;
    unsigned char master[32];
    memset(master, 7, sizeof master);
    sb_camp_key(master, key);
    return 0;
}

static void test_round_trip(void **state)
{
    (void)state;
    char tok[SB_CAMP_TOKEN_MAX + 1];
    int64_t c, r;
    assert_int_equal(
        sb_camp_token_make(key, SB_TOK_UNSUB, 7, 123456789012LL, NULL, tok, sizeof tok), SB_OK);
    assert_int_equal(strlen(tok), 44);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_UNSUB, tok, NULL, &c, &r), SB_OK);
    assert_int_equal(c, 7);
    assert_int_equal(r, 123456789012LL);
    /* Another kind with the same ids is another token. */
    assert_int_equal(sb_camp_token_check(key, SB_TOK_OPEN, tok, NULL, &c, &r), SB_ERR_INVALID);
    assert_int_equal(c, 0);
    /* Exact fit and one byte short. */
    assert_int_equal(sb_camp_token_make(key, SB_TOK_OPEN, 1, 2, NULL, tok, 45), SB_OK);
    assert_int_equal(sb_camp_token_make(key, SB_TOK_OPEN, 1, 2, NULL, tok, 44), SB_ERR_TOO_LARGE);
}

static void test_click_bound_to_url(void **state)
{
    (void)state;
    char tok[SB_CAMP_TOKEN_MAX + 1];
    int64_t c, r;
    const char *url = "https://shop.example/sale?x=1&y=2";
    assert_int_equal(sb_camp_token_make(key, SB_TOK_CLICK, 3, 4, url, tok, sizeof tok), SB_OK);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_CLICK, tok, url, &c, &r), SB_OK);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_CLICK, tok, "https://evil.example/", &c, &r),
                     SB_ERR_INVALID);
    assert_int_equal(
        sb_camp_token_check(key, SB_TOK_CLICK, tok, "https://shop.example/sale?x=1&y=3", &c, &r),
        SB_ERR_INVALID);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_CLICK, tok, NULL, &c, &r), SB_ERR_INVALID);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_CLICK, tok, "", &c, &r), SB_ERR_INVALID);
}

static void test_tampering(void **state)
{
    (void)state;
    char tok[SB_CAMP_TOKEN_MAX + 1];
    int64_t c, r;
    assert_int_equal(sb_camp_token_make(key, SB_TOK_UNSUB, 9, 10, NULL, tok, sizeof tok), SB_OK);
    size_t n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        char t[SB_CAMP_TOKEN_MAX + 1];
        memcpy(t, tok, n + 1);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_int_equal(sb_camp_token_check(key, SB_TOK_UNSUB, t, NULL, &c, &r), SB_ERR_INVALID);
    }
    /* Truncated, extended, not base64url, empty, another key. */
    char t[SB_CAMP_TOKEN_MAX + 8];
    snprintf(t, sizeof t, "%.*s", (int)n - 1, tok);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_UNSUB, t, NULL, &c, &r), SB_ERR_INVALID);
    snprintf(t, sizeof t, "%sAA", tok);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_UNSUB, t, NULL, &c, &r), SB_ERR_INVALID);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_UNSUB, "!!!!", NULL, &c, &r), SB_ERR_INVALID);
    assert_int_equal(sb_camp_token_check(key, SB_TOK_UNSUB, "", NULL, &c, &r), SB_ERR_INVALID);
    unsigned char other[32];
    memset(other, 8, sizeof other);
    assert_int_equal(sb_camp_token_check(other, SB_TOK_UNSUB, tok, NULL, &c, &r), SB_ERR_INVALID);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_click_bound_to_url),
        cmocka_unit_test(test_tampering),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
