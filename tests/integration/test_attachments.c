/* Attachments end to end: a Telegram document fetched by the sender from a
 * mock Bot API and downloaded by an agent with safe headers, under the
 * inbox's visibility rule; uploads (size cap, type sniffing, name
 * cleaning); replies carrying files to Telegram (multipart sendDocument) and
 * to e-mail (multipart/mixed, read back from Postfix's smtp-sink with
 * sb_mime_parse); another agent's upload refused; stale uploads pruned. */
#include "harness.h"
#include "switchboard/campaign.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/mime.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TG_TOKEN  "123456:ABCDEF"
#define TG_SECRET "fixture-secret-0123456789"
#define FROM      "Support Team <support@shop.example>"
#define TG_OK     "{\"ok\":true,\"result\":{\"message_id\":1,\"chat\":{\"id\":1}}}"
#define WA_TOKEN  "EAAG-test"
#define WA_SECRET "whatsapp-app-secret"
#define WA_PHONE  "106540352242922"
#define VB_TOKEN  "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"

static struct th_server srv;
static struct th_mock mock;
static struct th_smtp_sink sink;
static struct sb_db *db;
static long long tg_id, mail_id, wa_id, vb_id;
static char ada[512], bob[512]; /* session cookies of two agents */
static long long ada_id;
static int update_id = 777000;

