/* `switchboard import clients` and `switchboard export` through the real
 * binary against MariaDB: a Russian Excel-style CSV (UTF-8 BOM, semicolons,
 * quoted newline, tags, an extra column, a bad phone, an empty row), the
 * same list again (nothing new), a windows-1251 file, vCard 3.0 and 2.1
 * contacts that meet the CSV's clients, a dry run, usage errors, and an
 * export whose files agree with the database. The tests run in order and
 * build on each other's rows, as an operator's imports would. */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <iconv.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct sb_db *db;
static char tmpdir[256];

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    db = th_db_connect();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb-test-import-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sb_db_close(&db);
    th_db_teardown();
    rm_tree(tmpdir);
    return 0;
}

static const char *fixture(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/tests/fixtures/import/%s", th_root(), name);
    return buf;
}

static const char *tmp_path(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Run `switchboard ARGS...` (NULL-terminated); stdout and stderr in `out`. */
static int run(char *out, size_t outlen, ...)
{
    const char *args[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, outlen);
    while (n < 15 && (args[n] = va_arg(ap, const char *)))
        n++;
    va_end(ap);
    args[n] = NULL;
    int rc = th_run(args, NULL, out, outlen);
    if (getenv("SB_TEST_VERBOSE"))
        fprintf(stderr, "exit %d:\n%s\n", rc, out);
    return rc;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, haystack);
}

/* The first column of the first row as an integer (-1: no row). The text
 * argument binds the first '?', the integer the next. */
