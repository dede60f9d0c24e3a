/* WhatsApp Cloud API, inbound: GET /hooks/whatsapp/{id} answers Meta's
 * subscription check (hub.challenge when hub.verify_token matches);
 * POST carries notifications signed with X-Hub-Signature-256, the
 * HMAC-SHA256 of the raw body under the app secret, checked in constant time
 * before a byte of the body is parsed.
 *
 * A notification may hold several messages and statuses. Messages become
 * inbounds keyed by their wamid, with the sender's wa_id both as a whatsapp
 * identity and, with a '+', as a phone; statuses move the delivery status of
 * our outbound messages. Media is recorded by its media id; downloading it
 * is the sender thread's job.
 *
 * Outbound: POST /{phone_number_id}/messages with the access token as a
 * Bearer; the wamid Meta answers with is what its status notifications name,
 * so it becomes our message's external id. */
#include "hmac.h"
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const secret_keys[] = {"access_token", "app_secret", "verify_token", NULL};

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int validate(json_t *cfg, char *err, size_t errlen)
{
    static const char *const required[] = {"access_token", "app_secret", "verify_token",
                                           "phone_number_id", NULL};
    for (const char *const *k = required; *k; k++)
        if (!jstr(cfg, *k) || !*jstr(cfg, *k))
            return sb_fail(err, errlen, SB_ERR_INVALID, "%s is required", *k);
    if (!json_object_get(cfg, "api_base"))
        json_object_set_new(cfg, "api_base", json_string("https://graph.facebook.com/v19.0"));
    return SB_OK;
}

static int on_verify(struct sb_channel *ch, const struct sb_http_request *req,
                     struct sb_http_reply *reply)
{
    char mode[32], token[256], challenge[256];
    const char *expected = sb_channel_conf(ch, "verify_token");
    if (sb_request_query(req, "hub.mode", mode, sizeof mode) ||
        sb_request_query(req, "hub.verify_token", token, sizeof token) ||
        sb_request_query(req, "hub.challenge", challenge, sizeof challenge) ||
        strcmp(mode, "subscribe") || !expected || !sb_secret_equal(expected, token)) {
        sb_reply_error(reply, SB_ERR_FORBIDDEN, "verification failed");
        return SB_ERR_FORBIDDEN;
    }
    /* Meta expects the challenge echoed as the whole body. */
    sb_reply_text(reply, 200, "text/plain; charset=utf-8", challenge, strlen(challenge));
    return SB_OK;
}

static int signature_ok(const char *secret, const struct sb_http_request *req)
{
    char header[128];
    return !sb_request_header(req, "x-hub-signature-256", header, sizeof header) &&
           !strncmp(header, "sha256=", 7) &&
           sb_hmac_sha256_hex_ok(secret, req->body, req->body_len, header + 7);
}

/* The display name Meta sends for a wa_id in the same change. */
static const char *contact_name(json_t *value, const char *wa_id)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(value, "contacts"), i, c)
    {
        if (jstr(c, "wa_id") && !strcmp(jstr(c, "wa_id"), wa_id))
            return jstr(json_object_get(c, "profile"), "name");
    }
    return NULL;
}

static void add_media(struct sb_inbound *in, json_t *media, const char *fallback_type)
{
    if (!json_is_object(media) || !jstr(media, "id"))
        return;
    struct sb_inbound_attachment a = {0};
    a.provider_ref = jstr(media, "id");
    a.filename = jstr(media, "filename");
    a.content_type = jstr(media, "mime_type") ? jstr(media, "mime_type") : fallback_type;
    sb_inbound_add_attachment(in, &a);
    if (!in->text && jstr(media, "caption"))
        in->text = sb_inbound_strdup(in, jstr(media, "caption"));
}

