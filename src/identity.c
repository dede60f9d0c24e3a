/* Identities: the normalised forms by which ingest recognises a client (see
 * identity.h). Phone numbers are found in free text and formatted as E.164,
 * e-mail addresses are taken out of header values and case-folded with their
 * domain in punycode, messenger ids are checked and trimmed.
 *
 * DESIGN
 * Phones. One PCRE2 pattern, compiled once, finds candidate runs: an optional
 * '+' (repeated ones collapse), then digits joined by short separator runs
 * (spaces, '-', '.', '(', ')', a lone '/'), taken whole and possessively, so
 * the engine can never hand back a shorter prefix of a longer run: "+7 999 123
 * 45 67 89 00" is one 15-digit run and invalid, not a valid number plus
 * noise. A run ends at anything else: a comma or semicolon ("…, звонить после
 * 18:00"), a letter, a colon, a line break, " / " between two numbers. A run
 * must not start inside a word or number. An extension keyword ("доб.",
 * "ext", "x", "#", RFC 3966 ";ext=") right after the run captures the
 * extension. Labels before the number ("тел.:", "tel:") are simply not part
 * of any run. Each run in turn goes to libphonenumber with the default
 * region; the first valid one wins, so a note holding other digits does not
 * hide the number. \d matches any Unicode decimal digit (PCRE2_UCP), so
 * full-width digits reach libphonenumber, which folds them.
 *
 * E-mail. A header value is split into display name and address at the first
 * '<' outside a quoted string; the name is unquoted and its RFC 2047 encoded
 * words decoded (B and Q, any charset iconv knows, whitespace between
 * adjacent encoded words dropped as §6.2 asks; bytes of adjacent words in one
 * charset are joined before conversion, so a character split across two
 * words survives). The address is lower-cased (local part too, as the issue
 * asks; no provider-specific folding) and an internationalised domain goes
 * through IDNA2008/UTS 46 (libidn2) to punycode. Single-label domains
 * ("anna@localhost") and address literals are refused: a client identity must
 * be globally meaningful, and a name that resolves only inside one network
 * would make two different people look the same.
 *
 * Thread safety: the compiled pattern and the C.UTF-8 locale object are made
 * once under pthread_once and only read afterwards; match data, iconv
 * descriptors and buffers belong to one call. */
#include "switchboard/identity.h"
#include "switchboard/textutil.h"
#include "switchboard/err.h"
#include "switchboard/phonenumber.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <idn2.h>
#include <locale.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

/* Longest raw value we look at: more than any header line or form field that
 * holds one address or number; longer input is refused, not scanned. */
#define RAW_MAX 4096
/* A phone run longer than this is not a phone number (libphonenumber itself
 * refuses 250 characters); full-width digits take 3 bytes each. */
#define PHONE_RUN_MAX 128
/* Runs tried per value: a paragraph of digits is not worth more. */
#define PHONE_CANDIDATES_MAX 16
#define EMAIL_ADDR_MAX       254 /* RFC 5321 path limit minus the angle brackets */
#define EMAIL_LOCAL_MAX      64
#define TELEGRAM_ID_MAX      20
#define VIBER_ID_MAX         128
#define OTHER_MAX            320 /* client_identities.value is VARCHAR(320) */
#define CHARSET_MAX          40

static const char *const kind_names[SB_ID__COUNT] = {
    [SB_ID_EMAIL] = "email",       [SB_ID_PHONE] = "phone", [SB_ID_TELEGRAM] = "telegram",
    [SB_ID_WHATSAPP] = "whatsapp", [SB_ID_VIBER] = "viber", [SB_ID_OTHER] = "other",
};

const char *sb_identity_kind_name(enum sb_identity_kind kind)
{
    if ((int)kind < 0 || kind >= SB_ID__COUNT)
        return "unknown";
    return kind_names[kind];
}

int sb_identity_kind_parse(const char *name, enum sb_identity_kind *kind_r)
{
    for (int i = 0; name && i < SB_ID__COUNT; i++)
        if (!strcmp(name, kind_names[i])) {
            *kind_r = (enum sb_identity_kind)i;
            return SB_OK;
        }
    return SB_ERR_INVALID;
}

/* -- Shared helpers ----------------------------------------------------- */

/* The pattern's pieces. SEP joins digits: spaces, dots, brackets, hyphens and
 * dashes (U+2010–U+2015), at most four in a row; a lone '/' joins them too
 * ("030/123456"), but " / " separates two numbers. EXT_WORD lists extension
 * keywords; "х" is the Cyrillic letter people type for "x". */
