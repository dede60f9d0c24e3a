/* The sender: one thread that delivers outbox jobs (outbox.h) through the
 * channel adapters' send hooks (channel.h), all transfers at once through
 * one libcurl multi handle.
 *
 * Thread contract:
 *   - sb_sender_start() and sb_sender_stop() are called by the thread that
 *     runs the server (sb_server_run).
 *   - sb_sender_wake() may be called from any thread (a DB worker that just
 *     committed a reply): it makes the sender look for due jobs now instead
 *     of at its next poll (once a second, which also finds jobs enqueued by
 *     other nodes and retries that came due).
 *   - everything else runs on the sender's thread, with its own database
 *     connection.
 *
 * Retries: 429 waits what Retry-After says; 5xx, timeouts and network errors
 * back off exponentially with jitter; after SB_SEND_ATTEMPTS_MAX attempts,
 * or at once on a permanent refusal, the job fails with the provider's
 * reason. */
#ifndef SB_SENDER_H
#define SB_SENDER_H

#include <stddef.h>
#include <stdint.h>

struct sb_db_params;
struct sb_sender;

#define SB_SEND_INFLIGHT_MAX   16     /* transfers at once */
#define SB_SEND_ATTEMPTS_MAX   10     /* then the job fails */
#define SB_SEND_LEASE_S        120    /* a claim outlives the longest transfer (120 s downloads) */
#define SB_SEND_POLL_MS        1000   /* look for due jobs at least this often */
#define SB_SEND_BACKOFF_MIN_MS 2000   /* first retry after 1-2 s */
#define SB_SEND_BACKOFF_MAX_MS 600000 /* never wait more than 10 min between tries */

struct sb_sender_options {
    const struct sb_db_params *db;
    const unsigned char *secret_key; /* 32 bytes, NULL when none is configured */
};

/* Open the sender's connection and start its thread. */
int sb_sender_start(const struct sb_sender_options *opt, struct sb_sender **s_r, char *err,
                    size_t errlen);
/* Stop promptly: transfers still running after a short grace are abandoned
 * and their jobs stay claimed until the lease passes (then they are retried,
 * so a message cut off mid-flight is sent again rather than lost). */
void sb_sender_stop(struct sb_sender **s);
/* Look for due jobs now. NULL-safe. */
void sb_sender_wake(struct sb_sender *s);

/* Run one transfer to completion, blocking, with exactly the set-up the
 * sender uses (for `channel test`-like commands, a campaign's test send, and
 * tests). `req` is borrowed. *status_r is the HTTP status, or for SMTP the
 * last reply code (a refused transfer that got a reply code is SB_OK with
 * that code and curl's message in `err`); *answer_r is the answer, malloc'd
 * and NUL-terminated. SB_ERR_UNAVAILABLE when no answer came at all. */
struct sb_send_req;
int sb_send_once(const struct sb_send_req *req, long *status_r, char **answer_r, size_t *len_r,
                 char *err, size_t errlen);

/* Counters since start, for /metrics (any thread; NULL-safe: zeros). */
struct sb_sender_stats {
    unsigned long long sent;    /* replies accepted by providers */
    unsigned long long fetched; /* provider-held files downloaded */
    unsigned long long retried; /* attempts that failed temporarily */
    unsigned long long failed;  /* jobs that failed for good */
    unsigned long long inflight;
};
void sb_sender_stats(struct sb_sender *s, struct sb_sender_stats *st);

/* The delay before attempt `attempt` + 1 after attempt `attempt` failed:
 * the provider's Retry-After when it gave one, else SB_SEND_BACKOFF_MIN_MS
 * doubled per attempt up to SB_SEND_BACKOFF_MAX_MS, with "equal jitter"
 * (half fixed, half drawn from `rnd`) so that jobs failed together do not
 * retry together. Pure, for tests. */
int64_t sb_sender_backoff_ms(int attempt, int retry_after_s, uint32_t rnd);

#endif
