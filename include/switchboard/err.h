/* Error codes shared by every module.
 *
 * One numbered enum, as curl's CURLcode: a retired code keeps its slot so that
 * logs and metrics stay comparable between versions. Codes are grouped by what
 * the caller can do about them (cf. dovecot's mail-error.h); the HTTP layer
 * maps each group to a status and a stable `error.code` string in one place,
 * sb_err_http_status() and sb_err_code(). */
#ifndef SB_ERR_H
#define SB_ERR_H

#include <stddef.h>

enum sb_err {
    SB_OK = 0,
    SB_ERR_INTERNAL = 1,     /* a bug or an unexpected failure: log it, say "internal error" */
    SB_ERR_NOMEM = 2,        /* allocation failed */
    SB_ERR_INVALID = 3,      /* bad parameters or malformed input: the caller must fix it */
    SB_ERR_NOT_FOUND = 4,    /* the thing asked for does not exist */
    SB_ERR_EXISTS = 5,       /* a unique thing already exists */
    SB_ERR_UNAUTHORIZED = 6, /* no valid credentials */
    SB_ERR_FORBIDDEN = 7,    /* valid credentials, not allowed */
    SB_ERR_LIMIT = 8,        /* a rate or size limit was hit: retry later or send less */
    SB_ERR_TOO_LARGE = 9,    /* a body or field over its cap (see limits.h) */
    SB_ERR_UNAVAILABLE = 10, /* temporary: the database or a provider is unreachable */
    SB_ERR_IO = 11,          /* a file or socket operation failed */
    SB_ERR_CONFIG = 12,      /* configuration is missing or wrong */
    SB_ERR_DB = 13,          /* the database rejected a statement (not a connection loss) */
    SB_ERR_UNKNOWN_COMMIT =
        14, /* connection lost during COMMIT: maybe written, rely on idempotency */
    SB_ERR_UNSUPPORTED_MEDIA = 15, /* a body in a content type the route does not take */
    SB_ERR_RETRY = 16, /* a transaction lost a race (deadlock, unique key): run it again */
    SB_ERR__LAST
};

/* A short English description of the code, for logs and CLI messages. */
const char *sb_strerror(int err);

/* The stable machine-readable code used in JSON error bodies, e.g. "not_found". */
const char *sb_err_code(int err);

/* The HTTP status that a request failing with this code should get. */
int sb_err_http_status(int err);

/* Record the first failure's text in a caller's buffer (cf. curl's Curl_failf):
 * a buffer that already holds a message keeps it, so the caller sees the cause
 * rather than the last symptom. Returns `err` so it can end a `return`. */
int sb_fail(char *errbuf, size_t errlen, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
