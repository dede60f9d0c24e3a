/* Configuration: switchboard.conf (INI, read with inih), then SWITCHBOARD_*
 * environment variables, then command-line flags, each overriding the one
 * before. Every key is `section.key` in the file and SWITCHBOARD_SECTION_KEY in
 * the environment; SWITCHBOARD_DB is a short alias for database.url.
 *
 * The struct is filled once at start-up and read-only afterwards, so threads
 * share it without locks. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stddef.h>

struct sb_config {
    /* [server] */
    char *listen;     /* "127.0.0.1:8080" */
    char *web_root;   /* static files */
    char *public_url; /* how browsers reach us; used in links */
    size_t body_limit;
    int drain_timeout;
    char *metrics_token; /* when set, GET /metrics wants "Authorization: Bearer <it>" */
    /* [database] */
    char *db_url;
    int db_workers;
    char *schema_dir;
    /* [log] */
    char *log_level;
    char *log_format;
    /* [auth] */
    int session_ttl;
    int login_ip_limit;
    int login_account_limit;
    int login_window;
    int cookie_secure; /* -1: automatic (Secure when public_url is https) */
    /* [identity] */
    char *default_region;
    /* [security] */
    char *secret_key; /* base64 of 32 bytes: seals channel secrets at rest */
    /* [ingest] */
    int reopen_window; /* seconds: a resolved conversation reopens within it */
    /* [forms] */
    int forms_rate_limit; /* form posts per client IP per minute */
    /* [imap] */
    int imap_max_threads;   /* mailbox poller threads (each with one DB connection) */
    int imap_lease_seconds; /* a node's hold on a mailbox lapses this long after it goes quiet */
    int imap_scan_seconds;  /* how soon new, changed or disabled e-mail channels are noticed */
    int imap_batch;         /* messages fetched and stored per transaction */
    /* [live] WebSocket updates (ws.c) */
    int live_poll_ms;         /* how often the events table is read for other nodes' events */
    int live_retention_days;  /* events older than this are pruned */
    int live_queue;           /* events waiting per connection before a slow one is cut off */
    int live_sndbuf;          /* SO_SNDBUF of a WebSocket connection; 0 = the kernel's */
    int live_ping_seconds;    /* a connection idle this long is pinged */
    int live_timeout_seconds; /* one silent this long (no pong) is dropped */

    int campaign_connections;   /* parallel SMTP connections of the campaign sender */
    int campaign_lease_seconds; /* a claimed recipient is retried by any node after this */
    char *campaign_journal_dir; /* the send journal's files (send_journal.h) */
};

/* Load defaults, then `path` (NULL: $SWITCHBOARD_CONFIG, else ./switchboard.conf
 * when it exists), then the environment. A missing explicit file, a syntax
 * error or a bad value fails with a message naming the file, line and key. */
int sb_config_load(struct sb_config *cfg, const char *path, char *err, size_t errlen);

/* Set one `section.key` (also used for command-line overrides). */
int sb_config_set(struct sb_config *cfg, const char *section, const char *key, const char *value,
                  char *err, size_t errlen);

void sb_config_free(struct sb_config *cfg);

#endif
