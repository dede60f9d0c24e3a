/* Campaigns over HTTP (docs/campaigns.md): segments, templates and
 * campaigns for marketers and admins, and the public links in campaign mail
 * (unsubscribe, open pixel, click redirect, view in browser). */
#include "switchboard/api.h"
#include "switchboard/apiutil.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/campaign.h"
#include "switchboard/campaign_send.h"
#include "switchboard/channel.h"
#include "switchboard/channel_store.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/log.h"
#include "switchboard/sender.h"
#include "switchboard/template.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 255

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int need_name(const json_t *body, struct sb_http_reply *rep, const char **name_r)
{
    const char *name = jstr(body, "name");
    if (!name || !*name || strlen(name) > NAME_MAX_LEN) {
        sb_reply_error(rep, SB_ERR_INVALID, "name: a string of 1-%d characters", NAME_MAX_LEN);
        return -1;
    }
    *name_r = name;
    return 0;
}

/* A PATCH body names only fields the resource has: a typo is an error, not
 * a silent no-op. */
static int only_keys(const json_t *body, const char *const *keys, struct sb_http_reply *rep)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], k))
            i++;
        if (!keys[i]) {
            sb_reply_error(rep, SB_ERR_INVALID, "unknown field \"%s\"", k);
            return -1;
        }
    }
    if (!json_object_size(body)) {
        sb_reply_error(rep, SB_ERR_INVALID, "nothing to change: the body names no field");
        return -1;
    }
    return 0;
}

static int path_id(const struct sb_http_request *req, struct sb_http_reply *rep, const char *what,
                   int64_t *id_r)
{
    if (sb_request_param_id(req, 0, id_r) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such %s", what);
        return -1;
    }
    return 0;
}

/* The end of an edit's transaction: commit on success, roll back
 * otherwise; the caller's mistake (400/404/409) is told as such. */
static int finish_txn(struct sb_db *db, int rc, struct sb_http_reply *rep, const char *what,
                      char *err, size_t errlen)
{
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, errlen);
    else
        sb_db_rollback(db);
    if (rc != SB_OK)
        sb_reply_result(rep, rc, what, err);
    return rc;
}

/* Delete a segment or template nobody live needs: the row is locked first,
 * so a campaign created or edited meanwhile to use it waits on the lock and
 * then finds it gone (its foreign key refuses); finished and cancelled
 * campaigns keep their history with NULL there (009_campaign_edits.sql). */
struct unused_delete {
    const char *what, *lock, *users, *del, *audit;
};

static void delete_unused(struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep, const struct unused_delete *d)
{
    int64_t id;
    if (path_id(req, rep, d->what, &id) != 0)
        return;
    char err[256] = "";
    struct sb_db_val a = SB_INT(id);
    struct sb_db_rows r = {0};
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, d->lock, &a, 1, &r, err, sizeof err);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such %s", d->what);
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_exec(db, d->users, &a, 1, &r, err, sizeof err);
    if (rc == SB_OK && r.nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_EXISTS,
                     "the %s is used by %zu campaign(s) not finished or cancelled (campaign "
                     "%lld is %s); finish or cancel them first",
                     d->what, r.nrows, (long long)sb_db_cell_int(&r, 0, 0), sb_db_cell(&r, 0, 1));
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_exec(db, d->del, &a, 1, NULL, err, sizeof err);
    char doing[64];
    snprintf(doing, sizeof doing, "delete %s", d->what);
    if (finish_txn(db, rc, rep, doing, err, sizeof err) != SB_OK)
        return;
    sb_audit(db, req->user.id, d->audit, d->what, id, req->peer);
    rep->status = 204;
}

/* -- Segments ---------------------------------------------------------------- */

static const char q_segment_insert[] =
    "INSERT INTO segments (name, filter, created_by) VALUES (?, ?, ?)";
static const char q_segment_get[] =
    "SELECT id, name, filter, created_at FROM segments WHERE id = ?";
static const char q_segment_list[] =
    "SELECT id, name, filter, created_at FROM segments WHERE (? IS NULL OR id < ?) ORDER BY id "
    "DESC LIMIT ?";

static json_t *segment_json(const struct sb_db_rows *r, size_t i)
{
    json_error_t je;
    json_t *f = json_loads(sb_db_cell(r, i, 2) ? sb_db_cell(r, i, 2) : "{}", 0, &je);
    return json_pack("{s:o, s:o, s:o, s:o}", "id", sb_json_cell_int(r, i, 0), "name",
                     sb_json_cell(r, i, 1), "filter", f ? f : json_object(), "created_at",
                     sb_json_cell(r, i, 3));
}

void sb_api_segments_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *name;
    char err[256] = "";
    struct sb_segment_filter f;
    json_t *filter = json_object_get(body, "filter");
    if (need_name(body, rep, &name) != 0)
        goto out;
    if (sb_segment_filter_parse(filter, &f, err, sizeof err) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "filter: %s", err);
        goto out;
    }
    json_t *empty = json_object();
    char *ftext = json_dumps(filter ? filter : empty, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(empty);
    int64_t count = 0;
    struct sb_db_rows r = {0};
    struct sb_db_val a[] = {SB_TEXT(name), SB_TEXT(ftext ? ftext : "{}"), SB_INT(req->user.id)};
    int rc = sb_db_exec(db, q_segment_insert, a, 3, &r, err, sizeof err);
    int64_t id = (int64_t)r.insert_id;
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_segment_count(db, &f, &count, err, sizeof err);
    sb_segment_filter_free(&f);
    free(ftext);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "create segment", err);
        goto out;
    }
    sb_reply_json(rep, 201,
                  json_pack("{s:I, s:s, s:O, s:I}", "id", (json_int_t)id, "name", name, "filter",
                            filter ? filter : json_object(), "count", (json_int_t)count));
out:
    json_decref(body);
}

/* The live count of the segment editor: the same filter rules as a saved
 * segment, nothing stored. */
void sb_api_segments_count(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    char err[256] = "";
    struct sb_segment_filter f;
    if (sb_segment_filter_parse(json_object_get(body, "filter"), &f, err, sizeof err) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "filter: %s", err);
        json_decref(body);
        return;
    }
    int64_t count = 0;
    int rc = sb_segment_count(db, &f, &count, err, sizeof err);
    sb_segment_filter_free(&f);
    json_decref(body);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "count segment", err);
        return;
    }
    sb_reply_json(rep, 200, json_pack("{s:I}", "count", (json_int_t)count));
}

