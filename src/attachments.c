/* Attachments: type rules, safe names, uploads and listings (see
 * attachments.h). */
#include "switchboard/attachments.h"
#include "switchboard/campaign.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* -- Types ------------------------------------------------------------------ */

/* What we serve under its own name. `magic`: the type is proven by the
 * bytes (a declared image/png that is not a PNG is not stored as one). */
static const struct {
    const char *type;
    int magic;
} types[] = {
    {"image/png", 1},
    {"image/jpeg", 1},
    {"image/gif", 1},
    {"image/webp", 1},
    {"application/pdf", 1},
    {"application/zip", 1},
    {"audio/ogg", 1},
    {"audio/mpeg", 0},
    {"video/mp4", 0},
    {"text/plain", 0},
    {"text/csv", 0},
    {"text/calendar", 0},
    {"application/msword", 0},
    {"application/vnd.ms-excel", 0},
    {"application/vnd.ms-powerpoint", 0},
    {"application/vnd.openxmlformats-officedocument.wordprocessingml.document", 0},
    {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 0},
    {"application/vnd.openxmlformats-officedocument.presentationml.presentation", 0},
    {"application/vnd.oasis.opendocument.text", 0},
    {"application/vnd.oasis.opendocument.spreadsheet", 0},
    {"application/rtf", 0},
    {"application/octet-stream", 0},
};

static const char OCTET[] = "application/octet-stream";

static int known(const char *t)
{
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcasecmp(types[i].type, t))
            return (int)i;
    return -1;
}

/* The type the first bytes prove, or NULL. */
static const char *magic(const unsigned char *p, size_t n)
{
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
        return "image/png";
    if (n >= 3 && !memcmp(p, "\xff\xd8\xff", 3))
        return "image/jpeg";
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
        return "image/gif";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
        return "image/webp";
    if (n >= 5 && !memcmp(p, "%PDF-", 5))
        return "application/pdf";
    if (n >= 4 && !memcmp(p, "PK\x03\x04", 4))
        return "application/zip";
    if (n >= 4 && !memcmp(p, "OggS", 4))
        return "audio/ogg";
    return NULL;
}

/* "type/subtype" without parameters, lower-cased, into buf. */
static void bare_type(const char *in, char *buf, size_t buflen)
{
    size_t k = 0;
    for (; in && *in && *in != ';' && k + 1 < buflen; in++)
        if (*in != ' ' && *in != '\t')
            buf[k++] = (char)((*in >= 'A' && *in <= 'Z') ? *in + 32 : *in);
    buf[k] = '\0';
}

const char *sb_att_sniff(const unsigned char *p, size_t n, const char *declared)
{
    char d[128];
    bare_type(declared, d, sizeof d);
    int k = known(d);
    const char *m = magic(p, n);
    if (m) {
        /* Office and OpenDocument files are ZIP archives: keep their name. */
        if (!strcmp(m, "application/zip") && k >= 0 &&
            (strstr(d, "openxmlformats") || strstr(d, "opendocument")))
            return types[k].type;
        return m;
    }
    if (k < 0 || types[k].magic)
        return OCTET;
    /* Text must at least not be binary. */
    if (!strncmp(d, "text/", 5) && memchr(p, '\0', n))
        return OCTET;
    return types[k].type;
}

const char *sb_att_served_type(const char *stored)
{
    char d[128];
    bare_type(stored, d, sizeof d);
    int k = known(d);
    return k >= 0 ? types[k].type : OCTET;
}

int sb_att_inline_ok(const char *type, const unsigned char *p, size_t n)
{
    const char *m = magic(p, n);
    char d[128];
    bare_type(type, d, sizeof d);
    return m && !strncmp(m, "image/", 6) && !strcmp(m, d);
}

