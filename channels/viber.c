/* Viber REST bot API, inbound: POST /hooks/viber/{id}.
 *
 * Viber signs each callback with X-Viber-Content-Signature, the hex
 * HMAC-SHA256 of the raw body under the bot's auth token. Callbacks:
 * message → an inbound keyed by message_token; subscribed and
 * conversation_started are not messages and are only acknowledged;
 * delivered / seen / failed move our message's status;
 * unsubscribed and the set-up "webhook" ping are acknowledged.
 *
 * Outbound: send_message with X-Viber-Auth-Token. Viber answers HTTP 200
 * with its own status code; the message_token of a sent message is what the
 * delivered/seen callbacks name, so it becomes the external id. */
#include "hmac.h"
#include "provider_http.h"
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const secret_keys[] = {"auth_token", NULL};

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int validate(json_t *cfg, char *err, size_t errlen)
{
    if (!jstr(cfg, "auth_token") || !*jstr(cfg, "auth_token"))
        return sb_fail(err, errlen, SB_ERR_INVALID, "auth_token is required");
    if (!json_object_get(cfg, "api_base"))
        json_object_set_new(cfg, "api_base", json_string("https://chatapi.viber.com/pa"));
    return SB_OK;
}

/* message_token is a 64-bit number in JSON; keep it exact as text. */
static void token_text(json_t *v, char *out, size_t len)
{
    if (json_is_integer(v))
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, len, "%s", json_string_value(v));
    else
        out[0] = '\0';
}

static int add_message(struct sb_channel *ch, json_t *root, struct sb_inbound_batch *out, char *err,
                       size_t errlen)
{
    json_t *sender = json_object_get(root, "sender"), *msg = json_object_get(root, "message");
    char token[64];
    token_text(json_object_get(root, "message_token"), token, sizeof token);
    if (!jstr(sender, "id") || !json_is_object(msg) || !token[0])
        return sb_fail(err, errlen, SB_ERR_INVALID, "a message without sender, message or token");
    struct sb_inbound *in = sb_inbound_new();
    if (!in)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    in->channel_id = ch->id;
    in->external_id = sb_inbound_strdup(in, token);
    in->kind = SB_IK_MESSAGE;
    in->occurred_at_us = (int64_t)json_integer_value(json_object_get(root, "timestamp")) * 1000;
    in->display_name = sb_inbound_strdup(in, jstr(sender, "name"));
    in->sender = in->display_name;
    sb_inbound_add_identity(in, SB_ID_VIBER, jstr(sender, "id"));
    in->chat_id = sb_inbound_strdup(in, jstr(sender, "id"));
    const char *type = jstr(msg, "type") ? jstr(msg, "type") : "";
    in->text = sb_inbound_strdup(in, jstr(msg, "text"));
    if (!strcmp(type, "picture") || !strcmp(type, "video") || !strcmp(type, "file")) {
        struct sb_inbound_attachment a = {0};
        a.provider_ref = jstr(msg, "media");
        a.filename = jstr(msg, "file_name");
        a.content_type = !strcmp(type, "picture") ? "image/jpeg"
                         : !strcmp(type, "video") ? "video/mp4"
                                                  : "application/octet-stream";
        if (a.provider_ref)
            sb_inbound_add_attachment(in, &a);
    } else if (!strcmp(type, "contact")) {
        json_t *c = json_object_get(msg, "contact");
        char buf[300];
        snprintf(buf, sizeof buf, "Contact: %s %s", jstr(c, "name") ? jstr(c, "name") : "",
                 jstr(c, "phone_number") ? jstr(c, "phone_number") : "");
        if (!in->text)
            in->text = sb_inbound_strdup(in, buf);
    } else if (!strcmp(type, "location") && !in->text) {
        json_t *l = json_object_get(msg, "location");
        char buf[96];
        snprintf(buf, sizeof buf, "Location: %.6f, %.6f",
                 json_number_value(json_object_get(l, "lat")),
                 json_number_value(json_object_get(l, "lon")));
        in->text = sb_inbound_strdup(in, buf);
    }
    in->meta = json_pack("{s:{s:s,s:s?,s:s?}}", "viber", "type", type, "country",
                         jstr(sender, "country"), "language", jstr(sender, "language"));
    return sb_inbound_batch_add(out, in);
}

