/* Telegram Bot API, inbound: POST /hooks/telegram/{id} with one Update.
 *
 * Telegram proves a webhook with the secret_token given to setWebhook, sent
 * back in X-Telegram-Bot-Api-Secret-Token; it is compared in constant time.
 * A message's external id is "<chat id>:<message id>", so an edited_message
 * (same ids, new update_id) finds the original and a redelivered update is a
 * no-op. Files (photo, document, voice) are recorded by file_id; fetching
 * them through getFile is the sender thread's job, never the request's.
 *
 * Outbound: sendMessage to the chat; our message's external id takes the
 * inbound form "<chat id>:<message id>". getFile + the file download make
 * the fetch chain. Everything but the table row at the end is static. */
#include "hmac.h"
#include "provider_http.h"
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <curl/curl.h>
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

/* Telegram's own limit for one message (in UTF-16 units; bytes/4 is a safe
 * floor, so only clearly oversized text is refused here). */
#define TEXT_MAX_BYTES (4096 * 4)

/* -- Files: multipart/form-data (RFC 7578), built here as the body ---------- */

/* A growing body; `failed` sticks so the writers need no checks. */
struct mp {
    char *p;
    size_t len, cap;
    int failed;
    char boundary[48];
};

static void mp_put(struct mp *m, const void *s, size_t n)
{
    if (m->failed)
        return;
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *p = realloc(m->p, cap);
        if (!p) {
            m->failed = 1;
            return;
        }
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
}

static void mp_str(struct mp *m, const char *s)
{
    mp_put(m, s, strlen(s));
}

static void mp_field(struct mp *m, const char *name, const char *value)
{
    mp_str(m, "--");
    mp_str(m, m->boundary);
    mp_str(m, "\r\nContent-Disposition: form-data; name=\"");
    mp_str(m, name);
    mp_str(m, "\"\r\n\r\n");
    mp_str(m, value);
    mp_str(m, "\r\n");
}

static void mp_file(struct mp *m, const char *name, const struct sb_out_file *f)
{
    mp_str(m, "--");
    mp_str(m, m->boundary);
    mp_str(m, "\r\nContent-Disposition: form-data; name=\"");
    mp_str(m, name);
    mp_str(m, "\"; filename=\"");
    /* As browsers do (HTML's multipart rules): '"', CR and LF escaped. */
    for (const char *c = f->filename; *c; c++)
        mp_str(m, *c == '"' ? "%22" : *c == '\r' ? "%0D" : *c == '\n' ? "%0A" : (char[]){*c, 0});
    mp_str(m, "\"\r\nContent-Type: ");
    mp_str(m, f->content_type);
    mp_str(m, "\r\n\r\n");
    mp_put(m, f->data, f->len);
    mp_str(m, "\r\n");
}

/* Photos Telegram shows as photos; everything else goes as a document. */
static int is_photo(const struct sb_out_file *f)
{
    return !strcmp(f->content_type, "image/jpeg") || !strcmp(f->content_type, "image/png") ||
           !strcmp(f->content_type, "image/webp");
}

/* One file: sendPhoto or sendDocument with the text as caption. Several:
 * sendMediaGroup, all as documents (a group cannot mix photos and
 * documents), the caption on the first. */
