/* Website forms end to end: the shared lead form (urlencoded), JSON and
 * multipart posts to a real server, the honeypot, CORS preflights, the rate
 * limit, quarantine of unreadable posts and the stored rows behind them. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIRECT "https://shop.example/thanks"
#define ORIGIN   "https://shop.example"

static struct th_server srv;
static struct sb_db *db;
/* shop: redirect + CORS for ORIGIN; clinic: own field names, no redirect,
 * 1 KiB files, an "email_confirm" honeypot. */
static char shop[80], clinic[80];
static long long shop_id;

static char *read_file(const char *rel, size_t *len_r)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", th_root(), rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    if (len_r)
        *len_r = n;
    return buf;
}

/* Ours first (tests/fixtures/forms), then the shared original. */
static char *lead_fixture(void)
{
    char *b = read_file("tests/fixtures/forms/form-urlencoded.txt", NULL);
    return b ? b : read_file("../shared/fixtures/webhooks/form-urlencoded.txt", NULL);
}

static int64_t count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t count(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, sql, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    assert_int_equal(rc, SB_OK);
    int64_t v = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    return v;
}

static int create_channel(const char *const *args, char *key, size_t keylen, long long *id_r)
{
    char out[4096];
    if (th_run(args, NULL, out, sizeof out) != 0) {
        fprintf(stderr, "channel add: %s\n", out);
        return -1;
    }
    json_t *o = json_loads(out, 0, NULL);
    const char *pk = json_string_value(json_object_get(o, "public_key"));
    int ok = pk && strlen(pk) <= 64 && keylen >= 72;
    if (ok)
        snprintf(key, keylen, "/forms/%.64s", pk);
    if (id_r)
        *id_r = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return ok ? 0 : -1;
}

/* --- a raw HTTP client: bodies with NUL bytes, exact headers ------------- */

struct buf {
    char *p;
    size_t n;
};

static size_t on_body(char *d, size_t s, size_t n, void *arg)
{
    struct buf *b = arg;
    char *np = realloc(b->p, b->n + s * n + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, d, s * n);
    b->p = np;
    b->n += s * n;
    b->p[b->n] = '\0';
    return s * n;
}

static size_t on_header(char *d, size_t s, size_t n, void *arg)
{
    struct th_resp *r = arg;
    size_t have = strlen(r->headers);
    if (have + s * n < sizeof r->headers) {
        memcpy(r->headers + have, d, s * n);
        r->headers[have + s * n] = '\0';
    }
    return s * n;
}

static long post_raw(const struct th_server *s, const char *path, const void *body, size_t len,
                     const char *const *headers, struct th_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    struct buf b = {calloc(1, 1), 0};
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r->body = b.p;
    assert_int_equal(cc, CURLE_OK);
    return r->status;
}

static long post(const char *path, const char *body, const char *const *headers, struct th_resp *r)
{
    assert_int_equal(th_http(&srv, "POST", path, body, headers, r), 0);
    return r->status;
}

/* The interaction id of a JSON answer {"ok":true,"id":N}; 0 when absent. */
static long long answer_id(const struct th_resp *r)
{
    json_t *o = json_loads(r->body, 0, NULL);
    long long id = json_is_true(json_object_get(o, "ok"))
                       ? (long long)json_integer_value(json_object_get(o, "id"))
                       : 0;
    json_decref(o);
    return id;
}

static const char *const urlencoded[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
static const char *const json_hdr[] = {"Content-Type: application/json", NULL};

/* --- suite --------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    const char *a1[] = {"channel",
                        "add",
                        "webform",
                        "--name",
                        "Kitchen leads",
                        "--set",
                        "redirect_url=" REDIRECT,
                        "--set",
                        "allowed_origins=https://Shop.Example/, https://www.shop.example",
                        NULL};
    const char *a2[] = {"channel",
                        "add",
                        "webform",
                        "--name",
                        "Clinic",
                        "--set",
                        "fields=name=fio,phone=tel,email=mail,message=comment",
                        "--set",
                        "honeypot_field=email_confirm",
                        "--set",
                        "max_file_size=1K",
                        NULL};
    if (create_channel(a1, shop, sizeof shop, &shop_id) ||
        create_channel(a2, clinic, sizeof clinic, NULL))
        return -1;
    struct sb_db_params p;
    char err[256] = "";
    sb_db_params_parse(th_db_url(), &p, err, sizeof err);
    sb_db_open(&p, 0, &db, err, sizeof err);
    sb_db_params_free(&p);
    /* The suite posts from one address more often than a visitor would. */
    static const char *const env[] = {"SWITCHBOARD_FORMS_RATE_LIMIT=1000", NULL};
    th_server_start(&srv, env);
    return db ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    int status = th_server_stop(&srv);
    sb_db_close(&db);
    th_db_teardown();
    return status == 0 ? 0 : -1;
}

