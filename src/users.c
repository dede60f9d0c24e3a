/* Users: creation, lookup and listing (see users.h). */
#include "switchboard/users.h"
#include "switchboard/auth.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- name: user-insert */
static const char q_user_insert[] =
    "INSERT INTO users (email, name, role, password_hash) VALUES (?, ?, ?, ?)";

/* -- name: user-by-email
 * Disabled users are invisible to login: they get the same answer as an
 * unknown address. */
static const char q_user_by_email[] =
    "SELECT id, email, name, role, COALESCE(locale, ''), password_hash FROM users "
    "WHERE email = ? AND disabled = 0";

/* -- name: user-count */
static const char q_user_count[] = "SELECT COUNT(*) FROM users";

/* -- name: user-list */
static const char q_user_list[] =
    "SELECT id, email, name, role, COALESCE(locale, ''), disabled, created_at FROM users "
    "ORDER BY id";

/* -- name: user-lock
 * FOR UPDATE on every admin row too: two admins demoting each other at
 * once cannot both see the other one still there. */
static const char q_user_lock[] =
    "SELECT id, role, disabled FROM users WHERE id = ? OR role = 'admin' ORDER BY id FOR UPDATE";
static const char q_user_set[] =
    "UPDATE users SET name = COALESCE(?, name), role = COALESCE(?, role), "
    "disabled = COALESCE(?, disabled), password_hash = COALESCE(?, password_hash) WHERE id = ?";
static const char q_user_signout[] = "DELETE FROM sessions WHERE user_id = ?";
static const char q_user_revoke[] =
    "UPDATE api_tokens SET revoked_at = NOW(6) WHERE user_id = ? AND revoked_at IS NULL";
static const char q_user_one[] =
    "SELECT id, email, name, role, COALESCE(locale, ''), disabled, created_at FROM users "
    "WHERE id = ?";

static const char *const role_names[] = {"admin", "agent", "marketer"};
static const enum sb_role role_values[] = {SB_ROLE_ADMIN, SB_ROLE_AGENT, SB_ROLE_MARKETER};

int sb_role_parse(const char *name, enum sb_role *role_r)
{
    for (size_t i = 0; i < 3; i++)
        if (name && !strcmp(name, role_names[i])) {
            *role_r = role_values[i];
            return SB_OK;
        }
    return SB_ERR_INVALID;
}

const char *sb_role_name(enum sb_role role)
{
    for (size_t i = 0; i < 3; i++)
        if (role == role_values[i])
            return role_names[i];
    return "none";
}

int sb_user_email_normalize(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
    if (outlen)
        out[0] = '\0';
    if (!in)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an e-mail address is required");
    while (isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1]))
        n--;
    if (n == 0 || n >= outlen || n > 254)
        return sb_fail(err, errlen, SB_ERR_INVALID, "'%s' is not a valid e-mail address", in);
    int ats = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',') {
            out[0] = '\0';
            return sb_fail(err, errlen, SB_ERR_INVALID, "'%.*s' is not a valid e-mail address",
                           (int)n, in);
        }
        ats += c == '@';
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    const char *at = strchr(out, '@');
    if (ats != 1 || at == out || !at[1] || at[1] == '.' || out[n - 1] == '.')
        out[0] = '\0';
    if (ats != 1 || at == out || !at[1] || at[1] == '.' || out[n - 1] == '.')
        return sb_fail(err, errlen, SB_ERR_INVALID, "'%s' is not a valid e-mail address", out);
    return SB_OK;
}