/* The text a person sees for each message type. */
static void message_text(struct sb_inbound *in, json_t *m)
{
    const char *type = jstr(m, "type");
    char buf[1024];
    if (!type)
        return;
    if (!strcmp(type, "text")) {
        in->text = sb_inbound_strdup(in, jstr(json_object_get(m, "text"), "body"));
    } else if (!strcmp(type, "image") || !strcmp(type, "document") || !strcmp(type, "audio") ||
               !strcmp(type, "video") || !strcmp(type, "sticker")) {
        add_media(in, json_object_get(m, type), "application/octet-stream");
    } else if (!strcmp(type, "location")) {
        json_t *l = json_object_get(m, "location");
        snprintf(buf, sizeof buf, "Location: %.6f, %.6f%s%s",
                 json_number_value(json_object_get(l, "latitude")),
                 json_number_value(json_object_get(l, "longitude")), jstr(l, "name") ? " " : "",
                 jstr(l, "name") ? jstr(l, "name") : "");
        in->text = sb_inbound_strdup(in, buf);
    } else if (!strcmp(type, "contacts")) {
        size_t i, o = 0;
        json_t *c;
        o += (size_t)snprintf(buf, sizeof buf, "Contacts:");
        json_array_foreach(json_object_get(m, "contacts"), i, c)
        {
            json_t *phone = json_array_get(json_object_get(c, "phones"), 0);
            if (o < sizeof buf)
                o += (size_t)snprintf(buf + o, sizeof buf - o, " %s %s;",
                                      jstr(json_object_get(c, "name"), "formatted_name")
                                          ? jstr(json_object_get(c, "name"), "formatted_name")
                                          : "",
                                      jstr(phone, "phone") ? jstr(phone, "phone") : "");
        }
        in->text = sb_inbound_strdup(in, buf);
    } else if (!strcmp(type, "interactive")) {
        json_t *i = json_object_get(m, "interactive");
        json_t *r = json_object_get(i, "button_reply");
        if (!r)
            r = json_object_get(i, "list_reply");
        in->text = sb_inbound_strdup(in, jstr(r, "title"));
    } else if (!strcmp(type, "button")) {
        in->text = sb_inbound_strdup(in, jstr(json_object_get(m, "button"), "text"));
    }
}

static int add_message(struct sb_channel *ch, json_t *value, json_t *m,
                       struct sb_inbound_batch *out)
{
    const char *from = jstr(m, "from"), *id = jstr(m, "id");
    if (!from || !id)
        return SB_ERR_INVALID;
    struct sb_inbound *in = sb_inbound_new();
    if (!in)
        return SB_ERR_NOMEM;
    in->channel_id = ch->id;
    in->external_id = sb_inbound_strdup(in, id);
    in->kind = SB_IK_MESSAGE;
    in->occurred_at_us =
        (int64_t)strtoll(jstr(m, "timestamp") ? jstr(m, "timestamp") : "0", NULL, 10) * 1000000;
    in->display_name = sb_inbound_strdup(in, contact_name(value, from));
    in->sender = in->display_name ? in->display_name : sb_inbound_strdup(in, from);
    sb_inbound_add_identity(in, SB_ID_WHATSAPP, from);
    char phone[40];
    snprintf(phone, sizeof phone, "+%s", from); /* wa_id: international digits without '+' */
    sb_inbound_add_identity(in, SB_ID_PHONE, phone);
    in->chat_id = sb_inbound_strdup(in, from);
    message_text(in, m);
    in->meta = json_pack("{s:{s:s?,s:O?}}", "whatsapp", "type", jstr(m, "type"), "context",
                         json_object_get(m, "context"));
    json_t *ctx = json_object_get(m, "context");
    /* A reply to one of ours names it; kept for threading (ingest threads
     * messengers by client and channel today, so it is informational). */
    if (jstr(ctx, "id"))
        in->in_reply_to = sb_inbound_strdup(in, jstr(ctx, "id"));
    return sb_inbound_batch_add(out, in);
}

static enum sb_delivery delivery_of(const char *s, int *known)
{
    *known = 1;
    if (!strcmp(s, "sent"))
        return SB_DELIVERY_SENT;
    if (!strcmp(s, "delivered"))
        return SB_DELIVERY_DELIVERED;
    if (!strcmp(s, "read"))
        return SB_DELIVERY_READ;
    if (!strcmp(s, "failed"))
        return SB_DELIVERY_FAILED;
    *known = 0;
    return SB_DELIVERY_SENT;
}