#define PHONE_PLUS     "(?:[+＋][\\h(]{0,2})*+"
#define PHONE_SEP      "(?:[\\h.()\\[\\]\\-‐-―]{1,4}+|/)"
#define PHONE_EXT_WORD "(?:доб(?:авочный)?|доп|вн(?:утр)?|ext(?:ension|n)?|x|х|#)"
static const char phone_pattern[] =
    /* no letter, digit or '+' just before: a run starts at its start */
    "(?<![\\p{L}\\p{N}_+＋])"
    /* group 1: the run, taken whole (possessive: never a shorter prefix) */
    "(" PHONE_PLUS "\\d(?:" PHONE_SEP "?\\d)*+)"
    /* group 2: an extension right after it */
    "(?:\\h*[,;(]?\\h*" PHONE_EXT_WORD
    "[.．]?\\h*[:=.]?\\h*([0-9０-９]{1,10}+)(?![\\p{N}\\p{L}]))?";

static pcre2_code *phone_re;
static char phone_re_error[128];
static locale_t utf8_locale;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_once_fn(void)
{
    int code;
    PCRE2_SIZE off;
    phone_re = pcre2_compile((PCRE2_SPTR)phone_pattern, PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | PCRE2_MATCH_INVALID_UTF,
                             &code, &off, NULL);
    if (!phone_re) {
        PCRE2_UCHAR msg[96];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(phone_re_error, sizeof phone_re_error, "phone pattern at %zu: %s", (size_t)off,
                 (const char *)msg);
    } else {
        (void)pcre2_jit_compile(phone_re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    }
    /* Case-folding non-ASCII local parts; without it only ASCII is folded. */
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Length of a Unicode white space or invisible character that people paste
 * around values (NBSP, BOM, zero-width space), 0 when `s` does not start with
 * one. */
static size_t invisible_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 1 && is_space(u[0]))
        return 1;
    if (n >= 2 && u[0] == 0xc2 && u[1] == 0xa0)
        return 2;
    if (n >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf)
        return 3;
    if (n >= 3 && u[0] == 0xe2 && u[1] == 0x80 && (u[2] == 0x8b || u[2] == 0xaf))
        return 3;
    return 0;
}

static size_t invisible_len_back(const char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++)
        if (invisible_len(s + n - k, k) == k)
            return k;
    return 0;
}

static void trim(const char **s, size_t *n)
{
    size_t k;
    while ((k = invisible_len(*s, *n)) != 0)
        *s += k, *n -= k;
    while ((k = invisible_len_back(*s, *n)) != 0)
        *n -= k;
}

/* Decode one UTF-8 sequence (strict: no overlongs, surrogates or values past
 * U+10FFFF). Returns its length, 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_decode((const unsigned char *)s + i, n - i, &cp)) == 0)
            return 0;
    return 1;
}

/* The longest prefix of s[0..n) of at most `max` bytes that ends on a
 * character boundary: for quoting input in messages. */
static int clip(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return (int)n;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return (int)max;
}

/* Copy a result into the caller's buffer or say it does not fit. */
static int put_out(char *dst, size_t dstlen, const char *src, size_t n, const char *what, char *err,
                   size_t errlen)
{
    if (!dst || n >= dstlen)
        return sb_fail(err, errlen, SB_ERR_TOO_LARGE,
                       "the normalised %s (%zu bytes) does not fit in its buffer", what, n);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return SB_OK;
}

/* A growable byte buffer with a cap: decoded header text never outgrows it. */
struct buf {
    char *p;
    size_t len, cap, max;
    int nomem;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->nomem)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->max) {
            b->nomem = 1;
            return;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->nomem = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_putc(struct buf *b, char c)
{
    buf_put(b, &c, 1);
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* -- Phones ------------------------------------------------------------- */

static int region_code(const char *region, char out[3], char *err, size_t errlen)
{
    if (!region || !*region) {
        memcpy(out, "ZZ", 3);
        return SB_OK;
    }
    if (strlen(region) != 2 || !isalpha((unsigned char)region[0]) ||
        !isalpha((unsigned char)region[1]))
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "'%.*s' is not a region code (two letters, e.g. RU)",
                       clip(region, strlen(region), 32), region);
    out[0] = (char)toupper((unsigned char)region[0]);
    out[1] = (char)toupper((unsigned char)region[1]);
    out[2] = '\0';
    return SB_OK;
}

/* The run as libphonenumber should see it: leading '+' signs (ASCII or
 * full-width, with spaces or '(' between them) become one '+'; the rest is
 * passed as written, punctuation included, for the library to read. */
static int phone_run(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i = 0, o = 0;
    int plus = 0;
    for (;;) {
        if (i < n && s[i] == '+')
            plus = 1, i++;
        else if (i + 2 < n && !memcmp(s + i, "＋", 3))
            plus = 1, i += 3;
        else if (plus && i < n && (s[i] == '(' || is_space((unsigned char)s[i])))
            i++;
        else if (plus && i + 1 < n && !memcmp(s + i, "\xc2\xa0", 2))
            i += 2;
        else
            break;
    }
    if (n - i + 2 > outlen)
        return -1;
    if (plus)
        out[o++] = '+';
    memcpy(out + o, s + i, n - i);
    out[o + n - i] = '\0';
    return 0;
}

static size_t count_digits(const char *s, size_t n)
{
    size_t d = 0;
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            k = 1;
        else if ((cp >= '0' && cp <= '9') || (cp >= 0xff10 && cp <= 0xff19))
            d++;
    }
    return d;
}

