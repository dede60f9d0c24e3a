/* Live updates end to end: real servers, a real WebSocket client, events
 * made by posting webhooks and importing clients. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "wsclient.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#define SECRET "ws-test-secret-0123456789"

static struct th_server srv, srv_b;
static struct sb_db *db;
static char hook[64];
static char admin_cookie[512], anna_cookie[512], boris_cookie[512];
static long long anna_id, boris_id;
static char admin_bearer[256];

static long long scalar(const char *sql)
{
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    long long v = r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    sb_db_rows_free(&r);
    return v;
}

/* A Telegram text message from `user`; returns the HTTP status. */
static long post_message(const struct th_server *s, long long update_id, long long user,
                         const char *text)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"update_id\":%lld,\"message\":{\"message_id\":%lld,\"from\":{\"id\":%lld,"
             "\"first_name\":\"User%lld\"},\"chat\":{\"id\":%lld,\"type\":\"private\"},"
             "\"date\":1763900000,\"text\":\"%s\"}}",
             update_id, update_id, user, user, user, text);
    const char *h[] = {"Content-Type: application/json", "X-Telegram-Bot-Api-Secret-Token: " SECRET,
                       NULL};
    struct th_resp r;
    assert_int_equal(th_http(s, "POST", hook, body, h, &r), 0);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