static void config_is_checked_and_completed(void **state)
{
    (void)state;
    char out[4096];
    const char *bad[][8] = {
        {"channel", "add", "webform", "--name", "x", "--set", "redirect_url=javascript:alert(1)"},
        {"channel", "add", "webform", "--name", "x", "--set", "redirect_url=/thanks"},
        {"channel", "add", "webform", "--name", "x", "--set",
         "redirect_url=https://shop.example/a b"},
        {"channel", "add", "webform", "--name", "x", "--set",
         "allowed_origins=https://shop.example/form"},
        {"channel", "add", "webform", "--name", "x", "--set", "allowed_origins=shop.example"},
        {"channel", "add", "webform", "--name", "x", "--set", "fields=phone"},
        {"channel", "add", "webform", "--name", "x", "--set", "fields=city=town"},
        {"channel", "add", "webform", "--name", "x", "--set", "redirect=https://a.example"},
        {"channel", "add", "webform", "--name", "x", "--set", "max_file_size=11M"},
        {"channel", "add", "webform", "--name", "x", "--set", "default_region=Russia"},
        {"channel", "add", "webform", "--name", "x", "--set", "honeypot_field=phone"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[9];
        memcpy(args, bad[i], sizeof bad[i]);
        args[7] = args[8] = NULL;
        if (th_run(args, NULL, out, sizeof out) == 0)
            fail_msg("accepted a bad setting: %s", bad[i][6]);
    }
    assert_int_equal(count("SELECT COUNT(*) FROM channels WHERE kind = 'webform'"), 2);
    /* Defaults filled, origins normalised, the mapping completed. */
    assert_int_equal(count("SELECT COUNT(*) FROM channels WHERE name = 'Kitchen leads' AND "
                           "JSON_VALUE(config, '$.honeypot_field') = 'website' AND "
                           "JSON_VALUE(config, '$.allowed_origins') = "
                           "'https://shop.example,https://www.shop.example' AND "
                           "JSON_VALUE(config, '$.fields') = "
                           "'name=name,phone=phone,email=email,message=message'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM channels WHERE name = 'Clinic' AND "
                           "JSON_VALUE(config, '$.max_file_size') = '1024'"),
                     1);
}

static void fixture_post_redirects_and_stores_the_lead(void **state)
{
    (void)state;
    char *body = lead_fixture();
    assert_non_null(body);
    struct th_resp r;
    assert_int_equal(post(shop, body, urlencoded, &r), 303);
    char loc[256];
    assert_int_equal(th_header(&r, "Location", loc, sizeof loc), 0);
    assert_string_equal(loc, REDIRECT);
    th_resp_free(&r);
    free(body);

    assert_int_equal(count("SELECT COUNT(*) FROM clients WHERE name = 'Иван Петров'"), 1);
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities i JOIN clients c ON "
                           "c.id = i.client_id WHERE c.name = 'Иван Петров' AND i.kind = 'phone' "
                           "AND i.value = '+79991234567' AND i.verified = 1"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities i JOIN clients c ON "
                           "c.id = i.client_id WHERE c.name = 'Иван Петров' AND i.kind = 'email' "
                           "AND i.value = 'ivan.petrov@example.ru'"),
                     1);
    assert_int_equal(
        count("SELECT COUNT(*) FROM interactions WHERE channel_id = %lld AND kind = 'form' AND "
              "direction = 'in' AND text = 'Прошу перезвонить' AND "
              "JSON_VALUE(meta, '$.lead_source.utm_source') = 'yandex' AND "
              "JSON_VALUE(meta, '$.lead_source.utm_campaign') = 'kitchens' AND "
              "JSON_VALUE(meta, '$.contact.phone') = '8 (999) 123-45-67' AND "
              "JSON_EXISTS(meta, '$.form.website') = 0 AND external_id LIKE 'post:%%' AND "
              "raw_sha256 IS NOT NULL AND sender = 'Иван Петров <Ivan.Petrov@Example.RU>'",
              shop_id),
        1);
    assert_int_equal(count("SELECT COUNT(*) FROM conversations"), 1);
}