/* -- Names ------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1-4), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xe0) == 0xc0 ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (!len || len > left || (len == 2 && s[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

#define NAME_MAX_BYTES 200

void sb_att_filename_clean(const char *in, char *out, size_t outlen)
{
    if (!outlen)
        return;
    const char *base = in ? in : "";
    for (const char *c = base; *c; c++)
        if (*c == '/' || *c == '\\')
            base = c + 1;
    while (*base == '.' || *base == ' ')
        base++;
    size_t cap = outlen - 1 < NAME_MAX_BYTES ? outlen - 1 : NAME_MAX_BYTES, k = 0;
    const unsigned char *s = (const unsigned char *)base;
    size_t left = strlen(base);
    while (left) {
        size_t n = utf8_seq(s, left);
        if (n == 1 && (s[0] < 0x20 || s[0] == 0x7f || s[0] == '"')) {
            n = 0; /* control characters and quotes: '_' */
        }
        if (!n) {
            if (k + 1 > cap)
                break;
            out[k++] = '_';
            s++, left--;
            continue;
        }
        if (k + n > cap)
            break;
        memcpy(out + k, s, n);
        k += n;
        s += n, left -= n;
    }
    while (k && (out[k - 1] == ' ' || out[k - 1] == '.'))
        k--;
    out[k] = '\0';
    if (!k)
        snprintf(out, outlen, "file");
}

int sb_att_disposition(const char *filename, int inline_, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *name = filename && *filename ? filename : "file";
    size_t k = (size_t)snprintf(out, outlen, "%s; filename=\"", inline_ ? "inline" : "attachment");
    if (k >= outlen)
        return SB_ERR_TOO_LARGE;
    /* The quoted fallback for old clients: ASCII only. */
    for (const unsigned char *c = (const unsigned char *)name; *c && k + 2 < outlen; c++)
        if ((*c & 0xc0) != 0x80) /* one '_' per non-ASCII character */
            out[k++] = *c < 0x20 || *c >= 0x7f || *c == '"' || *c == '\\' ? '_' : (char)*c;
    int w = snprintf(out + k, outlen - k, "\"; filename*=UTF-8''");
    if (w < 0 || (size_t)w >= outlen - k)
        return SB_ERR_TOO_LARGE;
    k += (size_t)w;
    /* RFC 8187 attr-char stays, everything else is %XX. */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                    (*c >= '0' && *c <= '9') || strchr("!#$&+-.^_`|~", *c);
        if (k + (plain ? 1 : 3) >= outlen)
            return SB_ERR_TOO_LARGE;
        if (plain) {
            out[k++] = (char)*c;
        } else {
            out[k++] = '%';
            out[k++] = hex[*c >> 4];
            out[k++] = hex[*c & 15];
        }
    }
    out[k] = '\0';
    return SB_OK;
}

/* -- SQL ---------------------------------------------------------------------- */

/* -- name: upload-blob */
static const char q_blob_put[] =
    "INSERT INTO blobs (sha256, size, data) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE size = size";
/* -- name: upload-insert */
static const char q_upload_insert[] =
    "INSERT INTO uploads (user_id, filename, content_type, size, sha256) VALUES (?, ?, ?, ?, ?)";
/* -- name: upload-link
 * Only the uploader's own, still unused upload becomes the attachment. */
static const char q_upload_link[] =
    "INSERT INTO attachments (interaction_id, filename, content_type, size, sha256) "
    "SELECT ?, filename, content_type, size, sha256 FROM uploads WHERE id = ? AND user_id = ?";
static const char q_upload_used[] = "DELETE FROM uploads WHERE id = ? AND user_id = ?";
/* -- name: attachments-of-page */
static const char q_page[] =
    "SELECT a.interaction_id, a.id, a.filename, a.content_type, a.size, a.sha256 IS NOT NULL, "
    "a.disposition, a.content_id FROM attachments a JOIN interactions i ON i.id = a.interaction_id "
    "WHERE i.conversation_id = ? AND a.interaction_id BETWEEN ? AND ? ORDER BY a.id";
/* -- name: attachments-out-files */
static const char q_out_files[] =
    "SELECT a.filename, a.content_type, b.data FROM attachments a "
    "JOIN blobs b ON b.sha256 = a.sha256 WHERE a.interaction_id = ? ORDER BY a.id";