static int64_t q_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t q_int(const char *fmt, ...)
{
    char sql[2048], err[256] = "";
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

static int64_t wait_int(int64_t want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int64_t wait_int(int64_t want, int timeout_ms, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    int64_t v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if ((v = q_int("%s", sql)) == want)
            return v;
        usleep(50 * 1000);
    }
    fprintf(stderr, "%s: %lld, want %lld\n", sql, (long long)v, (long long)want);
    return v;
}

static void exec_sql(const char *sql)
{
    char err[256] = "";
    int rc = sb_db_exec(db, sql, NULL, 0, NULL, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
}

static long long add_channel(const char *const *args)
{
    char out[2048];
    if (th_run(args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add: %s\n", out);
        return 0;
    }
    json_t *o = json_loads(out, 0, NULL);
    long long id = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    th_mock_start(&mock, 200, TG_OK);
    th_smtp_sink_start(&sink, NULL);
    char base[96], sport[32];
    snprintf(base, sizeof base, "api_base=http://127.0.0.1:%d", mock.port);
    snprintf(sport, sizeof sport, "smtp_port=%d", sink.port);
    const char *tg[] = {"channel",
                        "add",
                        "telegram",
                        "--name",
                        "Bot",
                        "--set",
                        base,
                        "--set",
                        "token=" TG_TOKEN,
                        "--set",
                        "secret_token=" TG_SECRET,
                        NULL};
    const char *em[] = {
        "channel", "add", "email", "--name",        "Mail",  "--set",      "smtp_host=127.0.0.1",
        "--set",   sport, "--set", "smtp_tls=none", "--set", "from=" FROM, NULL};
    const char *wa[] = {"channel",
                        "add",
                        "whatsapp",
                        "--name",
                        "WA",
                        "--set",
                        base,
                        "--set",
                        "access_token=" WA_TOKEN,
                        "--set",
                        "app_secret=" WA_SECRET,
                        "--set",
                        "verify_token=verify-me-please",
                        "--set",
                        "phone_number_id=" WA_PHONE,
                        NULL};
    const char *vb[] = {"channel", "add",   "viber",
                        "--name",  "Viber", "--set",
                        base,      "--set", "auth_token=" VB_TOKEN,
                        NULL};
    tg_id = add_channel(tg);
    mail_id = add_channel(em);
    wa_id = add_channel(wa);
    vb_id = add_channel(vb);
    if (!tg_id || !mail_id || !wa_id || !vb_id)
        return -1;
    db = th_db_connect();
    th_server_start(&srv, NULL);
    th_user("ada@example.com", "agent", "agent-password-1");
    th_user("bob@example.com", "agent", "agent-password-2");
    th_login(&srv, "ada@example.com", "agent-password-1", ada, sizeof ada);
    th_login(&srv, "bob@example.com", "agent-password-2", bob, sizeof bob);
    ada_id = q_int("SELECT id FROM users WHERE email = 'ada@example.com'");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    th_mock_stop(&mock);
    th_smtp_sink_stop(&sink);
    sb_db_close(&db);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

/* A Telegram update from chat 523901177 carrying `file` (a JSON member such
 * as "document":{…}); returns the conversation. */
static long long tg_hook(const char *file)
{
    char body[2048];
    update_id++;
    snprintf(body, sizeof body,
             "{\"update_id\":%d,\"message\":{\"message_id\":%d,\"from\":{\"id\":523901177,"
             "\"is_bot\":false,\"first_name\":\"Анна\"},\"chat\":{\"id\":523901177,\"type\":"
             "\"private\"},\"date\":1763812800,\"caption\":\"вот файл\",%s}}",
             update_id, update_id, file);
    const char *h[] = {"Content-Type: application/json",
                       "X-Telegram-Bot-Api-Secret-Token: " TG_SECRET, NULL};
    struct th_resp r;
    char path[64];
    snprintf(path, sizeof path, "/hooks/telegram/%lld", tg_id);
    assert_int_equal(th_http(&srv, "POST", path, body, h, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    return q_int("SELECT id FROM conversations WHERE channel_id = %lld ORDER BY id DESC LIMIT 1",
                 tg_id);
}

/* The attachments of the newest interaction of `conv` as the API lists
 * them (owned). */
static json_t *listed(const char *cookie, long long conv)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/interactions", conv);
    const char *h[] = {cookie, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    th_resp_free(&r);
    json_t *a =
        json_incref(json_object_get(json_array_get(json_object_get(o, "items"), 0), "attachments"));
    json_decref(o);
    assert_non_null(a);
    return a;
}

static long get(const char *cookie, const char *path, struct th_resp *r)
{
    const char *h[] = {cookie, NULL};
    assert_int_equal(th_http(&srv, "GET", path, NULL, h, r), 0);
    return r->status;
}

/* The first attachment's download, checked against what it must be. */
static void download_is(const char *cookie, json_t *att, const char *bytes, const char *type,
                        const char *disposition)
{
    char path[96], v[1024];
    snprintf(path, sizeof path, "/api/v1/attachments/%lld",
             (long long)json_integer_value(json_object_get(att, "id")));
    struct th_resp r;
    assert_int_equal(get(cookie, path, &r), 200);
    assert_string_equal(r.body, bytes);
    assert_int_equal(th_header(&r, "Content-Type", v, sizeof v), 0);
    assert_string_equal(v, type);
    assert_int_equal(th_header(&r, "X-Content-Type-Options", v, sizeof v), 0);
    assert_string_equal(v, "nosniff");
    assert_int_equal(th_header(&r, "Content-Disposition", v, sizeof v), 0);
    if (strcmp(v, disposition))
        fprintf(stderr, "Content-Disposition: %s\n", v);
    assert_string_equal(v, disposition);
    th_resp_free(&r);
}

/* A document the client sends is fetched by the sender (getFile, then the
 * file); the thread lists it and agents who see the conversation download
 * it as an attachment with its name in RFC 6266 form; others get 404. */
static void inbound_document_is_fetched_and_downloadable(void **state)
{
    (void)state;
    const char *bytes = "%PDF-1.4 invoice 5\n";
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"file_id\":\"DOC5\",\"file_path\":\"documents/"
                 "file_5.pdf\"}}");
    th_mock_push(&mock, 200, NULL, bytes);
    long long conv = tg_hook("\"document\":{\"file_name\":\"Счёт №5.pdf\",\"mime_type\":"
                             "\"application/pdf\",\"file_id\":\"DOC5\",\"file_unique_id\":\"u5\","
                             "\"file_size\":19}");
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM attachments WHERE provider_ref = 'DOC5' AND "
                              "sha256 IS NOT NULL"),
                     1);
    json_t *a = listed(ada, conv);
    assert_int_equal(json_array_size(a), 1);
    json_t *att = json_array_get(a, 0);
    assert_string_equal(json_string_value(json_object_get(att, "filename")), "Счёт №5.pdf");
    assert_string_equal(json_string_value(json_object_get(att, "content_type")), "application/pdf");
    assert_int_equal(json_integer_value(json_object_get(att, "size")), strlen(bytes));
    assert_true(json_is_true(json_object_get(att, "fetched")));
    download_is(ada, att, bytes, "application/pdf",
                "attachment; filename=\"____ _5.pdf\"; "
                "filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82%20%E2%84%965.pdf");

    /* Assigned to Ada: Bob no longer sees the conversation nor its file. */
    char path[96], body[64];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld", conv);
    snprintf(body, sizeof body, "{\"assignee_id\":%lld}", ada_id);
    const char *h[] = {ada, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "PATCH", path, body, h, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/api/v1/attachments/%lld",
             (long long)json_integer_value(json_object_get(att, "id")));
    assert_int_equal(get(bob, path, &r), 404);
    assert_non_null(strstr(r.body, "\"not_found\""));
    th_resp_free(&r);
    assert_int_equal(get(ada, "/api/v1/attachments/999999", &r), 404);
    th_resp_free(&r);
    assert_int_equal(get("", path, &r), 401);
    th_resp_free(&r);
    json_decref(a);
    exec_sql("UPDATE conversations SET assignee_id = NULL");
}

/* Only raster images that are what they say are shown inline; an SVG is
 * always a download of type application/octet-stream. */
static void only_real_raster_images_are_inline(void **state)
{
    (void)state;
    const char *jpeg = "\xff\xd8\xff\xe0 jpeg bytes";
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"file_id\":\"PH1\",\"file_path\":\"photos/p.jpg\"}}");
    th_mock_push(&mock, 200, NULL, jpeg);
    long long conv = tg_hook("\"photo\":[{\"file_id\":\"PH1\",\"file_unique_id\":\"p1\","
                             "\"width\":90,\"height\":90,\"file_size\":15}]");
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM attachments WHERE provider_ref = 'PH1' AND "
                              "sha256 IS NOT NULL"),
                     1);
    json_t *a = listed(ada, conv);
    char name[64];
    snprintf(name, sizeof name, "inline; filename=\"attachment-%lld.jpg\"; ",
             (long long)json_integer_value(json_object_get(json_array_get(a, 0), "id")));
    char want[160];
    snprintf(want, sizeof want, "%sfilename*=UTF-8''attachment-%lld.jpg", name,
             (long long)json_integer_value(json_object_get(json_array_get(a, 0), "id")));
    download_is(ada, json_array_get(a, 0), jpeg, "image/jpeg", want);
    json_decref(a);

    const char *svg = "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"file_id\":\"SVG1\",\"file_path\":\"d/x.svg\"}}");
    th_mock_push(&mock, 200, NULL, svg);
    conv = tg_hook("\"document\":{\"file_name\":\"x.svg\",\"mime_type\":\"image/svg+xml\","
                   "\"file_id\":\"SVG1\",\"file_unique_id\":\"s1\",\"file_size\":70}");
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM attachments WHERE provider_ref = 'SVG1' AND "
                              "sha256 IS NOT NULL"),
                     1);
    a = listed(ada, conv);
    download_is(ada, json_array_get(a, 0), svg, "application/octet-stream",
                "attachment; filename=\"x.svg\"; filename*=UTF-8''x.svg");
    json_decref(a);
}

