/* E-mail: one mailbox's IMAP side (polled by the mailbox poller,
 * src/mailbox.c) and its SMTP side (replies and campaigns). Either side
 * may be absent: an SMTP-only channel sends campaigns, an IMAP-only one
 * only reads.
 *
 * IMAP keys: host, port (993 for imaps, else 143), tls = imaps | starttls |
 * none (imaps), tls_verify (true), username, password, folders (["INBOX"]),
 * poll_seconds (60), since_days (0: the first sync takes everything; N: the
 * first sync takes the last N days; later syncs always take everything new).
 * SMTP keys: smtp_host, smtp_port (465 for smtps, 587 for starttls, 25 for
 * none), smtp_tls = smtps | starttls | none (starttls), smtp_username,
 * smtp_password, from.
 *
 * Values may come as strings (`channel add --set port=993`); they are
 * stored typed. The adapter only validates and tests: the poller does the
 * fetching, and ingest the storing. */
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/identity.h"
#include "switchboard/imap.h"
#include "switchboard/mailcompose.h"

#include <curl/curl.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const secret_keys[] = {"password", "smtp_password", NULL};

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* An integer given as a number or a decimal string; `def` when absent. */
static int get_int(json_t *cfg, const char *key, long def, long min, long max, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(cfg, key);
    long n = def;
    if (json_is_integer(v)) {
        n = (long)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        n = strtol(s, &end, 10);
        if (errno || end == s || *end)
            return sb_fail(err, errlen, SB_ERR_INVALID, "%s: '%s' is not a number", key, s);
    } else if (v && !json_is_null(v)) {
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s: a number is required", key);
    }
    if (n < min || n > max)
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s: %ld is not in %ld..%ld", key, n, min, max);
    json_object_set_new(cfg, key, json_integer(n));
    return SB_OK;
}

static int get_bool(json_t *cfg, const char *key, int def, char *err, size_t errlen)
{
    json_t *v = json_object_get(cfg, key);
    int b = def;
    if (json_is_boolean(v)) {
        b = json_is_true(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))
            b = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))
            b = 0;
        else
            return sb_fail(err, errlen, SB_ERR_INVALID, "%s: '%s' is not true or false", key, s);
    } else if (v && !json_is_null(v)) {
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s: true or false is required", key);
    }
    json_object_set_new(cfg, key, json_boolean(b));
    return SB_OK;
}

static int one_of(json_t *cfg, const char *key, const char *def, const char *const *allowed,
                  char *err, size_t errlen)
{
    const char *v = jstr(cfg, key);
    if (!v) {
        if (json_object_get(cfg, key) && !json_is_null(json_object_get(cfg, key)))
            return sb_fail(err, errlen, SB_ERR_INVALID, "%s: a string is required", key);
        json_object_set_new(cfg, key, json_string(def));
        return SB_OK;
    }
    for (const char *const *a = allowed; *a; a++)
        if (!strcmp(v, *a))
            return SB_OK;
    char list[128] = "";
    for (const char *const *a = allowed; *a; a++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ",
                 *a);
    return sb_fail(err, errlen, SB_ERR_INVALID, "%s: '%s' is not one of %s", key, v, list);
}

static int need_str(const json_t *cfg, const char *key, size_t max, char *err, size_t errlen)
{
    const char *v = jstr(cfg, key);
    if (!v || !*v)
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s is required", key);
    if (strlen(v) > max)
        return sb_fail(err, errlen, SB_ERR_INVALID, "%s is longer than %zu bytes", key, max);
    return SB_OK;
}

