/* Live updates: GET /ws (subprotocol switchboard.v1) pushes rows of the
 * events table to the agents allowed to see them (DESIGN.md, "Events").
 *
 * Three parts:
 *   - the tailer, a thread with its own MariaDB connection, reads new event
 *     rows by id (woken at once by a local commit through sb_ws_nudge(), and
 *     every live.poll_ms for other nodes' events), turns each into one
 *     ready-to-send frame and hands the batch to the loop; with nobody
 *     connected it only keeps its place (MAX(id)) and hands the loop a mark,
 *     so a connection opened meanwhile reads the skipped ids from the table;
 *   - the loop fans each frame out to the connections that may see it, into
 *     a bounded queue per connection; a connection whose queue is full is
 *     closed with 4008 and catches up by resume;
 *   - resume: {"type":"resume","after":N} replays every later event from the
 *     table (on a DB worker, page by page), then live ones.
 *
 * Ids are the order, but a transaction may commit after one that took a
 * higher id. The tailer remembers the ids it skipped and looks for them again
 * for a grace period, so a late commit is still delivered (after the higher
 * ids; a client keeps the highest id it saw and drops an id it already has).
 *
 * Threads: everything here runs on the loop thread except the tailer and
 * the resume jobs' run functions; sb_ws_nudge() may be called from any
 * thread. */
#ifndef SB_WS_H
#define SB_WS_H

#include "switchboard/http.h"
#include "switchboard/limits.h"

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct sb_app;
struct sb_db_params;

#define SB_WS_PROTOCOL "switchboard.v1"

/* Close codes (RFC 6455 leaves 4000-4999 to applications). */
enum {
    SB_WS_CLOSE_TOO_SLOW = 4008, /* the queue overflowed: reconnect and resume */
    SB_WS_CLOSE_BAD_MESSAGE = 4000,
};

/* Who is looking: the signed-in user and their teams. */
struct sb_ws_viewer {
    int64_t user_id;
    enum sb_role role;
    int64_t teams[SB_LIVE_TEAMS_MAX];
    size_t nteams;
};

/* What an event is about, as the visibility rules need it. assignee_id and
 * team_id are the conversation's when the tailer read the row. */
struct sb_ws_scope {
    const char *type;
    int64_t conversation_id, assignee_id, team_id, user_id;
};

/* The REST rule (api_conversations.c) for conversations: admins see all;
 * an agent sees unassigned ones, their own and their teams'. Events about
 * no conversation: client.* and agent.* go to every agent and admin,
 * campaign.* and client.* to marketers, a notification.* only to its user,
 * anything else (channel.*, quarantine.*) only to admins. */
int sb_ws_may_see(const struct sb_ws_viewer *v, const struct sb_ws_scope *e);

/* Start the tailer (reads the newest event id first, so a new node does not
 * replay history). Call after the DB pool is up. */
int sb_ws_start(struct sb_app *app, struct lws_context *ctx, const struct sb_db_params *params,
                char *err, size_t errlen);
/* Stop the tailer and free every queued frame; connections must be gone. */
void sb_ws_stop(void);

/* Events were committed on this node: read them now. Any thread. */
void sb_ws_nudge(void);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE on the HTTP protocol: checks the path,
 * the subprotocol and the credentials; answers 400/401/403/503 itself.
 * Returns what the callback must return. */
int sb_ws_confirm_upgrade(struct lws *wsi, struct sb_app *app);

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: hand new frames to connections. */
void sb_ws_drain(void);

/* Begin the stop: close every connection with 1001 (going away). */
void sb_ws_close_all(void);

/* Open connections now (loop thread). */
size_t sb_ws_connections(void);

extern const struct lws_protocols sb_ws_protocol;

#endif
