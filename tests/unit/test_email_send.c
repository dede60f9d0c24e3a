/* The e-mail channel's send hooks without a server: the SMTP transfer that
 * send_prepare describes for each smtp_tls mode (URL, STARTTLS required,
 * login, envelope), the message it composes from an outbox payload (parsed
 * back), a payload the composer refuses, and send_result's reading of SMTP
 * reply codes. The real submission is tests/integration/test_smtp.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct sb_channel channel(json_t *config)
{
    struct sb_channel ch = {
        .id = 3, .kind = sb_channel_kind_find("email"), .enabled = 1, .config = config};
    snprintf(ch.name, sizeof ch.name, "Sales");
    return ch;
}

/* A config as `channel add` stores it (validated, defaults filled). */
static json_t *config(const char *tls, const char *extra_key, const char *extra_val)
{
    json_t *cfg = json_pack("{s:s,s:s,s:s}", "smtp_host", "smtp.example.com", "smtp_tls", tls,
                            "from", "Отдел продаж <sales@shop.example>");
    if (extra_key)
        json_object_set_new(cfg, extra_key, json_string(extra_val));
    if (extra_key && !strcmp(extra_key, "smtp_username"))
        json_object_set_new(cfg, "smtp_password", json_string("app-password"));
    char err[256] = "";
    const struct sb_channel_kind *k = sb_channel_kind_find("email");
    int rc = k->validate_config(cfg, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("validate: %s", err);
    return cfg;
}

static void tls_modes(void **state)
{
    (void)state;
    struct {
        const char *tls, *url;
        int require_tls;
    } cases[] = {
        {"smtps", "smtps://smtp.example.com:465/shop.example", 0},
        {"ssl", "smtps://smtp.example.com:465/shop.example", 0},
        {"implicit", "smtps://smtp.example.com:465/shop.example", 0},
        {"starttls", "smtp://smtp.example.com:587/shop.example", 1},
        {"none", "smtp://smtp.example.com:25/shop.example", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *cfg = config(cases[i].tls, "smtp_username", "sales@shop.example");
        struct sb_channel ch = channel(cfg);
        json_t *p = json_pack("{s:s,s:s,s:s}", "to", "client@example.org", "text", "Hi",
                              "message_id", "m1@shop.example");
        struct sb_outbound msg = {
            .outbox_id = 1, .to = "client@example.org", .text = "Hi", .payload = p};
        struct sb_send_req req = {0};
        char err[256] = "";
        assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
        assert_string_equal(req.url, cases[i].url);
        assert_int_equal(req.require_tls, cases[i].require_tls);
        assert_int_equal(req.tls_no_verify, 0);
        assert_string_equal(req.username, "sales@shop.example");
        assert_string_equal(req.password, "app-password");
        assert_string_equal(req.mail_from, "<sales@shop.example>");
        assert_int_equal(req.nrcpt, 1);
        assert_string_equal(req.rcpt[0], "<client@example.org>");
        sb_send_req_free(&req);
        json_decref(p);
        json_decref(cfg);
    }
}

static void composes_the_payload(void **state)
{
    (void)state;
    json_t *cfg = config("none", "smtp_tls_verify", "false");
    struct sb_channel ch = channel(cfg);
    json_t *p =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:[s,s],s:[s]}", "to", "client@example.org", "text",
                  "Ответ по заказу", "html", "<p>Ответ по заказу</p>", "subject", "Re: Заказ 42",
                  "message_id", "r1@shop.example", "in_reply_to", "c2@example.org", "references",
                  "c1@example.org", "c2@example.org", "headers", "X-Campaign: 9");
    struct sb_outbound msg = {.outbox_id = 5,
                              .interaction_id = 6,
                              .to = "Client <client@example.org>",
                              .text = "Ответ по заказу",
                              .payload = p};
    struct sb_send_req req = {0};
    char err[256] = "";
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
    assert_int_equal(req.tls_no_verify, 1);
    assert_null(req.username);
    assert_string_equal(req.rcpt[0], "<client@example.org>");
    struct sb_inbound *in = NULL;
    assert_int_equal(
        sb_mime_parse((const unsigned char *)req.body, req.body_len, &in, err, sizeof err), SB_OK);
    assert_string_equal(in->subject, "Re: Заказ 42");
    assert_string_equal(in->message_id, "r1@shop.example");
    assert_string_equal(in->in_reply_to, "c2@example.org");
    assert_int_equal(in->nreferences, 2);
    assert_non_null(strstr(in->text, "Ответ по заказу"));
    assert_non_null(strstr(in->html, "<p>Ответ по заказу</p>"));
    assert_non_null(strstr(in->sender, "Отдел продаж"));
    assert_non_null(strstr(req.body, "\r\nX-Campaign: 9\r\n"));
    sb_inbound_free(&in);
    sb_send_req_free(&req);

    /* A reply's quote travels in the payload and is composed here, below
     * the agent's words, in the agent's language; the payload's html (the
     * agent's words alone, as stored) gives way to the quoted one. */
    json_object_set_new(p, "quote",
                        json_pack("{s:I,s:s,s:I,s:s,s:s}", "interaction_id", (json_int_t)4,
                                  "author", "Клиент <client@example.org>", "date",
                                  (json_int_t)1795428000, "text", "Где мой заказ?\n> старое",
                                  "locale", "ru"));
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
    assert_int_equal(
        sb_mime_parse((const unsigned char *)req.body, req.body_len, &in, err, sizeof err), SB_OK);
    assert_non_null(strstr(in->text, "Ответ по заказу\r\n\r\n23.11.2026 10:00 UTC, Клиент "
                                     "<client@example.org> пишет:\r\n> Где мой заказ?\r\n>> "
                                     "старое"));
    assert_non_null(strstr(in->html, "<blockquote type=\"cite\""));
    assert_non_null(strstr(in->html, "Где мой заказ?"));
    assert_null(strstr(in->html, "<p>Ответ по заказу</p>"));
    sb_inbound_free(&in);
    sb_send_req_free(&req);
    /* A quote that is not one is refused, not sent half-made. */
    json_object_set_new(p, "quote", json_pack("{s:i}", "text", 1));
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_ERR_INVALID);
    assert_non_null(strstr(err, "quote"));
    sb_send_req_free(&req);
    json_object_del(p, "quote");

    /* Accepted: our Message-ID is the provider id. 4xx retried, 5xx final
     * with the server's words. */
    struct sb_send_result res;
    ch.kind->send_result(&ch, &msg, 250, "", 0, NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_OK);
    assert_string_equal(res.external_id, "r1@shop.example");
    const char *grey = "RCPT failed: 451 (451 4.7.1 Greylisted)";
    ch.kind->send_result(&ch, &msg, 451, grey, strlen(grey), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_RETRY);
    assert_non_null(strstr(res.error, "Greylisted"));
    const char *unknown = "RCPT failed: 550 (550 5.1.1 User unknown)";
    ch.kind->send_result(&ch, &msg, 550, unknown, strlen(unknown), NULL, &res);
    assert_int_equal(res.outcome, SB_SEND_FAILED);
    assert_string_equal(res.error, "SMTP 550: RCPT failed: 550 (550 5.1.1 User unknown)");

    /* Without a Message-ID in the payload one is derived from the job, the
     * same in send_prepare and send_result. */
    json_object_del(p, "message_id");
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_OK);
    assert_non_null(strstr(req.body, "Message-ID: <sb.5.6@shop.example>"));
    sb_send_req_free(&req);
    ch.kind->send_result(&ch, &msg, 250, "", 0, NULL, &res);
    assert_string_equal(res.external_id, "sb.5.6@shop.example");

    /* An injected header or a bad address is refused before any transfer. */
    json_object_set_new(p, "headers", json_pack("[s]", "X-A: b\r\nBcc: victim@example.net"));
    assert_int_equal(ch.kind->send_prepare(&ch, &msg, &req, err, sizeof err), SB_ERR_INVALID);
    sb_send_req_free(&req);
    json_object_del(p, "headers");
    struct sb_outbound bad = {.to = "not an address", .text = "x", .payload = p};
    assert_int_equal(ch.kind->send_prepare(&ch, &bad, &req, err, sizeof err), SB_ERR_INVALID);
    sb_send_req_free(&req);

    /* A channel without an SMTP side cannot send. */
    json_t *imap_only = json_pack("{s:s}", "host", "imap.example.com");
    struct sb_channel ro = channel(imap_only);
    assert_int_equal(ro.kind->send_prepare(&ro, &msg, &req, err, sizeof err), SB_ERR_INVALID);
    sb_send_req_free(&req);
    json_decref(imap_only);
    json_decref(p);
    json_decref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_modes),
        cmocka_unit_test(composes_the_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