/* POST /api/v1/uploads as `cookie`; returns the status, fills *id_r and
 * the stored type and name. */
static long upload(const char *cookie, const char *name_q, const char *type, const char *bytes,
                   long long *id_r, char *stored_type, char *stored_name)
{
    char path[512], ct[160];
    snprintf(path, sizeof path, "/api/v1/uploads%s%s", name_q ? "?filename=" : "",
             name_q ? name_q : "");
    snprintf(ct, sizeof ct, "Content-Type: %s", type);
    const char *h[] = {cookie, ct, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, bytes, h, &r), 0);
    json_t *o = json_loads(r.body, 0, NULL);
    if (id_r)
        *id_r = json_integer_value(json_object_get(o, "id"));
    if (stored_type)
        snprintf(stored_type, 128, "%s",
                 json_string_value(json_object_get(o, "content_type"))
                     ? json_string_value(json_object_get(o, "content_type"))
                     : "");
    if (stored_name)
        snprintf(stored_name, 256, "%s",
                 json_string_value(json_object_get(o, "filename"))
                     ? json_string_value(json_object_get(o, "filename"))
                     : "");
    if (r.status != 201)
        fprintf(stderr, "upload: %ld %s\n", r.status, r.body);
    json_decref(o);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

/* Over the body cap: 413 with a JSON error, nothing stored. Types are
 * sniffed (a "PNG" that is text is not stored as an image), names lose
 * their paths and control characters. */
