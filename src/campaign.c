/* Campaigns on the database side (campaign.h): segment filters as bound
 * parameters of one constant query, the state machine with recipient
 * materialisation, stats, signed link tokens, unsubscribes, tracking and
 * bounce matching. */
#include "switchboard/campaign.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- Tokens ----------------------------------------------------------------- */

#define TAG_LEN  16
#define HEAD_LEN 17 /* kind + campaign id + recipient id */

void sb_camp_key(const unsigned char master[32], unsigned char key[32])
{
    /* Its own subkey: a leaked tracking key says nothing about the key
     * that seals channel secrets. */
    crypto_kdf_derive_from_key(key, 32, 1, "sbcampgn", master);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void mac(const unsigned char key[32], const unsigned char *head, const char *url,
                size_t urllen, unsigned char tag[TAG_LEN])
{
    crypto_auth_hmacsha256_state st;
    unsigned char full[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, key, 32);
    crypto_auth_hmacsha256_update(&st, head, HEAD_LEN);
    if (urllen)
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)url, urllen);
    crypto_auth_hmacsha256_final(&st, full);
    memcpy(tag, full, TAG_LEN);
}

int sb_camp_token_make(const unsigned char key[32], int kind, int64_t campaign_id,
                       int64_t recipient_id, const char *url, char *out, size_t outlen)
{
    unsigned char raw[HEAD_LEN + TAG_LEN];
    if (sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING) > outlen) {
        if (outlen)
            out[0] = '\0';
        return SB_ERR_TOO_LARGE;
    }
    size_t urllen = kind == SB_TOK_CLICK && url ? strlen(url) : 0;
    raw[0] = (unsigned char)kind;
    put_be64(raw + 1, (uint64_t)campaign_id);
    put_be64(raw + 9, (uint64_t)recipient_id);
    mac(key, raw, url, urllen, raw + HEAD_LEN);
    sodium_bin2base64(out, outlen, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return SB_OK;
}