void sb_api_segments_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    sb_api_list(db, req, rep, q_segment_list, segment_json, "segments");
}

/* The segment as stored, with the count of what it selects now. */
static void segment_reply(struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    int64_t id;
    struct sb_db_rows r;
    if (sb_api_load_by_id(db, req, rep, q_segment_get, "segment", &id, &r) != 0)
        return;
    json_t *out = segment_json(&r, 0);
    sb_db_rows_free(&r);
    struct sb_segment_filter f;
    int64_t count = 0;
    char err[256] = "";
    int rc = sb_segment_filter_parse(json_object_get(out, "filter"), &f, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_segment_count(db, &f, &count, err, sizeof err);
    sb_segment_filter_free(&f);
    if (rc != SB_OK) {
        json_decref(out);
        sb_reply_result(rep, rc, "count segment", err);
        return;
    }
    json_object_set_new(out, "count", json_integer(count));
    sb_reply_json(rep, 200, out);
}

void sb_api_segments_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    (void)app;
    segment_reply(db, req, rep);
}

static const char q_segment_lock[] = "SELECT id FROM segments WHERE id = ? FOR UPDATE";
static const char q_segment_update[] =
    "UPDATE segments SET name = COALESCE(?, name), filter = COALESCE(?, filter) WHERE id = ?";
static const char q_scheduled_by_segment[] =
    "SELECT id FROM campaigns WHERE segment_id = ? AND status = 'scheduled' ORDER BY id";

/* Every scheduled campaign in `sql`'s answer (ids of one segment or
 * template) made again from what it uses now. */
static int refresh_scheduled(struct sb_db *db, const char *sql, int64_t id, char *err,
                             size_t errlen)
{
    struct sb_db_val a = SB_INT(id);
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, &a, 1, &r, err, errlen);
    for (size_t i = 0; rc == SB_OK && i < r.nrows; i++)
        rc = sb_campaign_refresh(db, sb_db_cell_int(&r, i, 0), err, errlen);
    sb_db_rows_free(&r);
    return rc;
}

void sb_api_segments_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    (void)app;
    static const char *const keys[] = {"name", "filter", NULL};
    int64_t id;
    json_t *body;
    if (path_id(req, rep, "segment", &id) != 0 || sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *name = NULL;
    char *ftext = NULL, err[256] = "";
    json_t *filter = json_object_get(body, "filter");
    if (only_keys(body, keys, rep) != 0 ||
        (json_object_get(body, "name") && need_name(body, rep, &name) != 0))
        goto out;
    if (filter) {
        struct sb_segment_filter f;
        if (sb_segment_filter_parse(filter, &f, err, sizeof err) != SB_OK) {
            sb_reply_error(rep, SB_ERR_INVALID, "filter: %s", err);
            goto out;
        }
        sb_segment_filter_free(&f);
        json_t *empty = json_object();
        ftext = json_dumps(json_is_null(filter) ? empty : filter, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(empty);
        if (!ftext) {
            sb_reply_error(rep, SB_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    struct sb_db_val ia = SB_INT(id);
    struct sb_db_rows r = {0};
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_segment_lock, &ia, 1, &r, err, sizeof err);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such segment");
    sb_db_rows_free(&r);
    struct sb_db_val a[] = {name ? SB_TEXT(name) : SB_NULL, ftext ? SB_TEXT(ftext) : SB_NULL, ia};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_segment_update, a, 3, NULL, err, sizeof err);
    /* Scheduled campaigns have sent nothing yet: they take the new filter.
     * Running, paused and finished ones keep the recipients they have. */
    if (rc == SB_OK && ftext)
        rc = refresh_scheduled(db, q_scheduled_by_segment, id, err, sizeof err);
    if (finish_txn(db, rc, rep, "update segment", err, sizeof err) != SB_OK)
        goto out;
    sb_audit(db, req->user.id, "segment.update", "segment", id, req->peer);
    segment_reply(db, req, rep);
out:
    free(ftext);
    json_decref(body);
}

void sb_api_segments_delete(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    static const struct unused_delete d = {
        .what = "segment",
        .lock = "SELECT id FROM segments WHERE id = ? FOR UPDATE",
        .users = "SELECT id, status FROM campaigns WHERE segment_id = ? AND status NOT IN "
                 "('finished', 'cancelled') ORDER BY id LOCK IN SHARE MODE",
        .del = "DELETE FROM segments WHERE id = ?",
        .audit = "segment.delete"};
    delete_unused(db, req, rep, &d);
}

/* -- Templates ------------------------------------------------------------------ */

static const char q_template_insert[] =
    "INSERT INTO templates (name, subject, html, text, created_by) VALUES (?, ?, ?, ?, ?)";
static const char q_template_get[] =
    "SELECT id, name, subject, html, text, created_at FROM templates WHERE id = ?";
static const char q_template_list[] =
    "SELECT id, name, subject, created_at FROM templates WHERE (? IS NULL OR id < ?) ORDER BY id "
    "DESC LIMIT ?";
static const char q_client_for_preview[] =
    "SELECT c.name, c.custom_fields, (SELECT e.value FROM client_identities e WHERE e.client_id = "
    "c.id AND e.kind = 'email' AND e.verified = 1 ORDER BY e.id LIMIT 1) FROM clients c WHERE "
    "c.id = ?";

void sb_api_templates_create(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *name, *subject = jstr(body, "subject"), *html = jstr(body, "html"),
                      *text = jstr(body, "text");
    char err[300] = "";
    if (need_name(body, rep, &name) != 0)
        goto out;
    if (!subject || !*subject || strlen(subject) > 998) {
        sb_reply_error(rep, SB_ERR_INVALID, "subject: a string of 1-998 characters");
        goto out;
    }
    if ((!html || !*html) && (!text || !*text)) {
        sb_reply_error(rep, SB_ERR_INVALID, "a template needs html or text (or both)");
        goto out;
    }
    const char *parts[] = {subject, html, text}, *names[] = {"subject", "html", "text"};
    for (int i = 0; i < 3; i++)
        if (sb_tpl_check(parts[i], err, sizeof err) != SB_OK) {
            sb_reply_error(rep, SB_ERR_INVALID, "%s: %s", names[i], err);
            goto out;
        }
    struct sb_db_val a[] = {SB_TEXT(name), SB_TEXT(subject), SB_TEXT(html), SB_TEXT(text),
                            SB_INT(req->user.id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_template_insert, a, 5, &r, err, sizeof err);
    int64_t id = (int64_t)r.insert_id;
    sb_db_rows_free(&r);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "create template", err);
        goto out;
    }
    sb_reply_json(rep, 201,
                  json_pack("{s:I, s:s, s:s, s:s?, s:s?}", "id", (json_int_t)id, "name", name,
                            "subject", subject, "html", html, "text", text));
out:
    json_decref(body);
}

static json_t *template_row_json(const struct sb_db_rows *r, size_t i)
{
    return json_pack("{s:o, s:o, s:o, s:o}", "id", sb_json_cell_int(r, i, 0), "name",
                     sb_json_cell(r, i, 1), "subject", sb_json_cell(r, i, 2), "created_at",
                     sb_json_cell(r, i, 3));
}

void sb_api_templates_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    (void)app;
    sb_api_list(db, req, rep, q_template_list, template_row_json, "templates");
}