/* Extension digits to ASCII (the pattern takes ASCII and full-width ones). */
static void ext_ascii(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    uint32_t cp;
    for (size_t i = 0, k; i < n && o + 1 < outlen; i += k) {
        k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            break;
        out[o++] = (char)(cp >= 0xff10 ? '0' + (cp - 0xff10) : cp);
    }
    out[o] = '\0';
}

/* Recent E.164 results, keyed by region and the run exactly as handed to
 * libphonenumber. Its Parse and IsValidNumber run ICU regular expressions:
 * about 40 us a number here, two fifths of ingest's own CPU per message
 * (perf, bench/ingest). A client writes again and again from the same
 * number, spelled the same way, so most lookups of live traffic hit.
 * Only successes are kept (a failure's reason comes from the library each
 * time); a slot holds the latest key hashed to it. */
#define PHONE_CACHE_SLOTS 4096 /* a power of two; about 300 KiB */
#define PHONE_CACHE_KEY   48   /* region, ':', the run; longer runs bypass it */

struct phone_cache_slot {
    char key[PHONE_CACHE_KEY];
    char e164[SB_PHONE_MAX];
};
static struct phone_cache_slot phone_cache[PHONE_CACHE_SLOTS];
static pthread_mutex_t phone_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int e164_cached(const char *num, const char *reg, char *out, size_t outlen, char *reason,
                       size_t reasonlen)
{
    char key[PHONE_CACHE_KEY];
    int kl = snprintf(key, sizeof key, "%s:%s", reg, num);
    if (kl < 0 || (size_t)kl >= sizeof key)
        return sb_phonenumber_e164(num, reg, out, outlen, reason, reasonlen);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < kl; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    struct phone_cache_slot *slot = &phone_cache[h & (PHONE_CACHE_SLOTS - 1)];
    int hit = 0;
    pthread_mutex_lock(&phone_cache_lock);
    if (!strcmp(slot->key, key) && strlen(slot->e164) < outlen) {
        memcpy(out, slot->e164, strlen(slot->e164) + 1);
        hit = 1;
    }
    pthread_mutex_unlock(&phone_cache_lock);
    if (hit)
        return 0;
    if (sb_phonenumber_e164(num, reg, out, outlen, reason, reasonlen) != 0)
        return -1;
    if (strlen(out) < sizeof slot->e164) {
        pthread_mutex_lock(&phone_cache_lock);
        memcpy(slot->key, key, (size_t)kl + 1);
        memcpy(slot->e164, out, strlen(out) + 1);
        pthread_mutex_unlock(&phone_cache_lock);
    }
    return 0;
}

