/* Campaigns end to end against a real SMTP sink (Postfix smtp-sink) and a
 * real Dovecot: segments and their filters, templates, 1,000 recipients each
 * receiving exactly one personalised message with the compliance headers,
 * pause/resume, kill -9 mid-send and a restart, click redirects that refuse
 * forged tokens, unsubscribes and a hard bounce (a sisimai fixture through
 * the IMAP poller) left out of the next campaign. Clients are loaded with
 * `switchboard import clients` and its tags column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/send_journal.h"

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_CLIENTS 1000

static struct th_smtp_sink sink;
static struct th_dovecot dc;
static struct th_server srv;
static struct sb_db *db;
static char cookie[512];
static int64_t channel_id, seg_all, seg_100, tpl_id;
static char env_public[] = "SWITCHBOARD_PUBLIC_URL=https://sb.example";
static char journal_dir[512];
static char env_journal[600]; /* this suite's own send journal directory (set up below) */
static const char *const server_env[] = {env_public, "SWITCHBOARD_CAMPAIGNS_CONNECTIONS=4",
                                         "SWITCHBOARD_CAMPAIGNS_LEASE_SECONDS=4",
                                         "SWITCHBOARD_IMAP_SCAN_SECONDS=1",
                                         /* the killed server's mailbox lease runs out soon */
                                         "SWITCHBOARD_IMAP_LEASE_SECONDS=3", env_journal, NULL};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
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

/* A JSON API call as the marketer; the parsed answer (NULL when not JSON). */
static json_t *api(const char *method, const char *path, const char *body, long want)
{
    const char *h[] = {cookie, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, method, path, body, h, &r), 0);
    if (r.status != want)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, want);
    json_t *o = json_loads(r.body, 0, NULL);
    th_resp_free(&r);
    return o;
}

static int64_t api_id(const char *path, const char *body)
{
    json_t *o = api("POST", path, body, 201);
    int64_t id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    assert_true(id > 0);
    return id;
}

/* -- The sink's dumps ------------------------------------------------------- */

struct msg {
    int64_t cid, rid;
    char *raw;
};
static struct msg *msgs;
static size_t nmsgs;

static void msgs_free(void)
{
    for (size_t i = 0; i < nmsgs; i++)
        free(msgs[i].raw);
    free(msgs);
    msgs = NULL;
    nmsgs = 0;
}

/* A header's value, unfolded, into out; 0 when present. */
static int header(const char *raw, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *l = raw; *l && *l != '\n';) {
        const char *eol = strchr(l, '\n');
        if (!eol)
            break;
        if (!strncasecmp(l, name, n) && l[n] == ':') {
            size_t o = 0;
            const char *p = l + n + 1;
            for (;;) {
                while (*p == ' ' || *p == '\t')
                    p++;
                const char *e = strchr(p, '\n');
                size_t len = (size_t)(e - p);
                if (len && p[len - 1] == '\r')
                    len--;
                if (o + len + 1 < outlen) {
                    memcpy(out + o, p, len);
                    o += len;
                }
                if (e[1] != ' ' && e[1] != '\t')
                    break;
                p = e + 1;
            }
            out[o] = '\0';
            return 0;
        }
        l = eol + 1;
    }
    return -1;
}

/* Read every dump; the campaign and recipient come from the Message-ID
 * (c<campaign>r<recipient>.<salt>@domain). */
static size_t load_msgs(void)
{
    msgs_free();
    DIR *d = opendir(sink.dir);
    assert_non_null(d);
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", sink.dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *raw = malloc((size_t)len + 1);
        size_t got = fread(raw, 1, (size_t)len, f);
        raw[got] = '\0';
        fclose(f);
        char mid[512];
        long long c = 0, r = 0;
        if (header(raw, "Message-ID", mid, sizeof mid) != 0 ||
            sscanf(mid, "<c%lldr%lld.", &c, &r) != 2) {
            free(raw); /* half-written (the sink writes, then renames?) or not ours */
            continue;
        }
        if (nmsgs == cap) {
            cap = cap ? cap * 2 : 1024;
            msgs = realloc(msgs, cap * sizeof *msgs);
        }
        msgs[nmsgs++] = (struct msg){c, r, raw};
    }
    closedir(d);
    return nmsgs;
}

static size_t count_for(int64_t cid)
{
    load_msgs();
    size_t n = 0;
    for (size_t i = 0; i < nmsgs; i++)
        n += msgs[i].cid == cid;
    return n;
}

static const char *campaign_status(int64_t cid, char *buf, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/campaigns/%lld", (long long)cid);
    json_t *o = api("GET", path, NULL, 200);
    snprintf(buf, len, "%s", json_string_value(json_object_get(o, "status")));
    json_decref(o);
    return buf;
}

static void wait_status(int64_t cid, const char *want, int timeout_s)
{
    char st[32] = "";
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        if (!strcmp(campaign_status(cid, st, sizeof st), want))
            return;
        usleep(100 * 1000);
    }
    fprintf(stderr, "campaign %lld is %s, not %s\n", (long long)cid, st, want);
    fail();
}

static int64_t campaign(const char *name, int64_t segment, const char *extra)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"%s\",\"segment_id\":%lld,\"template_id\":%lld,\"channel_id\":%lld%s}",
             name, (long long)segment, (long long)tpl_id, (long long)channel_id,
             extra ? extra : "");
    return api_id("/api/v1/campaigns", body);
}

static void action(int64_t cid, const char *what, long want)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/campaigns/%lld/%s", (long long)cid, what);
    json_decref(api("POST", path, "{}", want));
}

/* Per recipient of campaign `cid`: how many copies, and how many distinct
 * Message-IDs among them. Returns the number of recipients seen. */
static size_t per_recipient(int64_t cid, int *max_copies, int *max_ids, size_t *dups)
{
    load_msgs();
    *max_copies = *max_ids = 0;
    *dups = 0;
    int64_t maxr = 0;
    for (size_t i = 0; i < nmsgs; i++)
        if (msgs[i].cid == cid && msgs[i].rid > maxr)
            maxr = msgs[i].rid;
    int *copies = calloc((size_t)maxr + 1, sizeof *copies);
    size_t seen = 0;
    for (size_t i = 0; i < nmsgs; i++) {
        if (msgs[i].cid != cid)
            continue;
        if (!copies[msgs[i].rid]++)
            seen++;
        else
            (*dups)++;
        if (copies[msgs[i].rid] > *max_copies)
            *max_copies = copies[msgs[i].rid];
    }
    /* The Message-ID is derived from (campaign, recipient): every copy of
     * one recipient's message carries the same one. */
    *max_ids = seen ? 1 : 0;
    for (size_t i = 0; i < nmsgs; i++)
        for (size_t j = i + 1; j < nmsgs && msgs[i].cid == cid; j++)
            if (msgs[j].cid == cid && msgs[j].rid == msgs[i].rid) {
                char a[512], b[512];
                header(msgs[i].raw, "Message-ID", a, sizeof a);
                header(msgs[j].raw, "Message-ID", b, sizeof b);
                if (strcmp(a, b))
                    *max_ids = 2;
            }
    free(copies);
    return seen;
}

/* -- Set-up ----------------------------------------------------------------- */

