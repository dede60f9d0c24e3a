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

#endif
