/* Clients as agents see them: reading one with its identities, searching,
 * editing name/custom fields/tags, and merging two into one.
 *
 * A merge keeps the older record's id and leaves a tombstone: the merged-away
 * row stays with merged_into set, so links and API clients holding the old
 * id still resolve. Everything of the other client (identities,
 * conversations, interactions, tags) moves in one transaction, with an audit
 * row and a client.merged event. */
#ifndef SB_CLIENTS_H
#define SB_CLIENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* The client as JSON: id, name, company, custom_fields, tags, identities
 * (kind, value, raw, verified, display_name), created_at, last_activity_at.
 * For a merged-away id, SB_OK with *merged_into_r set and *client_r NULL. */
int sb_client_get(struct sb_db *db, int64_t id, json_t **client_r, int64_t *merged_into_r,
                  char *err, size_t errlen);

/* Custom fields are flat key → value pairs shown on the client card; these
 * bound one client's set (400 beyond them). Characters, not bytes. */
#define SB_CLIENT_FIELD_KEY_MAX   64
#define SB_CLIENT_FIELD_VALUE_MAX 1000
#define SB_CLIENT_FIELDS_MAX      50

/* Apply a PATCH body: "name", "company" (string or null, one line, at most
 * 255 characters; "" clears), "custom_fields" (object of name → string,
 * number, boolean or null; applied key by key, null removes the key; the
 * limits above), "tags" (array of strings, replaces). In one transaction
 * with an audit_log row "client.update" (detail: the changes and the
 * previous values of what they touched) and a client.updated event.
 * SB_ERR_INVALID names the bad member; SB_ERR_NOT_FOUND for no client or a
 * merged-away one. */
int sb_client_update(struct sb_db *db, int64_t id, const json_t *patch, int64_t user_id,
                     const char *ip, char *err, size_t errlen);

/* Merge `other_id` into `keep_id`. SB_ERR_NOT_FOUND / SB_ERR_INVALID (same id,
 * already merged) with a message for a person. */
int sb_client_merge(struct sb_db *db, int64_t keep_id, int64_t other_id, int64_t user_id,
                    const char *ip, char *err, size_t errlen);

#endif
