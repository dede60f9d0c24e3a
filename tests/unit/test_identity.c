/* identity.h without a database: phone numbers in free text (the tricky rows
 * of phones.tsv pinned here too), extensions, e-mail addresses with display
 * names and RFC 2047 words, IDN domains, messenger ids, kind names, output
 * buffers at exactly their size and one byte short, concurrent callers, and
 * `switchboard identity normalize` (sb_cli_identity) with its output and exit
 * codes.
 *
 * Inputs and output buffers are malloc'd at exactly their size so that ASan
 * reports any access one byte past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/cli.h"
#include "switchboard/err.h"
#include "switchboard/identity.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dup_exact(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    assert_non_null(d);
    memcpy(d, s, n + 1);
    return d;
}

/* A buffer of exactly `len` bytes, filled with a marker so that a function
 * that fails without writing its terminator is caught too. */
static char *buf_exact(size_t len)
{
    char *b = malloc(len ? len : 1);
    assert_non_null(b);
    memset(b, 'Z', len ? len : 1);
    return b;
}

/* -- Kinds -------------------------------------------------------------- */

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[SB_ID__COUNT] = {"email",    "phone", "telegram",
                                                    "whatsapp", "viber", "other"};
    for (int k = 0; k < SB_ID__COUNT; k++) {
        assert_string_equal(sb_identity_kind_name((enum sb_identity_kind)k), names[k]);
        enum sb_identity_kind back = SB_ID__COUNT;
        char *name = dup_exact(names[k]);
        assert_int_equal(sb_identity_kind_parse(name, &back), SB_OK);
        assert_int_equal(back, k);
        free(name);
    }
    assert_string_equal(sb_identity_kind_name(SB_ID__COUNT), "unknown");
    assert_string_equal(sb_identity_kind_name((enum sb_identity_kind) - 1), "unknown");
    enum sb_identity_kind k = SB_ID_VIBER;
    const char *bad[] = {"", "Email", "EMAIL", "phone ", "mail", "unknown", "tel"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sb_identity_kind_parse(bad[i], &k), SB_ERR_INVALID);
    assert_int_equal(sb_identity_kind_parse(NULL, &k), SB_ERR_INVALID);
    assert_int_equal(k, SB_ID_VIBER); /* untouched on failure */
}

/* -- Phones ------------------------------------------------------------- */

static const struct phone_case {
    const char *region, *raw, *e164, *ext; /* e164 NULL: invalid */
} phone_cases[] = {
    /* The tricky rows of phones.tsv, kept here for checkouts without it. */
    {"RU", "8 (9161) 23-45-67", "+79161234567", ""},
    {"RU", "810 380 67 123 4567", "+380671234567", ""},
    {"UA", "8 067 123 45 67", NULL, NULL},
    {"RU", "+44 7700 900123", NULL, NULL},
    {"RU", "00 44 20 7946 0018", NULL, NULL},
    {"GB", "00 7 999 123 45 67", "+79991234567", ""},
    {"RU", "+7 999 123 45 67 89 00", NULL, NULL},
    {"RU", "89991234567890", NULL, NULL},
    {"RU", "+7 999 123 45 6", NULL, NULL},
    {"RU", "+0 999 123 4567", NULL, NULL},
    {"RU", "8 (000) 000-00-00", NULL, NULL},
    {"RU", "++7 999 123 45 67", "+79991234567", ""},
    {"RU", "+7 (999) 123--45--67", "+79991234567", ""},
    {"RU", "+7.999.123.45.67", "+79991234567", ""},
    {"RU", "８９９９１２３４５６７", "+79991234567", ""},
    {"RU", "tel:+7-999-123-45-67", "+79991234567", ""},
    {"RU", "тел.: +7 (916) 000-11-22", "+79160001122", ""},
    {"RU", "+7 916 000 11 22, звонить после 18:00", "+79160001122", ""},
    {"RU", "", NULL, NULL},
    {"RU", "abc", NULL, NULL},
    {"ZZ", "89991234567", NULL, NULL},
    {"ZZ", "+44 20 7946 0018", "+442079460018", ""},
    {NULL, "+7 999 123 45 67", "+79991234567", ""}, /* NULL region is ZZ */
    {NULL, "89991234567", NULL, NULL},
    {"", "89991234567", NULL, NULL},
    {"ru", "89991234567", "+79991234567", ""}, /* region codes in any case */
    {"US", "011 44 20 7946 0018", "+442079460018", ""},
    /* Extensions: every keyword, with and without a dot, space or comma. */
    {"RU", "+7 999 123-45-67 доб. 123", "+79991234567", "123"},
    {"RU", "+7 999 123-45-67 доб 123", "+79991234567", "123"},
    {"RU", "+7 999 123-45-67, доб. 42", "+79991234567", "42"},
    {"RU", "+7 999 123-45-67 (доб. 42)", "+79991234567", "42"},
    {"RU", "+7 999 123-45-67 ДОБ. 7", "+79991234567", "7"},
    {"RU", "8 (999) 123-45-67 ext. 5", "+79991234567", "5"},
    {"RU", "8 (999) 123-45-67 ext 5", "+79991234567", "5"},
    {"RU", "8 (999) 123-45-67 EXT.5", "+79991234567", "5"},
    {"RU", "89991234567 x5", "+79991234567", "5"},
    {"RU", "89991234567x5", "+79991234567", "5"},
    {"RU", "89991234567 #5", "+79991234567", "5"},
    {"RU", "tel:+7-999-123-45-67;ext=123", "+79991234567", "123"},
    {"RU", "8 999 123 45 67 доб. １２", "+79991234567", "12"},
    /* An extension of more than 10 digits is not one; the number stands. */
    {"RU", "89991234567 ext. 12345678901", "+79991234567", ""},
    /* A keyword without digits, or a word that only starts like one. */
    {"RU", "89991234567 xyz", "+79991234567", ""},
    {"RU", "89991234567 ext.", "+79991234567", ""},
    /* Other digits in the text do not hide the number. */
    {"RU", "Заказ 12345, тел. 89991234567", "+79991234567", ""},
    {"RU", "8 (495) 123-45-67 / 8 (916) 000-11-22", "+74951234567", ""},
    {"RU", "89991234567, 89161234567", "+79991234567", ""},
    /* Digits glued to a word are not a number; two numbers glued by a space
     * are one run, too long. */
    {"RU", "ID89991234567", NULL, NULL},
    {"RU", "89991234567 89161234567", NULL, NULL},
    /* Invalid UTF-8 around the number does not stop the search. */
    {"RU", "\xff\xfe 89991234567 \xc3", "+79991234567", ""},
    {"RU", "\n\t 8 999 123 45 67 \r\n", "+79991234567", ""},
    {"RU",
     "\xc2\xa0"
     "8 999 123 45 67\xc2\xa0",
     "+79991234567", ""},
};