static void import_csv(const char *csv)
{
    char path[] = "/tmp/sb-campaign-import-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, csv, strlen(csv)), (ssize_t)strlen(csv));
    close(fd);
    char out[8192];
    const char *args[] = {"import", "clients", path, NULL};
    int rc = th_run(args, NULL, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "import: %s\n", out);
    assert_int_equal(rc, 0);
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    snprintf(journal_dir, sizeof journal_dir, "%s/tests/journal-campaigns-%d",
             getenv("SB_BUILD") ? getenv("SB_BUILD") : "build", (int)getpid());
    snprintf(env_journal, sizeof env_journal, "SWITCHBOARD_CAMPAIGNS_JOURNAL_DIR=%s", journal_dir);
    th_smtp_sink_start(&sink, NULL);
    th_dovecot_start(&dc);
    db = th_db_connect();
    th_server_start(&srv, server_env);
    th_user("marketer@shop.example", "marketer", "correct horse battery");
    th_login(&srv, "marketer@shop.example", "correct horse battery", cookie, sizeof cookie);

    char smtp_port[32], imap_port[32], out[4096];
    snprintf(smtp_port, sizeof smtp_port, "smtp_port=%d", sink.port);
    snprintf(imap_port, sizeof imap_port, "port=%d", dc.port);
    const char *args[] = {"channel",
                          "add",
                          "email",
                          "--name",
                          "News",
                          "--set",
                          "smtp_host=127.0.0.1",
                          "--set",
                          smtp_port,
                          "--set",
                          "smtp_tls=none",
                          "--set",
                          "from=Shop News <news@shop.example>",
                          "--set",
                          "host=127.0.0.1",
                          "--set",
                          imap_port,
                          "--set",
                          "tls=none",
                          "--set",
                          "username=news@shop.example",
                          "--set",
                          "password=" TH_DOVECOT_PASSWORD,
                          "--set",
                          "poll_seconds=1",
                          NULL};
    int rc = th_run(args, NULL, out, sizeof out);
    if (rc != 0)
        fprintf(stderr, "channel add: %s\n", out);
    assert_int_equal(rc, 0);
    json_t *o = json_loads(out, 0, NULL);
    channel_id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    assert_true(channel_id > 0);

    /* 1,000 subscribers (tags vip; the first 100 also batch100), a plan
     * custom field, plus three who are not vip. */
    size_t cap = 128 * (N_CLIENTS + 10);
    char *csv = malloc(cap);
    size_t o2 = (size_t)snprintf(csv, cap, "name,email,tags,plan\n");
    for (int i = 1; i <= N_CLIENTS; i++)
        o2 += (size_t)snprintf(csv + o2, cap - o2, "Client %d,user%d@example.com,\"vip%s\",%s\n", i,
                               i, i <= 100 ? "; batch100" : "", i % 2 ? "gold" : "basic");
    o2 += (size_t)snprintf(csv + o2, cap - o2,
                           "Kijitora,kijitora@example.co.jp,small,basic\n"
                           "Fresh One,fresh1@example.org,\"small, other\",basic\n"
                           "No Mail,,small,basic\n"
                           "Client 1,user1@example.com,small,gold\n");
    import_csv(csv);
    free(csv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    msgs_free();
    if (srv.pid > 0)
        th_server_stop(&srv);
    rmdir(journal_dir); /* empty once the server stopped cleanly */
    sb_db_close(&db);
    th_dovecot_stop(&dc);
    th_smtp_sink_stop(&sink);
    th_db_teardown();
    return 0;
}

/* -- Tests ------------------------------------------------------------------- */

static int64_t segment_count(const char *filter)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"name\":\"s\",\"filter\":%s}", filter);
    json_t *o = api("POST", "/api/v1/segments", body, 201);
    int64_t n = json_integer_value(json_object_get(o, "count"));
    json_decref(o);
    return n;
}

static void segments(void **state)
{
    (void)state;
    assert_int_equal(segment_count("{\"tag\":\"vip\"}"), N_CLIENTS);
    assert_int_equal(segment_count("{\"tag\":\"VIP\"}"), N_CLIENTS); /* tags ignore case */
    assert_int_equal(segment_count("{\"tag\":\"batch100\"}"), 100);
    assert_int_equal(segment_count("{\"tag\":\"vip\",\"custom\":{\"plan\":\"gold\"}}"),
                     N_CLIENTS / 2);
    /* No e-mail address: never in a segment. */
    assert_int_equal(segment_count("{\"tag\":\"small\"}"), 3);
    assert_int_equal(segment_count("{\"tag\":\"other\"}"), 1);
    assert_int_equal(segment_count("{\"identity_kind\":\"phone\"}"), 0);
    assert_int_equal(segment_count("{\"created_after\":\"2999-01-01\"}"), 0);
    assert_int_equal(segment_count("{\"created_before\":\"2999-01-01T00:00:00Z\",\"tag\":\"vip\"}"),
                     N_CLIENTS);
    /* Values are bound, never pasted into SQL. */
    assert_int_equal(segment_count("{\"tag\":\"vip' OR '1'='1\"}"), 0);
    assert_int_equal(segment_count("{\"custom\":{\"plan\":\"gold') OR 1=1 -- \"}}"), 0);
    json_decref(api("POST", "/api/v1/segments", "{\"name\":\"x\",\"filter\":{\"colour\":1}}", 400));
    json_decref(api("POST", "/api/v1/segments",
                    "{\"name\":\"x\",\"filter\":{\"created_after\":\"soon\"}}", 400));

    seg_all = api_id("/api/v1/segments", "{\"name\":\"VIPs\",\"filter\":{\"tag\":\"vip\"}}");
    seg_100 =
        api_id("/api/v1/segments", "{\"name\":\"First 100\",\"filter\":{\"tag\":\"batch100\"}}");
    char path[64];
    snprintf(path, sizeof path, "/api/v1/segments/%lld", (long long)seg_100);
    json_t *o = api("GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 100);
    json_decref(o);
    /* Agents are not marketers. */
    th_user("agent@shop.example", "agent", "correct horse battery");
    char agent[512];
    th_login(&srv, "agent@shop.example", "correct horse battery", agent, sizeof agent);
    const char *h[] = {agent, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/api/v1/segments", NULL, h, &r), 0);
    assert_int_equal(r.status, 403);
    th_resp_free(&r);
}

/* What the web view's editors need besides the saved objects: a count of an
 * unsaved filter, and the channels by name for a marketer. */
static void editor_helpers(void **state)
{
    (void)state;
    int64_t before = q_int("SELECT COUNT(*) FROM segments", 0);
    json_t *o = api("POST", "/api/v1/segments/count", "{\"filter\":{\"tag\":\"batch100\"}}", 200);
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 100);
    json_decref(o);
    o = api("POST", "/api/v1/segments/count",
            "{\"filter\":{\"tag\":\"vip\",\"custom\":{\"plan\":\"gold\"}}}", 200);
    assert_int_equal(json_integer_value(json_object_get(o, "count")), N_CLIENTS / 2);
    json_decref(o);
    o = api("POST", "/api/v1/segments/count", "{}", 200); /* no filter: everyone mailable */
    assert_int_equal(json_integer_value(json_object_get(o, "count")), N_CLIENTS + 2);
    json_decref(o);
    json_decref(api("POST", "/api/v1/segments/count", "{\"filter\":{\"colour\":1}}", 400));
    json_decref(
        api("POST", "/api/v1/segments/count", "{\"filter\":{\"active_after\":\"x\"}}", 400));
    assert_int_equal(q_int("SELECT COUNT(*) FROM segments", 0), before); /* nothing saved */

    o = api("GET", "/api/v1/channel-names", NULL, 200);
    json_t *items = json_object_get(o, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *c = json_array_get(items, 0);
    assert_int_equal(json_integer_value(json_object_get(c, "id")), channel_id);
    assert_string_equal(json_string_value(json_object_get(c, "kind")), "email");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "News");
    assert_true(json_is_true(json_object_get(c, "enabled")));
    assert_int_equal(json_object_size(c), 4); /* names only: no settings, no secrets */
    json_decref(o);

    char agent[512];
    th_login(&srv, "agent@shop.example", "correct horse battery", agent, sizeof agent);
    const char *h[] = {agent, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/api/v1/channel-names", NULL, h, &r), 0);
    assert_int_equal(r.status, 403);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "POST", "/api/v1/segments/count", "{}", h, &r), 0);
    assert_int_equal(r.status, 403);
    th_resp_free(&r);
}

