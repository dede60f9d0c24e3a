/* The e-mail channel's SMTP side: mail read from a real Dovecot, an agent's
 * reply through the API, delivered by the sender to Postfix's smtp-sink.
 * The sink's dump is parsed back with sb_mime_parse: headers, threading ids,
 * both parts, encodings. The client's answer to our reply, delivered into
 * the maildir, joins the same conversation. A 4xx is retried (and sent once
 * the server takes it), a 5xx fails with the server's words. Cyrillic
 * subjects and bodies arrive encoded and decode back.
 *
 * Every test has its own folder and channel; they share one Dovecot, one
 * server and the sinks. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/mime.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct th_dovecot dc;
static struct th_server srv;
static struct th_smtp_sink sink, hard;
static struct sb_db *db;
static char cookie[512];
static int sink_seen; /* messages the good sink had before the current test */
static const char *const server_env[] = {"SWITCHBOARD_IMAP_SCAN_SECONDS=1",
                                         "SWITCHBOARD_IMAP_LEASE_SECONDS=6", NULL};

#define FROM "Support Team <support@shop.example>"

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_dovecot_start(&dc);
    th_smtp_sink_start(&sink, NULL);
    const char *hard_args[] = {"-f", "RCPT", "-B",
                               "550 5.1.1 <nobody@example.org>: Recipient address rejected: "
                               "User unknown in local recipient table",
                               NULL};
    th_smtp_sink_start(&hard, hard_args);
    db = th_db_connect();
    th_server_start(&srv, server_env);
    th_user("agent@shop.example", "agent", "agent-password-1");
    th_login(&srv, "agent@shop.example", "agent-password-1", cookie, sizeof cookie);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    sb_db_close(&db);
    th_smtp_sink_stop(&hard);
    th_smtp_sink_stop(&sink);
    th_dovecot_stop(&dc);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

static int64_t q_int(const char *sql, int64_t arg)
{
    struct sb_db_val a[] = {SB_INT(arg)};
    struct sb_db_rows r;
    char err[512] = "";
    int rc = sb_db_exec(db, sql, a, strchr(sql, '?') ? 1 : 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = r.nrows && sb_db_cell(&r, 0, 0) ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

static void q_text(const char *sql, int64_t arg, char *out, size_t outlen)
{
    struct sb_db_val a[] = {SB_INT(arg)};
    struct sb_db_rows r;
    char err[512] = "";
    int rc = sb_db_exec(db, sql, a, 1, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    snprintf(out, outlen, "%s", r.nrows && sb_db_cell(&r, 0, 0) ? sb_db_cell(&r, 0, 0) : "");
    sb_db_rows_free(&r);
}

/* Poll `sql` (one integer, one argument) until it gives `want`. */
static int64_t wait_int(int64_t want, int secs, const char *sql, int64_t arg)
{
    int64_t v = -1;
    for (int i = 0; i < secs * 10; i++) {
        v = q_int(sql, arg);
        if (v == want)
            break;
        usleep(100 * 1000);
    }
    if (v != want)
        fprintf(stderr, "%s [%lld]: %lld, want %lld\n", sql, (long long)arg, (long long)v,
                (long long)want);
    return v;
}

/* An e-mail channel reading `folder` from the test Dovecot and sending
 * through the sink on `smtp_port`. */
static int64_t add_channel_with(const char *name, const char *folder, int smtp_port,
                                const char *extra)
{
    char port[32], fold[128], sport[32], out[4096];
    snprintf(port, sizeof port, "port=%d", dc.port);
    snprintf(fold, sizeof fold, "folders=%s", folder);
    snprintf(sport, sizeof sport, "smtp_port=%d", smtp_port);
    const char *args[] = {"channel",
                          "add",
                          "email",
                          "--name",
                          name,
                          "--set",
                          "host=127.0.0.1",
                          "--set",
                          port,
                          "--set",
                          "tls=none",
                          "--set",
                          "username=support@shop.example",
                          "--set",
                          "password=" TH_DOVECOT_PASSWORD,
                          "--set",
                          fold,
                          "--set",
                          "poll_seconds=1",
                          "--set",
                          "smtp_host=127.0.0.1",
                          "--set",
                          sport,
                          "--set",
                          "smtp_tls=none",
                          "--set",
                          "from=" FROM,
                          extra ? "--set" : NULL,
                          extra,
                          NULL};
    int rc = th_run(args, NULL, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "channel add: %s\n", out);
    assert_int_equal(rc, 0);
    json_t *o = json_loads(out, 0, NULL);
    int64_t id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    assert_true(id > 0);
    return id;
}

static int64_t add_channel(const char *name, const char *folder, int smtp_port)
{
    return add_channel_with(name, folder, smtp_port, NULL);
}

static void deliver(const char *folder, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void deliver(const char *folder, const char *fmt, ...)
{
    char raw[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof raw);
    th_maildir_deliver(&dc, folder, raw, (size_t)n);
}

/* The conversation of the interaction with this external id, once stored. */
static int64_t conversation_of(int64_t channel, const char *external_id)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT conversation_id FROM interactions WHERE channel_id = ? AND external_id = '%s'",
             external_id);
    int64_t conv = -1;
    for (int i = 0; i < 300 && conv <= 0; i++) {
        conv = q_int(sql, channel);
        if (conv <= 0)
            usleep(100 * 1000);
    }
    if (conv <= 0)
        fprintf(stderr, "%s never stored on channel %lld\n", external_id, (long long)channel);
    assert_true(conv > 0);
    return conv;
}

/* POST a reply; returns the HTTP status, fills the interaction id. */
static long reply(int64_t conv, const char *body, int64_t *id_r)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/replies", (long long)conv);
    const char *h[] = {cookie, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, h, &r), 0);
    json_t *o = json_loads(r.body, 0, NULL);
    if (r.status != 202)
        fprintf(stderr, "reply: %ld %s\n", r.status, r.body);
    if (id_r)
        *id_r = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    long status = r.status;
    th_resp_free(&r);
    return status;
}

