/* MIME parsing (see mime.h).
 *
 * DESIGN
 * The header block is scanned here, once, into an ordered list of (name,
 * unfolded raw value): the classifier needs raw values (Auto-Submitted,
 * Precedence, X-* fields), and threading fields are more forgiving when read
 * directly (a Message-ID without <> is still an id). Structured values
 * (addresses, the date) go through libetpan's RFC 5322 parsers one value at a
 * time; when libetpan refuses a value, a simple fallback still finds the
 * address. The body goes through libetpan's MIME parser (mailmime_parse), and
 * each leaf through mailmime_part_parse for its transfer encoding.
 *
 * Text: every text/plain (and text/html) leaf that is not an attachment is
 * appended to the text (html); an attached message/rfc822 is an attachment
 * (and, for a bounce, the returned original). When nothing readable was
 * found and there is no attachment either (a broken boundary, a part type
 * nobody knows), the whole body becomes the text, so nothing is lost from
 * view; the raw message is kept in any case.
 *
 * Charsets: iconv, with aliases for the labels mail really carries (gb2312 is
 * decoded as GB18030, its superset; ks_c_5601-1987 as CP949; iso-8859-1 and
 * us-ascii as windows-1252, as browsers do). A byte iconv refuses is mapped
 * through windows-1252 and conversion resumes after it: a lying charset
 * loses no byte and the result is valid UTF-8. */
#include "switchboard/mime.h"
#include "switchboard/textutil.h"
#include "switchboard/arena.h"
#include "switchboard/err.h"
#include "switchboard/htmltext.h"
#include "switchboard/mailclass.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <libetpan/libetpan.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Nesting deeper than this is not mail but an attack on the stack. */
#define MIME_DEPTH_MAX 32

/* ---- growable byte buffer ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return SB_OK;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + more + 1)
        ncap *= 2;
    char *n = realloc(b->p, ncap);
    if (!n)
        return SB_ERR_NOMEM;
    b->p = n;
    b->cap = ncap;
    return SB_OK;
}

static int buf_add(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != SB_OK)
        return SB_ERR_NOMEM;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return SB_OK;
}

static int buf_addc(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid
 * (overlongs, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int buf_add_cp(struct buf *b, unsigned cp)
{
    char t[4];
    return buf_add(b, t, sb_utf8_encode(cp, t));
}

/* windows-1252's 0x80-0x9F; the five holes keep their C1 code points so the
 * byte is still recoverable. */
static const unsigned short cp1252_hi[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

static int buf_add_cp1252(struct buf *b, unsigned char c)
{
    if (c == 0)
        return buf_add_cp(b, 0xFFFD);
    if (c >= 0x80 && c < 0xA0)
        return buf_add_cp(b, cp1252_hi[c - 0x80]);
    return buf_add_cp(b, c);
}

/* Copy UTF-8, mapping each invalid byte through windows-1252. */
static int buf_add_utf8_repair(struct buf *b, const char *s, size_t n, int *fallback)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        size_t l;
        for (;;) {
            /* ASCII without NUL, eight bytes at a time: most mail text */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, u + i, 8);
                if ((w & UINT64_C(0x8080808080808080)) ||
                    ((w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080)))
                    break;
                i += 8;
            }
            if (i < n && u[i] != 0 && (l = utf8_seq(u + i, n - i)) != 0)
                i += l;
            else
                break;
        }
        if (buf_add(b, s + start, i - start) != SB_OK)
            return SB_ERR_NOMEM;
        if (i < n) {
            *fallback = 1;
            if (buf_add_cp1252(b, u[i]) != SB_OK)
                return SB_ERR_NOMEM;
            i++;
        }
    }
    return SB_OK;
}

/* ---- charsets ---- */

/* The iconv name for a mail charset label; NULL for "UTF-8 or, failing
 * that, windows-1252". `tmp` holds a cleaned copy of the label. */
/* Charset labels decoded as windows-1252 directly: the superset browsers use
 * for them, and every byte means something. */
#define CS_LATIN ((const char *)1)

static const char *charset_iconv_name(const char *label, char *tmp, size_t tmplen)
{
    if (!label)
        return NULL;
    while (*label == ' ' || *label == '"' || *label == '\'')
        label++;
    size_t n = 0;
    for (; label[n] && label[n] != '"' && label[n] != '\'' && label[n] != ' ' && label[n] != '*' &&
           n + 1 < tmplen;
         n++)
        tmp[n] = (char)tolower((unsigned char)label[n]);
    tmp[n] = '\0';
    const char *c = tmp;
    if (!strncmp(c, "x-", 2) && strcmp(c, "x-mac-cyrillic") != 0)
        c += 2;
    if (!strcmp(c, "iso-8859-1") || !strcmp(c, "iso8859-1") || !strcmp(c, "latin1") ||
        !strcmp(c, "iso_8859-1") || !strcmp(c, "windows-1252") || !strcmp(c, "cp1252"))
        return CS_LATIN;
    /* us-ascii with 8-bit bytes is almost always undeclared UTF-8 */
    if (!*c || !strcmp(c, "us-ascii") || !strcmp(c, "ascii") || !strcmp(c, "utf-8") ||
        !strcmp(c, "utf8") || !strcmp(c, "unknown-8bit") || !strcmp(c, "unknown") ||
        !strcmp(c, "default") || !strcmp(c, "8bit") || !strcmp(c, "ansi_x3.4-1968"))
        return NULL;
    if (!strcmp(c, "gb2312") || !strcmp(c, "gbk") || !strcmp(c, "cp936") ||
        !strcmp(c, "gb_2312-80") || !strcmp(c, "euc-cn") || !strcmp(c, "gb18030"))
        return "GB18030";
    if (!strcmp(c, "ks_c_5601-1987") || !strcmp(c, "euc-kr") || !strcmp(c, "ks_c_5601"))
        return "CP949";
    if (!strcmp(c, "shift_jis") || !strcmp(c, "sjis") || !strcmp(c, "shift-jis") ||
        !strcmp(c, "ms_kanji") || !strcmp(c, "windows-31j") || !strcmp(c, "cp932"))
        return "CP932";
    if (!strcmp(c, "iso-2022-jp"))
        return "ISO-2022-JP-2";
    if (!strcmp(c, "big5"))
        return "BIG5-HKSCS";
    if (!strcmp(c, "iso-8859-8-i"))
        return "ISO-8859-8";
    if (!strcmp(c, "unicode-1-1-utf-7"))
        return "UTF-7";
    if (!strcmp(c, "cp-1251") || !strcmp(c, "win-1251") || !strcmp(c, "cp1251"))
        return "WINDOWS-1251";
    return c;
}

