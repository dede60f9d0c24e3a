/* sb_mime_parse on hand-made messages, one concern per test: charsets to
 * UTF-8, RFC 2047 headers, RFC 2231 file names, inline cid images, nested
 * multiparts, the external id without a Message-ID, broken boundaries,
 * lying charsets, garbage; and the classifier on small cases (RFC 3834
 * headers, vacation subjects, a DSN with hard/soft class and the original
 * Message-ID). The sisimai corpus is test_mailclass.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/mime.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse a copy of exactly len bytes, so ASan sees a read past the end. */
static struct sb_inbound *parse_n(const char *raw, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, raw, len);
    struct sb_inbound *in = NULL;
    char err[256] = "";
    assert_int_equal(sb_mime_parse(copy, len, &in, err, sizeof err), SB_OK);
    free(copy);
    assert_non_null(in);
    /* always: the raw bytes, an external id, a classification */
    assert_int_equal(in->raw_len, len);
    assert_memory_equal(in->raw, raw, len ? len : 0);
    assert_non_null(in->external_id);
    assert_non_null(json_object_get(in->meta, "classification"));
    assert_int_equal(in->kind, SB_IK_EMAIL);
    assert_int_equal(in->direction, SB_DIR_IN);
    assert_int_equal(in->channel_id, 0);
    return in;
}

static struct sb_inbound *parse(const char *raw)
{
    return parse_n(raw, strlen(raw));
}

static int utf8_ok(const char *s)
{
    if (!s)
        return 1;
    char *out = NULL;
    size_t n = 0;
    int fb = 0;
    /* sb_mime_to_utf8 of valid UTF-8 is the identity without fallback */
    if (sb_mime_to_utf8("utf-8", s, strlen(s), &out, &n, &fb) != SB_OK)
        return 0;
    int same = n == strlen(s) && !memcmp(out, s, n) && !fb;
    free(out);
    return same;
}

static const char *meta_str(const struct sb_inbound *in, const char *obj, const char *key)
{
    json_t *o = obj ? json_object_get(in->meta, obj) : in->meta;
    json_t *v = o ? json_object_get(o, key) : NULL;
    return v ? json_string_value(v) : NULL;
}

static void test_headers_and_identity(void **state)
{
    (void)state;
    struct sb_inbound *in = parse(
        "Return-Path: <anna@example.ru>\r\n"
        "From: =?UTF-8?B?0JDQvdC90LA=?= =?UTF-8?B?INCh0LzQuNGA0L3QvtCy0LA=?= "
        "<Anna@Example.RU>\r\n"
        "To: Sales <sales@company.example>, \"Bob\" <bob@company.example>\r\n"
        "Cc: carol@company.example\r\n"
        "Reply-To: other@example.ru\r\n"
        "Subject: =?UTF-8?Q?=D0=A1=D1=87=D1=91=D1=82?= =?UTF-8?B?INC90LAg0L7Qv9C70LDRgtGD?=\r\n"
        "Date: Tue, 3 Mar 2026 14:05:09 +0300\r\n"
        "Message-ID: <abc.123@mail.example.ru>\r\n"
        "In-Reply-To: <q1@company.example>\r\n"
        "References: <q0@company.example>\r\n <q1@company.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Здравствуйте!\r\n");
    assert_string_equal(in->subject, "Счёт на оплату");
    assert_string_equal(in->display_name, "Анна Смирнова");
    assert_string_equal(in->sender, "Анна Смирнова <Anna@Example.RU>");
    assert_int_equal(in->nids, 1);
    assert_int_equal(in->ids[0].kind, SB_ID_EMAIL);
    assert_string_equal(in->ids[0].raw, "Anna@Example.RU");
    assert_string_equal(in->message_id, "abc.123@mail.example.ru");
    assert_string_equal(in->external_id, "abc.123@mail.example.ru");
    assert_string_equal(in->in_reply_to, "q1@company.example");
    assert_int_equal(in->nreferences, 2);
    assert_string_equal(in->references[0], "q0@company.example");
    assert_string_equal(in->references[1], "q1@company.example");
    /* 2026-03-03 11:05:09 UTC */
    assert_int_equal(in->occurred_at_us, INT64_C(1772535909) * 1000000);
    assert_string_equal(in->text, "Здравствуйте!\r\n");
    assert_null(in->html);
    json_t *to = json_object_get(in->meta, "to");
    assert_int_equal(json_array_size(to), 2);
    assert_string_equal(json_string_value(json_array_get(to, 0)), "Sales <sales@company.example>");
    assert_string_equal(json_string_value(json_array_get(json_object_get(in->meta, "cc"), 0)),
                        "carol@company.example");
    assert_string_equal(json_string_value(json_array_get(json_object_get(in->meta, "reply_to"), 0)),
                        "other@example.ru");
    assert_string_equal(meta_str(in, NULL, "classification"), "ordinary");
    assert_int_equal(in->flags, 0);
    sb_inbound_free(&in);
}

