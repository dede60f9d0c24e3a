/* Configuration loading: defaults, then the INI file, then the environment.
 *
 * One table lists every key with its type and where it lands in struct
 * sb_config, so the file parser, the environment scan and the docs agree by
 * construction. Unknown keys in the file are an error rather than silently
 * ignored: a typo in "body_limt" should not look like a working setting. */
#include "switchboard/config.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum key_type { KEY_STR, KEY_INT, KEY_SIZE, KEY_BOOL_AUTO };

static const struct config_key {
    const char *section;
    const char *key;
    enum key_type type;
    size_t offset;
    long min, max;   /* for numbers */
    const char *env; /* short alias, besides SWITCHBOARD_SECTION_KEY */
} config_keys[] = {
    {"server", "listen", KEY_STR, offsetof(struct sb_config, listen), 0, 0, "SWITCHBOARD_LISTEN"},
    {"server", "web_root", KEY_STR, offsetof(struct sb_config, web_root), 0, 0,
     "SWITCHBOARD_WEB_ROOT"},
    {"server", "public_url", KEY_STR, offsetof(struct sb_config, public_url), 0, 0,
     "SWITCHBOARD_PUBLIC_URL"},
    {"server", "body_limit", KEY_SIZE, offsetof(struct sb_config, body_limit), 1024,
     1024L * 1024 * 1024, NULL},
    {"server", "drain_timeout", KEY_INT, offsetof(struct sb_config, drain_timeout), 0, 3600, NULL},
    {"server", "metrics_token", KEY_STR, offsetof(struct sb_config, metrics_token), 0, 0, NULL},
    {"database", "url", KEY_STR, offsetof(struct sb_config, db_url), 0, 0, "SWITCHBOARD_DB"},
    {"database", "workers", KEY_INT, offsetof(struct sb_config, db_workers), 1, SB_DB_WORKERS_MAX,
     NULL},
    {"database", "schema_dir", KEY_STR, offsetof(struct sb_config, schema_dir), 0, 0,
     "SWITCHBOARD_SCHEMA_DIR"},
    {"log", "level", KEY_STR, offsetof(struct sb_config, log_level), 0, 0, NULL},
    {"log", "format", KEY_STR, offsetof(struct sb_config, log_format), 0, 0, NULL},
    {"auth", "session_ttl", KEY_INT, offsetof(struct sb_config, session_ttl), 60, 365L * 24 * 3600,
     NULL},
    {"auth", "login_ip_limit", KEY_INT, offsetof(struct sb_config, login_ip_limit), 1, 1000000,
     NULL},
    {"auth", "login_account_limit", KEY_INT, offsetof(struct sb_config, login_account_limit), 1,
     1000000, NULL},
    {"auth", "login_window", KEY_INT, offsetof(struct sb_config, login_window), 1, 86400, NULL},
    {"auth", "cookie_secure", KEY_BOOL_AUTO, offsetof(struct sb_config, cookie_secure), 0, 0, NULL},
    {"identity", "default_region", KEY_STR, offsetof(struct sb_config, default_region), 0, 0, NULL},
    {"security", "secret_key", KEY_STR, offsetof(struct sb_config, secret_key), 0, 0, NULL},
    {"forms", "rate_limit", KEY_INT, offsetof(struct sb_config, forms_rate_limit), 1, 1000000,
     NULL},
    {"imap", "max_threads", KEY_INT, offsetof(struct sb_config, imap_max_threads), 1, 256, NULL},
    {"imap", "lease_seconds", KEY_INT, offsetof(struct sb_config, imap_lease_seconds), 3, 3600,
     NULL},
    {"imap", "scan_seconds", KEY_INT, offsetof(struct sb_config, imap_scan_seconds), 1, 3600, NULL},
    {"imap", "batch", KEY_INT, offsetof(struct sb_config, imap_batch), 1, 5000, NULL},
    {"ingest", "reopen_window", KEY_INT, offsetof(struct sb_config, reopen_window), 0,
     365L * 24 * 3600, NULL},
    {"live", "poll_ms", KEY_INT, offsetof(struct sb_config, live_poll_ms), 1, 10000, NULL},
    {"live", "retention_days", KEY_INT, offsetof(struct sb_config, live_retention_days), 1, 3650,
     NULL},
    {"live", "queue", KEY_INT, offsetof(struct sb_config, live_queue), 16, 65536, NULL},
    {"live", "ping_seconds", KEY_INT, offsetof(struct sb_config, live_ping_seconds), 1, 3600, NULL},
    {"live", "timeout_seconds", KEY_INT, offsetof(struct sb_config, live_timeout_seconds), 2, 7200,
     NULL},
    {"live", "sndbuf", KEY_INT, offsetof(struct sb_config, live_sndbuf), 0, 64 * 1024 * 1024, NULL},
    {"campaigns", "connections", KEY_INT, offsetof(struct sb_config, campaign_connections), 1, 64,
     NULL},
    {"campaigns", "lease_seconds", KEY_INT, offsetof(struct sb_config, campaign_lease_seconds), 3,
     3600, NULL},
    {"campaigns", "journal_dir", KEY_STR, offsetof(struct sb_config, campaign_journal_dir), 0, 0,
     NULL},
};

