/* Stored channels (see channel_store.h). */
#include "switchboard/channel_store.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/secrets.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char q_insert[] =
    "INSERT INTO channels (kind, name, config, public_key) VALUES (?, ?, ?, ?)";
static const char q_by_id[] =
    "SELECT id, kind, name, config, public_key, enabled FROM channels WHERE id = ? AND enabled = 1";
static const char q_by_public[] =
    "SELECT id, kind, name, config, public_key, enabled FROM channels "
    "WHERE public_key = ? AND enabled = 1";
static const char q_by_id_any[] =
    "SELECT id, kind, name, config, public_key, enabled FROM channels WHERE id = ?";
static const char q_update[] = "UPDATE channels SET name = ?, enabled = ?, config = ? WHERE id = ?";
static const char q_list[] = "SELECT id, kind, name, config, public_key, enabled, created_at, "
                             "last_success_at, last_error_at, last_error FROM channels ORDER BY id";
static const char q_quarantine[] = "INSERT INTO raw_inbound (channel_id, source, error, "
                                   "content_type, body) VALUES (?, ?, ?, ?, ?)";

#define MASK "********"

static int is_secret(const struct sb_channel_kind *k, const char *key)
{
    for (const char *const *s = k ? k->secret_keys : NULL; s && *s; s++)
        if (!strcmp(*s, key))
            return 1;
    return 0;
}

/* A copy of the config with secrets replaced by a mask, for the API. */
static json_t *masked(const struct sb_channel_kind *k, json_t *config)
{
    json_t *copy = json_deep_copy(config);
    const char *key;
    json_t *v;
    json_object_foreach(copy, key, v)
    {
        if (is_secret(k, key))
            json_object_set_new(copy, key, json_string(MASK));
    }
    return copy;
}

static json_t *public_json(int64_t id, const char *kind, const char *name, json_t *masked_cfg,
                           const char *public_key, int enabled)
{
    return json_pack("{s:I,s:s,s:s,s:o,s:s?,s:b}", "id", (json_int_t)id, "kind", kind, "name", name,
                     "config", masked_cfg, "public_key", public_key, "enabled", enabled);
}

int sb_channel_create(struct sb_db *db, const unsigned char key[32], const char *kind,
                      const char *name, json_t *config, json_t **channel_r, char *err,
                      size_t errlen)
{
    *channel_r = NULL;
    const struct sb_channel_kind *k = sb_channel_kind_find(kind);
    if (!k)
        return sb_fail(err, errlen, SB_ERR_INVALID, "unknown channel kind '%s'", kind);
    if (!name || !*name || strlen(name) > 100)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a name of 1 to 100 characters is required");
    if (!json_is_object(config))
        return sb_fail(err, errlen, SB_ERR_INVALID, "the configuration must be an object");
    int rc = k->validate_config ? k->validate_config(config, err, errlen) : SB_OK;
    if (rc != SB_OK)
        return rc;
    json_t *stored = json_deep_copy(config);
    const char *ck;
    json_t *v;
    json_object_foreach(stored, ck, v)
    {
        if (!is_secret(k, ck) || !json_is_string(v))
            continue;
        if (!key) {
            json_decref(stored);
            return sb_secret_key_parse(NULL, NULL, err, errlen);
        }
        char *sealed;
        rc = sb_secret_seal(key, json_string_value(v), &sealed, err, errlen);
        if (rc != SB_OK) {
            json_decref(stored);
            return rc;
        }
        json_object_set_new(stored, ck, json_string(sealed));
        free(sealed);
    }
    char *text = json_dumps(stored, JSON_COMPACT);
    json_decref(stored);
    unsigned char raw[16];
    char public_key[40];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(public_key, sizeof public_key, raw, sizeof raw);
    struct sb_db_val a[] = {SB_TEXT(kind), SB_TEXT(name), SB_TEXT(text), SB_TEXT(public_key)};
    struct sb_db_rows r;
    rc = text ? sb_db_exec(db, q_insert, a, 4, &r, err, errlen) : SB_ERR_NOMEM;
    free(text);
    if (rc != SB_OK)
        return rc;
    *channel_r = public_json((int64_t)r.insert_id, kind, name, masked(k, config), public_key, 1);
    return SB_OK;
}