static void templates(void **state)
{
    (void)state;
    json_decref(api("POST", "/api/v1/templates",
                    "{\"name\":\"bad\",\"subject\":\"Hi {{client.nmae}}\",\"text\":\"x\"}", 400));
    tpl_id = api_id("/api/v1/templates",
                    "{\"name\":\"News\",\"subject\":\"News for {{client.name|you}}\","
                    "\"text\":\"Hello {{client.name|there}} ({{client.email}}), plan "
                    "{{custom.plan|none}}.\\nUnsubscribe: {{unsubscribe_url}}\\n\","
                    "\"html\":\"<p>Hello {{client.name}}</p><p><a "
                    "href=\\\"https://shop.example/sale?x=1&amp;y=2\\\">Sale</a></p><p><a "
                    "href=\\\"{{unsubscribe_url}}\\\">Unsubscribe</a> <a "
                    "href=\\\"{{view_url}}\\\">View in the browser</a></p>\"}");
    char path[96];
    int64_t anna = q_int("SELECT client_id FROM client_identities WHERE value = "
                         "'user7@example.com' AND ? > 0",
                         1);
    /* Preview escapes HTML in values. */
    assert_int_equal(sb_db_exec_text(db,
                                     "UPDATE clients SET name = '<b>Anna</b>' WHERE id IN "
                                     "(SELECT client_id FROM client_identities WHERE value = "
                                     "'user7@example.com')",
                                     NULL, 0),
                     SB_OK);
    snprintf(path, sizeof path, "/api/v1/templates/%lld/preview", (long long)tpl_id);
    char body[64];
    snprintf(body, sizeof body, "{\"client_id\":%lld}", (long long)anna);
    json_t *o = api("POST", path, body, 200);
    assert_string_equal(json_string_value(json_object_get(o, "subject")), "News for <b>Anna</b>");
    assert_non_null(strstr(json_string_value(json_object_get(o, "html")),
                           "<p>Hello &lt;b&gt;Anna&lt;/b&gt;</p>"));
    assert_non_null(
        strstr(json_string_value(json_object_get(o, "text")), "(user7@example.com), plan gold."));
    json_decref(o);
    /* A test send goes through the channel's SMTP server to the given
     * address, marked [TEST]. */
    snprintf(path, sizeof path, "/api/v1/templates/%lld/test", (long long)tpl_id);
    char tb[128];
    snprintf(tb, sizeof tb, "{\"channel_id\":%lld,\"to\":\"proof@shop.example\"}",
             (long long)channel_id);
    o = api("POST", path, tb, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "smtp_status")), 250);
    json_decref(o);
    int found = 0;
    for (int i = 0; i < 50 && !found; i++) {
        DIR *d = opendir(sink.dir);
        struct dirent *e;
        while (d && (e = readdir(d)) && !found) {
            char fp[600], buf[8192] = "";
            snprintf(fp, sizeof fp, "%s/%s", sink.dir, e->d_name);
            FILE *f = e->d_name[0] != '.' ? fopen(fp, "rb") : NULL;
            if (f) {
                buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
                fclose(f);
                found = strstr(buf, "Subject: [TEST] News for you") &&
                        strstr(buf, "X-Rcpt-Args: <proof@shop.example>");
            }
        }
        if (d)
            closedir(d);
        if (!found)
            usleep(100 * 1000);
    }
    assert_true(found);
    json_decref(api("POST", path, "{\"to\":\"proof@shop.example\"}", 400));
    assert_int_equal(sb_db_exec_text(db,
                                     "UPDATE clients SET name = 'Client 7' WHERE id IN "
                                     "(SELECT client_id FROM client_identities WHERE value = "
                                     "'user7@example.com')",
                                     NULL, 0),
                     SB_OK);
}

static int64_t big; /* the 1,000-recipient campaign */

static void thousand_exactly_once(void **state)
{
    (void)state;
    big = campaign("Big", seg_all, NULL);
    char st[32];
    assert_string_equal(campaign_status(big, st, sizeof st), "draft");
    action(big, "pause", 409); /* not running */
    double t0 = now_s();
    action(big, "start", 200);
    action(big, "start", 409);
    wait_status(big, "finished", 120);
    double secs = now_s() - t0;
    int copies, ids;
    size_t dups;
    size_t seen = per_recipient(big, &copies, &ids, &dups);
    fprintf(stderr, "1000 recipients in %.2f s (%.0f msgs/s)\n", secs, N_CLIENTS / secs);
    assert_int_equal(seen, N_CLIENTS);
    assert_int_equal(copies, 1);
    assert_int_equal(dups, 0);
    /* Personalisation and headers, message by message. */
    size_t checked = 0;
    for (size_t i = 0; i < nmsgs; i++) {
        if (msgs[i].cid != big)
            continue;
        const char *raw = msgs[i].raw;
        char to[256], lu[2048], lup[128], subj[256], want[128];
        assert_int_equal(header(raw, "To", to, sizeof to), 0);
        int n = 0;
        assert_int_equal(sscanf(to, "<user%d@example.com>", &n), 1);
        snprintf(want, sizeof want, "Hello Client %d (user%d@example.com), plan %s.", n, n,
                 n % 2 ? "gold" : "basic");
        if (!strstr(raw, want))
            fprintf(stderr, "message to %s lacks '%s':\n%s\n", to, want, raw);
        assert_non_null(strstr(raw, want));
        assert_int_equal(header(raw, "Subject", subj, sizeof subj), 0);
        snprintf(want, sizeof want, "News for Client %d", n);
        assert_string_equal(subj, want);
        assert_int_equal(header(raw, "List-Unsubscribe", lu, sizeof lu), 0);
        assert_non_null(strstr(lu, "<mailto:news@shop.example"));
        assert_non_null(strstr(lu, "<https://sb.example/u/"));
        assert_int_equal(header(raw, "List-Unsubscribe-Post", lup, sizeof lup), 0);
        assert_string_equal(lup, "List-Unsubscribe=One-Click");
        checked++;
    }
    assert_int_equal(checked, N_CLIENTS);
    /* Message-IDs are unique and stored; each message is its own
     * conversation in its client's timeline. */
    assert_int_equal(q_int("SELECT COUNT(DISTINCT message_id) FROM campaign_recipients WHERE "
                           "campaign_id = ? AND status = 'sent'",
                           big),
                     N_CLIENTS);
    assert_int_equal(q_int("SELECT COUNT(DISTINCT i.conversation_id) FROM interactions i WHERE "
                           "i.direction = 'out' AND JSON_VALUE(i.meta, '$.campaign_id') = ?",
                           big),
                     N_CLIENTS);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions i JOIN campaign_recipients r ON "
                           "r.interaction_id = i.id AND r.client_id = i.client_id AND "
                           "r.message_id = i.message_id WHERE r.campaign_id = ?",
                           big),
                     N_CLIENTS);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/campaigns/%lld/stats", (long long)big);
    json_t *o = api("GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "sent")), N_CLIENTS);
    assert_int_equal(json_integer_value(json_object_get(o, "failed")), 0);
    assert_int_equal(json_array_size(json_object_get(o, "hourly")) >= 1, 1);
    json_decref(o);
    action(big, "resume", 409); /* finished is final */
    action(big, "cancel", 409);
}

static struct msg *find_msg(int64_t cid, const char *to_addr)
{
    load_msgs();
    for (size_t i = 0; i < nmsgs; i++) {
        char to[256];
        if (msgs[i].cid == cid && header(msgs[i].raw, "To", to, sizeof to) == 0 &&
            strstr(to, to_addr))
            return &msgs[i];
    }
    return NULL;
}

/* Quoted-printable soft breaks and =3D undone, enough to find URLs. */
static void qp_flatten(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < outlen; p++) {
        if (p[0] == '=' && p[1] == '\n') {
            p++;
            continue;
        }
        if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
            p += 2;
            continue;
        }
        if (!strncmp(p, "=3D", 3)) {
            out[o++] = '=';
            p += 2;
            continue;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
}