#define NKEYS (sizeof config_keys / sizeof config_keys[0])

static int set_str(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return SB_ERR_NOMEM;
    free(*slot);
    *slot = copy;
    return SB_OK;
}

static int parse_long(const char *value, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value)
        return -1;
    /* Sizes may carry a K/M/G suffix: "body_limit = 2M". */
    long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024L * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024L * 1024 * 1024, end++;
    if (*end != '\0')
        return -1;
    if (v > LONG_MAX / mult || v < LONG_MIN / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int apply(struct sb_config *cfg, const struct config_key *k, const char *value, char *err,
                 size_t errlen)
{
    char *base = (char *)cfg;
    long v;
    switch (k->type) {
    case KEY_STR:
        return set_str((char **)(base + k->offset), value);
    case KEY_INT:
    case KEY_SIZE:
        if (parse_long(value, &v) != 0 || v < k->min || v > k->max ||
            (k->type == KEY_INT && *value && strpbrk(value, "kKmMgG")))
            return sb_fail(err, errlen, SB_ERR_CONFIG, "%s.%s: '%s' is not a number in %ld..%ld",
                           k->section, k->key, value, k->min, k->max);
        if (k->type == KEY_INT)
            *(int *)(base + k->offset) = (int)v;
        else
            *(size_t *)(base + k->offset) = (size_t)v;
        return SB_OK;
    case KEY_BOOL_AUTO:
        if (!strcmp(value, "auto"))
            v = -1;
        else if (!strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "true"))
            v = 1;
        else if (!strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "false"))
            v = 0;
        else
            return sb_fail(err, errlen, SB_ERR_CONFIG, "%s.%s: '%s' is not yes, no or auto",
                           k->section, k->key, value);
        *(int *)(base + k->offset) = (int)v;
        return SB_OK;
    }
    return SB_ERR_INTERNAL;
}

int sb_config_set(struct sb_config *cfg, const char *section, const char *key, const char *value,
                  char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(config_keys[i].section, section) && !strcmp(config_keys[i].key, key))
            return apply(cfg, &config_keys[i], value, err, errlen);
    return sb_fail(err, errlen, SB_ERR_CONFIG, "unknown setting %s.%s", section, key);
}

struct ini_ctx {
    struct sb_config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
};

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *ctx = user;
    char msg[256] = "";
    int rc = sb_config_set(ctx->cfg, section, name, value, msg, sizeof msg);
    if (rc != SB_OK) {
        if (ctx->rc == SB_OK)
            ctx->rc = sb_fail(ctx->err, ctx->errlen, rc, "%s: %s", ctx->path, msg);
        return 0;
    }
    return 1;
}