int sb_mime_to_utf8(const char *charset, const char *s, size_t n, char **out, size_t *outlen,
                    int *fallback_r)
{
    struct buf b = {0};
    int fallback = 0;
    char tmp[64];
    const char *cs = charset_iconv_name(charset, tmp, sizeof tmp);
    iconv_t cd = (iconv_t)-1;
    if (cs == CS_LATIN) {
        if (buf_reserve(&b, n * 2 + 1) != SB_OK)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            if (buf_add_cp1252(&b, (unsigned char)s[i]) != SB_OK)
                goto nomem;
        cs = NULL;
        n = 0; /* converted: the UTF-8 path below appends nothing */
    } else if (cs) {
        cd = iconv_open("UTF-8", cs);
        if (cd == (iconv_t)-1)
            fallback = 1; /* a charset nobody knows: keep the bytes */
    }
    if (buf_reserve(&b, n + n / 2 + 16) != SB_OK)
        goto nomem;
    if (cd == (iconv_t)-1) {
        if (buf_add_utf8_repair(&b, s, n, &fallback) != SB_OK)
            goto nomem;
    } else {
        char *in = (char *)s;
        size_t inleft = n;
        while (inleft > 0) {
            if (buf_reserve(&b, inleft * 2 + 16) != SB_OK)
                goto nomem;
            char *o = b.p + b.len;
            size_t oleft = b.cap - b.len - 1;
            size_t r = iconv(cd, &in, &inleft, &o, &oleft);
            b.len = (size_t)(o - b.p);
            if (r != (size_t)-1)
                break;
            if (errno == E2BIG)
                continue;
            /* EILSEQ or EINVAL: one byte the charset does not allow. */
            fallback = 1;
            iconv(cd, NULL, NULL, NULL, NULL);
            if (buf_add_cp1252(&b, (unsigned char)*in) != SB_OK)
                goto nomem;
            in++;
            inleft--;
        }
        /* Flush a stateful encoding's shift sequence. */
        if (buf_reserve(&b, 16) != SB_OK)
            goto nomem;
        char *o = b.p + b.len;
        size_t oleft = b.cap - b.len - 1;
        iconv(cd, NULL, NULL, &o, &oleft);
        b.len = (size_t)(o - b.p);
        b.p[b.len] = '\0';
        iconv_close(cd);
        cd = (iconv_t)-1;
        /* iconv emits valid UTF-8, but a decoded NUL must not cut the string. */
        if (memchr(b.p, 0, b.len)) {
            struct buf c = {0};
            if (buf_add_utf8_repair(&c, b.p, b.len, &fallback) != SB_OK) {
                free(c.p);
                goto nomem;
            }
            free(b.p);
            b = c;
        }
    }
    if (!b.p && buf_add(&b, "", 0) != SB_OK)
        goto nomem;
    *out = b.p;
    if (outlen)
        *outlen = b.len;
    if (fallback_r && fallback)
        *fallback_r = 1;
    return SB_OK;
nomem:
    if (cd != (iconv_t)-1)
        iconv_close(cd);
    free(b.p);
    return SB_ERR_NOMEM;
}

/* ---- RFC 2047 ---- */

/* Decode one encoded word's text (B or Q) and append the bytes. */
static int ew_decode(struct buf *b, char enc, const char *t, size_t n)
{
    if (enc == 'B' || enc == 'b') {
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < n; i++) {
            int v = sb_b64val((unsigned char)t[i]);
            if (v < 0)
                continue;
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                if (buf_addc(b, (char)((acc >> bits) & 0xFF)) != SB_OK)
                    return SB_ERR_NOMEM;
            }
        }
        return SB_OK;
    }
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '_')
            c = ' ';
        else if (c == '=' && i + 2 < n && sb_hexval((unsigned char)t[i + 1]) >= 0 &&
                 sb_hexval((unsigned char)t[i + 2]) >= 0) {
            c = (char)(sb_hexval((unsigned char)t[i + 1]) * 16 +
                       sb_hexval((unsigned char)t[i + 2]));
            i += 2;
        }
        if (buf_addc(b, c) != SB_OK)
            return SB_ERR_NOMEM;
    }
    return SB_OK;
}

/* Finds an encoded word at s[0..n): "=?cs?e?text?=". */
static int ew_match(const char *s, size_t n, const char **cs, size_t *cslen, char *enc,
                    const char **text, size_t *textlen, size_t *total)
{
    if (n < 8 || s[0] != '=' || s[1] != '?')
        return 0;
    size_t i = 2;
    while (i < n && s[i] != '?' && s[i] != ' ' && s[i] != '\t')
        i++;
    if (i >= n || s[i] != '?' || i == 2)
        return 0;
    *cs = s + 2;
    *cslen = i - 2;
    if (i + 2 >= n || s[i + 2] != '?')
        return 0;
    *enc = s[i + 1];
    if (!strchr("BbQq", *enc))
        return 0;
    size_t t = i + 3, j = t;
    while (j + 1 < n && !(s[j] == '?' && s[j + 1] == '=')) {
        if (s[j] == '\r' || s[j] == '\n')
            return 0;
        j++;
    }
    if (j + 1 >= n)
        return 0;
    *text = s + t;
    *textlen = j - t;
    *total = j + 2;
    return 1;
}

/* Raw 8-bit header text outside encoded words: UTF-8 when it is valid, else
 * the message's own charset when it names one (old Russian mailers put raw
 * windows-1251 or koi8-r in Subject), else windows-1252 byte by byte. */
static int flush_raw(struct buf *out, const char *s, size_t n, const char *default_cs,
                     int *fallback)
{
    int ascii = 1, valid = 1;
    for (size_t i = 0; i < n && valid; i++)
        if ((unsigned char)s[i] >= 0x80)
            ascii = 0;
    if (!ascii) {
        for (size_t i = 0; i < n;) {
            size_t l = s[i] ? utf8_seq((const unsigned char *)s + i, n - i) : 0;
            if (!l) {
                valid = 0;
                break;
            }
            i += l;
        }
    }
    if (ascii || valid || !default_cs)
        return buf_add_utf8_repair(out, s, n, fallback);
    char *u = NULL;
    size_t ul = 0;
    if (sb_mime_to_utf8(default_cs, s, n, &u, &ul, fallback) != SB_OK)
        return SB_ERR_NOMEM;
    int rc = buf_add(out, u, ul);
    free(u);
    return rc;
}

static int flush_word(struct buf *out, struct buf *bytes, const char *cs, int *fallback)
{
    if (!bytes->len)
        return SB_OK;
    char *u = NULL;
    size_t ulen = 0;
    if (sb_mime_to_utf8(cs, bytes->p, bytes->len, &u, &ulen, fallback) != SB_OK)
        return SB_ERR_NOMEM;
    int rc = buf_add(out, u, ulen);
    free(u);
    bytes->len = 0;
    return rc;
}

static int decode_header_cs(const char *s, size_t n, const char *default_cs, char **out,
                            int *fallback_r)
{
    struct buf o = {0}, bytes = {0};
    char cs[64] = "", pcs[64] = "";
    int fallback = 0;
    size_t i = 0, raw_start = 0;
    int last_was_word = 0;
    while (i < n) {
        const char *c, *t;
        size_t cl, tl, total;
        char enc;
        if (s[i] != '=' || !ew_match(s + i, n - i, &c, &cl, &enc, &t, &tl, &total)) {
            i++;
            continue;
        }
        /* Whitespace between two encoded words is dropped (§6.2). */
        int only_ws = last_was_word;
        for (size_t k = raw_start; only_ws && k < i; k++)
            if (!strchr(" \t\r\n", s[k]))
                only_ws = 0;
        size_t l = cl < sizeof cs - 1 ? cl : sizeof cs - 1;
        memcpy(cs, c, l);
        cs[l] = '\0';
        char *star = strchr(cs, '*'); /* RFC 2231 language suffix */
        if (star)
            *star = '\0';
        /* Bytes of adjacent words in one charset are joined before conversion:
         * a multibyte character may be split across two words. */
        if (!only_ws || strcasecmp(cs, pcs) != 0)
            if (flush_word(&o, &bytes, pcs, &fallback) != SB_OK)
                goto nomem;
        if (!only_ws && flush_raw(&o, s + raw_start, i - raw_start, default_cs, &fallback) != SB_OK)
            goto nomem;
        if (ew_decode(&bytes, enc, t, tl) != SB_OK)
            goto nomem;
        memcpy(pcs, cs, sizeof pcs);
        i += total;
        raw_start = i;
        last_was_word = 1;
    }
    if (flush_word(&o, &bytes, pcs, &fallback) != SB_OK ||
        flush_raw(&o, s + raw_start, n - raw_start, default_cs, &fallback) != SB_OK)
        goto nomem;
    if (!o.p && buf_add(&o, "", 0) != SB_OK)
        goto nomem;
    /* Unfolding leftovers: CR/LF/TAB inside a header value become spaces. */
    for (size_t k = 0; k < o.len; k++)
        if (o.p[k] == '\r' || o.p[k] == '\n' || o.p[k] == '\t')
            o.p[k] = ' ';
    free(bytes.p);
    *out = o.p;
    if (fallback_r && fallback)
        *fallback_r = 1;
    return SB_OK;
nomem:
    free(o.p);
    free(bytes.p);
    return SB_ERR_NOMEM;
}