static void test_phone_cases(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof phone_cases / sizeof phone_cases[0]; i++) {
        const struct phone_case *c = &phone_cases[i];
        char *raw = dup_exact(c->raw);
        char *region = c->region ? dup_exact(c->region) : NULL;
        struct sb_phone p;
        memset(&p, 'Z', sizeof p);
        char err[256] = "";
        int rc = sb_phone_normalize(raw, region, &p, err, sizeof err);
        if (c->e164) {
            if (rc != SB_OK || strcmp(p.e164, c->e164) || strcmp(p.extension, c->ext)) {
                print_error("case %zu (%s \"%s\"): rc %d '%s' ext '%s' (%s)\n", i,
                            c->region ? c->region : "NULL", c->raw, rc, rc == SB_OK ? p.e164 : "",
                            rc == SB_OK ? p.extension : "", err);
                bad++;
            }
        } else if (rc != SB_ERR_INVALID || !err[0] || p.e164[0] || p.extension[0]) {
            print_error("case %zu (%s \"%s\"): expected invalid, rc %d '%s'\n", i,
                        c->region ? c->region : "NULL", c->raw, rc, p.e164);
            bad++;
        }
        free(raw);
        free(region);
    }
    assert_int_equal(bad, 0);
}

static void test_phone_errors(void **state)
{
    (void)state;
    struct sb_phone p;
    char err[256] = "";
    assert_int_equal(sb_phone_normalize(NULL, "RU", &p, err, sizeof err), SB_ERR_INVALID);
    assert_true(err[0]);
    err[0] = '\0';
    assert_int_equal(sb_phone_normalize("89991234567", "RUS", &p, err, sizeof err), SB_ERR_INVALID);
    assert_non_null(strstr(err, "region"));
    assert_int_equal(sb_phone_normalize("89991234567", "R1", &p, NULL, 0), SB_ERR_INVALID);
    assert_int_equal(sb_phone_normalize("89991234567", "RU", NULL, NULL, 0), SB_ERR_INVALID);

    /* The message names the number that was tried, not the whole text. */
    err[0] = '\0';
    assert_int_equal(
        sb_phone_normalize("Phone: 8 (000) 000-00-00, thanks", "RU", &p, err, sizeof err),
        SB_ERR_INVALID);
    assert_non_null(strstr(err, "'8 (000) 000-00-00'"));
    /* Without a region the message says what is missing. */
    err[0] = '\0';
    assert_int_equal(sb_phone_normalize("89991234567", NULL, &p, err, sizeof err), SB_ERR_INVALID);
    assert_non_null(strstr(err, "country code"));

    /* An error buffer of one byte holds just the terminator. */
    char *tiny = buf_exact(1);
    tiny[0] = '\0';
    assert_int_equal(sb_phone_normalize("abc", "RU", &p, tiny, 1), SB_ERR_INVALID);
    assert_int_equal(tiny[0], '\0');
    free(tiny);

    /* Text longer than any phone field is refused, not scanned. */
    size_t n = 5000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, '9', n);
    big[n] = '\0';
    assert_int_equal(sb_phone_normalize(big, "RU", &p, NULL, 0), SB_ERR_INVALID);
    /* A long run under the cap: invalid, no crash. */
    big[4000] = '\0';
    assert_int_equal(sb_phone_normalize(big, "RU", &p, NULL, 0), SB_ERR_INVALID);
    free(big);
}