static void uploads_are_capped_sniffed_and_cleaned(void **state)
{
    (void)state;
    size_t big = 1536 * 1024; /* over server.body_limit's default of 1 MiB */
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = '\0';
    const char *h[] = {ada, "Content-Type: text/plain", NULL};
    struct th_resp r;
    int64_t before = q_int("SELECT COUNT(*) FROM uploads");
    assert_int_equal(th_http(&srv, "POST", "/api/v1/uploads?filename=big.txt", huge, h, &r), 0);
    assert_int_equal(r.status, 413);
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    assert_non_null(json_string_value(json_object_get(json_object_get(o, "error"), "message")));
    json_decref(o);
    th_resp_free(&r);
    free(huge);
    assert_int_equal(q_int("SELECT COUNT(*) FROM uploads"), before);

    char type[128], name[256];
    long long id;
    assert_int_equal(upload(ada, "..%2F..%2Fetc%2Fpass%09wd%7F.png", "image/png",
                            "not a png at all", &id, type, name),
                     201);
    assert_string_equal(type, "application/octet-stream");
    assert_string_equal(name, "pass_wd_.png");
    assert_int_equal(
        upload(ada, "a.pdf", "application/octet-stream", "%PDF-1.7 x", &id, type, name), 201);
    assert_string_equal(type, "application/pdf");
    assert_int_equal(
        upload(ada, "x.html", "text/html", "<script>alert(1)</script>", &id, type, NULL), 201);
    assert_string_equal(type, "application/octet-stream");
    assert_int_equal(upload(ada, "e.txt", "text/plain", "", &id, NULL, NULL), 400);
    /* multipart/form-data, as a browser form sends it */
    const char *mp = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                     "filename=\"note %22q%22.txt\"\r\nContent-Type: text/plain\r\n\r\n"
                     "multipart bytes\r\n--XyZ--\r\n";
    assert_int_equal(upload(ada, NULL, "multipart/form-data; boundary=XyZ", mp, &id, type, name),
                     201);
    assert_string_equal(type, "text/plain");
    assert_string_equal(name, "note _q_.txt");
    assert_int_equal(q_int("SELECT size FROM uploads WHERE id = %lld", id), 15);
}

/* POST a reply with files; returns the status, fills the interaction id. */
static long reply(const char *cookie, long long conv, const char *text, const char *ids,
                  long long *id_r)
{
    char path[96], body[1024];
    snprintf(path, sizeof path, "/api/v1/conversations/%lld/replies", conv);
    snprintf(body, sizeof body, "{\"text\":\"%s\",\"attachment_ids\":[%s]}", text, ids);
    const char *h[] = {cookie, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, h, &r), 0);
    json_t *o = json_loads(r.body, 0, NULL);
    if (id_r)
        *id_r = json_integer_value(json_object_get(o, "id"));
    if (r.status != 202)
        fprintf(stderr, "reply: %ld %s\n", r.status, r.body);
    else
        assert_int_equal(json_array_size(json_object_get(o, "attachments")), 1);
    json_decref(o);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

/* A reply with a file reaches Telegram as multipart sendDocument: chat id,
 * caption, the file's name and bytes. */
