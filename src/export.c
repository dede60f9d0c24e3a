/* `export DIR`: clients, conversations and interactions as JSON Lines (see
 * export.h).
 *
 * Each table is read in pages keyed on id (WHERE id > last ORDER BY id
 * LIMIT page), never with OFFSET, so every page costs the same however far
 * in we are. The rows belonging to a page (identities and tags of its
 * clients, attachments of its interactions) come with one range query each
 * and are merged in order. Columns become JSON by a table per file (name,
 * type), so a new column is one line here. Everything runs in one read
 * transaction: InnoDB's snapshot makes the files agree with each other
 * without locking writers out. */
#include "switchboard/export.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x)  STR_(x)

/* -- name: export-clients */
static const char q_clients[] =
    "SELECT id, name, company, custom_fields, merged_into, created_at, updated_at, "
    "last_activity_at FROM clients WHERE id > ? ORDER BY id LIMIT " STR(SB_EXPORT_PAGE);

/* -- name: export-identities
 * The identities of one page of clients: a range on the (client_id, kind)
 * index. */
static const char q_identities[] =
    "SELECT client_id, kind, value, raw, verified, display_name, created_at "
    "FROM client_identities WHERE client_id BETWEEN ? AND ? ORDER BY client_id, id";

/* -- name: export-tags */
static const char q_tags[] = "SELECT client_id, tag FROM client_tags "
                             "WHERE client_id BETWEEN ? AND ? ORDER BY client_id, tag";

/* -- name: export-conversations */
static const char q_conversations[] =
    "SELECT id, client_id, channel_id, status, snoozed_until, assignee_id, team_id, subject, "
    "last_activity_at, unread, first_response_at, resolved_at, created_at, updated_at, "
    "first_inbound_at, last_inbound_at, last_outbound_at, waiting_since, first_responder_id "
    "FROM conversations WHERE id > ? ORDER BY id LIMIT " STR(SB_EXPORT_PAGE);

/* -- name: export-interactions
 * Every column but message_id_hash (derived from message_id); the raw
 * message is a blob named by raw_sha256 and stays out. */
static const char q_interactions[] =
    "SELECT id, conversation_id, client_id, channel_id, direction, kind, external_id, "
    "message_id, in_reply_to, sender, subject, text, html, meta, delivery_status, flags, "
    "parse_error, LOWER(HEX(raw_sha256)), author_user_id, occurred_at, created_at "
    "FROM interactions WHERE id > ? ORDER BY id LIMIT " STR(SB_EXPORT_PAGE);

/* -- name: export-attachments */
static const char q_attachments[] =
    "SELECT interaction_id, id, filename, content_type, size, LOWER(HEX(sha256)), content_id, "
    "disposition, provider_ref, created_at FROM attachments "
    "WHERE interaction_id BETWEEN ? AND ? ORDER BY interaction_id, id";

