/* HTTP requests, replies and the route table.
 *
 * This is the part of the HTTP layer that knows nothing of libwebsockets:
 * server.c fills a struct sb_http_request from the wire, finds the route,
 * and writes the struct sb_http_reply a handler produced. Handlers and
 * channel adapters only see these two structs, which keeps them testable
 * without a socket.
 *
 * A route either runs on the loop thread (SB_ROUTE_LOOP: cheap, no database)
 * or on a DB worker with that worker's connection (the default). Access flags
 * are checked before the handler runs: SB_ROUTE_PUBLIC needs nothing, other
 * routes need a session or an API token and one of the roles listed. */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include "switchboard/limits.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;
struct sb_app;

enum sb_method {
    SB_GET = 1 << 0,
    SB_HEAD = 1 << 1,
    SB_POST = 1 << 2,
    SB_PUT = 1 << 3,
    SB_PATCH = 1 << 4,
    SB_DELETE = 1 << 5,
    SB_OPTIONS = 1 << 6,
};

enum sb_role { SB_ROLE_ADMIN = 1 << 0, SB_ROLE_AGENT = 1 << 1, SB_ROLE_MARKETER = 1 << 2 };
#define SB_ROLE_ANY (SB_ROLE_ADMIN | SB_ROLE_AGENT | SB_ROLE_MARKETER)

/* The signed-in user, filled by auth before a non-public handler runs. */
struct sb_user {
    int64_t id;
    char email[256];
    char name[256];
    char locale[16];
    enum sb_role role;
    int via_token; /* authenticated by API token rather than session cookie */
};

struct sb_http_request {
    int method;
    char path[SB_PATH_MAX];  /* decoded, without the query string */
    char query[SB_PATH_MAX]; /* decoded "name=value" parts, each ended by '\0', then "" */
    char content_type[256];
    char cookie[SB_HEADER_MAX];
    char authorization[SB_HEADER_MAX];
    char origin[512];
    char host[256];
    char user_agent[256];
    char accept[256]; /* forms answer a script with JSON, a browser with a page */
    char if_none_match[128];
    char peer[64]; /* client IP address */
    /* Provider headers adapters need (signatures, secret tokens), as
     * "name: value\n" lines with lower-case names; see sb_request_header(). */
    char provider_headers[2048];
    char *body; /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    const struct sb_route *route;
    int nparams;
    char params[SB_ROUTE_PARAMS_MAX][256]; /* values of {name} segments, in order */
    struct sb_user user;
};

struct sb_http_reply {
    int status;
    const char *content_type;
    char *body; /* malloc'd; owned by the reply */
    size_t body_len;
    char headers[SB_EXTRA_HEADERS_MAX]; /* "Name: value\r\n" lines */
    size_t headers_len;
};

typedef void (*sb_handler_fn)(struct sb_app *app, struct sb_db *db,
                              const struct sb_http_request *req, struct sb_http_reply *rep);

/* Several requests of one route handled together on one worker (see
 * sb_dbpool_submit_group): `reqs` and `reps` have `n` entries. */
typedef void (*sb_group_handler_fn)(struct sb_app *app, struct sb_db *db,
                                    const struct sb_http_request *const *reqs,
                                    struct sb_http_reply **reps, size_t n);

enum sb_route_flags {
    SB_ROUTE_PUBLIC = 1 << 0, /* no credentials needed */
    SB_ROUTE_LOOP = 1 << 1,   /* run on the loop thread; no database handle */
};

/* Status codes we count per route; anything else lands in the last slot. */
#define SB_STATUS_SLOTS 20

struct sb_route {
    int methods;
    const char *pattern; /* "/api/v1/clients/{id}/merge" */
    sb_handler_fn handler;
    unsigned flags;
    int roles; /* SB_ROLE_* allowed; ignored for public routes */
    /* Optional: handles queued requests of this route together (public
     * routes only: requests in a group are not authenticated one by one). */
    sb_group_handler_fn group;
    /* Runtime counters, touched only on the loop thread (metrics.c reads
     * them there too). */
    uint64_t count_by_status[SB_STATUS_SLOTS];
    uint64_t latency_buckets[16];
    double latency_sum;
};

/* The route table (routes.c). */
extern struct sb_route sb_routes[];
extern const size_t sb_nroutes;

/* Match `req->method` and `req->path`; fills req->route and req->params.
 * SB_ERR_NOT_FOUND when no pattern matches, SB_ERR_INVALID (answered 405)
 * when a pattern matches but not for this method. */
int sb_route_match(struct sb_route *routes, size_t nroutes, struct sb_http_request *req,
                   struct sb_route **route_r);

int sb_method_parse(const char *name);
const char *sb_method_name(int method);

/* Replies. Each replaces any body set before. */
void sb_reply_json(struct sb_http_reply *rep, int status, json_t *body); /* steals `body` */
void sb_reply_text(struct sb_http_reply *rep, int status, const char *content_type,
                   const char *text, size_t len);
/* The error body of DESIGN.md: {"error":{"code":"...","message":"..."}}.
 * For SB_ERR_INTERNAL-class codes pass a generic message; log the cause. */
void sb_reply_error(struct sb_http_reply *rep, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sb_reply_error_status(struct sb_http_reply *rep, int status, const char *code,
                           const char *message);
/* Answer a failed internal operation: 503 when the database is unreachable,
 * else 500 "internal error". The details (`what`: `detail`) go to the log only,
 * never to the client. */
void sb_reply_failure(struct sb_http_reply *rep, int err, const char *what, const char *detail);
/* Answer an operation's result code: codes the caller can act on (invalid,
 * not found, exists, forbidden…) with `detail` as the message; the rest via
 * sb_reply_failure(). Nothing is done for SB_OK. */
void sb_reply_result(struct sb_http_reply *rep, int err, const char *what, const char *detail);
/* Add a response header; returns SB_ERR_TOO_LARGE when it does not fit. */
int sb_reply_header(struct sb_http_reply *rep, const char *name, const char *value);
void sb_reply_free(struct sb_http_reply *rep);

/* Parse the request body as a JSON object. On failure the reply is already
 * the right error (415 for a non-JSON content type, 400 for bad JSON). */
int sb_request_json(const struct sb_http_request *req, struct sb_http_reply *rep, json_t **obj_r);

/* Find a cookie's value; returns 0 and fills `out` (NUL-terminated) or -1. */
int sb_request_cookie(const struct sb_http_request *req, const char *name, char *out,
                      size_t outlen);

/* A query-string parameter (decoded by the server); 0 when present.
 * A value that does not fit in `out` counts as absent. */
int sb_request_query(const struct sb_http_request *req, const char *name, char *out, size_t outlen);
/* A provider header captured by the server (server.c lists which); 0 when
 * present and it fits in `out`. `name` in lower case. */
int sb_request_header(const struct sb_http_request *req, const char *name, char *out,
                      size_t outlen);

/* Path parameter `idx` as a positive integer id; SB_ERR_INVALID otherwise. */
int sb_request_param_id(const struct sb_http_request *req, int idx, int64_t *id_r);

/* Index of a status code in sb_route.count_by_status, and back. */
int sb_status_slot(int status);
int sb_status_of_slot(int slot);

#endif
