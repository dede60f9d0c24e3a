/* The route table: every HTTP endpoint, who may call it and where it runs.
 * Order matters only between patterns that could match the same path; the
 * first match wins. Counters in each row feed /metrics. */
#include "switchboard/api.h"
#include "switchboard/http.h"

#include <stddef.h>

#define PUBLIC_LOOP (SB_ROUTE_PUBLIC | SB_ROUTE_LOOP)
/* Conversations are agents' work; marketers see clients, not the inbox. */
#define AGENTS    (SB_ROLE_ADMIN | SB_ROLE_AGENT)
#define MARKETERS (SB_ROLE_ADMIN | SB_ROLE_MARKETER)
#define ROUTE(m, pat, fn, fl, ro)                                                                  \
    {                                                                                              \
        .methods = (m), .pattern = (pat), .handler = (fn), .flags = (fl), .roles = (ro)            \
    }

struct sb_route sb_routes[] = {
    ROUTE(SB_GET, "/healthz", sb_api_healthz, PUBLIC_LOOP, 0),
    ROUTE(SB_GET, "/readyz", sb_api_readyz, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/metrics", sb_api_metrics, PUBLIC_LOOP, 0),

    ROUTE(SB_POST, "/api/v1/session", sb_api_session_create, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/api/v1/session", sb_api_session_get, 0, SB_ROLE_ANY),
    ROUTE(SB_DELETE, "/api/v1/session", sb_api_session_delete, 0, SB_ROLE_ANY),
    ROUTE(SB_GET, "/api/v1/me", sb_api_session_get, 0, SB_ROLE_ANY),

    ROUTE(SB_GET, "/api/v1/clients", sb_api_clients_list, 0, SB_ROLE_ANY),
    ROUTE(SB_GET, "/api/v1/clients/{id}", sb_api_clients_get, 0, SB_ROLE_ANY),
    ROUTE(SB_PATCH, "/api/v1/clients/{id}", sb_api_clients_patch, 0, SB_ROLE_ANY),
    ROUTE(SB_POST, "/api/v1/clients/{id}/merge", sb_api_clients_merge, 0, AGENTS),
    ROUTE(SB_GET, "/api/v1/merge-suggestions", sb_api_merge_suggestions_list, 0, AGENTS),
    ROUTE(SB_POST, "/api/v1/merge-suggestions/{id}/{decision}", sb_api_merge_suggestion_decide, 0,
          AGENTS),

    ROUTE(SB_GET, "/api/v1/conversations", sb_api_conversations_list, 0, AGENTS),
    /* before /conversations/{id}: the first match wins */
    ROUTE(SB_GET, "/api/v1/conversations/counts", sb_api_conversations_counts, 0, AGENTS),
    ROUTE(SB_GET, "/api/v1/conversations/{id}", sb_api_conversations_get, 0, AGENTS),
    ROUTE(SB_PATCH, "/api/v1/conversations/{id}", sb_api_conversations_patch, 0, AGENTS),
    ROUTE(SB_GET, "/api/v1/conversations/{id}/interactions", sb_api_conversations_interactions, 0,
          AGENTS),
    ROUTE(SB_POST, "/api/v1/conversations/{id}/notes", sb_api_conversations_note, 0, AGENTS),
    ROUTE(SB_POST, "/api/v1/conversations/{id}/replies", sb_api_conversations_reply, 0, AGENTS),
    ROUTE(SB_POST, "/api/v1/conversations/{id}/interactions/{interaction_id}/retry",
          sb_api_conversations_retry, 0, AGENTS),
    ROUTE(SB_GET, "/api/v1/reports", sb_api_reports, 0, AGENTS),

    /* Attachments (api_attachments.c). */
    ROUTE(SB_POST, "/api/v1/uploads", sb_api_upload_create, 0, AGENTS),
    ROUTE(SB_GET, "/api/v1/attachments/{id}", sb_api_attachment_get, 0, AGENTS),
    ROUTE(SB_GET, "/f/{token}", sb_api_file_link, SB_ROUTE_PUBLIC, 0),

    {.methods = SB_POST,
     .pattern = "/hooks/{kind}/{id}",
     .handler = sb_api_hook,
     .flags = SB_ROUTE_PUBLIC,
     .group = sb_api_hook_group},
    ROUTE(SB_GET, "/hooks/{kind}/{id}", sb_api_hook_verify, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_POST, "/forms/{public_key}", sb_api_form_post, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_OPTIONS, "/forms/{public_key}", sb_api_form_preflight, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/api/v1/channels", sb_api_channels_list, 0, SB_ROLE_ADMIN),
    ROUTE(SB_POST, "/api/v1/channels", sb_api_channels_create, 0, SB_ROLE_ADMIN),
    ROUTE(SB_PATCH, "/api/v1/channels/{id}", sb_api_channels_patch, 0, SB_ROLE_ADMIN),
    ROUTE(SB_POST, "/api/v1/channels/{id}/test", sb_api_channels_test, 0, SB_ROLE_ADMIN),

    ROUTE(SB_GET, "/api/v1/quarantine", sb_api_quarantine_list, 0, SB_ROLE_ADMIN),
    ROUTE(SB_GET, "/api/v1/quarantine/{id}/body", sb_api_quarantine_body, 0, SB_ROLE_ADMIN),
    ROUTE(SB_POST, "/api/v1/quarantine/{id}/resolve", sb_api_quarantine_resolve, 0, SB_ROLE_ADMIN),

    ROUTE(SB_GET, "/api/v1/users", sb_api_users_list, 0, SB_ROLE_ADMIN),
    ROUTE(SB_PATCH, "/api/v1/users/{id}", sb_api_users_patch, 0, SB_ROLE_ADMIN),

    /* Teams (api_teams.c): agents read them, admins change them. */
    ROUTE(SB_GET, "/api/v1/teams", sb_api_teams_list, 0, AGENTS),
    ROUTE(SB_POST, "/api/v1/teams", sb_api_teams_create, 0, SB_ROLE_ADMIN),
    ROUTE(SB_PATCH, "/api/v1/teams/{id}", sb_api_teams_patch, 0, SB_ROLE_ADMIN),
    ROUTE(SB_DELETE, "/api/v1/teams/{id}", sb_api_teams_delete, 0, SB_ROLE_ADMIN),
    ROUTE(SB_PUT, "/api/v1/teams/{id}/members/{user_id}", sb_api_teams_member_put, 0,
          SB_ROLE_ADMIN),
    ROUTE(SB_DELETE, "/api/v1/teams/{id}/members/{user_id}", sb_api_teams_member_delete, 0,
          SB_ROLE_ADMIN),

    /* Campaigns (api_campaigns.c). */
    ROUTE(SB_GET, "/api/v1/segments", sb_api_segments_list, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/segments", sb_api_segments_create, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/segments/count", sb_api_segments_count, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/segments/{id}", sb_api_segments_get, 0, MARKETERS),
    ROUTE(SB_PATCH, "/api/v1/segments/{id}", sb_api_segments_patch, 0, MARKETERS),
    ROUTE(SB_DELETE, "/api/v1/segments/{id}", sb_api_segments_delete, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/channel-names", sb_api_channel_names, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/templates", sb_api_templates_list, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/templates", sb_api_templates_create, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/templates/{id}", sb_api_templates_get, 0, MARKETERS),
    ROUTE(SB_PATCH, "/api/v1/templates/{id}", sb_api_templates_patch, 0, MARKETERS),
    ROUTE(SB_DELETE, "/api/v1/templates/{id}", sb_api_templates_delete, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/templates/{id}/preview", sb_api_templates_preview, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/templates/{id}/test", sb_api_templates_test, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/campaigns", sb_api_campaigns_list, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/campaigns", sb_api_campaigns_create, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/campaigns/{id}", sb_api_campaigns_get, 0, MARKETERS),
    ROUTE(SB_PATCH, "/api/v1/campaigns/{id}", sb_api_campaigns_patch, 0, MARKETERS),
    ROUTE(SB_DELETE, "/api/v1/campaigns/{id}", sb_api_campaigns_delete, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/campaigns/{id}/stats", sb_api_campaigns_stats, 0, MARKETERS),
    ROUTE(SB_GET, "/api/v1/campaigns/{id}/recipients.csv", sb_api_campaigns_csv, 0, MARKETERS),
    ROUTE(SB_POST, "/api/v1/campaigns/{id}/{action}", sb_api_campaigns_action, 0, MARKETERS),
    ROUTE(SB_GET, "/u/{token}", sb_api_unsubscribe_page, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_POST, "/u/{token}", sb_api_unsubscribe, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/t/o/{token}", sb_api_track_open, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/t/c/{token}", sb_api_track_click, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/v/{token}", sb_api_view, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_POST, "/api/v1/users", sb_api_users_create, 0, SB_ROLE_ADMIN),

    /* Agents' tools (api_agent.c). */
    ROUTE(SB_GET, "/api/v1/canned", sb_api_canned_list, 0, AGENTS),
    ROUTE(SB_POST, "/api/v1/canned", sb_api_canned_create, 0, SB_ROLE_ADMIN),
    ROUTE(SB_PATCH, "/api/v1/canned/{id}", sb_api_canned_patch, 0, SB_ROLE_ADMIN),
    ROUTE(SB_DELETE, "/api/v1/canned/{id}", sb_api_canned_delete, 0, SB_ROLE_ADMIN),
    ROUTE(SB_POST, "/api/v1/conversations/{id}/canned/{canned_id}/render", sb_api_canned_render, 0,
          AGENTS),
    ROUTE(SB_GET, "/api/v1/agents", sb_api_agents_list, 0, AGENTS),
    ROUTE(SB_GET, "/api/v1/notifications", sb_api_notifications_list, 0, SB_ROLE_ANY),
    ROUTE(SB_POST, "/api/v1/notifications/read-all", sb_api_notifications_read_all, 0, SB_ROLE_ANY),
    ROUTE(SB_POST, "/api/v1/notifications/{id}/read", sb_api_notification_read, 0, SB_ROLE_ANY),
    ROUTE(SB_PATCH, "/api/v1/me", sb_api_me_patch, 0, SB_ROLE_ANY),
};

const size_t sb_nroutes = sizeof sb_routes / sizeof sb_routes[0];