int sb_user_create(struct sb_db *db, const char *email, const char *name, enum sb_role role,
                   const char *password, int64_t *id_r, char *err, size_t errlen)
{
    char norm[256];
    int rc = sb_user_email_normalize(email, norm, sizeof norm, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!name || !*name || strlen(name) > 200)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a name of 1 to 200 characters is required");
    size_t plen = password ? strlen(password) : 0;
    if (plen < SB_PASSWORD_MIN || plen > SB_PASSWORD_MAX)
        return sb_fail(err, errlen, SB_ERR_INVALID, "the password must be %d to %d characters",
                       SB_PASSWORD_MIN, SB_PASSWORD_MAX);
    char hash[crypto_pwhash_STRBYTES];
    rc = sb_password_hash(password, hash, sizeof hash, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct sb_db_val args[] = {SB_TEXT(norm), SB_TEXT(name), SB_TEXT(sb_role_name(role)),
                               SB_TEXT(hash)};
    struct sb_db_rows res;
    char dberr[256] = "";
    rc = sb_db_exec(db, q_user_insert, args, 4, &res, dberr, sizeof dberr);
    sodium_memzero(hash, sizeof hash);
    if (rc == SB_ERR_EXISTS)
        return sb_fail(err, errlen, rc, "a user with e-mail %s already exists", norm);
    if (rc != SB_OK)
        return sb_fail(err, errlen, rc, "%s", dberr);
    if (id_r)
        *id_r = (int64_t)res.insert_id;
    sb_db_rows_free(&res);
    return SB_OK;
}

int sb_user_find(struct sb_db *db, const char *email, struct sb_user *user_r, char *hash_r,
                 size_t hashlen, char *err, size_t errlen)
{
    struct sb_db_val args[] = {SB_TEXT(email)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_user_by_email, args, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (r.nrows == 0) {
        sb_db_rows_free(&r);
        return SB_ERR_NOT_FOUND;
    }
    memset(user_r, 0, sizeof *user_r);
    user_r->id = sb_db_cell_int(&r, 0, 0);
    snprintf(user_r->email, sizeof user_r->email, "%s", sb_db_cell(&r, 0, 1));
    snprintf(user_r->name, sizeof user_r->name, "%s", sb_db_cell(&r, 0, 2));
    if (sb_role_parse(sb_db_cell(&r, 0, 3), &user_r->role) != SB_OK)
        user_r->role = 0;
    snprintf(user_r->locale, sizeof user_r->locale, "%s", sb_db_cell(&r, 0, 4));
    if (hash_r)
        snprintf(hash_r, hashlen, "%s", sb_db_cell(&r, 0, 5));
    sb_db_rows_free(&r);
    return SB_OK;
}

int sb_user_count(struct sb_db *db, int64_t *count_r, char *err, size_t errlen)
{
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_user_count, NULL, 0, &r, err, errlen);
    if (rc == SB_OK)
        *count_r = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);
    return rc;
}

json_t *sb_user_json(const struct sb_user *u)
{
    return json_pack("{s:I,s:s,s:s,s:s,s:s?}", "id", (json_int_t)u->id, "email", u->email, "name",
                     u->name, "role", sb_role_name(u->role), "locale",
                     u->locale[0] ? u->locale : NULL);
}

static json_t *user_row_json(const struct sb_db_rows *r, size_t i)
{
    const char *locale = sb_db_cell(r, i, 4);
    return json_pack("{s:I,s:s,s:s,s:s,s:s?,s:b,s:s}", "id", (json_int_t)sb_db_cell_int(r, i, 0),
                     "email", sb_db_cell(r, i, 1), "name", sb_db_cell(r, i, 2), "role",
                     sb_db_cell(r, i, 3), "locale", locale && *locale ? locale : NULL, "disabled",
                     sb_db_cell_int(r, i, 5) != 0, "created_at", sb_db_cell(r, i, 6));
}

