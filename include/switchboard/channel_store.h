/* Stored channels: create, load (secrets decrypted), list (secrets masked).
 * The adapter contract lives in channel.h; this module is the SQL side. */
#ifndef SB_CHANNEL_STORE_H
#define SB_CHANNEL_STORE_H

#include "switchboard/channel.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* Validate `config` with the kind, seal its secrets with `key`, store it
 * with a fresh public key (used in form URLs). `config` is borrowed and may
 * get defaults filled in. *channel_r gets the public JSON (secrets masked). */
int sb_channel_create(struct sb_db *db, const unsigned char key[32], const char *kind,
                      const char *name, json_t *config, json_t **channel_r, char *err,
                      size_t errlen);

/* Load an enabled channel by id (and kind, when `kind` is not NULL) or by
 * public key; SB_ERR_NOT_FOUND otherwise. Secrets come back decrypted. */
int sb_channel_load(struct sb_db *db, const unsigned char key[32], int64_t id, const char *kind,
                    struct sb_channel **ch_r, char *err, size_t errlen);
int sb_channel_load_public(struct sb_db *db, const unsigned char key[32], const char *public_key,
                           struct sb_channel **ch_r, char *err, size_t errlen);

/* sb_channel_load for the webhook path: the row may come from this
 * process's copy of the last two seconds (SB_CHANNEL_CACHE_MS), so a burst
 * of webhooks costs no query per group. A change through
 * sb_channel_update drops this process's copy at once (a webhook loading
 * the row before the change commits may put the old one back); other
 * processes see it within the two seconds. */
#define SB_CHANNEL_CACHE_MS 2000
int sb_channel_load_cached(struct sb_db *db, const unsigned char key[32], int64_t id,
                           const char *kind, struct sb_channel **ch_r, char *err, size_t errlen);

/* Load a channel by id whether enabled or not (the admin's "test
 * connection" works on a disabled channel before it is switched on). */
int sb_channel_load_any(struct sb_db *db, const unsigned char key[32], int64_t id,
                        struct sb_channel **ch_r, char *err, size_t errlen);

/* Change a channel: `name` NULL keeps it, `enabled` -1 keeps it, `changes`
 * (borrowed, may be NULL) is merged into the settings: a JSON null removes a
 * setting; a secret that is absent, null, "" or the mask keeps the stored
 * one, a new value is sealed with `key`. The merged settings are validated
 * by the kind as on create. *channel_r gets the public JSON; *changed_r (may
 * be NULL) the names of the settings that changed, secrets by name only.
 * SB_ERR_NOT_FOUND for no such channel. */
int sb_channel_update(struct sb_db *db, const unsigned char key[32], int64_t id, const char *name,
                      int enabled, json_t *changes, json_t **channel_r, json_t **changed_r,
                      char *err, size_t errlen);

/* Every channel as public JSON, secrets masked as "********". */
int sb_channel_list(struct sb_db *db, json_t **array_r, char *err, size_t errlen);

/* Record how the channel is doing, for `channel list` and the admin page:
 * `error` NULL marks a success (written at most once a minute, so a busy
 * channel does not turn every request into an extra write); otherwise the
 * error and its time. Failures are logged, not returned. */
void sb_channel_status(struct sb_db *db, int64_t id, const char *error);

/* Keep unparseable provider input for admins (the quarantine). */
int sb_quarantine(struct sb_db *db, int64_t channel_id, const char *source, const char *error,
                  const char *content_type, const void *body, size_t len, char *err, size_t errlen);

#endif
