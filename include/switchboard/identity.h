/* Identities: the normalised forms by which a client is recognised.
 *
 * Phones become E.164 ("+79991234567") with libphonenumber (wrapped in
 * phonenumber.cc), after PCRE2 has found the number inside free text
 * ("тел.: 8 (916) …, звонить после 18:00"); an extension ("доб. 123",
 * "ext. 5") is returned separately. E-mail addresses are trimmed,
 * case-folded and their domain converted to punycode (IDNA2008); a display
 * name and RFC 2047 encoded words are parsed when the value comes from a
 * header. Messenger ids are kept as the provider's digits/strings.
 *
 * A value that cannot be normalised is not an error for ingestion: the
 * caller keeps it raw as an unverified identity that is never used for
 * matching. These functions do no I/O and are safe on any thread; their
 * only state is libphonenumber's read-only metadata and a cache of recent
 * phone results (a mutex guards it). */
#ifndef SB_IDENTITY_H
#define SB_IDENTITY_H

#include <stddef.h>

enum sb_identity_kind {
    SB_ID_EMAIL,
    SB_ID_PHONE,
    SB_ID_TELEGRAM,
    SB_ID_WHATSAPP,
    SB_ID_VIBER,
    SB_ID_OTHER,
    SB_ID__COUNT
};

/* "email", "phone", "telegram", "whatsapp", "viber", "other" — the values of
 * client_identities.kind. */
const char *sb_identity_kind_name(enum sb_identity_kind kind);
int sb_identity_kind_parse(const char *name, enum sb_identity_kind *kind_r);

#define SB_PHONE_MAX     32 /* "+" and up to 15 digits, with room to spare */
#define SB_EXTENSION_MAX 16
#define SB_EMAIL_MAX     320

struct sb_phone {
    char e164[SB_PHONE_MAX];          /* "+79991234567" */
    char extension[SB_EXTENSION_MAX]; /* "123", or empty */
};

/* Find one phone number in `raw` and format it as E.164, parsing national
 * formats with `region` (ISO 3166 alpha-2, e.g. "RU"; "ZZ" or NULL for
 * none). SB_ERR_INVALID with a message for a person when there is no valid
 * number. */
int sb_phone_normalize(const char *raw, const char *region, struct sb_phone *out, char *err,
                       size_t errlen);

/* Normalise an e-mail address; `raw` may be a header value such as
 * "=?UTF-8?B?0JDQvdC90LA=?= <Anna@Пример.рф>". `display_name` (may be NULL)
 * receives the decoded name, UTF-8, or "". SB_ERR_INVALID with a message when
 * no address can be found. */
int sb_email_normalize(const char *raw, char *out, size_t outlen, char *display_name, size_t dnlen,
                       char *err, size_t errlen);

/* Normalise any kind: phone and e-mail as above; telegram: a decimal user id;
 * whatsapp: the wa_id, international digits without '+' (as the provider
 * sends them); viber: the opaque id, trimmed. */
int sb_identity_normalize(enum sb_identity_kind kind, const char *raw, const char *region,
                          char *value_r, size_t valuelen, char *err, size_t errlen);

#endif
