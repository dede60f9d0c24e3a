/* Clients: read, update, merge (see clients.h). */
#include "switchboard/clients.h"
#include "switchboard/auth.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- name: client-get */
static const char q_client_get[] =
    "SELECT id, name, company, custom_fields, merged_into, created_at, last_activity_at "
    "FROM clients WHERE id = ?";
/* -- name: client-identities */
static const char q_client_identities[] =
    "SELECT kind, value, raw, verified, display_name FROM client_identities "
    "WHERE client_id = ? ORDER BY id";
/* -- name: client-tags */
static const char q_client_tags[] = "SELECT tag FROM client_tags WHERE client_id = ? ORDER BY tag";

static const char q_client_lock[] =
    "SELECT id, merged_into FROM clients WHERE id IN (?, ?) ORDER BY id FOR UPDATE";
static const char q_move_identities[] =
    "UPDATE client_identities SET client_id = ? WHERE client_id = ?";
static const char q_move_conversations[] =
    "UPDATE conversations SET client_id = ? WHERE client_id = ?";
static const char q_move_interactions[] =
    "UPDATE interactions SET client_id = ? WHERE client_id = ?";
static const char q_copy_tags[] =
    "INSERT IGNORE INTO client_tags (client_id, tag) SELECT ?, tag FROM client_tags "
    "WHERE client_id = ?";
static const char q_drop_tags[] = "DELETE FROM client_tags WHERE client_id = ?";
/* The kept record wins field by field; the other fills only its gaps. */
static const char q_merge_fields[] =
    "UPDATE clients k JOIN clients o ON o.id = ? SET "
    "k.name = COALESCE(NULLIF(k.name, ''), o.name), "
    "k.company = COALESCE(NULLIF(k.company, ''), o.company), "
    "k.custom_fields = JSON_MERGE_PATCH(o.custom_fields, k.custom_fields), "
    "k.last_activity_at = GREATEST(k.last_activity_at, o.last_activity_at) WHERE k.id = ?";
/* Tombstones always point at a live client: repoint the other's own. */
static const char q_repoint_tombstones[] =
    "UPDATE clients SET merged_into = ? WHERE merged_into = ?";
static const char q_tombstone[] = "UPDATE clients SET merged_into = ? WHERE id = ?";
static const char q_accept_suggestion[] =
    "UPDATE merge_suggestions SET status = 'accepted', decided_by = ?, decided_at = NOW(6) "
    "WHERE pair_lo = LEAST(?, ?) AND pair_hi = GREATEST(?, ?) AND status = 'open'";
/* Other open suggestions about the merged-away client are moot now; ingest
 * suggests again if the kept client collides with someone. */
static const char q_drop_suggestions[] = "DELETE FROM merge_suggestions WHERE status = 'open' AND "
                                         "(client_id = ? OR other_client_id = ?)";

static const char q_update_name[] = "UPDATE clients SET name = ? WHERE id = ?";
static const char q_update_company[] = "UPDATE clients SET company = ? WHERE id = ?";
static const char q_update_fields[] = "UPDATE clients SET custom_fields = ? WHERE id = ?";
static const char q_tag_insert[] = "INSERT IGNORE INTO client_tags (client_id, tag) VALUES (?, ?)";
/* The row locked, with what the audit row records as "before". */
static const char q_lock_one[] =
    "SELECT merged_into, name, company, custom_fields FROM clients WHERE id = ? FOR UPDATE";
static const char q_audit_update[] =
    "INSERT INTO audit_log (user_id, action, target_type, target_id, detail, ip) "
    "VALUES (?, 'client.update', 'client', ?, ?, ?)";

static json_t *cell_json(const struct sb_db_rows *r, size_t row, size_t col)
{
    const char *v = sb_db_cell(r, row, col);
    return v ? json_string(v) : json_null();
}