struct charset_case {
    const char *charset;
    const char *bytes;
    const char *utf8;
};

static void test_charsets(void **state)
{
    (void)state;
    static const struct charset_case cases[] = {
        {"koi8-r", "\xf0\xd2\xc9\xd7\xc5\xd4\x2c\x20\xcd\xc9\xd2", "Привет, мир"},
        {"windows-1251", "\xd1\xf7\xb8\xf2\x20\xed\xe0\x20\xee\xef\xeb\xe0\xf2\xf3",
         "Счёт на оплату"},
        {"iso-2022-jp", "\x1b\x24\x42\x24\x33\x24\x73\x24\x4b\x24\x41\x24\x4f\x1b\x28\x42",
         "こんにちは"},
        {"gb2312", "\xc4\xe3\xba\xc3\xa3\xac\xca\xc0\xbd\xe7", "你好，世界"},
        {"GBK", "\xc4\xe3\xba\xc3", "你好"},
        {"iso-8859-5", "\xbf\xe0\xd8\xd2\xd5\xe2", "Привет"},
        {"iso-8859-1", "caf\xe9", "café"},
        {"us-ascii", "plain", "plain"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char raw[1024];
        /* the body, and the subject as an RFC 2047 Q word in the same charset */
        char q[256] = "";
        for (const unsigned char *p = (const unsigned char *)cases[i].bytes; *p; p++)
            snprintf(q + strlen(q), sizeof q - strlen(q), "=%02X", *p);
        snprintf(raw, sizeof raw,
                 "From: a@example.com\nSubject: =?%s?Q?%s?=\nMessage-ID: <c%zu@x>\n"
                 "Content-Type: text/plain; charset=\"%s\"\nContent-Transfer-Encoding: 8bit\n\n%s",
                 cases[i].charset, q, i, cases[i].charset, cases[i].bytes);
        struct sb_inbound *in = parse(raw);
        if (strcmp(in->text, cases[i].utf8) != 0 || strcmp(in->subject, cases[i].utf8) != 0)
            fail_msg("%s: text \"%s\" subject \"%s\", expected \"%s\"", cases[i].charset, in->text,
                     in->subject, cases[i].utf8);
        if (json_object_get(in->meta, "charset_fallback"))
            fail_msg("%s: charset_fallback set", cases[i].charset);
        sb_inbound_free(&in);
    }
}

static void test_raw_8bit_headers(void **state)
{
    (void)state;
    /* Old mailers put raw windows-1251 / koi8-r bytes in headers: the
     * message's own charset reads them. */
    struct sb_inbound *in = parse("From: \xc8\xe2\xe0\xed <ivan@example.ru>\nMessage-ID: <r1@x>\n"
                                  "Subject: \xd1\xf7\xb8\xf2 \xed\xe0 \xee\xef\xeb\xe0\xf2\xf3\n"
                                  "Content-Type: text/plain; charset=windows-1251\n\n\xc4\xe0\n");
    assert_string_equal(in->subject, "Счёт на оплату");
    assert_string_equal(in->display_name, "Иван");
    assert_string_equal(in->sender, "Иван <ivan@example.ru>");
    assert_string_equal(in->text, "Да\n");
    assert_null(json_object_get(in->meta, "charset_fallback"));
    sb_inbound_free(&in);
    in = parse("From: a@example.ru\nMessage-ID: <r2@x>\nSubject: \xf0\xd2\xc9\xd7\xc5\xd4\n"
               "Content-Type: multipart/alternative; boundary=b\n\n"
               "--b\nContent-Type: text/plain; charset=koi8-r\n\nx\n--b--\n");
    assert_string_equal(in->subject, "Привет");
    sb_inbound_free(&in);
    /* ids and addresses with stray 8-bit bytes still come out as UTF-8:
     * they go to utf8mb4 columns */
    in = parse("From: Ann <ann\xff@example.ru>\nMessage-ID: <id\xfe@x>\n"
               "In-Reply-To: <p\x80@x>\nReferences: <r\xe9@x>\nTo: b\xff@example.ru\n\nx\n");
    assert_true(utf8_ok(in->message_id));
    assert_true(utf8_ok(in->external_id));
    assert_true(utf8_ok(in->in_reply_to));
    assert_true(utf8_ok(in->references[0]));
    assert_true(utf8_ok(in->sender));
    assert_int_equal(in->nids, 1);
    assert_true(utf8_ok(in->ids[0].raw));
    assert_string_equal(in->message_id, "idþ@x");
    char *dump = json_dumps(in->meta, 0);
    assert_non_null(dump); /* jansson refuses invalid UTF-8: nothing was dropped */
    assert_non_null(strstr(dump, "example.ru"));
    free(dump);
    sb_inbound_free(&in);
    /* valid UTF-8 stays UTF-8 whatever the body says */
    in = parse("From: a@example.ru\nMessage-ID: <r3@x>\nSubject: \xd0\x94\xd0\xb0\n"
               "Content-Type: text/plain; charset=koi8-r\n\nx\n");
    assert_string_equal(in->subject, "Да");
    sb_inbound_free(&in);
}

static void test_rfc2047_subjects(void **state)
{
    (void)state;
    /* A character split across two B words, a koi8-r word next to a utf-8
     * one, an encoded word inside plain text, raw 8-bit UTF-8. */
    static const char *const cases[][2] = {
        {"=?UTF-8?B?0J/RgNC4?= =?UTF-8?B?0LLQtdGC?=", "Привет"},
        {"=?UTF-8?B?0J/R?= =?UTF-8?B?gNC40LLQtdGC?=", "Привет"},
        {"=?koi8-r?Q?=F0=D2=C9=D7=C5=D4?= =?utf-8?Q?_=D0=BC=D0=B8=D1=80?=", "Привет мир"},
        {"Re: =?UTF-8?Q?=D0=97=D0=B0=D0=BA=D0=B0=D0=B7?= 42", "Re: Заказ 42"},
        {"=?utf-8*ru?Q?=D0=94=D0=B0?=", "Да"},
        {"\xd0\x97\xd0\xb0\xd0\xba\xd0\xb0\xd0\xb7", "Заказ"},
        {"=?unknown-charset?Q?abc?=", "abc"},
        {"=?UTF-8?B?broken", "=?UTF-8?B?broken"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = NULL;
        assert_int_equal(sb_mime_decode_header(cases[i][0], strlen(cases[i][0]), &out, NULL),
                         SB_OK);
        if (strcmp(out, cases[i][1]) != 0)
            fail_msg("\"%s\" -> \"%s\", expected \"%s\"", cases[i][0], out, cases[i][1]);
        free(out);
    }
}

static void test_rfc2231_filename(void **state)
{
    (void)state;
    struct sb_inbound *in =
        parse("From: a@example.com\nMessage-ID: <f@x>\nSubject: files\n"
              "Content-Type: multipart/mixed; boundary=\"b1\"\n\n"
              "--b1\nContent-Type: text/plain; charset=utf-8\n\nsee attached\n"
              "--b1\nContent-Type: application/pdf\n"
              "Content-Disposition: attachment;\n"
              " filename*0*=UTF-8''%D0%94%D0%BE%D0%B3%D0%BE%D0%B2%D0%BE%D1%80%20;\n"
              " filename*1*=%D0%BF%D0%BE%D1%81%D1%82%D0%B0%D0%B2%D0%BA%D0%B8.pdf\n"
              "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
              "--b1\nContent-Type: application/pdf; name=\"=?UTF-8?B?0KHRh9GR0YIg4oSWNS5wZGY=?=\"\n"
              "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
              "--b1\nContent-Type: text/plain; name*=koi8-r''%F0%D2%C9%D7%C5%D4.txt\n"
              "Content-Disposition: attachment\n\nhello\n"
              "--b1\nContent-Type: text/plain\n"
              "Content-Disposition: inline; filename=notes.txt\n\nan attached text file\n"
              "--b1--\n");
    assert_string_equal(in->text,
                        "see attached"); /* the newline before a boundary is the boundary's */
    assert_int_equal(in->nattachments, 4);
    assert_string_equal(in->attachments[0].filename, "Договор поставки.pdf");
    assert_string_equal(in->attachments[0].content_type, "application/pdf");
    assert_int_equal(in->attachments[0].size, 9);
    assert_memory_equal(in->attachments[0].data, "%PDF-1.4\n", 9);
    assert_false(in->attachments[0].inline_part);
    assert_string_equal(in->attachments[1].filename, "Счёт №5.pdf");
    assert_string_equal(in->attachments[2].filename, "Привет.txt");
    assert_string_equal(in->attachments[2].content_type, "text/plain");
    assert_string_equal(in->attachments[3].filename, "notes.txt");
    assert_true(in->attachments[3].inline_part);
    sb_inbound_free(&in);
    /* a message that is one named text part shows it as its text */
    in = parse("From: a@example.com\nMessage-ID: <f2@x>\n"
               "Content-Type: text/plain; charset=utf-8; name=body.txt\n\nthe text\n");
    assert_string_equal(in->text, "the text\n");
    assert_int_equal(in->nattachments, 0);
    sb_inbound_free(&in);
}

static void test_nested_multipart_and_cid(void **state)
{
    (void)state;
    struct sb_inbound *in =
        parse("From: \"Shop\" <shop@example.com>\nMessage-ID: <n@x>\nSubject: nested\n"
              "MIME-Version: 1.0\n"
              "Content-Type: multipart/mixed; boundary=outer\n\n"
              "preamble is ignored\n"
              "--outer\n"
              "Content-Type: multipart/related; boundary=\"rel\"\n\n"
              "--rel\n"
              "Content-Type: multipart/alternative; boundary=\"alt\"\n\n"
              "--alt\n"
              "Content-Type: text/plain; charset=windows-1251\n"
              "Content-Transfer-Encoding: quoted-printable\n\n"
              "=D1=F7=B8=F2 =\nready\n"
              "--alt\n"
              "Content-Type: text/html; charset=utf-8\n"
              "Content-Transfer-Encoding: base64\n\n"
              "PHA+PGltZyBzcmM9ImNpZDpsb2dvQHNob3AiPjwvcD4=\n"
              "--alt--\n"
              "--rel\n"
              "Content-Type: image/png\n"
              "Content-ID: <logo@shop>\n"
              "Content-Disposition: inline\n"
              "Content-Transfer-Encoding: base64\n\n"
              "iVBORw0KGgo=\n"
              "--rel--\n"
              "--outer\n"
              "Content-Type: application/octet-stream; name=data.bin\n"
              "Content-Transfer-Encoding: base64\n\n"
              "AAECAw==\n"
              "--outer--\n");
    assert_string_equal(in->text, "Счёт ready");
    assert_string_equal(in->html, "<p><img src=\"cid:logo@shop\"></p>");
    assert_int_equal(in->nattachments, 2);
    const struct sb_inbound_attachment *img = &in->attachments[0];
    assert_string_equal(img->content_type, "image/png");
    assert_string_equal(img->content_id, "logo@shop");
    assert_true(img->inline_part);
    assert_int_equal(img->size, 8);
    assert_memory_equal(img->data, "\x89PNG\r\n\x1a\n", 8);
    const struct sb_inbound_attachment *bin = &in->attachments[1];
    assert_string_equal(bin->filename, "data.bin");
    assert_null(bin->content_id);
    assert_false(bin->inline_part);
    assert_int_equal(bin->size, 4);
    assert_memory_equal(bin->data, "\x00\x01\x02\x03", 4);
    assert_string_equal(in->sender, "Shop <shop@example.com>");
    sb_inbound_free(&in);
}

static void test_html_only(void **state)
{
    (void)state;
    struct sb_inbound *in = parse("From: a@example.com\nMessage-ID: <h1@x>\n"
                                  "Content-Type: text/html; charset=windows-1251\n\n"
                                  "<html><body><p>\xd1\xf7\xb8\xf2 &#8470;5</p>"
                                  "<p><a href=\"https://pay.example\">Pay</a></p></body></html>");
    assert_non_null(in->html);
    assert_string_equal(in->text, "Счёт №5\n\nPay (https://pay.example)");
    assert_true(json_is_true(json_object_get(in->meta, "text_from_html")));
    sb_inbound_free(&in);
}

static void test_no_message_id(void **state)
{
    (void)state;
    const char *raw = "From: a@example.com\nSubject: no id\n\nbody\n";
    struct sb_inbound *in = parse(raw);
    assert_null(in->message_id);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)raw, strlen(raw));
    char hex[2 * sizeof h + 1];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    char want[8 + sizeof hex];
    snprintf(want, sizeof want, "sha256:%s", hex);
    assert_string_equal(in->external_id, want);
    assert_string_equal(in->text, "body\n");
    sb_inbound_free(&in);
    /* a Message-ID without <> is still the id */
    in = parse("From: a@example.com\nMessage-Id: bare-id@host\n\nx\n");
    assert_string_equal(in->external_id, "bare-id@host");
    sb_inbound_free(&in);
}