int sb_mime_decode_header(const char *s, size_t n, char **out, int *fallback_r)
{
    return decode_header_cs(s, n, NULL, out, fallback_r);
}

/* ---- the parse ---- */

struct ctx {
    struct sb_inbound *in;
    struct sb_arena scratch; /* header list and report parts; freed at the end */
    struct sb_mail_header *hdrs;
    size_t nhdrs, hdrs_cap;
    struct buf text, html;
    int fallback;
    const char *default_cs; /* for raw 8-bit header text; NULL = none */
    int ntext, nhtml;
    struct sb_mailclass_input mc;
    char err[256];
};

static const char *scratch_strndup(struct ctx *c, const char *s, size_t n)
{
    return sb_arena_strndup(&c->scratch, s, n);
}

/* Scan the header block at raw[off..len): fills c->hdrs and returns the
 * offset of the body (after the blank line), or len when there is none.
 * *nfields counts well-formed "name: value" lines. */
static int scan_headers(struct ctx *c, const char *raw, size_t len, size_t off, size_t *body_r)
{
    size_t i = off;
    while (i < len) {
        /* blank line: end of the header block */
        if (raw[i] == '\n') {
            i++;
            break;
        }
        if (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n') {
            i += 2;
            break;
        }
        size_t ls = i;
        size_t colon = 0;
        while (i < len && raw[i] != '\n') {
            if (!colon && raw[i] == ':')
                colon = i;
            i++;
        }
        /* include continuation lines */
        while (i + 1 < len && (raw[i + 1] == ' ' || raw[i + 1] == '\t')) {
            i++;
            while (i < len && raw[i] != '\n')
                i++;
        }
        size_t le = i; /* at '\n' or len */
        if (i < len)
            i++;
        size_t name_end = colon;
        while (name_end > ls && (raw[name_end - 1] == ' ' || raw[name_end - 1] == '\t'))
            name_end--;
        int ok = colon > ls && name_end > ls;
        for (size_t k = ls; ok && k < name_end; k++)
            if ((unsigned char)raw[k] <= 32 || (unsigned char)raw[k] >= 127)
                ok = 0;
        if (!ok) {
            if (c->nhdrs == 0) {
                /* Not a header block at all: the whole thing is body. */
                *body_r = off;
                return SB_OK;
            }
            continue; /* a stray line in the middle: skip it */
        }
        /* unfold: drop CR and LF, keep the whitespace */
        size_t vs = colon + 1;
        while (vs < le && (raw[vs] == ' ' || raw[vs] == '\t'))
            vs++;
        char *v = sb_arena_alloc(&c->scratch, le - vs + 1);
        if (!v)
            return SB_ERR_NOMEM;
        size_t vn = 0;
        for (size_t k = vs; k < le; k++)
            if (raw[k] != '\r' && raw[k] != '\n')
                v[vn++] = raw[k];
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        v[vn] = '\0';
        const char *name = scratch_strndup(c, raw + ls, name_end - ls);
        if (!name)
            return SB_ERR_NOMEM;
        if (c->nhdrs == c->hdrs_cap) {
            size_t ncap = c->hdrs_cap ? c->hdrs_cap * 2 : 32;
            void *p = realloc(c->hdrs, ncap * sizeof *c->hdrs);
            if (!p)
                return SB_ERR_NOMEM;
            c->hdrs = p;
            c->hdrs_cap = ncap;
        }
        c->hdrs[c->nhdrs++] = (struct sb_mail_header){name, v};
    }
    *body_r = i;
    return SB_OK;
}

/* A decoded header value in the inbound's arena. */
static const char *decode_into(struct ctx *c, const char *v)
{
    char *d = NULL;
    if (decode_header_cs(v, strlen(v), c->default_cs, &d, &c->fallback) != SB_OK)
        return NULL;
    const char *r = sb_inbound_strdup(c->in, d);
    free(d);
    return r;
}

/* A copy in the inbound's arena that is valid UTF-8 whatever the header
 * held: ids and addresses go to utf8mb4 columns, which refuse bad bytes. */
static const char *clean(struct ctx *c, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && u[i] && u[i] < 0x80)
        i++;
    if (i == n)
        return sb_inbound_strndup(c->in, s, n);
    struct buf b = {0};
    if (buf_add_utf8_repair(&b, s, n, &c->fallback) != SB_OK) {
        free(b.p);
        return NULL;
    }
    const char *r = sb_inbound_strndup(c->in, b.p ? b.p : "", b.len);
    free(b.p);
    return r;
}

/* The next message id at *pp: what is inside <...>, else a bare token;
 * comments and empty ids are skipped (a loop: a header of a million "()"
 * must not recurse). NULL at the end. */
static const char *msgid_at(struct ctx *c, const char **pp)
{
    const char *p = *pp;
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!*p) {
            *pp = p;
            return NULL;
        }
        const char *s, *e;
        if (*p == '(') {
            const char *q = strchr(p, ')');
            p = q ? q + 1 : p + strlen(p);
            continue;
        }
        if (*p == '<') {
            s = p + 1;
            e = strchr(s, '>');
            if (!e)
                e = s + strlen(s);
            p = *e ? e + 1 : e;
        } else {
            s = p;
            e = p;
            while (*e && !isspace((unsigned char)*e) && *e != ',' && *e != '<')
                e++;
            p = e;
        }
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (e > s) {
            *pp = p;
            return clean(c, s, (size_t)(e - s));
        }
    }
}

/* "Name <addr>" or "addr", decoded. */
static const char *format_mailbox(struct ctx *c, const char *name_raw, const char *addr)
{
    if (!(addr = clean(c, addr, strlen(addr))))
        return NULL;
    char *name = NULL;
    if (name_raw && *name_raw &&
        decode_header_cs(name_raw, strlen(name_raw), c->default_cs, &name, &c->fallback) != SB_OK)
        return NULL;
    const char *r;
    if (name && *name) {
        size_t n = strlen(name) + strlen(addr) + 4;
        char *t = malloc(n);
        if (!t) {
            free(name);
            return NULL;
        }
        snprintf(t, n, "%s <%s>", name, addr);
        r = sb_inbound_strdup(c->in, t);
        free(t);
    } else {
        r = sb_inbound_strdup(c->in, addr);
    }
    free(name);
    return r;
}

/* Fallback address extraction when libetpan refuses a header value: the
 * first <...> holding '@', else the first token holding '@'. */
