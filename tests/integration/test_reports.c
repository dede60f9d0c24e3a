/* GET /api/v1/reports on data built through the real doors: Telegram
 * webhooks (messages dated in the past, so response times have a known
 * size), replies and notes through the API by known agents, assignment and
 * resolution by PATCH. Checks exact counts, that times are of the right
 * size and order, bad parameters, and what an agent outside a team sees. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"
#include "switchboard/tzinfo.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TG_TOKEN  "123456:ABCDEF"
#define TG_SECRET "reports-secret-0123456789"

static struct th_server srv;
static struct th_mock mock;
static struct sb_db *db;
static long long bot_a, bot_b;
static char admin[512], alice[512], bob[512], carol[512], marketer[512];
static long long alice_id, bob_id;
/* conv1: answered by Alice after an hour, resolved by her.
 * conv2: answered by Bob after 10 minutes; the client wrote again since.
 * conv3: nobody answered for two hours (a note does not count).
 * conv4: answered by Alice after a minute; team Carol's.
 * Carol (agent) sees unassigned conv3 and her team's conv4 only. */
static long long conv1, conv2, conv3, conv4;
static time_t t0;
static char today[16]; /* in Moscow */

static int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q_int(const char *fmt, ...)
{
    char sql[1024], err[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = r.nrows && sb_db_cell(&r, 0, 0) ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

static json_t *call(const char *cookie, const char *method, const char *path, const char *body,
                    long want)
{
    return th_call(&srv, cookie, method, path, body, want);
}

/* A Telegram text message from user `from`, dated `date`. */
static void tg_message(long long channel, long long from, const char *name, time_t date,
                       const char *text)
{
    static long long update = 900000, message = 7000;
    json_t *u = json_pack("{s:I,s:{s:I,s:{s:I,s:b,s:s},s:{s:I,s:s,s:s},s:I,s:s}}", "update_id",
                          (json_int_t)++update, "message", "message_id", (json_int_t)++message,
                          "from", "id", (json_int_t)from, "is_bot", 0, "first_name", name, "chat",
                          "id", (json_int_t)from, "first_name", name, "type", "private", "date",
                          (json_int_t)date, "text", text);
    char *body = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    char path[64], h[128];
    snprintf(path, sizeof path, "/hooks/telegram/%lld", channel);
    snprintf(h, sizeof h, "X-Telegram-Bot-Api-Secret-Token: %s", TG_SECRET);
    const char *headers[] = {"Content-Type: application/json", h, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, headers, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "hook: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    free(body);
}

static long long conversation_of(long long from)
{
    return q_int("SELECT c.id FROM conversations c JOIN client_identities ci ON ci.client_id = "
                 "c.client_id WHERE ci.kind = 'telegram' AND ci.value = '%lld' "
                 "ORDER BY c.id DESC LIMIT 1",
                 from);
}

static void post_text(const char *cookie, long long conv, const char *what, const char *text,
                      long want)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/%s", conv, what);
    json_t *b = json_pack("{s:s}", "text", text);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    json_decref(call(cookie, "POST", path, body, want));
    free(body);
}

static void patch(long long conv, const char *body)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", conv);
    json_decref(call(admin, "PATCH", path, body, 200));
}

static long long add_channel(const char *name)
{
    char base[96], out[2048];
    snprintf(base, sizeof base, "api_base=http://127.0.0.1:%d", mock.port);
    const char *args[] = {"channel",
                          "add",
                          "telegram",
                          "--name",
                          name,
                          "--set",
                          base,
                          "--set",
                          "token=" TG_TOKEN,
                          "--set",
                          "secret_token=" TG_SECRET,
                          NULL};
    if (th_run(args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add: %s\n", out);
        return 0;
    }
    json_t *o = json_loads(out, 0, NULL);
    long long id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

static void moscow_day(time_t t, int delta, char *out, size_t outlen)
{
    struct sb_tz tz;
    char err[128];
    assert_int_equal(sb_tz_load("Europe/Moscow", &tz, err, sizeof err), SB_OK);
    int y, m, d;
    sb_civil_from_days(((int64_t)t + sb_tz_offset(&tz, t)) / 86400 + delta, &y, &m, &d);
    snprintf(out, outlen, "%04d-%02d-%02d", y, m, d);
    sb_tz_free(&tz);
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_mock_start(&mock, 200, "{\"ok\":true,\"result\":{\"message_id\":1,\"chat\":{\"id\":1}}}");
    bot_a = add_channel("Bot A");
    bot_b = add_channel("Bot B");
    if (!bot_a || !bot_b)
        return -1;
    db = th_db_connect();
    th_user("admin@example.com", "admin", "admin-password-1");
    th_user("alice@example.com", "agent", "alice-password-1");
    th_user("bob@example.com", "agent", "bob-password-1");
    th_user("carol@example.com", "agent", "carol-password-1");
    th_user("marketer@example.com", "marketer", "marketer-password-1");
    alice_id = q_int("SELECT id FROM users WHERE email = 'alice@example.com'");
    bob_id = q_int("SELECT id FROM users WHERE email = 'bob@example.com'");
    th_server_start(&srv, NULL);
    th_login(&srv, "admin@example.com", "admin-password-1", admin, sizeof admin);
    th_login(&srv, "alice@example.com", "alice-password-1", alice, sizeof alice);
    th_login(&srv, "bob@example.com", "bob-password-1", bob, sizeof bob);
    th_login(&srv, "carol@example.com", "carol-password-1", carol, sizeof carol);
    th_login(&srv, "marketer@example.com", "marketer-password-1", marketer, sizeof marketer);

    t0 = time(NULL);
    moscow_day(t0, 0, today, sizeof today);
    tg_message(bot_a, 5001, "Анна", t0 - 3600, "Хочу кухню");
    tg_message(bot_a, 5002, "Борис", t0 - 600, "Где мой заказ?");
    tg_message(bot_b, 5003, "Вера", t0 - 7200, "Перезвоните");
    tg_message(bot_b, 5004, "Глеб", t0 - 60, "Сколько стоит?");
    conv1 = conversation_of(5001);
    conv2 = conversation_of(5002);
    conv3 = conversation_of(5003);
    conv4 = conversation_of(5004);

    char body[96];
    snprintf(body, sizeof body, "{\"assignee_id\":%lld}", alice_id);
    patch(conv1, body);
    patch(conv4, body);
    snprintf(body, sizeof body, "{\"assignee_id\":%lld}", bob_id);
    patch(conv2, body);
    post_text(alice, conv1, "replies", "Здравствуйте! Пришлём замерщика.", 202);
    post_text(bob, conv2, "replies", "Заказ в пути.", 202);
    post_text(alice, conv4, "replies", "Цены на сайте.", 202);
    post_text(alice, conv3, "notes", "Перезвонить завтра", 201);
    patch(conv1, "{\"status\":\"resolved\"}");
    /* Boris writes again a second after Bob's answer (Telegram dates are
     * whole seconds), so he is waiting again. */
    sleep(2);
    tg_message(bot_a, 5002, "Борис", time(NULL), "Уже неделю жду");

    /* Carol's team has conv4. There is no team API yet: set-up by SQL. */
    q_int("INSERT INTO teams (name) VALUES ('Кухни')");
    long long team = q_int("SELECT id FROM teams WHERE name = 'Кухни'");
    q_int("INSERT INTO team_members (team_id, user_id) SELECT %lld, id FROM users WHERE email = "
          "'carol@example.com'",
          team);
    q_int("UPDATE conversations SET team_id = %lld WHERE id = %lld", team, conv4);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    th_mock_stop(&mock);
    sb_db_close(&db);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

static json_t *report(const char *cookie, const char *from, const char *to, const char *tz)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/reports?from=%s&to=%s&tz=%s", from, to, tz);
    return call(cookie, "GET", path, NULL, 200);
}

static json_t *find_agent(json_t *doc, long long id)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "agents"), i,
                       a) if (json_integer_value(json_object_get(a, "id")) == id) return a;
    return NULL;
}