static int load_template(struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep, struct sb_db_rows *r)
{
    int64_t id;
    return sb_api_load_by_id(db, req, rep, q_template_get, "template", &id, r);
}

static void template_reply(struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    struct sb_db_rows r;
    if (load_template(db, req, rep, &r) != 0)
        return;
    sb_reply_json(rep, 200,
                  json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", sb_json_cell_int(&r, 0, 0),
                            "name", sb_json_cell(&r, 0, 1), "subject", sb_json_cell(&r, 0, 2),
                            "html", sb_json_cell(&r, 0, 3), "text", sb_json_cell(&r, 0, 4),
                            "created_at", sb_json_cell(&r, 0, 5)));
    sb_db_rows_free(&r);
}

void sb_api_templates_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    template_reply(db, req, rep);
}

static const char q_template_lock[] =
    "SELECT name, subject, html, text FROM templates WHERE id = ? FOR UPDATE";
static const char q_template_update[] =
    "UPDATE templates SET name = ?, subject = ?, html = ?, text = ? WHERE id = ?";
/* Campaigns copy their template when they start (004_campaigns.sql), and
 * the sender reads only that copy: a running or paused campaign goes on
 * with what it started with. A scheduled one has sent nothing and takes
 * the edit. */
static const char q_template_to_scheduled[] =
    "UPDATE campaigns SET subject = ?, html = ?, text = ? WHERE template_id = ? AND status = "
    "'scheduled'";

/* The checks of a new template, on the template as it will be after the
 * edit. */
static int template_valid(const char *name, const char *subject, const char *html, const char *text,
                          char *err, size_t errlen)
{
    if (!name || !*name || strlen(name) > NAME_MAX_LEN)
        return sb_fail(err, errlen, SB_ERR_INVALID, "name: a string of 1-%d characters",
                       NAME_MAX_LEN);
    if (!subject || !*subject || strlen(subject) > 998)
        return sb_fail(err, errlen, SB_ERR_INVALID, "subject: a string of 1-998 characters");
    if ((!html || !*html) && (!text || !*text))
        return sb_fail(err, errlen, SB_ERR_INVALID, "a template needs html or text (or both)");
    const char *parts[] = {subject, html, text}, *names[] = {"subject", "html", "text"};
    char why[200] = "";
    for (int i = 0; i < 3; i++)
        if (sb_tpl_check(parts[i], why, sizeof why) != SB_OK)
            return sb_fail(err, errlen, SB_ERR_INVALID, "%s: %s", names[i], why);
    return SB_OK;
}

void sb_api_templates_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    static const char *const keys[] = {"name", "subject", "html", "text", NULL};
    int64_t id;
    json_t *body;
    if (path_id(req, rep, "template", &id) != 0 || sb_request_json(req, rep, &body) != SB_OK)
        return;
    char err[300] = "";
    if (only_keys(body, keys, rep) != 0)
        goto out;
    /* name and subject are strings; html and text may also be null (or "")
     * to drop that part. */
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(body, keys[i]);
        if (v && !json_is_string(v) && !(i >= 2 && json_is_null(v))) {
            sb_reply_error(rep, SB_ERR_INVALID, "%s: a string%s", keys[i],
                           i >= 2 ? " or null" : "");
            goto out;
        }
    }
    struct sb_db_val ia = SB_INT(id);
    struct sb_db_rows r = {0};
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_template_lock, &ia, 1, &r, err, sizeof err);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such template");
    const char *v[4] = {0};
    for (int i = 0; rc == SB_OK && i < 4; i++) {
        json_t *j = json_object_get(body, keys[i]);
        v[i] = j ? json_string_value(j) : sb_db_cell(&r, 0, (size_t)i);
        if (i >= 2 && v[i] && !*v[i])
            v[i] = NULL;
    }
    if (rc == SB_OK)
        rc = template_valid(v[0], v[1], v[2], v[3], err, sizeof err);
    struct sb_db_val a[] = {SB_TEXT(v[0]), SB_TEXT(v[1]), SB_TEXT(v[2]), SB_TEXT(v[3]), ia};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_template_update, a, 5, NULL, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_template_to_scheduled, a + 1, 4, NULL, err, sizeof err);
    sb_db_rows_free(&r);
    if (finish_txn(db, rc, rep, "update template", err, sizeof err) != SB_OK)
        goto out;
    sb_audit(db, req->user.id, "template.update", "template", id, req->peer);
    template_reply(db, req, rep);
out:
    json_decref(body);
}

void sb_api_templates_delete(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    static const struct unused_delete d = {
        .what = "template",
        .lock = "SELECT id FROM templates WHERE id = ? FOR UPDATE",
        .users = "SELECT id, status FROM campaigns WHERE template_id = ? AND status NOT IN "
                 "('finished', 'cancelled') ORDER BY id LOCK IN SHARE MODE",
        .del = "DELETE FROM templates WHERE id = ?",
        .audit = "template.delete"};
    delete_unused(db, req, rep, &d);
}

static int app_key(struct sb_app *app, struct sb_http_reply *rep, unsigned char key[32])
{
    if (!app->has_secret_key) {
        if (rep)
            sb_reply_error_status(rep, 500, "not_configured",
                                  "security.secret_key is not set: campaign links cannot be "
                                  "signed");
        return -1;
    }
    sb_camp_key(app->secret_key, key);
    return 0;
}