int sb_camp_token_check(const unsigned char key[32], int kind, const char *token, const char *url,
                        int64_t *campaign_id_r, int64_t *recipient_id_r)
{
    *campaign_id_r = *recipient_id_r = 0;
    unsigned char raw[HEAD_LEN + TAG_LEN + 1];
    size_t n = 0, tlen = strlen(token);
    if (tlen > 64 ||
        sodium_base642bin(raw, sizeof raw, token, tlen, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != HEAD_LEN + TAG_LEN || raw[0] != (unsigned char)kind)
        return SB_ERR_INVALID;
    if (kind == SB_TOK_CLICK && (!url || !*url))
        return SB_ERR_INVALID;
    unsigned char tag[TAG_LEN];
    mac(key, raw, url, kind == SB_TOK_CLICK ? strlen(url) : 0, tag);
    if (sodium_memcmp(tag, raw + HEAD_LEN, TAG_LEN) != 0)
        return SB_ERR_INVALID;
    uint64_t c = get_be64(raw + 1), r = get_be64(raw + 9);
    if (!c || !r || c > INT64_MAX || r > INT64_MAX)
        return SB_ERR_INVALID;
    *campaign_id_r = (int64_t)c;
    *recipient_id_r = (int64_t)r;
    return SB_OK;
}

/* -- Segments --------------------------------------------------------------- */

/* -- name: segment-from
 * Every filter is one bound pair "(? IS NULL OR …)": a NULL switches it off,
 * so one constant statement serves every combination (and the statement
 * cache stays small). A client's campaign address is its oldest verified
 * e-mail identity; suppressed addresses never count. Channel of origin is
 * the channel of the client's first conversation. */
#define SEGMENT_FROM                                                                               \
    "FROM clients c JOIN client_identities e ON e.id = (SELECT MIN(x.id) FROM client_identities "  \
    "x WHERE x.client_id = c.id AND x.kind = 'email' AND x.verified = 1) "                         \
    "WHERE c.merged_into IS NULL "                                                                 \
    "AND (? IS NULL OR EXISTS (SELECT 1 FROM client_tags t WHERE t.client_id = c.id AND t.tag = "  \
    "?)) "                                                                                         \
    "AND (? IS NULL OR JSON_CONTAINS(c.custom_fields, ?)) "                                        \
    "AND (? IS NULL OR (SELECT v.channel_id FROM conversations v WHERE v.client_id = c.id ORDER "  \
    "BY v.id LIMIT 1) = ?) "                                                                       \
    "AND (? IS NULL OR EXISTS (SELECT 1 FROM client_identities k WHERE k.client_id = c.id AND "    \
    "k.kind = ? AND k.verified = 1)) "                                                             \
    "AND (? IS NULL OR c.created_at >= ?) AND (? IS NULL OR c.created_at < ?) "                    \
    "AND (? IS NULL OR c.last_activity_at >= ?) AND (? IS NULL OR c.last_activity_at < ?) "        \
    "AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = e.value AND s.suppressed = 1)"
#define SEGMENT_NARGS 16

static const char q_segment_count[] = "SELECT COUNT(*) " SEGMENT_FROM;

/* -- name: campaign-materialise
 * The recipients, once, in the start transaction. */
static const char q_materialise[] = "INSERT INTO campaign_recipients (campaign_id, client_id, "
                                    "email) SELECT ?, c.id, e.value " SEGMENT_FROM " ORDER BY c.id";

/* "2026-01-31", "2026-01-31T10:00:00Z", "2026-01-31 10:00:00" → SQL text. */
static int parse_date(const json_t *v, const char *key, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    out[0] = '\0';
    if (!v || json_is_null(v))
        return SB_OK;
    const char *s = json_string_value(v);
    int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || mo < 1 || mo > 12 || d < 1 ||
        d > 31)
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s: expected a date like 2026-01-31", key);
    if (s[n] == 'T' || s[n] == ' ') {
        int m = 0;
        if (sscanf(s + n + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &m) != 3 || h > 23 || mi > 59 ||
            se > 60)
            return sb_fail(err, errlen, SB_ERR_INVALID, "%s: bad time of day", key);
        n += 1 + m;
        if (s[n] == 'Z')
            n++;
    }
    if (s[n])
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s: trailing text after the date", key);
    snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi, se);
    return SB_OK;
}

int sb_segment_filter_parse(const json_t *filter, struct sb_segment_filter *f, char *err,
                            size_t errlen)
{
    memset(f, 0, sizeof *f);
    if (!filter || json_is_null(filter))
        return SB_OK;
    if (!json_is_object(filter))
        return sb_fail(err, errlen, SB_ERR_INVALID, "filter must be an object");
    const char *key;
    json_t *v;
    int rc = SB_OK;
    json_object_foreach((json_t *)filter, key, v)
    {
        if (!strcmp(key, "tag")) {
            const char *t = json_string_value(v);
            if (!t || !*t || strlen(t) >= sizeof f->tag)
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "tag: a string of 1-100 characters");
            else
                snprintf(f->tag, sizeof f->tag, "%s", t);
        } else if (!strcmp(key, "custom")) {
            if (!json_is_object(v))
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "custom: an object of field values");
            else if (json_object_size(v) &&
                     !(f->custom = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS)))
                rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        } else if (!strcmp(key, "channel_id")) {
            if (!json_is_integer(v) || json_integer_value(v) <= 0)
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "channel_id: a channel id");
            else
                f->channel_id = json_integer_value(v);
        } else if (!strcmp(key, "identity_kind")) {
            static const char *const kinds[] = {"email", "phone", "telegram", "whatsapp",
                                                "viber", "other", NULL};
            const char *k = json_string_value(v);
            int ok = 0;
            for (size_t i = 0; k && kinds[i]; i++)
                ok |= !strcmp(k, kinds[i]);
            if (!ok)
                rc = sb_fail(err, errlen, SB_ERR_INVALID,
                             "identity_kind: one of email, phone, telegram, whatsapp, viber, "
                             "other");
            else
                snprintf(f->identity_kind, sizeof f->identity_kind, "%s", k);
        } else if (!strcmp(key, "created_after")) {
            rc = parse_date(v, key, f->created_after, sizeof f->created_after, err, errlen);
        } else if (!strcmp(key, "created_before")) {
            rc = parse_date(v, key, f->created_before, sizeof f->created_before, err, errlen);
        } else if (!strcmp(key, "active_after")) {
            rc = parse_date(v, key, f->active_after, sizeof f->active_after, err, errlen);
        } else if (!strcmp(key, "active_before")) {
            rc = parse_date(v, key, f->active_before, sizeof f->active_before, err, errlen);
        } else if (!strcmp(key, "has_email")) {
            /* Campaign segments are clients with a deliverable address:
             * true is what every segment means; false would select nobody
             * a campaign could mail. */
            if (!json_is_true(v))
                rc = sb_fail(err, errlen, SB_ERR_INVALID,
                             "has_email: only true (a segment is clients with a deliverable "
                             "e-mail address)");
        } else {
            rc = sb_fail(err, errlen, SB_ERR_INVALID, "unknown filter key '%s'", key);
        }
        if (rc != SB_OK)
            break;
    }
    if (rc != SB_OK)
        sb_segment_filter_free(f);
    return rc;
}

