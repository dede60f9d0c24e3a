/* Fixed-window counters keyed by a string (an IP address, an e-mail).
 *
 * Bounded memory: a fixed table of SB_RATELIMIT_SLOTS entries; a new key
 * evicts the stalest entry of its probe run, so a flood of distinct keys can
 * only forget counts, never grow the table. Keys are hashed with a random
 * SipHash key so nobody can aim collisions at a victim's slot.
 * Thread-safe: one mutex per limiter, held for a few loads and stores. */
#ifndef SB_RATELIMIT_H
#define SB_RATELIMIT_H

#include <time.h>

struct sb_ratelimit;

int sb_ratelimit_new(int limit, int window_seconds, struct sb_ratelimit **rl_r);
void sb_ratelimit_free(struct sb_ratelimit **rl);

/* SB_ERR_LIMIT when `key` already has `limit` hits in the current window;
 * `retry_after_r` then holds the seconds until the window ends. */
int sb_ratelimit_check(struct sb_ratelimit *rl, const char *key, time_t now, int *retry_after_r);
void sb_ratelimit_hit(struct sb_ratelimit *rl, const char *key, time_t now);
void sb_ratelimit_reset(struct sb_ratelimit *rl, const char *key);

/* Check and count in one step (no window for concurrent requests to slip
 * past between the two): SB_ERR_LIMIT without counting when over, else SB_OK
 * with the attempt counted. sb_ratelimit_refund() takes one count back (a
 * sign-in that turned out right). */
int sb_ratelimit_take(struct sb_ratelimit *rl, const char *key, time_t now, int *retry_after_r);
void sb_ratelimit_refund(struct sb_ratelimit *rl, const char *key);

/* The key for a client address: IPv6 by its /64, which one subscriber
 * holds whole, so rotating addresses inside it does not reset the count. */
void sb_ratelimit_ip_key(const char *addr, char *out, size_t outlen);

#endif