static int send_files(struct sb_channel *ch, const struct sb_outbound *msg, json_t *chat_id,
                      struct sb_send_req *req, char *err, size_t errlen)
{
    if (msg->nfiles > 10)
        return sb_fail(err, errlen, SB_ERR_INVALID, "Telegram sends at most 10 files at once");
    struct mp m = {0};
    unsigned char rnd[12];
    randombytes_buf(rnd, sizeof rnd);
    char *hex = m.boundary + snprintf(m.boundary, sizeof m.boundary, "sb-");
    sodium_bin2hex(hex, sizeof m.boundary - 3, rnd, sizeof rnd);
    char *chat = json_dumps(chat_id, JSON_ENCODE_ANY);
    const char *method;
    if (!chat)
        return SB_ERR_NOMEM;
    if (*chat == '"') { /* a string id: the bare value */
        memmove(chat, chat + 1, strlen(chat));
        chat[strlen(chat) - 1] = '\0';
    }
    mp_field(&m, "chat_id", chat);
    free(chat);
    if (msg->nfiles == 1) {
        int photo = is_photo(&msg->files[0]);
        method = photo ? "sendPhoto" : "sendDocument";
        if (msg->text && *msg->text)
            mp_field(&m, "caption", msg->text);
        mp_file(&m, photo ? "photo" : "document", &msg->files[0]);
    } else {
        method = "sendMediaGroup";
        json_t *media = json_array();
        for (size_t i = 0; media && i < msg->nfiles; i++) {
            char ref[48];
            snprintf(ref, sizeof ref, "attach://file%zu", i);
            json_t *o = json_pack("{s:s,s:s}", "type", "document", "media", ref);
            if (o && i == 0 && msg->text && *msg->text)
                json_object_set_new(o, "caption", json_string(msg->text));
            if (!o || json_array_append_new(media, o)) {
                json_decref(media);
                media = NULL;
            }
        }
        char *text = media ? json_dumps(media, JSON_COMPACT) : NULL;
        json_decref(media);
        if (!text) {
            free(m.p);
            return SB_ERR_NOMEM;
        }
        mp_field(&m, "media", text);
        free(text);
        for (size_t i = 0; i < msg->nfiles; i++) {
            char name[32];
            snprintf(name, sizeof name, "file%zu", i);
            mp_file(&m, name, &msg->files[i]);
        }
    }
    mp_str(&m, "--");
    mp_str(&m, m.boundary);
    mp_str(&m, "--\r\n");
    if (m.failed) {
        free(m.p);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    snprintf(req->url, sizeof req->url, "%s/bot%s/%s", sb_channel_conf(ch, "api_base"),
             sb_channel_conf(ch, "token"), method);
    req->body = m.p;
    req->body_len = m.len;
    req->timeout_s = 120; /* 10 MB up a slow line */
    int rc = sb_send_req_header(req, "Content-Type: multipart/form-data; boundary=%s", m.boundary);
    return rc == SB_OK ? SB_OK : sb_fail(err, errlen, rc, "cannot build the request");
}

static int send_prepare(struct sb_channel *ch, const struct sb_outbound *msg,
                        struct sb_send_req *req, char *err, size_t errlen)
{
    if (!msg->to || !*msg->to)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no Telegram chat to send to");
    if (msg->nfiles) {
        char *end;
        long long chat = strtoll(msg->to, &end, 10);
        json_t *id = *end ? json_string(msg->to) : json_integer(chat);
        int rc = id ? send_files(ch, msg, id, req, err, errlen) : SB_ERR_NOMEM;
        json_decref(id);
        return rc;
    }
    if (!msg->text || !*msg->text)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an empty message cannot be sent");
    if (strlen(msg->text) > TEXT_MAX_BYTES)
        return sb_fail(err, errlen, SB_ERR_INVALID, "text longer than Telegram's 4096 characters");
    snprintf(req->url, sizeof req->url, "%s/bot%s/sendMessage", sb_channel_conf(ch, "api_base"),
             sb_channel_conf(ch, "token"));
    /* chat ids are integers (negative for groups); send them as such. */
    char *end;
    long long chat = strtoll(msg->to, &end, 10);
    json_t *body = json_pack("{s:o,s:s}", "chat_id",
                             *end ? json_string(msg->to) : json_integer(chat), "text", msg->text);
    int rc = body ? sb_send_req_json(req, body) : SB_ERR_NOMEM;
    json_decref(body);
    return rc == SB_OK ? SB_OK : sb_fail(err, errlen, rc, "cannot build the request");
}

/* Telegram answers {"ok":false,"error_code":N,"description":"…",
 * "parameters":{"retry_after":S}} on errors, whatever the HTTP status. */
static void read_error(json_t *o, long status, const char *retry_after, struct sb_send_result *res)
{
    sb_send_result_http(status, retry_after, res);
    json_int_t after =
        json_integer_value(json_object_get(json_object_get(o, "parameters"), "retry_after"));
    if (status == 429 && after > 0 && !res->retry_after_s)
        res->retry_after_s = after > 86400 ? 86400 : (int)after;
    if (jstr(o, "description"))
        snprintf(res->error, sizeof res->error, "%ld %s", status, jstr(o, "description"));
    if (res->outcome == SB_SEND_OK) /* 200 with ok:false */
        res->outcome = SB_SEND_FAILED;
}

static int send_result(struct sb_channel *ch, const struct sb_outbound *msg, long status,
                       const char *body, size_t len, const char *retry_after,
                       struct sb_send_result *res)
{
    (void)ch;
    json_t *o = json_loadb(body, len, 0, NULL);
    json_t *r = json_object_get(o, "result");
    if (json_is_array(r)) /* sendMediaGroup: the first message of the group */
        r = json_array_get(r, 0);
    json_int_t id = json_integer_value(json_object_get(r, "message_id"));
    json_int_t chat = json_integer_value(json_object_get(json_object_get(r, "chat"), "id"));
    if (status == 200 && json_is_true(json_object_get(o, "ok")) && id) {
        memset(res, 0, sizeof *res);
        res->outcome = SB_SEND_OK;
        if (chat)
            snprintf(res->external_id, sizeof res->external_id, "%lld:%lld", (long long)chat,
                     (long long)id);
        else
            snprintf(res->external_id, sizeof res->external_id, "%s:%lld", msg->to, (long long)id);
    } else {
        read_error(o, status, retry_after, res);
    }
    json_decref(o);
    return SB_OK;
}

/* Bots may download files up to 20 MB. */
#define FILE_MAX (20u << 20)

/* getFile → {"result":{"file_path":"photos/file_1.jpg"}}, then
 * GET {api_base}/file/bot<token>/<file_path>. */
static int fetch_step(struct sb_channel *ch, const struct sb_fetch_step *st,
                      struct sb_send_req *req, struct sb_send_result *res, int *more_r)
{
    const char *base = sb_channel_conf(ch, "api_base"), *token = sb_channel_conf(ch, "token");
    *more_r = 0;
    if (st->step == 0) {
        char *ref = curl_escape(st->provider_ref, 0);
        if (!ref)
            return SB_ERR_NOMEM;
        snprintf(req->url, sizeof req->url, "%s/bot%s/getFile?file_id=%s", base, token, ref);
        curl_free(ref);
        *more_r = 1;
        return SB_OK;
    }
    json_t *o = st->step == 1 ? json_loadb(st->body, st->len, 0, NULL) : NULL;
    const char *path = jstr(json_object_get(o, "result"), "file_path");
    if (st->step == 1 && st->status == 200 && path && !strstr(path, "..")) {
        snprintf(req->url, sizeof req->url, "%s/file/bot%s/%s", base, token, path);
        req->max_answer = FILE_MAX;
        req->timeout_s = 120;
        *more_r = 1;
    } else if (st->step == 1) {
        read_error(o, st->status, st->retry_after, res);
        if (res->outcome == SB_SEND_FAILED && st->status == 200)
            snprintf(res->error, sizeof res->error, "getFile gave no file_path");
    } else {
        sb_send_result_http(st->status, st->retry_after, res);
    }
    json_decref(o);
    return SB_OK;
}

const struct sb_channel_kind sb_channel_telegram = {
    .name = "telegram",
    .flags = SB_CH_WEBHOOK | SB_CH_SENDS | SB_CH_SEND_FILES,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .on_webhook = on_webhook,
    .set_webhook = set_webhook,
    .test = test,
    .send_prepare = send_prepare,
    .send_result = send_result,
    .fetch_step = fetch_step,
};