void sb_segment_filter_free(struct sb_segment_filter *f)
{
    free(f->custom);
    f->custom = NULL;
}

static struct sb_db_val opt_text(const char *s)
{
    return s && *s ? SB_TEXT(s) : SB_NULL;
}

static void segment_args(const struct sb_segment_filter *f, struct sb_db_val *a)
{
    struct sb_db_val ch = f->channel_id ? SB_INT(f->channel_id) : SB_NULL;
    struct sb_db_val v[SEGMENT_NARGS] = {opt_text(f->tag),
                                         opt_text(f->tag),
                                         opt_text(f->custom),
                                         opt_text(f->custom),
                                         ch,
                                         ch,
                                         opt_text(f->identity_kind),
                                         opt_text(f->identity_kind),
                                         opt_text(f->created_after),
                                         opt_text(f->created_after),
                                         opt_text(f->created_before),
                                         opt_text(f->created_before),
                                         opt_text(f->active_after),
                                         opt_text(f->active_after),
                                         opt_text(f->active_before),
                                         opt_text(f->active_before)};
    memcpy(a, v, sizeof v);
}

int sb_segment_count(struct sb_db *db, const struct sb_segment_filter *f, int64_t *count_r,
                     char *err, size_t errlen)
{
    *count_r = 0;
    struct sb_db_val a[SEGMENT_NARGS];
    segment_args(f, a);
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_segment_count, a, SEGMENT_NARGS, &r, err, errlen);
    if (rc == SB_OK && r.nrows)
        *count_r = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    return rc;
}

/* -- Campaign state ----------------------------------------------------------- */

static const char q_lock[] =
    "SELECT c.status, c.send_at IS NOT NULL AND c.send_at > NOW(6), s.filter, t.subject, t.html, "
    "t.text FROM campaigns c LEFT JOIN segments s ON s.id = c.segment_id LEFT JOIN templates t ON "
    "t.id = c.template_id WHERE c.id = ? FOR UPDATE";
static const char q_start[] =
    "UPDATE campaigns SET status = ?, subject = ?, html = ?, text = ?, recipients = ?, "
    "started_at = NOW(6) WHERE id = ?";
/* A scheduled campaign made again: same columns as a start, status kept. */
static const char q_refresh[] =
    "UPDATE campaigns SET subject = ?, html = ?, text = ?, recipients = ? WHERE id = ?";
static const char q_drop_recipients[] = "DELETE FROM campaign_recipients WHERE campaign_id = ?";
static const char q_set_status[] = "UPDATE campaigns SET status = ? WHERE id = ?";
static const char q_cancel[] =
    "UPDATE campaigns SET status = 'cancelled', finished_at = NOW(6) WHERE id = ?";