static int crude_address(const char *v, char *addr, size_t addrlen, char *name, size_t namelen)
{
    const char *lt = strchr(v, '<');
    const char *s = NULL, *e = NULL;
    if (lt && strchr(lt, '>') && memchr(lt, '@', (size_t)(strchr(lt, '>') - lt))) {
        s = lt + 1;
        e = strchr(lt, '>');
        size_t nl = (size_t)(lt - v);
        while (nl && isspace((unsigned char)v[nl - 1]))
            nl--;
        const char *ns = v;
        while (*ns == '"' || *ns == ' ')
            ns++, nl = nl ? nl - 1 : 0;
        if (nl && ns[nl - 1] == '"')
            nl--;
        if (nl >= namelen)
            nl = namelen - 1;
        memcpy(name, ns, nl);
        name[nl] = '\0';
    } else {
        const char *at = strchr(v, '@');
        if (!at)
            return 0;
        s = at;
        while (s > v && !strchr(" \t<>,;:\"()", s[-1]))
            s--;
        e = at;
        while (*e && !strchr(" \t<>,;:\"()", *e))
            e++;
        name[0] = '\0';
    }
    size_t n = (size_t)(e - s);
    if (!n || n >= addrlen)
        return 0;
    memcpy(addr, s, n);
    addr[n] = '\0';
    return 1;
}

/* Adds the addresses of an address-list value to a JSON array (formatted)
 * and, for From, the first one to the inbound. */
