/* PBX call events: POST /hooks/pbx/{id} with
 *   {"call_id","direction":"in|out","from","to","started_at","duration",
 *    "status":"answered|missed","recording_url"}
 * signed with X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the body
 * under the channel's secret> (a small script on the PBX computes it; see
 * docs/channels.md).
 *
 * A call becomes a `call` interaction of the client behind the outside
 * number (from for inbound calls, to for outbound), keyed by call_id. A
 * missed inbound call is an inbound interaction like a message, so it opens
 * or reopens the client's conversation and someone calls back. */
#include "hmac.h"
#include "switchboard/channel.h"
#include "switchboard/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const secret_keys[] = {"secret", NULL};

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int validate(json_t *cfg, char *err, size_t errlen)
{
    const char *s = jstr(cfg, "secret");
    if (!s || strlen(s) < 16)
        return sb_fail(err, errlen, SB_ERR_INVALID, "secret: at least 16 characters are required");
    return SB_OK;
}

/* "2026-11-22T12:00:00Z" or a Unix time; 0 (= now) when neither. */
static int64_t parse_time(json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v) * 1000000;
    const char *s = json_string_value(v);
    struct tm tm = {0};
    if (s && strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return (int64_t)timegm(&tm) * 1000000;
    return 0;
}

static int on_webhook(struct sb_channel *ch, const struct sb_http_request *req,
                      struct sb_inbound_batch *out, struct sb_http_reply *reply, char *err,
                      size_t errlen)
{
    (void)reply;
    char sig[96];
    if (sb_request_header(req, "x-switchboard-signature", sig, sizeof sig) ||
        strncmp(sig, "sha256=", 7) ||
        !sb_hmac_sha256_hex_ok(sb_channel_conf(ch, "secret"), req->body, req->body_len, sig + 7))
        return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED,
                       "wrong or missing X-Switchboard-Signature");
    json_error_t jerr;
    json_t *o = json_loadb(req->body, req->body_len, 0, &jerr);
    const char *call_id = jstr(o, "call_id"), *dir = jstr(o, "direction");
    const char *from = jstr(o, "from"), *to = jstr(o, "to"), *status = jstr(o, "status");
    int outbound = dir && !strcmp(dir, "out");
    const char *other = outbound ? to : from;
    if (!call_id || !dir || (strcmp(dir, "in") && strcmp(dir, "out")) || !other || !status ||
        (strcmp(status, "answered") && strcmp(status, "missed"))) {
        json_decref(o);
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "a call event needs call_id, direction in|out, from, to and status "
                       "answered|missed%s%s",
                       o ? "" : ": ", o ? "" : jerr.text);
    }
    struct sb_inbound *in = sb_inbound_new();
    if (!in) {
        json_decref(o);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    long duration = (long)json_integer_value(json_object_get(o, "duration"));
    int missed = !strcmp(status, "missed");
    char text[128];
    if (missed)
        snprintf(text, sizeof text, "%s call, missed", outbound ? "Outgoing" : "Incoming");
    else
        snprintf(text, sizeof text, "%s call, %ld:%02ld", outbound ? "Outgoing" : "Incoming",
                 duration / 60, duration % 60);
    in->channel_id = ch->id;
    in->external_id = sb_inbound_strdup(in, call_id);
    in->kind = SB_IK_CALL;
    in->direction = outbound ? SB_DIR_OUT : SB_DIR_IN;
    in->occurred_at_us = parse_time(json_object_get(o, "started_at"));
    in->text = sb_inbound_strdup(in, text);
    in->sender = sb_inbound_strdup(in, from);
    sb_inbound_add_identity(in, SB_ID_PHONE, other);
    in->meta = json_pack("{s:{s:s,s:s,s:s?,s:s?,s:I,s:b,s:s?}}", "call", "direction", dir, "status",
                         status, "from", from, "to", to, "duration", (json_int_t)duration, "missed",
                         missed, "recording_url", jstr(o, "recording_url"));
    json_decref(o);
    return sb_inbound_batch_add(out, in);
}

const struct sb_channel_kind sb_channel_pbx = {
    .name = "pbx",
    .flags = SB_CH_WEBHOOK,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .on_webhook = on_webhook,
};
