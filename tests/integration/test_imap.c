/* The e-mail channel's IMAP side against a real Dovecot on loopback: mixed
 * mail (a bounce, an auto-reply, garbage) stored with the right flags and
 * suppressions; restarts fetch what arrived meanwhile and double nothing;
 * kill -9 in the middle of a large sync loses and doubles nothing; a
 * UIDVALIDITY change re-syncs without duplicates; a reply threads into its
 * conversation; a wrong password shows in the channel status and, after
 * three failures, as an event to admins, and its recovery too.
 *
 * Every test has its own folder (Maildir++ .NAME) and its own channel, so
 * they share one Dovecot and one server. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct th_dovecot dc;
static struct th_server srv;
static struct sb_db *db;
static const char *const server_env[] = {"SWITCHBOARD_IMAP_SCAN_SECONDS=1",
                                         "SWITCHBOARD_IMAP_LEASE_SECONDS=6",
                                         "SWITCHBOARD_IMAP_BATCH=100", NULL};

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_dovecot_start(&dc);
    db = th_db_connect();
    th_server_start(&srv, server_env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_server_stop(&srv);
    sb_db_close(&db);
    th_dovecot_stop(&dc);
    th_db_teardown();
    return 0;
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

/* The first cell of a one-row query with a text argument, copied. */
static void q_text(const char *sql, int64_t arg, const char *targ, char *out, size_t outlen)
{
    struct sb_db_val a[] = {SB_INT(arg), SB_TEXT(targ)};
    struct sb_db_rows r;
    char err[512] = "";
    int rc = sb_db_exec(db, sql, a, targ ? 2 : 1, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    snprintf(out, outlen, "%s", r.nrows && sb_db_cell(&r, 0, 0) ? sb_db_cell(&r, 0, 0) : "");
    sb_db_rows_free(&r);
}

static int64_t add_channel_with(const char *name, const char *folder, const char *password,
                                const char *extra)
{
    char port[32], fold[128], pw[128], out[4096];
    snprintf(port, sizeof port, "port=%d", dc.port);
    snprintf(fold, sizeof fold, "folders=%s", folder);
    snprintf(pw, sizeof pw, "password=%s", password);
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
                          pw,
                          "--set",
                          fold,
                          "--set",
                          "poll_seconds=2",
                          extra ? "--set" : NULL,
                          extra,
                          NULL};
    int rc = th_run(args, NULL, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "channel add: %s\n", out);
    assert_int_equal(rc, 0);
    json_t *o = json_loads(out, 0, NULL);
    int64_t id = json_integer_value(json_object_get(o, "id"));
    /* The password never comes back. */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(o, "config"), "password")), "********");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "config"), "port")),
                     dc.port);
    json_decref(o);
    assert_true(id > 0);
    return id;
}

static int64_t add_channel(const char *name, const char *folder, const char *password)
{
    return add_channel_with(name, folder, password, NULL);
}

static int64_t stored(int64_t channel)
{
    return q_int("SELECT COUNT(*) FROM interactions WHERE channel_id = ?", channel);
}

