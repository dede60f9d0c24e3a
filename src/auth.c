/* Credentials (see auth.h). */
#include "switchboard/auth.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"
#include "switchboard/users.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* -- name: session-user
 * One indexed lookup by primary key joined to the user: this runs on every
 * signed-in request. */
static const char q_session_user[] =
    "SELECT u.id, u.email, u.name, u.role, COALESCE(u.locale, '') FROM sessions s "
    "JOIN users u ON u.id = s.user_id "
    "WHERE s.token_hash = ? AND s.expires_at > NOW(6) AND u.disabled = 0";

/* -- name: token-user
 * `stale` tells whether last_used_at is worth updating: writing it on every
 * request would turn each API read into a write. */
static const char q_token_user[] =
    "SELECT u.id, u.email, u.name, u.role, COALESCE(u.locale, ''), t.id, "
    "(t.last_used_at IS NULL OR t.last_used_at < NOW(6) - INTERVAL 60 SECOND) "
    "FROM api_tokens t JOIN users u ON u.id = t.user_id "
    "WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.disabled = 0";

/* -- name: token-touch */
static const char q_token_touch[] = "UPDATE api_tokens SET last_used_at = NOW(6) WHERE id = ?";

/* -- name: session-insert */
static const char q_session_insert[] =
    "INSERT INTO sessions (token_hash, user_id, expires_at, last_seen_at, ip, user_agent) "
    "VALUES (?, ?, NOW(6) + INTERVAL ? SECOND, NOW(6), ?, ?)";

/* -- name: session-delete */
static const char q_session_delete[] = "DELETE FROM sessions WHERE token_hash = ?";

/* -- name: session-prune
 * Expired sessions are dead weight; a login sweeps a few, so the table stays
 * small without a separate cron job. */
static const char q_session_prune[] = "DELETE FROM sessions WHERE expires_at < NOW(6) LIMIT 100";

/* -- name: user-login-touch */
static const char q_user_login_touch[] = "UPDATE users SET last_login_at = NOW(6) WHERE id = ?";

/* -- name: token-insert */
static const char q_token_insert[] =
    "INSERT INTO api_tokens (user_id, name, token_hash) VALUES (?, ?, ?)";

/* -- name: audit-insert */
static const char q_audit_insert[] =
    "INSERT INTO audit_log (user_id, action, target_type, target_id, ip) VALUES (?, ?, ?, ?, ?)";

int sb_auth_init(char *err, size_t errlen)
{
    if (sodium_init() < 0)
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "libsodium failed to initialise");
    return SB_OK;
}

int sb_password_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen)
{
    if (outlen < crypto_pwhash_STRBYTES)
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "password hash buffer too small");
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory while hashing a password");
    return SB_OK;
}

int sb_password_verify(const char *hash, const char *password)
{
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 ? 0 : -1;
}

void sb_token_hash(const char *token, unsigned char hash[32])
{
    crypto_hash_sha256(hash, (const unsigned char *)token, strlen(token));
}

void sb_token_new(const char *prefix, char *token, size_t tokenlen, unsigned char hash[32])
{
    unsigned char raw[32];
    size_t plen = strlen(prefix);
    if (tokenlen < plen + sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)) {
        /* A caller bug: never hand out a short or unterminated token. */
        sb_error("auth", "token buffer too small");
        abort();
    }
    randombytes_buf(raw, sizeof raw);
    snprintf(token, tokenlen, "%s", prefix);
    sodium_bin2base64(token + plen, tokenlen - plen, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    sb_token_hash(token, hash);
}

static void fill_user(const struct sb_db_rows *r, struct sb_user *u)
{
    memset(u, 0, sizeof *u);
    u->id = sb_db_cell_int(r, 0, 0);
    snprintf(u->email, sizeof u->email, "%s", sb_db_cell(r, 0, 1));
    snprintf(u->name, sizeof u->name, "%s", sb_db_cell(r, 0, 2));
    if (sb_role_parse(sb_db_cell(r, 0, 3), &u->role) != SB_OK)
        u->role = 0; /* an unknown role passes no role check */
    snprintf(u->locale, sizeof u->locale, "%s", sb_db_cell(r, 0, 4));
}

