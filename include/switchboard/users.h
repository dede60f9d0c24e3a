/* Agents, admins and marketers: the people who sign in.
 * Passwords are stored as libsodium Argon2id strings only. */
#ifndef SB_USERS_H
#define SB_USERS_H

#include "switchboard/http.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

int sb_role_parse(const char *name, enum sb_role *role_r);
const char *sb_role_name(enum sb_role role);

/* Trim and lower-case an e-mail address used as a login name and check that
 * it looks like one (local@domain, no spaces). */
int sb_user_email_normalize(const char *in, char *out, size_t outlen, char *err, size_t errlen);

/* Create a user; SB_ERR_EXISTS when the e-mail is taken, SB_ERR_INVALID for a
 * bad e-mail, name or a password shorter than SB_PASSWORD_MIN. */
int sb_user_create(struct sb_db *db, const char *email, const char *name, enum sb_role role,
                   const char *password, int64_t *id_r, char *err, size_t errlen);

/* Look up an enabled user by (normalised) e-mail; fills the password hash.
 * SB_ERR_NOT_FOUND when there is none. */
int sb_user_find(struct sb_db *db, const char *email, struct sb_user *user_r, char *hash_r,
                 size_t hashlen, char *err, size_t errlen);

int sb_user_count(struct sb_db *db, int64_t *count_r, char *err, size_t errlen);

/* {"id","email","name","role","locale"} */
json_t *sb_user_json(const struct sb_user *u);

/* Every user as a JSON array, ordered by id. */
int sb_user_list(struct sb_db *db, json_t **array_r, char *err, size_t errlen);

/* Change a user: `name` and `password` NULL keep them, `role` 0 keeps it,
 * `disabled` -1 keeps it. A new password is hashed as on create (Argon2id).
 * Disabling, or a new password, signs the user out everywhere: their
 * sessions are deleted and API tokens revoked in the same transaction.
 * SB_ERR_NOT_FOUND for no such user, SB_ERR_EXISTS ("last admin") when the
 * change would leave no enabled admin. *user_r (may be NULL) gets the user's
 * row as sb_user_list shows it. Runs in its own transaction. */
int sb_user_update(struct sb_db *db, int64_t id, const char *name, enum sb_role role, int disabled,
                   const char *password, json_t **user_r, char *err, size_t errlen);

/* A random password for the first admin: 20 characters, about 116 bits. */
void sb_password_generate(char *out, size_t outlen);

#endif
