/* Route matching and reply building: the transport-free half of HTTP. */
#include "switchboard/http.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    int method;
    const char *name;
} methods[] = {
    {SB_GET, "GET"},     {SB_HEAD, "HEAD"},     {SB_POST, "POST"},       {SB_PUT, "PUT"},
    {SB_PATCH, "PATCH"}, {SB_DELETE, "DELETE"}, {SB_OPTIONS, "OPTIONS"},
};

int sb_method_parse(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i].name, name))
            return methods[i].method;
    return 0;
}

const char *sb_method_name(int method)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].method == method)
            return methods[i].name;
    return "?";
}

/* Compare one pattern with a path segment by segment; "{name}" matches one
 * non-empty segment and its value is captured. */
static int match_pattern(const char *pat, const char *path, struct sb_http_request *req)
{
    int np = 0;
    while (*pat && *path) {
        if (*pat != '/' || *path != '/')
            return 0;
        pat++, path++;
        const char *pe = strchr(pat, '/');
        const char *se = strchr(path, '/');
        size_t plen = pe ? (size_t)(pe - pat) : strlen(pat);
        size_t slen = se ? (size_t)(se - path) : strlen(path);
        if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}') {
            if (slen == 0 || np >= SB_ROUTE_PARAMS_MAX || slen >= sizeof req->params[0])
                return 0;
            memcpy(req->params[np], path, slen);
            req->params[np][slen] = '\0';
            np++;
        } else if (plen != slen || memcmp(pat, path, plen) != 0) {
            return 0;
        }
        pat += plen;
        path += slen;
    }
    if (*pat || *path)
        return 0;
    req->nparams = np;
    return 1;
}

int sb_route_match(struct sb_route *routes, size_t nroutes, struct sb_http_request *req,
                   struct sb_route **route_r)
{
    int path_matched = 0;
    *route_r = NULL;
    for (size_t i = 0; i < nroutes; i++) {
        if (!match_pattern(routes[i].pattern, req->path, req))
            continue;
        int methods_ok = routes[i].methods;
        /* HEAD is answered wherever GET is. */
        if (methods_ok & SB_GET)
            methods_ok |= SB_HEAD;
        if (methods_ok & req->method) {
            *route_r = &routes[i];
            req->route = &routes[i];
            return SB_OK;
        }
        path_matched = 1;
    }
    req->nparams = 0;
    return path_matched ? SB_ERR_INVALID : SB_ERR_NOT_FOUND;
}

static void set_body(struct sb_http_reply *rep, char *body, size_t len)
{
    free(rep->body);
    rep->body = body;
    rep->body_len = len;
}

void sb_reply_json(struct sb_http_reply *rep, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        /* Only allocation failure gets here; answer without allocating. */
        rep->status = 500;
        rep->content_type = "application/json";
        set_body(rep, NULL, 0);
        return;
    }
    rep->status = status;
    rep->content_type = "application/json";
    set_body(rep, text, strlen(text));
}

void sb_reply_text(struct sb_http_reply *rep, int status, const char *content_type,
                   const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    rep->status = copy ? status : 500;
    rep->content_type = content_type;
    if (copy) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    set_body(rep, copy, copy ? len : 0);
}

/* Cut a message that was truncated in the middle of a UTF-8 sequence. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0 && (unsigned char)s[i - 1] >= 0xC0) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        if (n - (i - 1) < want)
            s[i - 1] = '\0';
    }
}

void sb_reply_error_status(struct sb_http_reply *rep, int status, const char *code,
                           const char *message)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    /* Input echoed in a message may not be valid UTF-8; the status must
     * survive even if the wording cannot. */
    if (!o)
        o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                      "the request was refused (details not printable)");
    sb_reply_json(rep, status, o);
}

void sb_reply_error(struct sb_http_reply *rep, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    trim_partial_utf8(msg);
    sb_reply_error_status(rep, sb_err_http_status(err), sb_err_code(err), msg);
}

void sb_reply_failure(struct sb_http_reply *rep, int err, const char *what, const char *detail)
{
    if (err == SB_ERR_UNAVAILABLE || err == SB_ERR_UNKNOWN_COMMIT || err == SB_ERR_RETRY) {
        sb_warn("http", "%s: %s", what, detail);
        sb_reply_error(rep, SB_ERR_UNAVAILABLE, "the database is unavailable; retry shortly");
        sb_reply_header(rep, "Retry-After", "2");
        return;
    }
    sb_error("http", "%s: %s", what, detail);
    sb_reply_error(rep, SB_ERR_INTERNAL, "internal error");
}