/* folders: a JSON array of names or one comma-separated string. */
static int folders(json_t *cfg, char *err, size_t errlen)
{
    json_t *v = json_object_get(cfg, "folders");
    json_t *out = json_array();
    if (!v || json_is_null(v)) {
        json_array_append_new(out, json_string("INBOX"));
    } else if (json_is_string(v)) {
        char *copy = strdup(json_string_value(v)), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
             t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            size_t n = strlen(t);
            while (n && t[n - 1] == ' ')
                t[--n] = '\0';
            if (n)
                json_array_append_new(out, json_string(t));
        }
        free(copy);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *f;
        json_array_foreach(v, i, f)
        {
            if (!json_is_string(f) || !json_string_length(f)) {
                json_decref(out);
                return sb_fail(err, errlen, SB_ERR_INVALID, "folders: names must be strings");
            }
            json_array_append(out, f);
        }
    }
    if (!json_array_size(out) || json_array_size(out) > 50) {
        json_decref(out);
        return sb_fail(err, errlen, SB_ERR_INVALID, "folders: 1 to 50 folder names are required");
    }
    size_t i;
    json_t *f;
    json_array_foreach(out, i, f) if (json_string_length(f) > 255)
    {
        json_decref(out);
        return sb_fail(err, errlen, SB_ERR_INVALID, "folders: a name is longer than 255 bytes");
    }
    json_object_set_new(cfg, "folders", out);
    return SB_OK;
}

static int validate_imap(json_t *cfg, char *err, size_t errlen)
{
    static const char *const tls[] = {"imaps", "starttls", "none", NULL};
    int rc = need_str(cfg, "host", 253, err, errlen);
    if (rc == SB_OK)
        rc = need_str(cfg, "username", 320, err, errlen);
    if (rc == SB_OK)
        rc = need_str(cfg, "password", 1024, err, errlen);
    if (rc == SB_OK)
        rc = one_of(cfg, "tls", "imaps", tls, err, errlen);
    if (rc == SB_OK)
        rc = get_int(cfg, "port", !strcmp(jstr(cfg, "tls"), "imaps") ? 993 : 143, 1, 65535, err,
                     errlen);
    if (rc == SB_OK)
        rc = get_bool(cfg, "tls_verify", 1, err, errlen);
    if (rc == SB_OK)
        rc = folders(cfg, err, errlen);
    if (rc == SB_OK)
        rc = get_int(cfg, "poll_seconds", 60, 1, 86400, err, errlen);
    if (rc == SB_OK)
        rc = get_int(cfg, "since_days", 0, 0, 36500, err, errlen);
    return rc;
}

static int validate_smtp(json_t *cfg, char *err, size_t errlen)
{
    static const char *const tls[] = {"smtps", "starttls", "none", NULL};
    /* What other mail programs call implicit TLS on port 465. */
    const char *alias = jstr(cfg, "smtp_tls");
    if (alias && (!strcmp(alias, "ssl") || !strcmp(alias, "implicit") || !strcmp(alias, "tls")))
        json_object_set_new(cfg, "smtp_tls", json_string("smtps"));
    int rc = need_str(cfg, "smtp_host", 253, err, errlen);
    if (rc == SB_OK)
        rc = one_of(cfg, "smtp_tls", "starttls", tls, err, errlen);
    if (rc == SB_OK) {
        const char *t = jstr(cfg, "smtp_tls");
        rc = get_int(cfg, "smtp_port",
                     !strcmp(t, "smtps")      ? 465
                     : !strcmp(t, "starttls") ? 587
                                              : 25,
                     1, 65535, err, errlen);
    }
    if (rc == SB_OK)
        rc = need_str(cfg, "from", 998, err, errlen);
    if (rc == SB_OK) {
        char addr[320], name[256], msg[128] = "";
        if (sb_email_normalize(jstr(cfg, "from"), addr, sizeof addr, name, sizeof name, msg,
                               sizeof msg) != SB_OK)
            return sb_fail(err, errlen, SB_ERR_INVALID, "from: '%s' is not an e-mail address",
                           jstr(cfg, "from"));
    }
    const char *u = jstr(cfg, "smtp_username"), *p = jstr(cfg, "smtp_password");
    if (rc == SB_OK && (u && *u) != (p && *p))
        rc = sb_fail(err, errlen, SB_ERR_INVALID,
                     "smtp_username and smtp_password go together (or neither, for a relay that "
                     "needs no login)");
    if (rc == SB_OK)
        rc = get_bool(cfg, "smtp_tls_verify", 1, err, errlen);
    if (rc == SB_OK)
        rc = get_bool(cfg, "append_sent", 0, err, errlen);
    if (rc == SB_OK && json_is_true(json_object_get(cfg, "append_sent")) && !jstr(cfg, "host"))
        rc = sb_fail(err, errlen, SB_ERR_INVALID,
                     "append_sent needs the IMAP side (host, username, password)");
    if (rc == SB_OK && !jstr(cfg, "sent_folder"))
        json_object_set_new(cfg, "sent_folder", json_string("Sent"));
    if (rc == SB_OK)
        rc = need_str(cfg, "sent_folder", 255, err, errlen);
    return rc;
}