/* The interaction as the API shows it in the thread (the list a thread
 * loads); NULL when not found. The caller json_decref()s it. */
static json_t *api_interaction(int64_t conv, int64_t id)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/interactions", (long long)conv);
    const char *h[] = {cookie, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL), *found = NULL, *it;
    th_resp_free(&r);
    size_t i;
    json_array_foreach(json_object_get(o, "items"), i, it)
    {
        if (json_integer_value(json_object_get(it, "id")) == id)
            found = json_incref(it);
    }
    json_decref(o);
    return found;
}

/* The next message the good sink receives, parsed; *raw_r the dump. */
static struct sb_inbound *next_sent(char **raw_r)
{
    assert_int_equal(th_smtp_sink_wait(&sink, sink_seen + 1, 15000), sink_seen + 1);
    size_t len = 0;
    char *raw = th_smtp_sink_message(&sink, sink_seen, &len);
    assert_non_null(raw);
    sink_seen++;
    struct sb_inbound *in = NULL;
    char err[256] = "";
    assert_int_equal(sb_mime_parse((const unsigned char *)raw, len, &in, err, sizeof err), SB_OK);
    assert_null(in->parse_error);
    *raw_r = raw;
    return in;
}

/* What went over the wire: 7-bit, no line over 998 characters (smtp-sink
 * dumps with LF line ends). */
static void wire_clean(const char *raw)
{
    size_t line = 0;
    for (const char *p = raw; *p; p++) {
        assert_true((unsigned char)*p < 0x80);
        line = *p == '\n' ? 0 : line + 1;
        assert_true(line <= 998);
    }
}

/* (a) and (b): an agent's reply goes out threaded; the client's answer to
 * it comes back into the same conversation. */