/* `v` is a number within [lo, hi]. */
static void assert_between(json_t *v, double lo, double hi)
{
    assert_true(json_is_number(v));
    double x = json_number_value(v);
    if (x < lo || x > hi)
        fprintf(stderr, "%g not in [%g, %g]\n", x, lo, hi);
    assert_true(x >= lo && x <= hi);
}

static void counts_per_channel_and_day(void **state)
{
    (void)state;
    char from[16], to[16];
    moscow_day(t0, -2, from, sizeof from);
    moscow_day(t0, 1, to, sizeof to);
    json_t *doc = report(admin, from, to, "Europe/Moscow");
    assert_string_equal(json_string_value(json_object_get(doc, "tz")), "Europe/Moscow");
    json_t *bcd = json_object_get(doc, "by_channel_day");
    json_t *days = json_object_get(bcd, "days");
    assert_int_equal(json_array_size(days), 4);
    assert_string_equal(json_string_value(json_array_get(days, 0)), from);
    assert_string_equal(json_string_value(json_array_get(days, 2)), today);
    json_t *chs = json_object_get(bcd, "channels");
    assert_int_equal(json_array_size(chs), 2);
    long long ids[2] = {bot_a, bot_b};
    const char *names[2] = {"Bot A", "Bot B"};
    for (size_t i = 0; i < 2; i++) {
        json_t *c = json_array_get(chs, i);
        assert_int_equal(json_integer_value(json_object_get(c, "id")), ids[i]);
        assert_string_equal(json_string_value(json_object_get(c, "name")), names[i]);
        assert_string_equal(json_string_value(json_object_get(c, "kind")), "telegram");
        json_t *counts = json_object_get(c, "counts");
        assert_int_equal(json_array_size(counts), 4);
        for (size_t k = 0; k < 4; k++)
            assert_int_equal(json_integer_value(json_array_get(counts, k)), k == 2 ? 2 : 0);
        assert_int_equal(json_integer_value(json_object_get(c, "total")), 2);
    }
    json_t *tot = json_object_get(doc, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "conversations")), 4);
    assert_int_equal(json_integer_value(json_object_get(tot, "first_replied")), 3);
    assert_int_equal(json_integer_value(json_object_get(tot, "resolved")), 1);
    assert_int_equal(json_integer_value(json_object_get(tot, "unanswered")), 2);
    json_decref(doc);

    /* The same with a numeric offset; and a range before today is empty. */
    doc = report(admin, today, today, "%2B03:00");
    assert_string_equal(json_string_value(json_object_get(doc, "tz")), "+03:00");
    chs = json_object_get(json_object_get(doc, "by_channel_day"), "channels");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(chs, 0), "total")), 2);
    json_decref(doc);
    /* A '+' typed unencoded arrives as a space; it is still the offset. */
    doc = report(admin, today, today, "+03:00");
    assert_string_equal(json_string_value(json_object_get(doc, "tz")), "+03:00");
    json_decref(doc);
    doc = report(admin, from, from, "Europe/Moscow");
    chs = json_object_get(json_object_get(doc, "by_channel_day"), "channels");
    assert_int_equal(json_array_size(chs), 0);
    tot = json_object_get(doc, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "conversations")), 0);
    assert_int_equal(json_integer_value(json_object_get(tot, "first_replied")), 0);
    assert_true(json_is_null(json_object_get(tot, "first_response_median_s")));
    /* Unanswered is the state now, whatever the range. */
    assert_int_equal(json_integer_value(json_object_get(tot, "unanswered")), 2);
    json_decref(doc);
}