static int user_update_txn(struct sb_db *db, int64_t id, const char *name, enum sb_role role,
                           int disabled, const char *hash, json_t **user_r, char *err,
                           size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_user_lock, a, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    int found = 0, was_active_admin = 0, other_admins = 0, was_disabled = 0;
    for (size_t i = 0; i < r.nrows; i++) {
        int admin = !strcmp(sb_db_cell(&r, i, 1), "admin");
        int off = sb_db_cell_int(&r, i, 2) != 0;
        if (sb_db_cell_int(&r, i, 0) == id) {
            found = 1;
            was_active_admin = admin && !off;
            was_disabled = off;
        } else if (admin && !off) {
            other_admins++;
        }
    }
    sb_db_rows_free(&r);
    if (!found)
        return sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no such user");
    int stays_admin = (role ? role == SB_ROLE_ADMIN : 1) && (disabled < 0 ? 1 : !disabled);
    if (was_active_admin && !stays_admin && !other_admins)
        return sb_fail(err, errlen, SB_ERR_EXISTS,
                       "this is the last enabled admin: make another user an admin first");
    struct sb_db_val s[] = {SB_TEXT(name), SB_TEXT(role ? sb_role_name(role) : NULL),
                            disabled < 0 ? SB_NULL : SB_INT(disabled != 0), SB_TEXT(hash),
                            SB_INT(id)};
    rc = sb_db_exec(db, q_user_set, s, 5, NULL, err, errlen);
    if (rc == SB_OK && ((disabled > 0 && !was_disabled) || hash)) {
        rc = sb_db_exec(db, q_user_signout, a, 1, NULL, err, errlen);
        if (rc == SB_OK)
            rc = sb_db_exec(db, q_user_revoke, a, 1, NULL, err, errlen);
    }
    if (rc == SB_OK && user_r) {
        rc = sb_db_exec(db, q_user_one, a, 1, &r, err, errlen);
        if (rc == SB_OK && r.nrows)
            *user_r = user_row_json(&r, 0);
        sb_db_rows_free(&r);
    }
    return rc;
}

int sb_user_update(struct sb_db *db, int64_t id, const char *name, enum sb_role role, int disabled,
                   const char *password, json_t **user_r, char *err, size_t errlen)
{
    if (user_r)
        *user_r = NULL;
    if (name && (!*name || strlen(name) > 200 || strpbrk(name, "\r\n")))
        return sb_fail(err, errlen, SB_ERR_INVALID, "a name of 1 to 200 characters is required");
    char hash[crypto_pwhash_STRBYTES];
    if (password) {
        size_t plen = strlen(password);
        if (plen < SB_PASSWORD_MIN || plen > SB_PASSWORD_MAX)
            return sb_fail(err, errlen, SB_ERR_INVALID, "the password must be %d to %d characters",
                           SB_PASSWORD_MIN, SB_PASSWORD_MAX);
        /* Hashed before the transaction: Argon2id takes a while, row locks
         * should not. */
        int rc = sb_password_hash(password, hash, sizeof hash, err, errlen);
        if (rc != SB_OK)
            return rc;
    }
    int rc = sb_db_begin(db, err, errlen);
    if (rc == SB_OK) {
        rc = user_update_txn(db, id, name, role, disabled, password ? hash : NULL, user_r, err,
                             errlen);
        if (rc == SB_OK)
            rc = sb_db_commit(db, err, errlen);
        else
            sb_db_rollback(db);
    }
    if (rc != SB_OK && user_r) {
        json_decref(*user_r);
        *user_r = NULL;
    }
    sodium_memzero(hash, sizeof hash);
    return rc;
}

int sb_user_list(struct sb_db *db, json_t **array_r, char *err, size_t errlen)
{
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_user_list, NULL, 0, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < r.nrows; i++) {
        const char *locale = sb_db_cell(&r, i, 4);
        json_t *o =
            json_pack("{s:I,s:s,s:s,s:s,s:s?,s:b,s:s}", "id", (json_int_t)sb_db_cell_int(&r, i, 0),
                      "email", sb_db_cell(&r, i, 1), "name", sb_db_cell(&r, i, 2), "role",
                      sb_db_cell(&r, i, 3), "locale", locale && *locale ? locale : NULL, "disabled",
                      sb_db_cell_int(&r, i, 5) != 0, "created_at", sb_db_cell(&r, i, 6));
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    sb_db_rows_free(&r);
    if (!arr)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    *array_r = arr;
    return SB_OK;
}

void sb_password_generate(char *out, size_t outlen)
{
    /* No look-alikes (0/O, 1/l/I) so it can be read off a terminal. */
    static const char alphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    if (!outlen)
        return;
    size_t n = outlen - 1 < 20 ? outlen - 1 : 20;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
    out[n] = '\0';
}
