/* Every fixed limit in one place, each with its reason (cf. SQLite's sqliteLimit.h).
 * Limits that operators may want to change are defaults for configuration keys
 * and say so. */
#ifndef SB_LIMITS_H
#define SB_LIMITS_H

/* Request body cap; config server.body_limit. Large enough for a form post with
 * a small attachment, small enough that a slow client cannot pin much memory. */
#define SB_BODY_LIMIT_DEFAULT (1024 * 1024)

/* Longest request path + query we route. Longer ones get 414-style 404s:
 * no route of ours needs more and the copy is on the loop thread's stack. */
#define SB_PATH_MAX 2048

/* Path parameters per route pattern ("/api/v1/conversations/{id}/..."). */
#define SB_ROUTE_PARAMS_MAX 4

/* Routes in the table; a compile-time cap keeps metrics arrays static. */
#define SB_ROUTES_MAX 128

/* Header values we copy (cookies, authorization, content type). */
#define SB_HEADER_MAX 4096

/* Extra response headers a handler may add (Set-Cookie, Location, ...). */
#define SB_EXTRA_HEADERS_MAX 2048

/* Static files up to this size are read whole and sent like any reply;
 * larger ones stream from disk. The web view's bundles are well under it. */
#define SB_STATIC_INLINE_MAX (2 * 1024 * 1024)

/* DB worker threads; config database.workers, by default one per CPU core
 * (at least SB_DB_WORKERS_MIN). Each holds one MariaDB connection, so this
 * also bounds our share of max_connections. More workers than cores only
 * split webhook bursts into smaller groups and more commits: on 2 cores, 2
 * workers stored 2.8-3.7k webhooks/s where 4 stored 2.3k and 8 stored 1.4k,
 * and answered /api/v1/me faster too (docs/benchmarks.md). */
#define SB_DB_WORKERS_MIN 2
#define SB_DB_WORKERS_MAX 64

/* Jobs waiting for a DB worker before new requests get 503: a queue that grows
 * without bound only turns overload into timeouts for everybody. */
#define SB_DB_QUEUE_MAX 4096

/* Jobs waiting for a DB worker beyond which requests from the internet
 * (webhooks, forms, sign-in) get 503 while signed-in agents still get in: a
 * flood of anonymous posts must not lock the agents out of their inbox.
 * Providers redeliver on 503. */
#define SB_DB_QUEUE_PUBLIC_MAX 1024

/* Queued webhook requests one worker stores in one transaction: enough to
 * turn a burst into a few commits, few enough that one bad request in a
 * group (which makes the group fall back to one transaction each) is cheap. */
#define SB_DB_GROUP_MAX 64

/* Seconds a connect to MariaDB may take before /readyz says 503. */
#define SB_DB_CONNECT_TIMEOUT 3

/* Seconds SIGTERM waits for in-flight requests before exiting anyway. */
#define SB_DRAIN_TIMEOUT 30

/* Login attempts: per client IP and per account, in a sliding window.
 * Defaults for config auth.login_ip_limit / auth.login_account_limit /
 * auth.login_window. */
#define SB_LOGIN_IP_LIMIT_DEFAULT      20
#define SB_LOGIN_ACCOUNT_LIMIT_DEFAULT 5
#define SB_LOGIN_WINDOW_DEFAULT        300

/* Entries in each login rate-limit table; the oldest is evicted past it, so a
 * flood of distinct addresses cannot grow memory. */
#define SB_RATELIMIT_SLOTS 4096

/* Session lifetime in seconds; config auth.session_ttl. */
#define SB_SESSION_TTL_DEFAULT (14 * 24 * 3600)

/* A client's message reopens their resolved conversation within this many
 * seconds of its last activity, else starts a new one; config
 * ingest.reopen_window. A week matches how long a "thanks, one more thing"
 * stays part of the same matter in shops and clinics. */
#define SB_REOPEN_WINDOW_DEFAULT (7 * 24 * 3600)

/* Live updates (ws.c). A local commit wakes the events tailer at once; the
 * poll interval bounds how late another node's event can be. A gap in event
 * ids (a transaction that took its id but has not committed yet) is waited
 * for this long before it is taken for a rollback. */
/* A number macro as a string literal, for SQL LIMITs built at compile time. */
#define SB_STR_(x) #x
#define SB_STR(x)  SB_STR_(x)

#define SB_LIVE_POLL_MS_DEFAULT        20
#define SB_LIVE_RETENTION_DAYS_DEFAULT 14
#define SB_LIVE_QUEUE_DEFAULT          1024
#define SB_LIVE_GAP_GRACE_MS           500
#define SB_LIVE_PAGE                   500 /* events per resume page */
#define SB_LIVE_TEAMS_MAX              32

/* Password length accepted by `user add`; Argon2 has no limit but a bound
 * keeps a hostile body from costing seconds of hashing. */
#define SB_PASSWORD_MAX 256
#define SB_PASSWORD_MIN 8

/* Website forms (channels/webform.c, src/api_forms.c). One uploaded file: the
 * default and the ceiling of a webform channel's max_file_size. Each file is
 * one blob INSERT, which must fit in MariaDB's max_allowed_packet (16 MiB by
 * default) with room for the statement; 10 MiB takes a phone photo, a CV or
 * a scanned page, and anything bigger belongs behind a link. The whole post
 * is capped first by server.body_limit (raise it for forms that take files). */
#define SB_FORM_FILE_MAX (10 * 1024 * 1024)
/* Files stored per form post; more are listed in meta, not stored. A lead
 * form asks for a few photos at most; this bounds blob rows per request. */
#define SB_FORM_FILES_MAX 10
/* Fields per form post: real forms have tens. More is junk, quarantined
 * rather than blown up into a huge meta document on every agent's screen. */
#define SB_FORM_FIELDS_MAX 200
/* Form posts per client IP per minute; config forms.rate_limit. A person
 * sends one; an office or a mobile carrier's NAT shares an address. */
#define SB_FORMS_RATE_LIMIT_DEFAULT 20

#endif
