/* Telegram Bot API, inbound: POST /hooks/telegram/{id} with one Update.
 *
 * Telegram proves a webhook with the secret_token given to setWebhook, sent
 * back in X-Telegram-Bot-Api-Secret-Token; it is compared in constant time.
 * A message's external id is "<chat id>:<message id>", so an edited_message
 * (same ids, new update_id) finds the original and a redelivered update is a
 * no-op. Files (photo, document, voice) are recorded by file_id; fetching
 * them through getFile is the sender thread's job, never the request's.
 * Everything but the table row at the end is static. */
#include "hmac.h"
#include "provider_http.h"
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const secret_keys[] = {"token", "secret_token", NULL};

static int validate(json_t *cfg, char *err, size_t errlen)
{
    const char *token = json_string_value(json_object_get(cfg, "token"));
    const char *secret = json_string_value(json_object_get(cfg, "secret_token"));
    if (!token || !strchr(token, ':'))
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "token: the bot token from @BotFather (\"123456:ABC…\") is required");
    /* Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and - */
    size_t n = secret ? strlen(secret) : 0;
    if (n < 16 || n > 256 ||
        strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789_-") != n)
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "secret_token: 16 to 256 characters of A-Z a-z 0-9 _ - are required");
    if (!json_object_get(cfg, "api_base"))
        json_object_set_new(cfg, "api_base", json_string("https://api.telegram.org"));
    return SB_OK;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void add_file(struct sb_inbound *in, json_t *file, const char *kind, const char *type)
{
    if (!json_is_object(file))
        return;
    struct sb_inbound_attachment a = {0};
    a.provider_ref = jstr(file, "file_id");
    a.filename = jstr(file, "file_name");
    a.content_type = jstr(file, "mime_type") ? jstr(file, "mime_type") : type;
    a.size = (size_t)json_integer_value(json_object_get(file, "file_size"));
    if (a.provider_ref)
        sb_inbound_add_attachment(in, &a);
    (void)kind;
}

static int parse_message(json_t *update, json_t *msg, int edited, struct sb_inbound *in, char *err,
                         size_t errlen)
{
    json_t *from = json_object_get(msg, "from"), *chat = json_object_get(msg, "chat");
    json_int_t chat_id = json_integer_value(json_object_get(chat, "id"));
    json_int_t message_id = json_integer_value(json_object_get(msg, "message_id"));
    json_int_t from_id = json_integer_value(json_object_get(from, "id"));
    if (!json_is_object(from) || !from_id || !chat_id || !message_id)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a message without from, chat or message_id");
    char buf[512];
    snprintf(buf, sizeof buf, "%lld:%lld", (long long)chat_id, (long long)message_id);
    in->external_id = sb_inbound_strdup(in, buf);
    in->kind = SB_IK_MESSAGE;
    in->direction = SB_DIR_IN;
    json_int_t date = json_integer_value(json_object_get(msg, "date"));
    in->occurred_at_us = (int64_t)date * 1000000;
    snprintf(buf, sizeof buf, "%s%s%s", jstr(from, "first_name") ? jstr(from, "first_name") : "",
             jstr(from, "last_name") ? " " : "",
             jstr(from, "last_name") ? jstr(from, "last_name") : "");
    in->display_name = sb_inbound_strdup(in, buf[0] ? buf : NULL);
    if (jstr(from, "username")) {
        snprintf(buf, sizeof buf, "@%s", jstr(from, "username"));
        in->sender = sb_inbound_strdup(in, buf);
    } else {
        in->sender = in->display_name;
    }
    snprintf(buf, sizeof buf, "%lld", (long long)from_id);
    sb_inbound_add_identity(in, SB_ID_TELEGRAM, buf);
    snprintf(buf, sizeof buf, "%lld", (long long)chat_id);
    in->chat_id = sb_inbound_strdup(in, buf);
    const char *text = jstr(msg, "text") ? jstr(msg, "text") : jstr(msg, "caption");
    in->text = sb_inbound_strdup(in, text);
    if (edited)
        in->flags |= SB_IN_EDITED;

    json_t *contact = json_object_get(msg, "contact");
    if (json_is_object(contact) && jstr(contact, "phone_number")) {
        /* Only the sender's own contact card says whose phone it is; a card
         * of somebody else is kept in meta, not attached to the sender. */
        const char *phone = jstr(contact, "phone_number");
        if (json_integer_value(json_object_get(contact, "user_id")) == from_id) {
            snprintf(buf, sizeof buf, "%s%s", phone[0] == '+' ? "" : "+", phone);
            sb_inbound_add_identity(in, SB_ID_PHONE, buf);
        }
        if (!in->text) {
            snprintf(buf, sizeof buf, "Contact: %s %s %s",
                     jstr(contact, "first_name") ? jstr(contact, "first_name") : "",
                     jstr(contact, "last_name") ? jstr(contact, "last_name") : "", phone);
            in->text = sb_inbound_strdup(in, buf);
        }
    }
    json_t *photo = json_object_get(msg, "photo");
    if (json_is_array(photo) && json_array_size(photo)) /* sizes ascend; keep the largest */
        add_file(in, json_array_get(photo, json_array_size(photo) - 1), "photo", "image/jpeg");
    add_file(in, json_object_get(msg, "document"), "document", "application/octet-stream");
    add_file(in, json_object_get(msg, "voice"), "voice", "audio/ogg");
    json_t *loc = json_object_get(msg, "location");
    if (json_is_object(loc) && !in->text) {
        snprintf(buf, sizeof buf, "Location: %.6f, %.6f",
                 json_number_value(json_object_get(loc, "latitude")),
                 json_number_value(json_object_get(loc, "longitude")));
        in->text = sb_inbound_strdup(in, buf);
    }
    in->meta = json_pack("{s:{s:O,s:I,s:I,s:s?}}", "telegram", "update_id",
                         json_object_get(update, "update_id"), "chat_id", chat_id, "message_id",
                         message_id, "username", jstr(from, "username"));
    if (json_is_object(loc))
        json_object_set(json_object_get(in->meta, "telegram"), "location", loc);
    return SB_OK;
}