static long long event_id(const char *msg)
{
    json_t *o = json_loads(msg, 0, NULL);
    long long id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

static struct th_ws *connect_as(const struct th_server *s, const char *header)
{
    char why[256] = "";
    struct th_ws *c = th_ws_connect(s->port, header, why, sizeof why);
    if (!c)
        fprintf(stderr, "ws connect: %s\n", why);
    assert_non_null(c);
    return c;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    char out[2048];
    const char *args[] = {"channel",
                          "add",
                          "telegram",
                          "--name",
                          "Bot",
                          "--set",
                          "token=123456:ABCDEF",
                          "--set",
                          "secret_token=" SECRET,
                          NULL};
    if (th_run(args, NULL, out, sizeof out) != 0)
        return -1;
    json_t *o = json_loads(out, 0, NULL);
    snprintf(hook, sizeof hook, "/hooks/telegram/%lld",
             (long long)json_integer_value(json_object_get(o, "id")));
    json_decref(o);
    th_user("admin@ws.test", "admin", "admin-password-1");
    th_user("anna@ws.test", "agent", "anna-password-1");
    th_user("boris@ws.test", "agent", "boris-password-1");
    const char *tok[] = {"token", "create", "--user", "admin@ws.test", NULL};
    if (th_run(tok, NULL, out, sizeof out) != 0)
        return -1;
    snprintf(admin_bearer, sizeof admin_bearer, "Authorization: Bearer %.*s",
             (int)strcspn(out, "\n"), out);
    db = th_db_connect();
    anna_id = scalar("SELECT id FROM users WHERE email = 'anna@ws.test'");
    boris_id = scalar("SELECT id FROM users WHERE email = 'boris@ws.test'");
    /* A small per-connection queue so the slow-consumer test overflows it. */
    static const char *const env[] = {"SWITCHBOARD_LIVE_QUEUE=64", "SWITCHBOARD_LIVE_SNDBUF=8192",
                                      NULL};
    th_server_start(&srv, env);
    th_login(&srv, "admin@ws.test", "admin-password-1", admin_cookie, sizeof admin_cookie);
    th_login(&srv, "anna@ws.test", "anna-password-1", anna_cookie, sizeof anna_cookie);
    th_login(&srv, "boris@ws.test", "boris-password-1", boris_cookie, sizeof boris_cookie);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_server_stop(&srv);
    if (srv_b.pid)
        th_server_stop(&srv_b);
    sb_db_close(&db);
    th_db_teardown();
    return 0;
}

static long upgrade_status(const char *const *extra, char *body, size_t bodylen)
{
    const char *h[12] = {"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="};
    size_t n = 4;
    for (size_t i = 0; extra && extra[i] && n < 11; i++)
        h[n++] = extra[i];
    h[n] = NULL;
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/ws", NULL, h, &r), 0);
    if (body)
        snprintf(body, bodylen, "%s", r.body ? r.body : "");
    long st = r.status;
    th_resp_free(&r);
    return st;
}

static void upgrade_is_refused_before_it_happens(void **state)
{
    (void)state;
    char body[512];
    const char *noauth[] = {"Sec-WebSocket-Protocol: switchboard.v1", NULL};
    assert_int_equal(upgrade_status(noauth, body, sizeof body), 401);
    assert_non_null(strstr(body, "\"code\":\"unauthorized\""));
    const char *bad[] = {"Sec-WebSocket-Protocol: switchboard.v1",
                         "Authorization: Bearer sbt_not-a-real-token", NULL};
    assert_int_equal(upgrade_status(bad, body, sizeof body), 401);
    const char *noproto[] = {admin_bearer, NULL};
    assert_int_equal(upgrade_status(noproto, body, sizeof body), 400);
    /* Another site's page cannot ride on the agent's cookie. */
    const char *cross[] = {"Sec-WebSocket-Protocol: switchboard.v1", admin_cookie,
                           "Origin: https://evil.example", NULL};
    assert_int_equal(upgrade_status(cross, body, sizeof body), 403);
}

static void an_event_arrives_after_a_webhook(void **state)
{
    (void)state;
    struct th_ws *c = connect_as(&srv, admin_cookie);
    assert_int_equal(post_message(&srv, 1001, 501, "hello live"), 200);
    char *m = th_ws_recv_type(c, "event", 3000);
    assert_non_null(m);
    /* the first event of the webhook's transaction may be client.created */
    int saw_interaction = strstr(m, "\"event\":\"interaction.created\"") != NULL;
    free(m);
    while (!saw_interaction && (m = th_ws_recv_type(c, "event", 3000)) != NULL) {
        saw_interaction = strstr(m, "\"event\":\"interaction.created\"") != NULL;
        free(m);
    }
    assert_true(saw_interaction);
    /* The application-level ping works for browsers. */
    assert_int_equal(th_ws_send(c, "{\"type\":\"ping\"}"), 0);
    m = th_ws_recv_type(c, "pong", 3000);
    assert_non_null(m);
    free(m);
    assert_int_equal(th_ws_send(c, "not json"), 0);
    m = th_ws_recv_type(c, "error", 3000);
    assert_non_null(m);
    free(m);
    th_ws_free(&c);
    /* A bearer token works as well as the cookie. */
    c = connect_as(&srv, admin_bearer);
    th_ws_free(&c);
}

/* Read every event until `quiet_ms` pass without one; the ids in order. */
static size_t drain_ids(struct th_ws *c, long long *ids, size_t max, int quiet_ms)
{
    size_t n = 0;
    char *m;
    while ((m = th_ws_recv_type(c, "event", quiet_ms)) != NULL) {
        if (n < max)
            ids[n++] = event_id(m);
        free(m);
    }
    return n;
}

static void resume_after_a_disconnect_misses_nothing(void **state)
{
    (void)state;
    struct th_ws *c = connect_as(&srv, admin_cookie);
    assert_int_equal(post_message(&srv, 2001, 502, "before"), 200);
    long long ids[256];
    size_t n = drain_ids(c, ids, 256, 1500);
    assert_true(n >= 1);
    long long last = ids[n - 1];
    th_ws_free(&c);
    /* Away: three messages arrive. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(post_message(&srv, 2002 + i, 503 + i, "while away"), 200);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE id > %lld", last);
    long long missed = scalar(sql);
    assert_true(missed >= 3);
    c = connect_as(&srv, admin_cookie);
    char resume[64];
    snprintf(resume, sizeof resume, "{\"type\":\"resume\",\"after\":%lld}", last);
    assert_int_equal(th_ws_send(c, resume), 0);
    /* then one live message on top */
    assert_int_equal(post_message(&srv, 2010, 510, "live again"), 200);
    n = drain_ids(c, ids, 256, 1500);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE id > %lld", last);
    long long all = scalar(sql);
    /* every event after `last`, each once, in order (the admin sees all) */
    if ((long long)n != all) {
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "got %lld\n", ids[i]);
        snprintf(sql, sizeof sql,
                 "SELECT GROUP_CONCAT(CONCAT(id, ':', type)) FROM events WHERE id > %lld", last);
        struct sb_db_rows r;
        char err[256];
        sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
        fprintf(stderr, "db: %s (last %lld)\n", sb_db_cell(&r, 0, 0), last);
        sb_db_rows_free(&r);
    }
    assert_int_equal((long long)n, all);
    for (size_t i = 0; i < n; i++) {
        assert_true(ids[i] > last);
        if (i)
            assert_true(ids[i] > ids[i - 1]);
    }
    th_ws_free(&c);
}

/* With nobody connected the tailer only keeps its place (ws.c, tail_idle);
 * an agent who connects and resumes, again and again while messages keep
 * coming in between, still gets every event once and in order. Each round
 * has the node go idle, so the connection races the tailer's skip. */