/* -- E-mail ------------------------------------------------------------- */

static const struct email_case {
    const char *raw, *addr, *name; /* addr NULL: invalid */
} email_cases[] = {
    {"anna@example.com", "anna@example.com", ""},
    {"  Anna.Smirnova@Example.COM \r\n", "anna.smirnova@example.com", ""},
    {"Anna@Пример.РФ", "anna@xn--e1afmkfd.xn--p1ai", ""},
    {"=?UTF-8?B?0JDQvdC90LA=?= <Anna@Пример.рф>", "anna@xn--e1afmkfd.xn--p1ai", "Анна"},
    /* Q encoding: '_' is a space, =XX a byte. */
    {"=?utf-8?q?=D0=90=D0=BD=D0=BD=D0=B0_=D0=A1=D0=BC=D0=B8=D1=80=D0=BD=D0=BE=D0=B2=D0=B0?= "
     "<anna@example.com>",
     "anna@example.com", "Анна Смирнова"},
    /* Adjacent encoded words: the white space between them goes (RFC 2047
     * §6.2), even a folded line break; a character split across two words
     * survives. */
    {"=?UTF-8?B?0JDQvdC9?= =?UTF-8?B?0LA=?= <a@example.com>", "a@example.com", "Анна"},
    {"=?UTF-8?B?0JDQvdC9?=\r\n =?UTF-8?B?0LA=?= <a@example.com>", "a@example.com", "Анна"},
    {"=?UTF-8?Q?=E2=82?= =?UTF-8?Q?=AC?= <a@example.com>", "a@example.com", "€"},
    /* Between an encoded word and plain text the space stays. */
    {"=?UTF-8?Q?Anna?= Smirnova <a@example.com>", "a@example.com", "Anna Smirnova"},
    {"Anna =?UTF-8?Q?Smirnova?= <a@example.com>", "a@example.com", "Anna Smirnova"},
    {"=?UTF-8?Q?a?= b =?UTF-8?Q?c?= <a@example.com>", "a@example.com", "a b c"},
    /* Other charsets through iconv; RFC 2231 language tags ignored. */
    {"=?windows-1251?B?wO3t4A==?= <a@example.com>", "a@example.com", "Анна"},
    {"=?KOI8-R?Q?=E1=CE=CE=C1?= <a@example.com>", "a@example.com", "Анна"},
    {"=?ISO-8859-1?Q?J=F6rg?= <jorg@example.de>", "jorg@example.de", "Jörg"},
    {"=?UTF-8*ru?B?0JDQvdC90LA=?= <a@example.com>", "a@example.com", "Анна"},
    /* Adjacent words in different charsets, each converted on its own. */
    {"=?windows-1251?B?wO3t?= =?UTF-8?B?0LA=?= <a@example.com>", "a@example.com", "Анна"},
    /* Broken words are shown as written; unknown charsets pass bytes and
     * invalid UTF-8 becomes U+FFFD. */
    {"=?UTF-8?B?!!!?= <a@example.com>", "a@example.com", "=?UTF-8?B?!!!?="},
    {"=?UTF-8?X?abc?= <a@example.com>", "a@example.com", "=?UTF-8?X?abc?="},
    {"=?x-no-such-charset?Q?hi?= <a@example.com>", "a@example.com", "hi"},
    {"=?UTF-8?Q?=FF?= <a@example.com>", "a@example.com", "\xef\xbf\xbd"},
    /* Quoted display names, escapes, commas, and encoded words inside quotes
     * (not allowed by RFC 2047, sent anyway). */
    {"\"Smith, John\" <JOHN@EXAMPLE.COM>", "john@example.com", "Smith, John"},
    {"\"Anna \\\"Annie\\\" S.\" <a@example.com>", "a@example.com", "Anna \"Annie\" S."},
    {"\"=?UTF-8?B?0JDQvdC90LA=?=\" <a@example.com>", "a@example.com", "Анна"},
    {"\"a <b>\" <c@example.com>", "c@example.com", "a <b>"},
    {"'Anna' <a@example.com>", "a@example.com", "Anna"},
    {"<a@example.com>", "a@example.com", ""},
    {"Anna   Smirnova\t<a@example.com>", "a@example.com", "Anna Smirnova"},
    {"Anna <a@example.com> (work)", "a@example.com", "Anna"},
    /* The old comment form. */
    {"a@example.com (Anna Smirnova)", "a@example.com", "Anna Smirnova"},
    /* IDN and non-ASCII local parts, case-folded. */
    {"ЮЛИЯ@почта.рф", "юлия@xn--80a1acny.xn--p1ai", ""},
    {"user@MÜNCHEN.de", "user@xn--mnchen-3ya.de", ""},
    {"user@xn--e1afmkfd.xn--p1ai", "user@xn--e1afmkfd.xn--p1ai", ""},
    {"mailto:Ann@X.org", "ann@x.org", ""},
    {"a@example.com.", "a@example.com", ""},
    /* No provider folding: Gmail dots and tags stay. */
    {"A.N.N.A+News@GMail.com", "a.n.n.a+news@gmail.com", ""},
    /* Invalid. */
    {"", NULL, NULL},
    {"   ", NULL, NULL},
    {"anna", NULL, NULL},
    {"anna.example.com", NULL, NULL},
    {"@example.com", NULL, NULL},
    {"anna@", NULL, NULL},
    {"anna@@example.com", NULL, NULL},
    {"an@na@example.com", NULL, NULL},
    {"an na@example.com", NULL, NULL},
    {"anna@exa mple.com", NULL, NULL},
    {"an\tna@example.com", NULL, NULL},
    {"an\x01na@example.com", NULL, NULL},
    {"anna@localhost", NULL, NULL},
    {"anna@com", NULL, NULL},
    {"anna@[192.0.2.1]", NULL, NULL},
    {"anna@192.0.2.1", NULL, NULL},
    {".anna@example.com", NULL, NULL},
    {"anna.@example.com", NULL, NULL},
    {"an..na@example.com", NULL, NULL},
    {"anna@example..com", NULL, NULL},
    {"anna@.example.com", NULL, NULL},
    {"anna@-example.com", NULL, NULL},
    {"anna@example-.com", NULL, NULL},
    {"anna@exa_mple.com", NULL, NULL},
    {"an,na@example.com", NULL, NULL},
    {"\"anna\"@example.com", NULL, NULL},
    {"anna@😀.com", NULL, NULL}, /* emoji: not IDNA2008 */
    {"anna@ex\xffmple.com", NULL, NULL},
    {"Anna <anna@example.com", NULL, NULL},
    {"A <a@example.com>, B <b@example.com>", NULL, NULL},
    {"a@example.com, b@example.com", NULL, NULL},
    {"Anna <>", NULL, NULL},
    {"undisclosed-recipients:;", NULL, NULL},
};