static int on_webhook(struct sb_channel *ch, const struct sb_http_request *req,
                      struct sb_inbound_batch *out, struct sb_http_reply *reply, char *err,
                      size_t errlen)
{
    (void)reply;
    const char *secret = sb_channel_conf(ch, "app_secret");
    if (!secret || !signature_ok(secret, req))
        return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED, "wrong or missing X-Hub-Signature-256");
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(root) || !json_is_array(json_object_get(root, "entry"))) {
        json_decref(root);
        return sb_fail(err, errlen, SB_ERR_INVALID, "not a WhatsApp notification: %s",
                       root ? "no entry array" : jerr.text);
    }
    int rc = SB_OK;
    size_t i, j, k;
    json_t *entry, *change, *item;
    json_array_foreach(json_object_get(root, "entry"), i, entry)
    {
        json_array_foreach(json_object_get(entry, "changes"), j, change)
        {
            json_t *value = json_object_get(change, "value");
            json_array_foreach(json_object_get(value, "messages"), k, item)
            {
                if (rc == SB_OK && (rc = add_message(ch, value, item, out)) == SB_ERR_INVALID)
                    sb_fail(err, errlen, rc, "a message without from or id");
            }
            json_array_foreach(json_object_get(value, "statuses"), k, item)
            {
                int known;
                struct sb_status_update st = {0};
                if (rc != SB_OK || !jstr(item, "id") || !jstr(item, "status"))
                    continue;
                st.status = delivery_of(jstr(item, "status"), &known);
                if (!known)
                    continue;
                snprintf(st.external_id, sizeof st.external_id, "%s", jstr(item, "id"));
                json_t *e = json_array_get(json_object_get(item, "errors"), 0);
                if (e)
                    snprintf(st.error, sizeof st.error, "%lld %s",
                             (long long)json_integer_value(json_object_get(e, "code")),
                             jstr(e, "title") ? jstr(e, "title") : "");
                rc = sb_inbound_batch_add_status(out, &st);
            }
        }
    }
    json_decref(root);
    return rc;
}

static int send_prepare(struct sb_channel *ch, const struct sb_outbound *msg,
                        struct sb_send_req *req, char *err, size_t errlen)
{
    if (!msg->to || !*msg->to)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no WhatsApp number to send to");
    /* A file goes as a media message whose "link" is the signed URL the
     * reply wrote into the job (Cloud API downloads it): JPEG and PNG as an
     * image, anything else as a document with its name; the text is the
     * caption. */
    json_t *file = json_array_get(json_object_get(msg->payload, "files"), 0);
    const char *url = json_string_value(json_object_get(file, "url"));
    if (file && !url)
        return sb_fail(err, errlen, SB_ERR_INVALID, "the file's link is missing");
    if (!url && (!msg->text || !*msg->text))
        return sb_fail(err, errlen, SB_ERR_INVALID, "an empty message cannot be sent");
    snprintf(req->url, sizeof req->url, "%s/%s/messages", sb_channel_conf(ch, "api_base"),
             sb_channel_conf(ch, "phone_number_id"));
    json_t *body;
    if (url) {
        const char *type = json_string_value(json_object_get(file, "content_type"));
        const char *fn = json_string_value(json_object_get(file, "filename"));
        int image = type && (!strcmp(type, "image/jpeg") || !strcmp(type, "image/png"));
        json_t *media = json_pack("{s:s}", "link", url);
        if (media && msg->text && *msg->text)
            json_object_set_new(media, "caption", json_string(msg->text));
        if (media && !image)
            json_object_set_new(media, "filename", json_string(fn ? fn : "file"));
        body = media ? json_pack("{s:s,s:s,s:s,s:s,s:o}", "messaging_product", "whatsapp",
                                 "recipient_type", "individual", "to", msg->to, "type",
                                 image ? "image" : "document", image ? "image" : "document", media)
                     : NULL;
    } else {
        body = json_pack("{s:s,s:s,s:s,s:s,s:{s:b,s:s}}", "messaging_product", "whatsapp",
                         "recipient_type", "individual", "to", msg->to, "type", "text", "text",
                         "preview_url", 0, "body", msg->text);
    }
    int rc = body ? sb_send_req_json(req, body) : SB_ERR_NOMEM;
    json_decref(body);
    if (rc == SB_OK)
        rc = sb_send_req_header(req, "Authorization: Bearer %s",
                                sb_channel_conf(ch, "access_token"));
    return rc == SB_OK ? SB_OK : sb_fail(err, errlen, rc, "cannot build the request");
}