static void an_idle_node_skips_ahead_and_misses_nothing(void **state)
{
    (void)state;
    char sql[256];
    long long last = scalar("SELECT COALESCE(MAX(id), 0) FROM events");
    for (int round = 0; round < 6; round++) {
        /* nobody connected: two messages, then time for an idle round */
        assert_int_equal(post_message(&srv, 7000 + round * 10, 700 + round, "idle"), 200);
        assert_int_equal(post_message(&srv, 7001 + round * 10, 720 + round, "idle"), 200);
        struct timespec pause = {0, (round % 3) * 15000000L};
        nanosleep(&pause, NULL);
        struct th_ws *c = connect_as(&srv, admin_cookie);
        char resume[64];
        snprintf(resume, sizeof resume, "{\"type\":\"resume\",\"after\":%lld}", last);
        assert_int_equal(th_ws_send(c, resume), 0);
        assert_int_equal(post_message(&srv, 7002 + round * 10, 740 + round, "live"), 200);
        long long ids[256];
        size_t n = drain_ids(c, ids, 256, 800);
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE id > %lld", last);
        assert_int_equal((long long)n, scalar(sql));
        for (size_t i = 0; i < n; i++)
            assert_true(ids[i] > (i ? ids[i - 1] : last));
        last = n ? ids[n - 1] : last;
        th_ws_free(&c);
    }
}

static void a_slow_consumer_is_cut_off_and_recovers(void **state)
{
    (void)state;
    struct th_ws *c = connect_as(&srv, admin_cookie);
    long long before = scalar("SELECT COALESCE(MAX(id), 0) FROM events");
    /* 3,000 new clients: 3,000 client.created events at once. */
    size_t cap = 3000 * 64 + 64;
    char *csv = malloc(cap);
    size_t o = (size_t)snprintf(csv, cap, "name,email\n");
    for (int i = 0; i < 3000; i++)
        o += (size_t)snprintf(csv + o, cap - o, "Client %d,slow%d@ws.test\n", i, i);
    char path[256];
    snprintf(path, sizeof path, "/tmp/sb-ws-import-%d.csv", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fwrite(csv, 1, o, f);
    fclose(f);
    free(csv);
    char out[4096];
    const char *args[] = {"import", "clients", path, NULL};
    int rc = th_run(args, NULL, out, sizeof out);
    unlink(path);
    if (rc != 0)
        fprintf(stderr, "import: %s\n", out);
    assert_int_equal(rc, 0);
    long long after = scalar("SELECT COALESCE(MAX(id), 0) FROM events");
    assert_true(after - before >= 3000);
    /* Not reading, the client falls behind: the server closes it with 4008
     * rather than queueing without end. Reading now drains what the socket
     * held, then the close. */
    usleep(1500 * 1000); /* not even reading the socket */
    long long last = 0;
    char *m;
    while ((m = th_ws_recv(c, 2000)) != NULL) {
        if (strstr(m, "\"type\":\"event\""))
            last = event_id(m);
        free(m);
    }
    assert_true(th_ws_closed(c));
    assert_int_equal(th_ws_close_code(c), 4008);
    assert_true(last < after);
    th_ws_free(&c);
    /* It comes back and resumes from the last id it saw: everything else. */
    c = connect_as(&srv, admin_cookie);
    char resume[64];
    snprintf(resume, sizeof resume, "{\"type\":\"resume\",\"after\":%lld}", last);
    assert_int_equal(th_ws_send(c, resume), 0);
    long long got = 0, prev = last, max = 0;
    while ((m = th_ws_recv_type(c, "event", 2000)) != NULL) {
        long long id = event_id(m);
        if (id <= prev)
            fprintf(stderr, "out of order: %lld after %lld: %.200s\n", id, prev, m);
        assert_true(id > prev);
        prev = id;
        if (id <= after)
            got++;
        max = id;
        free(m);
    }
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM events WHERE id > %lld AND id <= %lld", last,
             after);
    assert_int_equal(got, scalar(sql));
    assert_true(max >= after);
    th_ws_free(&c);
}