/* -- name: uploads-stale */
static const char q_stale[] =
    "SELECT id, sha256 FROM uploads WHERE created_at < NOW(6) - INTERVAL ? SECOND "
    "ORDER BY id LIMIT 200";
static const char q_stale_delete[] = "DELETE FROM uploads WHERE id = ?";
/* -- name: blob-unused-delete
 * A blob only goes when nothing points at it; a table added later with a
 * RESTRICT key refuses the delete, which is then skipped. */
static const char q_blob_unused[] =
    "DELETE FROM blobs WHERE sha256 = ? "
    "AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.sha256 = blobs.sha256) "
    "AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.sha256 = blobs.sha256) "
    "AND NOT EXISTS (SELECT 1 FROM interactions i WHERE i.raw_sha256 = blobs.sha256)";

int sb_att_upload_store(struct sb_db *db, int64_t user_id, const char *filename,
                        const char *content_type, const void *data, size_t len, int64_t *id_r,
                        char *err, size_t errlen)
{
    unsigned char sum[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(sum, data, len);
    struct sb_db_val b[] = {SB_BLOB(sum, sizeof sum), SB_INT(len), SB_BLOB(data, len)};
    struct sb_db_val u[] = {SB_INT(user_id), SB_TEXT(filename), SB_TEXT(content_type), SB_INT(len),
                            SB_BLOB(sum, sizeof sum)};
    struct sb_db_rows r = {0};
    *id_r = 0;
    int rc = sb_db_begin(db, err, errlen);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_blob_put, b, 3, NULL, err, errlen);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_upload_insert, u, 5, &r, err, errlen);
    if (rc == SB_OK)
        *id_r = (int64_t)r.insert_id;
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        return sb_db_commit(db, err, errlen);
    sb_db_rollback(db);
    return rc;
}

