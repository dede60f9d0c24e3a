/* sb_html_to_text: the text of HTML-only mail and of campaigns' text
 * alternatives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/htmltext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(const char *html, const char *want)
{
    /* an exact-size copy: ASan sees any read past the end */
    size_t n = strlen(html);
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, html, n);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(sb_html_to_text(copy, n, &out, &len), SB_OK);
    free(copy);
    assert_int_equal(len, strlen(out));
    if (strcmp(out, want) != 0)
        fail_msg("\"%s\"\n -> \"%s\"\n expected \"%s\"", html, out, want);
    free(out);
}

static void test_blocks_and_spaces(void **state)
{
    (void)state;
    check("<html><head><title>T</title><style>p{color:red}</style></head>"
          "<body><p>Hello,\n   world!</p><p>Second&nbsp;para</p></body></html>",
          "Hello, world!\n\nSecond para");
    check("line one<br>line two<br/><br />after blank", "line one\nline two\n\nafter blank");
    check("<div>a</div><div>b</div>", "a\nb");
    check("<ul><li>one</li><li>two</li></ul>tail", "- one\n- two\n\ntail");
    check("<table><tr><td>Name</td><td>Anna</td></tr><tr><td>Phone</td><td>+7 999</td></tr>"
          "</table>",
          "Name Anna\nPhone +7 999");
    check("<pre>  keep\n    this</pre>", "  keep\n    this");
    check("", "");
    check("   ", "");
}

static void test_entities_links_and_junk(void **state)
{
    (void)state;
    check("&laquo;Заказ&raquo; &mdash; &#8470;5 &#x41;&amp;B &lt;x&gt; &bogus; & alone",
          "«Заказ» — №5 A&B <x> &bogus; & alone");
    check("<a href=\"https://pay.example/42\">Оплатить</a>", "Оплатить (https://pay.example/42)");
    check("<a href='https://x.example'>https://x.example</a>", "https://x.example");
    check("<a href=\"mailto:a@b.example\">write</a> <a href=#top>up</a>", "write up");
    check("a<!-- hidden <b>x</b> -->b<script>alert(1)</script>c", "abc");
    check("x < y and y > z", "x < y and y > z");
    check("<p>unterminated <b", "unterminated");
    check("&#0;&#xD800;&#99999999;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    check("soft&shy;hyphen", "softhyphen");
    check("<img src=\"cid:logo@x\" alt=\"Logo\">Text", "Text");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_and_spaces),
        cmocka_unit_test(test_entities_links_and_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