static void response_and_resolution_times_per_agent(void **state)
{
    (void)state;
    json_t *doc = report(admin, today, today, "Europe/Moscow");
    /* The replies went out within ~15 s of t0 (the test's own pace). */
    json_t *a = find_agent(doc, alice_id), *b = find_agent(doc, bob_id);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "Test User");
    assert_int_equal(json_integer_value(json_object_get(a, "first_replied")), 2);
    /* Alice: 3600 s and 60 s; median halfway, p90 near the hour. */
    assert_between(json_object_get(a, "first_response_median_s"), 1830, 1830 + 30);
    assert_between(json_object_get(a, "first_response_p90_s"), 3246, 3246 + 30);
    assert_int_equal(json_integer_value(json_object_get(a, "resolved")), 1);
    /* conv1 was created at ingest (not when Anna wrote) and resolved
     * seconds later. */
    assert_between(json_object_get(a, "resolution_median_s"), 0, 30);
    assert_int_equal(json_integer_value(json_object_get(b, "first_replied")), 1);
    assert_between(json_object_get(b, "first_response_median_s"), 600, 630);
    assert_between(json_object_get(b, "first_response_p90_s"), 600, 630);
    assert_int_equal(json_integer_value(json_object_get(b, "resolved")), 0);
    assert_true(json_is_null(json_object_get(b, "resolution_median_s")));
    assert_int_equal(json_array_size(json_object_get(doc, "agents")), 2);
    json_t *tot = json_object_get(doc, "totals");
    /* Everyone: 60, 600, 3600 s. */
    assert_between(json_object_get(tot, "first_response_median_s"), 600, 630);
    assert_between(json_object_get(tot, "first_response_p90_s"), 3000, 3030);
    json_decref(doc);
}

