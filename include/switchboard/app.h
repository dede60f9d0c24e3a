/* The running server's shared state, handed to every handler.
 *
 * Everything here is either set before the threads start and read-only after
 * (cfg, pool, dummy_hash), or carries its own lock (the rate limiters), or is
 * touched by the loop thread only (the fields marked so). */
#ifndef SB_APP_H
#define SB_APP_H

#include <time.h>

struct sb_config;
struct sb_dbpool;
struct sb_mailboxes;
struct sb_ratelimit;
struct sb_sender;

struct sb_app {
    const struct sb_config *cfg;
    struct sb_dbpool *pool;
    struct sb_mailboxes *mailboxes;     /* the IMAP pollers (mailbox.h); NULL when not started */
    struct sb_ratelimit *login_ip;      /* failed logins per client IP */
    struct sb_ratelimit *login_account; /* failed logins per e-mail */
    struct sb_ratelimit *forms_ip;      /* form posts per client IP (forms.rate_limit a minute) */
    /* Form posts the honeypot dropped; DB workers add with __atomic builtins. */
    unsigned long long forms_honeypot;
    char dummy_hash[128]; /* verified against when the e-mail is unknown, for equal timing */
    int cookie_secure;
    /* Seals channel secrets; has_secret_key is 0 when none is configured,
     * and channels with secrets then cannot be used. */
    unsigned char secret_key[32];
    int has_secret_key;
    time_t started_at;
    /* Delivers outbox jobs; handlers that enqueue one call sb_sender_wake()
     * after their commit (any thread). NULL while not running. */
    struct sb_sender *sender;
    /* loop thread only */
    int draining;
    unsigned long inflight;
    unsigned long long static_hits;
};

#endif
