/* The IMAP client's pure parts: folder names in modified UTF-7 (RFC 3501
 * 5.1.3) both ways, and reading a channel's IMAP configuration. */
#include "switchboard/err.h"
#include "switchboard/imap.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

static void roundtrip(const char *utf8, const char *utf7)
{
    char *e = sb_imap_utf7_encode(utf8);
    assert_non_null(e);
    assert_string_equal(e, utf7);
    char *d = sb_imap_utf7_decode(e);
    assert_non_null(d);
    assert_string_equal(d, utf8);
    free(e);
    free(d);
}

static void utf7_folder_names(void **state)
{
    (void)state;
    roundtrip("INBOX", "INBOX");
    roundtrip("Sent & Archive", "Sent &- Archive");
    /* RFC 3501's example and Russian folder names as Yandex and Mail.ru have them. */
    roundtrip("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
    roundtrip("Входящие", "&BBIERQQ+BDQETwRJBDgENQ-");
    roundtrip("Отправленные/2026", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-/2026");
    roundtrip("[Gmail]/Отправленные", "[Gmail]/&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-");
    roundtrip("emoji 😀", "emoji &2D3eAA-");
    /* Broken UTF-8 does not crash; it becomes U+FFFD. */
    char *e = sb_imap_utf7_encode("bad \xff byte");
    assert_string_equal(e, "bad &,,0- byte");
    free(e);
    /* A broken encoding decodes as far as it goes. */
    char *d = sb_imap_utf7_decode("&BBIE");
    assert_non_null(d);
    free(d);
}

static void conf_defaults(void **state)
{
    (void)state;
    json_t *cfg =
        json_pack("{s:s,s:s,s:s}", "host", "imap.example.com", "username", "u", "password", "p");
    struct sb_imap_conf c;
    char err[256] = "";
    assert_int_equal(sb_imap_conf_read(cfg, &c, err, sizeof err), SB_OK);
    assert_int_equal(c.tls, SB_IMAP_TLS_IMAPS);
    assert_int_equal(c.port, 993);
    assert_true(c.tls_verify);
    json_object_set_new(cfg, "tls", json_string("starttls"));
    json_object_set_new(cfg, "tls_verify", json_false());
    assert_int_equal(sb_imap_conf_read(cfg, &c, err, sizeof err), SB_OK);
    assert_int_equal(c.tls, SB_IMAP_TLS_STARTTLS);
    assert_int_equal(c.port, 143);
    assert_false(c.tls_verify);
    json_object_del(cfg, "password");
    assert_int_equal(sb_imap_conf_read(cfg, &c, err, sizeof err), SB_ERR_CONFIG);
    json_decref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf7_folder_names),
        cmocka_unit_test(conf_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
