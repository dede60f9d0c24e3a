/* Handlers of the HTTP API, one group per file (api_*.c), listed in the
 * route table in routes.c. Each has the sb_handler_fn signature; `db` is NULL
 * for routes flagged SB_ROUTE_LOOP. */
#ifndef SB_API_H
#define SB_API_H

#include "switchboard/http.h"

/* api_system.c: probes and metrics */
void sb_api_healthz(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                    struct sb_http_reply *);
void sb_api_readyz(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                   struct sb_http_reply *);
void sb_api_metrics(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                    struct sb_http_reply *);

/* api_session.c: sign in and out, who am I */
void sb_api_session_create(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                           struct sb_http_reply *);
void sb_api_session_get(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                        struct sb_http_reply *);
void sb_api_session_delete(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                           struct sb_http_reply *);

/* api_users.c: user management (admins) */
void sb_api_users_list(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                       struct sb_http_reply *);
void sb_api_users_create(struct sb_app *, struct sb_db *, const struct sb_http_request *,
                         struct sb_http_reply *);

#define SB_HANDLER(name)                                                                           \
    void name(struct sb_app *, struct sb_db *, const struct sb_http_request *,                     \
              struct sb_http_reply *)

/* api_clients.c */
SB_HANDLER(sb_api_clients_list);
SB_HANDLER(sb_api_clients_get);
SB_HANDLER(sb_api_clients_patch);
SB_HANDLER(sb_api_clients_merge);
SB_HANDLER(sb_api_merge_suggestions_list);
SB_HANDLER(sb_api_merge_suggestion_decide);

/* api_hooks.c: provider webhooks */
SB_HANDLER(sb_api_hook);
SB_HANDLER(sb_api_hook_verify);
void sb_api_hook_group(struct sb_app *app, struct sb_db *db,
                       const struct sb_http_request *const *reqs, struct sb_http_reply **reps,
                       size_t n);

/* api_forms.c: website forms (public; rate-limited per IP, CORS) */
SB_HANDLER(sb_api_form_post);
SB_HANDLER(sb_api_form_preflight);

/* api_channels.c: channel management (admins) */
SB_HANDLER(sb_api_channels_list);
SB_HANDLER(sb_api_channels_create);
SB_HANDLER(sb_api_channels_patch);
SB_HANDLER(sb_api_users_patch);
SB_HANDLER(sb_api_channels_test);

/* api_quarantine.c: unreadable provider input, for admins */
SB_HANDLER(sb_api_quarantine_list);
SB_HANDLER(sb_api_quarantine_body);
SB_HANDLER(sb_api_quarantine_resolve);

/* api_conversations.c */
SB_HANDLER(sb_api_conversations_list);
SB_HANDLER(sb_api_conversations_get);
SB_HANDLER(sb_api_conversations_patch);
SB_HANDLER(sb_api_conversations_interactions);
SB_HANDLER(sb_api_conversations_note);
/* 202 with the outbound interaction; the sender delivers it */
SB_HANDLER(sb_api_conversations_reply);
SB_HANDLER(sb_api_conversations_retry);
/* counts per status and assignee view, with the list's filters */
SB_HANDLER(sb_api_conversations_counts);

/* api_teams.c: teams (admins change them; agents read them) */
SB_HANDLER(sb_api_teams_list);
SB_HANDLER(sb_api_teams_create);
SB_HANDLER(sb_api_teams_patch); /* rename */
SB_HANDLER(sb_api_teams_delete);
SB_HANDLER(sb_api_teams_member_put);    /* add (idempotent) */
SB_HANDLER(sb_api_teams_member_delete); /* remove */

/* api_reports.c: conversations per channel and day, response and
 * resolution times per agent, who is waiting for an answer */
SB_HANDLER(sb_api_reports);

/* api_attachments.c: agents' uploads (201 {"id"…}) and attachment downloads
 * under the inbox's visibility rule */
SB_HANDLER(sb_api_upload_create);
SB_HANDLER(sb_api_attachment_get);
/* GET /f/{token}: public, signed and expiring link to one file (for
 * providers that download what we send) */
SB_HANDLER(sb_api_file_link);

/* api_campaigns.c: segments, templates, campaigns (marketers, admins) and
 * the public links in campaign mail */
SB_HANDLER(sb_api_segments_create);
SB_HANDLER(sb_api_segments_list);
SB_HANDLER(sb_api_segments_get);
SB_HANDLER(sb_api_segments_patch);
SB_HANDLER(sb_api_segments_delete);
/* POST {"filter"}: the count only, nothing saved (the segment editor) */
SB_HANDLER(sb_api_segments_count);
/* id, kind, name, enabled of every channel: marketers pick channels by name */
SB_HANDLER(sb_api_channel_names);
SB_HANDLER(sb_api_templates_create);
SB_HANDLER(sb_api_templates_list);
SB_HANDLER(sb_api_templates_get);
SB_HANDLER(sb_api_templates_patch);
SB_HANDLER(sb_api_templates_delete);
SB_HANDLER(sb_api_templates_preview);
SB_HANDLER(sb_api_templates_test);
SB_HANDLER(sb_api_campaigns_create);
SB_HANDLER(sb_api_campaigns_list);
SB_HANDLER(sb_api_campaigns_get);
SB_HANDLER(sb_api_campaigns_patch);
SB_HANDLER(sb_api_campaigns_delete);
SB_HANDLER(sb_api_campaigns_action);
SB_HANDLER(sb_api_campaigns_stats);
SB_HANDLER(sb_api_campaigns_csv);
SB_HANDLER(sb_api_unsubscribe_page);
SB_HANDLER(sb_api_unsubscribe);
SB_HANDLER(sb_api_track_open);
SB_HANDLER(sb_api_track_click);
SB_HANDLER(sb_api_view);

/* api_agent.c: agents' tools (canned responses, colleagues for @mentions,
 * notifications, the user's own settings) */
SB_HANDLER(sb_api_canned_list);
SB_HANDLER(sb_api_canned_create);
SB_HANDLER(sb_api_canned_patch);
SB_HANDLER(sb_api_canned_delete);
SB_HANDLER(sb_api_canned_render);
SB_HANDLER(sb_api_agents_list);
SB_HANDLER(sb_api_notifications_list);
SB_HANDLER(sb_api_notification_read);
SB_HANDLER(sb_api_notifications_read_all);
SB_HANDLER(sb_api_me_patch);

#endif