static int load_row(struct sb_db_rows *r, const unsigned char key[32], struct sb_channel **ch_r,
                    char *err, size_t errlen)
{
    const struct sb_channel_kind *k = sb_channel_kind_find(sb_db_cell(r, 0, 1));
    if (!k)
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "channel of unknown kind '%s'",
                       sb_db_cell(r, 0, 1));
    struct sb_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    ch->id = sb_db_cell_int(r, 0, 0);
    ch->kind = k;
    snprintf(ch->name, sizeof ch->name, "%s", sb_db_cell(r, 0, 2));
    snprintf(ch->public_key, sizeof ch->public_key, "%s",
             sb_db_cell(r, 0, 4) ? sb_db_cell(r, 0, 4) : "");
    ch->enabled = (int)sb_db_cell_int(r, 0, 5);
    ch->config = json_loads(sb_db_cell(r, 0, 3), 0, NULL);
    if (!json_is_object(ch->config)) {
        sb_channel_free(&ch);
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "channel configuration is not JSON");
    }
    const char *ck;
    json_t *v;
    json_object_foreach(ch->config, ck, v)
    {
        if (!is_secret(k, ck) || !json_is_string(v))
            continue;
        char *plain;
        int rc = key ? sb_secret_open(key, json_string_value(v), &plain, err, errlen)
                     : sb_secret_key_parse(NULL, NULL, err, errlen);
        if (rc != SB_OK) {
            sb_channel_free(&ch);
            return rc == SB_ERR_INVALID ? SB_ERR_CONFIG : rc;
        }
        json_object_set_new(ch->config, ck, json_string(plain));
        sodium_memzero(plain, strlen(plain));
        free(plain);
    }
    *ch_r = ch;
    return SB_OK;
}

static int load_by(struct sb_db *db, const unsigned char key[32], const char *sql,
                   struct sb_db_val arg, const char *kind, struct sb_channel **ch_r, char *err,
                   size_t errlen)
{
    *ch_r = NULL;
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, &arg, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!r.nrows || (kind && strcmp(sb_db_cell(&r, 0, 1), kind) != 0)) {
        sb_db_rows_free(&r);
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such channel");
    }
    rc = load_row(&r, key, ch_r, err, errlen);
    sb_db_rows_free(&r);
    return rc;
}

int sb_channel_load(struct sb_db *db, const unsigned char key[32], int64_t id, const char *kind,
                    struct sb_channel **ch_r, char *err, size_t errlen)
{
    return load_by(db, key, q_by_id, SB_INT(id), kind, ch_r, err, errlen);
}

/* The webhook path's copies of channel rows (q_by_id's six columns),
 * direct-mapped by id. */
#define CACHE_SLOTS 16
static struct {
    int64_t id, at_ms;
    char *cells[6];
} cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cache_clear_locked(size_t slot)
{
    for (int c = 0; c < 6; c++) {
        free(cache[slot].cells[c]);
        cache[slot].cells[c] = NULL;
    }
    cache[slot].id = 0;
}

static void cache_forget(int64_t id)
{
    size_t slot = (size_t)((uint64_t)id % CACHE_SLOTS);
    pthread_mutex_lock(&cache_lock);
    if (cache[slot].id == id)
        cache_clear_locked(slot);
    pthread_mutex_unlock(&cache_lock);
}

/* Copies of the cached cells of `id` into cells[6] (caller frees); 0 when
 * there is no fresh copy. */