/* Queued recipients of a cancelled campaign are never sent; those being
 * sent right now finish and record their outcome. */
static const char q_cancel_recipients[] =
    "UPDATE campaign_recipients SET status = 'cancelled' WHERE campaign_id = ? AND status = "
    "'queued'";

static int materialise(struct sb_db *db, int64_t id, const char *filter_text, int64_t *n_r,
                       char *err, size_t errlen)
{
    json_error_t je;
    json_t *filter = json_loads(filter_text ? filter_text : "{}", 0, &je);
    struct sb_segment_filter f;
    int rc = sb_segment_filter_parse(filter, &f, err, errlen);
    json_decref(filter);
    if (rc != SB_OK)
        return rc;
    struct sb_db_val a[1 + SEGMENT_NARGS];
    a[0] = SB_INT(id);
    segment_args(&f, a + 1);
    struct sb_db_rows r;
    rc = sb_db_exec(db, q_materialise, a, 1 + SEGMENT_NARGS, &r, err, errlen);
    *n_r = (int64_t)r.affected;
    sb_db_rows_free(&r);
    sb_segment_filter_free(&f);
    return rc;
}

int sb_campaign_transition(struct sb_db *db, int64_t campaign_id, enum sb_camp_action action,
                           char *status_r, size_t statuslen, char *err, size_t errlen)
{
    status_r[0] = '\0';
    int rc = sb_db_begin(db, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct sb_db_rows r = {0};
    struct sb_db_val id = SB_INT(campaign_id);
    rc = sb_db_exec(db, q_lock, &id, 1, &r, err, errlen);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such campaign");
    const char *next = NULL;
    if (rc == SB_OK) {
        const char *cur = sb_db_cell(&r, 0, 0);
        int future = sb_db_cell_int(&r, 0, 1) != 0;
        int ok = 0;
        switch (action) {
        case SB_CAMP_START:
            ok = !strcmp(cur, "draft");
            next = future ? "scheduled" : "running";
            break;
        case SB_CAMP_PAUSE:
            ok = !strcmp(cur, "running") || !strcmp(cur, "scheduled");
            next = "paused";
            break;
        case SB_CAMP_RESUME:
            ok = !strcmp(cur, "paused");
            next = future ? "scheduled" : "running";
            break;
        case SB_CAMP_CANCEL:
            ok = strcmp(cur, "finished") && strcmp(cur, "cancelled");
            next = "cancelled";
            break;
        }
        static const char *const names[] = {"start", "pause", "resume", "cancel"};
        if (!ok)
            rc = sb_fail(err, errlen, SB_ERR_EXISTS, "cannot %s a campaign that is %s",
                         names[action], cur);
    }
    /* Only a finished or cancelled campaign can have lost its segment or
     * template (api_campaigns.c refuses the delete otherwise); a start
     * without a segment must never mean "everyone". */
    if (rc == SB_OK && action == SB_CAMP_START && (!sb_db_cell(&r, 0, 2) || !sb_db_cell(&r, 0, 3)))
        rc = sb_fail(err, errlen, SB_ERR_EXISTS, "the campaign's segment or template was deleted");
    if (rc == SB_OK && action == SB_CAMP_START) {
        int64_t n = 0;
        rc = materialise(db, campaign_id, sb_db_cell(&r, 0, 2), &n, err, errlen);
        struct sb_db_val a[] = {SB_TEXT(next),
                                SB_TEXT(sb_db_cell(&r, 0, 3)),
                                SB_TEXT(sb_db_cell(&r, 0, 4)),
                                SB_TEXT(sb_db_cell(&r, 0, 5)),
                                SB_INT(n),
                                id};
        if (rc == SB_OK)
            rc = sb_db_exec(db, q_start, a, 6, NULL, err, errlen);
    } else if (rc == SB_OK && action == SB_CAMP_CANCEL) {
        rc = sb_db_exec(db, q_cancel, &id, 1, NULL, err, errlen);
        if (rc == SB_OK)
            rc = sb_db_exec(db, q_cancel_recipients, &id, 1, NULL, err, errlen);
    } else if (rc == SB_OK) {
        struct sb_db_val a[] = {SB_TEXT(next), id};
        rc = sb_db_exec(db, q_set_status, a, 2, NULL, err, errlen);
    }
    if (rc == SB_OK) {
        json_t *data =
            json_pack("{s:I, s:s}", "campaign_id", (json_int_t)campaign_id, "status", next);
        rc = sb_event_append(db, "campaign.updated", 0, 0, 0, data, err, errlen);
    }
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_commit(db, err, errlen);
    else
        sb_db_rollback(db);
    if (rc == SB_OK)
        snprintf(status_r, statuslen, "%s", next);
    return rc;
}

int sb_campaign_refresh(struct sb_db *db, int64_t campaign_id, char *err, size_t errlen)
{
    struct sb_db_rows r = {0};
    struct sb_db_val id = SB_INT(campaign_id);
    int rc = sb_db_exec(db, q_lock, &id, 1, &r, err, errlen);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such campaign");
    if (rc != SB_OK || strcmp(sb_db_cell(&r, 0, 0), "scheduled")) {
        sb_db_rows_free(&r);
        return rc;
    }
    if (!sb_db_cell(&r, 0, 2) || !sb_db_cell(&r, 0, 3))
        rc = sb_fail(err, errlen, SB_ERR_EXISTS, "the campaign's segment or template was deleted");
    /* Scheduled means nothing was sent: every row is still queued, and no
     * tracking points at one. */
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_drop_recipients, &id, 1, NULL, err, errlen);
    int64_t n = 0;
    if (rc == SB_OK)
        rc = materialise(db, campaign_id, sb_db_cell(&r, 0, 2), &n, err, errlen);
    struct sb_db_val a[] = {SB_TEXT(sb_db_cell(&r, 0, 3)), SB_TEXT(sb_db_cell(&r, 0, 4)),
                            SB_TEXT(sb_db_cell(&r, 0, 5)), SB_INT(n), id};
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_refresh, a, 5, NULL, err, errlen);
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_event_append(
            db, "campaign.updated", 0, 0, 0,
            json_pack("{s:I, s:s}", "campaign_id", (json_int_t)campaign_id, "status", "scheduled"),
            err, errlen);
    return rc;
}