/* Wait until the channel has `want` interactions; fails after `secs`. */
static void wait_stored(int64_t channel, int64_t want, int secs)
{
    int64_t n = -1;
    for (int i = 0; i < secs * 10; i++) {
        n = stored(channel);
        if (n >= want)
            break;
        usleep(100 * 1000);
    }
    if (n != want)
        fprintf(stderr, "channel %lld: %lld stored, want %lld\n", (long long)channel, (long long)n,
                (long long)want);
    assert_int_equal(n, want);
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

static void plain(const char *folder, const char *from, const char *msgid, const char *subject,
                  const char *extra)
{
    deliver(folder,
            "From: %s\r\nTo: support@shop.example\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n%sMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nHello about %s.\r\n",
            from, subject, msgid, extra ? extra : "", subject);
}

/* Messages with the \Seen flag (",S" in a maildir file name) or moved to
 * cur/ by us would mean we changed the mailbox. */
static int seen_files(const char *folder)
{
    char path[600];
    snprintf(path, sizeof path, "%s/.%s/cur", dc.maildir, folder);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *flags = strstr(e->d_name, ":2,");
        if (flags && strchr(flags, 'S'))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void mixed_mail(void **state)
{
    (void)state;
    const char *F = "Mixed";
    plain(F, "Anna Smirnova <anna@example.com>", "order-1@example.com", "Order 1", NULL);
    deliver(F,
            "From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>\r\n"
            "To: support@shop.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "Message-ID: <bounce-1@mx.shop.example>\r\nAuto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
            "boundary=\"B1\"\r\n\r\n--B1\r\nContent-Type: text/plain\r\n\r\nI'm sorry, your "
            "message could not be delivered.\r\n\r\n--B1\r\n"
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.shop.example\r\n"
            "\r\nFinal-Recipient: rfc822; Gone@Example.NET\r\nAction: failed\r\n"
            "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n--B1\r\n"
            "Content-Type: text/rfc822-headers\r\n\r\nFrom: support@shop.example\r\n"
            "To: gone@example.net\r\nMessage-ID: <campaign-7@shop.example>\r\n"
            "Subject: News\r\n\r\n--B1--\r\n");
    deliver(F, "From: Boris <boris@example.org>\r\nTo: support@shop.example\r\n"
               "Subject: Out of office: Order 1\r\nMessage-ID: <ooo-1@example.org>\r\n"
               "Auto-Submitted: auto-replied\r\nContent-Type: text/plain\r\n\r\n"
               "I am away until Monday.\r\n");
    /* Garbage: no header block, bytes that are no text at all. */
    deliver(F, "%s", "\x01\x02\xff\xfe garbage \x80\x81 no headers here");
    int64_t ch = add_channel("Mixed mail", F, TH_DOVECOT_PASSWORD);
    wait_stored(ch, 4, 30);

    char flags[128];
    q_text("SELECT flags FROM interactions WHERE channel_id = ? AND external_id = ?", ch,
           "order-1@example.com", flags, sizeof flags);
    assert_string_equal(flags, "");
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions i JOIN client_identities ci ON "
                           "ci.client_id = i.client_id WHERE ci.value = 'anna@example.com' AND "
                           "i.conversation_id IS NOT NULL AND i.channel_id = ?",
                           ch),
                     1);

    q_text("SELECT flags FROM interactions WHERE channel_id = ? AND external_id = ?", ch,
           "bounce-1@mx.shop.example", flags, sizeof flags);
    assert_non_null(strstr(flags, "bounce"));
    /* A bounce belongs to no client and opens no conversation. */
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE channel_id = ? AND "
                           "external_id = 'bounce-1@mx.shop.example' AND client_id IS NULL AND "
                           "conversation_id IS NULL",
                           ch),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM client_identities WHERE value LIKE "
                           "'mailer-daemon@%' AND ? > 0",
                           1),
                     0);
    /* ...and suppresses the failed recipient (normalised), with its source. */
    assert_int_equal(q_int("SELECT COUNT(*) FROM suppressions s JOIN interactions i ON i.id = "
                           "s.source_interaction_id WHERE s.email = 'gone@example.net' AND "
                           "s.reason = 'hard_bounce' AND s.suppressed = 1 AND i.channel_id = ?",
                           ch),
                     1);

    q_text("SELECT flags FROM interactions WHERE channel_id = ? AND external_id = ?", ch,
           "ooo-1@example.org", flags, sizeof flags);
    assert_non_null(strstr(flags, "auto_reply"));

    /* The garbage is kept raw and flagged, keyed by its digest. */
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions i JOIN blobs b ON b.sha256 = "
                           "i.raw_sha256 WHERE i.channel_id = ? AND i.external_id LIKE 'sha256:%'",
                           ch),
                     1);
    /* Read-only: nothing marked \Seen. */
    assert_int_equal(seen_files(F), 0);
    /* The channel shows a success. */
    assert_true(q_int("SELECT last_success_at IS NOT NULL FROM channels WHERE id = ?", ch) == 1);
}