static void test_email_cases(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof email_cases / sizeof email_cases[0]; i++) {
        const struct email_case *c = &email_cases[i];
        char *raw = dup_exact(c->raw);
        char addr[SB_EMAIL_MAX], name[256], err[256] = "";
        int rc = sb_email_normalize(raw, addr, sizeof addr, name, sizeof name, err, sizeof err);
        if (c->addr) {
            if (rc != SB_OK || strcmp(addr, c->addr) || strcmp(name, c->name)) {
                print_error("case %zu \"%s\": rc %d <%s> name '%s' (%s)\n", i, c->raw, rc,
                            rc == SB_OK ? addr : "", rc == SB_OK ? name : "", err);
                bad++;
            }
        } else if (rc != SB_ERR_INVALID || !err[0] || addr[0] || name[0]) {
            print_error("case %zu \"%s\": expected invalid, rc %d <%s>\n", i, c->raw, rc, addr);
            bad++;
        }
        /* Without a display-name buffer the address is the same. */
        char addr2[SB_EMAIL_MAX];
        int rc2 = sb_email_normalize(raw, addr2, sizeof addr2, NULL, 0, NULL, 0);
        if (rc2 != rc || (rc == SB_OK && strcmp(addr, addr2))) {
            print_error("case %zu \"%s\": rc %d without a name buffer, %d with\n", i, c->raw, rc2,
                        rc);
            bad++;
        }
        free(raw);
    }
    assert_int_equal(bad, 0);
}

/* "aaa…@xxx…" of `total` bytes: `local` bytes before '@', the domain cut into
 * labels of 63 letters. */
static void make_addr(char *buf, size_t len, size_t local, size_t total)
{
    assert_true(total < len && local + 66 < total);
    memset(buf, 'a', local);
    buf[local] = '@';
    for (size_t i = 0; i < total - local - 1; i++)
        buf[local + 1 + i] = i % 64 == 63 ? '.' : 'x';
    buf[total] = '\0';
    assert_true(buf[total - 1] != '.');
}