static void json_post_of_the_same_person_is_a_new_interaction(void **state)
{
    (void)state;
    int64_t before = count("SELECT COUNT(*) FROM interactions");
    struct th_resp r;
    const char *h[] = {"Content-Type: application/json", "Origin: https://shop.example", NULL};
    assert_int_equal(post(shop,
                          "{\"name\": \"Иван Петров\", \"phone\": \"+7 999 123-45-67\", "
                          "\"message\": \"И ещё про шкаф\", \"rooms\": 3, "
                          "\"services\": [\"замер\", \"сборка\"], \"consent\": true}",
                          h, &r),
                     200);
    long long id = answer_id(&r);
    assert_true(id > 0);
    char acao[128];
    assert_int_equal(th_header(&r, "Access-Control-Allow-Origin", acao, sizeof acao), 0);
    assert_string_equal(acao, ORIGIN);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), before + 1);
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), 1);
    /* Same client as the urlencoded lead; other fields kept in meta.form. */
    assert_int_equal(count("SELECT COUNT(*) FROM interactions i JOIN clients c ON c.id = "
                           "i.client_id WHERE i.id = %lld AND c.name = 'Иван Петров' AND "
                           "JSON_VALUE(i.meta, '$.form.rooms') = '3' AND "
                           "JSON_VALUE(i.meta, '$.form.services[1]') = 'сборка' AND "
                           "JSON_VALUE(i.meta, '$.form.consent') = 'true'",
                           id),
                     1);
}

static void origins_outside_the_list_get_no_cors_but_are_stored(void **state)
{
    (void)state;
    int64_t before = count("SELECT COUNT(*) FROM interactions");
    struct th_resp r;
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded",
                       "Origin: https://evil.example", "Accept: application/json", NULL};
    assert_int_equal(post(shop, "name=Ann&phone=%2B79160001122", h, &r), 200);
    char v[128];
    assert_int_not_equal(th_header(&r, "Access-Control-Allow-Origin", v, sizeof v), 0);
    assert_true(answer_id(&r) > 0);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), before + 1);
    /* A fetch() without an Accept header is told apart by Sec-Fetch-Mode. */
    const char *f[] = {"Content-Type: application/x-www-form-urlencoded",
                       "Origin: https://www.shop.example", "Sec-Fetch-Mode: cors", NULL};
    assert_int_equal(post(shop, "name=Ann&phone=%2B79160001122", f, &r), 200);
    assert_true(answer_id(&r) > 0);
    assert_int_equal(th_header(&r, "Access-Control-Allow-Origin", v, sizeof v), 0);
    assert_string_equal(v, "https://www.shop.example");
    th_resp_free(&r);
}

static void idempotency_key_stores_one_interaction(void **state)
{
    (void)state;
    const char *h[] = {"Content-Type: application/json", "Idempotency-Key: 7f1c-retry-1", NULL};
    const char *b = "{\"name\": \"Олег\", \"email\": \"oleg@example.org\", \"message\": \"hi\"}";
    struct th_resp r;
    assert_int_equal(post(shop, b, h, &r), 200);
    long long first = answer_id(&r);
    th_resp_free(&r);
    int64_t n = count("SELECT COUNT(*) FROM interactions");
    assert_int_equal(post(shop, b, h, &r), 200);
    assert_int_equal(answer_id(&r), first);
    assert_non_null(strstr(r.body, "\"duplicate\":true"));
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), n);
    /* The same key with other content is another lead (a site that sends
     * one constant key must not lose leads). */
    assert_int_equal(post(shop, "{\"name\": \"Олег\", \"email\": \"oleg@example.org\"}", h, &r),
                     200);
    assert_true(answer_id(&r) > first);
    th_resp_free(&r);
    /* submission_id in the form does the same as the header. */
    const char *u = "name=Zoe&email=zoe%40example.org&submission_id=s-42";
    assert_int_equal(post(shop, u, urlencoded, &r), 303);
    th_resp_free(&r);
    assert_int_equal(post(shop, u, urlencoded, &r), 303);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE sender LIKE 'Zoe%%' AND "
                           "external_id LIKE 'idem:%%' AND "
                           "JSON_VALUE(meta, '$.submission_id') = 's-42'"),
                     1);
}

static size_t add(char *dst, size_t o, const void *src, size_t n)
{
    memcpy(dst + o, src, n);
    return o + n;
}

#define ADDS(s) (o = add(body, o, (s), strlen(s)))