static void reply_round_trip(void **state)
{
    (void)state;
    const char *F = "RoundTrip";
    int64_t ch = add_channel("Round trip", F, sink.port);
    deliver(F, "From: Client Person <client@example.org>\r\nTo: " FROM "\r\n"
               "Subject: Order 42 question\r\nMessage-ID: <client-q1@example.org>\r\n"
               "In-Reply-To: <older@example.org>\r\nReferences: <older@example.org>\r\n"
               "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\n"
               "When does order 42 ship?\r\n");
    int64_t conv = conversation_of(ch, "client-q1@example.org");

    int64_t id;
    assert_int_equal(reply(conv, "{\"text\":\"Hello,\\nit ships today & arrives <soon>.\"}", &id),
                     202);
    assert_int_equal(wait_int(1, 20,
                              "SELECT COUNT(*) FROM interactions WHERE id = ? AND "
                              "delivery_status = 'sent' AND external_id = message_id",
                              id),
                     1);
    char mid[512];
    q_text("SELECT message_id FROM interactions WHERE id = ?", id, mid, sizeof mid);
    assert_non_null(strstr(mid, "@shop.example"));

    char *raw;
    struct sb_inbound *in = next_sent(&raw);
    wire_clean(raw);
    /* the envelope */
    assert_non_null(strstr(raw, "X-Mail-Args: <support@shop.example>"));
    assert_non_null(strstr(raw, "X-Rcpt-Args: <client@example.org>"));
    /* the headers */
    assert_non_null(strstr(raw, "\nFrom: \"Support Team\" <support@shop.example>\n"));
    assert_non_null(strstr(raw, "\nTo: <client@example.org>\n"));
    assert_non_null(strstr(raw, "\nMIME-Version: 1.0\n"));
    assert_non_null(strstr(raw, "multipart/alternative"));
    assert_string_equal(in->subject, "Re: Order 42 question");
    assert_string_equal(in->message_id, mid);
    assert_string_equal(in->in_reply_to, "client-q1@example.org");
    assert_int_equal(in->nreferences, 2);
    assert_string_equal(in->references[0], "older@example.org");
    assert_string_equal(in->references[1], "client-q1@example.org");
    /* both parts; the HTML escaped; the client's words quoted below by
     * default, as a mail client quotes: attribution, "> " lines, a cite
     * blockquote */
    const char *said = strstr(in->text, "it ships today & arrives <soon>.");
    const char *attr = strstr(in->text, "On Mon, 23 Nov 2026 10:00 UTC, Client Person "
                                        "<client@example.org> wrote:");
    const char *quoted = strstr(in->text, "> When does order 42 ship?");
    assert_true(said && attr && quoted && said < attr && attr < quoted);
    assert_non_null(strstr(in->html, "it ships today &amp; arrives &lt;soon&gt;."));
    assert_non_null(strstr(in->html, "Client Person &lt;client@example.org&gt; wrote:"));
    assert_non_null(strstr(in->html, "<blockquote type=\"cite\""));
    assert_non_null(strstr(strstr(in->html, "<blockquote"), "When does order 42 ship?"));
    sb_inbound_free(&in);
    free(raw);
    /* The quote is the mail's only: the stored reply, as the thread and the
     * search read it, is what the agent wrote; meta names the quoted mail. */
    int64_t parent = q_int("SELECT id FROM interactions WHERE message_id = "
                           "'client-q1@example.org' AND conversation_id = ?",
                           conv);
    json_t *it = api_interaction(conv, id);
    assert_non_null(it);
    assert_string_equal(json_string_value(json_object_get(it, "text")),
                        "Hello,\nit ships today & arrives <soon>.");
    const char *ih = json_string_value(json_object_get(it, "html"));
    assert_true(!ih || (!strstr(ih, "wrote:") && !strstr(ih, "order 42 ship")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(it, "meta"), "quote"), "interaction_id")),
                     parent);
    json_decref(it);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE id = ? AND (text LIKE "
                           "'%wrote:%' OR text LIKE '%order 42 ship%' OR html LIKE '%wrote:%')",
                           id),
                     0);

    /* (b) The client answers our reply. */
    deliver(F,
            "From: Client Person <client@example.org>\r\nTo: " FROM "\r\n"
            "Subject: Re: Re: Order 42 question\r\nMessage-ID: <client-q2@example.org>\r\n"
            "In-Reply-To: <%s>\r\n"
            "References: <older@example.org> <client-q1@example.org> <%s>\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nThanks!\r\n",
            mid, mid);
    assert_int_equal(conversation_of(ch, "client-q2@example.org"), conv);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE conversation_id = ?", conv), 3);

    /* A subject that would smuggle in a header is refused at once. */
    assert_int_equal(reply(conv, "{\"text\":\"x\",\"subject\":\"Hi\\r\\nBcc: a@b.example\"}", NULL),
                     400);

    assert_int_equal(reply(conv, "{\"text\":\"x\",\"quote\":\"no\"}", NULL), 400);

    /* A second reply answers the newest mail, without "Re: Re:"; the agent
     * left the quote out. */
    assert_int_equal(reply(conv, "{\"text\":\"You are welcome.\",\"quote\":false}", &id), 202);
    in = next_sent(&raw);
    assert_string_equal(in->subject, "Re: Re: Order 42 question");
    assert_string_equal(in->in_reply_to, "client-q2@example.org");
    assert_int_equal(in->nreferences, 4);
    assert_string_equal(in->references[2], mid);
    assert_string_equal(in->references[3], "client-q2@example.org");
    assert_null(strstr(in->text, "wrote:"));
    assert_null(strstr(in->text, "Thanks!"));
    assert_null(strstr(in->html, "blockquote"));
    sb_inbound_free(&in);
    free(raw);
    it = api_interaction(conv, id);
    assert_non_null(it);
    assert_string_equal(json_string_value(json_object_get(it, "text")), "You are welcome.");
    assert_null(json_object_get(json_object_get(it, "meta"), "quote"));
    json_decref(it);
    assert_int_equal(wait_int(1, 20,
                              "SELECT COUNT(*) FROM interactions WHERE id = ? AND "
                              "delivery_status = 'sent'",
                              id),
                     1);

    /* An auto-reply to it is stored and answered by nobody. */
    deliver(F, "From: Client Person <client@example.org>\r\nTo: " FROM "\r\n"
               "Subject: Out of office\r\nMessage-ID: <client-ooo@example.org>\r\n"
               "Auto-Submitted: auto-replied\r\nIn-Reply-To: <client-q2@example.org>\r\n"
               "Date: Mon, 23 Nov 2026 13:00:00 +0000\r\n\r\nI am away.\r\n");
    assert_int_equal(conversation_of(ch, "client-ooo@example.org"), conv);
    sleep(2);
    assert_int_equal(th_smtp_sink_wait(&sink, sink_seen + 1, 0), sink_seen);
}