static int cache_get(int64_t id, char *cells[6])
{
    size_t slot = (size_t)((uint64_t)id % CACHE_SLOTS);
    int hit = 0;
    pthread_mutex_lock(&cache_lock);
    if (cache[slot].id == id && mono_ms() - cache[slot].at_ms < SB_CHANNEL_CACHE_MS) {
        hit = 1;
        for (int c = 0; c < 6; c++)
            if (cache[slot].cells[c] && !(cells[c] = strdup(cache[slot].cells[c])))
                hit = 0;
    }
    pthread_mutex_unlock(&cache_lock);
    if (!hit)
        for (int c = 0; c < 6; c++) {
            free(cells[c]);
            cells[c] = NULL;
        }
    return hit;
}

static void cache_put(int64_t id, const struct sb_db_rows *r)
{
    size_t slot = (size_t)((uint64_t)id % CACHE_SLOTS);
    pthread_mutex_lock(&cache_lock);
    cache_clear_locked(slot);
    int ok = 1;
    for (int c = 0; c < 6; c++)
        if (sb_db_cell(r, 0, (size_t)c) &&
            !(cache[slot].cells[c] = strdup(sb_db_cell(r, 0, (size_t)c))))
            ok = 0;
    if (ok) {
        cache[slot].id = id;
        cache[slot].at_ms = mono_ms();
    } else {
        cache_clear_locked(slot);
    }
    pthread_mutex_unlock(&cache_lock);
}

int sb_channel_load_cached(struct sb_db *db, const unsigned char key[32], int64_t id,
                           const char *kind, struct sb_channel **ch_r, char *err, size_t errlen)
{
    *ch_r = NULL;
    char *cells[6] = {0};
    struct sb_db_rows r = {0};
    int rc = SB_OK;
    if (cache_get(id, cells)) {
        r.nrows = 1;
        r.ncols = 6;
        r.cells = cells;
    } else {
        struct sb_db_val arg = SB_INT(id);
        rc = sb_db_exec(db, q_by_id, &arg, 1, &r, err, errlen);
        if (rc != SB_OK)
            return rc;
        if (r.nrows)
            cache_put(id, &r);
    }
    if (!r.nrows || (kind && strcmp(sb_db_cell(&r, 0, 1), kind) != 0))
        rc = sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such channel");
    else
        rc = load_row(&r, key, ch_r, err, errlen);
    if (r.cells == cells)
        for (int c = 0; c < 6; c++)
            free(cells[c]);
    else
        sb_db_rows_free(&r);
    return rc;
}

int sb_channel_load_public(struct sb_db *db, const unsigned char key[32], const char *public_key,
                           struct sb_channel **ch_r, char *err, size_t errlen)
{
    return load_by(db, key, q_by_public, SB_TEXT(public_key), NULL, ch_r, err, errlen);
}

int sb_channel_load_any(struct sb_db *db, const unsigned char key[32], int64_t id,
                        struct sb_channel **ch_r, char *err, size_t errlen)
{
    return load_by(db, key, q_by_id_any, SB_INT(id), NULL, ch_r, err, errlen);
}

/* A secret in a change that means "keep the stored one". */
static int keeps_secret(const json_t *v)
{
    return !v || json_is_null(v) ||
           (json_is_string(v) && (!json_string_length(v) || !strcmp(json_string_value(v), MASK)));
}

