/* Signing in and out.
 *
 * A wrong password and an unknown e-mail must be indistinguishable, in the
 * answer and in its timing: both run one Argon2id verification (against a
 * dummy hash when the user does not exist) and both write one audit row.
 * Failures count against the client IP and the account; a limit hit answers
 * 429 with Retry-After even for the right password, so guessing cannot go
 * on in the background. */
#include "switchboard/api.h"
#include "switchboard/app.h"
#include "switchboard/auth.h"
#include "switchboard/notify.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"
#include "switchboard/log.h"
#include "switchboard/ratelimit.h"
#include "switchboard/users.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void rate_limited(struct sb_http_reply *rep, int retry_after)
{
    char v[16];
    snprintf(v, sizeof v, "%d", retry_after);
    sb_reply_error(rep, SB_ERR_LIMIT, "too many failed sign-in attempts; try again in %d seconds",
                   retry_after);
    sb_reply_header(rep, "Retry-After", v);
}

void sb_api_session_create(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    json_t *body;
    if (sb_request_json(req, rep, &body) != SB_OK)
        return;
    const char *email_in = json_string_value(json_object_get(body, "email"));
    const char *password = json_string_value(json_object_get(body, "password"));
    char email[256];
    char err[256] = "";
    if (!email_in || !password) {
        sb_reply_error(rep, SB_ERR_INVALID, "\"email\" and \"password\" strings are required");
        goto out;
    }
    if (strlen(password) > SB_PASSWORD_MAX) {
        sb_reply_error(rep, SB_ERR_INVALID, "the password is too long");
        goto out;
    }
    if (sb_user_email_normalize(email_in, email, sizeof email, err, sizeof err) != SB_OK) {
        sb_reply_error(rep, SB_ERR_INVALID, "%s", err);
        goto out;
    }

    /* A sign-in from another site's page is refused outright: SameSite
     * covers the cookie, this covers the attempt itself. */
    if (req->origin[0]) {
        const char *o = strstr(req->origin, "://");
        if (!o || strcasecmp(o + 3, req->host) != 0) {
            sb_reply_error(rep, SB_ERR_FORBIDDEN, "cross-origin sign-in refused");
            goto out;
        }
    }
    time_t now = time(NULL);
    int retry = 0;
    char ipkey[80];
    sb_ratelimit_ip_key(req->peer, ipkey, sizeof ipkey);
    /* Count the attempt before the (slow) password check, so concurrent
     * guesses cannot all pass a check made before any of them failed; a
     * right password takes its count back. */
    if (sb_ratelimit_take(app->login_ip, ipkey, now, &retry) != SB_OK) {
        rate_limited(rep, retry);
        goto out;
    }
    if (sb_ratelimit_take(app->login_account, email, now, &retry) != SB_OK) {
        sb_ratelimit_refund(app->login_ip, ipkey);
        rate_limited(rep, retry);
        goto out;
    }

    struct sb_user user;
    char hash[crypto_pwhash_STRBYTES] = "";
    int rc = sb_user_find(db, email, &user, hash, sizeof hash, err, sizeof err);
    if (rc != SB_OK && rc != SB_ERR_NOT_FOUND) {
        sb_reply_failure(rep, rc, "sign-in lookup", err);
        goto out;
    }
    int found = rc == SB_OK;
    int ok = sb_password_verify(found ? hash : app->dummy_hash, password) == 0 && found;
    sodium_memzero(hash, sizeof hash);
    if (!ok) {
        sb_audit(db, found ? user.id : 0, "login.failed", "user", found ? user.id : 0, req->peer);
        sb_reply_error(rep, SB_ERR_UNAUTHORIZED, "wrong e-mail or password");
        goto out;
    }

    char token[SB_TOKEN_MAX];
    rc = sb_session_create(db, user.id, app->cfg->session_ttl, req->peer, req->user_agent, token,
                           sizeof token, err, sizeof err);
    if (rc != SB_OK) {
        sb_reply_failure(rep, rc, "create session", err);
        goto out;
    }
    sb_ratelimit_refund(app->login_ip, ipkey);
    sb_ratelimit_reset(app->login_account, email);
    sb_audit(db, user.id, "login", "user", user.id, req->peer);
    char cookie[256];
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s",
             SB_SESSION_COOKIE, token, app->cfg->session_ttl, app->cookie_secure ? "; Secure" : "");
    sodium_memzero(token, sizeof token);
    sb_reply_json(rep, 200, json_pack("{s:o}", "user", sb_user_json(&user)));
    sb_reply_header(rep, "Set-Cookie", cookie);
out:
    json_decref(body);
}

void sb_api_session_get(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                        struct sb_http_reply *rep)
{
    (void)app;
    json_t *u = sb_user_json(&req->user);
    struct sb_notify_prefs prefs;
    char err[256] = "";
    int rc = sb_notify_prefs_get(db, req->user.id, &prefs, err, sizeof err);
    if (rc != SB_OK) {
        json_decref(u);
        sb_reply_failure(rep, rc, "read settings", err);
        return;
    }
    json_object_set_new(u, "notify", sb_notify_prefs_json(&prefs));
    sb_reply_json(rep, 200, json_pack("{s:o}", "user", u));
}

void sb_api_session_delete(struct sb_app *app, struct sb_db *db, const struct sb_http_request *req,
                           struct sb_http_reply *rep)
{
    char token[SB_TOKEN_MAX + 16];
    char err[256] = "";
    if (!req->user.via_token &&
        sb_request_cookie(req, SB_SESSION_COOKIE, token, sizeof token) == 0) {
        int rc = sb_session_delete(db, token, err, sizeof err);
        sodium_memzero(token, sizeof token);
        if (rc != SB_OK) {
            sb_reply_failure(rep, rc, "end session", err);
            return;
        }
        sb_audit(db, req->user.id, "logout", "user", req->user.id, req->peer);
    }
    rep->status = 204;
    char cookie[160];
    snprintf(cookie, sizeof cookie, "%s=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0%s",
             SB_SESSION_COOKIE, app->cookie_secure ? "; Secure" : "");
    sb_reply_header(rep, "Set-Cookie", cookie);
}