static void clicks_and_opens(void **state)
{
    (void)state;
    struct msg *m = find_msg(big, "user3@example.com");
    assert_non_null(m);
    static char flat[65536];
    qp_flatten(m->raw, flat, sizeof flat);
    const char *c = strstr(flat, "https://sb.example/t/c/");
    assert_non_null(c);
    char link[2048];
    c += strlen("https://sb.example");
    snprintf(link, sizeof link, "%.*s", (int)strcspn(c, "\"'> \n"), c);
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", link, NULL, NULL, &r), 0);
    if (r.status != 302)
        fprintf(stderr, "GET %s -> %ld %s\n", link, r.status, r.body);
    assert_int_equal(r.status, 302);
    char loc[512];
    assert_int_equal(th_header(&r, "Location", loc, sizeof loc), 0);
    assert_string_equal(loc, "https://shop.example/sale?x=1&y=2");
    th_resp_free(&r);
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND "
                           "email = 'user3@example.com' AND clicked_at IS NOT NULL",
                           big),
                     1);
    /* Forged: another target with the same token, a token changed by one
     * character, no target at all. Never a redirect. */
    char forged[2048];
    const char *q = strstr(link, "?u=");
    assert_non_null(q);
    snprintf(forged, sizeof forged, "%.*s?u=https%%3A%%2F%%2Fevil.example%%2F", (int)(q - link),
             link);
    const char *bad[3];
    char flip[2048], bare[2048];
    snprintf(flip, sizeof flip, "%s", link);
    flip[10] = flip[10] == 'A' ? 'B' : 'A';
    snprintf(bare, sizeof bare, "%.*s", (int)(q - link), link);
    bad[0] = forged, bad[1] = flip, bad[2] = bare;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_http(&srv, "GET", bad[i], NULL, NULL, &r), 0);
        assert_true(r.status == 404 || r.status == 400);
        assert_int_not_equal(th_header(&r, "Location", loc, sizeof loc), 0);
        th_resp_free(&r);
    }
    /* The open pixel. */
    const char *o = strstr(flat, "https://sb.example/t/o/");
    assert_non_null(o);
    o += strlen("https://sb.example");
    snprintf(link, sizeof link, "%.*s", (int)strcspn(o, "\"'> \n"), o);
    assert_int_equal(th_http(&srv, "GET", link, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(th_header(&r, "Content-Type", loc, sizeof loc), 0);
    assert_string_equal(loc, "image/gif");
    th_resp_free(&r);
    /* View in the browser: the marketer's HTML, as a sandboxed page. */
    const char *v = strstr(flat, "https://sb.example/v/");
    assert_non_null(v);
    v += strlen("https://sb.example");
    snprintf(link, sizeof link, "%.*s", (int)strcspn(v, "\"'> \n"), v);
    assert_int_equal(th_http(&srv, "GET", link, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "Hello"));
    char csp[512];
    assert_int_equal(th_header(&r, "Content-Security-Policy", csp, sizeof csp), 0);
    assert_non_null(strstr(csp, "sandbox"));
    th_resp_free(&r);
    char path[96];
    snprintf(path, sizeof path, "/api/v1/campaigns/%lld/stats", (long long)big);
    json_t *s = api("GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(s, "clicked")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "opened")), 1);
    json_decref(s);
}

/* user1 unsubscribes through the one-click POST of RFC 8058. */
static void unsubscribe(void **state)
{
    (void)state;
    struct msg *m = find_msg(big, "user1@example.com");
    assert_non_null(m);
    char lu[2048];
    assert_int_equal(header(m->raw, "List-Unsubscribe", lu, sizeof lu), 0);
    const char *u = strstr(lu, "<https://sb.example");
    assert_non_null(u);
    char path[512];
    u += strlen("<https://sb.example");
    snprintf(path, sizeof path, "%.*s", (int)strcspn(u, ">"), u);
    struct th_resp r;
    /* GET shows a page with a button and changes nothing. */
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "<form method=\"post\">"));
    th_resp_free(&r);
    assert_int_equal(q_int("SELECT COUNT(*) FROM suppressions WHERE email = 'user1@example.com' "
                           "AND ? > 0",
                           1),
                     0);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    assert_int_equal(th_http(&srv, "POST", path, "List-Unsubscribe=One-Click", h, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "POST", path, "List-Unsubscribe=One-Click", h, &r), 0);
    assert_int_equal(r.status, 200); /* twice is fine */
    th_resp_free(&r);
    assert_int_equal(q_int("SELECT COUNT(*) FROM suppressions WHERE email = 'user1@example.com' "
                           "AND reason = 'unsubscribe' AND suppressed = 1 AND ? > 0",
                           1),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM tracking WHERE kind = 'unsubscribe' AND "
                           "campaign_id = ?",
                           big),
                     1);
    path[5] = path[5] == 'A' ? 'B' : 'A'; /* forged */
    assert_int_equal(th_http(&srv, "POST", path, "List-Unsubscribe=One-Click", h, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    /* The segment no longer counts user1. */
    char sp[64];
    snprintf(sp, sizeof sp, "/api/v1/segments/%lld", (long long)seg_all);
    json_t *o = api("GET", sp, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(o, "count")), N_CLIENTS - 1);
    json_decref(o);
}

static void pause_resume(void **state)
{
    (void)state;
    int64_t cid = campaign("Paced", seg_100, ",\"rate_per_second\":25");
    action(cid, "start", 200);
    double end = now_s() + 20;
    while (count_for(cid) < 20 && now_s() < end)
        usleep(50 * 1000);
    action(cid, "pause", 200);
    double t = now_s();
    usleep(1000 * 1000);
    size_t at_pause = count_for(cid);
    usleep(1500 * 1000);
    size_t later = count_for(cid);
    fprintf(stderr, "paused: %zu messages 1 s after the pause, %zu %.1f s after\n", at_pause, later,
            now_s() - t);
    assert_true(at_pause < 99);
    assert_int_equal(later, at_pause);
    char st[32];
    assert_string_equal(campaign_status(cid, st, sizeof st), "paused");
    action(cid, "pause", 409);
    action(cid, "resume", 200);
    wait_status(cid, "finished", 60);
    int copies, ids;
    size_t dups;
    /* 99: user1 unsubscribed above. */
    assert_int_equal(per_recipient(cid, &copies, &ids, &dups), 99);
    assert_int_equal(copies, 1);
}

/* The restarted server's account of the dead one's send journal. */
static void print_journal_log(void)
{
    FILE *f = fopen(srv.log_path, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f))
        if (strstr(line, "send journal"))
            fprintf(stderr, "server: %s", line);
    fclose(f);
}

/* Files in the suite's journal directory whose name starts with `prefix`. */
static int journal_files(const char *prefix)
{
    DIR *d = opendir(journal_dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

static void kill9_restart(void **state)
{
    (void)state;
    int64_t cid = campaign("Crash", seg_all, ",\"rate_per_second\":300");
    action(cid, "start", 200);
    double end = now_s() + 30;
    while (count_for(cid) < 300 && now_s() < end)
        usleep(20 * 1000);
    kill(srv.pid, SIGKILL);
    waitpid(srv.pid, NULL, 0);
    srv.pid = 0;
    size_t before = count_for(cid);
    fprintf(stderr, "killed -9 after %zu messages\n", before);
    assert_true(before < N_CLIENTS - 1);
    th_server_start(&srv, server_env);
    wait_status(cid, "finished", 120);
    int copies, ids;
    size_t dups;
    size_t seen = per_recipient(cid, &copies, &ids, &dups);
    fprintf(stderr,
            "after restart: %zu recipients, %zu duplicate deliveries, %d copies at most, max "
            "distinct Message-IDs per recipient %d\n",
            seen, dups, copies, ids);
    print_journal_log();
    /* Exactly once: the messages the killed server had handed over but not
     * yet recorded are in its send journal, which the restarted server
     * records before claiming anything; the rest were never handed over
     * and are sent after the lease. Nobody missing, nobody twice. */
    assert_int_equal(seen, N_CLIENTS - 1);
    assert_int_equal(dups, 0);
    assert_int_equal(copies, 1);
    assert_int_equal(ids, 1);
    /* The dead server's journal is gone; the live one's own file stays. */
    assert_int_equal(journal_files("send-journal."), 1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND "
                           "status = 'sent'",
                           cid),
                     N_CLIENTS - 1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions WHERE JSON_VALUE(meta, "
                           "'$.campaign_id') = ?",
                           cid),
                     N_CLIENTS - 1);
}

/* A journal file as a process would have left it: header with the
 * database's tag, then the given lines. Returns an open descriptor. */
static int journal_write(const char *name, const char *tag, const char *lines)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", journal_dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* not the server's */
    assert_true(fd >= 0);
    char head[SB_JOURNAL_TAG_MAX + 64];
    int n = snprintf(head, sizeof head, "switchboard-send-journal 1 %s\n", tag);
    assert_int_equal(write(fd, head, (size_t)n), n);
    assert_int_equal(write(fd, lines, strlen(lines)), (ssize_t)strlen(lines));
    return fd;
}