int sb_client_get(struct sb_db *db, int64_t id, json_t **client_r, int64_t *merged_into_r,
                  char *err, size_t errlen)
{
    *client_r = NULL;
    *merged_into_r = 0;
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r, ids, tags;
    int rc = sb_db_exec(db, q_client_get, a, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!r.nrows) {
        sb_db_rows_free(&r);
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no client %lld", (long long)id);
    }
    if (sb_db_cell(&r, 0, 4)) {
        *merged_into_r = sb_db_cell_int(&r, 0, 4);
        sb_db_rows_free(&r);
        return SB_OK;
    }
    rc = sb_db_exec(db, q_client_identities, a, 1, &ids, err, errlen);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_client_tags, a, 1, &tags, err, errlen);
    else
        memset(&tags, 0, sizeof tags);
    if (rc != SB_OK) {
        sb_db_rows_free(&r);
        sb_db_rows_free(&ids);
        return rc;
    }
    json_t *fields = json_loads(sb_db_cell(&r, 0, 3) ? sb_db_cell(&r, 0, 3) : "{}", 0, NULL);
    json_t *o =
        json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)id, "name", cell_json(&r, 0, 1),
                  "company", cell_json(&r, 0, 2), "custom_fields", fields ? fields : json_object(),
                  "created_at", cell_json(&r, 0, 5), "last_activity_at", cell_json(&r, 0, 6));
    json_t *idents = json_array(), *tagarr = json_array();
    for (size_t i = 0; i < ids.nrows; i++)
        json_array_append_new(idents, json_pack("{s:o,s:o,s:o,s:b,s:o}", "kind",
                                                cell_json(&ids, i, 0), "value",
                                                cell_json(&ids, i, 1), "raw", cell_json(&ids, i, 2),
                                                "verified", sb_db_cell_int(&ids, i, 3) != 0,
                                                "display_name", cell_json(&ids, i, 4)));
    for (size_t i = 0; i < tags.nrows; i++)
        json_array_append_new(tagarr, cell_json(&tags, i, 0));
    json_object_set_new(o, "identities", idents);
    json_object_set_new(o, "tags", tagarr);
    sb_db_rows_free(&r);
    sb_db_rows_free(&ids);
    sb_db_rows_free(&tags);
    *client_r = o;
    return o ? SB_OK : sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
}

/* UTF-8 characters in s (a column's VARCHAR(n) counts these, not bytes). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* The edited custom fields: `stored` with the patch applied key by key (a
 * null removes the key). Values are flat, as a card shows them: strings,
 * numbers, booleans. Limits keep one client's card a card. */
static int fields_merge(const json_t *stored, const json_t *patch, json_t **merged_r,
                        json_t *before, char *err, size_t errlen)
{
    *merged_r = NULL;
    if (!json_is_object(patch))
        return sb_fail(err, errlen, SB_ERR_INVALID, "\"custom_fields\" must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v)
    {
        size_t kl = utf8_chars(key);
        const char *k = key;
        while (*k == ' ')
            k++;
        if (!*k || kl > SB_CLIENT_FIELD_KEY_MAX || has_control(key))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "custom field names must be 1 to %d characters without line breaks "
                           "(\"%.80s\")",
                           SB_CLIENT_FIELD_KEY_MAX, key);
        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v) && !json_is_null(v))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "custom field \"%.80s\" must be a string, number, true, false or null",
                           key);
        if (json_is_string(v) && (utf8_chars(json_string_value(v)) > SB_CLIENT_FIELD_VALUE_MAX ||
                                  strlen(json_string_value(v)) != json_string_length(v)))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "custom field \"%.80s\" is longer than %d characters (or holds NUL)",
                           key, SB_CLIENT_FIELD_VALUE_MAX);
    }
    json_t *m = json_is_object(stored) ? json_deep_copy(stored) : json_object();
    if (!m)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    size_t had = json_object_size(m);
    json_object_foreach((json_t *)patch, key, v)
    {
        json_t *old = json_object_get(m, key);
        json_object_set(before, key, old ? old : json_null());
        if (json_is_null(v))
            json_object_del(m, key);
        else
            json_object_set(m, key, v);
    }
    size_t now = json_object_size(m);
    if (now > SB_CLIENT_FIELDS_MAX && now > had) {
        json_decref(m);
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "a client has at most %d custom fields (this edit makes %zu)",
                       SB_CLIENT_FIELDS_MAX, now);
    }
    *merged_r = m;
    return SB_OK;
}