int sb_phone_normalize(const char *raw, const char *region, struct sb_phone *out, char *err,
                       size_t errlen)
{
    if (!out)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no output for the phone number");
    memset(out, 0, sizeof *out);
    char reg[3];
    int rc = region_code(region, reg, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!raw)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a phone number is required");
    size_t n = strlen(raw);
    if (n > RAW_MAX)
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "the text is too long (%zu bytes) to hold one phone number", n);
    const char *s = raw;
    trim(&s, &n);
    if (n == 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a phone number is required");

    pthread_once(&init_once, init_once_fn);
    if (!phone_re)
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "%s", phone_re_error);
    pcre2_match_data *md = pcre2_match_data_create(3, NULL);
    if (!md)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");

    /* The reason reported when nothing is valid: that of the run with the
     * most digits, the one most likely meant as the number. */
    char why[128] = "", bad[PHONE_RUN_MAX + 2] = "";
    size_t why_digits = 0;
    PCRE2_SIZE start = 0;
    rc = SB_ERR_INVALID;
    for (int tries = 0; tries < PHONE_CANDIDATES_MAX && start < n; tries++) {
        int m = pcre2_match(phone_re, (PCRE2_SPTR)s, n, start, 0, md, NULL);
        if (m < 0)
            break; /* no match, or a match limit: either way no more runs */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        start = ov[1] > start ? ov[1] : start + 1;
        const char *run = s + ov[2];
        size_t runlen = ov[3] - ov[2];
        size_t digits = count_digits(run, runlen);
        char num[PHONE_RUN_MAX + 2], reason[128] = "";
        if (phone_run(run, runlen, num, sizeof num) != 0) {
            snprintf(reason, sizeof reason, "too long for a phone number");
        } else if (e164_cached(num, reg, out->e164, sizeof out->e164, reason, sizeof reason) == 0) {
            if (m > 2 && ov[4] != PCRE2_UNSET)
                ext_ascii(s + ov[4], ov[5] - ov[4], out->extension, sizeof out->extension);
            rc = SB_OK;
            break;
        }
        if (digits > why_digits || !why[0]) {
            why_digits = digits;
            snprintf(why, sizeof why, "%s", reason);
            snprintf(bad, sizeof bad, "%.*s", clip(run, runlen, PHONE_RUN_MAX), run);
        }
    }
    pcre2_match_data_free(md);
    if (rc == SB_OK)
        return SB_OK;
    memset(out, 0, sizeof *out);
    if (!why[0])
        return sb_fail(err, errlen, SB_ERR_INVALID, "no phone number in '%.*s'", clip(s, n, 64), s);
    if (!strcmp(reg, "ZZ") && bad[0] != '+' && strncmp(bad, "＋", 3))
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "'%s' is not a valid phone number: without a default region it needs "
                       "its country code, as +<country code> ...",
                       bad);
    return sb_fail(err, errlen, SB_ERR_INVALID, "'%s' is not a valid phone number%s%s", bad,
                   why[0] ? ": " : "", why);
}

/* -- RFC 2047 encoded words --------------------------------------------- */

/* Decode the text of one encoded word into `out`. 0, or -1 when the text is
 * not valid B/Q (then the word is shown as written, as RFC 2047 §6.3 allows). */
static int decode_word_text(char enc, const char *t, size_t n, struct buf *out)
{
    if (enc == 'Q') {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)t[i];
            int hi, lo;
            if (c == '_')
                buf_putc(out, ' ');
            else if (c == '=' && i + 2 < n && (hi = sb_hexval((unsigned char)t[i + 1])) >= 0 &&
                     (lo = sb_hexval((unsigned char)t[i + 2])) >= 0) {
                buf_putc(out, (char)(hi << 4 | lo));
                i += 2;
            } else if (c == '=')
                return -1;
            else
                buf_putc(out, (char)c);
        }
        return 0;
    }
    uint32_t acc = 0;
    int bits = 0;
    size_t i = 0;
    for (; i < n && t[i] != '='; i++) {
        int v = sb_b64val((unsigned char)t[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(out, (char)((acc >> bits) & 0xff));
        }
    }
    for (; i < n; i++) /* only padding may follow */
        if (t[i] != '=')
            return -1;
    return 0;
}

/* Parse "=?charset?E?text?=" at s[0..n). Returns its length, 0 when s does not
 * start with a well-formed encoded word. */
static size_t parse_encoded_word(const char *s, size_t n, char charset[CHARSET_MAX + 1],
                                 char *enc_r, const char **text_r, size_t *textlen_r)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    size_t i = 2, cs = 0;
    for (; i < n && s[i] != '?'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (cs >= CHARSET_MAX || !(isalnum(c) || strchr("-_.:+*", c)))
            return 0;
        charset[cs++] = (char)c;
    }
    charset[cs] = '\0';
    char *star = strchr(charset, '*'); /* RFC 2231 language: "UTF-8*ru" */
    if (star)
        *star = '\0';
    if (!charset[0] || i + 3 >= n || s[i + 2] != '?')
        return 0;
    char enc = (char)toupper((unsigned char)s[i + 1]);
    if (enc != 'B' && enc != 'Q')
        return 0;
    size_t t0 = i + 3;
    for (i = t0; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '?' && s[i + 1] == '=') {
            *enc_r = enc;
            *text_r = s + t0;
            *textlen_r = i - t0;
            return i + 2;
        }
        if (c == '?' || c <= ' ' || c >= 0x7f)
            return 0;
    }
    return 0;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Append `in` (in `charset`) to `out` as UTF-8. Unknown charsets pass the
 * bytes through: the final UTF-8 check replaces whatever is not UTF-8. */