/* -- Stats -------------------------------------------------------------------- */

static const char q_stats[] =
    "SELECT COUNT(*), COALESCE(SUM(status = 'queued'), 0), COALESCE(SUM(status = 'sending'), 0), "
    "COALESCE(SUM(status = 'sent'), 0), COALESCE(SUM(status = 'failed'), 0), "
    "COALESCE(SUM(status = 'skipped'), 0), COALESCE(SUM(status = 'cancelled'), 0), "
    "COALESCE(SUM(bounce = 'hard'), 0), COALESCE(SUM(bounce = 'soft'), 0), "
    "COALESCE(SUM(bounce = 'complaint'), 0), COALESCE(SUM(opened_at IS NOT NULL), 0), "
    "COALESCE(SUM(clicked_at IS NOT NULL), 0), COALESCE(SUM(unsubscribed_at IS NOT NULL), 0) "
    "FROM campaign_recipients WHERE campaign_id = ?";
/* -- name: campaign-hourly
 * Sends and tracking per hour (UTC), for the charts. */
static const char q_hourly_sent[] =
    "SELECT DATE_FORMAT(sent_at, '%Y-%m-%dT%H:00:00Z') h, COUNT(*) FROM campaign_recipients "
    "WHERE campaign_id = ? AND sent_at IS NOT NULL GROUP BY h ORDER BY h";
static const char q_hourly_tracking[] =
    "SELECT DATE_FORMAT(created_at, '%Y-%m-%dT%H:00:00Z') h, kind, COUNT(*) FROM tracking "
    "WHERE campaign_id = ? GROUP BY h, kind ORDER BY h";