static int apply_patch(struct sb_db *db, int64_t id, const json_t *patch, json_t *before, char *err,
                       size_t errlen)
{
    struct sb_db_rows r;
    struct sb_db_val a[] = {SB_INT(id)};
    int rc = sb_db_exec(db, q_lock_one, a, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    int missing = !r.nrows, merged = r.nrows && sb_db_cell(&r, 0, 0);
    json_t *stored = NULL;
    if (!missing && !merged) {
        json_object_set_new(before, "name", cell_json(&r, 0, 1));
        json_object_set_new(before, "company", cell_json(&r, 0, 2));
        stored = json_loads(sb_db_cell(&r, 0, 3) ? sb_db_cell(&r, 0, 3) : "{}", 0, NULL);
    }
    sb_db_rows_free(&r);
    if (missing || merged)
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no client %lld%s", (long long)id,
                       merged ? " (it was merged into another)" : "");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v)
    {
        if (!strcmp(key, "name") || !strcmp(key, "company")) {
            if (!json_is_string(v) && !json_is_null(v))
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "\"%s\" must be a string or null", key);
            else if (json_is_string(v) && utf8_chars(json_string_value(v)) > 255)
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "\"%s\" is longer than 255", key);
            else if (json_is_string(v) && has_control(json_string_value(v)))
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "\"%s\" must be one line of text", key);
            if (rc != SB_OK)
                break;
            /* An emptied name is no name: the card falls back to the id. */
            const char *val = json_string_value(v);
            struct sb_db_val u[] = {SB_TEXT(val && *val ? val : NULL), SB_INT(id)};
            rc = sb_db_exec(db, !strcmp(key, "name") ? q_update_name : q_update_company, u, 2, NULL,
                            err, errlen);
        } else if (!strcmp(key, "custom_fields")) {
            json_t *fields, *was = json_object();
            rc = was ? fields_merge(stored, v, &fields, was, err, errlen) : SB_ERR_NOMEM;
            if (rc == SB_OK) {
                json_object_set_new(before, "custom_fields", was);
                was = NULL;
                char *text = json_dumps(fields, JSON_COMPACT);
                struct sb_db_val u[] = {SB_TEXT(text), SB_INT(id)};
                rc = text ? sb_db_exec(db, q_update_fields, u, 2, NULL, err, errlen) : SB_ERR_NOMEM;
                free(text);
                json_decref(fields);
            }
            json_decref(was);
        } else if (!strcmp(key, "tags")) {
            if (!json_is_array(v)) {
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "\"tags\" must be an array of strings");
                break;
            }
            size_t i;
            json_t *t;
            json_array_foreach(v, i, t)
            {
                if (!json_is_string(t) || !json_string_length(t) || json_string_length(t) > 100) {
                    rc = sb_fail(err, errlen, SB_ERR_INVALID,
                                 "each tag must be a string of 1 to 100 characters");
                    break;
                }
            }
            if (rc != SB_OK)
                break;
            rc = sb_db_exec(db, q_drop_tags, a, 1, NULL, err, errlen);
            json_array_foreach(v, i, t)
            {
                if (rc != SB_OK)
                    break;
                struct sb_db_val u[] = {SB_INT(id), SB_TEXT(json_string_value(t))};
                rc = sb_db_exec(db, q_tag_insert, u, 2, NULL, err, errlen);
            }
        } else {
            rc = sb_fail(err, errlen, SB_ERR_INVALID,
                         "unknown field \"%s\" (name, company, custom_fields, tags)", key);
        }
        if (rc != SB_OK)
            break;
    }
    json_decref(stored);
    return rc;
}

/* Run `body` in a transaction, again when it loses a race. */
static int in_transaction(struct sb_db *db, int (*body)(struct sb_db *, void *), void *arg,
                          char *err, size_t errlen)
{
    int rc = SB_OK;
    for (int attempt = 0; attempt < 5; attempt++) {
        if (errlen)
            err[0] = '\0'; /* a lost race's message is not the answer */
        rc = sb_db_begin(db, err, errlen);
        if (rc == SB_OK)
            rc = body(db, arg);
        if (rc == SB_OK)
            rc = sb_db_commit(db, err, errlen);
        else
            sb_db_rollback(db);
        if (rc != SB_ERR_RETRY)
            break;
    }
    return rc;
}

struct update_ctx {
    int64_t id, user_id;
    const json_t *patch;
    const char *ip;
    char *err;
    size_t errlen;
};

/* The edit, its audit row (what changed and what it was before) and the
 * client.updated event: one transaction, so none is kept without the
 * others. */