static void multipart_file_becomes_an_attachment(void **state)
{
    (void)state;
    size_t plen;
    char *png = read_file("tests/fixtures/forms/plan.png", &plen);
    assert_non_null(png);
    assert_int_equal(plen, 73);
    unsigned char h[32];
    char hex[65];
    crypto_hash_sha256(h, (const unsigned char *)png, plen);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);

    char body[8192];
    size_t o = 0;
    ADDS("--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nМария\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+7 916 555-44-33\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n"
         "Кухня 3 м,\r\nплан во вложении\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"the %22best%22 time\"\r\n\r\nвечер\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"plan\"; filename=\"C:\\\\Users\\\\m\\\\"
         "план.png\"\r\nContent-Type: image/PNG\r\n\r\n");
    o = add(body, o, png, plen);
    free(png);
    /* A second file input left empty, as browsers send it. */
    ADDS("\r\n--XyZ\r\nContent-Disposition: form-data; name=\"extra\"; filename=\"\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"website\"\r\n\r\n\r\n--XyZ--\r\n");
    struct th_resp r;
    const char *hd[] = {"Content-Type: multipart/form-data; boundary=\"XyZ\"", NULL};
    assert_int_equal(post_raw(&srv, shop, body, o, hd, &r), 303);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM attachments a JOIN blobs b ON b.sha256 = a.sha256 "
                           "JOIN interactions i ON i.id = a.interaction_id WHERE "
                           "a.sha256 = UNHEX('%s') AND HEX(a.sha256) = '%s' AND b.size = 73 AND "
                           "a.filename = 'план.png' AND a.content_type = 'image/png' AND "
                           "i.text = 'Кухня 3 м,\nплан во вложении' AND "
                           "JSON_VALUE(JSON_KEYS(i.meta, '$.form'), '$[0]') = "
                           "CONCAT('the ', CHAR(34), 'best', CHAR(34), ' time') AND "
                           "JSON_LENGTH(i.meta, '$.form') = 1 AND "
                           "i.raw_sha256 IS NULL",
                           hex, hex),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM attachments"), 1); /* the empty input: none */
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities WHERE value = '+79165554433'"),
                     1);

    /* Over the clinic's max_file_size (1 KiB): the lead is kept, the file is
     * listed in meta.dropped_files, and the clinic's own field names map. */
    char big[2048];
    memset(big, 'x', sizeof big);
    o = 0;
    ADDS("--b\r\nContent-Disposition: form-data; name=\"fio\"\r\n\r\nПётр\r\n"
         "--b\r\nContent-Disposition: form-data; name=\"tel\"\r\n\r\n89035550000\r\n"
         "--b\r\nContent-Disposition: form-data; name=\"scan\"; filename=\"scan.pdf\"\r\n"
         "Content-Type: application/pdf\r\n\r\n");
    o = add(body, o, big, sizeof big);
    ADDS("\r\n--b--\r\n");
    const char *hc[] = {"Content-Type: multipart/form-data; boundary=b", "Accept: application/json",
                        NULL};
    assert_int_equal(post_raw(&srv, clinic, body, o, hc, &r), 200);
    long long id = answer_id(&r);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions i JOIN clients c ON c.id = "
                           "i.client_id WHERE i.id = %lld AND c.name = 'Пётр' AND "
                           "JSON_VALUE(i.meta, '$.dropped_files[0].filename') = 'scan.pdf' AND "
                           "JSON_VALUE(i.meta, '$.dropped_files[0].reason') = "
                           "'over max_file_size' AND "
                           "(SELECT COUNT(*) FROM attachments a WHERE a.interaction_id = i.id) = 0",
                           id),
                     1);
}

static int64_t honeypot_metric(void)
{
    struct th_resp r;
    assert_int_equal(th_http(&srv, "GET", "/metrics", NULL, NULL, &r), 0);
    const char *m = strstr(r.body, "\nswitchboard_forms_honeypot_total ");
    int64_t v = m ? strtoll(m + 34, NULL, 10) : -1;
    th_resp_free(&r);
    return v;
}