static const char *const imap_keys[] = {"host",       "port",     "tls",     "tls_verify",
                                        "username",   "password", "folders", "poll_seconds",
                                        "since_days", NULL};
static const char *const smtp_keys[] = {
    "smtp_host",       "smtp_port", "smtp_tls",    "smtp_username", "smtp_password",
    "smtp_tls_verify", "from",      "sent_folder", "append_sent",   NULL};

static int known(const char *const *keys, const char *k)
{
    for (; *keys; keys++)
        if (!strcmp(*keys, k))
            return 1;
    return 0;
}

static int has_any(const json_t *cfg, const char *const *keys)
{
    for (; *keys; keys++)
        if (json_object_get(cfg, *keys))
            return 1;
    return 0;
}

static int validate(json_t *cfg, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        if (!known(imap_keys, k) && !known(smtp_keys, k))
            return sb_fail(err, errlen, SB_ERR_INVALID, "unknown setting '%s'", k);
    }
    int imap = has_any(cfg, imap_keys), smtp = has_any(cfg, smtp_keys);
    if (!imap && !smtp)
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "an e-mail channel needs its IMAP side (host, username, password), its SMTP "
                       "side (smtp_host, from), or both");
    int rc = imap ? validate_imap(cfg, err, errlen) : SB_OK;
    if (rc == SB_OK && smtp)
        rc = validate_smtp(cfg, err, errlen);
    return rc;
}

/* `switchboard channel test`: log in, list the folders, open each
 * configured one read-only and report what is there. */
static int test_imap(struct sb_channel *ch, char *msg, size_t msglen)
{
    struct sb_imap_conf c;
    int rc = sb_imap_conf_read(ch->config, &c, msg, msglen);
    if (rc != SB_OK)
        return rc;
    c.timeout_s = 20;
    /* libetpan writes with send(…, 0): a server hanging up must not kill
     * the CLI process this runs in (the server ignores SIGPIPE already). */
    signal(SIGPIPE, SIG_IGN);
    struct sb_imap *s = NULL;
    rc = sb_imap_connect(&c, &s, msg, msglen);
    if (rc != SB_OK)
        return rc;
    json_t *names = NULL;
    rc = sb_imap_list(s, &names, msg, msglen);
    char report[1024];
    int off = snprintf(report, sizeof report, "ok: logged in to %s as %s; %zu folders%s", c.host,
                       c.username, json_array_size(names), sb_imap_has_idle(s) ? ", IDLE" : "");
    size_t i;
    json_t *f;
    json_array_foreach(rc == SB_OK ? json_object_get(ch->config, "folders") : NULL, i, f)
    {
        struct sb_imap_folder info;
        rc = sb_imap_examine(s, json_string_value(f), &info, msg, msglen);
        if (rc != SB_OK)
            break;
        if (off > 0 && (size_t)off < sizeof report)
            off += snprintf(report + off, sizeof report - (size_t)off, "; %s: %u messages",
                            json_string_value(f), info.exists);
    }
    json_decref(names);
    sb_imap_close(&s);
    if (rc == SB_OK)
        snprintf(msg, msglen, "%s", report);
    return rc;
}

/* -- Sending ------------------------------------------------------------------
 * One SMTP submission per outbox job. The payload (written by the reply
 * handler or a campaign at enqueue time) carries everything the message
 * needs, so the adapter reads no database: "to", "text", and optionally
 * "subject", "html", "message_id", "in_reply_to", "references" (array,
 * oldest first), "headers" (array of "Name: value"), "from" (overrides the
 * channel's), "mail_from" (the envelope sender, for bounce addresses). */