static int64_t query_int(const char *sql, const char *text_arg, int64_t int_arg)
{
    struct sb_db_val a[2];
    size_t n = 0, params = 0;
    for (const char *p = sql; *p; p++)
        params += *p == '?';
    if (text_arg && n < params)
        a[n++] = SB_TEXT(text_arg);
    if (n < params)
        a[n++] = SB_INT(int_arg);
    struct sb_db_rows r;
    char err[512] = "";
    int rc = sb_db_exec(db, sql, a, n, &r, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("%s: %s", sql, err);
    int64_t v = r.nrows && sb_db_cell(&r, 0, 0) ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

/* The first column of the first row as text, "(null)" or "(none)". */
static const char *query_text(const char *sql, int64_t id, char *buf, size_t len)
{
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    char err[512] = "";
    int rc = sb_db_exec(db, sql, a, 1, &r, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("%s: %s", sql, err);
    snprintf(buf, len, "%s",
             !r.nrows               ? "(none)"
             : sb_db_cell(&r, 0, 0) ? sb_db_cell(&r, 0, 0)
                                    : "(null)");
    sb_db_rows_free(&r);
    return buf;
}

/* The client holding a verified identity, -1 when none does. */
static int64_t client_by(const char *kind, const char *value)
{
    static const char q[] = "SELECT client_id FROM client_identities WHERE kind = ? AND value = ? "
                            "AND verified = 1";
    struct sb_db_val a[] = {SB_TEXT(kind), SB_TEXT(value)};
    struct sb_db_rows r;
    char err[512] = "";
    assert_int_equal(sb_db_exec(db, q, a, 2, &r, err, sizeof err), SB_OK);
    int64_t v = r.nrows ? sb_db_cell_int(&r, 0, 0) : -1;
    sb_db_rows_free(&r);
    return v;
}

static int64_t count(const char *table_sql)
{
    return query_int(table_sql, NULL, 0);
}

static const char q_name[] = "SELECT name FROM clients WHERE id = ?";
static const char q_company[] = "SELECT company FROM clients WHERE id = ?";
static const char q_tags[] = "SELECT GROUP_CONCAT(tag ORDER BY tag SEPARATOR ',') FROM client_tags "
                             "WHERE client_id = ?";

static void csv_with_bom_semicolons_and_russian_headers(void **state)
{
    (void)state;
    char out[16384], path[512], buf[512];
    int rc = run(out, sizeof out, "import", "clients",
                 fixture("clients_bom_semicolon.csv", path, sizeof path), NULL);
    assert_int_equal(rc, 0);
    assert_contains(out, "created 4, matched 0, invalid 1 (lines: 6)");
    /* The empty row is reported with its line; the bad phone is a warning
     * on the line where its row starts (after a quoted newline in row 2). */
    assert_contains(out, "line 6: skipped");
    assert_contains(out, "line 5: warning: '12345' is not a valid phone number");

    int64_t anna = client_by("email", "anna.smirnova@example.com");
    assert_true(anna > 0);
    assert_int_equal(client_by("phone", "+79160001122"), anna);
    assert_string_equal(query_text(q_name, anna, buf, sizeof buf), "Анна Смирнова");
    assert_string_equal(query_text(q_company, anna, buf, sizeof buf), "ООО \"Кухни, мебель\"");
    assert_string_equal(query_text(q_tags, anna, buf, sizeof buf), "kitchen,vip");
    /* The column no role claims is a custom field, newline and all. */
    assert_string_equal(
        query_text("SELECT JSON_UNQUOTE(JSON_EXTRACT(custom_fields, '$.\"Комментарий\"')) "
                   "FROM clients WHERE id = ?",
                   anna, buf, sizeof buf),
        "Звонить после 18:00,\nне раньше");

    /* Two addresses in one cell: one client. */
    int64_t petr = client_by("email", "petr@example.org");
    assert_true(petr > 0);
    assert_int_equal(client_by("email", "p.ivanov@example.org"), petr);
    assert_int_equal(client_by("phone", "+74951234567"), petr);

    /* The invalid phone is kept raw and unverified, with its name. */
    int64_t ivan = query_int("SELECT id FROM clients WHERE name = ?", "Иван Петров", 0);
    assert_true(ivan > 0);
    assert_int_equal(
        query_int("SELECT COUNT(*) FROM client_identities WHERE client_id = ? AND "
                  "kind = 'phone' AND value IS NULL AND verified = 0 AND raw = '12345'",
                  NULL, ivan),
        1);

    int64_t maria = client_by("email", "maria@example.ru"); /* lower-cased */
    assert_true(maria > 0);
    assert_int_equal(query_int("SELECT COUNT(*) FROM client_tags WHERE client_id = ? AND tag = "
                               "'vip'",
                               NULL, maria),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), 4);
    assert_int_equal(count("SELECT COUNT(*) FROM events WHERE type = 'client.created'"), 4);
}

static void importing_again_creates_nothing(void **state)
{
    (void)state;
    char out[16384], path[512];
    int64_t clients = count("SELECT COUNT(*) FROM clients");
    int64_t ids = count("SELECT COUNT(*) FROM client_identities");
    int64_t tags = count("SELECT COUNT(*) FROM client_tags");
    int64_t events = count("SELECT COUNT(*) FROM events");
    int rc = run(out, sizeof out, "import", "clients",
                 fixture("clients_bom_semicolon.csv", path, sizeof path), NULL);
    assert_int_equal(rc, 0);
    assert_contains(out, "created 0, matched 4, invalid 1 (lines: 6)");
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), clients);
    assert_int_equal(count("SELECT COUNT(*) FROM client_identities"), ids);
    assert_int_equal(count("SELECT COUNT(*) FROM client_tags"), tags);
    /* Nothing changed, so nothing is announced either. */
    assert_int_equal(count("SELECT COUNT(*) FROM events"), events);
}