static void restart_fetches_new_mail_once(void **state)
{
    (void)state;
    const char *F = "Restart";
    for (int i = 0; i < 3; i++) {
        char id[64], subj[32];
        snprintf(id, sizeof id, "restart-%d@example.com", i);
        snprintf(subj, sizeof subj, "Question %d", i);
        plain(F, "Vera <vera@example.com>", id, subj, NULL);
    }
    int64_t ch = add_channel("Restart mailbox", F, TH_DOVECOT_PASSWORD);
    wait_stored(ch, 3, 30);
    /* Stopping interrupts IDLE at once (the drain has nothing else to wait for). */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(th_server_stop(&srv), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "stopped in %.2f s\n", took);
    assert_true(took < 3.0);
    /* Mail that arrives while we are down, whatever its date. */
    for (int i = 3; i < 5; i++) {
        char id[64], subj[32];
        snprintf(id, sizeof id, "restart-%d@example.com", i);
        snprintf(subj, sizeof subj, "Question %d", i);
        plain(F, "Vera <vera@example.com>", id, subj, NULL);
    }
    th_server_start(&srv, server_env);
    wait_stored(ch, 5, 30);
    sleep(3); /* a few more passes: nothing more may appear */
    assert_int_equal(stored(ch), 5);
    assert_int_equal(
        q_int("SELECT COUNT(DISTINCT external_id) FROM interactions WHERE channel_id = ?", ch), 5);
    assert_int_equal(
        q_int("SELECT last_uid FROM channel_cursors WHERE channel_id = ? AND folder = 'Restart'",
              ch),
        5);
}

static void count_files(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.')
            (*n)++;
    if (d)
        closedir(d);
}

static void kill9_during_sync(void **state)
{
    (void)state;
    const char *F = "Big";
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        char id[64], subj[64], from[96];
        snprintf(id, sizeof id, "big-%d@example.com", i);
        snprintf(subj, sizeof subj, "Lead %d", i);
        snprintf(from, sizeof from, "Client %d <client%d@example.com>", i % 300, i % 300);
        plain(F, from, id, subj, NULL);
    }
    int files = 0;
    char path[600];
    snprintf(path, sizeof path, "%s/.%s/new", dc.maildir, F);
    count_files(path, &files);
    snprintf(path, sizeof path, "%s/.%s/cur", dc.maildir, F);
    count_files(path, &files);
    assert_int_equal(files, N);

    int64_t ch = add_channel("Big mailbox", F, TH_DOVECOT_PASSWORD);
    int64_t n = 0;
    for (int i = 0; i < 600 && n < 300; i++) {
        usleep(50 * 1000);
        n = stored(ch);
    }
    assert_true(n >= 300);
    kill(srv.pid, SIGKILL);
    int status;
    waitpid(srv.pid, &status, 0);
    srv.pid = 0;
    int64_t at_kill = stored(ch);
    fprintf(stderr, "kill -9 with %lld of %d stored\n", (long long)at_kill, N);
    /* The dead node's lease must lapse (6 s) before the new one fetches. */
    th_server_start(&srv, server_env);
    wait_stored(ch, N, 180);
    assert_int_equal(
        q_int("SELECT COUNT(DISTINCT external_id) FROM interactions WHERE channel_id = ?", ch), N);
    assert_int_equal(
        q_int("SELECT generation FROM leases WHERE name = CONCAT('imap:', ?)", ch) >= 2, 1);
}

static void uidvalidity_change_resyncs(void **state)
{
    (void)state;
    const char *F = "Renumbered";
    for (int i = 0; i < 3; i++) {
        char id[64];
        snprintf(id, sizeof id, "uv-%d@example.com", i);
        plain(F, "Gleb <gleb@example.com>", id, "Invoice", NULL);
    }
    int64_t ch = add_channel("Renumbered mailbox", F, TH_DOVECOT_PASSWORD);
    wait_stored(ch, 3, 30);
    int64_t before = q_int(
        "SELECT uidvalidity FROM channel_cursors WHERE channel_id = ? AND folder = 'Renumbered'",
        ch);
    assert_int_equal(th_server_stop(&srv), 0);
    sleep(1); /* Dovecot's new UIDVALIDITY is the time */
    /* Forget the UIDs: Dovecot renumbers the folder with a new UIDVALIDITY. */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -f '%s/.%s/dovecot-uidlist' '%s/.%s'/dovecot.index*", dc.maildir,
             F, dc.maildir, F);
    assert_int_equal(system(cmd), 0);
    plain(F, "Gleb <gleb@example.com>", "uv-3@example.com", "Invoice", NULL);
    th_server_start(&srv, server_env);
    wait_stored(ch, 4, 30);
    for (int i = 0; i < 50; i++) { /* the cursor moves in the same transaction */
        if (q_int("SELECT uidvalidity FROM channel_cursors WHERE channel_id = ? AND folder = "
                  "'Renumbered'",
                  ch) != before)
            break;
        usleep(100 * 1000);
    }
    assert_int_not_equal(q_int("SELECT uidvalidity FROM channel_cursors WHERE channel_id = ? AND "
                               "folder = 'Renumbered'",
                               ch),
                         before);
    sleep(2);
    assert_int_equal(stored(ch), 4);
}