int sb_channel_update(struct sb_db *db, const unsigned char key[32], int64_t id, const char *name,
                      int enabled, json_t *changes, json_t **channel_r, json_t **changed_r,
                      char *err, size_t errlen)
{
    *channel_r = NULL;
    if (changed_r)
        *changed_r = NULL;
    size_t chars = 0;
    for (const char *c = name; c && *c; c++)
        chars += ((unsigned char)*c & 0xC0) != 0x80;
    if (name && (!chars || chars > 100 || strpbrk(name, "\r\n")))
        return sb_fail(err, errlen, SB_ERR_INVALID, "a name of 1 to 100 characters is required");
    if (changes && !json_is_object(changes))
        return sb_fail(err, errlen, SB_ERR_INVALID, "the configuration must be an object");
    struct sb_db_rows r;
    struct sb_db_val a0[] = {SB_INT(id)};
    int rc = sb_db_exec(db, q_by_id_any, a0, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!r.nrows) {
        sb_db_rows_free(&r);
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such channel");
    }
    const struct sb_channel_kind *k = sb_channel_kind_find(sb_db_cell(&r, 0, 1));
    json_t *stored = json_loads(sb_db_cell(&r, 0, 3), 0, NULL);
    char kind[40], public_key[80], oldname[512];
    snprintf(kind, sizeof kind, "%s", sb_db_cell(&r, 0, 1));
    snprintf(public_key, sizeof public_key, "%s", sb_db_cell(&r, 0, 4) ? sb_db_cell(&r, 0, 4) : "");
    snprintf(oldname, sizeof oldname, "%s", sb_db_cell(&r, 0, 2));
    int was_enabled = (int)sb_db_cell_int(&r, 0, 5);
    sb_db_rows_free(&r);
    if (!k || !json_is_object(stored)) {
        json_decref(stored);
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "channel %lld: unknown kind or bad settings",
                       (long long)id);
    }
    /* Validation sees plaintext, as on create; what is stored keeps every
     * untouched secret exactly as it was sealed. */
    json_t *plain = json_object(), *changed = json_array();
    const char *ck;
    json_t *v;
    rc = SB_OK;
    json_object_foreach(stored, ck, v)
    {
        if (!is_secret(k, ck) || !json_is_string(v)) {
            json_object_set(plain, ck, v);
            continue;
        }
        if (!keeps_secret(json_object_get(changes, ck)))
            continue; /* replaced below: no need to open it */
        char *p;
        rc = key ? sb_secret_open(key, json_string_value(v), &p, err, errlen)
                 : sb_secret_key_parse(NULL, NULL, err, errlen);
        if (rc != SB_OK) {
            rc = rc == SB_ERR_INVALID ? SB_ERR_CONFIG : rc;
            break;
        }
        json_object_set_new(plain, ck, json_string(p));
        sodium_memzero(p, strlen(p));
        free(p);
    }
    json_object_foreach(changes, ck, v)
    {
        if (rc != SB_OK)
            break;
        if (is_secret(k, ck)) {
            if (keeps_secret(v))
                continue;
            if (!json_is_string(v)) {
                rc = sb_fail(err, errlen, SB_ERR_INVALID, "\"%s\" must be a string", ck);
                break;
            }
            json_object_set(plain, ck, v);
            json_array_append_new(changed, json_string(ck));
        } else if (json_is_null(v)) {
            if (json_object_get(plain, ck))
                json_array_append_new(changed, json_string(ck));
            json_object_del(plain, ck);
        } else if (!json_equal(json_object_get(plain, ck), v)) {
            json_object_set(plain, ck, v);
            json_array_append_new(changed, json_string(ck));
        }
    }
    if (rc == SB_OK && k->validate_config)
        rc = k->validate_config(plain, err, errlen);
    /* Seal again: secrets that were kept get their old sealed text back. */
    json_t *out = rc == SB_OK ? json_deep_copy(plain) : NULL;
    json_object_foreach(out, ck, v)
    {
        if (rc != SB_OK)
            break;
        if (!is_secret(k, ck) || !json_is_string(v))
            continue;
        json_t *old = json_object_get(stored, ck);
        if (keeps_secret(json_object_get(changes, ck)) && json_is_string(old)) {
            json_object_set(out, ck, old);
            continue;
        }
        char *sealed;
        rc = key ? sb_secret_seal(key, json_string_value(v), &sealed, err, errlen)
                 : sb_secret_key_parse(NULL, NULL, err, errlen);
        if (rc == SB_OK) {
            json_object_set_new(out, ck, json_string(sealed));
            free(sealed);
        }
    }
    char *text = rc == SB_OK ? json_dumps(out, JSON_COMPACT) : NULL;
    if (rc == SB_OK && !text)
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    const char *newname = name ? name : oldname;
    int en = enabled < 0 ? was_enabled : enabled != 0;
    if (rc == SB_OK) {
        struct sb_db_val a[] = {SB_TEXT(newname), SB_INT(en), SB_TEXT(text), SB_INT(id)};
        rc = sb_db_exec(db, q_update, a, 4, NULL, err, errlen);
        cache_forget(id);
    }
    free(text);
    json_decref(out);
    if (rc == SB_OK) {
        if (name && strcmp(name, oldname))
            json_array_append_new(changed, json_string("name"));
        if (en != was_enabled)
            json_array_append_new(changed, json_string("enabled"));
        *channel_r =
            public_json(id, kind, newname, masked(k, plain), public_key[0] ? public_key : NULL, en);
        if (changed_r) {
            *changed_r = changed;
            changed = NULL;
        }
    }
    /* Opened secrets must not linger in freed heap memory. */
    json_object_foreach(plain, ck, v)
    {
        if (is_secret(k, ck) && json_is_string(v))
            sodium_memzero((char *)json_string_value(v), json_string_length(v));
    }
    json_decref(plain);
    json_decref(stored);
    json_decref(changed);
    return rc;
}