static void telegram_reply_sends_the_file(void **state)
{
    (void)state;
    long long conv = tg_hook("\"text\":\"пришлите прайс\"");
    long long up, iid;
    assert_int_equal(upload(ada, "%D0%BF%D1%80%D0%B0%D0%B9%D1%81.txt", "text/plain",
                            "price list: 100 RUB", &up, NULL, NULL),
                     201);
    int base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":{\"message_id\":4700,\"chat\":{\"id\":523901177}}}");
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", up);
    assert_int_equal(reply(ada, conv, "Прайс во вложении", ids, &iid), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent' AND external_id = '523901177:4700'",
                              iid),
                     1);
    char head[4096], body[8192];
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, body, sizeof body), 0);
    assert_non_null(strstr(head, "POST /bot" TG_TOKEN "/sendDocument HTTP/1.1"));
    assert_non_null(strstr(head, "Content-Type: multipart/form-data; boundary="));
    assert_non_null(strstr(body, "name=\"chat_id\"\r\n\r\n523901177\r\n"));
    assert_non_null(strstr(body, "name=\"caption\"\r\n\r\nПрайс во вложении\r\n"));
    assert_non_null(strstr(body, "name=\"document\"; filename=\"прайс.txt\"\r\n"
                                 "Content-Type: text/plain\r\n\r\nprice list: 100 RUB\r\n"));
    /* The upload became the reply's attachment; it cannot be sent twice. */
    assert_int_equal(q_int("SELECT COUNT(*) FROM uploads WHERE id = %lld", up), 0);
    json_t *a = listed(ada, conv);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "filename")),
                        "прайс.txt");
    json_decref(a);
    assert_int_equal(reply(ada, conv, "again", ids, NULL), 422);

    /* Two files: one sendMediaGroup, documents attached as file0 and file1,
     * the caption on the first; the group's first message id is recorded. */
    long long a1, a2;
    assert_int_equal(upload(ada, "one.txt", "text/plain", "first file", &a1, NULL, NULL), 201);
    assert_int_equal(upload(ada, "two.pdf", "application/pdf", "%PDF-1.4 second", &a2, NULL, NULL),
                     201);
    base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"ok\":true,\"result\":[{\"message_id\":4801,\"chat\":{\"id\":523901177}},"
                 "{\"message_id\":4802,\"chat\":{\"id\":523901177}}]}");
    snprintf(ids, sizeof ids, "%lld,%lld", a1, a2);
    json_t *one = NULL;
    {
        char path[96], rb[256];
        snprintf(path, sizeof path, "/api/v1/conversations/%lld/replies", conv);
        snprintf(rb, sizeof rb, "{\"text\":\"Два файла\",\"attachment_ids\":[%s]}", ids);
        const char *h[] = {ada, "Content-Type: application/json", NULL};
        struct th_resp r;
        assert_int_equal(th_http(&srv, "POST", path, rb, h, &r), 0);
        assert_int_equal(r.status, 202);
        one = json_loads(r.body, 0, NULL);
        th_resp_free(&r);
    }
    assert_int_equal(json_array_size(json_object_get(one, "attachments")), 2);
    iid = json_integer_value(json_object_get(one, "id"));
    json_decref(one);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "external_id = '523901177:4801'",
                              iid),
                     1);
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, body, sizeof body), 0);
    assert_non_null(strstr(head, "POST /bot" TG_TOKEN "/sendMediaGroup HTTP/1.1"));
    assert_non_null(strstr(body, "name=\"media\"\r\n\r\n[{\"type\":\"document\",\"media\":"
                                 "\"attach://file0\",\"caption\":\"Два файла\"},{\"type\":"
                                 "\"document\",\"media\":\"attach://file1\"}]\r\n"));
    assert_non_null(strstr(body, "name=\"file0\"; filename=\"one.txt\"\r\nContent-Type: "
                                 "text/plain\r\n\r\nfirst file\r\n"));
    assert_non_null(strstr(body, "name=\"file1\"; filename=\"two.pdf\"\r\nContent-Type: "
                                 "application/pdf\r\n\r\n%PDF-1.4 second\r\n"));
}

/* A reply with a file goes out by e-mail as multipart/mixed: the text part
 * and the file in base64 with its RFC 2231 name, parsed back whole. */