static void reply_threads(void **state)
{
    (void)state;
    const char *F = "Threads";
    plain(F, "Dmitry <dmitry@example.com>", "thread-root@example.com", "Contract", NULL);
    int64_t ch = add_channel("Threads mailbox", F, TH_DOVECOT_PASSWORD);
    wait_stored(ch, 1, 30);
    /* A colleague of his answers on the thread, and another writes anew. */
    plain(F, "Olga <olga@example.com>", "thread-reply@example.com", "Re: Contract",
          "In-Reply-To: <thread-root@example.com>\r\nReferences: <thread-root@example.com>\r\n");
    plain(F, "Olga <olga@example.com>", "thread-ref@example.com", "Re: Contract",
          "References: <unknown@example.com> <thread-root@example.com>\r\n");
    plain(F, "Pavel <pavel@example.com>", "thread-other@example.com", "Something else", NULL);
    wait_stored(ch, 4, 30);
    int64_t root = q_int("SELECT conversation_id FROM interactions WHERE channel_id = ? AND "
                         "external_id = 'thread-root@example.com'",
                         ch);
    assert_true(root > 0);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE conversation_id = ?", root), 3);
    assert_int_not_equal(q_int("SELECT conversation_id FROM interactions WHERE channel_id = ? AND "
                               "external_id = 'thread-other@example.com'",
                               ch),
                         root);
}

static void wrong_password_is_visible(void **state)
{
    (void)state;
    const char *F = "Locked";
    plain(F, "Irina <irina@example.com>", "locked-1@example.com", "Hello", NULL);
    int64_t ch = add_channel("Locked mailbox", F, "not-the-password");
    char err[1024] = "";
    for (int i = 0; i < 300 && !err[0]; i++) {
        q_text("SELECT last_error FROM channels WHERE id = ?", ch, NULL, err, sizeof err);
        if (!err[0])
            usleep(100 * 1000);
    }
    fprintf(stderr, "last_error: %s\n", err);
    assert_non_null(strstr(err, "refused the login"));
    assert_int_equal(stored(ch), 0);
    /* `channel list` shows it too. */
    char out[65536];
    const char *list[] = {"channel", "list", NULL};
    assert_int_equal(th_run(list, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "refused the login"));
    /* `channel test` says the same and exits 1. */
    char sid[32];
    snprintf(sid, sizeof sid, "%lld", (long long)ch);
    const char *test[] = {"channel", "test", sid, NULL};
    assert_int_equal(th_run(test, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "refused the login"));
    assert_null(strstr(out, "not-the-password"));

    /* Three failures in a row (5 s, then 10 s apart): admins hear once. */
    int64_t events = 0;
    for (int i = 0; i < 400 && events < 1; i++) {
        events = q_int("SELECT COUNT(*) FROM events WHERE type = 'channel.failing' AND "
                       "JSON_VALUE(data, '$.channel_id') = ?",
                       ch);
        if (!events)
            usleep(100 * 1000);
    }
    assert_int_equal(events, 1);
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/metrics", NULL, NULL, &r), 0);
    const char *m = strstr(r.body, "\nswitchboard_imap_mailboxes_failing ");
    int failing = m ? atoi(m + strlen("\nswitchboard_imap_mailboxes_failing ")) : 0;
    int errors = strstr(r.body, "\nswitchboard_imap_errors_total ") != NULL;
    th_resp_free(&r);
    assert_true(failing >= 1); /* this one, and the TLS test's refused ones */
    assert_true(errors);

    /* The right password (copied, sealed, from a working channel): it
     * recovers, says so, and fetches. */
    add_channel("Locked key", F, TH_DOVECOT_PASSWORD);
    static const char fix[] =
        "UPDATE channels c JOIN channels good ON good.name = 'Locked key' SET c.config = "
        "JSON_SET(c.config, '$.password', JSON_VALUE(good.config, '$.password')) WHERE c.id = ?";
    struct sb_db_val a[] = {SB_INT(ch)};
    char e[256] = "";
    assert_int_equal(sb_db_exec(db, fix, a, 1, NULL, e, sizeof e), SB_OK);
    wait_stored(ch, 1, 90);
    int64_t rec = 0;
    for (int i = 0; i < 50 && !rec; i++) {
        rec = q_int("SELECT COUNT(*) FROM events WHERE type = 'channel.recovered' AND "
                    "JSON_VALUE(data, '$.channel_id') = ?",
                    ch);
        if (!rec)
            usleep(100 * 1000);
    }
    assert_int_equal(rec, 1);
}