static int add_addresses(struct ctx *c, const char *v, json_t *arr, int is_from)
{
    size_t idx = 0;
    struct mailimf_address_list *al = NULL;
    int added = 0;
    if (mailimf_address_list_parse(v, strlen(v), &idx, &al) == MAILIMF_NO_ERROR && al) {
        for (clistiter *it = clist_begin(al->ad_list); it; it = clist_next(it)) {
            struct mailimf_address *a = clist_content(it);
            clist *mbs = NULL;
            if (a->ad_type == MAILIMF_ADDRESS_MAILBOX) {
                struct mailimf_mailbox *mb = a->ad_data.ad_mailbox;
                const char *f = format_mailbox(c, mb->mb_display_name, mb->mb_addr_spec);
                if (!f)
                    goto nomem;
                if (arr)
                    json_array_append_new(arr, json_string(f));
                if (is_from && !added) {
                    c->in->sender = f;
                    if (mb->mb_display_name)
                        c->in->display_name = decode_into(c, mb->mb_display_name);
                    const char *ca = clean(c, mb->mb_addr_spec, strlen(mb->mb_addr_spec));
                    if (!ca || sb_inbound_add_identity(c->in, SB_ID_EMAIL, ca) != SB_OK)
                        goto nomem;
                    c->mc.from_addr = c->in->ids[c->in->nids - 1].raw;
                    c->mc.from_name = c->in->display_name;
                }
                added++;
            } else if (a->ad_type == MAILIMF_ADDRESS_GROUP && a->ad_data.ad_group->grp_mb_list) {
                mbs = a->ad_data.ad_group->grp_mb_list->mb_list;
                for (clistiter *j = clist_begin(mbs); j; j = clist_next(j)) {
                    struct mailimf_mailbox *mb = clist_content(j);
                    const char *f = format_mailbox(c, mb->mb_display_name, mb->mb_addr_spec);
                    if (!f)
                        goto nomem;
                    if (arr)
                        json_array_append_new(arr, json_string(f));
                    added++;
                }
            }
        }
        mailimf_address_list_free(al);
    }
    if (!added) {
        char addr[512], name[512];
        if (crude_address(v, addr, sizeof addr, name, sizeof name)) {
            const char *f = format_mailbox(c, name, addr);
            if (!f)
                return SB_ERR_NOMEM;
            if (arr)
                json_array_append_new(arr, json_string(f));
            if (is_from) {
                c->in->sender = f;
                if (*name)
                    c->in->display_name = decode_into(c, name);
                const char *a = clean(c, addr, strlen(addr));
                if (!a || sb_inbound_add_identity(c->in, SB_ID_EMAIL, a) != SB_OK)
                    return SB_ERR_NOMEM;
                c->mc.from_addr = c->in->ids[c->in->nids - 1].raw;
                c->mc.from_name = c->in->display_name;
            }
        } else if (is_from && *v) {
            /* No address at all: show what there is. */
            c->in->sender = decode_into(c, v);
            if (!c->in->sender)
                return SB_ERR_NOMEM;
        }
    }
    return SB_OK;
nomem:
    mailimf_address_list_free(al);
    return SB_ERR_NOMEM;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t parse_date(const char *v)
{
    size_t idx = 0;
    struct mailimf_date_time *dt = NULL;
    if (mailimf_date_time_parse(v, strlen(v), &idx, &dt) != MAILIMF_NO_ERROR || !dt)
        return 0;
    int64_t r = 0;
    int y = dt->dt_year;
    if (y < 50)
        y += 2000;
    else if (y < 1000)
        y += 1900;
    if (dt->dt_month >= 1 && dt->dt_month <= 12 && dt->dt_day >= 1 && dt->dt_day <= 31 &&
        y >= 1970 && y < 3000 && dt->dt_hour >= 0 && dt->dt_hour < 24 && dt->dt_min >= 0 &&
        dt->dt_min < 60 && dt->dt_sec >= 0 && dt->dt_sec <= 60) {
        int zone = dt->dt_zone; /* +0300 is 300 */
        int zmin = (zone / 100) * 60 + zone % 100;
        int64_t secs = days_from_civil(y, (unsigned)dt->dt_month, (unsigned)dt->dt_day) * 86400 +
                       dt->dt_hour * 3600 + dt->dt_min * 60 + dt->dt_sec - (int64_t)zmin * 60;
        if (secs > 0)
            r = secs * 1000000;
    }
    mailimf_date_time_free(dt);
    return r;
}

/* "type/subtype", lower case, into buf. */
static void content_type_str(const struct mailmime_content *ct, char *out, size_t outlen)
{
    const char *type = "application";
    if (!ct || !ct->ct_type) {
        snprintf(out, outlen, "text/plain");
        return;
    }
    if (ct->ct_type->tp_type == MAILMIME_TYPE_DISCRETE_TYPE) {
        const struct mailmime_discrete_type *d = ct->ct_type->tp_data.tp_discrete_type;
        switch (d->dt_type) {
        case MAILMIME_DISCRETE_TYPE_TEXT:
            type = "text";
            break;
        case MAILMIME_DISCRETE_TYPE_IMAGE:
            type = "image";
            break;
        case MAILMIME_DISCRETE_TYPE_AUDIO:
            type = "audio";
            break;
        case MAILMIME_DISCRETE_TYPE_VIDEO:
            type = "video";
            break;
        case MAILMIME_DISCRETE_TYPE_EXTENSION:
            type = d->dt_extension ? d->dt_extension : "application";
            break;
        default:
            break;
        }
    } else if (ct->ct_type->tp_type == MAILMIME_TYPE_COMPOSITE_TYPE) {
        const struct mailmime_composite_type *t = ct->ct_type->tp_data.tp_composite_type;
        type = t->ct_type == MAILMIME_COMPOSITE_TYPE_MESSAGE     ? "message"
               : t->ct_type == MAILMIME_COMPOSITE_TYPE_MULTIPART ? "multipart"
               : t->ct_token                                     ? t->ct_token
                                                                 : "application";
    }
    snprintf(out, outlen, "%s/%s", type, ct->ct_subtype ? ct->ct_subtype : "octet-stream");
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* A parameter collected from Content-Type or Content-Disposition. */
struct param {
    const char *name, *value;
};

/* RFC 2231: name*=charset'lang'%XX..., name*0=..., name*1*=...; joins the
 * sections in order and decodes them; else the plain parameter (RFC 2047
 * decoded: many mailers put encoded words there). Result malloc'd or NULL. */
static char *param_get(struct ctx *c, const struct param *ps, size_t n, const char *want)
{
    size_t wl = strlen(want);
    struct buf bytes = {0};
    char charset[64] = "";
    int found_ext = 0;
    for (unsigned sec = 0; sec < 1000; sec++) {
        int hit = 0;
        for (size_t i = 0; i < n; i++) {
            const char *nm = ps[i].name;
            if (strncasecmp(nm, want, wl) != 0 || nm[wl] != '*')
                continue;
            const char *rest = nm + wl + 1;
            int encoded;
            unsigned num;
            if (*rest == '\0') {
                if (sec != 0)
                    continue;
                encoded = 1;
                num = 0;
            } else {
                char *end;
                unsigned long v = strtoul(rest, &end, 10);
                if (end == rest || (*end && strcmp(end, "*") != 0) || v != sec)
                    continue;
                num = (unsigned)v;
                encoded = *end == '*';
            }
            (void)num;
            const char *val = ps[i].value;
            if (encoded && sec == 0) {
                const char *q1 = strchr(val, '\'');
                const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
                if (q1 && q2) {
                    size_t cl = (size_t)(q1 - val);
                    if (cl >= sizeof charset)
                        cl = sizeof charset - 1;
                    memcpy(charset, val, cl);
                    charset[cl] = '\0';
                    val = q2 + 1;
                }
            }
            for (const char *p = val; *p; p++) {
                char ch = *p;
                if (encoded && ch == '%' && sb_hexval((unsigned char)p[1]) >= 0 &&
                    sb_hexval((unsigned char)p[2]) >= 0) {
                    ch = (char)(sb_hexval((unsigned char)p[1]) * 16 +
                                sb_hexval((unsigned char)p[2]));
                    p += 2;
                }
                if (buf_addc(&bytes, ch) != SB_OK) {
                    free(bytes.p);
                    return NULL;
                }
            }
            hit = found_ext = 1;
            break;
        }
        if (!hit)
            break;
    }
    if (found_ext) {
        char *u = NULL;
        if (sb_mime_to_utf8(charset, bytes.p ? bytes.p : "", bytes.len, &u, NULL, &c->fallback) !=
            SB_OK)
            u = NULL;
        free(bytes.p);
        return u;
    }
    free(bytes.p);
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(ps[i].name, want)) {
            char *d = NULL;
            if (decode_header_cs(ps[i].value, strlen(ps[i].value), c->default_cs, &d,
                                 &c->fallback) != SB_OK)
                return NULL;
            return d;
        }
    return NULL;
}

struct leaf_info {
    char type[128];
    struct param params[32];
    size_t nparams;
    struct param dparams[32];
    size_t ndparams;
    int disposition; /* MAILMIME_DISPOSITION_TYPE_*, or -1 none */
    const char *content_id;
};

static void leaf_info(const struct mailmime *m, struct leaf_info *li)
{
    memset(li, 0, sizeof *li);
    li->disposition = -1;
    content_type_str(m->mm_content_type, li->type, sizeof li->type);
    if (m->mm_content_type && m->mm_content_type->ct_parameters)
        for (clistiter *it = clist_begin(m->mm_content_type->ct_parameters); it && li->nparams < 32;
             it = clist_next(it)) {
            struct mailmime_parameter *p = clist_content(it);
            if (p->pa_name && p->pa_value)
                li->params[li->nparams++] = (struct param){p->pa_name, p->pa_value};
        }
    if (!m->mm_mime_fields)
        return;
    for (clistiter *it = clist_begin(m->mm_mime_fields->fld_list); it; it = clist_next(it)) {
        struct mailmime_field *f = clist_content(it);
        if (f->fld_type == MAILMIME_FIELD_ID && f->fld_data.fld_id) {
            li->content_id = f->fld_data.fld_id;
        } else if (f->fld_type == MAILMIME_FIELD_DISPOSITION && f->fld_data.fld_disposition) {
            struct mailmime_disposition *d = f->fld_data.fld_disposition;
            if (d->dsp_type)
                li->disposition = d->dsp_type->dsp_type;
            for (clistiter *j = clist_begin(d->dsp_parms); j && li->ndparams < 32;
                 j = clist_next(j)) {
                struct mailmime_disposition_parm *dp = clist_content(j);
                if (dp->pa_type == MAILMIME_DISPOSITION_PARM_FILENAME && dp->pa_data.pa_filename)
                    li->dparams[li->ndparams++] =
                        (struct param){"filename", dp->pa_data.pa_filename};
                else if (dp->pa_type == MAILMIME_DISPOSITION_PARM_PARAMETER &&
                         dp->pa_data.pa_parameter->pa_name && dp->pa_data.pa_parameter->pa_value)
                    li->dparams[li->ndparams++] = (struct param){
                        dp->pa_data.pa_parameter->pa_name, dp->pa_data.pa_parameter->pa_value};
            }
        }
    }
}

static const char *plain_param(const struct leaf_info *li, const char *name)
{
    for (size_t i = 0; i < li->nparams; i++)
        if (!strcasecmp(li->params[i].name, name))
            return li->params[i].value;
    return NULL;
}

/* The decoded bytes of a part body (malloc'd by libetpan or by us). */
static int part_decode(const struct mailmime_data *d, char **out, size_t *outlen, int *libetpan)
{
    *libetpan = 0;
    if (!d || d->dt_type != MAILMIME_DATA_TEXT) {
        *out = NULL;
        *outlen = 0;
        return SB_OK;
    }
    const char *s = d->dt_data.dt_text.dt_data;
    size_t n = d->dt_data.dt_text.dt_length;
    int enc = d->dt_encoded ? d->dt_encoding : MAILMIME_MECHANISM_8BIT;
    if (enc == MAILMIME_MECHANISM_BASE64 || enc == MAILMIME_MECHANISM_QUOTED_PRINTABLE) {
        size_t idx = 0;
        char *r = NULL;
        size_t rl = 0;
        if (mailmime_part_parse(s, n, &idx, enc, &r, &rl) == MAILIMF_NO_ERROR && r) {
            *out = r;
            *outlen = rl;
            *libetpan = 1;
            return SB_OK;
        }
        /* undecodable: keep the encoded bytes */
    }
    char *r = malloc(n + 1);
    if (!r)
        return SB_ERR_NOMEM;
    if (n)
        memcpy(r, s, n);
    r[n] = '\0';
    *out = r;
    *outlen = n;
    return SB_OK;
}

static void part_free(char *p, int libetpan)
{
    if (libetpan)
        mailmime_decoded_part_free(p);
    else
        free(p);
}

/* Append converted text to a buffer, separated from earlier parts. */
static int add_text(struct ctx *c, struct buf *b, int *count, const char *charset, const char *s,
                    size_t n)
{
    char *u = NULL;
    size_t ul = 0;
    if (sb_mime_to_utf8(charset, s, n, &u, &ul, &c->fallback) != SB_OK)
        return SB_ERR_NOMEM;
    int rc = SB_OK;
    if (*count && b->len && b->p[b->len - 1] != '\n')
        rc = buf_addc(b, '\n');
    if (rc == SB_OK)
        rc = buf_add(b, u, ul);
    free(u);
    (*count)++;
    return rc;
}

/* A report part kept for the classifier, as UTF-8 in the scratch arena. */
/* The classifier reads the report fields and the returned message's
 * headers, never a returned attachment: a cap keeps a huge one cheap. */
#define REPORT_PART_MAX (256 * 1024)

static const char *scratch_text(struct ctx *c, const char *charset, const char *s, size_t n)
{
    if (n > REPORT_PART_MAX)
        n = REPORT_PART_MAX;
    char *u = NULL;
    size_t ul = 0;
    int fb = 0;
    if (sb_mime_to_utf8(charset, s, n, &u, &ul, &fb) != SB_OK)
        return NULL;
    const char *r = scratch_strndup(c, u, ul);
    free(u);
    return r;
}

static int add_attachment(struct ctx *c, const struct leaf_info *li, const char *data, size_t n)
{
    char *fname = param_get(c, li->dparams, li->ndparams, "filename");
    if (!fname)
        fname = param_get(c, li->params, li->nparams, "name");
    struct sb_inbound_attachment a = {
        .filename = fname,
        .content_type = clean(c, li->type, strlen(li->type)),
        .content_id = li->content_id ? clean(c, li->content_id, strlen(li->content_id)) : NULL,
        .inline_part = li->disposition == MAILMIME_DISPOSITION_TYPE_INLINE ||
                       (li->disposition < 0 && li->content_id != NULL),
        .data = (const unsigned char *)(data ? data : ""),
        .size = n,
    };
    int rc = a.content_type && (!li->content_id || a.content_id)
                 ? sb_inbound_add_attachment(c->in, &a)
                 : SB_ERR_NOMEM;
    free(fname);
    return rc;
}

/* Whether the part names a file (plain or RFC 2231 parameters). */
static int names_file(const struct leaf_info *li)
{
    for (size_t i = 0; i < li->ndparams; i++)
        if (!strncasecmp(li->dparams[i].name, "filename", 8))
            return 1;
    for (size_t i = 0; i < li->nparams; i++)
        if (!strncasecmp(li->params[i].name, "name", 4) &&
            (li->params[i].name[4] == '\0' || li->params[i].name[4] == '*'))
            return 1;
    return 0;
}

static int recover_multipart(struct ctx *c, const struct mailmime *m, int depth);

static int leaf(struct ctx *c, const struct mailmime *m, int depth)
{
    struct leaf_info li;
    leaf_info(m, &li);
    /* A multipart libetpan could not split (no boundary parameter: a
     * mailer folded the header wrongly) */
    if (!strncmp(li.type, "multipart/", 10))
        return recover_multipart(c, m, depth);
    char *data = NULL;
    size_t n = 0;
    int lib = 0;
    if (part_decode(m->mm_data.mm_single, &data, &n, &lib) != SB_OK)
        return SB_ERR_NOMEM;
    const char *charset = plain_param(&li, "charset");
    int rc = SB_OK;
    /* A named part is a file even when inline (Apple Mail sends attached
     * .txt files so); only a message that is nothing but one named text part
     * (depth 1) shows it as its text. */
    int attached =
        li.disposition == MAILMIME_DISPOSITION_TYPE_ATTACHMENT || (names_file(&li) && depth > 1);
    if (!strcmp(li.type, "message/delivery-status") ||
        !strcmp(li.type, "message/global-delivery-status")) {
        if (!c->mc.delivery_status && !(c->mc.delivery_status = scratch_text(c, charset, data, n)))
            rc = SB_ERR_NOMEM;
    } else if (!strcmp(li.type, "message/feedback-report")) {
        if (!c->mc.feedback_report && !(c->mc.feedback_report = scratch_text(c, charset, data, n)))
            rc = SB_ERR_NOMEM;
    } else if (!strcmp(li.type, "text/rfc822-headers") ||
               !strcmp(li.type, "message/rfc822-headers") ||
               !strcmp(li.type, "message/global-headers") || !strcmp(li.type, "message/rfc822") ||
               !strcmp(li.type, "message/global")) {
        if (!c->mc.original && !(c->mc.original = scratch_text(c, charset, data, n)))
            rc = SB_ERR_NOMEM;
        if (rc == SB_OK && attached)
            rc = add_attachment(c, &li, data, n);
    } else if (!attached && !strcmp(li.type, "text/plain")) {
        rc = add_text(c, &c->text, &c->ntext, charset, data, n);
    } else if (!attached && !strcmp(li.type, "text/html")) {
        rc = add_text(c, &c->html, &c->nhtml, charset, data, n);
    } else {
        rc = add_attachment(c, &li, data, n);
    }
    part_free(data, lib);
    return rc;
}

static int walk(struct ctx *c, const struct mailmime *m, int depth);

/* Whether the declared boundary occurs in the body: when it does not,
 * libetpan still cuts parts at something that looks like one and drops
 * the rest into the preamble. */
static int boundary_present(const struct mailmime *m)
{
    const struct mailmime_data *body = m->mm_body;
    if (!m->mm_content_type || !body || body->dt_type != MAILMIME_DATA_TEXT)
        return 1;
    const char *bd = mailmime_content_param_get(m->mm_content_type, "boundary");
    if (!bd || !*bd)
        return 1;
    char pat[256];
    int pl = snprintf(pat, sizeof pat, "--%s", bd);
    if (pl <= 2 || (size_t)pl >= sizeof pat)
        return 1;
    return memmem(body->dt_data.dt_text.dt_data, body->dt_data.dt_text.dt_length, pat,
                  (size_t)pl) != NULL;
}

/* A multipart whose declared boundary never appears (a mailer that
 * rewrote one and not the other): libetpan finds no part. The first
 * "--token" line that comes back later is taken as the real boundary and
 * the body parsed again with it; failing that, the whole body is the text,
 * so nothing is lost from view. */
static int recover_multipart(struct ctx *c, const struct mailmime *m, int depth)
{
    const struct mailmime_data *body = m->mm_body;
    if (!body || body->dt_type != MAILMIME_DATA_TEXT || !body->dt_data.dt_text.dt_length)
        return SB_OK;
    const char *s = body->dt_data.dt_text.dt_data;
    size_t n = body->dt_data.dt_text.dt_length;
    const char *tok = NULL;
    size_t toklen = 0;
    for (const char *p = s; p < s + n && !tok;) {
        const char *e = memchr(p, '\n', (size_t)(s + n - p));
        if (!e)
            e = s + n;
        size_t l = (size_t)(e - p);
        while (l && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l > 2 && l < 200 && p[0] == '-' && p[1] == '-' && !memchr(p + 2, ' ', l - 2)) {
            /* it must come back: a lone "--" line of text is not a boundary */
            const char *again = memmem(e, (size_t)(s + n - e), p, l);
            if (again) {
                tok = p + 2;
                toklen = l - 2;
            }
        }
        p = e + 1;
    }
    if (tok && m->mm_content_type && m->mm_content_type->ct_subtype) {
        struct buf b = {0};
        const char *sub = m->mm_content_type->ct_subtype;
        int rc = SB_OK;
        if (buf_add(&b, "Content-Type: multipart/", 24) != SB_OK ||
            buf_add(&b, sub, strlen(sub)) != SB_OK || buf_add(&b, "; boundary=\"", 12) != SB_OK ||
            buf_add(&b, tok, toklen) != SB_OK || buf_add(&b, "\"\r\n\r\n", 5) != SB_OK ||
            buf_add(&b, s, n) != SB_OK) {
            free(b.p);
            return SB_ERR_NOMEM;
        }
        size_t idx = 0;
        struct mailmime *re = NULL;
        int r = mailmime_parse(b.p, b.len, &idx, &re);
        int parts = 0;
        const struct mailmime *mp = re;
        if (r == MAILIMF_NO_ERROR && mp && mp->mm_type == MAILMIME_MESSAGE)
            mp = mp->mm_data.mm_message.mm_msg_mime;
        if (r == MAILIMF_NO_ERROR && mp && mp->mm_type == MAILMIME_MULTIPLE)
            parts = clist_count(mp->mm_data.mm_multipart.mm_mp_list);
        if (parts > 0) {
            json_object_set_new(c->in->meta, "boundary_repaired", json_true());
            rc = walk(c, mp, depth + 1);
        }
        if (re)
            mailmime_free(re);
        free(b.p);
        if (parts > 0 || rc != SB_OK)
            return rc;
    }
    return add_text(c, &c->text, &c->ntext, NULL, s, n);
}

static int walk(struct ctx *c, const struct mailmime *m, int depth)
{
    if (!m)
        return SB_OK;
    if (depth > MIME_DEPTH_MAX) {
        json_object_set_new(c->in->meta, "mime_too_deep", json_true());
        return SB_OK;
    }
    switch (m->mm_type) {
    case MAILMIME_MULTIPLE: {
        int n = 0;
        for (clistiter *it = clist_begin(m->mm_data.mm_multipart.mm_mp_list); it;
             it = clist_next(it), n++)
            if (walk(c, clist_content(it), depth + 1) != SB_OK)
                return SB_ERR_NOMEM;
        if (n == 0 || !boundary_present(m))
            return recover_multipart(c, m, depth);
        return SB_OK;
    }
    case MAILMIME_MESSAGE:
        if (depth == 0)
            return walk(c, m->mm_data.mm_message.mm_msg_mime, depth + 1);
        {
            /* An attached message: a file for the agent, and for a bounce the
             * returned original. */
            struct leaf_info li;
            leaf_info(m, &li);
            char *data = NULL;
            size_t n = 0;
            int lib = 0;
            if (part_decode(m->mm_body, &data, &n, &lib) != SB_OK)
                return SB_ERR_NOMEM;
            int rc = SB_OK;
            if (!c->mc.original && !(c->mc.original = scratch_text(c, NULL, data, n)))
                rc = SB_ERR_NOMEM;
            if (rc == SB_OK)
                rc = add_attachment(c, &li, data, n);
            part_free(data, lib);
            return rc;
        }
    case MAILMIME_SINGLE:
        return leaf(c, m, depth);
    default:
        return SB_OK;
    }
}

/* libetpan parses nested parts recursively and looks for each boundary
 * through the rest of the message: tens of thousands of nested parts take
 * minutes or overflow the stack. Real mail has a handful; a digest perhaps a
 * few hundred. Above the limit the message is kept raw and flagged. */
#define MIME_CONTAINERS_MAX 512

/* Counts "Content-Type: multipart/..." and "message/..." header lines (the
 * value may be folded onto the next line). */
static size_t count_containers(const char *s, size_t n)
{
    size_t count = 0;
    const char *end = s + n;
    for (const char *p = s; p < end;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        if ((size_t)(e - p) >= 13 && !strncasecmp(p, "content-type:", 13)) {
            const char *v = p + 13;
            while (v < e && (*v == ' ' || *v == '\t' || *v == '\r'))
                v++;
            if (v == e && e + 1 < end) { /* folded: the value is on the next line */
                v = e + 1;
                while (v < end && (*v == ' ' || *v == '\t'))
                    v++;
            }
            if ((end - v >= 9 && !strncasecmp(v, "multipart", 9)) ||
                (end - v >= 8 && !strncasecmp(v, "message/", 8)))
                count++;
        }
        p = e + 1;
    }
    return count;
}

/* The first charset the message's own parts declare (not those of an
 * attached message): the best guess for raw 8-bit text in its headers. */
static const char *first_charset(const struct mailmime *m, int depth)
{
    if (!m || depth > 8)
        return NULL;
    if (m->mm_type == MAILMIME_MESSAGE)
        return depth == 0 ? first_charset(m->mm_data.mm_message.mm_msg_mime, depth + 1) : NULL;
    if (m->mm_content_type) {
        const char *cs = mailmime_content_param_get(m->mm_content_type, "charset");
        if (cs && *cs)
            return cs;
    }
    if (m->mm_type == MAILMIME_MULTIPLE)
        for (clistiter *it = clist_begin(m->mm_data.mm_multipart.mm_mp_list); it;
             it = clist_next(it)) {
            const char *cs = first_charset(clist_content(it), depth + 1);
            if (cs)
                return cs;
        }
    return NULL;
}

static int set_parse_error(struct ctx *c, const char *why)
{
    c->in->flags |= SB_IN_PARSE_ERROR;
    c->in->parse_error = sb_inbound_strdup(c->in, why);
    return c->in->parse_error ? SB_OK : SB_ERR_NOMEM;
}

/* References: the thread's root and its latest ids are what threading
 * needs; a runaway header (thousands of ids) keeps the first and the last
 * REFS_MAX - 1, as mail clients trim it. */
#define REFS_MAX 100

static int add_references(struct ctx *c, const char *v)
{
    const char *p = v, *id;
    const char **all = NULL;
    size_t n = 0, cap = 0;
    while ((id = msgid_at(c, &p)) != NULL) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            const char **t = realloc(all, ncap * sizeof *t);
            if (!t) {
                free(all);
                return SB_ERR_NOMEM;
            }
            all = t;
            cap = ncap;
        }
        all[n++] = id;
    }
    int rc = SB_OK;
    for (size_t i = 0; i < n && rc == SB_OK; i++)
        if (n <= REFS_MAX || i == 0 || i >= n - (REFS_MAX - 1))
            rc = sb_inbound_add_reference(c->in, all[i]);
    free(all);
    return rc;
}