static const char *pstr(const json_t *payload, const char *k)
{
    const char *v = json_string_value(json_object_get(payload, k));
    return v && *v ? v : NULL;
}

/* The Message-ID of the job: the one generated at enqueue time, else one
 * derived from the job so that send_result names the same one. */
static void job_message_id(struct sb_channel *ch, const struct sb_outbound *msg, char *buf,
                           size_t buflen)
{
    const char *mid = pstr(msg->payload, "message_id");
    if (mid) {
        snprintf(buf, buflen, "%s", mid);
        return;
    }
    char dom[256];
    const char *from = pstr(msg->payload, "from");
    sb_mail_addr_domain(from ? from : sb_channel_conf(ch, "from"), dom, sizeof dom);
    snprintf(buf, buflen, "sb.%lld.%lld@%s", (long long)msg->outbox_id,
             (long long)msg->interaction_id, dom[0] ? dom : "switchboard.local");
}

/* A JSON array of strings as a C array borrowed from it; *n_r = 0 for none.
 * SB_ERR_INVALID when an element is not a string. */
static int str_array(const json_t *a, const char ***out, size_t *n_r)
{
    *out = NULL;
    *n_r = 0;
    if (!json_is_array(a) || json_array_size(a) == 0)
        return SB_OK;
    const char **v = calloc(json_array_size(a), sizeof *v);
    if (!v)
        return SB_ERR_NOMEM;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        if (!json_is_string(e)) {
            free(v);
            return SB_ERR_INVALID;
        }
        v[i] = json_string_value(e);
    }
    *out = v;
    *n_r = json_array_size(a);
    return SB_OK;
}

static int send_prepare(struct sb_channel *ch, const struct sb_outbound *msg,
                        struct sb_send_req *req, char *err, size_t errlen)
{
    const char *host = sb_channel_conf(ch, "smtp_host");
    const char *tls = sb_channel_conf(ch, "smtp_tls");
    const char *from = pstr(msg->payload, "from");
    if (!from)
        from = sb_channel_conf(ch, "from");
    if (!host || !from)
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "this e-mail channel has no SMTP side (smtp_host, from)");
    if (!msg->to || !*msg->to)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no recipient address");
    if (!tls)
        tls = "starttls";
    json_int_t port = json_integer_value(json_object_get(ch->config, "smtp_port"));
    if (port <= 0)
        port = !strcmp(tls, "smtps") ? 465 : !strcmp(tls, "starttls") ? 587 : 25;

    char dom[256], addr[512], mid[1024];
    sb_mail_addr_domain(from, dom, sizeof dom);
    /* The URL's path is the EHLO name: our own domain rather than the
     * machine's name, which relays may check against DNS. */
    int ipv6 = strchr(host, ':') != NULL;
    snprintf(req->url, sizeof req->url, "%s://%s%s%s:%lld/%s",
             !strcmp(tls, "smtps") ? "smtps" : "smtp", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
             (long long)port, dom[0] ? dom : "localhost");
    req->require_tls = !strcmp(tls, "starttls");
    json_t *verify = json_object_get(ch->config, "smtp_tls_verify");
    req->tls_no_verify = json_is_false(verify);
    const char *user = sb_channel_conf(ch, "smtp_username");
    const char *pass = sb_channel_conf(ch, "smtp_password");
    if (user && *user && !(req->username = strdup(user)))
        return SB_ERR_NOMEM;
    if (pass && *pass && !(req->password = strdup(pass)))
        return SB_ERR_NOMEM;

    const char *mail_from = pstr(msg->payload, "mail_from");
    sb_mail_addr_spec(mail_from ? mail_from : from, addr, sizeof addr);
    if (!addr[0])
        return sb_fail(err, errlen, SB_ERR_INVALID, "from: '%s' is not an e-mail address", from);
    /* curl takes the envelope addresses with their angle brackets. */
    if (asprintf(&req->mail_from, "<%s>", addr) < 0) {
        req->mail_from = NULL;
        return SB_ERR_NOMEM;
    }
    sb_mail_addr_spec(msg->to, addr, sizeof addr);
    if (!addr[0] || strpbrk(addr, "\r\n"))
        return sb_fail(err, errlen, SB_ERR_INVALID, "'%s' is not an e-mail address", msg->to);
    char rcpt[520];
    snprintf(rcpt, sizeof rcpt, "<%s>", addr);
    int rc = sb_send_req_rcpt(req, rcpt);
    if (rc != SB_OK)
        return rc;

    job_message_id(ch, msg, mid, sizeof mid);
    const char **refs = NULL, **extra = NULL;
    size_t nrefs = 0, nextra = 0;
    rc = str_array(json_object_get(msg->payload, "references"), &refs, &nrefs);
    if (rc == SB_OK)
        rc = str_array(json_object_get(msg->payload, "headers"), &extra, &nextra);
    if (rc == SB_ERR_INVALID)
        sb_fail(err, errlen, rc, "references and headers must be arrays of strings");
    const char *to[] = {msg->to};
    struct sb_mail_file *files = msg->nfiles ? calloc(msg->nfiles, sizeof *files) : NULL;
    if (msg->nfiles && !files)
        rc = SB_ERR_NOMEM;
    for (size_t i = 0; files && i < msg->nfiles; i++)
        files[i] = (struct sb_mail_file){.filename = msg->files[i].filename,
                                         .content_type = msg->files[i].content_type,
                                         .data = msg->files[i].data,
                                         .len = msg->files[i].len};
    struct sb_mail_out m = {
        .from = from,
        .to = to,
        .nto = 1,
        .subject = pstr(msg->payload, "subject"),
        .text = msg->text,
        .html = pstr(msg->payload, "html"),
        .message_id = mid,
        .in_reply_to = pstr(msg->payload, "in_reply_to"),
        .references = refs,
        .nreferences = nrefs,
        .extra_headers = extra,
        .nextra = nextra,
        .files = files,
        .nfiles = files ? msg->nfiles : 0,
    };
    if (rc == SB_OK)
        rc = sb_mail_compose(&m, &req->body, &req->body_len, err, errlen);
    free(files);
    free(refs);
    free(extra);
    return rc;
}