/* -- name: export-schema-version */
static const char q_schema_version[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

enum col_type {
    T_INT,
    T_STR,
    T_JSON, /* a JSON column: embedded as a value */
    T_TIME, /* DATETIME(6) in UTC → ISO 8601 */
    T_BOOL,
    T_SET, /* a SQL SET → array of strings */
};

struct col {
    const char *name;
    enum col_type type;
};

static const struct col client_cols[] = {
    {"id", T_INT},          {"name", T_STR},
    {"company", T_STR},     {"custom_fields", T_JSON},
    {"merged_into", T_INT}, {"created_at", T_TIME},
    {"updated_at", T_TIME}, {"last_activity_at", T_TIME},
};
static const struct col identity_cols[] = {
    {"kind", T_STR},      {"value", T_STR},        {"raw", T_STR},
    {"verified", T_BOOL}, {"display_name", T_STR}, {"created_at", T_TIME},
};
static const struct col conversation_cols[] = {
    {"id", T_INT},
    {"client_id", T_INT},
    {"channel_id", T_INT},
    {"status", T_STR},
    {"snoozed_until", T_TIME},
    {"assignee_id", T_INT},
    {"team_id", T_INT},
    {"subject", T_STR},
    {"last_activity_at", T_TIME},
    {"unread", T_INT},
    {"first_response_at", T_TIME},
    {"resolved_at", T_TIME},
    {"created_at", T_TIME},
    {"updated_at", T_TIME},
    /* the reports' summary (008_reports.sql) */
    {"first_inbound_at", T_TIME},
    {"last_inbound_at", T_TIME},
    {"last_outbound_at", T_TIME},
    {"waiting_since", T_TIME},
    {"first_responder_id", T_INT},
};
static const struct col interaction_cols[] = {
    {"id", T_INT},
    {"conversation_id", T_INT},
    {"client_id", T_INT},
    {"channel_id", T_INT},
    {"direction", T_STR},
    {"kind", T_STR},
    {"external_id", T_STR},
    {"message_id", T_STR},
    {"in_reply_to", T_STR},
    {"sender", T_STR},
    {"subject", T_STR},
    {"text", T_STR},
    {"html", T_STR},
    {"meta", T_JSON},
    {"delivery_status", T_STR},
    {"flags", T_SET},
    {"parse_error", T_STR},
    {"raw_sha256", T_STR},
    {"author_user_id", T_INT},
    {"occurred_at", T_TIME},
    {"created_at", T_TIME},
};
static const struct col attachment_cols[] = {
    {"id", T_INT},          {"filename", T_STR},     {"content_type", T_STR},
    {"size", T_INT},        {"sha256", T_STR},       {"content_id", T_STR},
    {"disposition", T_STR}, {"provider_ref", T_STR}, {"created_at", T_TIME},
};

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* Text as a JSON string; bytes that are not UTF-8 (none should be: the
 * columns are utf8mb4) become U+FFFD rather than failing the export. */
static json_t *text_value(const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (v)
        return v;
    char *clean = malloc(n * 3 + 1);
    if (!clean)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && c) {
            clean[o++] = (char)c;
        } else {
            memcpy(clean + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
    }
    v = json_stringn(clean, o);
    free(clean);
    return v;
}

static json_t *cell_value(const struct sb_db_rows *r, size_t row, size_t col, enum col_type type)
{
    const char *s = sb_db_cell(r, row, col);
    size_t n = s ? r->lens[row * r->ncols + col] : 0;
    if (!s)
        return json_null();
    switch (type) {
    case T_INT:
        return json_integer(strtoll(s, NULL, 10));
    case T_BOOL:
        return json_boolean(s[0] && s[0] != '0');
    case T_JSON: {
        json_t *v = json_loadb(s, n, JSON_DECODE_ANY, NULL);
        return v ? v : text_value(s, n);
    }
    case T_TIME: {
        /* "2024-05-01 10:00:00.123456" → "2024-05-01T10:00:00.123456Z" */
        char t[40];
        snprintf(t, sizeof t, "%sZ", s);
        if (strlen(t) > 10 && t[10] == ' ')
            t[10] = 'T';
        return json_string(t);
    }
    case T_SET: {
        json_t *a = json_array();
        for (const char *p = s; a && *p;) {
            size_t k = strcspn(p, ",");
            json_array_append_new(a, text_value(p, k));
            p += k + (p[k] == ',');
        }
        return a;
    }
    case T_STR:
    default:
        return text_value(s, n);
    }
}

/* Columns [first, first + ncols) of a row as an object, in table order. */
static json_t *row_object(const struct sb_db_rows *r, size_t row, size_t first,
                          const struct col *cols, size_t ncols)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < ncols; i++) {
        json_t *v = cell_value(r, row, first + i, cols[i].type);
        if (!v || json_object_set_new(o, cols[i].name, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

struct out {
    const char *name;
    char path[4096];
    FILE *f;
    int made; /* we created the file: removed again on failure */
};

static int out_open(const char *dir, struct out *o, char *err, size_t errlen)
{
    snprintf(o->path, sizeof o->path, "%s/%s", dir, o->name);
    /* O_EXCL: never write into a file someone put there meanwhile; 0600:
     * the files hold personal data. */
    int fd = open(o->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 && !(o->f = fdopen(fd, "w")))
        close(fd);
    if (!o->f)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot create %s: %s", o->path, strerror(errno));
    o->made = 1;
    return SB_OK;
}

/* Write one object as a line; `o` is released. */
static int out_line(struct out *o, json_t *obj, char *err, size_t errlen)
{
    if (!obj)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    int bad = fputs(text, o->f) == EOF || fputc('\n', o->f) == EOF;
    free(text);
    if (bad)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot write %s: %s", o->path, strerror(errno));
    return SB_OK;
}

/* Flush to disk and close: an export that says "done" is on the disk. */
static int out_close(struct out *o, char *err, size_t errlen)
{
    if (!o->f)
        return SB_OK;
    int bad = fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (bad)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot write %s: %s", o->path, strerror(errno));
    return SB_OK;
}

/* Use `dir` when it does not exist (created) or is an empty directory. */
static int prepare_dir(const char *dir, int *created_r, char *err, size_t errlen)
{
    *created_r = 0;
    if (mkdir(dir, 0700) == 0) {
        *created_r = 1;
        return SB_OK;
    }
    if (errno != EEXIST)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return sb_fail(err, errlen, errno == ENOTDIR ? SB_ERR_EXISTS : SB_ERR_IO,
                       "cannot export into %s: %s", dir, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    if (!empty)
        return sb_fail(err, errlen, SB_ERR_EXISTS,
                       "%s is not empty; export into a new or empty directory", dir);
    return SB_OK;
}

static int page(struct sb_db *db, const char *sql, int64_t after, struct sb_db_rows *r, char *err,
                size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(after)};
    return sb_db_exec(db, sql, a, 1, r, err, errlen);
}

static int range(struct sb_db *db, const char *sql, int64_t lo, int64_t hi, struct sb_db_rows *r,
                 char *err, size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(lo), SB_INT(hi)};
    return sb_db_exec(db, sql, a, 2, r, err, errlen);
}

static int export_clients(struct sb_db *db, struct out *o, struct sb_export_counts *n, char *err,
                          size_t errlen)
{
    int64_t after = 0;
    for (;;) {
        struct sb_db_rows c, ids, tags;
        memset(&ids, 0, sizeof ids);
        memset(&tags, 0, sizeof tags);
        int rc = page(db, q_clients, after, &c, err, errlen);
        if (rc == SB_OK && c.nrows) {
            int64_t lo = sb_db_cell_int(&c, 0, 0), hi = sb_db_cell_int(&c, c.nrows - 1, 0);
            rc = range(db, q_identities, lo, hi, &ids, err, errlen);
            if (rc == SB_OK)
                rc = range(db, q_tags, lo, hi, &tags, err, errlen);
        }
        size_t ji = 0, jt = 0;
        for (size_t i = 0; rc == SB_OK && i < c.nrows; i++) {
            int64_t id = sb_db_cell_int(&c, i, 0);
            json_t *obj = row_object(&c, i, 0, client_cols, NCOLS(client_cols));
            json_t *idents = json_array(), *tagarr = json_array();
            for (; ji < ids.nrows && sb_db_cell_int(&ids, ji, 0) == id; ji++) {
                json_array_append_new(idents,
                                      row_object(&ids, ji, 1, identity_cols, NCOLS(identity_cols)));
                n->identities++;
            }
            for (; jt < tags.nrows && sb_db_cell_int(&tags, jt, 0) == id; jt++) {
                json_array_append_new(tagarr, cell_value(&tags, jt, 1, T_STR));
                n->tags++;
            }
            if (obj) {
                json_object_set_new(obj, "identities", idents);
                json_object_set_new(obj, "tags", tagarr);
            } else {
                json_decref(idents);
                json_decref(tagarr);
            }
            rc = out_line(o, obj, err, errlen);
            n->clients++;
            after = id;
        }
        size_t got = c.nrows;
        sb_db_rows_free(&c);
        sb_db_rows_free(&ids);
        sb_db_rows_free(&tags);
        if (rc != SB_OK || got < SB_EXPORT_PAGE)
            return rc;
    }
}

static int export_conversations(struct sb_db *db, struct out *o, struct sb_export_counts *n,
                                char *err, size_t errlen)
{
    int64_t after = 0;
    for (;;) {
        struct sb_db_rows c;
        int rc = page(db, q_conversations, after, &c, err, errlen);
        for (size_t i = 0; rc == SB_OK && i < c.nrows; i++) {
            rc = out_line(o, row_object(&c, i, 0, conversation_cols, NCOLS(conversation_cols)), err,
                          errlen);
            n->conversations++;
            after = sb_db_cell_int(&c, i, 0);
        }
        size_t got = c.nrows;
        sb_db_rows_free(&c);
        if (rc != SB_OK || got < SB_EXPORT_PAGE)
            return rc;
    }
}

static int export_interactions(struct sb_db *db, struct out *o, struct sb_export_counts *n,
                               char *err, size_t errlen)
{
    int64_t after = 0;
    for (;;) {
        struct sb_db_rows c, att;
        memset(&att, 0, sizeof att);
        int rc = page(db, q_interactions, after, &c, err, errlen);
        if (rc == SB_OK && c.nrows)
            rc = range(db, q_attachments, sb_db_cell_int(&c, 0, 0),
                       sb_db_cell_int(&c, c.nrows - 1, 0), &att, err, errlen);
        size_t ja = 0;
        for (size_t i = 0; rc == SB_OK && i < c.nrows; i++) {
            int64_t id = sb_db_cell_int(&c, i, 0);
            json_t *obj = row_object(&c, i, 0, interaction_cols, NCOLS(interaction_cols));
            json_t *atts = json_array();
            for (; ja < att.nrows && sb_db_cell_int(&att, ja, 0) == id; ja++) {
                json_array_append_new(
                    atts, row_object(&att, ja, 1, attachment_cols, NCOLS(attachment_cols)));
                n->attachments++;
            }
            if (obj)
                json_object_set_new(obj, "attachments", atts);
            else
                json_decref(atts);
            rc = out_line(o, obj, err, errlen);
            n->interactions++;
            after = id;
        }
        size_t got = c.nrows;
        sb_db_rows_free(&c);
        sb_db_rows_free(&att);
        if (rc != SB_OK || got < SB_EXPORT_PAGE)
            return rc;
    }
}

static int write_manifest(struct sb_db *db, struct out *o, const struct sb_export_counts *n,
                          char *err, size_t errlen)
{
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_schema_version, NULL, 0, &r, err, errlen);
    int64_t schema = rc == SB_OK && r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    sb_db_rows_free(&r);
    if (rc != SB_OK)
        return rc;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[48], date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof when, "%s.%06dZ", date, (int)(ts.tv_nsec / 1000) % 1000000);
    json_t *m = json_pack("{s:s,s:i,s:s,s:I,s:{s:s,s:s,s:s},s:{s:I,s:I,s:I,s:I,s:I,s:I}}", "format",
                          "switchboard-export", "version", 1, "exported_at", when, "schema_version",
                          (json_int_t)schema, "files", "clients", "clients.jsonl", "conversations",
                          "conversations.jsonl", "interactions", "interactions.jsonl", "counts",
                          "clients", (json_int_t)n->clients, "identities",
                          (json_int_t)n->identities, "tags", (json_int_t)n->tags, "conversations",
                          (json_int_t)n->conversations, "interactions", (json_int_t)n->interactions,
                          "attachments", (json_int_t)n->attachments);
    if (!m)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    char *text = json_dumps(m, JSON_INDENT(2));
    json_decref(m);
    if (!text)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    int bad = fputs(text, o->f) == EOF || fputc('\n', o->f) == EOF;
    free(text);
    if (bad)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot write %s: %s", o->path, strerror(errno));
    return SB_OK;
}

