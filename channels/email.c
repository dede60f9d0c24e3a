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
    return rc;
}

static const char *const imap_keys[] = {"host",       "port",     "tls",     "tls_verify",
                                        "username",   "password", "folders", "poll_seconds",
                                        "since_days", NULL};
static const char *const smtp_keys[] = {"smtp_host",     "smtp_port",     "smtp_tls",
                                        "smtp_username", "smtp_password", "smtp_tls_verify",
                                        "from",          "sent_folder",   NULL};

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
static int test(struct sb_channel *ch, char *msg, size_t msglen)
{
    if (!sb_channel_conf(ch, "host"))
        return sb_fail(msg, msglen, SB_ERR_CONFIG,
                       "this channel has no IMAP side to test (SMTP is tested by sending)");
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

const struct sb_channel_kind sb_channel_email = {
    .name = "email",
    .flags = SB_CH_POLLS | SB_CH_SENDS,
    .secret_keys = secret_keys,
    .validate_config = validate,
    .test = test,
};