static int64_t nth_recipient(int64_t cid, int k)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT id FROM campaign_recipients WHERE campaign_id = ? ORDER BY id LIMIT 1 "
             "OFFSET %d",
             k);
    return q_int(sql, cid);
}

static void lease(int64_t rid, const char *token_hex, int seconds)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "UPDATE campaign_recipients SET status = 'sending', attempts = 1, claim_token = "
             "UNHEX('%s'), claimed_until = NOW(6) + INTERVAL %d SECOND WHERE id = ? AND ? > 0",
             token_hex, seconds);
    struct sb_db_val a[] = {SB_INT(rid), SB_INT(1)};
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, sql, a, 2, NULL, err, sizeof err), SB_OK);
}

static const char *recipient_status(int64_t rid, char *buf, size_t len)
{
    struct sb_db_val a = SB_INT(rid);
    struct sb_db_rows r;
    char err[256] = "";
    assert_int_equal(sb_db_exec(db, "SELECT status FROM campaign_recipients WHERE id = ?", &a, 1,
                                &r, err, sizeof err),
                     SB_OK);
    snprintf(buf, len, "%s", r.nrows ? sb_db_cell(&r, 0, 0) : "");
    sb_db_rows_free(&r);
    return buf;
}

static int wait_recipient(int64_t rid, const char *want, int timeout_s)
{
    char st[32];
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        if (!strcmp(recipient_status(rid, st, sizeof st), want))
            return 1;
        usleep(50 * 1000);
    }
    return 0;
}

/* A dead process's journal is recorded at start, nothing re-sent: the
 * server is stopped, rows are left leased as a killed server leaves them,
 * with journal files beside them, and the server started again.
 *   r1: leased (lease over), journal line → sent with its interaction, no SMTP.
 *   r2: leased (lease over), journal line then an N line (refused) → re-sent.
 *   r3: leased (lease over), no line (never handed over) → re-sent; an H
 *       line for it in another database's journal changes nothing.
 *   r4: leased for an hour, its line in a file whose owner is alive (the
 *       test holds its lock) → left alone; once the lock goes, recorded
 *       within a second or two by the running server (a process on the same
 *       host that died), still without SMTP. */
static void journal_recovered(void **state)
{
    (void)state;
    int64_t cid = campaign("Journal", seg_100, ",\"send_at\":\"2099-01-01T00:00:00Z\"");
    action(cid, "start", 200);
    char st[32];
    assert_string_equal(campaign_status(cid, st, sizeof st), "scheduled");
    th_server_stop(&srv);
    assert_int_equal(journal_files("send-journal."), 0); /* a clean stop leaves none */
    int64_t total = q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ?", cid);
    assert_true(total > 10);
    int64_t r1 = nth_recipient(cid, 0), r2 = nth_recipient(cid, 1), r3 = nth_recipient(cid, 2),
            r4 = nth_recipient(cid, 3);
    static const char t1[] = "11111111111111111111111111111111",
                      t2[] = "22222222222222222222222222222222",
                      t3[] = "33333333333333333333333333333333",
                      t4[] = "44444444444444444444444444444444";
    lease(r1, t1, -1);
    lease(r2, t2, -1);
    lease(r3, t3, -1);
    lease(r4, t4, 3600);
    struct sb_db_val ca = SB_INT(cid);
    char uerr[256] = "";
    assert_int_equal(sb_db_exec(db,
                                "UPDATE campaigns SET status = 'running', send_at = NULL "
                                "WHERE id = ?",
                                &ca, 1, NULL, uerr, sizeof uerr),
                     SB_OK);

    struct sb_db_params p;
    char tag[SB_JOURNAL_TAG_MAX], err[256] = "", lines[1024];
    assert_int_equal(sb_db_params_parse(th_db_url(), &p, err, sizeof err), SB_OK);
    sb_journal_tag(&p, tag, sizeof tag);
    sb_db_params_free(&p);
    mkdir(journal_dir, 0700);
    /* Dead: r1 handed over; a stale line (wrong token); r2 handed over
     * then refused; a torn last line for r3. */
    snprintf(lines, sizeof lines,
             "H %lld %lld %s\nH %lld %lld %s\nH %lld %lld %s\nN %lld %lld %s\nH %lld %lld 3333",
             (long long)cid, (long long)r1, t1, (long long)cid, (long long)r1, t4, (long long)cid,
             (long long)r2, t2, (long long)cid, (long long)r2, t2, (long long)cid, (long long)r3);
    close(journal_write("send-journal.999999.1", tag, lines));
    /* Another database's. */
    snprintf(lines, sizeof lines, "H %lld %lld %s\n", (long long)cid, (long long)r3, t3);
    close(journal_write("send-journal.999999.2", "mariadb://elsewhere:3306/other", lines));
    /* Alive: its owner (this test) holds the lock. */
    snprintf(lines, sizeof lines, "H %lld %lld %s\n", (long long)cid, (long long)r4, t4);
    int live = journal_write("send-journal.999998.1", tag, lines);
    assert_int_equal(flock(live, LOCK_EX | LOCK_NB), 0);

    th_server_start(&srv, server_env);
    assert_true(wait_recipient(r1, "sent", 20));
    /* Everyone else but r4 by SMTP, r2 and r3 once their lease is over. */
    double end = now_s() + 60;
    while ((int64_t)count_for(cid) < total - 2 && now_s() < end)
        usleep(100 * 1000);
    int copies, ids;
    size_t dups;
    size_t seen = per_recipient(cid, &copies, &ids, &dups);
    print_journal_log();
    assert_int_equal((int64_t)seen, total - 2);
    assert_int_equal(dups, 0);
    for (size_t i = 0; i < nmsgs; i++)
        assert_true(msgs[i].cid != cid || (msgs[i].rid != r1 && msgs[i].rid != r4));
    assert_string_equal(recipient_status(r4, st, sizeof st), "sending");
    /* r1: recorded exactly as a sent result: Message-ID, its own resolved
     * conversation and outbound interaction. */
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients r JOIN interactions i ON "
                           "i.id = r.interaction_id JOIN conversations c ON c.id = "
                           "i.conversation_id WHERE r.id = ? AND r.status = 'sent' AND "
                           "r.message_id = i.message_id AND i.direction = 'out' AND c.status = "
                           "'resolved' AND r.message_id LIKE CONCAT('c', r.campaign_id, 'r', "
                           "r.id, '.%')",
                           r1),
                     1);
    assert_int_equal(journal_files("send-journal.999999.1"), 0); /* recovered: gone */
    assert_int_equal(journal_files("send-journal.999999.2"), 1); /* another database's */
    assert_int_equal(journal_files("send-journal.999998.1"), 1); /* alive */

    /* The owner of the last one dies: the running server takes it over. */
    close(live);
    assert_true(wait_recipient(r4, "sent", 10));
    /* The file goes right after the commit. */
    for (int i = 0; i < 100 && journal_files("send-journal.999998.1"); i++)
        usleep(20 * 1000);
    assert_int_equal(journal_files("send-journal.999998.1"), 0);
    wait_status(cid, "finished", 30);
    per_recipient(cid, &copies, &ids, &dups);
    assert_int_equal(dups, 0);
    for (size_t i = 0; i < nmsgs; i++)
        assert_true(msgs[i].cid != cid || (msgs[i].rid != r1 && msgs[i].rid != r4));
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND "
                           "status = 'sent' AND interaction_id IS NOT NULL",
                           cid),
                     total);
    char other[700];
    snprintf(other, sizeof other, "%s/send-journal.999999.2", journal_dir);
    unlink(other);
}