/* SMTP: 2xx accepted (our Message-ID is the provider id, the one the
 * client's answer will name); 4xx temporary; 5xx final with the server's
 * words. */
static int send_result(struct sb_channel *ch, const struct sb_outbound *msg, long status,
                       const char *body, size_t len, const char *retry_after,
                       struct sb_send_result *res)
{
    (void)retry_after;
    memset(res, 0, sizeof *res);
    if (status >= 200 && status < 300) {
        res->outcome = SB_SEND_OK;
        job_message_id(ch, msg, res->external_id, sizeof res->external_id);
        return SB_OK;
    }
    res->outcome = status >= 500 && status < 600 ? SB_SEND_FAILED : SB_SEND_RETRY;
    snprintf(res->error, sizeof res->error, "SMTP %ld: %.*s", status, (int)(len > 400 ? 400 : len),
             body ? body : "");
    return SB_OK;
}

/* append_sent: the sent message APPENDed to the IMAP Sent folder, so it
 * shows in the mailbox's own mail program too (libcurl's IMAP upload). */
static int after_send(struct sb_channel *ch, const struct sb_outbound *msg,
                      const struct sb_send_req *sent, struct sb_send_req *req)
{
    (void)msg;
    const char *host = sb_channel_conf(ch, "host"), *tls = sb_channel_conf(ch, "tls");
    const char *user = sb_channel_conf(ch, "username"), *pass = sb_channel_conf(ch, "password");
    const char *folder = sb_channel_conf(ch, "sent_folder");
    if (!json_is_true(json_object_get(ch->config, "append_sent")) || !host || !user || !pass ||
        !sent->body)
        return 0;
    if (!tls)
        tls = "imaps";
    if (!folder)
        folder = "Sent";
    json_int_t port = json_integer_value(json_object_get(ch->config, "port"));
    if (port <= 0)
        port = !strcmp(tls, "imaps") ? 993 : 143;
    /* The folder in modified UTF-7, then URL-escaped ("Отправленные",
     * "Sent Items"). */
    char *utf7 = sb_imap_utf7_encode(folder);
    char *esc = utf7 ? curl_easy_escape(NULL, utf7, 0) : NULL;
    free(utf7);
    if (!esc)
        return 0;
    int ipv6 = strchr(host, ':') != NULL;
    int n = snprintf(req->url, sizeof req->url, "%s://%s%s%s:%lld/%s",
                     !strcmp(tls, "imaps") ? "imaps" : "imap", ipv6 ? "[" : "", host,
                     ipv6 ? "]" : "", (long long)port, esc);
    curl_free(esc);
    if (n < 0 || (size_t)n >= sizeof req->url)
        return 0;
    req->require_tls = !strcmp(tls, "starttls");
    req->tls_no_verify = json_is_false(json_object_get(ch->config, "tls_verify"));
    req->username = strdup(user);
    req->password = strdup(pass);
    req->body = malloc(sent->body_len + 1);
    if (!req->username || !req->password || !req->body)
        return 0;
    memcpy(req->body, sent->body, sent->body_len);
    req->body[sent->body_len] = '\0';
    req->body_len = sent->body_len;
    return 1;
}