/* Backdate every message now in the folder (its INTERNALDATE, for maildir
 * the file's mtime) by `days`. */
static void backdate(const char *folder, int days)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/.%s/new", dc.maildir, folder);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= (time_t)days * 86400;
    tv[1] = tv[0];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[900];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_int_equal(utimes(path, tv), 0);
    }
    closedir(d);
}

static void since_days_only_first_sync(void **state)
{
    (void)state;
    const char *F = "Since";
    plain(F, "Old Client <old1@example.com>", "since-old-1@example.com", "Old 1", NULL);
    plain(F, "Old Client <old1@example.com>", "since-old-2@example.com", "Old 2", NULL);
    backdate(F, 30);
    plain(F, "New Client <new1@example.com>", "since-new-1@example.com", "New 1", NULL);
    int64_t ch = add_channel_with("Since mailbox", F, TH_DOVECOT_PASSWORD, "since_days=7");
    wait_stored(ch, 1, 30);
    sleep(2);
    assert_int_equal(stored(ch), 1);
    /* After the first sync there is no window: an old-dated message that
     * arrives now is fetched. */
    plain(F, "Old Client <old1@example.com>", "since-old-3@example.com", "Old 3", NULL);
    backdate(F, 60);
    wait_stored(ch, 2, 30);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE channel_id = ? AND "
                           "external_id = 'since-old-3@example.com'",
                           ch),
                     1);
}

/* A message the database refuses (here a Message-ID longer than the 255
 * bytes an external id may have) does not block the batch it is in: the
 * others are stored, it is quarantined raw (or stored, should the parser
 * shorten such ids), and the cursor passes it. */
static void refused_message_does_not_block(void **state)
{
    (void)state;
    const char *F = "Refused";
    char longid[400];
    memset(longid, 'x', 300);
    snprintf(longid + 300, sizeof longid - 300, "@example.com");
    plain(F, "Zoya <zoya@example.com>", "refused-1@example.com", "Before", NULL);
    plain(F, "Zoya <zoya@example.com>", longid, "Long id", NULL);
    plain(F, "Zoya <zoya@example.com>", "refused-3@example.com", "After", NULL);
    int64_t ch = add_channel("Refused mailbox", F, TH_DOVECOT_PASSWORD);
    int64_t in = 0, q = 0;
    for (int i = 0; i < 300 && in + q < 3; i++) {
        usleep(100 * 1000);
        in = stored(ch);
        q = q_int("SELECT COUNT(*) FROM raw_inbound WHERE channel_id = ? AND source = 'imap'", ch);
    }
    fprintf(stderr, "refused: %lld stored, %lld quarantined\n", (long long)in, (long long)q);
    assert_int_equal(in + q, 3);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE channel_id = ? AND "
                           "external_id IN ('refused-1@example.com', 'refused-3@example.com')",
                           ch),
                     2);
    if (q) {
        char err[1024];
        q_text("SELECT error FROM raw_inbound WHERE channel_id = ?", ch, NULL, err, sizeof err);
        assert_non_null(strstr(err, "UID 2 in Refused"));
        assert_int_equal(
            q_int("SELECT LENGTH(body) > 300 FROM raw_inbound WHERE channel_id = ?", ch), 1);
    }
    assert_int_equal(
        q_int("SELECT last_uid FROM channel_cursors WHERE channel_id = ? AND folder = 'Refused'",
              ch),
        3);
    sleep(3); /* and it is not retried forever */
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM raw_inbound WHERE channel_id = ? AND source = 'imap'", ch), q);
}