static void honeypot_is_answered_and_dropped(void **state)
{
    (void)state;
    int64_t inter = count("SELECT COUNT(*) FROM interactions");
    int64_t raw = count("SELECT COUNT(*) FROM raw_inbound");
    int64_t clients = count("SELECT COUNT(*) FROM clients");
    int64_t hits = honeypot_metric();
    assert_true(hits >= 0);
    struct th_resp r;
    assert_int_equal(post(shop, "name=Bot&phone=%2B15550001111&website=http%3A%2F%2Fspam.example",
                          urlencoded, &r),
                     303);
    char loc[256];
    assert_int_equal(th_header(&r, "Location", loc, sizeof loc), 0);
    assert_string_equal(loc, REDIRECT);
    th_resp_free(&r);
    assert_int_equal(post(shop, "{\"name\":\"Bot\",\"website\":\"x\"}", json_hdr, &r), 200);
    assert_non_null(strstr(r.body, "\"ok\":true"));
    th_resp_free(&r);
    assert_int_equal(post(clinic, "fio=Bot&tel=1&email_confirm=bot%40example.com", urlencoded, &r),
                     200);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), inter);
    assert_int_equal(count("SELECT COUNT(*) FROM raw_inbound"), raw);
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), clients);
    assert_int_equal(honeypot_metric(), hits + 3);
}

static void thank_you_page_without_redirect(void **state)
{
    (void)state;
    struct th_resp r;
    assert_int_equal(post(clinic, "fio=Анна&comment=Запись+на+вторник", urlencoded, &r), 200);
    char ct[128], csp[256];
    assert_int_equal(th_header(&r, "Content-Type", ct, sizeof ct), 0);
    assert_string_equal(ct, "text/html; charset=utf-8");
    assert_int_equal(th_header(&r, "Content-Security-Policy", csp, sizeof csp), 0);
    assert_non_null(strstr(csp, "default-src 'none'"));
    assert_non_null(strstr(r.body, "Спасибо"));
    assert_null(strstr(r.body, "<script"));
    assert_null(strstr(r.body, "style"));
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions WHERE text = 'Запись на вторник'"),
                     1);
}

static void preflight(void **state)
{
    (void)state;
    struct th_resp r;
    const char *ok[] = {"Origin: https://shop.example", "Access-Control-Request-Method: POST",
                        "Access-Control-Request-Headers: content-type", NULL};
    assert_int_equal(th_http(&srv, "OPTIONS", shop, NULL, ok, &r), 0);
    assert_int_equal(r.status, 204);
    char v[256];
    assert_int_equal(th_header(&r, "Access-Control-Allow-Origin", v, sizeof v), 0);
    assert_string_equal(v, ORIGIN);
    assert_int_equal(th_header(&r, "Access-Control-Allow-Methods", v, sizeof v), 0);
    assert_non_null(strstr(v, "POST"));
    assert_int_equal(th_header(&r, "Access-Control-Allow-Headers", v, sizeof v), 0);
    assert_non_null(strstr(v, "Content-Type"));
    assert_int_equal(th_header(&r, "Access-Control-Max-Age", v, sizeof v), 0);
    assert_true(atoi(v) > 0);
    assert_int_equal(th_header(&r, "Vary", v, sizeof v), 0);
    assert_string_equal(v, "Origin");
    th_resp_free(&r);

    const char *other[] = {"Origin: https://evil.example", "Access-Control-Request-Method: POST",
                           NULL};
    assert_int_equal(th_http(&srv, "OPTIONS", shop, NULL, other, &r), 0);
    assert_int_equal(r.status, 403);
    assert_int_not_equal(th_header(&r, "Access-Control-Allow-Origin", v, sizeof v), 0);
    th_resp_free(&r);
    /* The clinic lists no origins at all. */
    assert_int_equal(th_http(&srv, "OPTIONS", clinic, NULL, ok, &r), 0);
    assert_int_equal(r.status, 403);
    assert_int_not_equal(th_header(&r, "Access-Control-Allow-Origin", v, sizeof v), 0);
    th_resp_free(&r);
}

