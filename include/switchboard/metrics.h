/* Prometheus metrics: per-route request counts by status, a latency
 * histogram per route, and DB pool use. Counters live in the route table
 * (http.h) and are touched only on the loop thread, so no atomics are needed;
 * the pool's numbers come from sb_dbpool_stats() under its own lock. */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include "switchboard/http.h"

#include <stddef.h>

struct sb_app;

/* Latency bucket upper bounds, seconds; the last bucket is +Inf. */
#define SB_LATENCY_BUCKETS 14

/* Record one finished request (loop thread). */
void sb_metrics_observe(struct sb_route *route, int status, double seconds);

/* Render the exposition text; the caller frees *text_r. */
int sb_metrics_render(const struct sb_app *app, char **text_r, size_t *len_r);

/* Pseudo-routes so that static files and unknown paths are counted too. */
extern struct sb_route sb_route_static;
extern struct sb_route sb_route_unmatched;

#endif
