/* The C face of libphonenumber (phonenumber.cc, the project's one C++ file).
 * Callers use identity.h; this header exists so that the wrapper has a
 * contract of its own and nothing else includes C++. */
#ifndef SB_PHONENUMBER_H
#define SB_PHONENUMBER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parse `number` (one number, possibly with punctuation, a leading '+' or an
 * international dialling prefix of `region`) and write its E.164 form.
 * Returns 0 when the number parses and is valid for its region, -1 when
 * not; `reason` (may be NULL) then says why, for a person. Never throws. */
int sb_phonenumber_e164(const char *number, const char *region, char *out, size_t outlen,
                        char *reason, size_t reasonlen);

#ifdef __cplusplus
}
#endif

#endif