void sb_api_templates_preview(struct sb_app *app, struct sb_db *db,
                              const struct sb_http_request *req, struct sb_http_reply *rep)
{
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    struct sb_db_rows t = {0}, c = {0};
    unsigned char key[32];
    char err[256] = "";
    if (app_key(app, rep, key) != 0 || load_template(db, req, rep, &t) != 0)
        goto out;
    json_t *cid = json_object_get(body, "client_id");
    if (cid && !json_is_integer(cid)) {
        sb_reply_error(rep, SB_ERR_INVALID, "client_id: an integer");
        goto out;
    }
    if (cid) {
        struct sb_db_val a = SB_INT(json_integer_value(cid));
        int rc = sb_db_exec(db, q_client_for_preview, &a, 1, &c, err, sizeof err);
        if (rc == SB_OK && !c.nrows)
            rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such client");
        if (rc != SB_OK) {
            sb_reply_result(rep, rc, "load client", err);
            goto out;
        }
    }
    struct sb_camp_render_in in = {.key = key,
                                   .public_url = app->cfg->public_url,
                                   .subject = sb_db_cell(&t, 0, 2),
                                   .html = sb_db_cell(&t, 0, 3),
                                   .text = sb_db_cell(&t, 0, 4),
                                   .name = c.nrows ? sb_db_cell(&c, 0, 0) : NULL,
                                   .custom_json = c.nrows ? sb_db_cell(&c, 0, 1) : NULL,
                                   .email = c.nrows ? sb_db_cell(&c, 0, 2) : NULL};
    struct sb_camp_render_out o;
    int rc = sb_camp_render(&in, &o, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "render template", err);
        goto out;
    }
    sb_reply_json(
        rep, 200,
        json_pack("{s:s, s:s?, s:s?}", "subject", o.subject, "html", o.html, "text", o.text));
    sb_camp_render_free(&o);
out:
    sb_db_rows_free(&t);
    sb_db_rows_free(&c);
    json_decref(body);
}

/* One message to a given address through the channel's SMTP side, exactly
 * as the reply sender would submit it. Blocks this worker for the transfer. */
void sb_api_templates_test(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    struct sb_db_rows t = {0};
    struct sb_channel *ch = NULL;
    struct sb_send_req sreq = {0};
    json_t *payload = NULL;
    unsigned char key[32];
    char err[512] = "";
    const char *to = jstr(body, "to");
    json_t *chid = json_object_get(body, "channel_id");
    if (app_key(app, rep, key) != 0 || load_template(db, req, rep, &t) != 0)
        goto out;
    if (!to || !*to || !json_is_integer(chid)) {
        sb_reply_error(rep, SB_ERR_INVALID, "channel_id (an email channel) and to are required");
        goto out;
    }
    int rc = sb_channel_load(db, app->secret_key, json_integer_value(chid), "email", &ch, err,
                             sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc == SB_ERR_NOT_FOUND ? SB_ERR_INVALID : rc, "load channel",
                        rc == SB_ERR_NOT_FOUND ? "channel_id: no such email channel" : err);
        goto out;
    }
    struct sb_camp_render_in in = {.key = key,
                                   .public_url = app->cfg->public_url,
                                   .subject = sb_db_cell(&t, 0, 2),
                                   .html = sb_db_cell(&t, 0, 3),
                                   .text = sb_db_cell(&t, 0, 4),
                                   .email = to};
    struct sb_camp_render_out o;
    rc = sb_camp_render(&in, &o, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "render template", err);
        goto out;
    }
    char subj[1100];
    snprintf(subj, sizeof subj, "[TEST] %s", o.subject);
    payload = json_pack("{s:s, s:s, s:s?}", "to", to, "subject", subj, "html", o.html);
    struct sb_outbound msg = {.to = to, .text = o.text, .payload = payload};
    rc = ch->kind->send_prepare(ch, &msg, &sreq, err, sizeof err);
    sb_camp_render_free(&o);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "prepare test message", err);
        goto out;
    }
    long status = 0;
    char *answer = NULL;
    size_t alen = 0;
    rc = sb_send_once(&sreq, &status, &answer, &alen, err, sizeof err);
    free(answer);
    if (rc != SB_OK || status < 200 || status >= 300) {
        sb_reply_error_status(rep, 502, "send_failed", err[0] ? err : "the SMTP server refused");
        goto out;
    }
    sb_reply_json(rep, 200, json_pack("{s:b, s:i}", "sent", 1, "smtp_status", (int)status));
out:
    sb_send_req_free(&sreq);
    json_decref(payload);
    sb_channel_free(&ch);
    sb_db_rows_free(&t);
    json_decref(body);
}

/* -- Channels for marketers --------------------------------------------------------------- */

/* Marketers pick the sending channel and the channel of origin by name, but
 * the channel list proper (settings, endpoints) is for admins: this is
 * names and kinds only. */
static const char q_channel_names[] =
    "SELECT id, kind, name, enabled FROM channels ORDER BY kind, name, id";