int sb_att_link_uploads(struct sb_db *db, int64_t user_id, int64_t interaction_id,
                        const int64_t *ids, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        struct sb_db_val a[] = {SB_INT(interaction_id), SB_INT(ids[i]), SB_INT(user_id)};
        struct sb_db_rows r;
        int rc = sb_db_exec(db, q_upload_link, a, 3, &r, err, errlen);
        uint64_t got = r.affected;
        sb_db_rows_free(&r);
        if (rc != SB_OK)
            return rc;
        if (got != 1)
            return sb_fail(err, errlen, SB_ERR_FORBIDDEN,
                           "attachment %lld is not one of your uploads (or was sent already)",
                           (long long)ids[i]);
        rc = sb_db_exec(db, q_upload_used, a + 1, 2, NULL, err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    return SB_OK;
}

/* -- name: attachments-of-interaction */
static const char q_of_interaction[] =
    "SELECT id, filename, content_type, size FROM attachments WHERE interaction_id = ? "
    "ORDER BY id";

int sb_att_links(struct sb_db *db, const unsigned char master_key[32], const char *public_url,
                 int64_t interaction_id, json_t **files_r, char *err, size_t errlen)
{
    *files_r = NULL;
    unsigned char key[32];
    sb_camp_key(master_key, key);
    struct sb_db_val a[] = {SB_INT(interaction_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_of_interaction, a, 1, &r, err, errlen);
    json_t *files = json_array();
    size_t base = strlen(public_url);
    while (base && public_url[base - 1] == '/')
        base--;
    int64_t until = (int64_t)time(NULL) + SB_FILE_LINK_TTL_S;
    for (size_t i = 0; rc == SB_OK && files && i < r.nrows; i++) {
        char tok[SB_CAMP_TOKEN_MAX], url[1024];
        rc = sb_camp_token_make(key, SB_TOK_FILE, sb_db_cell_int(&r, i, 0), until, NULL, tok,
                                sizeof tok);
        snprintf(url, sizeof url, "%.*s/f/%s", (int)base, public_url, tok);
        json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "url", url, "filename",
                              sb_db_cell(&r, i, 1) ? sb_db_cell(&r, i, 1) : "file", "content_type",
                              sb_db_cell(&r, i, 2), "size", (json_int_t)sb_db_cell_int(&r, i, 3));
        if (rc == SB_OK && (!o || json_array_append_new(files, o)))
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    sb_db_rows_free(&r);
    sodium_memzero(key, sizeof key);
    if (rc == SB_OK && !files)
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (rc != SB_OK)
        json_decref(files);
    else
        *files_r = files;
    return rc;
}

int sb_att_link_check(const unsigned char master_key[32], const char *token, int64_t *id_r)
{
    unsigned char key[32];
    int64_t id = 0, until = 0;
    *id_r = 0;
    sb_camp_key(master_key, key);
    int rc = sb_camp_token_check(key, SB_TOK_FILE, token, NULL, &id, &until);
    sodium_memzero(key, sizeof key);
    if (rc != SB_OK || until < (int64_t)time(NULL))
        return SB_ERR_NOT_FOUND;
    *id_r = id;
    return SB_OK;
}

int sb_att_annotate(struct sb_db *db, int64_t conv_id, int64_t min_id, int64_t max_id,
                    json_t *items, char *err, size_t errlen)
{
    if (!json_array_size(items))
        return SB_OK;
    struct sb_db_val a[] = {SB_INT(conv_id), SB_INT(min_id), SB_INT(max_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_page, a, 3, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        json_int_t iid = json_integer_value(json_object_get(it, "id"));
        json_t *list = NULL;
        for (size_t k = 0; k < r.nrows; k++) {
            if (sb_db_cell_int(&r, k, 0) != iid)
                continue;
            const char *fn = sb_db_cell(&r, k, 2), *cid = sb_db_cell(&r, k, 7);
            const char *size = sb_db_cell(&r, k, 4);
            int64_t id = sb_db_cell_int(&r, k, 1);
            char url[64];
            snprintf(url, sizeof url, "/api/v1/attachments/%lld", (long long)id);
            json_t *o = json_pack(
                "{s:I,s:o,s:s,s:o,s:b,s:b,s:o,s:s}", "id", (json_int_t)id, "filename",
                fn ? json_string(fn) : json_null(), "content_type", sb_db_cell(&r, k, 3), "size",
                size ? json_integer(sb_db_cell_int(&r, k, 4)) : json_null(), "fetched",
                (int)sb_db_cell_int(&r, k, 5), "inline", !strcmp(sb_db_cell(&r, k, 6), "inline"),
                "content_id", cid ? json_string(cid) : json_null(), "url", url);
            if (!list)
                list = json_array();
            if (o)
                json_array_append_new(list, o);
        }
        json_object_set_new(it, "attachments", list ? list : json_array());
    }
    sb_db_rows_free(&r);
    return SB_OK;
}

int sb_att_out_files(struct sb_db *db, int64_t interaction_id, struct sb_db_rows *rows_r, char *err,
                     size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(interaction_id)};
    return sb_db_exec(db, q_out_files, a, 1, rows_r, err, errlen);
}

int sb_att_prune(struct sb_db *db, size_t *n_r, char *err, size_t errlen)
{
    *n_r = 0;
    struct sb_db_val a[] = {SB_INT(SB_UPLOAD_TTL_S)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_stale, a, 1, &r, err, errlen);
    for (size_t i = 0; rc == SB_OK && i < r.nrows; i++) {
        struct sb_db_val d[] = {SB_INT(sb_db_cell_int(&r, i, 0))};
        struct sb_db_val b[] = {SB_BLOB(sb_db_cell(&r, i, 1), r.lens[i * r.ncols + 1])};
        struct sb_db_rows x;
        rc = sb_db_exec(db, q_stale_delete, d, 1, &x, err, errlen);
        if (rc == SB_OK && x.affected == 1)
            (*n_r)++;
        sb_db_rows_free(&x);
        if (rc == SB_OK) {
            char e2[256];
            int brc = sb_db_exec(db, q_blob_unused, b, 1, NULL, e2, sizeof e2);
            if (brc == SB_ERR_UNAVAILABLE)
                rc = sb_fail(err, errlen, brc, "%s", e2);
        }
    }
    sb_db_rows_free(&r);
    return rc;
}