void sb_reply_result(struct sb_http_reply *rep, int err, const char *what, const char *detail)
{
    switch (err) {
    case SB_OK:
        return;
    case SB_ERR_INVALID:
    case SB_ERR_NOT_FOUND:
    case SB_ERR_EXISTS:
    case SB_ERR_FORBIDDEN:
    case SB_ERR_UNAUTHORIZED:
    case SB_ERR_LIMIT:
    case SB_ERR_TOO_LARGE:
    case SB_ERR_UNSUPPORTED_MEDIA:
        sb_reply_error(rep, err, "%s", detail && *detail ? detail : sb_strerror(err));
        return;
    default:
        sb_reply_failure(rep, err, what, detail);
    }
}

int sb_reply_header(struct sb_http_reply *rep, const char *name, const char *value)
{
    /* A line break in a value would start a header of its own. */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return SB_ERR_INVALID;
    size_t room = sizeof rep->headers - rep->headers_len;
    int n = snprintf(rep->headers + rep->headers_len, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room) {
        rep->headers[rep->headers_len] = '\0';
        return SB_ERR_TOO_LARGE;
    }
    rep->headers_len += (size_t)n;
    return SB_OK;
}

void sb_reply_free(struct sb_http_reply *rep)
{
    free(rep->body);
    memset(rep, 0, sizeof *rep);
}

int sb_request_json(const struct sb_http_request *req, struct sb_http_reply *rep, json_t **obj_r)
{
    *obj_r = NULL;
    const char *ct = req->content_type;
    /* Accept a missing type (curl -d without -H) and any application/json
     * with parameters; refuse forms, which would mean a confused client. */
    if (ct[0] && (strncasecmp(ct, "application/json", 16) != 0 ||
                  (ct[16] && ct[16] != ';' && ct[16] != ' ' && ct[16] != '\t'))) {
        sb_reply_error(rep, SB_ERR_UNSUPPORTED_MEDIA, "expected a JSON body (application/json)");
        return SB_ERR_UNSUPPORTED_MEDIA;
    }
    if (!req->body_len) {
        sb_reply_error(rep, SB_ERR_INVALID, "the request body is empty; a JSON object is expected");
        return SB_ERR_INVALID;
    }
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        sb_reply_error(rep, SB_ERR_INVALID, "invalid JSON at line %d column %d: %s", jerr.line,
                       jerr.column, jerr.text);
        return SB_ERR_INVALID;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        sb_reply_error(rep, SB_ERR_INVALID, "the JSON body must be an object");
        return SB_ERR_INVALID;
    }
    *obj_r = root;
    return SB_OK;
}

int sb_request_cookie(const struct sb_http_request *req, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = req->cookie;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && p[nlen] == '=' && !strncmp(p, name, nlen)) {
            size_t vlen = len - nlen - 1;
            if (vlen >= outlen)
                return -1;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p += len;
    }
    return -1;
}

static const int status_slots[SB_STATUS_SLOTS - 1] = {
    200, 201, 204, 301, 302, 303, 304, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503, 101,
};

int sb_status_slot(int status)
{
    for (int i = 0; i < SB_STATUS_SLOTS - 1; i++)
        if (status_slots[i] == status)
            return i;
    return SB_STATUS_SLOTS - 1;
}

int sb_status_of_slot(int slot)
{
    return slot >= 0 && slot < SB_STATUS_SLOTS - 1 ? status_slots[slot] : 0;
}

int sb_request_query(const struct sb_http_request *req, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = req->query; *p; p += strlen(p) + 1) {
        if (strncmp(p, name, nlen) != 0 || (p[nlen] != '=' && p[nlen] != '\0'))
            continue;
        const char *v = p[nlen] == '=' ? p + nlen + 1 : p + nlen;
        size_t len = strlen(v);
        if (len >= outlen)
            return -1;
        memcpy(out, v, len + 1);
        return 0;
    }
    return -1;
}

int sb_request_param_id(const struct sb_http_request *req, int idx, int64_t *id_r)
{
    if (idx >= req->nparams)
        return SB_ERR_INVALID;
    const char *s = req->params[idx];
    int64_t v = 0;
    if (!*s || strlen(s) > 18)
        return SB_ERR_INVALID;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return SB_ERR_INVALID;
        v = v * 10 + (*s - '0');
    }
    if (v <= 0)
        return SB_ERR_INVALID;
    *id_r = v;
    return SB_OK;
}

int sb_request_header(const struct sb_http_request *req, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = req->provider_headers; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen + 1 && !strncmp(p, name, nlen) && p[nlen] == ':' && p[nlen + 1] == ' ') {
            size_t vlen = len - nlen - 2;
            if (vlen >= outlen)
                return -1;
            memcpy(out, p + nlen + 2, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p += len + (eol ? 1 : 0);
    }
    return -1;
}