static const char *const kept_headers[] = {
    "List-Id",      "List-Unsubscribe", "X-Mailer",      "User-Agent",          "Auto-Submitted",
    "Precedence",   "Return-Path",      "Sender",        "Organization",        "X-Original-To",
    "Delivered-To", "X-Autoreply",      "X-Autorespond", "X-Failed-Recipients",
};

static int header_fields(struct ctx *c)
{
    struct sb_inbound *in = c->in;
    json_t *to = json_array(), *cc = json_array(), *rt = json_array(), *hk = json_object();
    if (!to || !cc || !rt || !hk)
        goto nomem;
    json_object_set_new(in->meta, "to", to);
    json_object_set_new(in->meta, "cc", cc);
    json_object_set_new(in->meta, "reply_to", rt);
    json_object_set_new(in->meta, "headers", hk);
    int have_from = 0, have_date = 0, have_subject = 0;
    for (size_t i = 0; i < c->nhdrs; i++) {
        const char *n = c->hdrs[i].name, *v = c->hdrs[i].value;
        if (!strcasecmp(n, "From") && !have_from) {
            have_from = 1;
            if (add_addresses(c, v, NULL, 1) != SB_OK)
                goto nomem;
        } else if (!strcasecmp(n, "To")) {
            if (add_addresses(c, v, to, 0) != SB_OK)
                goto nomem;
        } else if (!strcasecmp(n, "Cc")) {
            if (add_addresses(c, v, cc, 0) != SB_OK)
                goto nomem;
        } else if (!strcasecmp(n, "Reply-To")) {
            if (add_addresses(c, v, rt, 0) != SB_OK)
                goto nomem;
        } else if (!strcasecmp(n, "Subject") && !have_subject) {
            have_subject = 1;
            if (!(in->subject = decode_into(c, v)))
                goto nomem;
        } else if (!strcasecmp(n, "Date") && !have_date) {
            have_date = 1;
            in->occurred_at_us = parse_date(v);
        } else if (!strcasecmp(n, "Message-ID") && !in->message_id) {
            const char *p = v;
            in->message_id = msgid_at(c, &p);
        } else if (!strcasecmp(n, "In-Reply-To") && !in->in_reply_to) {
            const char *p = v;
            in->in_reply_to = msgid_at(c, &p);
        } else if (!strcasecmp(n, "References") && !in->nreferences) {
            if (add_references(c, v) != SB_OK)
                goto nomem;
        } else {
            for (size_t k = 0; k < sizeof kept_headers / sizeof *kept_headers; k++)
                if (!strcasecmp(n, kept_headers[k]) && !json_object_get(hk, kept_headers[k])) {
                    const char *d = decode_into(c, v);
                    if (!d)
                        goto nomem;
                    json_object_set_new(hk, kept_headers[k], json_string(d));
                }
        }
    }
    return SB_OK;
nomem:
    return SB_ERR_NOMEM;
}