void sb_api_channel_names(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app, (void)req;
    struct sb_db_rows r;
    char err[256] = "";
    int rc = sb_db_exec(db, q_channel_names, NULL, 0, &r, err, sizeof err);
    if (rc != SB_OK) {
        sb_db_rows_free(&r);
        sb_reply_failure(rep, rc, "list channels", err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < r.nrows; i++)
        json_array_append_new(
            items, json_pack("{s:o, s:o, s:o, s:b}", "id", sb_json_cell_int(&r, i, 0), "kind",
                             sb_json_cell(&r, i, 1), "name", sb_json_cell(&r, i, 2), "enabled",
                             sb_db_cell_int(&r, i, 3) != 0));
    sb_db_rows_free(&r);
    sb_reply_json(rep, 200, json_pack("{s:o}", "items", items));
}

/* -- Campaigns --------------------------------------------------------------------- */

static const char q_campaign_insert[] =
    "INSERT INTO campaigns (name, segment_id, template_id, channel_id, send_at, rate_per_second, "
    "mid_salt, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
static const char q_campaign_refs[] =
    "SELECT (SELECT COUNT(*) FROM segments WHERE id = ?), (SELECT COUNT(*) FROM templates WHERE "
    "id = ?), (SELECT COUNT(*) FROM channels WHERE id = ? AND kind = 'email')";
static const char q_campaign_get[] =
    "SELECT id, name, segment_id, template_id, channel_id, status, send_at, rate_per_second, "
    "recipients, started_at, finished_at, created_at FROM campaigns WHERE id = ?";
static const char q_campaign_list[] =
    "SELECT id, name, segment_id, template_id, channel_id, status, send_at, rate_per_second, "
    "recipients, started_at, finished_at, created_at FROM campaigns WHERE (? IS NULL OR id < ?) "
    "ORDER BY id DESC LIMIT ?";
static const char q_campaign_exists[] = "SELECT 1 FROM campaigns WHERE id = ?";
/* -- name: campaign-recipients-csv
 * One outcome per recipient, strongest first. */
static const char q_recipients_csv[] =
    "SELECT r.id, r.client_id, r.email, CASE WHEN r.unsubscribed_at IS NOT NULL THEN "
    "'unsubscribed' WHEN r.bounce = 'complaint' THEN 'complained' WHEN r.bounce = 'hard' THEN "
    "'bounced_hard' WHEN r.bounce = 'soft' THEN 'bounced_soft' WHEN r.clicked_at IS NOT NULL "
    "THEN 'clicked' WHEN r.opened_at IS NOT NULL THEN 'opened' ELSE r.status END, r.status, "
    "r.attempts, r.message_id, r.sent_at, r.opened_at, r.clicked_at, r.unsubscribed_at, "
    "r.bounce, r.last_error FROM campaign_recipients r WHERE r.campaign_id = ? AND r.id > ? "
    "ORDER BY r.id LIMIT 5000";

static json_t *campaign_json(const struct sb_db_rows *r, size_t i)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                     sb_json_cell_int(r, i, 0), "name", sb_json_cell(r, i, 1), "segment_id",
                     sb_json_cell_int(r, i, 2), "template_id", sb_json_cell_int(r, i, 3),
                     "channel_id", sb_json_cell_int(r, i, 4), "status", sb_json_cell(r, i, 5),
                     "send_at", sb_json_cell(r, i, 6), "rate_per_second", sb_json_cell_int(r, i, 7),
                     "recipients", sb_json_cell_int(r, i, 8), "started_at", sb_json_cell(r, i, 9),
                     "finished_at", sb_json_cell(r, i, 10), "created_at", sb_json_cell(r, i, 11));
}

static int get_id(const json_t *body, const char *key, int64_t *id_r)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return -1;
    *id_r = json_integer_value(v);
    return 0;
}

/* send_at as SQL text into out[32] ("" when absent or null); -1 after a
 * 400 in `rep`. */
static int read_send_at(const json_t *sa, char *out, struct sb_http_reply *rep)
{
    out[0] = '\0';
    if (!sa || json_is_null(sa))
        return 0;
    /* The segment filter's date reader: one format everywhere. */
    json_t *f = json_pack("{s:O}", "created_after", sa);
    struct sb_segment_filter sf;
    char err[256] = "";
    int rc = sb_segment_filter_parse(f, &sf, err, sizeof err);
    json_decref(f);
    if (rc != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID,
                       "send_at: a date and time (UTC) like 2026-01-31T10:00:00Z");
        return -1;
    }
    snprintf(out, 32, "%s", sf.created_after);
    sb_segment_filter_free(&sf);
    return 0;
}

static int read_rate(const json_t *rate, struct sb_http_reply *rep)
{
    if (rate && !json_is_null(rate) &&
        (!json_is_integer(rate) || json_integer_value(rate) < 0 ||
         json_integer_value(rate) > 100000)) {
        sb_reply_error(rep, SB_ERR_INVALID, "rate_per_second: 0 (no cap) to 100000");
        return -1;
    }
    return 0;
}

/* The segment, template and channel a campaign names exist (an e-mail
 * channel); SB_ERR_INVALID naming the first that does not. */
static int campaign_refs(struct sb_db *db, int64_t seg, int64_t tpl, int64_t chid, char *err,
                         size_t errlen)
{
    struct sb_db_val ra[] = {SB_INT(seg), SB_INT(tpl), SB_INT(chid)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_campaign_refs, ra, 3, &r, err, errlen);
    if (rc == SB_OK &&
        (!sb_db_cell_int(&r, 0, 0) || !sb_db_cell_int(&r, 0, 1) || !sb_db_cell_int(&r, 0, 2)))
        rc = sb_fail(err, errlen, SB_ERR_INVALID, "%s",
                     !sb_db_cell_int(&r, 0, 0)   ? "segment_id: no such segment"
                     : !sb_db_cell_int(&r, 0, 1) ? "template_id: no such template"
                                                 : "channel_id: no such email channel");
    sb_db_rows_free(&r);
    return rc;
}

void sb_api_campaigns_create(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *name;
    int64_t seg, tpl, chid;
    char err[256] = "", send_at[32] = "";
    if (need_name(body, rep, &name) != 0)
        goto out;
    if (get_id(body, "segment_id", &seg) || get_id(body, "template_id", &tpl) ||
        get_id(body, "channel_id", &chid)) {
        sb_reply_error(rep, SB_ERR_INVALID, "segment_id, template_id and channel_id are required");
        goto out;
    }
    json_t *rate = json_object_get(body, "rate_per_second");
    if (read_rate(rate, rep) != 0)
        goto out;
    if (read_send_at(json_object_get(body, "send_at"), send_at, rep) != 0)
        goto out;
    struct sb_db_rows r;
    int rc = campaign_refs(db, seg, tpl, chid, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "create campaign", err);
        goto out;
    }
    unsigned char rnd[8];
    char salt[17];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(salt, sizeof salt, rnd, sizeof rnd);
    struct sb_db_val a[] = {SB_TEXT(name),
                            SB_INT(seg),
                            SB_INT(tpl),
                            SB_INT(chid),
                            send_at[0] ? SB_TEXT(send_at) : SB_NULL,
                            SB_INT(json_is_integer(rate) ? json_integer_value(rate) : 0),
                            SB_TEXT(salt),
                            SB_INT(req->user.id)};
    rc = sb_db_exec(db, q_campaign_insert, a, 8, &r, err, sizeof err);
    int64_t id = (int64_t)r.insert_id;
    sb_db_rows_free(&r);
    struct sb_db_val ia = SB_INT(id);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_campaign_get, &ia, 1, &r, err, sizeof err);
    if (rc != SB_OK || !r.nrows) {
        sb_db_rows_free(&r);
        sb_reply_failure(rep, rc ? rc : SB_ERR_INTERNAL, "create campaign", err);
        goto out;
    }
    sb_audit(db, req->user.id, "campaign.create", "campaign", id, req->peer);
    sb_reply_json(rep, 201, campaign_json(&r, 0));
    sb_db_rows_free(&r);