static void convert_charset(const char *charset, const char *in, size_t n, struct buf *out)
{
    if (!strcasecmp(charset, "utf-8") || !strcasecmp(charset, "utf8") ||
        !strcasecmp(charset, "us-ascii") || !strcasecmp(charset, "ascii")) {
        buf_put(out, in, n);
        return;
    }
    iconv_t cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        buf_put(out, in, n);
        return;
    }
    char *ip = (char *)in;
    size_t il = n;
    while (il > 0 && !out->nomem) {
        char chunk[256];
        char *op = chunk;
        size_t ol = sizeof chunk;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        buf_put(out, chunk, (size_t)(op - chunk));
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            buf_put(out, replacement, 3);
            if (errno != EILSEQ)
                break; /* EINVAL: a truncated sequence at the end */
            ip++, il--;
        }
    }
    iconv_close(cd);
}

/* Decoded bytes of adjacent encoded words in one charset, converted together. */
struct pending {
    char charset[CHARSET_MAX + 1];
    struct buf bytes;
};

static void flush_pending(struct pending *pd, struct buf *out)
{
    if (pd->bytes.len) {
        convert_charset(pd->charset, pd->bytes.p, pd->bytes.len, out);
        out->nomem |= pd->bytes.nomem;
    }
    pd->bytes.len = 0;
    pd->charset[0] = '\0';
}

/* Decode a phrase (a display name or a comment) into UTF-8: quoted strings are
 * unquoted (and, leniently, encoded words inside them decoded, as most mail
 * readers do), encoded words decoded, white space folded to one space and
 * dropped between adjacent encoded words. */
static void decode_phrase(const char *s, size_t n, int quotes, struct buf *out)
{
    struct pending pd = {.bytes = {.max = out->max}};
    int prev_encoded = 0, space = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) {
            space = 1;
            i++;
            continue;
        }
        if (quotes && c == '"') {
            struct buf q = {.max = out->max};
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                buf_putc(&q, s[i]);
            }
            i += i < n; /* the closing quote */
            flush_pending(&pd, out);
            if (space && out->len)
                buf_putc(out, ' ');
            space = 0;
            if (q.len)
                decode_phrase(q.p, q.len, 0, out);
            out->nomem |= q.nomem;
            buf_free(&q);
            prev_encoded = 0;
            continue;
        }
        char cs[CHARSET_MAX + 1], enc;
        const char *text;
        size_t tlen, wlen = parse_encoded_word(s + i, n - i, cs, &enc, &text, &tlen);
        if (wlen) {
            struct buf dec = {.max = out->max};
            if (decode_word_text(enc, text, tlen, &dec) == 0) {
                if (!prev_encoded) {
                    flush_pending(&pd, out);
                    if (space && out->len)
                        buf_putc(out, ' ');
                }
                if (strcasecmp(pd.charset, cs))
                    flush_pending(&pd, out);
                snprintf(pd.charset, sizeof pd.charset, "%s", cs);
                buf_put(&pd.bytes, dec.p ? dec.p : "", dec.len);
                out->nomem |= dec.nomem;
                buf_free(&dec);
                prev_encoded = 1, space = 0;
                i += wlen;
                continue;
            }
            buf_free(&dec);
        }
        flush_pending(&pd, out);
        if (space && out->len)
            buf_putc(out, ' ');
        buf_putc(out, (char)c);
        prev_encoded = 0, space = 0;
        i++;
    }
    flush_pending(&pd, out);
    buf_free(&pd.bytes);
}

/* Make decoded text fit for storage: invalid UTF-8 becomes U+FFFD, control
 * characters become spaces, runs of space fold to one, ends are trimmed, and
 * a name wrapped whole in quotes loses them. */
static void clean_text(struct buf *in, struct buf *out)
{
    uint32_t cp;
    int space = 0;
    for (size_t i = 0, k; i < in->len; i += k) {
        k = utf8_decode((const unsigned char *)in->p + i, in->len - i, &cp);
        if (k == 0) {
            k = 1;
            cp = 0xfffd;
        }
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || cp == 0xa0) {
            space = out->len > 0;
            continue;
        }
        if (cp == ' ') {
            space = out->len > 0;
            continue;
        }
        if (space)
            buf_putc(out, ' ');
        space = 0;
        char u[4];
        buf_put(out, u, utf8_encode(cp, u));
    }
    if (out->len >= 2 && ((out->p[0] == '"' && out->p[out->len - 1] == '"') ||
                          (out->p[0] == '\'' && out->p[out->len - 1] == '\''))) {
        memmove(out->p, out->p + 1, out->len - 2);
        out->len -= 2;
        out->p[out->len] = '\0';
    }
}

