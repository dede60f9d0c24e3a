/* HMAC-SHA256 webhook signatures and secret comparison (see hmac.h). */
#include "hmac.h"

#include <sodium.h>
#include <string.h>

int sb_hmac_sha256_hex_ok(const char *key, const void *body, size_t len, const char *hex)
{
    unsigned char given[32], mac[32];
    size_t got = 0;
    if (!key || !hex ||
        sodium_hex2bin(given, sizeof given, hex, strlen(hex), NULL, &got, NULL) != 0 ||
        got != sizeof given)
        return 0;
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
    crypto_auth_hmacsha256_update(&st, body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    return sodium_memcmp(given, mac, sizeof mac) == 0;
}

int sb_secret_equal(const char *a, const char *b)
{
    unsigned char ha[32], hb[32];
    crypto_hash_sha256(ha, (const unsigned char *)a, strlen(a));
    crypto_hash_sha256(hb, (const unsigned char *)b, strlen(b));
    return sodium_memcmp(ha, hb, sizeof ha) == 0;
}
