/* MIME: one raw RFC 5322 message in, one struct sb_inbound out (inbound.h).
 *
 * The e-mail adapter (IMAP poller) hands every fetched message here and
 * passes the result to ingest. Parsing is done once, with libetpan's MIME
 * parser; text is converted to UTF-8 from whatever charset it declares (or
 * lies about: bytes that are not valid in the declared charset are kept
 * through a windows-1252 mapping, so nothing is lost and the output is
 * always valid UTF-8). The automatic-mail classifier (mailclass.h) runs on
 * the parsed message and sets SB_IN_AUTO_REPLY / SB_IN_BOUNCE and
 * meta.classification.
 *
 * Pure: no I/O, no globals; safe on any thread. */
#ifndef SB_MIME_H
#define SB_MIME_H

#include "switchboard/inbound.h"

#include <stddef.h>

/* Parse one raw RFC 5322 message into a new inbound (kind SB_IK_EMAIL,
 * direction SB_DIR_IN, channel_id 0 — the caller sets it). Never refuses input:
 * a message that cannot be parsed at all still gives an inbound with the raw
 * bytes, SB_IN_PARSE_ERROR set and parse_error saying why. external_id is the
 * Message-ID without <> when present, else "sha256:<hex of raw>".
 * SB_ERR_NOMEM is the only failure. *out is owned by the caller (sb_inbound_free). */
int sb_mime_parse(const unsigned char *raw, size_t len, struct sb_inbound **out, char *err,
                  size_t errlen);

/* Convert `n` bytes in `charset` (NULL or "" = undeclared) to UTF-8 in a new
 * malloc'd, NUL-terminated string (*out, length *outlen). Bytes that are not
 * valid in the charset, or a charset iconv does not know, fall back byte by
 * byte to windows-1252 so every byte survives; *fallback_r (may be NULL) is
 * set to 1 then. The result is always valid UTF-8 without NUL bytes (a NUL
 * becomes U+FFFD). SB_ERR_NOMEM is the only failure. */
int sb_mime_to_utf8(const char *charset, const char *s, size_t n, char **out, size_t *outlen,
                    int *fallback_r);

/* Decode RFC 2047 encoded words in a header value to UTF-8 (malloc'd, *out).
 * Raw 8-bit text outside encoded words is taken as UTF-8 when valid, else
 * windows-1252. SB_ERR_NOMEM is the only failure. */
int sb_mime_decode_header(const char *s, size_t n, char **out, int *fallback_r);

#endif