static void windows1251_csv_is_detected_and_converted(void **state)
{
    (void)state;
    static const char utf8[] = "Имя,Фамилия,Телефон,Email\r\n"
                               "Ольга,Соколова,+7 903 111-22-33,olga@example.com\r\n"
                               "Анна,Смирнова,+7 916 000 11 22,\r\n";
    char cp[512], path[512], out[16384], buf[256];
    iconv_t cd = iconv_open("CP1251", "UTF-8");
    assert_true(cd != (iconv_t)-1);
    char *ip = (char *)utf8, *op = cp;
    size_t il = sizeof utf8 - 1, ol = sizeof cp;
    assert_int_not_equal(iconv(cd, &ip, &il, &op, &ol), (size_t)-1);
    iconv_close(cd);
    write_file(tmp_path("excel-1251.csv", path, sizeof path), cp, (size_t)(op - cp));

    int64_t anna = client_by("phone", "+79160001122");
    int rc = run(out, sizeof out, "import", "clients", path, NULL);
    assert_int_equal(rc, 0);
    assert_contains(out, "windows-1251");
    assert_contains(out, "created 1, matched 1, invalid 0");
    int64_t olga = client_by("phone", "+79031112233");
    assert_true(olga > 0);
    assert_int_equal(client_by("email", "olga@example.com"), olga);
    assert_string_equal(query_text(q_name, olga, buf, sizeof buf), "Ольга Соколова");
    assert_int_equal(client_by("phone", "+79160001122"), anna);
    assert_int_equal(query_int("SELECT COUNT(*) FROM clients WHERE name = ?", "Анна Смирнова", 0),
                     1);
}

static void vcard_contact_matches_the_csv_client(void **state)
{
    (void)state;
    char out[16384], path[512], buf[512];
    int64_t petr = client_by("email", "petr@example.org");
    int rc = run(out, sizeof out, "import", "clients",
                 fixture("contacts_v3.vcf", path, sizeof path), NULL);
    assert_int_equal(rc, 0);
    assert_contains(out, "created 1, matched 1, invalid 0");
    /* Matched by the upper-case e-mail; the new phone, the company (he had
     * none), the categories and the note are added to him. */
    assert_int_equal(client_by("phone", "+74957654321"), petr);
    assert_string_equal(query_text(q_company, petr, buf, sizeof buf), "ИП Иванов");
    assert_string_equal(query_text(q_tags, petr, buf, sizeof buf), "kitchen,vip,wholesale");
    assert_string_equal(
        query_text("SELECT JSON_UNQUOTE(JSON_EXTRACT(custom_fields, '$.note')) FROM clients "
                   "WHERE id = ?",
                   petr, buf, sizeof buf),
        "Постоянный клиент, любит скидки");
    assert_int_equal(query_int("SELECT COUNT(*) FROM events WHERE type = 'client.updated' AND "
                               "client_id = ?",
                               NULL, petr),
                     1);
    /* The second card: a folded FN, a national number. */
    int64_t sveta = client_by("email", "sveta@example.net");
    assert_true(sveta > 0 && sveta != petr);
    assert_string_equal(query_text(q_name, sveta, buf, sizeof buf), "Светлана Орлова");
    assert_int_equal(client_by("phone", "+78125551234"), sveta);
}

static void vcard_21_quoted_printable(void **state)
{
    (void)state;
    char out[16384], path[512], buf[512];
    int rc = run(out, sizeof out, "import", "clients",
                 fixture("contact_v21_qp.vcf", path, sizeof path), NULL);
    assert_int_equal(rc, 0);
    assert_contains(out, "created 1, matched 0, invalid 0");
    int64_t gleb = client_by("phone", "+79261234567");
    assert_true(gleb > 0);
    assert_string_equal(query_text(q_name, gleb, buf, sizeof buf), "Глеб Григорьев");
    assert_string_equal(
        query_text("SELECT JSON_UNQUOTE(JSON_EXTRACT(custom_fields, '$.note')) FROM clients "
                   "WHERE id = ?",
                   gleb, buf, sizeof buf),
        "Перезвонить во вторник");
}

static void dry_run_writes_nothing(void **state)
{
    (void)state;
    static const char csv[] = "name,email,phone\n"
                              "Новый Человек,new@person.org,\n"
                              "Анна Смирнова,,+79160001122\n"
                              "Новый Человек,NEW@person.org,\n";
    char path[512], out[16384];
    write_file(tmp_path("dry.csv", path, sizeof path), csv, sizeof csv - 1);
    int64_t clients = count("SELECT COUNT(*) FROM clients");
    int64_t events = count("SELECT COUNT(*) FROM events");
    int rc = run(out, sizeof out, "import", "clients", path, "--dry-run", NULL);
    assert_int_equal(rc, 0);
    /* The third row is the first one again: it would find that client. */
    assert_contains(out, "dry run, nothing written: created 1, matched 2, invalid 0");
    assert_int_equal(count("SELECT COUNT(*) FROM clients"), clients);
    assert_int_equal(count("SELECT COUNT(*) FROM events"), events);
    assert_int_equal(client_by("email", "new@person.org"), -1);
}