static void soft_bounce(const char *folder, int n)
{
    deliver(folder,
            "From: Mail Delivery System <MAILER-DAEMON@mx.shop.example>\r\n"
            "To: support@shop.example\r\nSubject: Delayed Mail (still being retried)\r\n"
            "Message-ID: <soft-%d@mx.shop.example>\r\nAuto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
            "boundary=\"S%d\"\r\n\r\n--S%d\r\nContent-Type: text/plain\r\n\r\nThe mailbox is "
            "full; delivery will be retried.\r\n\r\n--S%d\r\n"
            "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.shop.example\r\n"
            "\r\nFinal-Recipient: rfc822; full@example.net\r\nAction: delayed\r\n"
            "Status: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n\r\n--S%d--\r\n",
            n, n, n, n, n);
}

/* Soft bounces count and suppress at the third; a complaint (ARF)
 * suppresses at once; re-reading the same reports counts nothing twice. */
static void suppressions_soft_and_complaint(void **state)
{
    (void)state;
    const char *F = "Reports";
    soft_bounce(F, 1);
    soft_bounce(F, 2);
    deliver(F, "From: Mail Provider <feedback@fbl.example.org>\r\nTo: fbl@shop.example\r\n"
               "Subject: Complaint about message from shop.example\r\n"
               "Message-ID: <arf-1@fbl.example.org>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/report; report-type=feedback-report; boundary=\"F1\"\r\n"
               "\r\n--F1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
               "--F1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
               "User-Agent: FBL/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <news@shop.example>\r\n"
               "Original-Rcpt-To: <angry@example.org>\r\n\r\n--F1\r\n"
               "Content-Type: message/rfc822\r\n\r\nFrom: news@shop.example\r\n"
               "To: angry@example.org\r\nMessage-ID: <campaign-8@shop.example>\r\n"
               "Subject: News\r\n\r\nBuy now\r\n--F1--\r\n");
    int64_t ch = add_channel("Reports mailbox", F, TH_DOVECOT_PASSWORD);
    wait_stored(ch, 3, 30);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE channel_id = ? AND "
                           "FIND_IN_SET('bounce', flags) AND client_id IS NULL",
                           ch),
                     3);
    assert_int_equal(q_int("SELECT soft_count * 10 + suppressed FROM suppressions WHERE email = "
                           "'full@example.net' AND reason = 'soft_bounce' AND ? > 0",
                           1),
                     20);
    assert_int_equal(q_int("SELECT suppressed FROM suppressions WHERE email = "
                           "'angry@example.org' AND reason = 'complaint' AND ? > 0",
                           1),
                     1);
    soft_bounce(F, 3);
    wait_stored(ch, 4, 30);
    assert_int_equal(q_int("SELECT soft_count * 10 + suppressed FROM suppressions WHERE email = "
                           "'full@example.net' AND ? > 0",
                           1),
                     31);
}

