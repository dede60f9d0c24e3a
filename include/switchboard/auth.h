/* Credentials: password hashing, session cookies, API tokens, and turning a
 * request's cookie or bearer token into the signed-in user.
 *
 * Secrets handed to clients (session cookies, API tokens) are 32 random bytes
 * in base64url; the database stores only their SHA-256, so a leaked database
 * dump signs nobody in. Passwords use Argon2id (libsodium's interactive
 * limits). Everything here runs on DB worker threads or in the CLI, never on
 * the event loop: a hash costs tens of milliseconds by design. */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include "switchboard/http.h"

#include <stddef.h>
#include <stdint.h>

struct sb_db;

#define SB_SESSION_COOKIE "sb_session"
#define SB_TOKEN_MAX      64 /* text form of a session or API token, with its NUL */

/* Call once before threads start (libsodium initialisation). */
int sb_auth_init(char *err, size_t errlen);

int sb_password_hash(const char *password, char *out, size_t outlen, char *err, size_t errlen);
/* 0 when `password` matches `hash`, -1 otherwise (also for a malformed hash). */
int sb_password_verify(const char *hash, const char *password);

/* New random token text (with `prefix`, e.g. "sbt_") and its SHA-256. */
void sb_token_new(const char *prefix, char *token, size_t tokenlen, unsigned char hash[32]);
void sb_token_hash(const char *token, unsigned char hash[32]);

/* Resolve the request's credentials to a user: the Authorization bearer
 * token when present, else the session cookie. SB_ERR_UNAUTHORIZED when
 * neither is present or valid. */
int sb_auth_resolve(struct sb_db *db, const struct sb_http_request *req, struct sb_user *user_r,
                    char *err, size_t errlen);

int sb_session_create(struct sb_db *db, int64_t user_id, int ttl_seconds, const char *ip,
                      const char *user_agent, char *token_r, size_t tokenlen, char *err,
                      size_t errlen);
int sb_session_delete(struct sb_db *db, const char *token, char *err, size_t errlen);

/* Create an API token for the user with this e-mail; prints nothing. */
int sb_api_token_create(struct sb_db *db, const char *email, const char *name, char *token_r,
                        size_t tokenlen, char *err, size_t errlen);

/* Append a row to audit_log; failures are logged, not returned, since an
 * audit write must not undo the action it records. */
void sb_audit(struct sb_db *db, int64_t user_id, const char *action, const char *target_type,
              int64_t target_id, const char *ip);

#endif