static void email_reply_is_multipart_mixed(void **state)
{
    (void)state;
    exec_sql("INSERT INTO clients (name) VALUES ('Mail Client')");
    int64_t client = q_int("SELECT MAX(id) FROM clients");
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO client_identities (client_id, kind, value, raw, verified) VALUES "
             "(%lld, 'email', 'client@example.org', 'client@example.org', 1)",
             (long long)client);
    exec_sql(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO conversations (client_id, channel_id, subject) VALUES (%lld, %lld, "
             "'Договор')",
             (long long)client, mail_id);
    exec_sql(sql);
    long long conv = q_int("SELECT MAX(id) FROM conversations");
    /* A long non-ASCII name: RFC 2231 continuations. */
    const char *q = "%D0%94%D0%BE%D0%B3%D0%BE%D0%B2%D0%BE%D1%80%20%D0%BF%D0%BE%D1%81%D1%82%D0%B0%D0"
                    "%B2%D0%BA%D0%B8%20%D0%BA%D1%83%D1%85%D0%BE%D0%BD%D0%BD%D0%BE%D0%B3%D0%BE%20"
                    "%D0%B3%D0%B0%D1%80%D0%BD%D0%B8%D1%82%D1%83%D1%80%D0%B0%20%E2%84%9642.pdf";
    const char *bytes = "%PDF-1.4 contract for the kitchen set, page 1 of 1";
    long long up, iid;
    assert_int_equal(upload(ada, q, "application/pdf", bytes, &up, NULL, NULL), 201);
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", up);
    assert_int_equal(reply(ada, conv, "Договор во вложении.", ids, &iid), 202);
    assert_int_equal(th_smtp_sink_wait(&sink, 1, 15000), 1);
    size_t len = 0;
    char *raw = th_smtp_sink_message(&sink, 0, &len);
    assert_non_null(raw);
    assert_non_null(strstr(raw, "Content-Type: multipart/mixed;"));
    assert_non_null(strstr(raw, "Content-Transfer-Encoding: base64"));
    assert_non_null(strstr(raw, " filename*0*=UTF-8''%D0%94"));
    assert_non_null(strstr(raw, " filename*1*="));
    for (const char *p = raw; *p; p++) /* 7-bit on the wire */
        assert_true((unsigned char)*p < 0x80);
    struct sb_inbound *in = NULL;
    char err[256] = "";
    assert_int_equal(sb_mime_parse((const unsigned char *)raw, len, &in, err, sizeof err), SB_OK);
    assert_non_null(strstr(in->text, "Договор во вложении."));
    assert_int_equal(in->nattachments, 1);
    assert_string_equal(in->attachments[0].filename,
                        "Договор поставки кухонного гарнитура №42.pdf");
    assert_string_equal(in->attachments[0].content_type, "application/pdf");
    assert_int_equal(in->attachments[0].size, strlen(bytes));
    assert_memory_equal(in->attachments[0].data, bytes, strlen(bytes));
    sb_inbound_free(&in);
    free(raw);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "delivery_status = 'sent'",
                              iid),
                     1);
}

/* Another agent's upload id is refused (422) and nothing is stored: no
 * interaction, no job, the upload still Bob's. */
static void another_agents_upload_is_refused(void **state)
{
    (void)state;
    long long conv = tg_hook("\"text\":\"ещё вопрос\"");
    long long up;
    assert_int_equal(upload(bob, "bob.txt", "text/plain", "bob's file", &up, NULL, NULL), 201);
    int64_t ints = q_int("SELECT COUNT(*) FROM interactions");
    int64_t jobs = q_int("SELECT COUNT(*) FROM outbox");
    int base = mock.requests;
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", up);
    assert_int_equal(reply(ada, conv, "forged", ids, NULL), 422);
    assert_int_equal(reply(ada, conv, "forged", "999999", NULL), 422);
    assert_int_equal(reply(ada, conv, "forged", "\"x\"", NULL), 400);
    assert_int_equal(q_int("SELECT COUNT(*) FROM interactions"), ints);
    assert_int_equal(q_int("SELECT COUNT(*) FROM outbox"), jobs);
    assert_int_equal(q_int("SELECT COUNT(*) FROM uploads WHERE id = %lld AND user_id = (SELECT id "
                           "FROM users WHERE email = 'bob@example.com')",
                           up),
                     1);
    usleep(300 * 1000);
    assert_int_equal(mock.requests, base);
}

