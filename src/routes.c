/* The route table: every HTTP endpoint, who may call it and where it runs.
 * Order matters only between patterns that could match the same path; the
 * first match wins. Counters in each row feed /metrics. */
#include "switchboard/api.h"
#include "switchboard/http.h"

#include <stddef.h>

#define PUBLIC_LOOP (SB_ROUTE_PUBLIC | SB_ROUTE_LOOP)
#define ROUTE(m, pat, fn, fl, ro) {.methods = (m), .pattern = (pat), .handler = (fn), .flags = (fl), .roles = (ro)}

struct sb_route sb_routes[] = {
    ROUTE(SB_GET, "/healthz", sb_api_healthz, PUBLIC_LOOP, 0),
    ROUTE(SB_GET, "/readyz", sb_api_readyz, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/metrics", sb_api_metrics, PUBLIC_LOOP, 0),

    ROUTE(SB_POST, "/api/v1/session", sb_api_session_create, SB_ROUTE_PUBLIC, 0),
    ROUTE(SB_GET, "/api/v1/session", sb_api_session_get, 0, SB_ROLE_ANY),
    ROUTE(SB_DELETE, "/api/v1/session", sb_api_session_delete, 0, SB_ROLE_ANY),
    ROUTE(SB_GET, "/api/v1/me", sb_api_session_get, 0, SB_ROLE_ANY),

    ROUTE(SB_GET, "/api/v1/users", sb_api_users_list, 0, SB_ROLE_ADMIN),
    ROUTE(SB_POST, "/api/v1/users", sb_api_users_create, 0, SB_ROLE_ADMIN),
};

const size_t sb_nroutes = sizeof sb_routes / sizeof sb_routes[0];