static int on_webhook(struct sb_channel *ch, const struct sb_http_request *req,
                      struct sb_inbound_batch *out, struct sb_http_reply *reply, char *err,
                      size_t errlen)
{
    (void)reply;
    char sig[80];
    if (sb_request_header(req, "x-viber-content-signature", sig, sizeof sig) ||
        !sb_hmac_sha256_hex_ok(sb_channel_conf(ch, "auth_token"), req->body, req->body_len, sig))
        return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED,
                       "wrong or missing X-Viber-Content-Signature");
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, 0, &jerr);
    const char *event = jstr(root, "event");
    int rc = SB_OK;
    if (!event) {
        rc = sb_fail(err, errlen, SB_ERR_INVALID, "not a Viber callback: %s",
                     root ? "no event" : jerr.text);
    } else if (!strcmp(event, "message")) {
        rc = add_message(ch, root, out, err, errlen);
    } else if (!strcmp(event, "delivered") || !strcmp(event, "seen") || !strcmp(event, "failed")) {
        struct sb_status_update st = {0};
        token_text(json_object_get(root, "message_token"), st.external_id, sizeof st.external_id);
        st.status = event[0] == 'd'   ? SB_DELIVERY_DELIVERED
                    : event[0] == 's' ? SB_DELIVERY_READ
                                      : SB_DELIVERY_FAILED;
        if (jstr(root, "desc"))
            snprintf(st.error, sizeof st.error, "%s", jstr(root, "desc"));
        if (st.external_id[0])
            rc = sb_inbound_batch_add_status(out, &st);
    } else {
        /* subscribed, unsubscribed, conversation_started, webhook: acknowledged */
        sb_debug("viber", "channel %lld: %s", (long long)ch->id, event);
    }
    json_decref(root);
    return rc;
}

/* set_webhook: Viber then posts a "webhook" callback, which we acknowledge. */
static int set_webhook(struct sb_channel *ch, const char *hook_url, char *msg, size_t msglen)
{
    char url[600], header[300], err[256] = "";
    snprintf(url, sizeof url, "%s/set_webhook", sb_channel_conf(ch, "api_base"));
    snprintf(header, sizeof header, "X-Viber-Auth-Token: %s", sb_channel_conf(ch, "auth_token"));
    json_t *body = json_pack("{s:s,s:[s,s,s],s:b}", "url", hook_url, "event_types", "delivered",
                             "seen", "failed", "send_name", 1);
    json_t *o;
    long status = sb_provider_call(url, header, body, &o, err, sizeof err);
    json_decref(body);
    int ok = status == 200 && json_integer_value(json_object_get(o, "status")) == 0 &&
             json_object_get(o, "status");
    snprintf(msg, msglen, "%s%s", ok ? "ok: webhook set to " : "set_webhook failed: ",
             ok                          ? hook_url
             : status < 0                ? err
             : jstr(o, "status_message") ? jstr(o, "status_message")
                                         : "unexpected answer");
    json_decref(o);
    return ok ? SB_OK : SB_ERR_UNAVAILABLE;
}

static int send_prepare(struct sb_channel *ch, const struct sb_outbound *msg,
                        struct sb_send_req *req, char *err, size_t errlen)
{
    if (!msg->to || !*msg->to)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no Viber user to send to");
    /* A file goes by the signed link the reply wrote into the job: JPEG and
     * PNG as a picture with the text as its caption (Viber: 768
     * characters), anything else as a file message, which takes no text. */
    json_t *file = json_array_get(json_object_get(msg->payload, "files"), 0);
    const char *url = json_string_value(json_object_get(file, "url"));
    const char *type = json_string_value(json_object_get(file, "content_type"));
    int picture = type && (!strcmp(type, "image/jpeg") || !strcmp(type, "image/png"));
    if (file && !url)
        return sb_fail(err, errlen, SB_ERR_INVALID, "the file's link is missing");
    if (url && !picture && msg->text && *msg->text)
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "Viber sends a file without text: send the text as a reply of its own");
    if (!url && (!msg->text || !*msg->text))
        return sb_fail(err, errlen, SB_ERR_INVALID, "an empty message cannot be sent");
    snprintf(req->url, sizeof req->url, "%s/send_message", sb_channel_conf(ch, "api_base"));
    /* sender.name is required and at most 28 characters. */
    const char *name =
        sb_channel_conf(ch, "sender_name") ? sb_channel_conf(ch, "sender_name") : ch->name;
    char sender[29 * 4];
    size_t n = strlen(name), chars = 0, i = 0;
    for (; i < n && chars < 28; i++)
        chars += ((unsigned char)name[i] & 0xC0) != 0x80;
    while (i < n && ((unsigned char)name[i] & 0xC0) == 0x80) /* finish the last character */
        i++;
    snprintf(sender, sizeof sender, "%.*s", (int)i, name);
    char tracking[64];
    snprintf(tracking, sizeof tracking, "sb:%lld", (long long)msg->interaction_id);
    json_t *body = json_pack("{s:s,s:i,s:{s:s},s:s}", "receiver", msg->to, "min_api_version", 1,
                             "sender", "name", sender, "tracking_data", tracking);
    if (body && !url) {
        json_object_set_new(body, "type", json_string("text"));
        json_object_set_new(body, "text", json_string(msg->text));
    } else if (body && picture) {
        json_object_set_new(body, "type", json_string("picture"));
        json_object_set_new(body, "media", json_string(url));
        if (msg->text && *msg->text)
            json_object_set_new(body, "text", json_string(msg->text));
    } else if (body) {
        const char *fn = json_string_value(json_object_get(file, "filename"));
        json_object_set_new(body, "type", json_string("file"));
        json_object_set_new(body, "media", json_string(url));
        json_object_set_new(body, "size",
                            json_integer(json_integer_value(json_object_get(file, "size"))));
        json_object_set_new(body, "file_name", json_string(fn ? fn : "file"));
    }
    int rc = body ? sb_send_req_json(req, body) : SB_ERR_NOMEM;
    json_decref(body);
    if (rc == SB_OK)
        rc = sb_send_req_header(req, "X-Viber-Auth-Token: %s", sb_channel_conf(ch, "auth_token"));
    return rc == SB_OK ? SB_OK : sb_fail(err, errlen, rc, "cannot build the request");
}