out:
    json_decref(body);
}

void sb_api_campaigns_list(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    (void)app;
    sb_api_list(db, req, rep, q_campaign_list, campaign_json, "campaigns");
}

void sb_api_campaigns_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    struct sb_db_rows r;
    if (sb_api_load_by_id(db, req, rep, q_campaign_get, "campaign", &id, &r) != 0)
        return;
    json_t *out = campaign_json(&r, 0);
    sb_db_rows_free(&r);
    json_t *stats = NULL;
    char err[256] = "", hourly[4] = "";
    /* ?hourly=1: the chart's series too, so the campaign page polls with
     * one request. */
    int with_hourly =
        sb_request_query(req, "hourly", hourly, sizeof hourly) == 0 && !strcmp(hourly, "1");
    if (sb_campaign_stats(db, id, &stats, err, sizeof err) == SB_OK) {
        if (!with_hourly)
            json_object_del(stats, "hourly");
        json_object_set_new(out, "stats", stats);
    }
    sb_reply_json(rep, 200, out);
}

static const char q_campaign_lock[] =
    "SELECT status, segment_id, template_id, channel_id, send_at IS NOT NULL FROM campaigns "
    "WHERE id = ? FOR UPDATE";
/* COALESCE keeps what the body leaves out; send_at has three states
 * (absent, null, a time), so it carries a flag of its own. */
static const char q_campaign_update[] =
    "UPDATE campaigns SET name = COALESCE(?, name), segment_id = ?, template_id = ?, channel_id = "
    "?, send_at = IF(?, ?, send_at), rate_per_second = COALESCE(?, rate_per_second) WHERE id = ?";

static void campaign_reply(struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    int64_t id;
    struct sb_db_rows r;
    if (sb_api_load_by_id(db, req, rep, q_campaign_get, "campaign", &id, &r) != 0)
        return;
    sb_reply_json(rep, 200, campaign_json(&r, 0));
    sb_db_rows_free(&r);
}

static int campaign_event(struct sb_db *db, int64_t id, const char *status, int64_t user_id,
                          char *err, size_t errlen)
{
    return sb_event_append(db, "campaign.updated", 0, 0, user_id,
                           json_pack("{s:I, s:s}", "campaign_id", (json_int_t)id, "status", status),
                           err, errlen);
}

/* Only before the campaign sends: a draft, or a scheduled campaign (which
 * is then made again from its segment and template, sb_campaign_refresh). */
void sb_api_campaigns_patch(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    static const char *const keys[] = {"name",    "segment_id",      "template_id", "channel_id",
                                       "send_at", "rate_per_second", NULL};
    int64_t id;
    json_t *body;
    if (path_id(req, rep, "campaign", &id) != 0 || sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *name = NULL;
    char err[256] = "", send_at[32] = "";
    int64_t ref[3] = {0};
    json_t *rate = json_object_get(body, "rate_per_second"), *sa = json_object_get(body, "send_at");
    if (only_keys(body, keys, rep) != 0 ||
        (json_object_get(body, "name") && need_name(body, rep, &name) != 0) ||
        read_rate(rate, rep) != 0 || read_send_at(sa, send_at, rep) != 0)
        goto out;
    for (int i = 0; i < 3; i++)
        if (json_object_get(body, keys[1 + i]) && get_id(body, keys[1 + i], &ref[i]) != 0) {
            sb_reply_error(rep, SB_ERR_INVALID, "%s: an id", keys[1 + i]);
            goto out;
        }
    struct sb_db_val ia = SB_INT(id);
    struct sb_db_rows r = {0};
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_campaign_lock, &ia, 1, &r, err, sizeof err);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such campaign");
    char status[16] = "";
    if (rc == SB_OK) {
        snprintf(status, sizeof status, "%s", sb_db_cell(&r, 0, 0));
        if (strcmp(status, "draft") && strcmp(status, "scheduled"))
            rc =
                sb_fail(err, sizeof err, SB_ERR_EXISTS,
                        "only a draft or scheduled campaign can be edited; this one is %s", status);
        for (int i = 0; i < 3; i++)
            if (!ref[i])
                ref[i] = sb_db_cell_int(&r, 0, 1 + (size_t)i);
    }
    /* A scheduled campaign waits for send_at: without one it would wait
     * for ever. */
    if (rc == SB_OK && !strcmp(status, "scheduled") && sa && json_is_null(sa))
        rc = sb_fail(err, sizeof err, SB_ERR_INVALID,
                     "send_at: a scheduled campaign needs one (pause or cancel it instead)");
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = campaign_refs(db, ref[0], ref[1], ref[2], err, sizeof err);
    struct sb_db_val a[] = {name ? SB_TEXT(name) : SB_NULL,
                            SB_INT(ref[0]),
                            SB_INT(ref[1]),
                            SB_INT(ref[2]),
                            SB_INT(sa != NULL),
                            send_at[0] ? SB_TEXT(send_at) : SB_NULL,
                            json_is_integer(rate) ? SB_INT(json_integer_value(rate)) : SB_NULL,
                            ia};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_campaign_update, a, 8, NULL, err, sizeof err);
    if (rc == SB_OK && !strcmp(status, "scheduled") &&
        (json_object_get(body, "segment_id") || json_object_get(body, "template_id")))
        rc = sb_campaign_refresh(db, id, err, sizeof err);
    if (rc == SB_OK)
        rc = campaign_event(db, id, status, req->user.id, err, sizeof err);
    if (finish_txn(db, rc, rep, "update campaign", err, sizeof err) != SB_OK)
        goto out;
    sb_audit(db, req->user.id, "campaign.update", "campaign", id, req->peer);
    campaign_reply(db, req, rep);
out:
    json_decref(body);
}

/* A draft only: once started a campaign has recipients and history, and
 * cancel is the way to stop it. */