static void an_agent_sees_only_what_they_may(void **state)
{
    (void)state;
    /* A conversation assigned to Boris, another to nobody. */
    assert_int_equal(post_message(&srv, 3001, 601, "for boris"), 200);
    long long conv =
        scalar("SELECT i.conversation_id FROM interactions i WHERE i.external_id LIKE '%3001%' "
               "ORDER BY i.id DESC LIMIT 1");
    assert_true(conv > 0);
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE conversations SET assignee_id = %lld WHERE id = %lld",
             boris_id, conv);
    char err[256];
    assert_int_equal(sb_db_exec(db, sql, NULL, 0, NULL, err, sizeof err), SB_OK);

    struct th_ws *anna = connect_as(&srv, anna_cookie);
    struct th_ws *boris = connect_as(&srv, boris_cookie);
    struct th_ws *admin = connect_as(&srv, admin_cookie);
    assert_int_equal(post_message(&srv, 3002, 601, "private to boris"), 200);
    assert_int_equal(post_message(&srv, 3003, 602, "for everyone"), 200);
    char conv_key[64];
    snprintf(conv_key, sizeof conv_key, "\"conversation_id\":%lld", conv);
    int anna_saw_boris = 0, anna_saw_open = 0, boris_saw = 0, admin_saw = 0;
    char *m;
    while ((m = th_ws_recv_type(anna, "event", 1500)) != NULL) {
        if (strstr(m, conv_key))
            anna_saw_boris = 1;
        else if (strstr(m, "interaction.created"))
            anna_saw_open = 1;
        free(m);
    }
    while ((m = th_ws_recv_type(boris, "event", 1000)) != NULL) {
        boris_saw |= strstr(m, conv_key) != NULL;
        free(m);
    }
    while ((m = th_ws_recv_type(admin, "event", 1000)) != NULL) {
        admin_saw |= strstr(m, conv_key) != NULL;
        free(m);
    }
    assert_false(anna_saw_boris);
    assert_true(anna_saw_open);
    assert_true(boris_saw);
    assert_true(admin_saw);
    /* Typing goes to the other agents viewing that conversation only. */
    char msg[128];
    snprintf(msg, sizeof msg, "{\"type\":\"view\",\"conversation_id\":%lld}", conv);
    assert_int_equal(th_ws_send(admin, msg), 0);
    /* a round trip, so the view is in before the typing comes from another socket */
    assert_int_equal(th_ws_send(admin, "{\"type\":\"ping\"}"), 0);
    m = th_ws_recv_type(admin, "pong", 2000);
    assert_non_null(m);
    free(m);
    snprintf(msg, sizeof msg, "{\"type\":\"typing\",\"conversation_id\":%lld}", conv);
    assert_int_equal(th_ws_send(boris, msg), 0);
    m = th_ws_recv_type(admin, "typing", 2000);
    assert_non_null(m);
    assert_non_null(strstr(m, conv_key));
    free(m);
    m = th_ws_recv_type(anna, "typing", 500);
    assert_null(m);
    th_ws_free(&anna);
    th_ws_free(&boris);
    th_ws_free(&admin);
}

static void presence_is_announced(void **state)
{
    (void)state;
    struct th_ws *admin = connect_as(&srv, admin_cookie);
    struct th_ws *anna = connect_as(&srv, anna_cookie);
    char *m = th_ws_recv_type(admin, "event", 3000);
    int online = 0;
    while (m && !online) {
        online = strstr(m, "\"event\":\"agent.online\"") != NULL;
        free(m);
        m = online ? NULL : th_ws_recv_type(admin, "event", 3000);
    }
    free(m);
    assert_true(online);
    th_ws_free(&anna);
    int offline = 0;
    while (!offline && (m = th_ws_recv_type(admin, "event", 3000)) != NULL) {
        offline = strstr(m, "\"event\":\"agent.offline\"") != NULL;
        free(m);
    }
    assert_true(offline);
    th_ws_free(&admin);
}

static void an_event_crosses_nodes(void **state)
{
    (void)state;
    th_server_start(&srv_b, NULL);
    struct th_ws *c = connect_as(&srv_b, admin_bearer);
    /* Posted to node A, seen by an agent on node B. */
    assert_int_equal(post_message(&srv, 4001, 701, "node a"), 200);
    char *m;
    int seen = 0;
    while (!seen && (m = th_ws_recv_type(c, "event", 3000)) != NULL) {
        seen = strstr(m, "interaction.created") != NULL;
        free(m);
    }
    assert_true(seen);
    th_ws_free(&c);
    assert_int_equal(th_server_stop(&srv_b), 0);
    srv_b.pid = 0;
}

/* A peer that completes the upgrade and then goes silent (a laptop lid
 * shut): the server pings it, gets no pong, and hangs up. A live client
 * answers the pings and stays. */