static void test_broken_boundary(void **state)
{
    (void)state;
    /* The declared boundary never appears: the real one is found again. */
    struct sb_inbound *in = parse("From: a@example.com\nMessage-ID: <bb1@x>\n"
                                  "Content-Type: multipart/mixed; boundary=\"declared\"\n\n"
                                  "--actual\nContent-Type: text/plain\n\nfirst part text\n"
                                  "--actual\nContent-Type: text/html\n\n<b>second</b>\n"
                                  "--actual--\n");
    assert_non_null(in->text);
    assert_non_null(strstr(in->text, "first part text"));
    assert_non_null(in->html);
    assert_non_null(strstr(in->html, "<b>second</b>"));
    sb_inbound_free(&in);
    /* No boundary at all: the body is kept whole as the text. */
    in = parse("From: a@example.com\nMessage-ID: <bb2@x>\n"
               "Content-Type: multipart/alternative\n\n"
               "just some text that was never split\n");
    assert_non_null(in->text);
    assert_non_null(strstr(in->text, "just some text that was never split"));
    sb_inbound_free(&in);
    /* An unterminated multipart: what is there is kept. */
    in = parse("From: a@example.com\nMessage-ID: <bb3@x>\n"
               "Content-Type: multipart/mixed; boundary=b\n\n"
               "--b\nContent-Type: text/plain\n\ncut short here");
    assert_non_null(in->text);
    assert_non_null(strstr(in->text, "cut short here"));
    sb_inbound_free(&in);
}

