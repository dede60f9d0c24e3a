/* Blocking calls to provider APIs for the CLI (channel test, channel
 * webhook). The sender thread will use libcurl's multi interface instead;
 * these run in a shell command where waiting is fine. Private to channels/. */
#ifndef SB_CHANNELS_PROVIDER_HTTP_H
#define SB_CHANNELS_PROVIDER_HTTP_H

#include <jansson.h>

/* POST `body` (JSON, may be NULL for a GET) to `url` with an optional extra
 * header line; the answer parsed as JSON in *answer_r (NULL when it was not
 * JSON). Returns the HTTP status, or -1 with `err` filled when the request
 * could not be made. 10 s timeout. */
long sb_provider_call(const char *url, const char *header, json_t *body, json_t **answer_r,
                      char *err, size_t errlen);

#endif
