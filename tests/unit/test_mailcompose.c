/* sb_mail_compose: every composed message parses back through sb_mime_parse
 * (the same parser inbound mail goes through) to the subject, text, html and
 * ids that went in; header injection is refused; long lines are wrapped;
 * non-ASCII subjects and names are RFC 2047 encoded; the output is 7-bit with
 * CRLF line ends and no line over 998 (bodies 76). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/mailcompose.h"
#include "switchboard/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every line ends in CRLF, no bare CR or LF, no 8-bit byte, no line over
 * max characters; returns the longest line. */
static size_t check_wire(const char *s, size_t n, size_t max)
{
    size_t line = 0, longest = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        assert_true(c < 0x80);
        assert_true(c != 0);
        if (c == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            i++;
            line = 0;
            continue;
        }
        assert_true(c != '\n');
        if (++line > longest)
            longest = line;
    }
    assert_true(longest <= max);
    assert_true(n >= 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
    return longest;
}

static struct sb_inbound *compose_parse(const struct sb_mail_out *m, char **raw_r)
{
    char *raw = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc = sb_mail_compose(m, &raw, &n, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("compose: %s", err);
    assert_int_equal(strlen(raw), n);
    check_wire(raw, n, 998);
    struct sb_inbound *in = NULL;
    assert_int_equal(sb_mime_parse((const unsigned char *)raw, n, &in, err, sizeof err), SB_OK);
    assert_null(in->parse_error);
    if (raw_r)
        *raw_r = raw;
    else
        free(raw);
    return in;
}

/* The part's body lines (after the blank line following `marker`) are at
 * most 76 characters. */
static void body_lines_76(const char *raw)
{
    const char *p = strstr(raw, "\r\n\r\n");
    assert_non_null(p);
    for (p += 4; *p;) {
        const char *e = strstr(p, "\r\n");
        if (!e)
            break;
        if (strncmp(p, "--", 2) != 0 && strncmp(p, "Content-", 8) != 0)
            assert_true(e - p <= 76);
        p = e + 2;
    }
}

static void test_roundtrip_alternative(void **state)
{
    (void)state;
    const char *to[] = {"Client Person <client@example.org>"};
    const char *refs[] = {"first@example.org", "second@example.org"};
    const char *extra[] = {"List-Unsubscribe: <mailto:u@example.com>, <https://x.example/u/t>",
                           "List-Unsubscribe-Post: List-Unsubscribe=One-Click"};
    struct sb_mail_out m = {
        .from = "Support Team <support@example.com>",
        .to = to,
        .nto = 1,
        .subject = "Re: Your order #42",
        .text = "Hello,\nyour order ships today.\n\n-- \nSupport",
        .html = "<p>Hello,</p><p>your order ships <b>today</b>.</p>",
        .message_id = "abc123@example.com",
        .in_reply_to = "second@example.org",
        .references = refs,
        .nreferences = 2,
        .extra_headers = extra,
        .nextra = 2,
    };
    char *raw = NULL;
    struct sb_inbound *in = compose_parse(&m, &raw);
    assert_string_equal(in->subject, "Re: Your order #42");
    assert_non_null(strstr(in->text, "your order ships today."));
    assert_non_null(strstr(in->text, "Hello,"));
    assert_non_null(strstr(in->html, "<b>today</b>"));
    assert_string_equal(in->message_id, "abc123@example.com");
    assert_string_equal(in->in_reply_to, "second@example.org");
    assert_int_equal(in->nreferences, 2);
    assert_string_equal(in->references[0], "first@example.org");
    assert_string_equal(in->references[1], "second@example.org");
    assert_non_null(strstr(in->sender, "support@example.com"));
    assert_non_null(strstr(raw, "Content-Type: multipart/alternative;"));
    assert_non_null(strstr(raw, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(raw, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    assert_non_null(strstr(raw, "\r\nTo: \"Client Person\" <client@example.org>\r\n"));
    assert_non_null(strstr(raw, "\r\nFrom: \"Support Team\" <support@example.com>\r\n"));
    assert_true(strncmp(raw, "Date: ", 6) == 0);
    free(raw);
    sb_inbound_free(&in);
}

static void test_text_only_generated_id(void **state)
{
    (void)state;
    const char *to[] = {"a@example.org", "b@example.org"};
    struct sb_mail_out m = {.from = "desk@company.test", .to = to, .nto = 2, .text = "Hi"};
    char *raw = NULL;
    struct sb_inbound *in = compose_parse(&m, &raw);
    assert_null(in->subject);
    /* A single 7-bit part ends with the message's final CRLF. */
    assert_true(strncmp(in->text, "Hi", 2) == 0 &&
                strspn(in->text + 2, "\r\n") == strlen(in->text + 2));
    assert_null(in->html);
    assert_non_null(in->message_id);
    const char *at = strchr(in->message_id, '@');
    assert_non_null(at);
    assert_string_equal(at + 1, "company.test");
    assert_true(at - in->message_id >= 20);
    assert_null(in->in_reply_to);
    assert_non_null(strstr(raw, "Content-Type: text/plain; charset=us-ascii\r\n"));
    assert_non_null(strstr(raw, "To: <a@example.org>,\r\n <b@example.org>\r\n"));
    free(raw);
    sb_inbound_free(&in);

    struct sb_mail_out h = {.from = "desk@company.test", .to = to, .nto = 1, .html = "<i>x</i>"};
    in = compose_parse(&h, &raw);
    assert_non_null(strstr(raw, "Content-Type: text/html;"));
    assert_non_null(strstr(in->html, "<i>x</i>"));
    free(raw);
    sb_inbound_free(&in);
}

static void test_cyrillic(void **state)
{
    (void)state;
    const char *to[] = {"Анна Смирнова <anna@example.ru>"};
    const char *subject = "Re: Вопрос по заказу №1234 — доставка в Санкт-Петербург и Москву, "
                          "пожалуйста ответьте";
    const char *text = "Здравствуйте, Анна!\nВаш заказ отправлен сегодня.\nС уважением, "
                       "Служба поддержки";
    struct sb_mail_out m = {
        .from = "Служба поддержки <support@example.ru>",
        .to = to,
        .nto = 1,
        .subject = subject,
        .text = text,
        .html = "<p>Здравствуйте, <b>Анна</b>!</p>",
    };
    char *raw = NULL;
    struct sb_inbound *in = compose_parse(&m, &raw);
    assert_string_equal(in->subject, subject);
    /* Line ends come back as the parser normalises them. */
    assert_non_null(strstr(in->text, "Здравствуйте, Анна!"));
    assert_non_null(strstr(in->text, "С уважением, Служба поддержки"));
    assert_non_null(strstr(in->html, "<b>Анна</b>"));
    assert_non_null(strstr(in->sender, "Служба поддержки"));
    assert_non_null(strstr(raw, "Subject: =?UTF-8?B?"));
    assert_non_null(strstr(raw, "charset=utf-8"));
    /* Every header line stays under 78 characters with encoded words. */
    const char *hdr_end = strstr(raw, "\r\n\r\n");
    for (const char *p = raw; p < hdr_end;) {
        const char *e = strstr(p, "\r\n");
        assert_true(e - p <= 78);
        p = e + 2;
    }
    free(raw);
    sb_inbound_free(&in);
}

static void test_long_lines_wrapped(void **state)
{
    (void)state;
    char *text = malloc(5001);
    assert_non_null(text);
    for (int i = 0; i < 5000; i++)
        text[i] = (char)('a' + i % 26);
    text[5000] = '\0';
    const char *to[] = {"x@example.org"};
    struct sb_mail_out m = {.from = "f@example.com", .to = to, .nto = 1, .text = text};
    char *raw = NULL;
    struct sb_inbound *in = compose_parse(&m, &raw);
    assert_non_null(strstr(raw, "quoted-printable"));
    body_lines_76(raw);
    assert_string_equal(in->text, text);
    free(raw);
    sb_inbound_free(&in);

    /* A long UTF-8 line with '=', trailing spaces and a leading dot. */
    char *mixed = malloc(20000);
    assert_non_null(mixed);
    mixed[0] = '\0';
    strcat(mixed, ".dot first = equals  \n");
    for (int i = 0; i < 300; i++)
        strcat(mixed, "word café ");
    strcat(mixed, "\nend");
    m.text = mixed;
    in = compose_parse(&m, &raw);
    body_lines_76(raw);
    assert_non_null(strstr(in->text, ".dot first = equals  "));
    assert_non_null(strstr(in->text, "word café word café"));
    assert_non_null(strstr(in->text, "end"));
    free(raw);
    sb_inbound_free(&in);
    free(mixed);
    free(text);
}

static void test_injection_refused(void **state)
{
    (void)state;
    const char *to[] = {"x@example.org"};
    char *raw = (char *)1;
    char err[256];
    struct sb_mail_out m = {.from = "f@example.com", .to = to, .nto = 1, .text = "t"};

    m.subject = "hello\r\nBcc: victim@example.net";
    err[0] = '\0';
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    assert_null(raw);
    assert_true(err[0]);
    m.subject = "ok";

    const char *bad_extra[] = {"X-Thing: a\nBcc: victim@example.net"};
    m.extra_headers = bad_extra;
    m.nextra = 1;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    const char *own[] = {"Subject: twice"};
    m.extra_headers = own;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    const char *noname[] = {"no colon here"};
    m.extra_headers = noname;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    m.nextra = 0;

    const char *badto[] = {"x@example.org\r\nBcc: y@example.net"};
    m.to = badto;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    const char *notaddr[] = {"nobody"};
    m.to = notaddr;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    m.to = to;

    m.message_id = "a>\r\nX: y@z";
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    m.message_id = NULL;
    m.in_reply_to = "has space@x";
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    m.in_reply_to = NULL;

    m.text = NULL;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    m.text = "t";
    m.nto = 0;
    assert_int_equal(sb_mail_compose(&m, &raw, NULL, err, sizeof err), SB_ERR_INVALID);
    assert_null(raw);
}

static void test_message_id_and_helpers(void **state)
{
    (void)state;
    char a[128], b[128], small[8];
    sb_mail_message_id("example.com", a, sizeof a);
    sb_mail_message_id("example.com", b, sizeof b);
    assert_string_not_equal(a, b);
    assert_non_null(strstr(a, "@example.com"));
    sb_mail_message_id(NULL, a, sizeof a);
    assert_non_null(strstr(a, "@switchboard.local"));
    sb_mail_message_id("example.com", small, sizeof small);
    assert_string_equal(small, "");

    sb_mail_addr_spec("\"Smith, J.\" <j.smith@example.org>", a, sizeof a);
    assert_string_equal(a, "j.smith@example.org");
    sb_mail_addr_spec("plain@example.org", a, sizeof a);
    assert_string_equal(a, "plain@example.org");
    sb_mail_addr_domain("Support <support@Mail.Example.com>", a, sizeof a);
    assert_string_equal(a, "Mail.Example.com");
    sb_mail_addr_domain("nodomain", a, sizeof a);
    assert_string_equal(a, "");

    const char *cases[][2] = {
        {"Order", "Re: Order"},
        {"Re: Order", "Re: Order"},
        {"RE: Order", "RE: Order"},
        {"re[2]: x", "re[2]: x"},
        {"AW: Frage", "AW: Frage"},
        {"", "Re:"},
        {"Ответ: вопрос", "Ответ: вопрос"},
        {"Вопрос", "Re: Вопрос"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *r = sb_mail_reply_subject(cases[i][0]);
        assert_string_equal(r, cases[i][1]);
        free(r);
    }
    char *r = sb_mail_reply_subject(NULL);
    assert_string_equal(r, "Re:");
    free(r);
}

static void text_to_html(void **state)
{
    (void)state;
    char *h = sb_mail_text_to_html("a < b & \"c\"\nline two\n> quoted <x>\n> more\nafter");
    assert_non_null(h);
    assert_non_null(strstr(h, "a &lt; b &amp; &quot;c&quot;<br>line two<br>"));
    assert_non_null(strstr(h, "<blockquote"));
    assert_non_null(strstr(h, "quoted &lt;x&gt;<br>more<br></blockquote>after"));
    assert_null(strstr(h, "<x>"));
    free(h);
}

/* A reply quotes the answered mail as mail clients do: attribution line,
 * "> " lines (">" before empty and already quoted lines), the HTML part as
 * a cite blockquote with the answered mail's own quote nested inside. */
static void reply_quote_text_and_html(void **state)
{
    (void)state;
    struct sb_mail_quote q = {
        .author = "Client Person <client@example.org>",
        .date = 1795428000, /* 2026-11-23 10:00 UTC, a Monday */
        .text =
            "When does order 42 ship?\r\n\r\nThanks & <regards>\r\n> earlier words\r\n\r\n \r\n",
    };
    char *text, *html, err[128] = "";
    assert_int_equal(
        sb_mail_reply_quote("Hello,\nit ships today.\n", &q, &text, &html, err, sizeof err), SB_OK);
    assert_string_equal(text, "Hello,\nit ships today.\n\n"
                              "On Mon, 23 Nov 2026 10:00 UTC, Client Person <client@example.org> "
                              "wrote:\n"
                              "> When does order 42 ship?\n"
                              ">\n"
                              "> Thanks & <regards>\n"
                              ">> earlier words\n");
    assert_non_null(strstr(html, "Hello,<br>it ships today.<br><br><div"));
    assert_non_null(strstr(html, "On Mon, 23 Nov 2026 10:00 UTC, Client Person "
                                 "&lt;client@example.org&gt; wrote:</div>"));
    /* one cite blockquote, the answered mail's own quote nested in it */
    const char *bq = strstr(html, "<blockquote type=\"cite\"");
    assert_non_null(bq);
    assert_non_null(strstr(bq, "When does order 42 ship?<br><br>Thanks &amp; &lt;regards&gt;<br>"
                               "<blockquote type=\"cite\""));
    assert_non_null(strstr(bq, "earlier words</blockquote></blockquote></div>"));
    assert_null(strstr(html, "<regards>"));
    free(text);
    free(html);

    /* No date, no author, a line break in the name. */
    char attr[256];
    struct sb_mail_quote nodate = {.author = "Eve\r\nBcc: x@y", .text = "x"};
    sb_mail_quote_attribution(&nodate, attr, sizeof attr);
    assert_string_equal(attr, "Eve  Bcc: x@y wrote:");
    struct sb_mail_quote anon = {.date = 1795428000, .text = "x"};
    sb_mail_quote_attribution(&anon, attr, sizeof attr);
    assert_string_equal(attr, "On Mon, 23 Nov 2026 10:00 UTC, the sender wrote:");
}

/* Nothing to quote: the reply alone, exactly as without quoting. */
static void reply_quote_nothing(void **state)
{
    (void)state;
    char *text, *html, err[128] = "";
    struct sb_mail_quote blank = {.author = "A <a@b.c>", .date = 1, .text = " \r\n\n"};
    const struct sb_mail_quote *cases[] = {NULL, &blank};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(sb_mail_reply_quote("Hi > there", cases[i], &text, &html, err, sizeof err),
                         SB_OK);
        assert_string_equal(text, "Hi > there");
        char *plain = sb_mail_text_to_html("Hi > there");
        assert_string_equal(html, plain);
        assert_null(strstr(html, "wrote:"));
        free(plain);
        free(text);
        free(html);
    }
    assert_int_equal(sb_mail_reply_quote(NULL, NULL, &text, &html, err, sizeof err),
                     SB_ERR_INVALID);
    assert_null(text);
    assert_null(html);
}

static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : 3;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

/* A long history is cut: at most SB_MAIL_QUOTE_MAX_LINES lines, at a line
 * end, marked "[…]"; one huge Cyrillic line is cut on a character. */
static void reply_quote_trimmed(void **state)
{
    (void)state;
    char *text, *html, err[128] = "";
    size_t cap = 1000 * 16;
    char *big = malloc(cap);
    assert_non_null(big);
    size_t k = 0;
    for (int i = 0; i < 1000; i++)
        k += (size_t)snprintf(big + k, cap - k, "line %04d\n", i);
    struct sb_mail_quote q = {.author = "A <a@b.c>", .date = 1795428000, .text = big};
    assert_int_equal(sb_mail_reply_quote("ok", &q, &text, &html, err, sizeof err), SB_OK);
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    /* "ok", blank, attribution, 200 quoted lines, the cut mark */
    assert_int_equal(lines, 2 + 1 + SB_MAIL_QUOTE_MAX_LINES + 1);
    assert_non_null(strstr(text, "> line 0199\n> [\xe2\x80\xa6]\n"));
    assert_null(strstr(text, "line 0200"));
    assert_non_null(strstr(html, "line 0199<br>[\xe2\x80\xa6]</blockquote>"));
    free(text);
    free(html);
    free(big);

    /* 20,000 bytes of "ж" (2 bytes each) on one line, and an odd offset. */
    big = malloc(20002);
    assert_non_null(big);
    big[0] = 'x';
    for (size_t i = 1; i + 1 < 20001; i += 2) {
        big[i] = (char)0xD0;
        big[i + 1] = (char)0xB6;
    }
    big[20001] = '\0';
    q.text = big;
    assert_int_equal(sb_mail_reply_quote("ok", &q, &text, &html, err, sizeof err), SB_OK);
    assert_true(utf8_valid(text));
    assert_true(utf8_valid(html));
    assert_true(strlen(text) < SB_MAIL_QUOTE_MAX_BYTES + 200);
    assert_non_null(strstr(text, "\n> [\xe2\x80\xa6]\n"));
    free(text);
    free(html);
    free(big);
}

/* The quoted reply composes and parses back with both parts intact. */
static void reply_quote_roundtrip(void **state)
{
    (void)state;
    struct sb_mail_quote q = {.author = "Анна Смирнова <anna@example.ru>",
                              .date = 1795428000,
                              .text = "Когда привезут кухню?\nСпасибо"};
    char *text, *html, err[128] = "";
    assert_int_equal(sb_mail_reply_quote("В пятницу.", &q, &text, &html, err, sizeof err), SB_OK);
    const char *to[] = {"anna@example.ru"};
    struct sb_mail_out m = {.from = "shop@example.com",
                            .to = to,
                            .nto = 1,
                            .subject = "Re: Доставка",
                            .text = text,
                            .html = html};
    struct sb_inbound *in = compose_parse(&m, NULL);
    assert_non_null(strstr(in->text,
                           "В пятницу.\r\n\r\nOn Mon, 23 Nov 2026 10:00 UTC, Анна Смирнова "
                           "<anna@example.ru> wrote:\r\n> Когда привезут кухню?\r\n> Спасибо"));
    assert_non_null(strstr(in->html, "<blockquote type=\"cite\""));
    assert_non_null(strstr(in->html, "Когда привезут кухню?<br>Спасибо</blockquote>"));
    sb_inbound_free(&in);
    free(text);
    free(html);
}

/* The attribution speaks the replying agent's language: Russian for "ru"
 * (any region, either separator, any case) with the date written the
 * Russian way, English for anything else. */
static void reply_quote_attribution_locale(void **state)
{
    (void)state;
    char attr[256];
    struct sb_mail_quote q = {.author = "Анна Смирнова <anna@example.ru>",
                              .date = 1795428000, /* 2026-11-23 10:00 UTC */
                              .text = "x"};
    const char *ru[] = {"ru", "ru-RU", "ru_RU", "RU"};
    for (size_t i = 0; i < sizeof ru / sizeof *ru; i++) {
        q.locale = ru[i];
        sb_mail_quote_attribution(&q, attr, sizeof attr);
        assert_string_equal(attr, "23.11.2026 10:00 UTC, Анна Смирнова <anna@example.ru> пишет:");
    }
    const char *en[] = {NULL, "", "en", "en-GB", "rus", "de", "r"};
    for (size_t i = 0; i < sizeof en / sizeof *en; i++) {
        q.locale = en[i];
        sb_mail_quote_attribution(&q, attr, sizeof attr);
        assert_string_equal(attr, "On Mon, 23 Nov 2026 10:00 UTC, Анна Смирнова "
                                  "<anna@example.ru> wrote:");
    }
    /* Single-digit day and month keep their zero; no date; no author. */
    struct sb_mail_quote early = {.author = "Bob <b@x.example>",
                                  .date = 1767337500, /* 2026-01-02 07:05 UTC */
                                  .text = "x",
                                  .locale = "ru"};
    sb_mail_quote_attribution(&early, attr, sizeof attr);
    assert_string_equal(attr, "02.01.2026 07:05 UTC, Bob <b@x.example> пишет:");
    struct sb_mail_quote nodate = {.author = "Bob <b@x.example>", .text = "x", .locale = "ru"};
    sb_mail_quote_attribution(&nodate, attr, sizeof attr);
    assert_string_equal(attr, "Bob <b@x.example> пишет:");
    struct sb_mail_quote anon = {.date = 1795428000, .text = "x", .locale = "ru"};
    sb_mail_quote_attribution(&anon, attr, sizeof attr);
    assert_string_equal(attr, "23.11.2026 10:00 UTC, отправитель пишет:");
    anon.date = 0;
    sb_mail_quote_attribution(&anon, attr, sizeof attr);
    assert_string_equal(attr, "Отправитель пишет:");

    /* The whole reply: both parts carry the Russian line. */
    q.locale = "ru";
    q.text = "Когда привезут кухню?";
    char *text, *html, err[128] = "";
    assert_int_equal(sb_mail_reply_quote("В пятницу.", &q, &text, &html, err, sizeof err), SB_OK);
    assert_string_equal(text, "В пятницу.\n\n23.11.2026 10:00 UTC, Анна Смирнова "
                              "<anna@example.ru> пишет:\n> Когда привезут кухню?\n");
    assert_non_null(strstr(html, ">23.11.2026 10:00 UTC, Анна Смирнова "
                                 "&lt;anna@example.ru&gt; пишет:</div>"));
    assert_null(strstr(html, "wrote:"));
    free(text);
    free(html);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_alternative),
        cmocka_unit_test(test_text_only_generated_id),
        cmocka_unit_test(test_cyrillic),
        cmocka_unit_test(test_long_lines_wrapped),
        cmocka_unit_test(test_injection_refused),
        cmocka_unit_test(test_message_id_and_helpers),
        cmocka_unit_test(text_to_html),
        cmocka_unit_test(reply_quote_text_and_html),
        cmocka_unit_test(reply_quote_nothing),
        cmocka_unit_test(reply_quote_trimmed),
        cmocka_unit_test(reply_quote_roundtrip),
        cmocka_unit_test(reply_quote_attribution_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