static int update_body(struct sb_db *db, void *arg)
{
    struct update_ctx *c = arg;
    json_t *before = json_object();
    if (!before)
        return sb_fail(c->err, c->errlen, SB_ERR_NOMEM, "out of memory");
    int rc = apply_patch(db, c->id, c->patch, before, c->err, c->errlen);
    char *detail = NULL;
    if (rc == SB_OK) {
        /* Only the members the edit touched. */
        json_t *was = json_object();
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)c->patch, key, v)
        {
            if (json_object_get(before, key))
                json_object_set(was, key, json_object_get(before, key));
        }
        json_t *d = json_pack("{s:O,s:o}", "changes", c->patch, "before", was);
        detail = d ? json_dumps(d, JSON_COMPACT) : NULL;
        json_decref(d);
        if (!detail)
            rc = sb_fail(c->err, c->errlen, SB_ERR_NOMEM, "out of memory");
    }
    if (rc == SB_OK) {
        struct sb_db_val a[] = {c->user_id ? SB_INT(c->user_id) : SB_NULL, SB_INT(c->id),
                                SB_TEXT(detail), SB_TEXT(c->ip && *c->ip ? c->ip : NULL)};
        rc = sb_db_exec(db, q_audit_update, a, 4, NULL, c->err, c->errlen);
    }
    free(detail);
    json_decref(before);
    if (rc == SB_OK)
        rc = sb_event_append(db, "client.updated", 0, c->id, c->user_id,
                             json_pack("{s:I,s:O}", "id", (json_int_t)c->id, "changes", c->patch),
                             c->err, c->errlen);
    return rc;
}

int sb_client_update(struct sb_db *db, int64_t id, const json_t *patch, int64_t user_id,
                     const char *ip, char *err, size_t errlen)
{
    if (!json_is_object(patch))
        return sb_fail(err, errlen, SB_ERR_INVALID, "the body must be a JSON object");
    struct update_ctx c = {id, user_id, patch, ip, err, errlen};
    return in_transaction(db, update_body, &c, err, errlen);
}

struct merge_ctx {
    int64_t keep, other, user_id;
    const char *ip;
    char *err;
    size_t errlen;
};

static int merge_body(struct sb_db *db, void *arg)
{
    struct merge_ctx *c = arg;
    char *err = c->err;
    size_t errlen = c->errlen;
    struct sb_db_val pair[] = {SB_INT(c->keep), SB_INT(c->other)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_client_lock, pair, 2, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    int found = (int)r.nrows, merged = 0;
    for (size_t i = 0; i < r.nrows; i++)
        merged |= sb_db_cell(&r, i, 1) != NULL;
    sb_db_rows_free(&r);
    if (found != 2)
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no client %lld or %lld", (long long)c->keep,
                       (long long)c->other);
    if (merged)
        return sb_fail(err, errlen, SB_ERR_INVALID, "one of the clients was merged already");
    struct sb_db_val ko[] = {SB_INT(c->keep), SB_INT(c->other)};
    struct sb_db_val ok[] = {SB_INT(c->other), SB_INT(c->keep)};
    struct sb_db_val o[] = {SB_INT(c->other)};
    struct sb_db_val acc[] = {c->user_id ? SB_INT(c->user_id) : SB_NULL, SB_INT(c->keep),
                              SB_INT(c->other), SB_INT(c->keep), SB_INT(c->other)};
    struct sb_db_val oo[] = {SB_INT(c->other), SB_INT(c->other)};
    if ((rc = sb_db_exec(db, q_move_identities, ko, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_move_conversations, ko, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_move_interactions, ko, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_copy_tags, ko, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_drop_tags, o, 1, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_merge_fields, ok, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_repoint_tombstones, ko, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_tombstone, ko, 2, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_accept_suggestion, acc, 5, NULL, err, errlen)) ||
        (rc = sb_db_exec(db, q_drop_suggestions, oo, 2, NULL, err, errlen)))
        return rc;
    sb_audit(db, c->user_id, "client.merge", "client", c->keep, c->ip);
    return sb_event_append(
        db, "client.merged", 0, c->keep, c->user_id,
        json_pack("{s:I,s:I}", "id", (json_int_t)c->keep, "merged_id", (json_int_t)c->other), err,
        errlen);
}

int sb_client_merge(struct sb_db *db, int64_t keep_id, int64_t other_id, int64_t user_id,
                    const char *ip, char *err, size_t errlen)
{
    if (keep_id == other_id)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a client cannot be merged into itself");
    struct merge_ctx c = {keep_id, other_id, user_id, ip, err, errlen};
    return in_transaction(db, merge_body, &c, err, errlen);
}