static void test_email_limits(void **state)
{
    (void)state;
    char addr[SB_EMAIL_MAX];
    /* 64 bytes before '@' pass, 65 do not. */
    char local[80];
    memset(local, 'a', 65);
    snprintf(local + 64, sizeof local - 64, "@example.com");
    assert_int_equal(sb_email_normalize(local, addr, sizeof addr, NULL, 0, NULL, 0), SB_OK);
    memset(local, 'a', 65);
    snprintf(local + 65, sizeof local - 65, "@example.com");
    assert_int_equal(sb_email_normalize(local, addr, sizeof addr, NULL, 0, NULL, 0),
                     SB_ERR_INVALID);

    /* 254 characters in all pass, 255 do not. */
    char raw[300];
    make_addr(raw, sizeof raw, 64, 254);
    assert_int_equal(strlen(raw), 254);
    assert_int_equal(sb_email_normalize(raw, addr, sizeof addr, NULL, 0, NULL, 0), SB_OK);
    assert_int_equal(strlen(addr), 254);
    make_addr(raw, sizeof raw, 64, 255);
    char err[256] = "";
    assert_int_equal(sb_email_normalize(raw, addr, sizeof addr, NULL, 0, err, sizeof err),
                     SB_ERR_INVALID);
    assert_non_null(strstr(err, "254"));

    /* A label of 63 passes, 64 does not. */
    char lab[100];
    memset(lab, 'x', 64);
    snprintf(lab + 63, sizeof lab - 63, ".com");
    snprintf(raw, sizeof raw, "a@%s", lab);
    assert_int_equal(sb_email_normalize(raw, addr, sizeof addr, NULL, 0, NULL, 0), SB_OK);
    memset(lab, 'x', 64);
    snprintf(lab + 64, sizeof lab - 64, ".com");
    snprintf(raw, sizeof raw, "a@%s", lab);
    assert_int_equal(sb_email_normalize(raw, addr, sizeof addr, NULL, 0, NULL, 0), SB_ERR_INVALID);

    /* NULL input, and input longer than a header is refused. */
    assert_int_equal(sb_email_normalize(NULL, addr, sizeof addr, NULL, 0, NULL, 0), SB_ERR_INVALID);
    size_t n = 5000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    memcpy(big + n - 12, "@example.com", 13);
    assert_int_equal(sb_email_normalize(big, addr, sizeof addr, NULL, 0, NULL, 0), SB_ERR_INVALID);
    free(big);
}

/* The address and the display name each fit a buffer of exactly their size
 * plus the terminator, and fail cleanly (SB_ERR_TOO_LARGE, both outputs
 * emptied, nothing written past the end) one byte short. */
static void test_email_exact_buffers(void **state)
{
    (void)state;
    const char *raw_s = "=?UTF-8?B?0JDQvdC90LA=?= <Anna@Пример.РФ>";
    const char *want_addr = "anna@xn--e1afmkfd.xn--p1ai";
    const char *want_name = "Анна";
    char *raw = dup_exact(raw_s);
    size_t alen = strlen(want_addr) + 1, nlen = strlen(want_name) + 1;

    char *a = buf_exact(alen), *nm = buf_exact(nlen);
    assert_int_equal(sb_email_normalize(raw, a, alen, nm, nlen, NULL, 0), SB_OK);
    assert_string_equal(a, want_addr);
    assert_string_equal(nm, want_name);
    free(a), free(nm);

    char err[256] = "";
    a = buf_exact(alen - 1), nm = buf_exact(nlen);
    assert_int_equal(sb_email_normalize(raw, a, alen - 1, nm, nlen, err, sizeof err),
                     SB_ERR_TOO_LARGE);
    assert_int_equal(a[0], '\0');
    assert_int_equal(nm[0], '\0');
    assert_true(err[0]);
    free(a), free(nm);

    err[0] = '\0';
    a = buf_exact(alen), nm = buf_exact(nlen - 1);
    assert_int_equal(sb_email_normalize(raw, a, alen, nm, nlen - 1, err, sizeof err),
                     SB_ERR_TOO_LARGE);
    assert_int_equal(a[0], '\0');
    assert_int_equal(nm[0], '\0');
    free(a), free(nm);

    /* Zero-length outputs are never written. */
    assert_int_equal(sb_email_normalize(raw, NULL, 0, NULL, 0, NULL, 0), SB_ERR_TOO_LARGE);
    free(raw);
}

/* -- Messenger ids and the generic entry point -------------------------- */