static void unanswered_oldest_first(void **state)
{
    (void)state;
    json_t *doc = report(admin, today, today, "UTC");
    json_t *u = json_object_get(doc, "unanswered");
    assert_int_equal(json_integer_value(json_object_get(u, "count")), 2);
    json_t *oldest = json_object_get(u, "oldest");
    assert_int_equal(json_array_size(oldest), 2);
    json_t *w0 = json_array_get(oldest, 0), *w1 = json_array_get(oldest, 1);
    assert_int_equal(json_integer_value(json_object_get(w0, "id")), conv3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(w0, "client"), "name")),
                        "Вера");
    json_t *ch = json_object_get(w0, "channel");
    assert_int_equal(json_integer_value(json_object_get(ch, "id")), bot_b);
    assert_string_equal(json_string_value(json_object_get(ch, "name")), "Bot B");
    /* Vera since her message two hours ago; Boris since his second one. */
    assert_between(json_object_get(w0, "waiting_s"), 7200, 7200 + 60);
    assert_int_equal(json_integer_value(json_object_get(w1, "id")), conv2);
    assert_between(json_object_get(w1, "waiting_s"), 0, 60);
    assert_true(strcmp(json_string_value(json_object_get(w0, "waiting_since")),
                       json_string_value(json_object_get(w1, "waiting_since"))) < 0);
    json_decref(doc);

    /* Answering Boris takes him off the list. */
    post_text(bob, conv2, "replies", "Проверим сегодня.", 202);
    doc = report(admin, today, today, "UTC");
    u = json_object_get(doc, "unanswered");
    assert_int_equal(json_integer_value(json_object_get(u, "count")), 1);
    /* A second reply is not a second first response. */
    assert_int_equal(json_integer_value(json_object_get(find_agent(doc, bob_id), "first_replied")),
                     1);
    json_decref(doc);
    sleep(1);
    tg_message(bot_a, 5002, "Борис", time(NULL), "Спасибо, жду");
}

static void agent_outside_a_team_sees_less(void **state)
{
    (void)state;
    json_t *doc = report(carol, today, today, "Europe/Moscow");
    json_t *chs = json_object_get(json_object_get(doc, "by_channel_day"), "channels");
    assert_int_equal(json_array_size(chs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(chs, 0), "id")), bot_b);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(chs, 0), "total")), 2);
    json_t *tot = json_object_get(doc, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "conversations")), 2);
    assert_int_equal(json_integer_value(json_object_get(tot, "first_replied")), 1);
    assert_int_equal(json_integer_value(json_object_get(tot, "resolved")), 0);
    assert_int_equal(json_integer_value(json_object_get(tot, "unanswered")), 1);
    json_t *a = find_agent(doc, alice_id);
    assert_non_null(a);
    assert_between(json_object_get(a, "first_response_median_s"), 60, 90);
    assert_null(find_agent(doc, bob_id));
    json_decref(doc);
    /* Bob sees his own conv2 (waiting again) and unassigned conv3, not
     * Alice's conv1 nor the team's conv4. */
    doc = report(bob, today, today, "Europe/Moscow");
    tot = json_object_get(doc, "totals");
    assert_int_equal(json_integer_value(json_object_get(tot, "conversations")), 2);
    assert_int_equal(json_integer_value(json_object_get(tot, "resolved")), 0);
    assert_int_equal(json_integer_value(json_object_get(tot, "unanswered")), 2);
    json_decref(doc);
    json_decref(call(marketer, "GET", "/api/v1/reports?from=2026-01-01&to=2026-01-02", NULL, 403));
    json_decref(call(NULL, "GET", "/api/v1/reports?from=2026-01-01&to=2026-01-02", NULL, 401));
}