/* (d) A Cyrillic subject and body go out encoded and decode back. */
static void cyrillic(void **state)
{
    (void)state;
    const char *F = "Cyrillic";
    int64_t ch = add_channel("Кириллица", F, sink.port);
    deliver(F, "From: =?UTF-8?B?0JDQvdC90LAg0KHQvNC40YDQvdC+0LLQsA==?= <anna@example.ru>\r\n"
               "To: " FROM "\r\n"
               "Subject: =?UTF-8?B?0JLQvtC/0YDQvtGBINC/0L4g0LTQvtGB0YLQsNCy0LrQtQ==?=\r\n"
               "Message-ID: <anna-1@example.ru>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0300\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n"
               "Когда привезут кухню?\r\n");
    int64_t conv = conversation_of(ch, "anna-1@example.ru");
    const char *text = "Здравствуйте, Анна!\nКухню привезут в пятницу, с 10 до 14 часов. "
                       "Монтажники позвонят заранее, за час до приезда.";
    json_t *b = json_pack("{s:s}", "text", text);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    int64_t id;
    /* The agent works in Russian: the attribution line is Russian too. */
    q_int("UPDATE users SET locale = 'ru' WHERE email = 'agent@shop.example' AND id > ?", 0);
    long status = reply(conv, body, &id);
    q_int("UPDATE users SET locale = NULL WHERE email = 'agent@shop.example' AND id > ?", 0);
    assert_int_equal(status, 202);
    free(body);
    char *raw;
    struct sb_inbound *in = next_sent(&raw);
    wire_clean(raw);
    assert_non_null(strstr(raw, "\nSubject: =?UTF-8?B?"));
    assert_non_null(strstr(raw, "charset=utf-8"));
    assert_non_null(strstr(raw, "Content-Transfer-Encoding: base64"));
    assert_non_null(strstr(raw, "X-Rcpt-Args: <anna@example.ru>"));
    assert_string_equal(in->subject, "Re: Вопрос по доставке");
    assert_non_null(strstr(in->text, "Здравствуйте, Анна!"));
    assert_non_null(strstr(in->text, "за час до приезда."));
    assert_non_null(strstr(in->html, "Кухню привезут в пятницу"));
    assert_non_null(strstr(in->text,
                           "за час до приезда.\r\n\r\n23.11.2026 07:00 UTC, Анна Смирнова "
                           "<anna@example.ru> пишет:\r\n> Когда привезут кухню?"));
    assert_non_null(strstr(in->html, "пишет:</div>"));
    assert_null(strstr(in->text, "wrote:"));
    sb_inbound_free(&in);
    free(raw);
    assert_int_equal(
        wait_int(1, 20,
                 "SELECT COUNT(*) FROM interactions WHERE id = ? AND delivery_status = 'sent'", id),
        1);
}