static const struct id_case {
    enum sb_identity_kind kind;
    const char *raw, *want; /* want NULL: invalid */
} id_cases[] = {
    {SB_ID_TELEGRAM, "523901177", "523901177"},
    {SB_ID_TELEGRAM, " 523901177\n", "523901177"},
    {SB_ID_TELEGRAM, "000523901177", "523901177"},
    {SB_ID_TELEGRAM, "12345678901234567890", "12345678901234567890"},
    {SB_ID_TELEGRAM, "123456789012345678901", NULL},
    {SB_ID_TELEGRAM, "-1001234567890", NULL}, /* a group chat, not a person */
    {SB_ID_TELEGRAM, "+523901177", NULL},
    {SB_ID_TELEGRAM, "0", NULL},
    {SB_ID_TELEGRAM, "52390 1177", NULL},
    {SB_ID_TELEGRAM, "@anna", NULL},
    {SB_ID_TELEGRAM, "", NULL},
    {SB_ID_WHATSAPP, "79160001122", "79160001122"},
    {SB_ID_WHATSAPP, "+7 916 000-11-22", "79160001122"},
    {SB_ID_WHATSAPP, "1234567", "1234567"},
    {SB_ID_WHATSAPP, "123456", NULL},
    {SB_ID_WHATSAPP, "123456789012345", "123456789012345"},
    {SB_ID_WHATSAPP, "1234567890123456", NULL},
    {SB_ID_WHATSAPP, "089160001122", NULL},
    {SB_ID_WHATSAPP, "7916000112a", NULL},
    {SB_ID_WHATSAPP, "7 (916) 0001122", NULL},
    {SB_ID_WHATSAPP, "++79160001122", NULL},
    {SB_ID_WHATSAPP, "", NULL},
    {SB_ID_VIBER, "01234567890A=", "01234567890A="},
    {SB_ID_VIBER, "  AbC+/dEf==  ", "AbC+/dEf=="},
    {SB_ID_VIBER,
     "a\x01"
     "b",
     NULL},
    {SB_ID_VIBER, "\xff", NULL},
    {SB_ID_VIBER, "", NULL},
    {SB_ID_VIBER, " \t", NULL},
    {SB_ID_OTHER, "  skype:anna.s  ", "skype:anna.s"},
    {SB_ID_OTHER, "Анна", "Анна"},
    {SB_ID_OTHER, "", NULL},
    {SB_ID_OTHER, "a\x7f", NULL},
    {SB_ID_PHONE, "8 (999) 123-45-67 доб. 5", "+79991234567"},
    {SB_ID_PHONE, "12345", NULL},
    {SB_ID_EMAIL, "Anna <Anna@Example.com>", "anna@example.com"},
    {SB_ID_EMAIL, "anna", NULL},
};

static void test_identity_cases(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof id_cases / sizeof id_cases[0]; i++) {
        const struct id_case *c = &id_cases[i];
        char *raw = dup_exact(c->raw);
        char out[SB_EMAIL_MAX], err[256] = "";
        int rc = sb_identity_normalize(c->kind, raw, "RU", out, sizeof out, err, sizeof err);
        if (c->want ? rc != SB_OK || strcmp(out, c->want)
                    : rc != SB_ERR_INVALID || !err[0] || out[0]) {
            print_error("case %zu (%s \"%s\"): rc %d '%s' (%s)\n", i,
                        sb_identity_kind_name(c->kind), c->raw, rc, out, err);
            bad++;
        }
        free(raw);
    }
    assert_int_equal(bad, 0);

    char out[64];
    assert_int_equal(sb_identity_normalize(SB_ID__COUNT, "x", "RU", out, sizeof out, NULL, 0),
                     SB_ERR_INVALID);
    assert_int_equal(sb_identity_normalize(SB_ID_TELEGRAM, NULL, "RU", out, sizeof out, NULL, 0),
                     SB_ERR_INVALID);
    /* Viber ids up to 128 bytes; other values up to the column's 320. */
    char v[400];
    memset(v, 'v', 129);
    v[128] = '\0';
    char big[SB_EMAIL_MAX + 1];
    assert_int_equal(sb_identity_normalize(SB_ID_VIBER, v, NULL, big, sizeof big, NULL, 0), SB_OK);
    v[128] = 'v', v[129] = '\0';
    assert_int_equal(sb_identity_normalize(SB_ID_VIBER, v, NULL, big, sizeof big, NULL, 0),
                     SB_ERR_INVALID);
    memset(v, 'o', 321);
    v[320] = '\0';
    assert_int_equal(sb_identity_normalize(SB_ID_OTHER, v, NULL, big, sizeof big, NULL, 0), SB_OK);
    v[320] = 'o', v[321] = '\0';
    assert_int_equal(sb_identity_normalize(SB_ID_OTHER, v, NULL, big, sizeof big, NULL, 0),
                     SB_ERR_INVALID);
}

/* Every kind: a buffer of exactly the result's size works, one byte less
 * fails with SB_ERR_TOO_LARGE and an empty string. */