static int on_webhook(struct sb_channel *ch, const struct sb_http_request *req,
                      struct sb_inbound_batch *out, struct sb_http_reply *reply, char *err,
                      size_t errlen)
{
    (void)reply;
    char got[300];
    const char *expected = sb_channel_conf(ch, "secret_token");
    if (!expected || sb_request_header(req, "x-telegram-bot-api-secret-token", got, sizeof got) ||
        !sb_secret_equal(expected, got))
        return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED, "wrong or missing secret token");
    json_error_t jerr;
    json_t *update = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(update) || !json_is_integer(json_object_get(update, "update_id"))) {
        json_decref(update);
        return sb_fail(err, errlen, SB_ERR_INVALID, "not a Telegram Update: %s",
                       update ? "no update_id" : jerr.text);
    }
    json_t *msg = json_object_get(update, "message");
    int edited = 0;
    if (!json_is_object(msg)) {
        msg = json_object_get(update, "edited_message");
        edited = 1;
    }
    int rc = SB_OK;
    if (json_is_object(msg)) {
        struct sb_inbound *in = sb_inbound_new();
        if (!in) {
            json_decref(update);
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        }
        in->channel_id = ch->id;
        in->region = sb_channel_conf(ch, "default_region")
                         ? sb_inbound_strdup(in, sb_channel_conf(ch, "default_region"))
                         : NULL;
        in->raw = sb_inbound_memdup(in, req->body, req->body_len);
        in->raw_len = req->body_len;
        rc = parse_message(update, msg, edited, in, err, errlen);
        if (rc == SB_OK)
            rc = sb_inbound_batch_add(out, in);
        else
            sb_inbound_free(&in);
    } else {
        /* callback_query, my_chat_member, …: nothing for the inbox yet. */
        sb_debug("telegram", "update %lld of a kind we do not store",
                 (long long)json_integer_value(json_object_get(update, "update_id")));
    }
    json_decref(update);
    return rc;
}

/* getMe: proves the token works. */
static int test(struct sb_channel *ch, char *msg, size_t msglen)
{
    char url[600], err[256] = "";
    snprintf(url, sizeof url, "%s/bot%s/getMe", sb_channel_conf(ch, "api_base"),
             sb_channel_conf(ch, "token"));
    json_t *o;
    long status = sb_provider_call(url, NULL, NULL, &o, err, sizeof err);
    int ok = status == 200 && json_is_true(json_object_get(o, "ok"));
    const char *user = jstr(json_object_get(o, "result"), "username");
    if (ok)
        snprintf(msg, msglen, "ok: bot @%s", user ? user : "?");
    else
        snprintf(msg, msglen, "getMe failed: %s",
                 status < 0               ? err
                 : jstr(o, "description") ? jstr(o, "description")
                                          : "unexpected answer");
    json_decref(o);
    return ok ? SB_OK : SB_ERR_UNAVAILABLE;
}

/* setWebhook with our secret_token, so Telegram proves itself on each post. */
static int set_webhook(struct sb_channel *ch, const char *hook_url, char *msg, size_t msglen)
{
    char url[600], err[256] = "";
    snprintf(url, sizeof url, "%s/bot%s/setWebhook", sb_channel_conf(ch, "api_base"),
             sb_channel_conf(ch, "token"));
    json_t *body = json_pack("{s:s,s:s,s:[s,s]}", "url", hook_url, "secret_token",
                             sb_channel_conf(ch, "secret_token"), "allowed_updates", "message",
                             "edited_message");
    json_t *o;
    long status = sb_provider_call(url, NULL, body, &o, err, sizeof err);
    json_decref(body);
    int ok = status == 200 && json_is_true(json_object_get(o, "ok"));
    snprintf(msg, msglen, "%s%s", ok ? "ok: webhook set to " : "setWebhook failed: ",
             ok                       ? hook_url
             : status < 0             ? err
             : jstr(o, "description") ? jstr(o, "description")
                                      : "unexpected answer");
    json_decref(o);
    return ok ? SB_OK : SB_ERR_UNAVAILABLE;
}

const struct sb_channel_kind sb_channel_telegram = {
    .name = "telegram",
    .flags = SB_CH_WEBHOOK | SB_CH_SENDS,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .on_webhook = on_webhook,
    .set_webhook = set_webhook,
    .test = test,
};