void sb_api_campaigns_delete(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (path_id(req, rep, "campaign", &id) != 0)
        return;
    static const char q_del[] = "DELETE FROM campaigns WHERE id = ?";
    char err[256] = "";
    struct sb_db_val ia = SB_INT(id);
    struct sb_db_rows r = {0};
    int rc = sb_db_begin(db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_campaign_lock, &ia, 1, &r, err, sizeof err);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, sizeof err, SB_ERR_NOT_FOUND, "no such campaign");
    if (rc == SB_OK && strcmp(sb_db_cell(&r, 0, 0), "draft"))
        rc = sb_fail(err, sizeof err, SB_ERR_EXISTS,
                     "only a draft campaign can be deleted; this one is %s (cancel it instead)",
                     sb_db_cell(&r, 0, 0));
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_del, &ia, 1, NULL, err, sizeof err);
    if (rc == SB_OK)
        rc = campaign_event(db, id, "deleted", req->user.id, err, sizeof err);
    if (finish_txn(db, rc, rep, "delete campaign", err, sizeof err) != SB_OK)
        return;
    sb_audit(db, req->user.id, "campaign.delete", "campaign", id, req->peer);
    rep->status = 204;
}

void sb_api_campaigns_action(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    if (sb_request_param_id(req, 0, &id) != SB_OK) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such campaign");
        return;
    }
    static const char *const names[] = {"start", "pause", "resume", "cancel"};
    int action = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(req->params[1], names[i]))
            action = i;
    if (action < 0) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "no such action (start, pause, resume, cancel)");
        return;
    }
    char status[32], err[256] = "";
    int rc = sb_campaign_transition(db, id, (enum sb_camp_action)action, status, sizeof status, err,
                                    sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "campaign action", err);
        return;
    }
    char what[32];
    snprintf(what, sizeof what, "campaign.%s", names[action]);
    sb_audit(db, req->user.id, what, "campaign", id, req->peer);
    sb_reply_json(rep, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", status));
}

void sb_api_campaigns_stats(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                            struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    char err[256] = "";
    struct sb_db_rows r;
    if (sb_api_load_by_id(db, req, rep, q_campaign_exists, "campaign", &id, &r) != 0)
        return;
    sb_db_rows_free(&r);
    json_t *stats = NULL;
    int rc = sb_campaign_stats(db, id, &stats, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_result(rep, rc, "campaign stats", err);
        return;
    }
    json_object_set_new(stats, "campaign_id", json_integer(id));
    sb_reply_json(rep, 200, stats);
}

struct csv {
    char *p;
    size_t len, cap;
    int oom;
};

static void csv_put(struct csv *c, const char *s, size_t n)
{
    if (c->oom)
        return;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->p, cap);
        if (!p) {
            c->oom = 1;
            return;
        }
        c->p = p;
        c->cap = cap;
    }
    memcpy(c->p + c->len, s, n);
    c->len += n;
}

/* RFC 4180 quoting; a leading = + - @ is defused for spreadsheets. */
static void csv_cell(struct csv *c, const char *s, int last)
{
    s = s ? s : "";
    int quote = strpbrk(s, ",\"\r\n") != NULL || strchr("=+-@", s[0]) != NULL;
    if (quote)
        csv_put(c, "\"", 1);
    if (*s && strchr("=+-@", s[0]))
        csv_put(c, "'", 1);
    for (; *s; s++)
        csv_put(c, s, 1), *s == '"' ? csv_put(c, "\"", 1) : (void)0;
    if (quote)
        csv_put(c, "\"", 1);
    csv_put(c, last ? "\r\n" : ",", last ? 2 : 1);
}

void sb_api_campaigns_csv(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
    int64_t id;
    char err[256] = "";
    struct sb_db_rows r;
    if (sb_api_load_by_id(db, req, rep, q_campaign_exists, "campaign", &id, &r) != 0)
        return;
    sb_db_rows_free(&r);
    static const char *const head[] = {"recipient_id", "client_id",  "email",           "outcome",
                                       "status",       "attempts",   "message_id",      "sent_at",
                                       "opened_at",    "clicked_at", "unsubscribed_at", "bounce",
                                       "error"};
    struct csv c = {0};
    for (size_t i = 0; i < 13; i++)
        csv_cell(&c, head[i], i == 12);
    /* In pages of 5,000 rows: a worker never holds a whole big campaign's
     * result set at once besides the text itself. */
    int64_t after = 0;
    int rc;
    for (;;) {
        struct sb_db_val pa[] = {SB_INT(id), SB_INT(after)};
        rc = sb_db_exec(db, q_recipients_csv, pa, 2, &r, err, sizeof err);
        if (rc != SB_OK)
            break;
        for (size_t i = 0; i < r.nrows; i++)
            for (size_t k = 0; k < 13; k++)
                csv_cell(&c, sb_db_cell(&r, i, k), k == 12);
        size_t n = r.nrows;
        if (n)
            after = sb_db_cell_int(&r, n - 1, 0);
        sb_db_rows_free(&r);
        if (n < 5000)
            break;
    }
    if (rc != SB_OK || c.oom) {
        free(c.p);
        sb_reply_failure(rep, rc ? rc : SB_ERR_NOMEM, "export recipients", err);
        return;
    }
    rep->status = 200;
    rep->content_type = "text/csv; charset=utf-8";
    free(rep->body);
    rep->body = c.p;
    rep->body_len = c.len;
    char disp[96];
    snprintf(disp, sizeof disp, "attachment; filename=\"campaign-%lld-recipients.csv\"",
             (long long)id);
    sb_reply_header(rep, "Content-Disposition", disp);
}

/* -- Public links ---------------------------------------------------------------------- */

static void html_page(struct sb_http_reply *rep, int status, const char *title, const char *body)
{
    char *page = NULL;
    int n = asprintf(&page,
                     "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                     "content=\"width=device-width\"><title>%s</title></head><body style=\"font-"
                     "family:sans-serif;max-width:32em;margin:3em auto\">%s</body></html>",
                     title, body);
    if (n < 0) {
        sb_reply_error(rep, SB_ERR_NOMEM, "out of memory");
        return;
    }
    sb_reply_text(rep, status, "text/html; charset=utf-8", page, (size_t)n);
    free(page);
    sb_reply_header(rep, "Cache-Control", "no-store");
    sb_reply_header(rep, "Referrer-Policy", "no-referrer");
}

static int public_token(struct sb_app *app, const struct sb_http_request *req, int kind,
                        const char *url, int64_t *cid, int64_t *rid)
{
    unsigned char key[32];
    if (app_key(app, NULL, key) != 0)
        return -1;
    int rc = sb_camp_token_check(key, kind, req->params[0], url, cid, rid);
    sodium_memzero(key, sizeof key);
    return rc == SB_OK ? 0 : -1;
}