/* -- E-mail ------------------------------------------------------------- */

/* Lower-case the local part: ASCII always, other letters through the
 * C.UTF-8 locale's tables when it exists. */
static int fold_local(const char *s, size_t n, struct buf *out)
{
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0)
            return -1;
        if (cp < 0x80)
            cp = (uint32_t)tolower((int)cp);
        else if (utf8_locale)
            cp = (uint32_t)towlower_l((wint_t)cp, utf8_locale);
        char u[4];
        buf_put(out, u, utf8_encode(cp, u));
    }
    return 0;
}

/* An ASCII domain as DNS accepts it for a mail host: two labels or more, each
 * 1–63 letters, digits and inner hyphens, a top-level label not all digits. */
static const char *domain_problem(const char *d)
{
    size_t n = strlen(d), labels = 0;
    if (n == 0)
        return "the domain is empty";
    if (n > 253)
        return "the domain is longer than 253 characters";
    const char *label = d;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || d[i] == '.') {
            size_t len = (size_t)(d + i - label);
            if (len == 0)
                return "the domain has an empty label";
            if (len > 63)
                return "a domain label is longer than 63 characters";
            if (label[0] == '-' || label[len - 1] == '-')
                return "a domain label starts or ends with '-'";
            labels++;
            if (i < n) {
                label = d + i + 1;
                all_digits = 1;
            }
            continue;
        }
        unsigned char c = (unsigned char)d[i];
        if (!(islower(c) || isdigit(c) || c == '-'))
            return "the domain holds a character that host names cannot have";
        all_digits &= isdigit(c) != 0;
    }
    if (labels < 2)
        return "the domain has a single label (a name like 'localhost' is not a client's "
               "address)";
    if (all_digits)
        return "the domain ends in a numeric label";
    return NULL;
}

static int email_invalid(const char *a, size_t n, const char *why, char *err, size_t errlen)
{
    return sb_fail(err, errlen, SB_ERR_INVALID, "'%.*s' is not a valid e-mail address: %s",
                   clip(a, n, 80), a, why);
}

/* Normalise a bare address (no display name) into `out`. */
static int normalize_addr(const char *a, size_t n, struct buf *out, char *err, size_t errlen)
{
    trim(&a, &n);
    if (n >= 7 && !strncasecmp(a, "mailto:", 7))
        a += 7, n -= 7;
    if (n == 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an e-mail address is required");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= ' ' || c == 0x7f)
            return email_invalid(a, n, "it contains a space or a control character", err, errlen);
        if (c == '@') {
            if (at)
                return email_invalid(a, n, "it has more than one '@'", err, errlen);
            at = a + i;
        }
    }
    if (!at)
        return email_invalid(a, n, "it has no '@'", err, errlen);
    const char *local = a, *dom = at + 1;
    size_t llen = (size_t)(at - a), dlen = n - llen - 1;
    if (llen == 0)
        return email_invalid(a, n, "nothing before the '@'", err, errlen);
    if (llen > EMAIL_LOCAL_MAX)
        return email_invalid(a, n, "the part before '@' is longer than 64 characters", err, errlen);
    if (!utf8_valid(a, n))
        return email_invalid(a, n, "it is not valid UTF-8", err, errlen);
    for (size_t i = 0; i < llen; i++)
        if (strchr("()<>[]:;\\,\"", local[i]))
            return email_invalid(a, n, "the part before '@' holds a character that needs quoting",
                                 err, errlen);
    if (local[0] == '.' || local[llen - 1] == '.' || memmem(local, llen, "..", 2))
        return email_invalid(a, n, "misplaced '.' before the '@'", err, errlen);
    if (dlen && dom[dlen - 1] == '.')
        dlen--; /* the root: "example.com." is example.com */
    if (dlen == 0)
        return email_invalid(a, n, "nothing after the '@'", err, errlen);
    if (dom[0] == '[')
        return email_invalid(a, n, "address literals such as [192.0.2.1] are not accepted", err,
                             errlen);

    char domain[256];
    if (dlen >= sizeof domain)
        return email_invalid(a, n, "the domain is longer than 253 characters", err, errlen);
    memcpy(domain, dom, dlen);
    domain[dlen] = '\0';
    int ascii = 1;
    for (size_t i = 0; i < dlen; i++)
        ascii &= (unsigned char)domain[i] < 0x80;
    if (ascii) {
        for (size_t i = 0; i < dlen; i++)
            domain[i] = (char)tolower((unsigned char)domain[i]);
    } else {
        char *puny = NULL;
        int irc = idn2_to_ascii_8z(domain, &puny, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
        if (irc != IDN2_OK) {
            idn2_free(puny);
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "'%.*s' is not a valid e-mail address: the domain is not a valid "
                           "international name (%s)",
                           clip(a, n, 80), a, idn2_strerror(irc));
        }
        size_t plen = strlen(puny);
        if (plen >= sizeof domain) {
            idn2_free(puny);
            return email_invalid(a, n, "the domain is longer than 253 characters", err, errlen);
        }
        memcpy(domain, puny, plen + 1);
        idn2_free(puny);
    }
    const char *why = domain_problem(domain);
    if (why)
        return email_invalid(a, n, why, err, errlen);

    if (fold_local(local, llen, out) != 0)
        return email_invalid(a, n, "it is not valid UTF-8", err, errlen);
    buf_putc(out, '@');
    buf_put(out, domain, strlen(domain));
    if (out->nomem)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (out->len > EMAIL_ADDR_MAX)
        return email_invalid(a, n, "it is longer than 254 characters", err, errlen);
    return SB_OK;
}