static void test_lying_charset(void **state)
{
    (void)state;
    /* Declared UTF-8, really windows-1251: every byte survives as a
     * windows-1252 character and the text is valid UTF-8. */
    struct sb_inbound *in = parse("From: a@example.com\nMessage-ID: <l1@x>\n"
                                  "Subject: \xcf\xf0\xe8\xe2\xe5\xf2\n"
                                  "Content-Type: text/plain; charset=utf-8\n\n"
                                  "ok \xcf\xf0\xe8\xe2\xe5\xf2 \xd0\x94\x80 end\n");
    assert_true(utf8_ok(in->text));
    assert_true(utf8_ok(in->subject));
    assert_string_equal(in->text, "ok Ïðèâåò Д€ end\n");
    assert_string_equal(in->subject, "Ïðèâåò");
    assert_true(json_is_true(json_object_get(in->meta, "charset_fallback")));
    sb_inbound_free(&in);
    /* A charset nobody knows, and bytes invalid in the declared one. */
    in = parse("From: a@example.com\nMessage-ID: <l2@x>\n"
               "Content-Type: text/plain; charset=x-no-such-charset\n\n"
               "caf\xe9\n");
    assert_string_equal(in->text, "café\n");
    assert_true(json_is_true(json_object_get(in->meta, "charset_fallback")));
    sb_inbound_free(&in);
    in = parse("From: a@example.com\nMessage-ID: <l3@x>\n"
               "Content-Type: text/plain; charset=iso-2022-jp\n\n"
               "abc\xff\xfe"
               "def\n");
    assert_true(utf8_ok(in->text));
    assert_string_equal(in->text, "abcÿþdef\n");
    sb_inbound_free(&in);
    /* NUL bytes never cut the text */
    static const char nul[] = "From: a@example.com\nMessage-ID: <l4@x>\n\nbefore\0after\n";
    in = parse_n(nul, sizeof nul - 1);
    assert_string_equal(in->text, "before\xef\xbf\xbd"
                                  "after\n");
    sb_inbound_free(&in);
}

