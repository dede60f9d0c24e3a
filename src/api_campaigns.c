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
    char *ftext = json_dumps(filter ? filter : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
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

void sb_api_segments_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                         struct sb_http_reply *rep)
{
    (void)app;
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

void sb_api_templates_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                          struct sb_http_reply *rep)
{
    (void)app;
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
    if (rate && !json_is_null(rate) &&
        (!json_is_integer(rate) || json_integer_value(rate) < 0 ||
         json_integer_value(rate) > 100000)) {
        sb_reply_error(rep, SB_ERR_INVALID, "rate_per_second: 0 (no cap) to 100000");
        goto out;
    }
    json_t *sa = json_object_get(body, "send_at");
    if (sa && !json_is_null(sa)) {
        /* The segment filter's date reader: one format everywhere. */
        json_t *f = json_pack("{s:O}", "created_after", sa);
        struct sb_segment_filter sf;
        int rc = sb_segment_filter_parse(f, &sf, err, sizeof err);
        json_decref(f);
        if (rc != SB_OK) {
            sb_reply_error(rep, SB_ERR_INVALID,
                           "send_at: a date and time (UTC) like "
                           "2026-01-31T10:00:00Z");
            goto out;
        }
        snprintf(send_at, sizeof send_at, "%s", sf.created_after);
        sb_segment_filter_free(&sf);
    }
    struct sb_db_val ra[] = {SB_INT(seg), SB_INT(tpl), SB_INT(chid)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_campaign_refs, ra, 3, &r, err, sizeof err);
    if (rc == SB_OK &&
        (!sb_db_cell_int(&r, 0, 0) || !sb_db_cell_int(&r, 0, 1) || !sb_db_cell_int(&r, 0, 2)))
        rc = sb_fail(err, sizeof err, SB_ERR_INVALID, "%s",
                     !sb_db_cell_int(&r, 0, 0)   ? "segment_id: no such segment"
                     : !sb_db_cell_int(&r, 0, 1) ? "template_id: no such template"
                                                 : "channel_id: no such email channel");
    sb_db_rows_free(&r);
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
    char err[256] = "";
    if (sb_campaign_stats(db, id, &stats, err, sizeof err) == SB_OK) {
        json_object_del(stats, "hourly");
        json_object_set_new(out, "stats", stats);
    }
    sb_reply_json(rep, 200, out);
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