/* Split a header value into display name and address: the address is inside
 * the first "<…>" outside a quoted string, or, without one, the value itself
 * with an optional "(comment)" after it taken as the name. */
static int split_mailbox(const char *s, size_t n, const char **name, size_t *namelen,
                         const char **addr, size_t *addrlen, char *err, size_t errlen)
{
    int inq = 0;
    size_t lt = n, cmt = n;
    for (size_t i = 0; i < n; i++) {
        if (inq && s[i] == '\\') {
            i++;
            continue;
        }
        if (s[i] == '"')
            inq = !inq;
        else if (!inq && s[i] == '<') {
            lt = i;
            break;
        } else if (!inq && s[i] == '(' && cmt == n)
            cmt = i;
    }
    *name = s, *namelen = 0;
    if (lt < n) {
        const char *gt = memchr(s + lt + 1, '>', n - lt - 1);
        if (!gt)
            return sb_fail(err, errlen, SB_ERR_INVALID, "'%.*s' has a '<' without its '>'",
                           clip(s, n, 80), s);
        *namelen = lt;
        *addr = s + lt + 1;
        *addrlen = (size_t)(gt - *addr);
        /* After '>' only space or a comment may follow: a second address is
         * not silently dropped. */
        const char *rest = gt + 1;
        size_t rn = n - (size_t)(rest - s);
        trim(&rest, &rn);
        if (rn && !(rest[0] == '(' && rest[rn - 1] == ')'))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "'%.*s' holds more than one address or text after it", clip(s, n, 80),
                           s);
        return SB_OK;
    }
    *addr = s;
    *addrlen = n;
    if (cmt < n && s[n - 1] == ')') {
        *addrlen = cmt;
        *name = s + cmt + 1;
        *namelen = n - cmt - 2;
    }
    return SB_OK;
}

int sb_email_normalize(const char *raw, char *out, size_t outlen, char *display_name, size_t dnlen,
                       char *err, size_t errlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (display_name && dnlen)
        display_name[0] = '\0';
    if (!raw)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an e-mail address is required");
    size_t n = strlen(raw);
    if (n > RAW_MAX)
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "the value is too long (%zu bytes) to hold one e-mail address", n);
    const char *s = raw;
    trim(&s, &n);
    if (n == 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an e-mail address is required");
    pthread_once(&init_once, init_once_fn);

    const char *name = s, *addr = s;
    size_t namelen = 0, addrlen = n;
    int rc = split_mailbox(s, n, &name, &namelen, &addr, &addrlen, err, errlen);
    if (rc != SB_OK)
        return rc;
    struct buf a = {.max = 4 * RAW_MAX}, dec = {.max = 4 * RAW_MAX}, dn = {.max = 4 * RAW_MAX};
    rc = normalize_addr(addr, addrlen, &a, err, errlen);
    if (rc == SB_OK && display_name) {
        decode_phrase(name, namelen, 1, &dec);
        clean_text(&dec, &dn);
        if (dec.nomem || dn.nomem)
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    if (rc == SB_OK)
        rc = put_out(out, outlen, a.p, a.len, "e-mail address", err, errlen);
    if (rc == SB_OK && display_name)
        rc = put_out(display_name, dnlen, dn.p ? dn.p : "", dn.len, "display name", err, errlen);
    if (rc != SB_OK) {
        if (out && outlen)
            out[0] = '\0';
        if (display_name && dnlen)
            display_name[0] = '\0';
    }
    buf_free(&a);
    buf_free(&dec);
    buf_free(&dn);
    return rc;
}

/* -- Messenger ids and the rest ------------------------------------------ */

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return n > 0;
}