static int defaults(struct sb_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->body_limit = SB_BODY_LIMIT_DEFAULT;
    cfg->drain_timeout = SB_DRAIN_TIMEOUT;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->db_workers = cores < SB_DB_WORKERS_MIN   ? SB_DB_WORKERS_MIN
                      : cores > SB_DB_WORKERS_MAX ? SB_DB_WORKERS_MAX
                                                  : (int)cores;
    cfg->session_ttl = SB_SESSION_TTL_DEFAULT;
    cfg->login_ip_limit = SB_LOGIN_IP_LIMIT_DEFAULT;
    cfg->login_account_limit = SB_LOGIN_ACCOUNT_LIMIT_DEFAULT;
    cfg->login_window = SB_LOGIN_WINDOW_DEFAULT;
    cfg->cookie_secure = -1;
    cfg->reopen_window = SB_REOPEN_WINDOW_DEFAULT;
    cfg->forms_rate_limit = SB_FORMS_RATE_LIMIT_DEFAULT;
    cfg->imap_max_threads = 4;
    cfg->imap_lease_seconds = 60;
    cfg->imap_scan_seconds = 10;
    cfg->imap_batch = 200;
    cfg->campaign_connections = 4;
    cfg->campaign_lease_seconds = 60;
    cfg->live_poll_ms = SB_LIVE_POLL_MS_DEFAULT;
    cfg->live_retention_days = SB_LIVE_RETENTION_DAYS_DEFAULT;
    cfg->live_queue = SB_LIVE_QUEUE_DEFAULT;
    cfg->live_ping_seconds = 30;
    cfg->live_timeout_seconds = 75;
    if (set_str(&cfg->listen, "127.0.0.1:8080") || set_str(&cfg->web_root, "web") ||
        set_str(&cfg->schema_dir, "schema") || set_str(&cfg->log_level, "info") ||
        set_str(&cfg->log_format, "text") || set_str(&cfg->default_region, "RU") ||
        set_str(&cfg->public_url, "http://localhost:8080") ||
        set_str(&cfg->campaign_journal_dir, "var/campaign-journal"))
        return SB_ERR_NOMEM;
    return SB_OK;
}

static int load_env(struct sb_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct config_key *k = &config_keys[i];
        char name[128];
        int n = snprintf(name, sizeof name, "SWITCHBOARD_%s_%s", k->section, k->key);
        for (int j = 0; j < n; j++)
            name[j] = (char)toupper((unsigned char)name[j]);
        /* The long form wins over the alias: it is the more specific spelling. */
        const char *v = getenv(name);
        if (!v && k->env)
            v = getenv(k->env);
        if (!v)
            continue;
        char msg[256] = "";
        int rc = apply(cfg, k, v, msg, sizeof msg);
        if (rc != SB_OK)
            return sb_fail(err, errlen, rc, "environment: %s", msg[0] ? msg : sb_strerror(rc));
    }
    return SB_OK;
}

int sb_config_load(struct sb_config *cfg, const char *path, char *err, size_t errlen)
{
    int rc = defaults(cfg);
    if (rc != SB_OK)
        return rc;
    int explicit = 1;
    if (!path)
        path = getenv("SWITCHBOARD_CONFIG");
    if (!path) {
        path = "switchboard.conf";
        explicit = 0;
    }
    if (explicit || access(path, F_OK) == 0) {
        struct ini_ctx ctx = {cfg, path, err, errlen, SB_OK};
        int line = ini_parse(path, on_ini_entry, &ctx);
        if (ctx.rc != SB_OK)
            return ctx.rc;
        if (line < 0)
            return sb_fail(err, errlen, SB_ERR_CONFIG, "cannot read %s: %s", path, strerror(errno));
        if (line > 0)
            return sb_fail(err, errlen, SB_ERR_CONFIG, "%s:%d: syntax error", path, line);
    }
    return load_env(cfg, err, errlen);
}

void sb_config_free(struct sb_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (config_keys[i].type == KEY_STR) {
            char **slot = (char **)((char *)cfg + config_keys[i].offset);
            free(*slot);
            *slot = NULL;
        }
}