static void usage_errors_and_unusable_files(void **state)
{
    (void)state;
    char out[16384], path[512];
    assert_int_equal(run(out, sizeof out, "import", "clients", NULL), 2);
    assert_int_equal(run(out, sizeof out, "import", "people", "x.csv", NULL), 2);
    assert_int_equal(run(out, sizeof out, "import", "clients", "a.csv", "--region", "RUS", NULL),
                     2);
    assert_int_equal(run(out, sizeof out, "import", "clients", "/nonexistent/clients.csv", NULL),
                     1);
    assert_contains(out, "cannot open");
    static const char nohead[] = "foo;bar\n1;2\n";
    write_file(tmp_path("nohead.csv", path, sizeof path), nohead, sizeof nohead - 1);
    assert_int_equal(run(out, sizeof out, "import", "clients", path, NULL), 1);
    assert_contains(out, "no column for a name, e-mail, phone or messenger id");
    /* An empty file is not an error: nothing to do. */
    write_file(tmp_path("empty.csv", path, sizeof path), "", 0);
    assert_int_equal(run(out, sizeof out, "import", "clients", path, NULL), 0);
    assert_contains(out, "created 0, matched 0, invalid 0");
}

/* Lines of a JSON Lines file, each checked to be a JSON object; `sum_key`
 * (may be NULL) adds up the sizes of that array member. */
static int64_t jsonl_lines(const char *path, const char *sum_key, int64_t *sum_r,
                           json_t **with_attachment)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int64_t lines = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (sum_r)
        *sum_r = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!json_is_object(o))
            fail_msg("%s line %lld is not a JSON object: %s", path, (long long)lines + 1,
                     jerr.text);
        if (sum_key && sum_r)
            *sum_r += (int64_t)json_array_size(json_object_get(o, sum_key));
        if (with_attachment && !*with_attachment &&
            json_array_size(json_object_get(o, "attachments")))
            *with_attachment = json_incref(o);
        json_decref(o);
        lines++;
    }
    free(line);
    fclose(f);
    return lines;
}