/* (c) 4xx: retried, and sent once the server takes it. */
static void soft_refusal_is_retried(void **state)
{
    (void)state;
    const char *F = "Soft";
    struct th_smtp_sink soft;
    const char *soft_args[] = {"-r", "RCPT", "-b", "451 4.7.1 Greylisted, please try again later",
                               NULL};
    th_smtp_sink_start(&soft, soft_args);
    int64_t ch = add_channel("Soft", F, soft.port);
    deliver(F, "From: greylisted@example.net\r\nTo: " FROM "\r\nSubject: Hello\r\n"
               "Message-ID: <grey-1@example.net>\r\n\r\nHi\r\n");
    int64_t conv = conversation_of(ch, "grey-1@example.net");
    int64_t id;
    assert_int_equal(reply(conv, "{\"text\":\"Hi back\"}", &id), 202);
    /* Two attempts refused, the job still queued for a retry, the reason kept. */
    assert_int_equal(wait_int(1, 20,
                              "SELECT COUNT(*) FROM outbox WHERE interaction_id = ? AND attempts "
                              ">= 2 AND status <> 'failed' AND last_error LIKE '%451%Greylisted%'",
                              id),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE id = ? AND "
                           "delivery_status = 'queued'",
                           id),
                     1);
    assert_int_equal(th_smtp_sink_wait(&soft, 1, 0), 0);
    /* The client writes again while our reply waits: the reply, when it
     * goes, still quotes the mail it answered, not the newest one. */
    deliver(F, "From: greylisted@example.net\r\nTo: " FROM "\r\nSubject: Re: Hello\r\n"
               "Message-ID: <grey-2@example.net>\r\nIn-Reply-To: <grey-1@example.net>\r\n\r\n"
               "Are you there?\r\n");
    assert_int_equal(conversation_of(ch, "grey-2@example.net"), conv);
    /* The server takes mail again on the same port. */
    int port = soft.port;
    th_smtp_sink_stop(&soft);
    th_smtp_sink_start_on(&soft, port, NULL);
    assert_int_equal(wait_int(1, 40,
                              "SELECT COUNT(*) FROM interactions WHERE id = ? AND "
                              "delivery_status = 'sent'",
                              id),
                     1);
    assert_int_equal(th_smtp_sink_wait(&soft, 1, 5000), 1);
    size_t len = 0;
    char *raw = th_smtp_sink_message(&soft, 0, &len), err[256] = "";
    struct sb_inbound *in = NULL;
    assert_non_null(raw);
    assert_int_equal(sb_mime_parse((const unsigned char *)raw, len, &in, err, sizeof err), SB_OK);
    assert_non_null(strstr(in->text, "greylisted@example.net wrote:\n> Hi\n"));
    assert_true(!strncmp(in->text, "Hi back\n\n", 9));
    assert_null(strstr(in->text, "Are you there?"));
    sb_inbound_free(&in);
    free(raw);
    th_smtp_sink_stop(&soft);
}

/* (c) 5xx: failed at once with the server's reason. */
static void hard_refusal_fails_with_reason(void **state)
{
    (void)state;
    const char *F = "Hard";
    int64_t ch = add_channel("Hard", F, hard.port);
    deliver(F, "From: nobody@example.org\r\nTo: " FROM "\r\nSubject: Hello\r\n"
               "Message-ID: <nobody-1@example.org>\r\n\r\nHi\r\n");
    int64_t conv = conversation_of(ch, "nobody-1@example.org");
    int64_t id;
    assert_int_equal(reply(conv, "{\"text\":\"Hi back\"}", &id), 202);
    assert_int_equal(wait_int(1, 20,
                              "SELECT COUNT(*) FROM interactions WHERE id = ? AND "
                              "delivery_status = 'failed' AND JSON_VALUE(meta, "
                              "'$.delivery_error') LIKE '%550%User unknown%'",
                              id),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox WHERE interaction_id = ? AND status = "
                           "'failed' AND attempts = 1",
                           id),
                     1);
    assert_int_equal(th_smtp_sink_wait(&hard, 1, 0), 0);
}