/* An upload never sent is pruned after a day, its blob with it (the sender
 * prunes at start and every ten minutes). */
static void stale_uploads_are_pruned(void **state)
{
    (void)state;
    long long up;
    assert_int_equal(upload(ada, "old.txt", "text/plain", "forgotten bytes 8c1f", &up, NULL, NULL),
                     201);
    exec_sql("UPDATE uploads SET created_at = NOW(6) - INTERVAL 2 DAY WHERE filename = 'old.txt'");
    assert_int_equal(q_int("SELECT COUNT(*) FROM blobs WHERE data = 'forgotten bytes 8c1f'"), 1);
    assert_int_equal(th_server_stop(&srv), 0);
    th_server_start(&srv, NULL);
    assert_int_equal(wait_int(0, 10000, "SELECT COUNT(*) FROM uploads WHERE id = %lld", up), 0);
    /* The blob goes in the statement after (a moment later). */
    assert_int_equal(
        wait_int(0, 5000, "SELECT COUNT(*) FROM blobs WHERE data = 'forgotten bytes 8c1f'"), 0);
    /* Sent files and fresh uploads stay. */
    assert_true(q_int("SELECT COUNT(*) FROM uploads") > 0);
    assert_true(q_int("SELECT COUNT(*) FROM attachments a JOIN blobs b ON b.sha256 = a.sha256") >
                0);
}

static char *fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/../shared/fixtures/webhooks/%s", th_root(), name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A signed WhatsApp or Viber webhook from a fixture; returns the newest
 * conversation of the channel. */