/* A hard bounce for one campaign's message (sisimai's Postfix 5.1.1
 * report, its original Message-ID replaced by ours) arrives by IMAP; the
 * next campaign leaves the address out, and the unsubscribed one too. */
static void bounce_suppressed_next_time(void **state)
{
    (void)state;
    int64_t seg_small =
        api_id("/api/v1/segments", "{\"name\":\"Small\",\"filter\":{\"tag\":\"small\"}}");
    int64_t first = campaign("Small 1", seg_small, NULL);
    action(first, "start", 200);
    wait_status(first, "finished", 30);
    struct msg *m = find_msg(first, "kijitora@example.co.jp");
    assert_non_null(m);
    char mid[512];
    assert_int_equal(header(m->raw, "Message-ID", mid, sizeof mid), 0);
    assert_null(find_msg(first, "user1@example.com")); /* unsubscribed earlier */

    char path[600];
    snprintf(path, sizeof path, "%s/tests/fixtures/mail/sisimai/maildir/bsd/lhost-postfix-04.eml",
             th_root());
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char raw[65536], out[65536 + 1024];
    size_t len = fread(raw, 1, sizeof raw - 1, f);
    raw[len] = '\0';
    fclose(f);
    const char *orig = "<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>";
    char *at = strstr(raw, orig);
    assert_non_null(at);
    int n = snprintf(out, sizeof out, "%.*s%s%s", (int)(at - raw), raw, mid, at + strlen(orig));
    th_maildir_deliver(&dc, NULL, out, (size_t)n);
    double end = now_s() + 30;
    while (now_s() < end &&
           q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND bounce = "
                 "'hard'",
                 first) < 1)
        usleep(200 * 1000);
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND "
                           "bounce = 'hard' AND email = 'kijitora@example.co.jp'",
                           first),
                     1);
    assert_int_equal(q_int("SELECT COUNT(*) FROM suppressions WHERE email = "
                           "'kijitora@example.co.jp' AND reason = 'hard_bounce' AND ? > 0",
                           1),
                     1);
    snprintf(path, sizeof path, "/api/v1/campaigns/%lld/stats", (long long)first);
    json_t *s = api("GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(s, "bounced_hard")), 1);
    json_decref(s);

    /* fresh1 answers the campaign: the reply joins fresh1's own
     * conversation, the one holding the campaign message. */
    struct msg *fm = find_msg(first, "fresh1@example.org");
    assert_non_null(fm);
    char fmid[512], reply[2048];
    assert_int_equal(header(fm->raw, "Message-ID", fmid, sizeof fmid), 0);
    n = snprintf(reply, sizeof reply,
                 "From: Fresh One <fresh1@example.org>\r\nTo: news@shop.example\r\n"
                 "Subject: Re: News\r\nMessage-ID: <reply-fresh1@example.org>\r\n"
                 "In-Reply-To: %s\r\nReferences: %s\r\nContent-Type: text/plain\r\n\r\n"
                 "Is the sale on tomorrow too?\r\n",
                 fmid, fmid);
    th_maildir_deliver(&dc, NULL, reply, (size_t)n);
    end = now_s() + 30;
    while (now_s() < end && q_int("SELECT COUNT(*) FROM interactions WHERE external_id = "
                                  "'reply-fresh1@example.org' AND ? > 0",
                                  1) < 1)
        usleep(200 * 1000);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions a JOIN campaign_recipients r ON "
                           "r.interaction_id = a.id JOIN interactions b ON b.conversation_id = "
                           "a.conversation_id WHERE r.campaign_id = ? AND r.email = "
                           "'fresh1@example.org' AND b.external_id = 'reply-fresh1@example.org'",
                           first),
                     1);

    int64_t second = campaign("Small 2", seg_small, NULL);
    action(second, "start", 200);
    wait_status(second, "finished", 30);
    assert_int_equal(q_int("SELECT recipients FROM campaigns WHERE id = ?", second), 1);
    assert_int_equal(count_for(second), 1);
    assert_non_null(find_msg(second, "fresh1@example.org"));

    /* The CSV export tells each recipient's outcome. */
    snprintf(path, sizeof path, "/api/v1/campaigns/%lld/recipients.csv", (long long)first);
    const char *h[] = {cookie, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "recipient_id,client_id,email,outcome,"));
    assert_non_null(strstr(r.body, ",kijitora@example.co.jp,bounced_hard,sent,"));
    assert_non_null(strstr(r.body, ",fresh1@example.org,sent,sent,"));
    th_resp_free(&r);
}

static void cancel(void **state)
{
    (void)state;
    int64_t cid = campaign("Cancelled", seg_100, ",\"rate_per_second\":10");
    action(cid, "start", 200);
    usleep(600 * 1000);
    action(cid, "cancel", 200);
    usleep(1200 * 1000);
    size_t n = count_for(cid);
    usleep(1000 * 1000);
    assert_int_equal(count_for(cid), n);
    assert_true(n < 30);
    char st[32];
    assert_string_equal(campaign_status(cid, st, sizeof st), "cancelled");
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ? AND "
                           "status IN ('queued', 'sending')",
                           cid),
                     0);
    action(cid, "resume", 409);
    /* Scheduled in the future: waits. */
    int64_t later = campaign("Later", seg_100, ",\"send_at\":\"2999-01-01T00:00:00Z\"");
    action(later, "start", 200);
    assert_string_equal(campaign_status(later, st, sizeof st), "scheduled");
}

/* The three list endpoints page with the same cursor rules. */
static void lists_page(void **state)
{
    (void)state;
    static const char *const paths[] = {"/api/v1/segments", "/api/v1/templates",
                                        "/api/v1/campaigns"};
    api_id("/api/v1/templates", "{\"name\":\"Second\",\"subject\":\"Hi\",\"text\":\"x\"}");
    for (size_t k = 0; k < 3; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s?limit=1", paths[k]);
        json_t *o = api("GET", path, NULL, 200);
        json_t *items = json_object_get(o, "items");
        assert_int_equal(json_array_size(items), 1);
        long long first = json_integer_value(json_object_get(json_array_get(items, 0), "id"));
        assert_true(first > 0);
        const char *next = json_string_value(json_object_get(o, "next_cursor"));
        assert_non_null(next); /* every list has more than one row by now */
        snprintf(path, sizeof path, "%s?limit=1&cursor=%s", paths[k], next);
        json_t *o2 = api("GET", path, NULL, 200);
        long long second = json_integer_value(
            json_object_get(json_array_get(json_object_get(o2, "items"), 0), "id"));
        assert_true(second > 0);
        assert_true(second < first); /* newest first, and no repeat */
        json_decref(o2);
        json_decref(o);
    }
    json_t *bad = api("GET", "/api/v1/campaigns?cursor=zzz", NULL, 400);
    json_decref(bad);
    /* One unknown id, the same answer everywhere. */
    static const char *const missing[] = {
        "/api/v1/segments/999999", "/api/v1/templates/999999", "/api/v1/campaigns/999999",
        "/api/v1/campaigns/999999/stats", "/api/v1/campaigns/999999/recipients.csv"};
    for (size_t k = 0; k < sizeof missing / sizeof missing[0]; k++) {
        json_t *e = api("GET", missing[k], NULL, 404);
        const char *code = json_string_value(json_object_get(json_object_get(e, "error"), "code"));
        assert_non_null(code);
        assert_string_equal(code, "not_found");
        json_decref(e);
    }
}

/* -- Editing (PATCH and DELETE) --------------------------------------------- */

static json_t *call(const char *method, long want, const char *body, const char *fmt, long long id)
{
    char path[160];
    snprintf(path, sizeof path, fmt, id);
    return api(method, path, body, want);
}

