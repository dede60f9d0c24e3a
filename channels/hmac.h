/* Webhook signature checks shared by the adapters that use HMAC-SHA256 of
 * the raw body (WhatsApp, Viber, PBX). Private to channels/. */
#ifndef SB_CHANNELS_HMAC_H
#define SB_CHANNELS_HMAC_H

#include <stddef.h>

/* 1 when `hex` (64 hex digits, any case) is HMAC-SHA256(body, key);
 * compared in constant time. */
int sb_hmac_sha256_hex_ok(const char *key, const void *body, size_t len, const char *hex);

/* Two secrets equal, in time independent of where they differ. */
int sb_secret_equal(const char *a, const char *b);

#endif