static void bad_parameters(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "?from=2026-01-01",
        "?to=2026-01-01",
        "?from=2026-02-30&to=2026-03-01",
        "?from=2026-01-10&to=2026-01-09",
        "?from=2024-01-01&to=2026-01-01",
        "?from=01.01.2026&to=2026-01-02",
        "?from=2026-01-01&to=2026-01-02&tz=Mars/Olympus",
        "?from=2026-01-01&to=2026-01-02&tz=%2B25:00",
        "?from=2026-01-01&to=2026-01-02&tz=../../etc/passwd",
        "?from=2026-01-01&to=2026-01-02&tz=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/reports%s", bad[i]);
        json_t *o = call(admin, "GET", path, NULL, 400);
        json_t *e = json_object_get(o, "error");
        assert_string_equal(json_string_value(json_object_get(e, "code")), "bad_request");
        assert_true(strlen(json_string_value(json_object_get(e, "message"))) > 5);
        json_decref(o);
    }
    /* 367 days is the most. */
    json_decref(call(admin, "GET", "/api/v1/reports?from=2025-01-01&to=2026-01-02", NULL, 200));
}

/* The conversation's column `col` as seconds since the epoch; -1 = NULL. */
static int64_t conv_time(long long conv, const char *col)
{
    return q_int("SELECT UNIX_TIMESTAMP(%s) FROM conversations WHERE id = %lld", col, conv);
}

/* An inbound of Telegram user 6001 on Bot A, `ago` seconds before t0. */
static struct sb_inbound *tg_inbound(const char *ext, enum sb_direction dir, unsigned flags,
                                     int ago)
{
    struct sb_inbound *in = sb_inbound_new();
    assert_non_null(in);
    in->channel_id = bot_a;
    in->external_id = sb_inbound_strdup(in, ext);
    in->kind = SB_IK_MESSAGE;
    in->direction = dir;
    in->flags = flags;
    in->occurred_at_us = ((int64_t)t0 - ago) * 1000000;
    in->display_name = sb_inbound_strdup(in, "Дина");
    in->text = sb_inbound_strdup(in, dir == SB_DIR_IN ? "Вопрос" : "Звонили клиенту");
    assert_int_equal(sb_inbound_add_identity(in, SB_ID_TELEGRAM, "6001"), SB_OK);
    return in;
}

static long long ingest_all(struct sb_inbound **in, size_t n)
{
    static const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};
    struct sb_ingest_result res[8];
    char err[512] = "";
    int rc =
        sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)in, n, res, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "ingest: %s\n", err);
    assert_int_equal(rc, SB_OK);
    for (size_t i = 0; i < n; i++)
        sb_inbound_free(&in[i]);
    return res[0].conversation_id;
}

/* The summary columns of 008_reports.sql, as ingest (one batch with the
 * client's messages, an auto-reply and an outbound call; then alone) and
 * replies keep them: first inbound stays, last inbound moves, an
 * auto-reply counts for nothing, the first answer and its author stay. */