static json_t *hour_slot(json_t *hours, const char *h)
{
    json_t *o = json_object_get(hours, h);
    if (!o) {
        o = json_pack("{s:s, s:i, s:i, s:i, s:i}", "hour", h, "sent", 0, "opened", 0, "clicked", 0,
                      "unsubscribed", 0);
        json_object_set_new(hours, h, o);
    }
    return o;
}

int sb_campaign_stats(struct sb_db *db, int64_t campaign_id, json_t **stats_r, char *err,
                      size_t errlen)
{
    *stats_r = NULL;
    struct sb_db_val id = SB_INT(campaign_id);
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_stats, &id, 1, &r, err, errlen);
    if (rc != SB_OK) {
        sb_db_rows_free(&r);
        return rc;
    }
    static const char *const keys[] = {"recipients",   "queued",     "sending",   "sent",
                                       "failed",       "skipped",    "cancelled", "bounced_hard",
                                       "bounced_soft", "complaints", "opened",    "clicked",
                                       "unsubscribed"};
    json_t *o = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_set_new(o, keys[i], json_integer(sb_db_cell_int(&r, 0, i)));
    /* Delivered: accepted by the SMTP server and not bounced hard since (a
     * later bounce report moves a message out of it). */
    json_object_set_new(o, "delivered",
                        json_integer(sb_db_cell_int(&r, 0, 3) - sb_db_cell_int(&r, 0, 7)));
    sb_db_rows_free(&r);
    json_t *hours = json_object();
    rc = sb_db_exec(db, q_hourly_sent, &id, 1, &r, err, errlen);
    for (size_t i = 0; rc == SB_OK && i < r.nrows; i++)
        json_object_set_new(hour_slot(hours, sb_db_cell(&r, i, 0)), "sent",
                            json_integer(sb_db_cell_int(&r, i, 1)));
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_hourly_tracking, &id, 1, &r, err, errlen);
    for (size_t i = 0; rc == SB_OK && i < r.nrows; i++) {
        const char *k = sb_db_cell(&r, i, 1);
        const char *name = !strcmp(k, "open")    ? "opened"
                           : !strcmp(k, "click") ? "clicked"
                                                 : "unsubscribed";
        json_object_set_new(hour_slot(hours, sb_db_cell(&r, i, 0)), name,
                            json_integer(sb_db_cell_int(&r, i, 2)));
    }
    sb_db_rows_free(&r);
    /* Hours as a sorted array: keys are ISO times, so text order is time
     * order. */
    json_t *arr = json_array();
    const char **ks = calloc(json_object_size(hours) + 1, sizeof *ks);
    size_t nk = 0;
    const char *k;
    json_t *v;
    json_object_foreach(hours, k, v) if (ks) ks[nk++] = k;
    for (size_t i = 1; i < nk; i++)
        for (size_t j = i; j > 0 && strcmp(ks[j - 1], ks[j]) > 0; j--) {
            const char *t = ks[j];
            ks[j] = ks[j - 1];
            ks[j - 1] = t;
        }
    for (size_t i = 0; i < nk; i++)
        json_array_append(arr, json_object_get(hours, ks[i]));
    free(ks);
    json_decref(hours);
    json_object_set_new(o, "hourly", arr);
    if (rc != SB_OK) {
        json_decref(o);
        return rc;
    }
    *stats_r = o;
    return SB_OK;
}

/* -- Public links ---------------------------------------------------------------- */

static const char q_recipient[] =
    "SELECT email, client_id FROM campaign_recipients WHERE id = ? AND campaign_id = ?";
/* An unsubscribe never weakens a stronger reason already recorded. */
static const char q_suppress_unsub[] =
    "INSERT INTO suppressions (email, reason, suppressed) VALUES (?, 'unsubscribe', 1) "
    "ON DUPLICATE KEY UPDATE reason = IF(suppressed = 1, reason, 'unsubscribe'), suppressed = 1";
