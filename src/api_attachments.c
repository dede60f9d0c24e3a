/* Files over HTTP: agents' uploads for replies (POST /api/v1/uploads) and
 * attachment downloads (GET /api/v1/attachments/{id}) under the inbox's
 * visibility rule. See attachments.h for the type and name rules. */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/app.h"
#include "switchboard/attachments.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* -- name: attachment-download
 * The visibility rule of the inbox (api_conversations.c): admins all, an
 * agent what is assigned to them, unassigned, or their teams'. */
static const char q_download[] =
    "SELECT a.filename, a.content_type, b.data, a.sha256 IS NOT NULL FROM attachments a "
    "JOIN interactions i ON i.id = a.interaction_id "
    "JOIN conversations c ON c.id = i.conversation_id "
    "LEFT JOIN blobs b ON b.sha256 = a.sha256 WHERE a.id = ? AND " SB_SQL_CONV_VISIBLE;
/* -- name: attachment-by-link (the signed token is the permission) */
static const char q_by_link[] =
    "SELECT a.filename, a.content_type, b.data, a.sha256 IS NOT NULL FROM attachments a "
    "LEFT JOIN blobs b ON b.sha256 = a.sha256 WHERE a.id = ?";

/* An extension for a file that came without a name (a Telegram photo). */
static const char *ext_of(const char *type)
{
    static const struct {
        const char *type, *ext;
    } m[] = {{"image/png", ".png"},      {"image/jpeg", ".jpg"},      {"image/gif", ".gif"},
             {"image/webp", ".webp"},    {"application/pdf", ".pdf"}, {"audio/ogg", ".ogg"},
             {"audio/mpeg", ".mp3"},     {"video/mp4", ".mp4"},       {"text/plain", ".txt"},
             {"application/zip", ".zip"}};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (!strcmp(m[i].type, type))
            return m[i].ext;
    return "";
}

/* Answer with the attachment the query `sql` (bound to `a`) finds. */
static void serve(struct sb_db *db, const char *sql, const struct sb_db_val *a, size_t na,
                  int64_t id, struct sb_http_reply *rep)
{
    char err[256] = "";
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, a, na, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "download attachment", err);
        return;
    }
    if (!r.nrows) {
        /* Someone else's conversation looks the same as no attachment. */
        sb_db_rows_free(&r);
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such attachment");
        return;
    }
    if (!sb_db_cell_int(&r, 0, 3) || !sb_db_cell(&r, 0, 2)) {
        sb_db_rows_free(&r);
        sb_reply_error_status(rep, 409, "not_fetched",
                              "the file is still being fetched from the provider; try again soon");
        return;
    }
    const unsigned char *data = (const unsigned char *)sb_db_cell(&r, 0, 2);
    size_t len = r.lens[2];
    const char *type = sb_att_served_type(sb_db_cell(&r, 0, 1));
    int inl = sb_att_inline_ok(type, data, len);
    char name[256], disp[1024];
    if (sb_db_cell(&r, 0, 0)) {
        sb_att_filename_clean(sb_db_cell(&r, 0, 0), name, sizeof name);
    } else {
        snprintf(name, sizeof name, "attachment-%lld%s", (long long)id, ext_of(type));
    }
    if (sb_att_disposition(name, inl, disp, sizeof disp) != SB_OK)
        sb_att_disposition("file", inl, disp, sizeof disp);
    sb_reply_text(rep, 200, type, (const char *)data, len);
    sb_db_rows_free(&r);
    sb_reply_header(rep, "Content-Disposition", disp);
    /* X-Content-Type-Options: nosniff comes with every answer (server.c). */
    /* Opened as a page anyway (a link typed by hand): no script, no origin. */
    sb_reply_header(rep, "Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'");
    sb_reply_header(rep, "Cache-Control", "private, max-age=3600");
}

void sb_api_attachment_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such attachment");
        return;
    }
    struct sb_db_val a[] = {SB_INT(id), SB_INT(req->user.role == SB_ROLE_ADMIN),
                            SB_INT(req->user.id), SB_INT(req->user.id)};
    serve(db, q_download, a, 4, id, rep);
}

/* GET /f/{token}: a file a provider downloads for a message we send
 * (WhatsApp "link", Viber "media"). Public; the signed, expiring token
 * names the attachment. */
