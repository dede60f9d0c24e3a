/* Secrets at rest: provider tokens and passwords inside channel configs are
 * stored as "sb1:" + base64(nonce || secretbox(plaintext)) with a key from
 * configuration (security.secret_key, 32 bytes in base64). A database dump
 * alone reveals no credential. */
#ifndef SB_SECRETS_H
#define SB_SECRETS_H

#include <stddef.h>

#define SB_SECRET_PREFIX "sb1:"

/* Decode the configured key; SB_ERR_CONFIG with a message when it is
 * missing or not 32 bytes of base64. */
int sb_secret_key_parse(const char *b64, unsigned char key[32], char *err, size_t errlen);

/* Encrypt `plain`; *out_r is malloc'd text. */
int sb_secret_seal(const unsigned char key[32], const char *plain, char **out_r, char *err,
                   size_t errlen);
/* Decrypt a sealed value; SB_ERR_INVALID when it was not sealed with this
 * key (a changed key or a tampered row). *out_r is malloc'd. */
int sb_secret_open(const unsigned char key[32], const char *sealed, char **out_r, char *err,
                   size_t errlen);

#endif