int sb_auth_resolve(struct sb_db *db, const struct sb_http_request *req, struct sb_user *user_r,
                    char *err, size_t errlen)
{
    unsigned char hash[32];
    const char *auth = req->authorization;
    int bearer = 0;
    if (auth[0]) {
        if (strncasecmp(auth, "Bearer ", 7) != 0)
            return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED,
                           "unsupported Authorization scheme; use Bearer <token>");
        const char *tok = auth + 7;
        while (*tok == ' ')
            tok++;
        sb_token_hash(tok, hash);
        bearer = 1;
    } else {
        char tok[SB_TOKEN_MAX + 16];
        if (sb_request_cookie(req, SB_SESSION_COOKIE, tok, sizeof tok) != 0)
            return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED, "sign in first");
        sb_token_hash(tok, hash);
    }
    struct sb_db_val args[] = {SB_BLOB(hash, sizeof hash)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, bearer ? q_token_user : q_session_user, args, 1, &r, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (r.nrows == 0) {
        sb_db_rows_free(&r);
        return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED,
                       bearer ? "the API token is not valid" : "the session has expired");
    }
    fill_user(&r, user_r);
    user_r->via_token = bearer;
    if (bearer && sb_db_cell_int(&r, 0, 6)) {
        struct sb_db_val id[] = {SB_INT(sb_db_cell_int(&r, 0, 5))};
        char ignored[128] = "";
        sb_db_exec(db, q_token_touch, id, 1, NULL, ignored, sizeof ignored);
    }
    sb_db_rows_free(&r);
    return SB_OK;
}

int sb_session_create(struct sb_db *db, int64_t user_id, int ttl_seconds, const char *ip,
                      const char *user_agent, char *token_r, size_t tokenlen, char *err,
                      size_t errlen)
{
    unsigned char hash[32];
    sb_token_new("", token_r, tokenlen, hash);
    /* Stored for the user's session list; printable ASCII only, so a hostile
     * or broken header can never make the insert (and the sign-in) fail. */
    char ua[256];
    snprintf(ua, sizeof ua, "%s", user_agent ? user_agent : "");
    for (char *c = ua; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    struct sb_db_val args[] = {SB_BLOB(hash, sizeof hash), SB_INT(user_id), SB_INT(ttl_seconds),
                               SB_TEXT(ip), SB_TEXT(ua[0] ? ua : NULL)};
    int rc = sb_db_exec(db, q_session_insert, args, 5, NULL, err, errlen);
    if (rc != SB_OK)
        return rc;
    char ignored[128] = "";
    struct sb_db_val uid[] = {SB_INT(user_id)};
    sb_db_exec(db, q_user_login_touch, uid, 1, NULL, ignored, sizeof ignored);
    sb_db_exec(db, q_session_prune, NULL, 0, NULL, ignored, sizeof ignored);
    return SB_OK;
}

int sb_session_delete(struct sb_db *db, const char *token, char *err, size_t errlen)
{
    unsigned char hash[32];
    sb_token_hash(token, hash);
    struct sb_db_val args[] = {SB_BLOB(hash, sizeof hash)};
    return sb_db_exec(db, q_session_delete, args, 1, NULL, err, errlen);
}

int sb_api_token_create(struct sb_db *db, const char *email, const char *name, char *token_r,
                        size_t tokenlen, char *err, size_t errlen)
{
    char norm[256];
    int rc = sb_user_email_normalize(email, norm, sizeof norm, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct sb_user u;
    rc = sb_user_find(db, norm, &u, NULL, 0, err, errlen);
    if (rc == SB_ERR_NOT_FOUND)
        return sb_fail(err, errlen, rc, "no active user with e-mail %s", norm);
    if (rc != SB_OK)
        return rc;
    unsigned char hash[32];
    sb_token_new("sbt_", token_r, tokenlen, hash);
    struct sb_db_val args[] = {SB_INT(u.id), SB_TEXT(name && *name ? name : "cli"),
                               SB_BLOB(hash, sizeof hash)};
    rc = sb_db_exec(db, q_token_insert, args, 3, NULL, err, errlen);
    if (rc == SB_OK)
        sb_audit(db, u.id, "token.create", "user", u.id, NULL);
    return rc;
}

void sb_audit(struct sb_db *db, int64_t user_id, const char *action, const char *target_type,
              int64_t target_id, const char *ip)
{
    struct sb_db_val args[] = {user_id ? SB_INT(user_id) : SB_NULL, SB_TEXT(action),
                               SB_TEXT(target_type), target_id ? SB_INT(target_id) : SB_NULL,
                               SB_TEXT(ip && *ip ? ip : NULL)};
    char err[256] = "";
    if (sb_db_exec(db, q_audit_insert, args, 5, NULL, err, sizeof err) != SB_OK)
        sb_warn("audit", "could not record %s: %s", action, err);
}