static long long jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void edit_segments_and_templates(void **state)
{
    (void)state;
    /* batch100 holds 100 clients; user1 unsubscribed earlier, so 99 can be
     * mailed, 49 of them on plan gold (odd numbers). */
    int64_t seg =
        api_id("/api/v1/segments", "{\"name\":\"Edit me\",\"filter\":{\"tag\":\"batch100\"}}");
    json_t *o = call("PATCH", 200, "{\"name\":\"Renamed\"}", "/api/v1/segments/%lld", seg);
    assert_string_equal(jstr(o, "name"), "Renamed");
    assert_int_equal(jint(o, "count"), 99);
    json_decref(o);
    o = call("PATCH", 200, "{\"filter\":{\"tag\":\"batch100\",\"custom\":{\"plan\":\"gold\"}}}",
             "/api/v1/segments/%lld", seg);
    assert_int_equal(jint(o, "count"), 49); /* recomputed */
    assert_string_equal(jstr(o, "name"), "Renamed");
    json_decref(o);
    o = call("GET", 200, NULL, "/api/v1/segments/%lld", seg);
    assert_string_equal(jstr(json_object_get(o, "filter"), "tag"), "batch100");
    assert_int_equal(jint(o, "count"), 49);
    json_decref(o);
    json_decref(call("PATCH", 400, "{\"colour\":1}", "/api/v1/segments/%lld", seg));
    json_decref(call("PATCH", 400, "{\"filter\":{\"colour\":1}}", "/api/v1/segments/%lld", seg));
    json_decref(call("PATCH", 400, "{\"name\":\"\"}", "/api/v1/segments/%lld", seg));
    json_decref(call("PATCH", 400, "{}", "/api/v1/segments/%lld", seg));
    json_decref(call("PATCH", 400, "{\"name\":", "/api/v1/segments/%lld", seg));
    json_decref(call("PATCH", 404, "{\"name\":\"x\"}", "/api/v1/segments/%lld", 999999));
    json_decref(call("DELETE", 404, NULL, "/api/v1/segments/%lld", 999999));
    o = call("GET", 200, NULL, "/api/v1/segments/%lld", seg); /* a refusal changed nothing */
    assert_string_equal(jstr(o, "name"), "Renamed");
    assert_int_equal(jint(o, "count"), 49);
    json_decref(o);

    int64_t tpl = api_id("/api/v1/templates",
                         "{\"name\":\"T\",\"subject\":\"Old {{client.name}}\",\"text\":\"old\"}");
    /* The create path's checks: unknown merge field, no part left. */
    o = call("PATCH", 400, "{\"subject\":\"Hi {{client.nmae}}\"}", "/api/v1/templates/%lld", tpl);
    assert_non_null(strstr(jstr(json_object_get(o, "error"), "message"),
                           "subject: unknown merge field 'client.nmae'"));
    json_decref(o);
    json_decref(call("PATCH", 400, "{\"html\":\"<p>{{custom.x\"}", "/api/v1/templates/%lld", tpl));
    json_decref(call("PATCH", 400, "{\"text\":null}", "/api/v1/templates/%lld", tpl));
    json_decref(call("PATCH", 400, "{\"subject\":5}", "/api/v1/templates/%lld", tpl));
    json_decref(call("PATCH", 400, "{\"subject\":\"\"}", "/api/v1/templates/%lld", tpl));
    json_decref(call("PATCH", 400, "{\"sender\":\"x\"}", "/api/v1/templates/%lld", tpl));
    json_decref(call("PATCH", 404, "{\"name\":\"x\"}", "/api/v1/templates/%lld", 999999));
    o = call("GET", 200, NULL, "/api/v1/templates/%lld", tpl);
    assert_string_equal(jstr(o, "subject"), "Old {{client.name}}");
    json_decref(o);
    o = call("PATCH", 200,
             "{\"subject\":\"New {{client.name|you}}\",\"html\":\"<p>Hi</p>\",\"text\":null}",
             "/api/v1/templates/%lld", tpl);
    assert_string_equal(jstr(o, "subject"), "New {{client.name|you}}");
    assert_string_equal(jstr(o, "html"), "<p>Hi</p>");
    assert_true(json_is_null(json_object_get(o, "text")));
    assert_string_equal(jstr(o, "name"), "T");
    json_decref(o);
    o = call("POST", 200, "{}", "/api/v1/templates/%lld/preview", tpl); /* what preview shows */
    assert_string_equal(jstr(o, "subject"), "New you");
    json_decref(o);
    /* Unused: deleted. */
    json_decref(call("DELETE", 204, NULL, "/api/v1/templates/%lld", tpl));
    json_decref(call("GET", 404, NULL, "/api/v1/templates/%lld", tpl));
    json_decref(call("DELETE", 404, NULL, "/api/v1/templates/%lld", tpl));
    json_decref(call("DELETE", 204, NULL, "/api/v1/segments/%lld", seg));
    json_decref(call("GET", 404, NULL, "/api/v1/segments/%lld", seg));
    assert_int_equal(q_int("SELECT COUNT(*) FROM audit_log WHERE target_type = 'segment' AND "
                           "action IN ('segment.update', 'segment.delete') AND target_id = ?",
                           seg),
                     3);
    assert_int_equal(q_int("SELECT COUNT(*) FROM audit_log WHERE target_type = 'template' AND "
                           "action IN ('template.update', 'template.delete') AND target_id = ?",
                           tpl),
                     2);

    /* Agents edit nothing here. */
    char agent[512];
    th_login(&srv, "agent@shop.example", "correct horse battery", agent, sizeof agent);
    const char *h[] = {agent, "Content-Type: application/json", NULL};
    static const char *const paths[] = {"/api/v1/segments/%lld", "/api/v1/templates/%lld",
                                        "/api/v1/campaigns/%lld"};
    for (int i = 0; i < 3; i++) {
        char path[96];
        snprintf(path, sizeof path, paths[i],
                 (long long)(i == 0   ? seg_all
                             : i == 1 ? tpl_id
                                      : big));
        struct th_resp r;
        assert_int_equal(th_http(&srv, "PATCH", path, "{\"name\":\"mine\"}", h, &r), 0);
        assert_int_equal(r.status, 403);
        th_resp_free(&r);
        assert_int_equal(th_http(&srv, "DELETE", path, NULL, h, &r), 0);
        assert_int_equal(r.status, 403);
        th_resp_free(&r);
    }
}