static void unreadable_posts_are_quarantined(void **state)
{
    (void)state;
    int64_t inter = count("SELECT COUNT(*) FROM interactions");
    struct th_resp r;
    /* windows-1251 "Иван": a browser on a page without accept-charset. */
    assert_int_equal(post(shop, "name=%C8%E2%E0%ED&phone=89991234567", urlencoded, &r), 303);
    th_resp_free(&r);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded",
                       "Accept: application/json", NULL};
    assert_int_equal(post(shop, "name=%FF", h, &r), 400);
    assert_non_null(strstr(r.body, "\"quarantined\":true"));
    assert_non_null(strstr(r.body, "UTF-8"));
    th_resp_free(&r);
    assert_int_equal(post(shop, "{\"name\": {\"first\": \"A\"}}", json_hdr, &r), 400);
    th_resp_free(&r);
    assert_int_equal(post(shop, "[1, 2", json_hdr, &r), 400);
    th_resp_free(&r);
    const char *mp[] = {"Content-Type: multipart/form-data; boundary=zz", NULL};
    assert_int_equal(
        post(shop, "--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb", mp, &r), 303);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM raw_inbound WHERE source = 'form' AND "
                           "channel_id = %lld",
                           shop_id),
                     5);
    assert_int_equal(count("SELECT COUNT(*) FROM raw_inbound WHERE source = 'form' AND "
                           "body = 'name=%%C8%%E2%%E0%%ED&phone=89991234567'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), inter);
}

static void other_failures(void **state)
{
    (void)state;
    struct th_resp r;
    const char *csv[] = {"Content-Type: text/csv", NULL};
    assert_int_equal(post(shop, "name,phone\nA,1\n", csv, &r), 415);
    th_resp_free(&r);
    assert_int_equal(post("/forms/0123456789abcdef0123456789abcdef", "name=A", urlencoded, &r),
                     404);
    assert_non_null(strstr(r.body, "\"error\""));
    th_resp_free(&r);
    assert_int_equal(post("/forms/not-a-key", "name=A", urlencoded, &r), 404);
    th_resp_free(&r);
    const char *o[] = {"Origin: https://shop.example", NULL};
    assert_int_equal(th_http(&srv, "OPTIONS", "/forms/0123456789abcdef", NULL, o, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    assert_int_equal(th_http(&srv, "GET", shop, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    th_resp_free(&r);
    assert_int_equal(post(shop, "", urlencoded, &r), 303); /* empty: quarantined */
    th_resp_free(&r);
    /* Forms do not come in through the generic webhook route. */
    char hook[64];
    snprintf(hook, sizeof hook, "/hooks/webform/%lld", shop_id);
    int64_t inter = count("SELECT COUNT(*) FROM interactions");
    assert_int_equal(post(hook, "name=A&phone=89990000000", urlencoded, &r) / 100, 4);
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), inter);
}

static void rate_limit_per_address(void **state)
{
    (void)state;
    struct th_server low;
    static const char *const env[] = {"SWITCHBOARD_FORMS_RATE_LIMIT=3", NULL};
    th_server_start(&low, env);
    int64_t inter = count("SELECT COUNT(*) FROM interactions");
    const char *h[] = {"Content-Type: application/json", "Origin: https://shop.example", NULL};
    struct th_resp r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            th_http(&low, "POST", shop, "{\"name\":\"Rita\",\"phone\":\"+79160000001\"}", h, &r),
            0);
        assert_int_equal(r.status, 200);
        th_resp_free(&r);
    }
    assert_int_equal(
        th_http(&low, "POST", shop, "{\"name\":\"Rita\",\"phone\":\"+79160000001\"}", h, &r), 0);
    assert_int_equal(r.status, 429);
    char v[64];
    assert_int_equal(th_header(&r, "Retry-After", v, sizeof v), 0);
    assert_true(atoi(v) >= 1 && atoi(v) <= 60);
    /* A script can read the refusal. */
    assert_int_equal(th_header(&r, "Access-Control-Allow-Origin", v, sizeof v), 0);
    assert_non_null(strstr(r.body, "\"error\""));
    th_resp_free(&r);
    assert_int_equal(count("SELECT COUNT(*) FROM interactions"), inter + 3);
    /* Preflights are not counted. */
    const char *o[] = {"Origin: https://shop.example", NULL};
    assert_int_equal(th_http(&low, "OPTIONS", shop, NULL, o, &r), 0);
    assert_int_equal(r.status, 204);
    th_resp_free(&r);
    assert_int_equal(th_server_stop(&low), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_is_checked_and_completed),
        cmocka_unit_test(fixture_post_redirects_and_stores_the_lead),
        cmocka_unit_test(json_post_of_the_same_person_is_a_new_interaction),
        cmocka_unit_test(origins_outside_the_list_get_no_cors_but_are_stored),
        cmocka_unit_test(idempotency_key_stores_one_interaction),
        cmocka_unit_test(multipart_file_becomes_an_attachment),
        cmocka_unit_test(honeypot_is_answered_and_dropped),
        cmocka_unit_test(thank_you_page_without_redirect),
        cmocka_unit_test(preflight),
        cmocka_unit_test(unreadable_posts_are_quarantined),
        cmocka_unit_test(other_failures),
        cmocka_unit_test(rate_limit_per_address),
    };
    return cmocka_run_group_tests_name("forms", tests, setup, teardown);
}