/* Graph API error codes that mean "later", though they come with HTTP 400:
 * throttling (4, 80007, 130429), spam rate limit (131048), pair rate limit
 * (131056), a temporary service error (131000 unknown, 133016). */
static int retryable_code(json_int_t code)
{
    static const json_int_t codes[] = {4, 80007, 130429, 131000, 131048, 131056, 133016};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (code == codes[i])
            return 1;
    return 0;
}

static int send_result(struct sb_channel *ch, const struct sb_outbound *msg, long status,
                       const char *body, size_t len, const char *retry_after,
                       struct sb_send_result *res)
{
    (void)ch;
    (void)msg;
    json_t *o = json_loadb(body, len, 0, NULL);
    sb_send_result_http(status, retry_after, res);
    const char *wamid = jstr(json_array_get(json_object_get(o, "messages"), 0), "id");
    json_t *e = json_object_get(o, "error");
    if (res->outcome == SB_SEND_OK && wamid) {
        snprintf(res->external_id, sizeof res->external_id, "%s", wamid);
    } else if (res->outcome == SB_SEND_OK) {
        res->outcome = SB_SEND_FAILED;
        snprintf(res->error, sizeof res->error, "answer without a message id");
    } else if (json_is_object(e)) {
        json_int_t code = json_integer_value(json_object_get(e, "code"));
        const char *details = jstr(json_object_get(e, "error_data"), "details");
        snprintf(res->error, sizeof res->error, "%lld %s%s%s", (long long)code,
                 jstr(e, "message") ? jstr(e, "message") : "", details ? ": " : "",
                 details ? details : "");
        if (retryable_code(code))
            res->outcome = SB_SEND_RETRY;
    }
    json_decref(o);
    return SB_OK;
}

/* Media: GET /{media-id} gives a short-lived URL, which is downloaded with
 * the same Bearer token. Cloud API media is at most 100 MB (documents);
 * we keep what fits in memory comfortably. */
#define MEDIA_MAX (64u << 20)

/* A URL from an answer may be followed only over https, or over http when
 * the channel itself talks http (a test's mock provider). */
static int url_allowed(struct sb_channel *ch, const char *url)
{
    const char *base = sb_channel_conf(ch, "api_base");
    return url && (!strncmp(url, "https://", 8) ||
                   (!strncmp(url, "http://", 7) && base && !strncmp(base, "http://", 7)));
}

static int fetch_step(struct sb_channel *ch, const struct sb_fetch_step *st,
                      struct sb_send_req *req, struct sb_send_result *res, int *more_r)
{
    *more_r = 0;
    if (st->step == 0 || st->step == 1) {
        json_t *o = st->step == 1 ? json_loadb(st->body, st->len, 0, NULL) : NULL;
        const char *url = jstr(o, "url");
        if (st->step == 1 && (st->status != 200 || !url_allowed(ch, url))) {
            send_result(ch, NULL, st->status == 200 ? 502 : st->status, st->body, st->len,
                        st->retry_after, res);
            if (st->status == 200) {
                res->outcome = SB_SEND_FAILED;
                snprintf(res->error, sizeof res->error, "media answer without a usable url");
            }
            json_decref(o);
            return SB_OK;
        }
        if (st->step == 0)
            snprintf(req->url, sizeof req->url, "%s/%s", sb_channel_conf(ch, "api_base"),
                     st->provider_ref);
        else
            snprintf(req->url, sizeof req->url, "%s", url);
        json_decref(o);
        if (st->step == 1) {
            req->max_answer = MEDIA_MAX;
            req->timeout_s = 120;
        }
        *more_r = 1;
        return sb_send_req_header(req, "Authorization: Bearer %s",
                                  sb_channel_conf(ch, "access_token"));
    }
    sb_send_result_http(st->status, st->retry_after, res);
    return SB_OK;
}

const struct sb_channel_kind sb_channel_whatsapp = {
    .name = "whatsapp",
    .flags = SB_CH_WEBHOOK | SB_CH_SENDS | SB_CH_SEND_FILE_LINKS,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .on_webhook = on_webhook,
    .on_verify = on_verify,
    .send_prepare = send_prepare,
    .send_result = send_result,
    .fetch_step = fetch_step,
};