static void summary_columns_follow_the_thread(void **state)
{
    (void)state;
    struct sb_inbound *in[] = {
        tg_inbound("s1", SB_DIR_IN, 0, 3000),  tg_inbound("s2", SB_DIR_IN, SB_IN_AUTO_REPLY, 2900),
        tg_inbound("s3", SB_DIR_OUT, 0, 2000), tg_inbound("s4", SB_DIR_IN, 0, 500),
        tg_inbound("s5", SB_DIR_IN, 0, 1000),
    };
    long long conv = ingest_all(in, 5);
    assert_true(conv > 0);
    assert_int_equal(conv_time(conv, "first_inbound_at"), t0 - 3000);
    assert_int_equal(conv_time(conv, "last_inbound_at"), t0 - 500);
    assert_int_equal(conv_time(conv, "last_outbound_at"), t0 - 2000);
    assert_int_equal(conv_time(conv, "waiting_since"), t0 - 1000);
    /* An outbound that ingest saw (a call we placed) has no agent: no answer. */
    assert_int_equal(conv_time(conv, "first_response_at"), -1);
    assert_int_equal(q_int("SELECT first_responder_id FROM conversations WHERE id = %lld", conv),
                     -1);

    /* A later auto-reply alone changes nothing; a late-delivered message
     * from after the call makes the client wait since then. */
    struct sb_inbound *auto_reply[] = {tg_inbound("s6", SB_DIR_IN, SB_IN_AUTO_REPLY, 100)};
    assert_int_equal(ingest_all(auto_reply, 1), conv);
    assert_int_equal(conv_time(conv, "last_inbound_at"), t0 - 500);
    assert_int_equal(conv_time(conv, "waiting_since"), t0 - 1000);
    struct sb_inbound *late[] = {tg_inbound("s7", SB_DIR_IN, 0, 1500)};
    assert_int_equal(ingest_all(late, 1), conv);
    assert_int_equal(conv_time(conv, "waiting_since"), t0 - 1500);
    assert_int_equal(conv_time(conv, "first_inbound_at"), t0 - 3000);
    json_t *doc = report(admin, today, today, "UTC");
    json_t *u = json_object_get(doc, "unanswered");
    json_t *w = json_array_get(json_object_get(u, "oldest"), 0);
    assert_int_equal(json_integer_value(json_object_get(w, "id")), conv3);
    assert_int_equal(json_integer_value(json_object_get(u, "count")), 3);
    w = json_array_get(json_object_get(u, "oldest"), 1);
    assert_int_equal(json_integer_value(json_object_get(w, "id")), conv);
    assert_between(json_object_get(w, "waiting_s"), 1500 + (double)(time(NULL) - t0) - 2,
                   1500 + (double)(time(NULL) - t0) + 2);
    json_decref(doc);

    /* Alice answers: the first response, hers; nobody waits. */
    post_text(alice, conv, "replies", "Чем помочь?", 202);
    int64_t first = conv_time(conv, "first_response_at");
    assert_true(first >= t0 && first <= time(NULL));
    assert_int_equal(q_int("SELECT first_responder_id FROM conversations WHERE id = %lld", conv),
                     alice_id);
    assert_int_equal(conv_time(conv, "waiting_since"), -1);
    assert_int_equal(conv_time(conv, "last_outbound_at"), first);
    /* The client writes again, Bob answers: last inbound moves, the first
     * response stays Alice's. */
    sleep(2);
    time_t again = time(NULL);
    tg_message(bot_a, 6001, "Дина", again, "Ещё вопрос");
    assert_int_equal(conv_time(conv, "last_inbound_at"), again);
    assert_int_equal(conv_time(conv, "waiting_since"), again);
    assert_int_equal(conv_time(conv, "first_inbound_at"), t0 - 3000);
    doc = report(admin, today, today, "UTC");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "unanswered"), "count")), 3);
    json_decref(doc);
    post_text(bob, conv, "replies", "Ответили.", 202);
    assert_int_equal(conv_time(conv, "first_response_at"), first);
    assert_int_equal(q_int("SELECT first_responder_id FROM conversations WHERE id = %lld", conv),
                     alice_id);
    assert_int_equal(conv_time(conv, "waiting_since"), -1);
    /* A note is no answer and no outbound. */
    int64_t out = conv_time(conv, "last_outbound_at");
    sleep(1);
    post_text(bob, conv, "notes", "Записал", 201);
    assert_int_equal(conv_time(conv, "last_outbound_at"), out);

    /* In the report: Alice's answer counts from the first inbound (3000 s
     * before t0), and the conversation no longer waits. */
    doc = report(admin, today, today, "UTC");
    u = json_object_get(doc, "unanswered");
    assert_int_equal(json_integer_value(json_object_get(u, "count")), 2);
    json_t *a = find_agent(doc, alice_id);
    assert_int_equal(json_integer_value(json_object_get(a, "first_replied")), 3);
    assert_between(json_object_get(a, "first_response_p90_s"), 3000, 3600 + 30);
    json_decref(doc);
}

