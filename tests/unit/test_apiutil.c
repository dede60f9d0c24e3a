/* Paging parameters and search terms of the JSON list endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/apiutil.h"
#include "switchboard/http.h"

#include <stdlib.h>
#include <string.h>

static struct sb_http_request *request(const char *const *parts)
{
    struct sb_http_request *req = calloc(1, sizeof *req);
    size_t o = 0;
    for (; parts && *parts; parts++) {
        size_t n = strlen(*parts) + 1;
        memcpy(req->query + o, *parts, n);
        o += n;
    }
    return req;
}

static void limit_is_clamped(void **state)
{
    (void)state;
    static const struct {
        const char *part;
        int want;
    } cases[] = {
        {NULL, SB_PAGE_DEFAULT},
        {"limit=10", 10},
        {"limit=0", 1},
        {"limit=-5", 1},
        {"limit=100000", SB_PAGE_MAX},
        {"limit=abc", SB_PAGE_DEFAULT},
        {"limit=", SB_PAGE_DEFAULT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *parts[] = {cases[i].part, NULL};
        struct sb_http_request *req = request(parts);
        assert_int_equal(sb_api_limit(req), cases[i].want);
        free(req);
    }
}

static void cursor_is_a_positive_id(void **state)
{
    (void)state;
    int64_t id;
    const char *ok[] = {"cursor=42", NULL}, *bad[] = {"cursor=4x", NULL},
               *zero[] = {"cursor=0", NULL};
    struct sb_http_request *req = request(ok);
    assert_int_equal(sb_api_cursor_id(req, &id), 0);
    assert_int_equal(id, 42);
    free(req);
    req = request(bad);
    assert_int_equal(sb_api_cursor_id(req, &id), -1);
    free(req);
    req = request(zero);
    assert_int_equal(sb_api_cursor_id(req, &id), -1);
    free(req);
    req = request(NULL);
    assert_int_equal(sb_api_cursor_id(req, &id), 0);
    assert_int_equal(id, 0);
    free(req);
}

static void search_terms_read_phones_emails_and_escape_like(void **state)
{
    (void)state;
    struct sb_search_terms t;
    sb_api_search_terms("8 (916) 000-11-22", "RU", &t);
    assert_string_equal(t.phone, "+79160001122");
    assert_string_equal(t.email, "");
    sb_api_search_terms("Ivan.Petrov@Example.RU", "RU", &t);
    assert_string_equal(t.email, "ivan.petrov@example.ru");
    assert_string_equal(t.phone, "");
    /* LIKE wildcards in the query match literally */
    sb_api_search_terms("50%_off\\", "RU", &t);
    assert_string_equal(t.like, "%50\\%\\_off\\\\%");
    sb_api_search_terms("Анна", "RU", &t);
    assert_string_equal(t.like, "%Анна%");
    /* a query longer than the pattern buffer is cut, still closed by % */
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sb_api_search_terms(big, "RU", &t);
    size_t n = strlen(t.like);
    assert_true(n < sizeof t.like);
    assert_int_equal(t.like[0], '%');
    assert_int_equal(t.like[n - 1], '%');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_is_clamped),
        cmocka_unit_test(cursor_is_a_positive_id),
        cmocka_unit_test(search_terms_read_phones_emails_and_escape_like),
    };
    return cmocka_run_group_tests_name("apiutil", tests, NULL, NULL);
}