static void test_garbage(void **state)
{
    (void)state;
    static const char junk[] = "\x00\x01\xff\xfe\x80 this is not mail at all \xc3\x28\n\x1b[0m";
    struct sb_inbound *in = parse_n(junk, sizeof junk - 1);
    assert_true(in->flags & SB_IN_PARSE_ERROR);
    assert_non_null(in->parse_error);
    assert_true(utf8_ok(in->text));
    assert_true(!strncmp(in->external_id, "sha256:", 7));
    sb_inbound_free(&in);
    in = parse_n("", 0);
    assert_true(in->flags & SB_IN_PARSE_ERROR);
    assert_string_equal(in->parse_error, "empty message");
    sb_inbound_free(&in);
    /* headers only, no body, no blank line */
    in = parse("From: a@example.com\nSubject: only headers");
    assert_false(in->flags & SB_IN_PARSE_ERROR);
    assert_string_equal(in->subject, "only headers");
    sb_inbound_free(&in);
    /* deep nesting does not exhaust the stack */
    size_t cap = 200 * 64 + 256, len = 0;
    char *deep = malloc(cap);
    assert_non_null(deep);
    len += (size_t)snprintf(deep, cap, "From: a@example.com\nMessage-ID: <deep@x>\n");
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(deep + len, cap - len,
                                "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
    len += (size_t)snprintf(deep + len, cap - len, "Content-Type: text/plain\n\ndeep\n");
    in = parse_n(deep, len);
    free(deep);
    assert_false(in->flags & SB_IN_PARSE_ERROR);
    sb_inbound_free(&in);
    /* 50,000 nested parts would take libetpan minutes or overflow its stack:
     * kept raw, flagged, the body as text, at once. */
    for (size_t k = 0; k < 2; k++) {
        cap = 50000 * 64 + 256;
        len = 0;
        deep = malloc(cap);
        assert_non_null(deep);
        len += (size_t)snprintf(deep, cap, "From: a@example.com\nMessage-ID: <deeper@x>\n");
        for (int i = 0; i < 50000; i++)
            len += k == 0 ? (size_t)snprintf(deep + len, cap - len,
                                             "Content-Type: multipart/mixed; "
                                             "boundary=\"b%d\"\n\n--b%d\n",
                                             i, i)
                          : (size_t)snprintf(deep + len, cap - len,
                                             "Content-Type: message/rfc822\n\n");
        len += (size_t)snprintf(deep + len, cap - len, "Content-Type: text/plain\n\ndeep\n");
        in = parse_n(deep, len);
        free(deep);
        assert_true(in->flags & SB_IN_PARSE_ERROR);
        assert_non_null(strstr(in->parse_error, "too complex"));
        assert_non_null(in->text);
        assert_string_equal(in->external_id, "deeper@x");
        sb_inbound_free(&in);
    }
}

static void test_auto_replies(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"Auto-Submitted: auto-replied\nSubject: Re: order\n", "auto_reply"},
        {"Auto-Submitted: no\nSubject: Re: order\n", "ordinary"},
        {"X-Autoreply: yes\nSubject: Re: order\n", "auto_reply"},
        {"X-Autorespond: Out\nSubject: Re: order\n", "auto_reply"},
        {"Precedence: bulk\nSubject: News\n", "auto_reply"},
        {"Precedence: list\nSubject: News\n", "ordinary"},
        {"Subject: Out of Office: back on Monday\n", "auto_reply"},
        {"Subject: Automatic reply: order 5\n", "auto_reply"},
        {"Subject: Auto: order 5\n", "auto_reply"},
        {"Subject: =?UTF-8?B?0JDQstGC0L7QvtGC0LLQtdGCOiDQt9Cw0LrQsNC3?=\n", "auto_reply"},
        {"Subject: =?UTF-8?B?0J3QtdGCINC90LAg0LzQtdGB0YLQtQ==?=\n", "auto_reply"},
        {"Subject: Re: Out of office hours support?\n", "ordinary"},
        {"Subject: Fwd: Automatic reply: order 5\n", "ordinary"},
        /* Outlook sets this on ordinary mail too: never enough alone */
        {"X-Auto-Response-Suppress: All\nSubject: Re: order\n", "ordinary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char raw[1024];
        snprintf(raw, sizeof raw, "From: a@example.com\nMessage-ID: <ar%zu@x>\n%s\nbody\n", i,
                 cases[i][0]);
        struct sb_inbound *in = parse(raw);
        const char *cls = meta_str(in, NULL, "classification");
        if (strcmp(cls, cases[i][1]) != 0)
            fail_msg("%s-> %s, expected %s", cases[i][0], cls, cases[i][1]);
        assert_int_equal(!!(in->flags & SB_IN_AUTO_REPLY), !strcmp(cases[i][1], "auto_reply"));
        if (!strcmp(cls, "auto_reply"))
            assert_non_null(meta_str(in, NULL, "auto_reply"));
        sb_inbound_free(&in);
    }
}