int sb_channel_list(struct sb_db *db, json_t **array_r, char *err, size_t errlen)
{
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_list, NULL, 0, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < r.nrows; i++) {
        const char *kind = sb_db_cell(&r, i, 1);
        json_t *cfg = json_loads(sb_db_cell(&r, i, 3), 0, NULL);
        json_t *o = public_json(sb_db_cell_int(&r, i, 0), kind, sb_db_cell(&r, i, 2),
                                masked(sb_channel_kind_find(kind), cfg), sb_db_cell(&r, i, 4),
                                (int)sb_db_cell_int(&r, i, 5));
        json_decref(cfg);
        json_object_set_new(o, "created_at", json_string(sb_db_cell(&r, i, 6)));
        json_object_set_new(o, "status",
                            json_pack("{s:s?,s:s?,s:s?}", "last_success_at", sb_db_cell(&r, i, 7),
                                      "last_error_at", sb_db_cell(&r, i, 8), "last_error",
                                      sb_db_cell(&r, i, 9)));
        json_array_append_new(arr, o);
    }
    sb_db_rows_free(&r);
    *array_r = arr;
    return SB_OK;
}

static const char q_status_ok[] =
    "UPDATE channels SET last_success_at = NOW(6) WHERE id = ? AND (last_success_at IS NULL OR "
    "last_success_at < NOW(6) - INTERVAL 60 SECOND)";
static const char q_status_error[] =
    "UPDATE channels SET last_error_at = NOW(6), last_error = ? WHERE id = ?";

/* When this process last wrote a success per channel. The statement above
 * already skips a fresh value, but it has to lock the channel's row to say
 * so, and every ingest transaction holds a shared lock on that row (the
 * foreign keys of interactions and conversations) until its commit: the
 * no-op UPDATE waited for them and queued new ones behind it, 3 ms a batch
 * under bench/webhooks. Remembering the time here skips the statement. A
 * small direct-mapped table: a collision only costs one extra write. */
#define STATUS_SLOTS   64
#define STATUS_EVERY_S 30
static struct {
    int64_t id;
    time_t at;
} status_seen[STATUS_SLOTS];
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 when a success of channel `id` was written lately; otherwise notes now
 * as its time (`error` clears it, so the next success is written). */