void sb_api_unsubscribe_page(struct sb_app *app, struct sb_db *db,
                             const struct sb_http_request *req, struct sb_http_reply *rep)
{
    (void)db;
    int64_t cid, rid;
    if (public_token(app, req, SB_TOK_UNSUB, NULL, &cid, &rid) != 0) {
        html_page(rep, 404, "Link not valid", "<p>This unsubscribe link is not valid.</p>");
        return;
    }
    /* A GET never unsubscribes: mail scanners follow links. The button
     * posts back to the same address. */
    html_page(rep, 200, "Unsubscribe",
              "<h1>Unsubscribe</h1><p>Stop receiving these e-mails?</p><form method=\"post\">"
              "<button type=\"submit\" name=\"List-Unsubscribe\" value=\"One-Click\">"
              "Unsubscribe</button></form>");
}

void sb_api_unsubscribe(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    int64_t cid, rid;
    char err[256] = "";
    if (public_token(app, req, SB_TOK_UNSUB, NULL, &cid, &rid) != 0) {
        html_page(rep, 404, "Link not valid", "<p>This unsubscribe link is not valid.</p>");
        return;
    }
    int rc = sb_campaign_unsubscribe(db, cid, rid, err, sizeof err);
    if (rc == SB_ERR_NOT_FOUND) {
        html_page(rep, 404, "Link not valid", "<p>This unsubscribe link is not valid.</p>");
        return;
    }
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "unsubscribe", err);
        return;
    }
    html_page(rep, 200, "Unsubscribed",
              "<h1>You are unsubscribed</h1><p>You will not receive these e-mails any more.</p>");
}

static const unsigned char gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

void sb_api_track_open(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                       struct sb_http_reply *rep)
{
    int64_t cid, rid;
    char err[256] = "";
    /* The pixel is answered whatever happens: a mail client shows no
     * broken image, and a forged token learns nothing. */
    if (public_token(app, req, SB_TOK_OPEN, NULL, &cid, &rid) == 0) {
        int rc = sb_campaign_track(db, cid, rid, SB_TOK_OPEN, NULL, err, sizeof err);
        if (rc != SB_OK && rc != SB_ERR_NOT_FOUND)
            sb_warn("campaigns", "recording an open: %s", err);
    }
    sb_reply_text(rep, 200, "image/gif", (const char *)gif, sizeof gif);
    sb_reply_header(rep, "Cache-Control", "no-store, private");
}

void sb_api_track_click(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    int64_t cid, rid;
    char url[SB_PATH_MAX], err[256] = "";
    /* Only the URL the token was signed for, and only http(s): a forged
     * or altered token is a 404, never a redirect. */
    if (sb_request_query(req, "u", url, sizeof url) != 0 ||
        (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)) || strpbrk(url, "\r\n") ||
        public_token(app, req, SB_TOK_CLICK, url, &cid, &rid) != 0) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "this link is not valid");
        return;
    }
    int rc = sb_campaign_track(db, cid, rid, SB_TOK_CLICK, url, err, sizeof err);
    if (rc == SB_ERR_NOT_FOUND) {
        sb_reply_error(rep, SB_ERR_NOT_FOUND, "this link is not valid");
        return;
    }
    if (rc != SB_OK) /* the visitor still gets where they wanted to go */
        sb_warn("campaigns", "recording a click: %s", err);
    rep->status = 302;
    if (sb_reply_header(rep, "Location", url) != SB_OK) {
        sb_reply_error(rep, SB_ERR_TOO_LARGE, "link too long");
        return;
    }
    sb_reply_header(rep, "Cache-Control", "no-store");
    sb_reply_header(rep, "Referrer-Policy", "no-referrer");
}

static const char q_view[] =
    "SELECT c.subject, c.html, c.text, r.email, cl.name, cl.custom_fields FROM "
    "campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id JOIN clients cl ON cl.id = "
    "r.client_id WHERE r.id = ? AND r.campaign_id = ?";

void sb_api_view(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                 struct sb_http_reply *rep)
{
    int64_t cid, rid;
    unsigned char key[32];
    char err[256] = "";
    if (public_token(app, req, SB_TOK_VIEW, NULL, &cid, &rid) != 0 ||
        app_key(app, NULL, key) != 0) {
        html_page(rep, 404, "Link not valid", "<p>This link is not valid.</p>");
        return;
    }
    struct sb_db_val a[] = {SB_INT(rid), SB_INT(cid)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_view, a, 2, &r, err, sizeof err);
    if (rc != SB_OK || !r.nrows) {
        sb_db_rows_free(&r);
        if (rc != SB_OK)
            sb_reply_failure(rep, rc, "view campaign", err);
        else
            html_page(rep, 404, "Link not valid", "<p>This link is not valid.</p>");
        return;
    }
    struct sb_camp_render_in in = {.key = key,
                                   .public_url = app->cfg->public_url,
                                   .campaign_id = cid,
                                   .recipient_id = rid,
                                   .subject = sb_db_cell(&r, 0, 0),
                                   .html = sb_db_cell(&r, 0, 1),
                                   .text = sb_db_cell(&r, 0, 2),
                                   .email = sb_db_cell(&r, 0, 3),
                                   .name = sb_db_cell(&r, 0, 4),
                                   .custom_json = sb_db_cell(&r, 0, 5),
                                   .track = 1};
    struct sb_camp_render_out o;
    rc = sb_camp_render(&in, &o, err, sizeof err);
    sb_db_rows_free(&r);
    sodium_memzero(key, sizeof key);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "render campaign", err);
        return;
    }
    if (o.html) {
        sb_reply_text(rep, 200, "text/html; charset=utf-8", o.html, strlen(o.html));
        sb_reply_header(rep, "Cache-Control", "no-store");
        /* The template is a marketer's HTML served from our origin: as a
         * sandboxed page (an opaque origin, no script) it can show itself
         * but never act with a visitor's session. */
        sb_reply_header(rep, "Content-Security-Policy",
                        "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline' "
                        "*; font-src *; form-action 'none'; frame-ancestors 'none'");
    } else {
        sb_reply_text(rep, 200, "text/plain; charset=utf-8", o.text ? o.text : "",
                      o.text ? strlen(o.text) : 0);
    }
    sb_camp_render_free(&o);
}