/* Files in a maildir folder (new/ and cur/) holding `needle`. */
static int folder_has(const char *folder, const char *needle)
{
    int n = 0;
    for (int sub = 0; sub < 2; sub++) {
        char path[700];
        snprintf(path, sizeof path, "%s/.%s/%s", dc.maildir, folder, sub ? "cur" : "new");
        DIR *d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.')
                continue;
            char f[1000];
            snprintf(f, sizeof f, "%s/%s", path, e->d_name);
            FILE *fp = fopen(f, "rb");
            char buf[16384];
            size_t got = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
            if (fp)
                fclose(fp);
            buf[got] = '\0';
            if (strstr(buf, needle))
                n++;
        }
        if (d)
            closedir(d);
    }
    return n;
}

/* append_sent: the sent reply is also APPENDed to the IMAP Sent folder. */
static void append_to_sent(void **state)
{
    (void)state;
    const char *F = "AppendInbox";
    /* The mailbox's Sent folder exists already, as on any real server. */
    deliver("Sent", "From: " FROM "\r\nTo: someone@example.org\r\nSubject: Earlier\r\n"
                    "Message-ID: <earlier@shop.example>\r\n\r\nSent before.\r\n");
    int64_t ch = add_channel_with("Append", F, sink.port, "append_sent=true");
    deliver(F, "From: keeper@example.org\r\nTo: " FROM "\r\nSubject: Keep a copy\r\n"
               "Message-ID: <keeper-1@example.org>\r\n\r\nHi\r\n");
    int64_t conv = conversation_of(ch, "keeper-1@example.org");
    int64_t id;
    assert_int_equal(reply(conv, "{\"text\":\"Filed under Sent\"}", &id), 202);
    char *raw;
    struct sb_inbound *in = next_sent(&raw);
    sb_inbound_free(&in);
    free(raw);
    assert_int_equal(
        wait_int(1, 20,
                 "SELECT COUNT(*) FROM interactions WHERE id = ? AND delivery_status = 'sent'", id),
        1);
    char mid[512], needle[600];
    q_text("SELECT message_id FROM interactions WHERE id = ?", id, mid, sizeof mid);
    snprintf(needle, sizeof needle, "Message-ID: <%s>", mid);
    int n = 0;
    for (int i = 0; i < 100 && n == 0; i++) {
        n = folder_has("Sent", needle);
        if (!n)
            usleep(100 * 1000);
    }
    assert_int_equal(n, 1);
    assert_int_equal(folder_has("Sent", "Message-ID: <earlier@shop.example>"), 1);
}

/* `channel test` checks the SMTP side too (EHLO, NOOP; nothing sent), and
 * says which side fails. */
static void channel_test_both_sides(void **state)
{
    (void)state;
    int before = th_smtp_sink_wait(&sink, 0, 0);
    deliver("Tested", "From: a@example.org\r\nSubject: x\r\nMessage-ID: <tested-1@example.org>"
                      "\r\n\r\nx\r\n");
    int64_t ch = add_channel("Tested", "Tested", sink.port);
    char id[32], out[2048], want[128];
    snprintf(id, sizeof id, "%lld", (long long)ch);
    const char *args[] = {"channel", "test", id, NULL};
    int rc = th_run(args, NULL, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "channel test: %s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "ok: logged in to 127.0.0.1"));
    snprintf(want, sizeof want, "ok: SMTP 127.0.0.1:%d answers", sink.port);
    assert_non_null(strstr(out, want));
    assert_int_equal(th_smtp_sink_wait(&sink, 0, 0), before);

    /* Nobody listening on the SMTP port: the test fails. */
    struct th_smtp_sink gone;
    th_smtp_sink_start(&gone, NULL);
    int port = gone.port;
    th_smtp_sink_stop(&gone);
    int64_t dead = add_channel("Dead SMTP", "Tested", port);
    snprintf(id, sizeof id, "%lld", (long long)dead);
    assert_int_not_equal(th_run(args, NULL, out, sizeof out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reply_round_trip),        cmocka_unit_test(cyrillic),
        cmocka_unit_test(soft_refusal_is_retried), cmocka_unit_test(hard_refusal_fails_with_reason),
        cmocka_unit_test(append_to_sent),          cmocka_unit_test(channel_test_both_sides),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