static void export_matches_the_database(void **state)
{
    (void)state;
    /* Some history to export: two messages, one with a file. */
    static const char q_channel[] = "INSERT INTO channels (kind, name) VALUES ('webform', 'Site')";
    struct sb_db_rows r;
    char err[512] = "";
    assert_int_equal(sb_db_exec(db, q_channel, NULL, 0, &r, err, sizeof err), SB_OK);
    int64_t channel = (int64_t)r.insert_id;
    const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};
    for (int i = 0; i < 2; i++) {
        struct sb_inbound *in = sb_inbound_new();
        assert_non_null(in);
        in->channel_id = channel;
        in->kind = SB_IK_FORM;
        in->external_id = sb_inbound_strdup(in, i ? "form-2" : "form-1");
        in->text = sb_inbound_strdup(in, "Хочу кухню");
        sb_inbound_add_identity(in, SB_ID_EMAIL, "olga@example.com");
        if (i)
            sb_inbound_add_attachment(in, &(struct sb_inbound_attachment){
                                              .filename = "plan.txt",
                                              .content_type = "text/plain",
                                              .data = (const unsigned char *)"3x4 m",
                                              .size = 5,
                                          });
        struct sb_ingest_result res;
        int rc = sb_ingest(db, &opt, in, &res, err, sizeof err);
        if (rc != SB_OK)
            fail_msg("ingest: %s", err);
        sb_inbound_free(&in);
    }

    char dir[512], path[600], out[16384];
    tmp_path("export", dir, sizeof dir);
    int rc = run(out, sizeof out, "export", dir, NULL);
    assert_int_equal(rc, 0);
    assert_contains(out, "exported");

    int64_t idents, atts;
    json_t *with_att = NULL;
    snprintf(path, sizeof path, "%s/clients.jsonl", dir);
    assert_int_equal(jsonl_lines(path, "identities", &idents, NULL),
                     count("SELECT COUNT(*) FROM clients"));
    assert_int_equal(idents, count("SELECT COUNT(*) FROM client_identities"));
    snprintf(path, sizeof path, "%s/conversations.jsonl", dir);
    assert_int_equal(jsonl_lines(path, NULL, NULL, NULL),
                     count("SELECT COUNT(*) FROM conversations"));
    /* The reports' summary columns go along: a form from a person starts
     * the wait for an answer. */
    FILE *cf = fopen(path, "r");
    assert_non_null(cf);
    char line[8192];
    assert_non_null(fgets(line, sizeof line, cf));
    fclose(cf);
    json_t *conv = json_loads(line, 0, NULL);
    assert_non_null(conv);
    assert_non_null(json_string_value(json_object_get(conv, "first_inbound_at")));
    assert_non_null(json_string_value(json_object_get(conv, "waiting_since")));
    assert_true(json_is_null(json_object_get(conv, "last_outbound_at")));
    assert_true(json_is_null(json_object_get(conv, "first_responder_id")));
    json_decref(conv);
    snprintf(path, sizeof path, "%s/interactions.jsonl", dir);
    assert_int_equal(jsonl_lines(path, "attachments", &atts, &with_att),
                     count("SELECT COUNT(*) FROM interactions"));
    assert_int_equal(atts, count("SELECT COUNT(*) FROM attachments"));
    assert_true(count("SELECT COUNT(*) FROM interactions") >= 2);

    /* Attachments are metadata with the content's sha256 in hex. */
    assert_non_null(with_att);
    json_t *att = json_array_get(json_object_get(with_att, "attachments"), 0);
    assert_string_equal(json_string_value(json_object_get(att, "filename")), "plan.txt");
    const char *sha = json_string_value(json_object_get(att, "sha256"));
    assert_non_null(sha);
    assert_int_equal(strlen(sha), 64);
    assert_int_equal(strspn(sha, "0123456789abcdef"), 64);
    json_decref(with_att);

    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    assert_non_null(m);
    assert_int_equal(json_integer_value(json_object_get(m, "version")), 1);
    assert_non_null(json_string_value(json_object_get(m, "exported_at")));
    json_t *counts = json_object_get(m, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "clients")),
                     count("SELECT COUNT(*) FROM clients"));
    assert_int_equal(json_integer_value(json_object_get(counts, "interactions")),
                     count("SELECT COUNT(*) FROM interactions"));
    json_decref(m);
}

static void export_refuses_a_non_empty_directory(void **state)
{
    (void)state;
    char dir[512], path[600], out[16384];
    tmp_path("full", dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/keep.txt", dir);
    write_file(path, "mine", 4);
    assert_int_equal(run(out, sizeof out, "export", dir, NULL), 1);
    assert_contains(out, "not empty");
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* untouched */
    snprintf(path, sizeof path, "%s/clients.jsonl", dir);
    assert_int_not_equal(stat(path, &st), 0); /* nothing written beside it */
    /* The previous export's directory is not empty either. */
    assert_int_equal(run(out, sizeof out, "export", tmp_path("export", dir, sizeof dir), NULL), 1);
    assert_int_equal(run(out, sizeof out, "export", NULL), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_with_bom_semicolons_and_russian_headers),
        cmocka_unit_test(importing_again_creates_nothing),
        cmocka_unit_test(windows1251_csv_is_detected_and_converted),
        cmocka_unit_test(vcard_contact_matches_the_csv_client),
        cmocka_unit_test(vcard_21_quoted_printable),
        cmocka_unit_test(dry_run_writes_nothing),
        cmocka_unit_test(usage_errors_and_unusable_files),
        cmocka_unit_test(export_matches_the_database),
        cmocka_unit_test(export_refuses_a_non_empty_directory),
    };
    return cmocka_run_group_tests_name("import", tests, setup, teardown);
}