static int finish_text(struct ctx *c, const char *body, size_t body_len)
{
    struct sb_inbound *in = c->in;
    /* Nothing readable and no file either: the body itself is the text. */
    if (!c->ntext && !c->nhtml && !in->nattachments && body_len &&
        add_text(c, &c->text, &c->ntext, NULL, body, body_len) != SB_OK)
        return SB_ERR_NOMEM;
    if (c->ntext && !(in->text = sb_inbound_strndup(in, c->text.p ? c->text.p : "", c->text.len)))
        return SB_ERR_NOMEM;
    /* HTML only: agents, previews and search still need the words. */
    if (!c->ntext && c->nhtml) {
        char *t = NULL;
        size_t tl = 0;
        if (sb_html_to_text(c->html.p ? c->html.p : "", c->html.len, &t, &tl) != SB_OK)
            return SB_ERR_NOMEM;
        in->text = sb_inbound_strndup(in, t, tl);
        free(t);
        if (!in->text || json_object_set_new(in->meta, "text_from_html", json_true()))
            return SB_ERR_NOMEM;
    }
    if (c->nhtml && !(in->html = sb_inbound_strndup(in, c->html.p ? c->html.p : "", c->html.len)))
        return SB_ERR_NOMEM;
    return SB_OK;
}

static int external_id(struct sb_inbound *in, const unsigned char *raw, size_t len)
{
    if (in->message_id && *in->message_id) {
        in->external_id = in->message_id;
        return SB_OK;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, raw, len);
    char id[7 + 2 * sizeof h + 1];
    memcpy(id, "sha256:", 7);
    sodium_bin2hex(id + 7, sizeof id - 7, h, sizeof h);
    in->external_id = sb_inbound_strdup(in, id);
    return in->external_id ? SB_OK : SB_ERR_NOMEM;
}