static void test_identity_exact_buffers(void **state)
{
    (void)state;
    static const struct {
        enum sb_identity_kind kind;
        const char *raw, *want;
    } fits[] = {
        {SB_ID_PHONE, "8 (999) 123-45-67", "+79991234567"},
        {SB_ID_EMAIL, "Anna <ANNA@example.com>", "anna@example.com"},
        {SB_ID_TELEGRAM, "523901177", "523901177"},
        {SB_ID_WHATSAPP, "+79160001122", "79160001122"},
        {SB_ID_VIBER, " 01234567890A= ", "01234567890A="},
        {SB_ID_OTHER, "x", "x"},
    };
    for (size_t i = 0; i < sizeof fits / sizeof fits[0]; i++) {
        char *raw = dup_exact(fits[i].raw);
        size_t need = strlen(fits[i].want) + 1;
        char *out = buf_exact(need);
        assert_int_equal(sb_identity_normalize(fits[i].kind, raw, "RU", out, need, NULL, 0), SB_OK);
        assert_string_equal(out, fits[i].want);
        free(out);
        char err[256] = "";
        out = buf_exact(need - 1);
        assert_int_equal(
            sb_identity_normalize(fits[i].kind, raw, "RU", out, need - 1, err, sizeof err),
            SB_ERR_TOO_LARGE);
        if (need - 1 > 0)
            assert_int_equal(out[0], '\0');
        assert_true(err[0]);
        free(out);
        assert_int_equal(sb_identity_normalize(fits[i].kind, raw, "RU", NULL, 0, NULL, 0),
                         SB_ERR_TOO_LARGE);
        free(raw);
    }
}

/* The first failure's text is kept (sb_fail): a caller's message survives. */
static void test_first_error_kept(void **state)
{
    (void)state;
    char err[64] = "earlier";
    struct sb_phone p;
    assert_int_equal(sb_phone_normalize("abc", "RU", &p, err, sizeof err), SB_ERR_INVALID);
    assert_string_equal(err, "earlier");
    char out[64];
    assert_int_equal(sb_email_normalize("nope", out, sizeof out, NULL, 0, err, sizeof err),
                     SB_ERR_INVALID);
    assert_string_equal(err, "earlier");
}

/* Results are cached by region and the number as written (identity.c): the
 * same text means another number in another region, and a failure is never
 * served from the cache. */
static void test_phone_cache_keeps_regions_apart(void **state)
{
    (void)state;
    struct sb_phone p;
    char err[160];
    for (int round = 0; round < 3; round++) {
        assert_int_equal(sb_phone_normalize("8 (916) 000-11-22", "RU", &p, NULL, 0), SB_OK);
        assert_string_equal(p.e164, "+79160001122");
        assert_int_equal(sb_phone_normalize("8 (916) 000-11-22", "DE", &p, NULL, 0), SB_OK);
        assert_string_equal(p.e164, "+4989160001122");
        err[0] = '\0';
        assert_int_equal(sb_phone_normalize("8 (916) 000-11-22", "US", &p, err, sizeof err),
                         SB_ERR_INVALID);
        assert_string_equal(p.e164, "");
        assert_non_null(strstr(err, "not a valid number for its country"));
        /* Another spelling is another key, with the same answer. */
        assert_int_equal(sb_phone_normalize("+7 916 000-11-22 доб. 7", "US", &p, NULL, 0), SB_OK);
        assert_string_equal(p.e164, "+79160001122");
        assert_string_equal(p.extension, "7");
    }
    /* Longer than a cache key: still normalised, by the library each time. */
    const char *longer = "８　(９１６)　０００　-　１１　-　２２"; /* 55 bytes */
    for (int round = 0; round < 2; round++) {
        assert_int_equal(sb_phone_normalize(longer, "RU", &p, NULL, 0), SB_OK);
        assert_string_equal(p.e164, "+79160001122");
    }
}

/* -- Concurrency -------------------------------------------------------- */

#define THREADS 4
#define ROUNDS  200

static void *worker(void *arg)
{
    long bad = 0;
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct sb_phone p;
        if (sb_phone_normalize("+7 916 000 11 22, доб. 5", "RU", &p, NULL, 0) != SB_OK ||
            strcmp(p.e164, "+79160001122") || strcmp(p.extension, "5"))
            bad++;
        char a[SB_EMAIL_MAX], n[64];
        if (sb_email_normalize("=?windows-1251?B?wO3t4A==?= <A@Пример.рф>", a, sizeof a, n,
                               sizeof n, NULL, 0) != SB_OK ||
            strcmp(a, "a@xn--e1afmkfd.xn--p1ai") || strcmp(n, "Анна"))
            bad++;
    }
    return (void *)bad;
}

/* Several threads at once, the first calls racing for the one-time set-up. */
static void test_threads(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
    long bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        bad += (long)r;
    }
    assert_int_equal(bad, 0);
}

/* -- The CLI ------------------------------------------------------------ */

struct cli_run {
    int rc;
    char out[4096], err[4096];
};

static void drain(int fd, char *buf, size_t len)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
}

/* Run sb_cli_identity with stdout and stderr captured in pipes (the output is
 * far below a pipe's capacity, so nothing blocks). */