static void a_silent_peer_is_pinged_then_dropped(void **state)
{
    (void)state;
    /* A node of its own that pings after 1 s of silence and hangs up after
     * 3 s without an answer, so this runs in seconds. */
    struct th_server srv_p;
    static const char *const env[] = {"SWITCHBOARD_LIVE_PING_SECONDS=1",
                                      "SWITCHBOARD_LIVE_TIMEOUT_SECONDS=3", NULL};
    th_server_start(&srv_p, env);
    struct th_ws *alive = connect_as(&srv_p, admin_bearer);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_p.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: switchboard.v1\r\n"
                     "%s\r\n\r\n",
                     srv_p.port, admin_bearer);
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[4096];
    size_t got = 0;
    int pinged = 0, upgraded = 0, closed = 0;
    time_t start = time(NULL);
    while (time(NULL) - start < 10) {
        th_ws_pump(alive, 50); /* the live client keeps answering its pings */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t r = read(fd, buf + got, sizeof buf - got - 1);
        if (r <= 0) {
            closed = 1;
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
        char *eoh = upgraded ? buf : strstr(buf, "\r\n\r\n");
        if (!upgraded && eoh) {
            assert_memory_equal(buf, "HTTP/1.1 101", 12);
            upgraded = 1;
            size_t hl = (size_t)(eoh + 4 - buf);
            memmove(buf, buf + hl, got - hl);
            got -= hl;
        }
        /* frames: a ping is 0x89 (never answered here) */
        for (size_t i = 0; upgraded && i + 1 < got;) {
            size_t len = (unsigned char)buf[i + 1] & 0x7f;
            if ((unsigned char)buf[i] == 0x89)
                pinged = 1;
            if (i + 2 + len > got)
                break;
            i += 2 + len;
            if (i >= got)
                got = 0;
        }
        if (got > 2048)
            got = 0;
    }
    long held = (long)(time(NULL) - start);
    close(fd);
    assert_true(upgraded);
    assert_true(pinged);
    assert_true(closed);
    assert_true(held <= 8);
    /* the one that answers pings is still here */
    th_ws_pump(alive, 500);
    assert_false(th_ws_closed(alive));
    assert_int_equal(th_ws_send(alive, "{\"type\":\"ping\"}"), 0);
    char *m = th_ws_recv_type(alive, "pong", 2000);
    assert_non_null(m);
    free(m);
    th_ws_free(&alive);
    assert_int_equal(th_server_stop(&srv_p), 0);
}

/* Events past live.retention_days are deleted by the tailer (first a few
 * seconds after start, then every minute); a resume from before them gets
 * "resync", not a silent gap. */
static void old_events_are_pruned_and_a_stale_resume_resyncs(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(sb_db_exec(db,
                                "UPDATE events SET created_at = NOW(6) - INTERVAL 30 DAY "
                                "WHERE id <= 10",
                                NULL, 0, NULL, err, sizeof err),
                     SB_OK);
    assert_true(scalar("SELECT COUNT(*) FROM events WHERE id <= 10") > 0);
    struct th_server srv_p;
    static const char *const env[] = {"SWITCHBOARD_LIVE_RETENTION_DAYS=7", NULL};
    th_server_start(&srv_p, env);
    long long left = 1;
    for (int i = 0; i < 100 && left; i++) {
        usleep(100 * 1000);
        left = scalar("SELECT COUNT(*) FROM events WHERE id <= 10");
    }
    assert_int_equal(left, 0);
    assert_true(scalar("SELECT COUNT(*) FROM events WHERE id > 10") > 0); /* the rest stays */
    struct th_ws *c = connect_as(&srv_p, admin_bearer);
    assert_int_equal(th_ws_send(c, "{\"type\":\"resume\",\"after\":1}"), 0);
    char *m = th_ws_recv_type(c, "resync", 3000);
    assert_non_null(m);
    free(m);
    th_ws_free(&c);
    assert_int_equal(th_server_stop(&srv_p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upgrade_is_refused_before_it_happens),
        cmocka_unit_test(an_event_arrives_after_a_webhook),
        cmocka_unit_test(resume_after_a_disconnect_misses_nothing),
        cmocka_unit_test(an_idle_node_skips_ahead_and_misses_nothing),
        cmocka_unit_test(an_agent_sees_only_what_they_may),
        cmocka_unit_test(presence_is_announced),
        cmocka_unit_test(a_slow_consumer_is_cut_off_and_recovers),
        cmocka_unit_test(a_silent_peer_is_pinged_then_dropped),
        cmocka_unit_test(an_event_crosses_nodes),
        cmocka_unit_test(old_events_are_pruned_and_a_stale_resume_resyncs),
    };
    return cmocka_run_group_tests_name("ws", tests, setup, teardown);
}