static void test_bounces(void **state)
{
    (void)state;
    struct sb_inbound *in =
        parse("From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
              "To: campaigns@company.example\nMessage-ID: <dsn1@mx>\n"
              "Subject: Undelivered Mail Returned to Sender\n"
              "Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n"
              "--r\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
              "--r\nContent-Type: message/delivery-status\n\n"
              "Reporting-MTA: dns; mx.example.net\n\n"
              "Final-Recipient: rfc822; Gone@Example.org\nAction: failed\nStatus: 5.1.1\n"
              "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: "
              "User unknown\n"
              "--r\nContent-Type: text/rfc822-headers\n\n"
              "From: campaigns@company.example\nTo: gone@example.org\n"
              "Message-ID: <camp-42-7@company.example>\nSubject: Offer\n"
              "--r--\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "bounce");
    assert_true(in->flags & SB_IN_BOUNCE);
    assert_false(in->flags & SB_IN_AUTO_REPLY);
    assert_string_equal(meta_str(in, "bounce", "recipient"), "gone@example.org");
    assert_string_equal(meta_str(in, "bounce", "status"), "5.1.1");
    assert_string_equal(meta_str(in, "bounce", "class"), "hard");
    assert_string_equal(meta_str(in, "bounce", "original_message_id"), "camp-42-7@company.example");
    assert_non_null(strstr(meta_str(in, "bounce", "diagnostic"), "User unknown"));
    sb_inbound_free(&in);

    /* qmail, no DSN: recipient from the "<addr>:" line, mailbox full is soft */
    in = parse("From: MAILER-DAEMON@mx.example.net\nTo: campaigns@company.example\n"
               "Message-ID: <q1@mx>\nSubject: failure notice\n\n"
               "Hi. This is the qmail-send program at mx.example.net.\n"
               "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
               "<full@example.org>:\n"
               "Remote host said: 552 5.2.2 Mailbox full, quota exceeded\n\n"
               "--- Below this line is a copy of the message.\n\n"
               "From: campaigns@company.example\nTo: full@example.org\n"
               "Message-ID: <camp-42-8@company.example>\n\nOffer\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "bounce");
    assert_string_equal(meta_str(in, "bounce", "recipient"), "full@example.org");
    assert_string_equal(meta_str(in, "bounce", "status"), "5.2.2");
    assert_string_equal(meta_str(in, "bounce", "class"), "soft");
    sb_inbound_free(&in);

    /* Russian MTA text, 4xx */
    in = parse(
        "From: postmaster@mail.example.ru\nTo: campaigns@company.example\n"
        "Message-ID: <ru1@mx>\n"
        "Subject: =?UTF-8?B?0J3QtdC00L7RgdGC0LDQstC70LXQvdC90L7QtSDRgdC+0L7QsdGJ0LXQvdC40LU=?=\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Не удалось доставить сообщение по адресу ivan@example.ru\n"
        "451 4.7.1 Greylisting, try again later\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "bounce");
    assert_string_equal(meta_str(in, "bounce", "recipient"), "ivan@example.ru");
    assert_string_equal(meta_str(in, "bounce", "class"), "soft");
    sb_inbound_free(&in);

    /* A client whose order was not delivered, and a client forwarding a
     * bounce to ask for help, are clients writing: not bounces */
    in = parse("From: Ivan <ivan@example.ru>\nTo: shop@company.example\nMessage-ID: <p2@x>\n"
               "Subject: Delivery failed: order 42 not delivered\n\n"
               "My parcel could not be delivered, the courier says the address does not "
               "exist.\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "ordinary");
    sb_inbound_free(&in);
    in = parse("From: Ivan <ivan@example.ru>\nTo: support@company.example\nMessage-ID: <p3@x>\n"
               "Subject: Fwd: Undelivered Mail Returned to Sender\n\n"
               "Why does this happen?\n\n"
               "This is the mail system at host mx.example.ru.\n"
               "<boss@partner.example>: host mx.partner.example said: 550 5.1.1 User unknown\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "ordinary");
    sb_inbound_free(&in);
    /* A person writing about a returned parcel is not a bounce */
    in = parse("From: Ivan <ivan@example.ru>\nTo: shop@company.example\nMessage-ID: <p1@x>\n"
               "Subject: Returned mail order\n\nThe parcel came back, please resend.\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "ordinary");
    assert_int_equal(in->flags, 0);
    sb_inbound_free(&in);
}

static void test_complaint(void **state)
{
    (void)state;
    struct sb_inbound *in =
        parse("From: fbl@isp.example\nTo: abuse@company.example\nMessage-ID: <arf1@isp>\n"
              "Subject: Abuse report\n"
              "Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\n\n"
              "--f\nContent-Type: text/plain\n\nThis is an abuse report.\n"
              "--f\nContent-Type: message/feedback-report\n\n"
              "Feedback-Type: abuse\nUser-Agent: FBL/1.0\nVersion: 1\n"
              "Original-Rcpt-To: <reader@isp.example>\n"
              "--f\nContent-Type: message/rfc822\n\n"
              "From: campaigns@company.example\nTo: reader@isp.example\n"
              "Message-ID: <camp-1-2@company.example>\n\nOffer\n"
              "--f--\n");
    assert_string_equal(meta_str(in, NULL, "classification"), "complaint");
    assert_true(in->flags & SB_IN_BOUNCE);
    assert_string_equal(meta_str(in, "complaint", "recipient"), "reader@isp.example");
    assert_string_equal(meta_str(in, "complaint", "feedback_type"), "abuse");
    assert_true(json_is_true(json_object_get(json_object_get(in->meta, "complaint"), "suppress")));
    assert_string_equal(meta_str(in, "complaint", "original_message_id"),
                        "camp-1-2@company.example");
    /* the returned message is kept as an attachment */
    assert_int_equal(in->nattachments, 1);
    assert_string_equal(in->attachments[0].content_type, "message/rfc822");
    sb_inbound_free(&in);
}

static void test_to_utf8(void **state)
{
    (void)state;
    char *out = NULL;
    size_t n = 0;
    int fb = 0;
    assert_int_equal(sb_mime_to_utf8("windows-1251", "\xc0\xe1\xe2", 3, &out, &n, &fb), SB_OK);
    assert_string_equal(out, "Абв");
    assert_int_equal(n, strlen("Абв"));
    assert_int_equal(fb, 0);
    free(out);
    /* an empty input gives an empty string, not NULL */
    assert_int_equal(sb_mime_to_utf8("koi8-r", "", 0, &out, &n, &fb), SB_OK);
    assert_string_equal(out, "");
    free(out);
    /* truncated multibyte at the end of a GB18030 text */
    fb = 0;
    assert_int_equal(sb_mime_to_utf8("gb2312", "\xc4\xe3\xba", 3, &out, &n, &fb), SB_OK);
    assert_true(utf8_ok(out));
    assert_int_equal(fb, 1);
    assert_int_equal(strncmp(out, "你", strlen("你")), 0);
    free(out);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_and_identity),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_rfc2047_subjects),
        cmocka_unit_test(test_raw_8bit_headers),
        cmocka_unit_test(test_rfc2231_filename),
        cmocka_unit_test(test_nested_multipart_and_cid),
        cmocka_unit_test(test_html_only),
        cmocka_unit_test(test_no_message_id),
        cmocka_unit_test(test_broken_boundary),
        cmocka_unit_test(test_lying_charset),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_auto_replies),
        cmocka_unit_test(test_bounces),
        cmocka_unit_test(test_complaint),
        cmocka_unit_test(test_to_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