void sb_api_file_link(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                      struct sb_http_reply *rep)
{
    int64_t id;
    if (!app->has_secret_key || sb_att_link_check(app->secret_key, req->params[0], &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such file, or the link has expired");
        return;
    }
    struct sb_db_val a[] = {SB_INT(id)};
    serve(db, q_by_link, a, 1, id, rep);
}

/* The first file part of a multipart/form-data body (RFC 7578): its name,
 * type and bytes (pointing into the body). 0 when found. */
static int multipart_file(const struct sb_http_request *req, char *name, size_t namelen, char *type,
                          size_t typelen, const char **data_r, size_t *len_r)
{
    const char *b = strcasestr(req->content_type, "boundary=");
    if (!b)
        return -1;
    char delim[200];
    b += 9;
    size_t bl = *b == '"' ? strcspn(b + 1, "\"") : strcspn(b, "; \t");
    if (*b == '"')
        b++;
    if (!bl || bl > 150)
        return -1;
    snprintf(delim, sizeof delim, "--%.*s", (int)bl, b);
    size_t dl = strlen(delim);
    const char *p = req->body, *end = req->body + req->body_len;
    for (;;) {
        const char *s = memmem(p, (size_t)(end - p), delim, dl);
        if (!s)
            return -1;
        s += dl;
        if (end - s >= 2 && s[0] == '-' && s[1] == '-')
            return -1; /* the closing delimiter: no file part */
        const char *h = memmem(s, (size_t)(end - s), "\r\n\r\n", 4);
        if (!h)
            return -1;
        const char *body = h + 4;
        char nd[220];
        snprintf(nd, sizeof nd, "\r\n%s", delim);
        const char *e = memmem(body, (size_t)(end - body), nd, strlen(nd));
        if (!e)
            return -1;
        /* The part's headers, as one string to search. */
        char hdr[2048];
        snprintf(hdr, sizeof hdr, "%.*s", (int)(h - s), s);
        const char *fn = strcasestr(hdr, "filename=\"");
        if (fn) {
            fn += 10;
            snprintf(name, namelen, "%.*s", (int)strcspn(fn, "\""), fn);
            /* Browsers write '"' as %22 in names (HTML's multipart rules). */
            for (char *q = strstr(name, "%22"); q; q = strstr(q + 1, "%22")) {
                *q = '"';
                memmove(q + 1, q + 3, strlen(q + 3) + 1);
            }
            const char *ct = strcasestr(hdr, "\ncontent-type:");
            type[0] = '\0';
            if (ct) {
                ct += 14;
                ct += strspn(ct, " \t");
                snprintf(type, typelen, "%.*s", (int)strcspn(ct, "\r\n"), ct);
            }
            *data_r = body;
            *len_r = (size_t)(e - body);
            return 0;
        }
        p = e + 2;
    }
}

void sb_api_upload_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    char raw_name[512] = "", type[256] = "", name[256], err[256] = "";
    const char *data = req->body;
    size_t len = req->body_len;
    if (!strncasecmp(req->content_type, "multipart/form-data", 19)) {
        if (multipart_file(req, raw_name, sizeof raw_name, type, sizeof type, &data, &len) != 0) {
            sb_reply_error(rep, SB_ERR_INVALID, "the multipart body has no file part");
            return;
        }
    } else {
        sb_request_query(req, "filename", raw_name, sizeof raw_name);
        snprintf(type, sizeof type, "%s", req->content_type);
    }
    if (!data || !len) {
        sb_reply_error(rep, SB_ERR_INVALID, "an empty file (send its bytes as the body)");
        return;
    }
    if (len > SB_UPLOAD_MAX) {
        sb_reply_error(rep, SB_ERR_TOO_LARGE, "the file is over the limit of %d bytes",
                       SB_UPLOAD_MAX);
        return;
    }
    sb_att_filename_clean(raw_name, name, sizeof name);
    const char *stored = sb_att_sniff((const unsigned char *)data, len, type);
    int64_t id;
    int rc = sb_att_upload_store(db, req->user.id, name, stored, data, len, &id, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "store upload", err);
        return;
    }
    sb_reply_json(rep, 201,
                  json_pack("{s:I,s:s,s:s,s:I}", "id", (json_int_t)id, "filename", name,
                            "content_type", stored, "size", (json_int_t)len));
}
