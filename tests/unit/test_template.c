/* template.h: merge fields, fallbacks, escaping, raw tags, link rewriting.
 * Templates are copied into exact-size buffers so ASan sees over-reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

static void expect(const char *tpl, int html, const struct sb_tpl_vars *v, const char *want)
{
    char *t = exact(tpl), *out = NULL, err[256] = "";
    size_t len = 0;
    assert_int_equal(sb_tpl_render(t, html, v, NULL, NULL, &out, &len, err, sizeof err), SB_OK);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
    free(t);
}

static void test_fields(void **state)
{
    (void)state;
    json_t *custom =
        json_pack("{s:s, s:i, s:b, s:s}", "plan", "gold", "visits", 42, "vip", 1, "empty", "");
    struct sb_tpl_vars v = {.name = "Anna",
                            .email = "anna@example.com",
                            .custom = custom,
                            .unsubscribe_url = "https://x/u/T",
                            .view_url = "https://x/v/T"};
    expect("Hi {{client.name}}", 0, &v, "Hi Anna");
    expect("Hi {{ client.name | there }}!", 0, &v, "Hi Anna!");
    expect("{{client.email}} {{custom.plan}} {{custom.visits}} {{custom.vip}}", 0, &v,
           "anna@example.com gold 42 true");
    expect("[{{custom.empty|none}}][{{custom.missing|n/a}}][{{custom.missing}}]", 0, &v,
           "[none][n/a][]");
    expect("{{unsubscribe_url}} {{view_url}}", 0, &v, "https://x/u/T https://x/v/T");
    expect("no tags at all", 0, &v, "no tags at all");
    expect("", 0, &v, "");
    expect("a { b } {c} }}", 0, &v, "a { b } {c} }}");
    expect("tail {{client.name", 0, &v, "tail {{client.name"); /* unclosed: literal */
    struct sb_tpl_vars none = {0};
    expect("Hello {{client.name|there}},", 1, &none, "Hello there,");
    json_decref(custom);
}

static void test_escaping(void **state)
{
    (void)state;
    json_t *custom = json_pack("{s:s}", "snippet", "<b>bold</b>");
    struct sb_tpl_vars v = {.name = "<script>alert('x')</script> & \"co\"", .custom = custom};
    expect("<p>{{client.name}}</p>", 1, &v,
           "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;</p>");
    expect("<p>{{{custom.snippet}}}</p>", 1, &v, "<p><b>bold</b></p>");
    expect("<p>{{custom.snippet}}</p>", 1, &v, "<p>&lt;b&gt;bold&lt;/b&gt;</p>");
    /* Text parts and subjects are never escaped. */
    expect("{{client.name}}", 0, &v, "<script>alert('x')</script> & \"co\"");
    json_decref(custom);
}

static void test_check(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(sb_tpl_check("Hi {{client.name|x}} {{{custom.a}}}", err, sizeof err), SB_OK);
    assert_int_equal(sb_tpl_check("Hi {{client.nmae}}", err, sizeof err), SB_ERR_INVALID);
    assert_non_null(strstr(err, "client.nmae"));
    err[0] = '\0';
    assert_int_equal(sb_tpl_check("Hi {{client.name", err, sizeof err), SB_ERR_INVALID);
    err[0] = '\0';
    assert_int_equal(sb_tpl_check("{{custom.}}", err, sizeof err), SB_ERR_INVALID);
    assert_int_equal(sb_tpl_check(NULL, err, sizeof err), SB_OK);
}

/* Canned responses: their own fields, the first name, and no campaign links. */
static void test_canned_scope(void **state)
{
    (void)state;
    char err[256] = "";
    const char *tpl = "{{client.first_name|коллега}}, {{agent.name}} #{{conversation.id}} "
                      "{{client.phone|-}}";
    assert_int_equal(sb_tpl_check_scope(tpl, SB_TPL_CANNED, err, sizeof err), SB_OK);
    assert_int_equal(sb_tpl_check(tpl, err, sizeof err), SB_ERR_INVALID); /* not for campaigns */
    assert_non_null(strstr(err, "agent.name"));
    err[0] = '\0';
    assert_int_equal(sb_tpl_check_scope("{{unsubscribe_url}}", SB_TPL_CANNED, err, sizeof err),
                     SB_ERR_INVALID);
    assert_non_null(strstr(err, "conversation.id")); /* the message lists what is known */
    assert_int_equal(sb_tpl_check("Hi {{client.first_name}}", err, sizeof err), SB_OK);
    struct sb_tpl_vars v = {.name = "  Анна Смирнова",
                            .agent_name = "Ada",
                            .conversation_id = 42,
                            .phone = "+79160001122"};
    expect(tpl, 0, &v, "Анна, Ada #42 +79160001122");
    struct sb_tpl_vars one = {.name = "Cher"};
    expect("{{client.first_name}}", 0, &one, "Cher");
    struct sb_tpl_vars none = {0};
    expect(tpl, 0, &none, "коллега,  # -");
}

static int links_seen;
static char *to_tracker(const char *url, void *arg)
{
    (void)arg;
    links_seen++;
    char *out = malloc(strlen(url) + 16);
    sprintf(out, "T[%s]", url);
    return out;
}

static void test_links(void **state)
{
    (void)state;
    struct sb_tpl_vars v = {.email = "a@b.c", .unsubscribe_url = "https://x/u/T"};
    char *t = exact("<a href=\"https://shop.example/?a=1&amp;b=2\">x</a> "
                    "<a class=q HREF='http://e.example/{{client.email}}'>y</a> "
                    "<a href=\"mailto:z@example.com\">m</a> <a href=\"{{unsubscribe_url}}\">u</a> "
                    "data-href=\"https://no.example\" <a href=\"https://cut");
    char *out = NULL, err[128] = "";
    links_seen = 0;
    assert_int_equal(sb_tpl_render(t, 1, &v, to_tracker, NULL, &out, NULL, err, sizeof err), SB_OK);
    assert_int_equal(links_seen, 2);
    assert_non_null(strstr(out, "href=\"T[https://shop.example/?a=1&amp;b=2]\""));
    assert_non_null(strstr(out, "HREF='T[http://e.example/a@b.c]'"));
    assert_non_null(strstr(out, "href=\"mailto:z@example.com\""));
    assert_non_null(strstr(out, "href=\"https://x/u/T\""));
    assert_non_null(strstr(out, "data-href=\"https://no.example\""));
    assert_non_null(strstr(out, "href=\"https://cut"));
    free(out);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_check),  cmocka_unit_test(test_canned_scope),
        cmocka_unit_test(test_links),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