static int classify(struct ctx *c)
{
    struct sb_inbound *in = c->in;
    c->mc.headers = c->hdrs;
    c->mc.nheaders = c->nhdrs;
    c->mc.subject = in->subject;
    c->mc.text = in->text ? in->text : in->html;
    enum sb_mailclass cls = SB_MAIL_ORDINARY;
    if (sb_mailclass_classify(&c->mc, in->meta, &cls) != SB_OK)
        return SB_ERR_NOMEM;
    if (cls == SB_MAIL_AUTO_REPLY)
        in->flags |= SB_IN_AUTO_REPLY;
    else if (cls == SB_MAIL_BOUNCE || cls == SB_MAIL_COMPLAINT)
        in->flags |= SB_IN_BOUNCE;
    return SB_OK;
}

int sb_mime_parse(const unsigned char *raw, size_t len, struct sb_inbound **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct sb_inbound *in = sb_inbound_new();
    if (!in)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct ctx c = {.in = in};
    struct mailmime *mime = NULL;
    char ct[128];
    in->kind = SB_IK_EMAIL;
    in->direction = SB_DIR_IN;
    in->meta = json_object();
    in->raw = sb_inbound_memdup(in, raw ? raw : (const unsigned char *)"", len);
    in->raw_len = len;
    if (!in->meta || !in->raw)
        goto nomem;
    const char *s = (const char *)in->raw;

    /* An mbox "From " separator line is not a header. */
    size_t off = 0;
    if (len >= 5 && !memcmp(s, "From ", 5)) {
        const char *nl = memchr(s, '\n', len);
        off = nl ? (size_t)(nl - s) + 1 : len;
    }
    size_t body = off;
    if (scan_headers(&c, s, len, off, &body) != SB_OK)
        goto nomem;
    if (c.nhdrs == 0) {
        if (set_parse_error(&c, len ? "not an e-mail message: no header fields"
                                    : "empty message") != SB_OK ||
            finish_text(&c, s + off, len - off) != SB_OK)
            goto nomem;
    } else {
        size_t idx = 0;
        size_t containers = count_containers(s + off, len - off);
        int r =
            containers > MIME_CONTAINERS_MAX ? -1 : mailmime_parse(s + off, len - off, &idx, &mime);
        if (r == MAILIMF_ERROR_MEMORY)
            goto nomem;
        if (r == -1) {
            char why[128];
            snprintf(why, sizeof why,
                     "MIME structure too complex: %zu multipart/message parts (limit %d)",
                     containers, MIME_CONTAINERS_MAX);
            if (set_parse_error(&c, why) != SB_OK)
                goto nomem;
        } else if (r != MAILIMF_NO_ERROR || !mime) {
            char why[96];
            snprintf(why, sizeof why, "MIME structure could not be parsed (libetpan error %d)", r);
            if (set_parse_error(&c, why) != SB_OK)
                goto nomem;
        } else {
            c.default_cs = first_charset(mime, 0);
        }
        if (header_fields(&c) != SB_OK)
            goto nomem;
        if (mime) {
            const struct mailmime *top = mime;
            if (top->mm_type == MAILMIME_MESSAGE && top->mm_data.mm_message.mm_msg_mime)
                top = top->mm_data.mm_message.mm_msg_mime;
            content_type_str(top->mm_content_type, ct, sizeof ct);
            c.mc.content_type = ct;
            if (top->mm_content_type) {
                char *rt = mailmime_content_param_get(top->mm_content_type, "report-type");
                char *lrt = rt ? (char *)scratch_strndup(&c, rt, strlen(rt)) : NULL;
                for (char *p = lrt; p && *p; p++)
                    *p = (char)tolower((unsigned char)*p);
                c.mc.report_type = lrt;
            }
            if (walk(&c, mime, 0) != SB_OK)
                goto nomem;
        }
        if (finish_text(&c, s + body, len - body) != SB_OK)
            goto nomem;
    }
    if (external_id(in, in->raw, len) != SB_OK || classify(&c) != SB_OK)
        goto nomem;
    if (c.fallback)
        json_object_set_new(in->meta, "charset_fallback", json_true());

    if (mime)
        mailmime_free(mime);
    free(c.hdrs);
    free(c.text.p);
    free(c.html.p);
    sb_arena_free(&c.scratch);
    *out = in;
    return SB_OK;
nomem:
    if (mime)
        mailmime_free(mime);
    free(c.hdrs);
    free(c.text.p);
    free(c.html.p);
    sb_arena_free(&c.scratch);
    sb_inbound_free(&in);
    return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory parsing a message");
}