/* The SMTP side: connect, EHLO, STARTTLS or TLS as configured, log in, and
 * NOOP; nothing is sent. Blocking, CLI only. */
static int test_smtp(struct sb_channel *ch, char *msg, size_t msglen)
{
    struct sb_outbound probe = {.to = "probe@invalid.example", .text = "-"};
    struct sb_send_req req = {0};
    char err[CURL_ERROR_SIZE + 256] = "";
    int rc = send_prepare(ch, &probe, &req, err, sizeof err);
    if (rc != SB_OK) {
        sb_send_req_free(&req);
        return sb_fail(msg, msglen, rc == SB_ERR_NOMEM ? rc : SB_ERR_CONFIG, "%s", err);
    }
    CURL *e = curl_easy_init();
    if (!e) {
        sb_send_req_free(&req);
        return sb_fail(msg, msglen, SB_ERR_NOMEM, "cannot start a transfer");
    }
    curl_easy_setopt(e, CURLOPT_URL, req.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "NOOP");
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    if (req.username)
        curl_easy_setopt(e, CURLOPT_USERNAME, req.username);
    if (req.password)
        curl_easy_setopt(e, CURLOPT_PASSWORD, req.password);
    if (req.require_tls)
        curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (req.tls_no_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    err[0] = '\0';
    CURLcode cc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    const char *at = strchr(req.url, '/') ? strchr(req.url, '/') + 2 : req.url;
    const char *end = strchr(at, '/');
    int hostlen = end ? (int)(end - at) : (int)strlen(at);
    if (cc != CURLE_OK)
        rc = sb_fail(msg, msglen, SB_ERR_UNAVAILABLE, "SMTP %.*s: %s", hostlen, at,
                     err[0] ? err : curl_easy_strerror(cc));
    else
        snprintf(msg, msglen, "ok: SMTP %.*s answers%s%s%s", hostlen, at,
                 req.username ? ", logged in as " : "", req.username ? req.username : "",
                 req.require_tls || !strncmp(req.url, "smtps", 5) ? ", TLS" : "");
    sb_send_req_free(&req);
    return rc;
}

/* `switchboard channel test`: each side that is configured. */
static int test(struct sb_channel *ch, char *msg, size_t msglen)
{
    int imap = sb_channel_conf(ch, "host") != NULL;
    int smtp = sb_channel_conf(ch, "smtp_host") != NULL;
    char a[1024] = "", b[1024] = "";
    int rc = imap ? test_imap(ch, a, sizeof a) : SB_OK;
    int rc2 = smtp ? test_smtp(ch, b, sizeof b) : SB_OK;
    snprintf(msg, msglen, "%s%s%s", a, imap && smtp ? "; " : "", b);
    return rc != SB_OK ? rc : rc2;
}

const struct sb_channel_kind sb_channel_email = {
    .name = "email",
    .flags = SB_CH_POLLS | SB_CH_SENDS | SB_CH_SEND_FILES,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .test = test,
    .send_prepare = send_prepare,
    .send_result = send_result,
    .after_send = after_send,
};