static int status_fresh(int64_t id, int error)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    size_t slot = (size_t)((uint64_t)id % STATUS_SLOTS);
    int fresh = 0;
    pthread_mutex_lock(&status_lock);
    if (error) {
        if (status_seen[slot].id == id)
            status_seen[slot].id = 0;
    } else if (status_seen[slot].id == id && ts.tv_sec - status_seen[slot].at < STATUS_EVERY_S) {
        fresh = 1;
    } else {
        status_seen[slot].id = id;
        status_seen[slot].at = ts.tv_sec;
    }
    pthread_mutex_unlock(&status_lock);
    return fresh;
}

void sb_channel_status(struct sb_db *db, int64_t id, const char *error)
{
    char err[256] = "", msg[1024];
    int rc;
    if (status_fresh(id, error != NULL))
        return;
    if (!error) {
        struct sb_db_val a[] = {SB_INT(id)};
        rc = sb_db_exec(db, q_status_ok, a, 1, NULL, err, sizeof err);
    } else {
        snprintf(msg, sizeof msg, "%s", error);
        for (char *c = msg; *c; c++) /* a reason quoted from input stays one printable line */
            if ((unsigned char)*c < 0x20)
                *c = ' ';
        struct sb_db_val a[] = {SB_TEXT(msg), SB_INT(id)};
        rc = sb_db_exec(db, q_status_error, a, 2, NULL, err, sizeof err);
    }
    if (rc != SB_OK)
        sb_warn("channels", "cannot record the status of channel %lld: %s", (long long)id, err);
}

int sb_quarantine(struct sb_db *db, int64_t channel_id, const char *source, const char *error,
                  const char *content_type, const void *body, size_t len, char *err, size_t errlen)
{
    char ct[256];
    snprintf(ct, sizeof ct, "%s", content_type ? content_type : "");
    struct sb_db_val a[] = {channel_id ? SB_INT(channel_id) : SB_NULL, SB_TEXT(source),
                            SB_TEXT(error), SB_TEXT(ct[0] ? ct : NULL),
                            SB_BLOB(body ? body : "", len)};
    return sb_db_exec(db, q_quarantine, a, 5, NULL, err, errlen);
}

void sb_channel_free(struct sb_channel **chp)
{
    struct sb_channel *ch = *chp;
    if (!ch)
        return;
    /* Decrypted secrets must not linger in freed heap memory. */
    for (const char *const *k = ch->kind ? ch->kind->secret_keys : NULL; k && *k; k++) {
        json_t *v = json_object_get(ch->config, *k);
        if (json_is_string(v))
            sodium_memzero((char *)json_string_value(v), json_string_length(v));
    }
    json_decref(ch->config); /* decrypted secrets die with it */
    free(ch);
    *chp = NULL;
}

const char *sb_channel_conf(const struct sb_channel *ch, const char *key)
{
    return json_string_value(json_object_get(ch->config, key));
}

int sb_inbound_batch_add(struct sb_inbound_batch *b, struct sb_inbound *in)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        struct sb_inbound **n = realloc(b->items, cap * sizeof *n);
        if (!n) {
            sb_inbound_free(&in);
            return SB_ERR_NOMEM;
        }
        b->items = n;
        b->cap = cap;
    }
    b->items[b->n++] = in;
    return SB_OK;
}

int sb_inbound_batch_add_status(struct sb_inbound_batch *b, const struct sb_status_update *st)
{
    if (b->nstatuses == b->statuses_cap) {
        size_t cap = b->statuses_cap ? b->statuses_cap * 2 : 4;
        struct sb_status_update *n = realloc(b->statuses, cap * sizeof *n);
        if (!n)
            return SB_ERR_NOMEM;
        b->statuses = n;
        b->statuses_cap = cap;
    }
    b->statuses[b->nstatuses++] = *st;
    return SB_OK;
}

void sb_inbound_batch_free(struct sb_inbound_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        sb_inbound_free(&b->items[i]);
    free(b->items);
    free(b->statuses);
    memset(b, 0, sizeof *b);
}