static void edit_campaigns(void **state)
{
    (void)state;
    int64_t gold = api_id(
        "/api/v1/segments",
        "{\"name\":\"Gold 100\",\"filter\":{\"tag\":\"batch100\",\"custom\":{\"plan\":\"gold\"}}}");
    int64_t tpl =
        api_id("/api/v1/templates", "{\"name\":\"Sched\",\"subject\":\"First\",\"text\":\"x\"}");
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"Draft\",\"segment_id\":%lld,\"template_id\":%lld,\"channel_id\":%lld}",
             (long long)gold, (long long)tpl, (long long)channel_id);
    int64_t cid = api_id("/api/v1/campaigns", body);
    json_t *o =
        call("PATCH", 200,
             "{\"name\":\"Later on\",\"rate_per_second\":7,\"send_at\":\"2999-01-01T10:00:00Z\"}",
             "/api/v1/campaigns/%lld", cid);
    assert_string_equal(jstr(o, "name"), "Later on");
    assert_int_equal(jint(o, "rate_per_second"), 7);
    assert_non_null(strstr(jstr(o, "send_at"), "2999-01-01"));
    assert_int_equal(jint(o, "segment_id"), gold);
    assert_string_equal(jstr(o, "status"), "draft");
    json_decref(o);
    json_decref(call("PATCH", 400, "{\"segment_id\":999999}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("PATCH", 400, "{\"template_id\":\"1\"}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("PATCH", 400, "{\"status\":\"running\"}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("PATCH", 400, "{\"send_at\":\"soon\"}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("PATCH", 400, "{\"rate_per_second\":-1}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("PATCH", 404, "{\"name\":\"x\"}", "/api/v1/campaigns/%lld", 999999));
    /* Used by a draft: neither segment nor template can go. */
    o = call("DELETE", 409, NULL, "/api/v1/segments/%lld", gold);
    assert_string_equal(jstr(json_object_get(o, "error"), "code"), "conflict");
    assert_non_null(strstr(jstr(json_object_get(o, "error"), "message"), "draft"));
    json_decref(o);
    json_decref(call("DELETE", 409, NULL, "/api/v1/templates/%lld", tpl));

    /* Scheduled: the recipients and the copy of the template follow every
     * edit until it sends. */
    action(cid, "start", 200);
    char st[32];
    assert_string_equal(campaign_status(cid, st, sizeof st), "scheduled");
    assert_int_equal(q_int("SELECT recipients FROM campaigns WHERE id = ?", cid), 49);
    json_decref(call("PATCH", 400, "{\"segment_id\":0}", "/api/v1/campaigns/%lld", cid));
    snprintf(body, sizeof body, "{\"segment_id\":%lld}", (long long)seg_100);
    json_decref(call("PATCH", 200, body, "/api/v1/campaigns/%lld", cid));
    assert_int_equal(q_int("SELECT recipients FROM campaigns WHERE id = ?", cid), 99);
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ?", cid),
                     99);
    snprintf(body, sizeof body, "{\"segment_id\":%lld}", (long long)gold);
    json_decref(call("PATCH", 200, body, "/api/v1/campaigns/%lld", cid));
    assert_int_equal(q_int("SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = ?", cid),
                     49);
    json_decref(call("PATCH", 200,
                     "{\"filter\":{\"tag\":\"batch100\",\"custom\":{\"plan\":\"basic\"}}}",
                     "/api/v1/segments/%lld", gold));
    assert_int_equal(q_int("SELECT recipients FROM campaigns WHERE id = ?", cid), 50);
    json_decref(call("PATCH", 200, "{\"subject\":\"Second\"}", "/api/v1/templates/%lld", tpl));
    assert_int_equal(
        q_int("SELECT COUNT(*) FROM campaigns WHERE id = ? AND subject = 'Second'", cid), 1);
    json_decref(call("PATCH", 400, "{\"send_at\":null}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("DELETE", 409, NULL, "/api/v1/campaigns/%lld", cid));
    action(cid, "cancel", 200);
    json_decref(call("PATCH", 409, "{\"name\":\"x\"}", "/api/v1/campaigns/%lld", cid));
    assert_true(q_int("SELECT COUNT(*) FROM events WHERE type = 'campaign.updated' AND "
                      "JSON_VALUE(data, '$.campaign_id') = ?",
                      cid) >= 6);

    /* A draft goes; anything started stays (cancel is the way to stop). */
    snprintf(body, sizeof body,
             "{\"name\":\"Gone\",\"segment_id\":%lld,\"template_id\":%lld,\"channel_id\":%lld}",
             (long long)gold, (long long)tpl, (long long)channel_id);
    int64_t gone = api_id("/api/v1/campaigns", body);
    json_decref(call("DELETE", 204, NULL, "/api/v1/campaigns/%lld", gone));
    json_decref(call("GET", 404, NULL, "/api/v1/campaigns/%lld", gone));
    json_decref(call("DELETE", 404, NULL, "/api/v1/campaigns/%lld", gone));
    json_decref(call("DELETE", 409, NULL, "/api/v1/campaigns/%lld", big)); /* finished */
    assert_int_equal(q_int("SELECT COUNT(*) FROM audit_log WHERE action = 'campaign.delete' AND "
                           "target_id = ?",
                           gone),
                     1);
}

/* While a campaign runs, edits of its template and segment change nothing
 * it sends, and the campaign itself cannot be edited or its parts deleted;
 * once finished, they can go and the campaign keeps its history. */
static void running_campaign_unaffected(void **state)
{
    (void)state;
    int64_t seg =
        api_id("/api/v1/segments", "{\"name\":\"Run\",\"filter\":{\"tag\":\"batch100\"}}");
    int64_t tpl =
        api_id("/api/v1/templates", "{\"name\":\"Run\",\"subject\":\"Before "
                                    "{{client.name}}\",\"text\":\"before {{client.name}}\"}");
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"Run\",\"segment_id\":%lld,\"template_id\":%lld,\"channel_id\":%lld,"
             "\"rate_per_second\":25}",
             (long long)seg, (long long)tpl, (long long)channel_id);
    int64_t cid = api_id("/api/v1/campaigns", body);
    action(cid, "start", 200);
    double end = now_s() + 20;
    while (count_for(cid) < 5 && now_s() < end)
        usleep(50 * 1000);
    json_decref(call("PATCH", 200,
                     "{\"subject\":\"After {{client.name}}\",\"text\":\"AFTER-EDIT\"}",
                     "/api/v1/templates/%lld", tpl));
    json_t *o =
        call("PATCH", 200, "{\"filter\":{\"tag\":\"nobody\"}}", "/api/v1/segments/%lld", seg);
    assert_int_equal(jint(o, "count"), 0);
    json_decref(o);
    json_decref(call("PATCH", 409, "{\"rate_per_second\":0}", "/api/v1/campaigns/%lld", cid));
    json_decref(call("DELETE", 409, NULL, "/api/v1/templates/%lld", tpl));
    json_decref(call("DELETE", 409, NULL, "/api/v1/segments/%lld", seg));
    json_decref(call("DELETE", 409, NULL, "/api/v1/campaigns/%lld", cid));
    size_t mid_run = count_for(cid);
    wait_status(cid, "finished", 60);
    fprintf(stderr, "edited after %zu of 99 messages\n", mid_run);
    assert_true(mid_run < 99);
    int copies, ids;
    size_t dups;
    assert_int_equal(per_recipient(cid, &copies, &ids, &dups), 99);
    assert_int_equal(copies, 1);
    size_t before = 0;
    for (size_t i = 0; i < nmsgs; i++) {
        if (msgs[i].cid != cid)
            continue;
        char subj[256];
        assert_int_equal(header(msgs[i].raw, "Subject", subj, sizeof subj), 0);
        before += !strncmp(subj, "Before Client ", 14);
        assert_null(strstr(msgs[i].raw, "AFTER-EDIT"));
    }
    assert_int_equal(before, 99);
    assert_int_equal(q_int("SELECT recipients FROM campaigns WHERE id = ?", cid), 99);

    /* Finished: its segment and template can go; the campaign stays. */
    json_decref(call("DELETE", 204, NULL, "/api/v1/templates/%lld", tpl));
    json_decref(call("DELETE", 204, NULL, "/api/v1/segments/%lld", seg));
    o = call("GET", 200, NULL, "/api/v1/campaigns/%lld?hourly=1", cid);
    assert_true(json_is_null(json_object_get(o, "segment_id")));
    assert_true(json_is_null(json_object_get(o, "template_id")));
    assert_string_equal(jstr(o, "status"), "finished");
    json_t *stats = json_object_get(o, "stats");
    assert_int_equal(jint(stats, "sent"), 99);
    assert_true(json_array_size(json_object_get(stats, "hourly")) >= 1); /* one request per poll */
    json_decref(o);
    o = call("GET", 200, NULL, "/api/v1/campaigns/%lld", cid);
    assert_null(json_object_get(json_object_get(o, "stats"), "hourly"));
    json_decref(o);
    action(cid, "start", 409); /* still final, never "everyone" */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(segments),
        cmocka_unit_test(editor_helpers),
        cmocka_unit_test(templates),
        cmocka_unit_test(thousand_exactly_once),
        cmocka_unit_test(clicks_and_opens),
        cmocka_unit_test(unsubscribe),
        cmocka_unit_test(pause_resume),
        cmocka_unit_test(kill9_restart),
        cmocka_unit_test(journal_recovered),
        cmocka_unit_test(bounce_suppressed_next_time),
        cmocka_unit_test(cancel),
        cmocka_unit_test(lists_page),
        cmocka_unit_test(edit_segments_and_templates),
        cmocka_unit_test(edit_campaigns),
        cmocka_unit_test(running_campaign_unaffected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