int sb_export(struct sb_db *db, const char *dir, struct sb_export_counts *counts_r, char *err,
              size_t errlen)
{
    memset(counts_r, 0, sizeof *counts_r);
    int created;
    int rc = prepare_dir(dir, &created, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct out files[] = {
        {.name = "clients.jsonl"},
        {.name = "conversations.jsonl"},
        {.name = "interactions.jsonl"},
        {.name = "manifest.json"},
    };
    enum { F_CLIENTS, F_CONVERSATIONS, F_INTERACTIONS, F_MANIFEST, F_COUNT };
    for (int i = 0; rc == SB_OK && i < F_MANIFEST; i++)
        rc = out_open(dir, &files[i], err, errlen);
    /* One snapshot for all files: the first read fixes it. */
    int in_tx = 0;
    if (rc == SB_OK && (rc = sb_db_begin(db, err, errlen)) == SB_OK)
        in_tx = 1;
    if (rc == SB_OK)
        rc = export_clients(db, &files[F_CLIENTS], counts_r, err, errlen);
    if (rc == SB_OK)
        rc = export_conversations(db, &files[F_CONVERSATIONS], counts_r, err, errlen);
    if (rc == SB_OK)
        rc = export_interactions(db, &files[F_INTERACTIONS], counts_r, err, errlen);
    for (int i = 0; i < F_MANIFEST; i++) {
        int crc = out_close(&files[i], err, errlen);
        if (rc == SB_OK)
            rc = crc;
    }
    /* The manifest last: its presence says the rest is complete. */
    if (rc == SB_OK)
        rc = out_open(dir, &files[F_MANIFEST], err, errlen);
    if (rc == SB_OK)
        rc = write_manifest(db, &files[F_MANIFEST], counts_r, err, errlen);
    if (in_tx)
        sb_db_rollback(db); /* read only: nothing to keep */
    int crc = out_close(&files[F_MANIFEST], err, errlen);
    if (rc == SB_OK)
        rc = crc;
    if (rc == SB_OK) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) { /* the new names on disk too */
            fsync(fd);
            close(fd);
        }
        return SB_OK;
    }
    for (int i = 0; i < F_COUNT; i++)
        if (files[i].made)
            unlink(files[i].path);
    if (created)
        rmdir(dir);
    return rc;
}