/* Telegram: a positive user id (chats and channels have negative ids and are
 * not people). Leading zeros, as a spreadsheet may add, are dropped. */
static int norm_telegram(const char *s, size_t n, char *v, size_t vlen, char *err, size_t errlen)
{
    if (!all_digits(s, n))
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "'%.*s' is not a Telegram user id (a positive decimal number)",
                       clip(s, n, 64), s);
    while (n > 1 && s[0] == '0')
        s++, n--;
    if (n == 1 && s[0] == '0')
        return sb_fail(err, errlen, SB_ERR_INVALID, "0 is not a Telegram user id");
    if (n > TELEGRAM_ID_MAX)
        return sb_fail(err, errlen, SB_ERR_INVALID, "'%.*s' is too long for a Telegram user id",
                       clip(s, n, 64), s);
    return put_out(v, vlen, s, n, "Telegram id", err, errlen);
}

/* WhatsApp: the wa_id is the number in international form without '+', as
 * the Cloud API sends it. It is not re-validated with libphonenumber: the
 * provider's form is what its webhooks will carry again. */
static int norm_whatsapp(const char *s, size_t n, char *v, size_t vlen, char *err, size_t errlen)
{
    char d[16];
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 0 && c == '+')
            continue;
        if (c == ' ' || c == '-')
            continue;
        if (!isdigit(c) || nd >= sizeof d - 1)
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "'%.*s' is not a WhatsApp id (7 to 15 digits of an international "
                           "number)",
                           clip(s, n, 64), s);
        d[nd++] = (char)c;
    }
    if (nd < 7 || d[0] == '0')
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "'%.*s' is not a WhatsApp id (7 to 15 digits of an international number, "
                       "starting with the country code)",
                       clip(s, n, 64), s);
    return put_out(v, vlen, d, nd, "WhatsApp id", err, errlen);
}

/* Viber ids and other values are opaque: only trimmed and checked for being
 * text that fits the column. */
static int norm_opaque(const char *what, size_t max, const char *s, size_t n, char *v, size_t vlen,
                       char *err, size_t errlen)
{
    if (n == 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "an empty %s", what);
    if (n > max)
        return sb_fail(err, errlen, SB_ERR_INVALID, "the %s is longer than %zu bytes", what, max);
    if (!utf8_valid(s, n))
        return sb_fail(err, errlen, SB_ERR_INVALID, "the %s is not valid UTF-8", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return sb_fail(err, errlen, SB_ERR_INVALID, "the %s contains a control character",
                           what);
    return put_out(v, vlen, s, n, what, err, errlen);
}

int sb_identity_normalize(enum sb_identity_kind kind, const char *raw, const char *region,
                          char *value_r, size_t valuelen, char *err, size_t errlen)
{
    if (value_r && valuelen)
        value_r[0] = '\0';
    if (kind == SB_ID_EMAIL)
        return sb_email_normalize(raw, value_r, valuelen, NULL, 0, err, errlen);
    if (kind == SB_ID_PHONE) {
        /* The extension is not part of the identity: one person, one number. */
        struct sb_phone p;
        int rc = sb_phone_normalize(raw, region, &p, err, errlen);
        if (rc != SB_OK)
            return rc;
        return put_out(value_r, valuelen, p.e164, strlen(p.e164), "phone number", err, errlen);
    }
    if ((int)kind < 0 || kind >= SB_ID__COUNT)
        return sb_fail(err, errlen, SB_ERR_INVALID, "unknown identity kind %d", (int)kind);
    if (!raw)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a %s id is required", kind_names[kind]);
    size_t n = strlen(raw);
    if (n > RAW_MAX)
        return sb_fail(err, errlen, SB_ERR_INVALID, "the %s id is too long (%zu bytes)",
                       kind_names[kind], n);
    const char *s = raw;
    trim(&s, &n);
    if (n == 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "a %s id is required", kind_names[kind]);
    switch (kind) {
    case SB_ID_TELEGRAM:
        return norm_telegram(s, n, value_r, valuelen, err, errlen);
    case SB_ID_WHATSAPP:
        return norm_whatsapp(s, n, value_r, valuelen, err, errlen);
    case SB_ID_VIBER:
        return norm_opaque("Viber id", VIBER_ID_MAX, s, n, value_r, valuelen, err, errlen);
    default:
        return norm_opaque("value", OTHER_MAX, s, n, value_r, valuelen, err, errlen);
    }
}
