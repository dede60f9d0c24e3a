/* Building send requests and reading HTTP answers: the adapter-side helpers
 * of the sending contract in channel.h. No I/O here; the sender runs the
 * transfers. */
#include "switchboard/channel.h"
#include "switchboard/err.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sb_send_req_header(struct sb_send_req *req, const char *fmt, ...)
{
    if (req->nheaders >= SB_SEND_HEADERS_MAX)
        return SB_ERR_TOO_LARGE;
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SB_ERR_NOMEM;
    /* A header value from configuration must not smuggle in another line. */
    if (strpbrk(line, "\r\n")) {
        free(line);
        return SB_ERR_INVALID;
    }
    req->headers[req->nheaders++] = line;
    return SB_OK;
}

int sb_send_req_json(struct sb_send_req *req, const json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return SB_ERR_NOMEM;
    free(req->body);
    req->body = text;
    req->body_len = strlen(text);
    return sb_send_req_header(req, "Content-Type: application/json");
}

int sb_send_req_rcpt(struct sb_send_req *req, const char *address)
{
    if (req->nrcpt >= SB_SEND_RCPT_MAX)
        return SB_ERR_TOO_LARGE;
    if (!(req->rcpt[req->nrcpt] = strdup(address)))
        return SB_ERR_NOMEM;
    req->nrcpt++;
    return SB_OK;
}

void sb_send_req_free(struct sb_send_req *req)
{
    for (size_t i = 0; i < req->nheaders; i++)
        free(req->headers[i]);
    for (size_t i = 0; i < req->nrcpt; i++)
        free(req->rcpt[i]);
    free(req->body);
    free(req->mail_from);
    free(req->username);
    if (req->password) {
        memset(req->password, 0, strlen(req->password));
        free(req->password);
    }
    memset(req, 0, sizeof *req);
}

/* Retry-After is either delay-seconds or an HTTP date (RFC 9110 10.2.3). */
static int retry_after_seconds(const char *v)
{
    if (!v || !*v)
        return 0;
    char *end;
    long s = strtol(v, &end, 10);
    if (end != v && (*end == '\0' || *end == ' ' || *end == '\r'))
        return s < 0 ? 0 : s > 86400 ? 86400 : (int)s;
    time_t when = curl_getdate(v, NULL);
    if (when <= 0)
        return 0;
    double d = difftime(when, time(NULL));
    return d <= 0 ? 1 : d > 86400 ? 86400 : (int)d;
}

void sb_send_result_http(long status, const char *retry_after, struct sb_send_result *res)
{
    memset(res, 0, sizeof *res);
    if (status >= 200 && status < 300) {
        res->outcome = SB_SEND_OK;
        return;
    }
    if (status == 408 || status == 429 || status >= 500) {
        res->outcome = SB_SEND_RETRY;
        res->retry_after_s = retry_after_seconds(retry_after);
    } else {
        res->outcome = SB_SEND_FAILED;
    }
    snprintf(res->error, sizeof res->error, "HTTP %ld", status);
}
