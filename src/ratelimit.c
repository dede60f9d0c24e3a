/* Fixed-window rate limiting with a bounded table (see ratelimit.h). */
#include "switchboard/ratelimit.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PROBES 8

struct slot {
    uint64_t key; /* 0 = empty */
    time_t window_start;
    int count;
};

struct sb_ratelimit {
    pthread_mutex_t lock;
    int limit, window;
    unsigned char sipkey[crypto_shorthash_KEYBYTES];
    struct slot slots[SB_RATELIMIT_SLOTS];
};

int sb_ratelimit_new(int limit, int window_seconds, struct sb_ratelimit **rl_r)
{
    struct sb_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return SB_ERR_NOMEM;
    pthread_mutex_init(&rl->lock, NULL);
    rl->limit = limit;
    rl->window = window_seconds;
    randombytes_buf(rl->sipkey, sizeof rl->sipkey);
    *rl_r = rl;
    return SB_OK;
}

void sb_ratelimit_free(struct sb_ratelimit **rlp)
{
    if (!*rlp)
        return;
    pthread_mutex_destroy(&(*rlp)->lock);
    free(*rlp);
    *rlp = NULL;
}

static uint64_t hash_key(const struct sb_ratelimit *rl, const char *key)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)key, strlen(key), rl->sipkey);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h ? h : 1;
}

/* Find the key's slot, or claim one for it: an empty slot, else the one
 * whose window started longest ago. Called with the lock held. */
static struct slot *find(struct sb_ratelimit *rl, uint64_t h, int create)
{
    struct slot *victim = NULL;
    for (int i = 0; i < PROBES; i++) {
        struct slot *s = &rl->slots[(h + (uint64_t)i) % SB_RATELIMIT_SLOTS];
        if (s->key == h)
            return s;
        if (s->key == 0) {
            if (!victim || victim->key != 0)
                victim = s; /* the first empty slot beats any occupied one */
        } else if (!victim || (victim->key != 0 && s->window_start < victim->window_start)) {
            victim = s;
        }
    }
    if (!create)
        return NULL;
    *victim = (struct slot){h, 0, 0};
    return victim;
}

int sb_ratelimit_check(struct sb_ratelimit *rl, const char *key, time_t now, int *retry_after_r)
{
    int rc = SB_OK;
    pthread_mutex_lock(&rl->lock);
    struct slot *s = find(rl, hash_key(rl, key), 0);
    if (s && now - s->window_start < rl->window && s->count >= rl->limit) {
        rc = SB_ERR_LIMIT;
        if (retry_after_r) {
            long left = (long)(s->window_start + rl->window - now);
            *retry_after_r = left > 0 ? (int)left : 1;
        }
    }
    pthread_mutex_unlock(&rl->lock);
    return rc;
}

void sb_ratelimit_hit(struct sb_ratelimit *rl, const char *key, time_t now)
{
    pthread_mutex_lock(&rl->lock);
    struct slot *s = find(rl, hash_key(rl, key), 1);
    if (s->count == 0 || now - s->window_start >= rl->window) {
        s->window_start = now;
        s->count = 0;
    }
    s->count++;
    pthread_mutex_unlock(&rl->lock);
}

int sb_ratelimit_take(struct sb_ratelimit *rl, const char *key, time_t now, int *retry_after_r)
{
    int rc = SB_OK;
    pthread_mutex_lock(&rl->lock);
    struct slot *s = find(rl, hash_key(rl, key), 1);
    if (s->count == 0 || now - s->window_start >= rl->window) {
        s->window_start = now;
        s->count = 0;
    }
    if (s->count >= rl->limit) {
        rc = SB_ERR_LIMIT;
        if (retry_after_r) {
            long left = (long)(s->window_start + rl->window - now);
            *retry_after_r = left > 0 ? (int)left : 1;
        }
    } else {
        s->count++;
    }
    pthread_mutex_unlock(&rl->lock);
    return rc;
}

void sb_ratelimit_refund(struct sb_ratelimit *rl, const char *key)
{
    pthread_mutex_lock(&rl->lock);
    struct slot *s = find(rl, hash_key(rl, key), 0);
    if (s && s->count > 0)
        s->count--;
    pthread_mutex_unlock(&rl->lock);
}

void sb_ratelimit_ip_key(const char *addr, char *out, size_t outlen)
{
    struct in6_addr a6;
    if (strchr(addr, ':') && inet_pton(AF_INET6, addr, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6)) {
        memset(a6.s6_addr + 8, 0, 8);
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a6, buf, sizeof buf);
        snprintf(out, outlen, "%s/64", buf);
        return;
    }
    snprintf(out, outlen, "%s", addr);
}

void sb_ratelimit_reset(struct sb_ratelimit *rl, const char *key)
{
    pthread_mutex_lock(&rl->lock);
    struct slot *s = find(rl, hash_key(rl, key), 0);
    if (s)
        s->count = 0;
    pthread_mutex_unlock(&rl->lock);
}