static int64_t add_tls_channel(const char *name, const char *tls, int port, const char *verify)
{
    char p[32], t[32], v[32], out[4096];
    snprintf(p, sizeof p, "port=%d", port);
    snprintf(t, sizeof t, "tls=%s", tls);
    snprintf(v, sizeof v, "tls_verify=%s", verify);
    const char *args[] = {"channel",
                          "add",
                          "email",
                          "--name",
                          name,
                          "--set",
                          "host=localhost",
                          "--set",
                          p,
                          "--set",
                          t,
                          "--set",
                          v,
                          "--set",
                          "username=tls@shop.example",
                          "--set",
                          "password=" TH_DOVECOT_PASSWORD,
                          "--set",
                          "folders=Secure",
                          NULL};
    assert_int_equal(th_run(args, NULL, out, sizeof out), 0);
    json_t *o = json_loads(out, 0, NULL);
    int64_t id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

/* TLS: imaps and STARTTLS both work; a certificate nobody vouches for is
 * refused before the password is sent, unless tls_verify is off. */
static void tls_modes(void **state)
{
    (void)state;
    char sid[32], out[4096];
    const char *test[] = {"channel", "test", sid, NULL};
    plain("Secure", "Tanya <tanya@example.com>", "secure-1@example.com", "Over TLS", NULL);
    plain("Secure", "Tanya <tanya@example.com>", "secure-2@example.com", "Over TLS", NULL);
    int64_t strict = add_tls_channel("TLS strict", "imaps", dc.imaps_port, "true");
    snprintf(sid, sizeof sid, "%lld", (long long)strict);
    int rc = th_run(test, NULL, out, sizeof out);
    if (rc != 1)
        fprintf(stderr, "channel test: %s\n", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "TLS: the certificate of localhost is not trusted"));
    int64_t imaps = add_tls_channel("TLS imaps", "imaps", dc.imaps_port, "false");
    snprintf(sid, sizeof sid, "%lld", (long long)imaps);
    rc = th_run(test, NULL, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "channel test: %s\n", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "ok: logged in"));
    int64_t starttls = add_tls_channel("TLS starttls", "starttls", dc.port, "false");
    snprintf(sid, sizeof sid, "%lld", (long long)starttls);
    assert_int_equal(th_run(test, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "ok: logged in"));
    /* imaps spoken to the plain port fails clearly, without hanging. */
    int64_t wrong = add_tls_channel("TLS wrong port", "imaps", dc.port, "false");
    snprintf(sid, sizeof sid, "%lld", (long long)wrong);
    assert_int_equal(th_run(test, NULL, out, sizeof out), 1);
    /* The poller fetches over TLS too. */
    wait_stored(imaps, 2, 30);
    wait_stored(starttls, 2, 30);
    assert_int_equal(stored(strict), 0);
}

static void channel_test_and_validation(void **state)
{
    (void)state;
    int64_t ch = add_channel("Tested mailbox", "Mixed", TH_DOVECOT_PASSWORD);
    char sid[32], out[4096];
    snprintf(sid, sizeof sid, "%lld", (long long)ch);
    const char *test[] = {"channel", "test", sid, NULL};
    assert_int_equal(th_run(test, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "ok: logged in"));
    assert_non_null(strstr(out, "Mixed: 4 messages"));
    /* Clear refusals. */
    const char *none[] = {"channel", "add", "email", "--name", "Empty", NULL};
    assert_int_equal(th_run(none, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "IMAP side"));
    const char *badtls[] = {"channel",    "add",    "email",    "--name",     "Bad",
                            "--set",      "host=x", "--set",    "username=u", "--set",
                            "password=p", "--set",  "tls=ssl3", NULL};
    assert_int_equal(th_run(badtls, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "tls: 'ssl3' is not one of imaps, starttls, none"));
    /* SMTP only: fine without any IMAP key; from must be an address. */
    const char *smtp[] = {"channel",
                          "add",
                          "email",
                          "--name",
                          "Campaigns",
                          "--set",
                          "smtp_host=smtp.example.com",
                          "--set",
                          "from=Shop <news@shop.example>",
                          NULL};
    assert_int_equal(th_run(smtp, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"smtp_port\":587"));
    const char *smtpbad[] = {"channel",
                             "add",
                             "email",
                             "--name",
                             "Campaigns2",
                             "--set",
                             "smtp_host=smtp.example.com",
                             "--set",
                             "from=nobody",
                             NULL};
    assert_int_equal(th_run(smtpbad, NULL, out, sizeof out), 1);
    assert_non_null(strstr(out, "from:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixed_mail),
        cmocka_unit_test(channel_test_and_validation),
        cmocka_unit_test(tls_modes),
        cmocka_unit_test(restart_fetches_new_mail_once),
        cmocka_unit_test(uidvalidity_change_resyncs),
        cmocka_unit_test(reply_threads),
        cmocka_unit_test(since_days_only_first_sync),
        cmocka_unit_test(suppressions_soft_and_complaint),
        cmocka_unit_test(refused_message_does_not_block),
        cmocka_unit_test(wrong_password_is_visible),
        cmocka_unit_test(kill9_during_sync),
    };
    if (getenv("TH_FILTER")) /* e.g. TH_FILTER='*suppressions*' while working on one */
        cmocka_set_test_filter(getenv("TH_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