static long long signed_hook(const char *kind, long long ch, const char *file)
{
    char *body = fixture(file);
    unsigned char mac[32];
    char hex[65], h[160], path[64];
    const char *secret = !strcmp(kind, "whatsapp") ? WA_SECRET : VB_TOKEN;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    if (!strcmp(kind, "whatsapp"))
        snprintf(h, sizeof h, "X-Hub-Signature-256: sha256=%s", hex);
    else
        snprintf(h, sizeof h, "X-Viber-Content-Signature: %s", hex);
    snprintf(path, sizeof path, "/hooks/%s/%lld", kind, ch);
    const char *hs[] = {"Content-Type: application/json", h, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&srv, "POST", path, body, hs, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    free(body);
    return q_int("SELECT id FROM conversations WHERE channel_id = %lld ORDER BY id DESC LIMIT 1",
                 ch);
}

/* The /f/ path of the link in `body` (the mock's copy of our request). */
static void link_path(const char *body, char *out, size_t outlen)
{
    const char *f = strstr(body, "/f/");
    assert_non_null(f);
    snprintf(out, outlen, "%.*s", (int)strcspn(f, "\""), f);
}

/* WhatsApp and Viber download what we send: the reply's job carries a
 * signed, expiring /f/{token} link, which serves the file to anyone holding
 * it (no session); a tampered or expired token is 404. */
static void whatsapp_and_viber_send_a_signed_link(void **state)
{
    (void)state;
    long long conv = signed_hook("whatsapp", wa_id, "whatsapp-text.json");
    const char *pdf = "%PDF-1.4 счёт для WhatsApp";
    long long up, iid;
    assert_int_equal(upload(ada, "invoice.pdf", "application/pdf", pdf, &up, NULL, NULL), 201);
    int base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"messaging_product\":\"whatsapp\",\"messages\":[{\"id\":\"wamid.F1\"}]}");
    char ids[64];
    snprintf(ids, sizeof ids, "%lld", up);
    assert_int_equal(reply(ada, conv, "Счёт во вложении", ids, &iid), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "external_id = 'wamid.F1'",
                              iid),
                     1);
    char head[4096], body[8192], path[512];
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, body, sizeof body), 0);
    assert_non_null(strstr(head, "POST /" WA_PHONE "/messages HTTP/1.1"));
    json_t *o = json_loads(body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "document");
    json_t *doc = json_object_get(o, "document");
    assert_string_equal(json_string_value(json_object_get(doc, "filename")), "invoice.pdf");
    assert_string_equal(json_string_value(json_object_get(doc, "caption")), "Счёт во вложении");
    assert_non_null(strstr(json_string_value(json_object_get(doc, "link")), "/f/"));
    json_decref(o);
    link_path(body, path, sizeof path);
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0); /* no session */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, pdf);
    char v[512];
    assert_int_equal(th_header(&r, "Content-Disposition", v, sizeof v), 0);
    assert_string_equal(v, "attachment; filename=\"invoice.pdf\"; filename*=UTF-8''invoice.pdf");
    th_resp_free(&r);
    path[strlen(path) - 3] = path[strlen(path) - 3] == 'A' ? 'B' : 'A'; /* tampered */
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    /* An expired link, signed with the server's own key. */
    unsigned char master[32], key[32];
    size_t n = 0;
    const char *k64 = getenv("SWITCHBOARD_SECURITY_SECRET_KEY");
    assert_non_null(k64);
    assert_int_equal(sodium_base642bin(master, sizeof master, k64, strlen(k64), NULL, &n, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    sb_camp_key(master, key);
    char tok[SB_CAMP_TOKEN_MAX];
    int64_t att = q_int("SELECT MAX(id) FROM attachments");
    assert_int_equal(
        sb_camp_token_make(key, SB_TOK_FILE, att, (int64_t)time(NULL) - 5, NULL, tok, sizeof tok),
        SB_OK);
    snprintf(path, sizeof path, "/f/%s", tok);
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    assert_int_equal(
        sb_camp_token_make(key, SB_TOK_FILE, att, (int64_t)time(NULL) + 60, NULL, tok, sizeof tok),
        SB_OK);
    snprintf(path, sizeof path, "/f/%s", tok);
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);

    /* Two files: WhatsApp takes one per message. */
    long long up2, up3;
    assert_int_equal(upload(ada, "a.txt", "text/plain", "a", &up2, NULL, NULL), 201);
    assert_int_equal(upload(ada, "b.txt", "text/plain", "b", &up3, NULL, NULL), 201);
    snprintf(ids, sizeof ids, "%lld,%lld", up2, up3);
    assert_int_equal(reply(ada, conv, "two", ids, NULL), 422);

    /* Viber: a PNG as a picture with its caption. */
    conv = signed_hook("viber", vb_id, "viber-message.json");
    const char *png = "\x89PNG\r\n\x1a\n fake png";
    assert_int_equal(upload(ada, "plan.png", "image/png", png, &up, NULL, NULL), 201);
    base = mock.requests;
    th_mock_push(&mock, 200, NULL,
                 "{\"status\":0,\"status_message\":\"ok\",\"message_token\":5741311803571720001}");
    snprintf(ids, sizeof ids, "%lld", up);
    assert_int_equal(reply(ada, conv, "План кухни", ids, &iid), 202);
    assert_int_equal(wait_int(1, 10000,
                              "SELECT COUNT(*) FROM interactions WHERE id = %lld AND "
                              "external_id = '5741311803571720001'",
                              iid),
                     1);
    assert_int_equal(th_mock_request(&mock, base, head, sizeof head, body, sizeof body), 0);
    assert_non_null(strstr(head, "POST /send_message HTTP/1.1"));
    o = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "picture");
    assert_string_equal(json_string_value(json_object_get(o, "text")), "План кухни");
    json_decref(o);
    link_path(body, path, sizeof path);
    assert_int_equal(th_http(&srv, "GET", path, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, png);
    assert_int_equal(th_header(&r, "Content-Disposition", v, sizeof v), 0);
    assert_true(!strncmp(v, "inline; ", 8));
    th_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(inbound_document_is_fetched_and_downloadable),
        cmocka_unit_test(only_real_raster_images_are_inline),
        cmocka_unit_test(uploads_are_capped_sniffed_and_cleaned),
        cmocka_unit_test(telegram_reply_sends_the_file),
        cmocka_unit_test(email_reply_is_multipart_mixed),
        cmocka_unit_test(another_agents_upload_is_refused),
        cmocka_unit_test(whatsapp_and_viber_send_a_signed_link),
        cmocka_unit_test(stale_uploads_are_pruned),
    };
    return cmocka_run_group_tests_name("attachments", t, setup, teardown);
}
