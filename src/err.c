/* Error codes: descriptions, JSON codes and HTTP statuses, kept side by side in
 * one table so that adding a code means adding one row. */
#include "switchboard/err.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *text;
    const char *code;
    int status;
} err_table[SB_ERR__LAST] = {
    [SB_OK] = {"no error", "ok", 200},
    [SB_ERR_INTERNAL] = {"internal error", "internal", 500},
    [SB_ERR_NOMEM] = {"out of memory", "internal", 500},
    [SB_ERR_INVALID] = {"invalid input", "bad_request", 400},
    [SB_ERR_NOT_FOUND] = {"not found", "not_found", 404},
    [SB_ERR_EXISTS] = {"already exists", "conflict", 409},
    [SB_ERR_UNAUTHORIZED] = {"authentication required", "unauthorized", 401},
    [SB_ERR_FORBIDDEN] = {"forbidden", "forbidden", 403},
    [SB_ERR_LIMIT] = {"rate limit exceeded", "rate_limited", 429},
    [SB_ERR_TOO_LARGE] = {"too large", "too_large", 413},
    [SB_ERR_UNAVAILABLE] = {"temporarily unavailable", "unavailable", 503},
    [SB_ERR_IO] = {"input/output error", "internal", 500},
    [SB_ERR_CONFIG] = {"configuration error", "internal", 500},
    [SB_ERR_DB] = {"database error", "internal", 500},
    [SB_ERR_UNKNOWN_COMMIT] = {"commit outcome unknown", "unavailable", 503},
    [SB_ERR_RETRY] = {"transaction conflict", "unavailable", 503},
    [SB_ERR_UNSUPPORTED_MEDIA] = {"unsupported media type", "unsupported_media_type", 415},
};

static int in_range(int err)
{
    return err >= 0 && err < SB_ERR__LAST && err_table[err].text;
}

const char *sb_strerror(int err)
{
    return in_range(err) ? err_table[err].text : "unknown error";
}

const char *sb_err_code(int err)
{
    return in_range(err) ? err_table[err].code : "internal";
}

int sb_err_http_status(int err)
{
    return in_range(err) ? err_table[err].status : 500;
}

int sb_fail(char *errbuf, size_t errlen, int err, const char *fmt, ...)
{
    if (errbuf && errlen && errbuf[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}
