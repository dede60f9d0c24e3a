/* Secrets at rest with libsodium secretbox (see secrets.h). */
#include "switchboard/secrets.h"
#include "switchboard/err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int sb_secret_key_parse(const char *b64, unsigned char key[32], char *err, size_t errlen)
{
    size_t len = 0;
    if (!b64 || !*b64)
        return sb_fail(err, errlen, SB_ERR_CONFIG,
                       "no secret key: set security.secret_key (SWITCHBOARD_SECURITY_SECRET_KEY) "
                       "to 32 random bytes in base64, e.g. `openssl rand -base64 32`");
    if (sodium_base642bin(key, 32, b64, strlen(b64), " \n\r", &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len != 32)
        return sb_fail(err, errlen, SB_ERR_CONFIG,
                       "security.secret_key must be 32 bytes in base64 (44 characters)");
    return SB_OK;
}

int sb_secret_seal(const unsigned char key[32], const char *plain, char **out_r, char *err,
                   size_t errlen)
{
    size_t plen = strlen(plain);
    size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
    unsigned char *box = malloc(blen);
    size_t tlen = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc(sizeof SB_SECRET_PREFIX + tlen);
    if (!box || !text) {
        free(box);
        free(text);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, plen,
                          box, key);
    memcpy(text, SB_SECRET_PREFIX, sizeof SB_SECRET_PREFIX - 1);
    sodium_bin2base64(text + sizeof SB_SECRET_PREFIX - 1, tlen, box, blen,
                      sodium_base64_VARIANT_ORIGINAL);
    free(box);
    *out_r = text;
    return SB_OK;
}

int sb_secret_open(const unsigned char key[32], const char *sealed, char **out_r, char *err,
                   size_t errlen)
{
    size_t plen = strlen(SB_SECRET_PREFIX);
    if (strncmp(sealed, SB_SECRET_PREFIX, plen) != 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a secret is stored unsealed");
    const char *b64 = sealed + plen;
    size_t cap = strlen(b64), blen = 0;
    unsigned char *box = malloc(cap + 1);
    if (!box)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (sodium_base642bin(box, cap, b64, strlen(b64), NULL, &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
        free(box);
        return sb_fail(err, errlen, SB_ERR_INVALID, "a stored secret is damaged");
    }
    size_t mlen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    char *plain = malloc(mlen + 1);
    if (!plain) {
        free(box);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    if (crypto_secretbox_open_easy((unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
                                   blen - crypto_secretbox_NONCEBYTES, box, key) != 0) {
        free(box);
        free(plain);
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "a stored secret does not open with security.secret_key (was the key "
                       "changed?)");
    }
    plain[mlen] = '\0';
    free(box);
    *out_r = plain;
    return SB_OK;
}
