/* Blocking provider API calls for the CLI (see provider_http.h). */
#include "provider_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char *p;
    size_t n;
};

/* Provider answers to these calls are small; more is not an answer. */
#define ANSWER_MAX 65536

static size_t collect(char *d, size_t s, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = s * n;
    if (b->n + add > ANSWER_MAX)
        return 0;
    char *np = realloc(b->p, b->n + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, d, add);
    b->p = np;
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

long sb_provider_call(const char *url, const char *header, json_t *body, json_t **answer_r,
                      char *err, size_t errlen)
{
    *answer_r = NULL;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "cannot start an HTTP client");
        return -1;
    }
    struct buf b = {0};
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    if (header)
        hl = curl_slist_append(hl, header);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (text)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(c);
    long status = -1;
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    free(text);
    if (b.p)
        *answer_r = json_loads(b.p, 0, NULL);
    free(b.p);
    return status;
}
