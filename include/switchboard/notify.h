/* Notifications: rows of the notifications table telling one user about
 * something (today: a colleague @mentioned them in a note), each with a
 * notification.* event whose events.user_id is that user, so the WebSocket
 * layer pushes it to that user only (ws.h, sb_ws_may_see).
 *
 * Mentions arrive as a structured field of the note, "mentions": [user ids];
 * the text's "@Name" is for people. Who may be mentioned: an active agent or
 * admin who can see the conversation. Anyone else is refused (422) rather
 * than notified about a conversation they could not open: the author learns
 * at once and can assign it or pick someone else. */
#ifndef SB_NOTIFY_H
#define SB_NOTIFY_H

#include "switchboard/http.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* At most this many people named in one note. */
#define SB_MENTIONS_MAX 20

/* Read and check the "mentions" member of a note's body (absent or null: no
 * mentions). 0 with *ids_r a new array of distinct user ids (possibly
 * empty); -1 with `rep` answered: 400 when it is not an array of positive
 * integers, 422 "unknown_user" for an id that is no active agent or admin,
 * 422 "mention_not_visible" for one who cannot see conversation `conv_id`. */
int sb_mentions_parse(struct sb_db *db, const json_t *mentions, int64_t conv_id, json_t **ids_r,
                      struct sb_http_reply *rep);

/* In the caller's transaction: one 'mention' notification and one
 * notification.created event per id in `ids` except the author's own.
 * `text` is the note (a preview of it goes into the event). */
int sb_mentions_notify(struct sb_db *db, const json_t *ids, int64_t conv_id, int64_t interaction_id,
                       int64_t actor_id, const char *actor_name, const char *text, char *err,
                       size_t errlen);

/* Which notifications a user wants besides mentions (always on): kinds
 * "assigned" and "message", stored with the user (users.notify_*). */
struct sb_notify_prefs {
    int assigned, message;
};

int sb_notify_prefs_get(struct sb_db *db, int64_t user_id, struct sb_notify_prefs *p, char *err,
                        size_t errlen);
/* Apply the members of `notify` ({"assigned": bool, "message": bool}, each
 * optional) to *p. SB_ERR_INVALID with a message for anything else. */
int sb_notify_prefs_parse(const json_t *notify, struct sb_notify_prefs *p, char *err,
                          size_t errlen);
int sb_notify_prefs_set(struct sb_db *db, int64_t user_id, const struct sb_notify_prefs *p,
                        char *err, size_t errlen);
json_t *sb_notify_prefs_json(const struct sb_notify_prefs *p);

/* In the caller's transaction: tell `assignee_id` that `actor_id` assigned
 * them conversation `conv_id` (one 'assigned' notification and its
 * notification.created event), unless they assigned it to themselves or
 * turned the kind off. */
int sb_notify_assigned(struct sb_db *db, int64_t conv_id, int64_t assignee_id, int64_t actor_id,
                       const char *actor_name, char *err, size_t errlen);

/* In ingest's transaction: `pairs` is a JSON array of [conversation_id,
 * interaction_id] for a batch's new inbound messages. Each conversation's
 * assignee (who wants "message" notifications) gets its one unread
 * 'message' notification created or refreshed to the newest interaction,
 * and a notification.created event for it: two statements per batch
 * whatever its size, the second only when the first wrote a row. */
int sb_notify_inbound(struct sb_db *db, const char *pairs, char *err, size_t errlen);

/* The user opened conversation `conv_id`: its 'message' notification is
 * read (no event: the caller's conversation.updated tells the other tabs,
 * which reload the bell). */
int sb_notify_conversation_read(struct sb_db *db, int64_t conv_id, int64_t user_id, char *err,
                                size_t errlen);

/* The user-visible agents (active admins and agents), by name, as
 * [{"id","name","role"}]; with `conv_id` > 0 each also has "can_see" for
 * that conversation. */
int sb_agents_list(struct sb_db *db, int64_t conv_id, json_t **items_r, char *err, size_t errlen);

#endif
