/* The pure rules of attachments.h: what type bytes are, which files may be
 * shown inline, safe names, RFC 6266 Content-Disposition; and e-mail with
 * files (multipart/mixed) parsing back to the same names and bytes, binary
 * ones included, with every line within limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/attachments.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/mailcompose.h"
#include "switchboard/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U(s) (const unsigned char *)(s), sizeof(s) - 1

static void types_are_sniffed(void **state)
{
    (void)state;
    assert_string_equal(sb_att_sniff(U("\x89PNG\r\n\x1a\nxxxx"), "text/plain"), "image/png");
    assert_string_equal(sb_att_sniff(U("\xff\xd8\xff\xe0"), NULL), "image/jpeg");
    assert_string_equal(sb_att_sniff(U("GIF89a..."), "application/octet-stream"), "image/gif");
    assert_string_equal(sb_att_sniff(U("RIFF\0\0\0\0WEBPVP8 "), ""), "image/webp");
    assert_string_equal(sb_att_sniff(U("%PDF-1.7"), "application/pdf"), "application/pdf");
    /* A declared image that is not one, HTML and SVG are never stored as such. */
    assert_string_equal(sb_att_sniff(U("hello"), "image/png"), "application/octet-stream");
    assert_string_equal(sb_att_sniff(U("<html>"), "text/html"), "application/octet-stream");
    assert_string_equal(sb_att_sniff(U("<svg/>"), "image/svg+xml"), "application/octet-stream");
    /* Office files are ZIPs: their own type is kept. */
    const char *docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    assert_string_equal(sb_att_sniff(U("PK\x03\x04...."), docx), docx);
    assert_string_equal(sb_att_sniff(U("PK\x03\x04...."), "image/png"), "application/zip");
    /* Declared types without magic are kept when listed; text must not be binary. */
    assert_string_equal(sb_att_sniff(U("a,b\n1,2\n"), "Text/CSV; charset=utf-8"), "text/csv");
    assert_string_equal(sb_att_sniff((const unsigned char *)"a\0b", 3, "text/plain"),
                        "application/octet-stream");
    assert_string_equal(sb_att_served_type("text/html"), "application/octet-stream");
    assert_string_equal(sb_att_served_type("image/PNG"), "image/png");
    assert_true(sb_att_inline_ok("image/png", U("\x89PNG\r\n\x1a\nxxxx")));
    assert_false(sb_att_inline_ok("image/jpeg", U("\x89PNG\r\n\x1a\nxxxx")));
    assert_false(sb_att_inline_ok("application/pdf", U("%PDF-1.7")));
    assert_false(sb_att_inline_ok("image/svg+xml", U("<svg/>")));
}

static void names_are_cleaned(void **state)
{
    (void)state;
    char out[256];
    sb_att_filename_clean("C:\\Users\\a\\..\\отчёт.pdf", out, sizeof out);
    assert_string_equal(out, "отчёт.pdf");
    sb_att_filename_clean("../../etc/passwd", out, sizeof out);
    assert_string_equal(out, "passwd");
    sb_att_filename_clean("a\r\nb\"c\x7f.txt", out, sizeof out);
    assert_string_equal(out, "a__b_c_.txt");
    sb_att_filename_clean("bad\xff\xfe utf8.txt", out, sizeof out);
    assert_string_equal(out, "bad__ utf8.txt");
    sb_att_filename_clean("...", out, sizeof out);
    assert_string_equal(out, "file");
    sb_att_filename_clean(NULL, out, sizeof out);
    assert_string_equal(out, "file");
    /* Long names stop at 200 bytes, never inside a character. */
    char longname[600] = "";
    for (int i = 0; i < 150; i++)
        strcat(longname, "ж");
    sb_att_filename_clean(longname, out, sizeof out);
    assert_int_equal(strlen(out), 200);
    char small[8];
    sb_att_filename_clean("жжжжж", small, sizeof small);
    assert_string_equal(small, "жжж");
}

static void disposition_is_rfc6266(void **state)
{
    (void)state;
    char d[512];
    assert_int_equal(sb_att_disposition("Счёт №5.pdf", 0, d, sizeof d), SB_OK);
    assert_string_equal(d, "attachment; filename=\"____ _5.pdf\"; "
                           "filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82%20%E2%84%965.pdf");
    assert_int_equal(sb_att_disposition("a\"b\\c;d.png", 1, d, sizeof d), SB_OK);
    assert_string_equal(d, "inline; filename=\"a_b_c;d.png\"; filename*=UTF-8''a%22b%5Cc%3Bd.png");
    assert_int_equal(sb_att_disposition("x.txt", 0, d, 20), SB_ERR_TOO_LARGE);
}

/* A text reply with two files, one binary with a long Cyrillic name. */
static void mail_with_files_parses_back(void **state)
{
    (void)state;
    unsigned char bin[1000];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7);
    const char *longname = "Договор поставки кухонного гарнитура и монтажа №42 от 24.11.2026.pdf";
    struct sb_mail_file files[] = {
        {.filename = longname, .content_type = "application/pdf", .data = bin, .len = sizeof bin},
        {.filename = "a.txt",
         .content_type = "text/plain\r\nX-Evil: 1",
         .data = (const unsigned char *)"hello",
         .len = 5},
    };
    const char *to[] = {"client@example.org"};
    struct sb_mail_out m = {.from = "Shop <shop@example.com>",
                            .to = to,
                            .nto = 1,
                            .subject = "Договор",
                            .text = "Во вложении.",
                            .html = "<p>Во вложении.</p>",
                            .files = files,
                            .nfiles = 2};
    char *out = NULL, err[256] = "";
    size_t len = 0;
    assert_int_equal(sb_mail_compose(&m, &out, &len, err, sizeof err), SB_OK);
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        assert_true((unsigned char)out[i] < 0x80);
        line = out[i] == '\n' ? 0 : line + 1;
        assert_true(line <= 78);
    }
    assert_non_null(strstr(out, "Content-Type: multipart/mixed;"));
    assert_null(strstr(out, "X-Evil"));
    struct sb_inbound *in = NULL;
    assert_int_equal(sb_mime_parse((const unsigned char *)out, len, &in, err, sizeof err), SB_OK);
    assert_string_equal(in->subject, "Договор");
    assert_non_null(strstr(in->text, "Во вложении."));
    assert_non_null(in->html);
    assert_int_equal(in->nattachments, 2);
    assert_string_equal(in->attachments[0].filename, longname);
    assert_string_equal(in->attachments[0].content_type, "application/pdf");
    assert_int_equal(in->attachments[0].size, sizeof bin);
    assert_memory_equal(in->attachments[0].data, bin, sizeof bin);
    assert_string_equal(in->attachments[1].filename, "a.txt");
    assert_string_equal(in->attachments[1].content_type, "application/octet-stream");
    assert_memory_equal(in->attachments[1].data, "hello", 5);
    sb_inbound_free(&in);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(types_are_sniffed),
        cmocka_unit_test(names_are_cleaned),
        cmocka_unit_test(disposition_is_rfc6266),
        cmocka_unit_test(mail_with_files_parses_back),
    };
    return cmocka_run_group_tests_name("attachments", tests, NULL, NULL);
}