static const char q_mark_unsub[] =
    "UPDATE campaign_recipients SET unsubscribed_at = NOW(6) WHERE id = ? AND unsubscribed_at IS "
    "NULL";
static const char q_mark_open[] =
    "UPDATE campaign_recipients SET opened_at = COALESCE(opened_at, NOW(6)) WHERE id = ?";
static const char q_mark_click[] =
    "UPDATE campaign_recipients SET clicked_at = COALESCE(clicked_at, NOW(6)), opened_at = "
    "COALESCE(opened_at, NOW(6)) WHERE id = ?";
static const char q_track[] =
    "INSERT INTO tracking (campaign_id, recipient_id, kind, url) VALUES (?, ?, ?, ?)";

int sb_campaign_unsubscribe(struct sb_db *db, int64_t campaign_id, int64_t recipient_id, char *err,
                            size_t errlen)
{
    int rc = sb_db_begin(db, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct sb_db_val a[] = {SB_INT(recipient_id), SB_INT(campaign_id)};
    struct sb_db_rows r = {0}, u = {0};
    rc = sb_db_exec(db, q_recipient, a, 2, &r, err, errlen);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such recipient");
    if (rc == SB_OK) {
        struct sb_db_val e = SB_TEXT(sb_db_cell(&r, 0, 0));
        rc = sb_db_exec(db, q_suppress_unsub, &e, 1, NULL, err, errlen);
    }
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_mark_unsub, a, 1, &u, err, errlen);
    if (rc == SB_OK && u.affected) { /* the first time only */
        struct sb_db_val t[] = {SB_INT(campaign_id), SB_INT(recipient_id), SB_TEXT("unsubscribe"),
                                SB_NULL};
        rc = sb_db_exec(db, q_track, t, 4, NULL, err, errlen);
        if (rc == SB_OK)
            rc = sb_event_append(db, "client.unsubscribed", 0, sb_db_cell_int(&r, 0, 1), 0,
                                 json_pack("{s:I, s:s}", "campaign_id", (json_int_t)campaign_id,
                                           "email", sb_db_cell(&r, 0, 0)),
                                 err, errlen);
    }
    sb_db_rows_free(&r);
    sb_db_rows_free(&u);
    if (rc == SB_OK)
        return sb_db_commit(db, err, errlen);
    sb_db_rollback(db);
    return rc;
}

int sb_campaign_track(struct sb_db *db, int64_t campaign_id, int64_t recipient_id, int kind,
                      const char *url, char *err, size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(recipient_id), SB_INT(campaign_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_recipient, a, 2, &r, err, errlen);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such recipient");
    sb_db_rows_free(&r);
    if (rc == SB_OK)
        rc = sb_db_exec(db, kind == SB_TOK_CLICK ? q_mark_click : q_mark_open, a, 1, NULL, err,
                        errlen);
    if (rc == SB_OK) {
        struct sb_db_val t[] = {SB_INT(campaign_id), SB_INT(recipient_id),
                                SB_TEXT(kind == SB_TOK_CLICK ? "click" : "open"),
                                kind == SB_TOK_CLICK ? SB_TEXT(url) : SB_NULL};
        rc = sb_db_exec(db, q_track, t, 4, NULL, err, errlen);
    }
    return rc;
}

/* A hard bounce or complaint is never overwritten by a later soft one. */
static const char q_bounce[] =
    "UPDATE campaign_recipients SET bounce = IF(bounce IN ('hard', 'complaint'), bounce, ?) "
    "WHERE message_id = ?";

int sb_campaign_bounce(struct sb_db *db, const char *original_message_id, const char *cls,
                       char *err, size_t errlen)
{
    if (!original_message_id || !*original_message_id || !cls ||
        (strcmp(cls, "hard") && strcmp(cls, "soft") && strcmp(cls, "complaint")))
        return SB_OK;
    struct sb_db_val a[] = {SB_TEXT(cls), SB_TEXT(original_message_id)};
    return sb_db_exec(db, q_bounce, a, 2, NULL, err, errlen);
}
