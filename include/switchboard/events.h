/* Events: rows of the append-only `events` table, written in the same
 * transaction as the change they describe (a transactional outbox). The
 * WebSocket layer tails the table by id; several nodes tailing one table is
 * how live updates cross nodes. */
#ifndef SB_EVENTS_H
#define SB_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* Append one event; `data` is stolen (may be NULL for {}). Zero ids are
 * stored as NULL. */
int sb_event_append(struct sb_db *db, const char *type, int64_t conversation_id, int64_t client_id,
                    int64_t user_id, json_t *data, char *err, size_t errlen);

#endif