/* Viber's status 12 is "too many requests"; the rest are permanent (not
 * subscribed, blocked, bad token…). */
#define VIBER_TOO_MANY 12

static int send_result(struct sb_channel *ch, const struct sb_outbound *msg, long status,
                       const char *body, size_t len, const char *retry_after,
                       struct sb_send_result *res)
{
    (void)ch;
    (void)msg;
    json_t *o = json_loadb(body, len, 0, NULL);
    sb_send_result_http(status, retry_after, res);
    json_t *st = json_object_get(o, "status");
    if (res->outcome == SB_SEND_OK) {
        char token[64];
        token_text(json_object_get(o, "message_token"), token, sizeof token);
        if (json_is_integer(st) && json_integer_value(st) == 0 && token[0]) {
            snprintf(res->external_id, sizeof res->external_id, "%s", token);
        } else {
            res->outcome =
                json_integer_value(st) == VIBER_TOO_MANY ? SB_SEND_RETRY : SB_SEND_FAILED;
            snprintf(res->error, sizeof res->error, "%lld %s", (long long)json_integer_value(st),
                     jstr(o, "status_message") ? jstr(o, "status_message")
                                               : "answer without a message token");
        }
    }
    json_decref(o);
    return SB_OK;
}

/* Media: a picture, video or file message carries a download URL (valid
 * for a while) as `media`, which is our provider_ref. Viber files are at
 * most 200 MB; we keep what fits in memory comfortably. */
#define MEDIA_MAX (64u << 20)

static int fetch_step(struct sb_channel *ch, const struct sb_fetch_step *st,
                      struct sb_send_req *req, struct sb_send_result *res, int *more_r)
{
    *more_r = 0;
    if (st->step == 0) {
        /* https only, unless the channel itself talks http (a test's mock) */
        const char *base = sb_channel_conf(ch, "api_base"), *url = st->provider_ref;
        if (strncmp(url, "https://", 8) &&
            (strncmp(url, "http://", 7) || !base || strncmp(base, "http://", 7))) {
            memset(res, 0, sizeof *res);
            res->outcome = SB_SEND_FAILED;
            snprintf(res->error, sizeof res->error, "media is not an https URL");
            return SB_OK;
        }
        snprintf(req->url, sizeof req->url, "%s", url);
        req->max_answer = MEDIA_MAX;
        req->timeout_s = 120;
        *more_r = 1;
        return SB_OK;
    }
    sb_send_result_http(st->status, st->retry_after, res);
    return SB_OK;
}

const struct sb_channel_kind sb_channel_viber = {
    .name = "viber",
    .flags = SB_CH_WEBHOOK | SB_CH_SENDS | SB_CH_SEND_FILE_LINKS,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .on_webhook = on_webhook,
    .set_webhook = set_webhook,
    .send_prepare = send_prepare,
    .send_result = send_result,
    .fetch_step = fetch_step,
};