static void run_cli(struct cli_run *r, const char *region, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    assert_true(argc < 16);
    for (int i = 0; i < argc; i++)
        argv[i] = dup_exact(va_arg(ap, const char *));
    va_end(ap);
    argv[argc] = NULL;

    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    assert_true(so >= 0 && se >= 0);
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[1]);
    close(pe[1]);
    r->rc = sb_cli_identity(argc, argv, region);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    drain(po[0], r->out, sizeof r->out);
    drain(pe[0], r->err, sizeof r->err);
    close(po[0]);
    close(pe[0]);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
}

static void test_cli(void **state)
{
    (void)state;
    struct cli_run r;

    run_cli(&r, "RU", 3, "normalize", "--phone", "8 (999) 123-45-67");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "+79991234567\n");
    assert_string_equal(r.err, "");

    run_cli(&r, "RU", 5, "normalize", "--region", "RU", "--phone", "8 (999) 123-45-67");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "+79991234567\n");

    /* --region overrides the configured default. */
    run_cli(&r, "RU", 5, "normalize", "--region", "ua", "--phone", "067 123 45 67");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "+380671234567\n");
    run_cli(&r, NULL, 3, "normalize", "--phone", "89991234567");
    assert_int_equal(r.rc, 1);

    run_cli(&r, "RU", 3, "normalize", "--phone", "+7 999 123-45-67 доб. 123");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "+79991234567\nextension: 123\n");

    run_cli(&r, "RU", 3, "normalize", "--phone", "8 (000) 000-00-00");
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.out, "");
    assert_true(!strncmp(r.err, "switchboard: ", 13));
    assert_non_null(strstr(r.err, "not a valid phone number"));
    assert_string_equal(strchr(r.err, '\n'), "\n"); /* one line */

    run_cli(&r, "RU", 3, "normalize", "--email", "Anna@Пример.РФ");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "anna@xn--e1afmkfd.xn--p1ai\n");

    run_cli(&r, "RU", 3, "normalize", "--email", "=?UTF-8?B?0JDQvdC90LA=?= <a@example.com>");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "a@example.com\nname: Анна\n");

    run_cli(&r, "RU", 3, "normalize", "--email", "anna@localhost");
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "switchboard: "));

    run_cli(&r, "RU", 5, "normalize", "--kind", "telegram", "--value", " 523901177 ");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "523901177\n");
    run_cli(&r, "RU", 5, "normalize", "--kind", "whatsapp", "--value", "+7 916 000-11-22");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "79160001122\n");
    run_cli(&r, "RU", 5, "normalize", "--kind", "phone", "--value", "8 916 000 11 22");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out, "+79160001122\n");
    run_cli(&r, "RU", 5, "normalize", "--kind", "telegram", "--value", "-100123");
    assert_int_equal(r.rc, 1);

    /* Usage errors: exit 2 with the usage line, nothing on stdout. */
    static const char *const usage_cases[][6] = {
        {"normalize"},
        {"normalize", "--phone"},
        {"normalize", "--phone", "1", "--email", "a@b.c"},
        {"normalize", "--kind", "fax", "--value", "1"},
        {"normalize", "--kind", "telegram"},
        {"normalize", "--value", "1"},
        {"normalize", "--phone", "1", "--phone", "2"},
        {"normalize", "--region", "RUS", "--phone", "1"},
        {"normalize", "--bogus", "1"},
        {"denormalize", "--phone", "1"},
    };
    for (size_t i = 0; i < sizeof usage_cases / sizeof usage_cases[0]; i++) {
        int argc = 0;
        while (argc < 6 && usage_cases[i][argc])
            argc++;
        const char *const *a = usage_cases[i];
        switch (argc) {
        case 1:
            run_cli(&r, "RU", 1, a[0]);
            break;
        case 2:
            run_cli(&r, "RU", 2, a[0], a[1]);
            break;
        case 3:
            run_cli(&r, "RU", 3, a[0], a[1], a[2]);
            break;
        case 5:
            run_cli(&r, "RU", 5, a[0], a[1], a[2], a[3], a[4]);
            break;
        default:
            fail_msg("case %zu has %d arguments", i, argc);
        }
        if (r.rc != 2 || r.out[0] || !strstr(r.err, "usage: switchboard identity normalize"))
            fail_msg("usage case %zu: rc %d, out '%s', err '%s'", i, r.rc, r.out, r.err);
    }
    run_cli(&r, "RU", 0);
    assert_int_equal(r.rc, 2);

    run_cli(&r, "RU", 2, "normalize", "--help");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "usage:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_phone_cases),
        cmocka_unit_test(test_phone_errors),
        cmocka_unit_test(test_email_cases),
        cmocka_unit_test(test_email_limits),
        cmocka_unit_test(test_email_exact_buffers),
        cmocka_unit_test(test_identity_cases),
        cmocka_unit_test(test_identity_exact_buffers),
        cmocka_unit_test(test_first_error_kept),
        cmocka_unit_test(test_phone_cache_keeps_regions_apart),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
