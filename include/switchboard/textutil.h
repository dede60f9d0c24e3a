/* Small text helpers shared by the parsers (identity.c's encoded words,
 * mime.c, htmltext.c): digit values and UTF-8 encoding. Pure functions. */
#ifndef SB_TEXTUTIL_H
#define SB_TEXTUTIL_H

#include <stddef.h>

/* The value of a hex digit (either case), or -1. */
int sb_hexval(int c);
/* The value of a base64 digit (standard alphabet), or -1. */
int sb_b64val(int c);
/* Encode a code point as UTF-8 into out (room for 4); returns the length. */
size_t sb_utf8_encode(unsigned long cp, char out[4]);

#endif