/* 008_reports.sql's backfill recomputes from the interactions what ingest
 * and the reply path kept: cleared and filled again, every conversation's
 * columns come back the same. Except by the outbox's delay: a reply counts
 * from when the agent wrote it, but its interaction's occurred_at becomes
 * the time it was sent, which is all the backfill can read. */
#define NEAR(col)                                                                                  \
    "(k." col " <=> c." col " OR ABS(TIMESTAMPDIFF(MICROSECOND, k." col ", c." col ")) < 5000000)"
static void backfill_agrees_with_the_columns(void **state)
{
    (void)state;
    const char *dir = getenv("SWITCHBOARD_SCHEMA_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/008_reports.sql", dir ? dir : "schema");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char sql[65536];
    size_t n = fread(sql, 1, sizeof sql - 1, f);
    fclose(f);
    sql[n] = 0;
    q_int("CREATE TABLE kept AS SELECT id, first_inbound_at, last_inbound_at, last_outbound_at, "
          "waiting_since, first_response_at, first_responder_id FROM conversations");
    assert_true(q_int("SELECT COUNT(*) FROM kept WHERE first_response_at IS NOT NULL") >= 4);
    q_int("UPDATE conversations SET first_inbound_at = NULL, last_inbound_at = NULL, "
          "last_outbound_at = NULL, waiting_since = NULL, first_response_at = NULL, "
          "first_responder_id = NULL");
    int updates = 0;
    for (char *save = NULL, *st = strtok_r(sql, ";", &save); st; st = strtok_r(NULL, ";", &save)) {
        /* Past the statement's comment lines. */
        while (*st == '\n' || *st == ' ' || !strncmp(st, "--", 2))
            st = *st == '-' ? strchr(st, '\n') ? strchr(st, '\n') + 1 : st + strlen(st) : st + 1;
        if (strncmp(st, "UPDATE", 6) != 0)
            continue;
        char err[512] = "";
        int rc = sb_db_exec(db, st, NULL, 0, NULL, err, sizeof err);
        if (rc != SB_OK)
            fprintf(stderr, "%s: %s\n", st, err);
        assert_int_equal(rc, SB_OK);
        updates++;
    }
    assert_int_equal(updates, 3);
    int64_t differ = q_int(
        "SELECT COUNT(*) FROM kept k JOIN conversations c ON c.id = k.id WHERE NOT ("
        "k.first_inbound_at <=> c.first_inbound_at AND k.last_inbound_at <=> c.last_inbound_at "
        "AND " NEAR("last_outbound_at") " AND k.waiting_since <=> c.waiting_since "
                                        "AND " NEAR(
                                            "first_response_at") " AND k.first_responder_id <=> "
                                                                 "c.first_responder_id)");
    if (differ) { /* what differs, to read in the log */
        struct sb_db_rows r;
        char err[256] = "";
        sb_db_exec(db,
                   "SELECT CONCAT_WS(' | ', k.id, k.first_inbound_at, c.first_inbound_at, "
                   "k.last_inbound_at, c.last_inbound_at, k.last_outbound_at, c.last_outbound_at, "
                   "k.waiting_since, c.waiting_since, k.first_response_at, c.first_response_at, "
                   "k.first_responder_id, c.first_responder_id) FROM kept k JOIN conversations c "
                   "ON c.id = k.id",
                   NULL, 0, &r, err, sizeof err);
        for (size_t i = 0; i < r.nrows; i++)
            fprintf(stderr, "kept | now: %s\n", sb_db_cell(&r, i, 0));
        sb_db_rows_free(&r);
    }
    assert_int_equal(differ, 0);
    q_int("DROP TABLE kept");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_per_channel_and_day),
        cmocka_unit_test(response_and_resolution_times_per_agent),
        cmocka_unit_test(unanswered_oldest_first),
        cmocka_unit_test(agent_outside_a_team_sees_less),
        cmocka_unit_test(bad_parameters),
        cmocka_unit_test(summary_columns_follow_the_thread),
        cmocka_unit_test(backfill_agrees_with_the_columns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
