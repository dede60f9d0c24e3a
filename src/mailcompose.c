/* Composition of outgoing mail; see mailcompose.h. */
#include "switchboard/mailcompose.h"

#include "switchboard/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

/* A growing output buffer; `failed` sticks after the first allocation
 * failure so the writers need no error checks and the end says NOMEM once. */
struct obuf {
    char *p;
    size_t len, cap;
    int failed;
    size_t col; /* characters since the last CRLF, for header folding */
};

static void ob_put(struct obuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    for (size_t i = 0; i < n; i++)
        b->col = s[i] == '\n' ? 0 : b->col + 1;
}

static void ob_str(struct obuf *b, const char *s)
{
    ob_put(b, s, strlen(s));
}

static void ob_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(struct obuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = 1;
        return;
    }
    ob_put(b, tmp, (size_t)n);
}

static void random_bytes(unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < n) {
        /* getrandom never fails on a running Linux; should it, uniqueness
         * still comes from the time and pid mixed in. */
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)p;
        for (size_t i = got; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            p[i] = (unsigned char)(x >> 56);
        }
    }
}

static int has_ctl(const char *s)
{
    for (; s && *s; s++)
        if (*s == '\r' || *s == '\n')
            return 1;
    return 0;
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* ---- RFC 2047 -------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_chunk(struct obuf *b, const unsigned char *s, size_t n)
{
    char out[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[0] = b64chars[(v >> 18) & 63];
        out[1] = b64chars[(v >> 12) & 63];
        out[2] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[3] = i + 2 < n ? b64chars[v & 63] : '=';
        ob_put(b, out, 4);
    }
}

/* Length of the UTF-8 sequence starting at s[0] (1 for a stray byte), so an
 * encoded word never splits a character (RFC 2047 section 5). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t l = s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
    return l > n ? n : l;
}

/* Text as B-encoded words of at most 75 characters each, separated by
 * folding whitespace. 45 input bytes give 60 base64 characters plus the 12
 * of "=?UTF-8?B??=". */
static void encode_words(struct obuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0;
    int first = 1;
    while (i < n) {
        if (!first)
            ob_str(b, "\r\n ");
        size_t room = b->col + 12 < 78 ? (78 - b->col - 12) / 4 * 3 : 0;
        if (room < 6) {
            ob_str(b, "\r\n ");
            room = 45;
        }
        if (room > 45)
            room = 45;
        size_t take = 0;
        while (i + take < n) {
            size_t l = utf8_len(p + i + take, n - i - take);
            if (take && take + l > room)
                break;
            take += l;
        }
        ob_str(b, "=?UTF-8?B?");
        b64_chunk(b, p + i, take);
        ob_str(b, "?=");
        i += take;
        first = 0;
    }
}

/* Unstructured header text: as it is when ASCII (folded at spaces beyond 78
 * columns), else encoded words. "=?" in ASCII text is encoded too, so a
 * literal "=?...?=" is not decoded by the reader. */
static void header_text(struct obuf *b, const char *s)
{
    size_t n = strlen(s);
    if (!is_ascii(s, n) || strstr(s, "=?")) {
        encode_words(b, s);
        return;
    }
    const char *p = s;
    while (*p) {
        const char *sp = strchr(p + 1, ' ');
        size_t wl = sp ? (size_t)(sp - p) : strlen(p);
        if (p != s && *p == ' ' && b->col + wl > 78) {
            ob_str(b, "\r\n");
        }
        ob_put(b, p, wl);
        p += wl;
    }
}

/* ---- addresses ------------------------------------------------------- */

/* Split "Name <addr>" into name and addr spans; a bare address has no name.
 * Quotes around the name are dropped. */
static void addr_split(const char *a, const char **name, size_t *namelen, const char **spec,
                       size_t *speclen)
{
    while (*a == ' ' || *a == '\t')
        a++;
    const char *lt = strrchr(a, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) {
        size_t n = strlen(a);
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
            n--;
        *name = NULL;
        *namelen = 0;
        *spec = a;
        *speclen = n;
        return;
    }
    const char *ne = lt;
    while (ne > a && (ne[-1] == ' ' || ne[-1] == '\t'))
        ne--;
    const char *ns = a;
    if (ne - ns >= 2 && *ns == '"' && ne[-1] == '"') {
        ns++;
        ne--;
    }
    *name = ne > ns ? ns : NULL;
    *namelen = ne > ns ? (size_t)(ne - ns) : 0;
    *spec = lt + 1;
    *speclen = (size_t)(gt - lt - 1);
}

void sb_mail_addr_spec(const char *addr, char *buf, size_t buflen)
{
    const char *name, *spec;
    size_t nl, sl;
    if (!buflen)
        return;
    buf[0] = '\0';
    if (!addr)
        return;
    addr_split(addr, &name, &nl, &spec, &sl);
    if (sl + 1 > buflen)
        return;
    memcpy(buf, spec, sl);
    buf[sl] = '\0';
}

void sb_mail_addr_domain(const char *addr, char *buf, size_t buflen)
{
    char spec[512];
    if (!buflen)
        return;
    buf[0] = '\0';
    sb_mail_addr_spec(addr, spec, sizeof spec);
    const char *at = strrchr(spec, '@');
    if (!at || !at[1] || strlen(at + 1) + 1 > buflen)
        return;
    strcpy(buf, at + 1);
}

/* A valid addr-spec for our purpose: printable ASCII without spaces, angle
 * brackets, commas or quotes, with one @ and something on both sides. */
static int spec_ok(const char *s, size_t n)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == ',' || c == '"' || c == '(' ||
            c == ')' || c == ';' || c == '\\')
            return 0;
        if (c == '@')
            at = s + i;
    }
    return at && at > s && at < s + n - 1;
}

static int address(struct obuf *b, const char *a, char *err, size_t errlen)
{
    const char *name, *spec;
    size_t nl, sl;
    if (!a || has_ctl(a))
        return sb_fail(err, errlen, SB_ERR_INVALID, "address holds a line break");
    addr_split(a, &name, &nl, &spec, &sl);
    if (!spec_ok(spec, sl))
        return sb_fail(err, errlen, SB_ERR_INVALID, "not an e-mail address: \"%.100s\"", a);
    if (name) {
        char *n = strndup(name, nl);
        if (!n) {
            b->failed = 1;
            return SB_ERR_NOMEM;
        }
        if (!is_ascii(n, nl) || strstr(n, "=?")) {
            encode_words(b, n);
        } else {
            /* A quoted string always: names with "." or "," (Smith, J.) are
             * common and need it; quotes and backslashes are escaped. */
            ob_str(b, "\"");
            for (const char *p = n; *p; p++) {
                if (*p == '"' || *p == '\\')
                    ob_str(b, "\\");
                ob_put(b, p, 1);
            }
            ob_str(b, "\"");
        }
        free(n);
        ob_str(b, " ");
    }
    if (name && b->col + sl + 2 > 78)
        ob_str(b, "\r\n ");
    ob_str(b, "<");
    ob_put(b, spec, sl);
    ob_str(b, ">");
    return SB_OK;
}

/* ---- message ids ----------------------------------------------------- */

static int msgid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 900)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '<' || c == '>')
            return 0;
    }
    return 1;
}

void sb_mail_message_id(const char *domain, char *buf, size_t buflen)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char r[16];
    char left[32];
    if (!buflen)
        return;
    buf[0] = '\0';
    if (!domain || !*domain || !msgid_ok(domain) || strchr(domain, '@'))
        domain = "switchboard.local";
    random_bytes(r, sizeof r);
    /* 128 bits as 26 base32 digits (5 bits each, the last one short). */
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof r; i++) {
        acc = (acc << 8) | r[i];
        bits += 8;
        while (bits >= 5) {
            left[k++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        left[k++] = b32[(acc << (5 - bits)) & 31];
    left[k] = '\0';
    int n = snprintf(buf, buflen, "%s@%s", left, domain);
    if (n < 0 || (size_t)n >= buflen)
        buf[0] = '\0';
}

/* ---- reply subject --------------------------------------------------- */

char *sb_mail_reply_subject(const char *subject)
{
    static const char *const prefixes[] = {
        "re:", "re[", "aw:", "sv:", "antw:", "ответ:", "Ответ:", "ОТВЕТ:"};
    const char *s = subject ? subject : "";
    while (*s == ' ' || *s == '\t')
        s++;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t l = strlen(prefixes[i]);
        if (strncasecmp(s, prefixes[i], l) == 0)
            return strdup(s);
    }
    size_t n = strlen(s);
    char *r = malloc(n + 5);
    if (!r)
        return NULL;
    memcpy(r, n ? "Re: " : "Re:", n ? 4 : 3);
    memcpy(r + (n ? 4 : 3), s, n + 1);
    return r;
}

/* ---- bodies ---------------------------------------------------------- */

enum cte { CTE_7BIT, CTE_QP, CTE_B64 };

/* The body with every line end as CRLF (bare LF and bare CR too). */
static char *crlf_normalise(const char *s, size_t *outlen)
{
    size_t n = strlen(s), extra = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || s[i] == '\r')
            extra++;
    char *o = malloc(n + extra + 3);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            if (i + 1 < n && s[i + 1] == '\n')
                i++;
            o[k++] = '\r';
            o[k++] = '\n';
        } else if (s[i] == '\n') {
            o[k++] = '\r';
            o[k++] = '\n';
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    *outlen = k;
    return o;
}

static enum cte choose_cte(const char *s, size_t n)
{
    size_t high = 0, line = 0, maxline = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            high++;
        if (c == '\n') {
            line = 0;
        } else if (c != '\r' && ++line > maxline) {
            maxline = line;
        }
    }
    if (high == 0 && maxline <= 76)
        return CTE_7BIT;
    /* Mostly non-Latin text (Cyrillic: every letter two bytes ≥ 0x80) is
     * shorter in base64 than with three characters per byte in QP. */
    if (high * 3 > n)
        return CTE_B64;
    return CTE_QP;
}

static void qp_body(struct obuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' && i + 1 < n && s[i + 1] == '\n') {
            ob_str(b, "\r\n");
            i++;
            col = 0;
            continue;
        }
        int at_eol = i + 1 == n || (s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n');
        char enc[3];
        size_t el;
        /* Encode '=', controls, 8-bit bytes, whitespace before a line end
         * (MTAs strip it), and a leading '.' (some relays mangle it). */
        if (c == '=' || c >= 0x7f || (c < ' ' && c != '\t') ||
            ((c == ' ' || c == '\t') && at_eol) || (c == '.' && col == 0)) {
            enc[0] = '=';
            enc[1] = hex[c >> 4];
            enc[2] = hex[c & 15];
            el = 3;
        } else {
            enc[0] = (char)c;
            el = 1;
        }
        /* A soft break keeps each line at most 76 characters with its '='. */
        if (col + el > (at_eol ? 76 : 75)) {
            ob_str(b, "=\r\n");
            col = 0;
        }
        ob_put(b, enc, el);
        col += el;
    }
    /* A soft break, not a CRLF: the text decodes without a line end it
     * never had. */
    if (col)
        ob_str(b, "=\r\n");
}

static void b64_body(struct obuf *b, const char *s, size_t n)
{
    /* 57 bytes → 76 characters a line. */
    for (size_t i = 0; i < n; i += 57) {
        b64_chunk(b, (const unsigned char *)s + i, n - i < 57 ? n - i : 57);
        ob_str(b, "\r\n");
    }
}

static int part(struct obuf *b, const char *subtype, const char *content)
{
    size_t n;
    char *s = crlf_normalise(content, &n);
    if (!s) {
        b->failed = 1;
        return SB_ERR_NOMEM;
    }
    enum cte cte = choose_cte(s, n);
    ob_printf(b, "Content-Type: text/%s; charset=%s\r\n", subtype,
              cte == CTE_7BIT ? "us-ascii" : "utf-8");
    ob_printf(b, "Content-Transfer-Encoding: %s\r\n\r\n",
              cte == CTE_7BIT ? "7bit"
              : cte == CTE_QP ? "quoted-printable"
                              : "base64");
    if (cte == CTE_7BIT) {
        ob_put(b, s, n);
        if (n < 2 || s[n - 2] != '\r' || s[n - 1] != '\n')
            ob_str(b, "\r\n");
    } else if (cte == CTE_QP) {
        qp_body(b, s, n);
    } else {
        b64_body(b, s, n);
    }
    free(s);
    return SB_OK;
}

/* ---- attachments ------------------------------------------------------ */

/* "type/subtype" made of RFC 2045 token characters, else octet-stream. */
static const char *file_type(const char *t)
{
    static const char tspecials[] = "()<>@,;:\\\"/[]?= ";
    const char *slash = t ? strchr(t, '/') : NULL;
    if (!slash || slash == t || !slash[1] || strlen(t) > 200)
        return "application/octet-stream";
    for (const char *c = t; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f ||
            (c != slash && strchr(tspecials, *c)))
            return "application/octet-stream";
    return t;
}

/* A name parameter: the ASCII fallback `name="…"` (RFC 2045, for old
 * readers) and the RFC 2231 form, `name*0*=UTF-8''…; name*1*=…`, split so
 * that no header line passes 78 characters. */
static void name_params(struct obuf *b, const char *attr, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    ob_printf(b, ";\r\n %s=\"", attr);
    size_t shown = 0; /* the fallback is cut at 50 characters: it is only a hint */
    for (const unsigned char *c = (const unsigned char *)name; *c && shown < 50; c++) {
        char ch = *c < 0x20 || *c >= 0x7f || *c == '"' || *c == '\\' ? '_' : (char)*c;
        if ((*c & 0xc0) != 0x80) { /* one '_' per non-ASCII character */
            ob_put(b, &ch, 1);
            shown++;
        }
    }
    ob_str(b, "\"");
    const unsigned char *c = (const unsigned char *)name;
    for (int k = 0; *c; k++) {
        ob_printf(b, ";\r\n %s*%d*=%s", attr, k, k ? "" : "UTF-8''");
        /* Never split a %XX triple; each line stays under 78 characters. */
        for (size_t w = 0; *c && w < (k ? 55u : 40u); c++) {
            int plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                        (*c >= '0' && *c <= '9') || strchr("!#$&+-.^_`|~", *c);
            if (plain) {
                ob_put(b, (const char *)c, 1);
                w++;
            } else {
                char pct[3] = {'%', hex[*c >> 4], hex[*c & 15]};
                ob_put(b, pct, 3);
                w += 3;
            }
        }
    }
}

static void file_part(struct obuf *b, const struct sb_mail_file *f)
{
    const char *name = f->filename && *f->filename ? f->filename : "file";
    ob_printf(b, "Content-Type: %s", file_type(f->content_type));
    name_params(b, "name", name);
    ob_str(b, "\r\nContent-Disposition: attachment");
    name_params(b, "filename", name);
    ob_str(b, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    b64_body(b, (const char *)f->data, f->len);
}

/* ---- headers --------------------------------------------------------- */

static const char *const own_headers[] = {
    "date",        "from",       "to",           "subject",      "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "bcc"};

static int extra_header(struct obuf *b, const char *h, char *err, size_t errlen)
{
    if (!h)
        return sb_fail(err, errlen, SB_ERR_INVALID, "empty extra header");
    for (const char *p = h; *p; p++)
        if (*p == '\r' || *p == '\n')
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "extra header holds a line break (header injection)");
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return sb_fail(err, errlen, SB_ERR_INVALID, "extra header is not \"Name: value\"");
    for (const char *p = h; p < colon; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c >= 0x7f)
            return sb_fail(err, errlen, SB_ERR_INVALID, "bad extra header name");
    }
    size_t nl = (size_t)(colon - h);
    for (size_t i = 0; i < sizeof own_headers / sizeof *own_headers; i++)
        if (strlen(own_headers[i]) == nl && strncasecmp(h, own_headers[i], nl) == 0)
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "extra header %.*s is written by the composer", (int)nl, h);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    ob_put(b, h, nl);
    ob_str(b, ": ");
    header_text(b, v);
    ob_str(b, "\r\n");
    return SB_OK;
}

static void date_header(struct obuf *b, time_t t)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!t)
        t = time(NULL);
    gmtime_r(&t, &tm);
    /* English names by hand: strftime follows the locale. */
    ob_printf(b, "Date: %s, %d %s %d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
              months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void boundary(char *buf, size_t n)
{
    unsigned char r[12];
    random_bytes(r, sizeof r);
    /* "=_" cannot occur in quoted-printable or base64 text, so the boundary
     * never collides with a part's content. */
    size_t k = (size_t)snprintf(buf, n, "=_sb_");
    for (size_t i = 0; i < sizeof r && k + 2 < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%02x", r[i]);
}

int sb_mail_compose(const struct sb_mail_out *m, char **out, size_t *outlen, char *err,
                    size_t errlen)
{
    struct obuf b = {0};
    char idbuf[600];
    int rc;

    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!m || !m->from || !*m->from)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no From address");
    if (!m->to || m->nto == 0)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no recipient");
    if (!m->text && !m->html)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no body (text or html)");
    if (m->subject && has_ctl(m->subject))
        return sb_fail(err, errlen, SB_ERR_INVALID, "subject holds a line break");
    if (m->message_id && !msgid_ok(m->message_id))
        return sb_fail(err, errlen, SB_ERR_INVALID, "bad Message-ID");
    if (m->in_reply_to && !msgid_ok(m->in_reply_to))
        return sb_fail(err, errlen, SB_ERR_INVALID, "bad In-Reply-To id");
    for (size_t i = 0; i < m->nreferences; i++)
        if (!msgid_ok(m->references[i]))
            return sb_fail(err, errlen, SB_ERR_INVALID, "bad References id");

    const char *mid = m->message_id;
    if (!mid) {
        char dom[256];
        sb_mail_addr_domain(m->from, dom, sizeof dom);
        sb_mail_message_id(dom, idbuf, sizeof idbuf);
        mid = idbuf;
    }

    date_header(&b, m->date);
    ob_str(&b, "From: ");
    if ((rc = address(&b, m->from, err, errlen)) != SB_OK)
        goto fail;
    ob_str(&b, "\r\nTo: ");
    for (size_t i = 0; i < m->nto; i++) {
        if (i)
            ob_str(&b, ",\r\n ");
        if ((rc = address(&b, m->to[i], err, errlen)) != SB_OK)
            goto fail;
    }
    ob_str(&b, "\r\n");
    if (m->subject) {
        ob_str(&b, "Subject: ");
        header_text(&b, m->subject);
        ob_str(&b, "\r\n");
    }
    ob_printf(&b, "Message-ID: <%s>\r\n", mid);
    if (m->in_reply_to) {
        ob_str(&b, "In-Reply-To: <");
        ob_str(&b, m->in_reply_to);
        ob_str(&b, ">\r\n");
    }
    if (m->nreferences) {
        ob_str(&b, "References:");
        for (size_t i = 0; i < m->nreferences; i++) {
            if (i && b.col + strlen(m->references[i]) + 3 > 78)
                ob_str(&b, "\r\n");
            ob_str(&b, " <");
            ob_str(&b, m->references[i]);
            ob_str(&b, ">");
        }
        ob_str(&b, "\r\n");
    }
    for (size_t i = 0; i < m->nextra; i++)
        if ((rc = extra_header(&b, m->extra_headers[i], err, errlen)) != SB_OK)
            goto fail;
    ob_str(&b, "MIME-Version: 1.0\r\n");
    char mixed[64] = "";
    if (m->nfiles) {
        boundary(mixed, sizeof mixed);
        ob_printf(&b, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n", mixed);
        ob_str(&b, "This is a multi-part message in MIME format.\r\n");
        ob_printf(&b, "\r\n--%s\r\n", mixed);
    }
    if (m->text && m->html) {
        char bd[64];
        boundary(bd, sizeof bd);
        ob_printf(&b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", bd);
        ob_str(&b, "This is a multi-part message in MIME format.\r\n");
        ob_printf(&b, "\r\n--%s\r\n", bd);
        part(&b, "plain", m->text);
        ob_printf(&b, "\r\n--%s\r\n", bd);
        part(&b, "html", m->html);
        ob_printf(&b, "\r\n--%s--\r\n", bd);
    } else {
        part(&b, m->text ? "plain" : "html", m->text ? m->text : m->html);
    }
    for (size_t i = 0; i < m->nfiles; i++) {
        ob_printf(&b, "\r\n--%s\r\n", mixed);
        file_part(&b, &m->files[i]);
    }
    if (m->nfiles)
        ob_printf(&b, "\r\n--%s--\r\n", mixed);
    if (b.failed) {
        rc = SB_ERR_NOMEM;
        goto fail;
    }
    *out = b.p;
    if (outlen)
        *outlen = b.len;
    return SB_OK;
fail:
    free(b.p);
    if (rc == SB_ERR_NOMEM)
        sb_fail(err, errlen, rc, "out of memory composing mail");
    return rc;
}

/* ---- HTML of plain text, and quoting ------------------------------- */

static void html_escaped(struct obuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&':
            ob_str(b, "&amp;");
            break;
        case '<':
            ob_str(b, "&lt;");
            break;
        case '>':
            ob_str(b, "&gt;");
            break;
        case '"':
            ob_str(b, "&quot;");
            break;
        default:
            ob_put(b, s + i, 1);
        }
    }
}

#define BQ_OPEN                                                                                    \
    "<blockquote type=\"cite\" style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;"              \
    "padding-left:1ex\">"
#define QUOTE_DEPTH_MAX 16

/* Plain text as HTML lines: escaped, each line ended by <br>, lines quoted
 * with ">" (or "> >", ">>") inside as many nested blockquotes, all of it
 * `base` blockquotes deep. Leaves *depth open. */
static void html_lines(struct obuf *b, const char *p, int base, int *depth)
{
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && p[n - 1] == '\r')
            n--;
        const char *s = p, *end = p + n;
        int q = base;
        while (s < end && *s == '>' && q < QUOTE_DEPTH_MAX) {
            q++;
            s++;
            if (s < end && *s == ' ')
                s++;
        }
        for (; *depth < q; (*depth)++)
            ob_str(b, BQ_OPEN);
        for (; *depth > q; (*depth)--)
            ob_str(b, "</blockquote>");
        html_escaped(b, s, (size_t)(end - s));
        if (!e)
            break;
        /* No newline after <br>: pre-wrap would show it as a second break. */
        ob_str(b, "<br>");
        p = e + 1;
    }
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
    "<div style=\"white-space: pre-wrap\">";
static const char html_tail[] = "</div>\n</body></html>\n";

static char *ob_done(struct obuf *b)
{
    if (b->failed) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

char *sb_mail_text_to_html(const char *text)
{
    struct obuf b = {0};
    int depth = 0;
    ob_str(&b, html_head);
    html_lines(&b, text ? text : "", 0, &depth);
    for (; depth > 0; depth--)
        ob_str(&b, "</blockquote>");
    ob_str(&b, html_tail);
    return ob_done(&b);
}

/* The length of the longest prefix of s[0..n) that ends on a whole UTF-8
 * character. */
static size_t utf8_cut(const char *s, size_t n)
{
    size_t k = n;
    while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
        k--;
    if (k > 0) {
        unsigned char lead = (unsigned char)s[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (n - (k - 1) < need)
            return k - 1;
    }
    return n;
}

void sb_mail_quote_attribution(const struct sb_mail_quote *q, char *buf, size_t buflen)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char when[96] = "";
    struct tm tm;
    if (!buflen)
        return;
    if (q->date && gmtime_r(&q->date, &tm))
        snprintf(when, sizeof when, "On %s, %d %s %d %02d:%02d UTC, ", days[tm.tm_wday], tm.tm_mday,
                 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min);
    /* The author is one header's worth of text; a line break in it would
     * break the attribution line. */
    char name[320] = "";
    size_t k = 0;
    for (const char *p = q->author ? q->author : ""; *p && k + 1 < sizeof name; p++)
        name[k++] = (*p == '\r' || *p == '\n' || *p == '\t') ? ' ' : *p;
    name[utf8_cut(name, k)] = '\0';
    if (!*name)
        snprintf(name, sizeof name, "%s", *when ? "the sender" : "The sender");
    snprintf(buf, buflen, "%s%s wrote:", when, name);
}

/* The answered text cut to the limits, trailing blank lines dropped, CRs
 * removed; *cut_r says whether anything was left out. malloc'd. */
static char *quote_body(const char *text, int *cut_r)
{
    size_t n = strlen(text);
    int midline = 0;
    *cut_r = 0;
    if (n > SB_MAIL_QUOTE_MAX_BYTES) {
        n = utf8_cut(text, SB_MAIL_QUOTE_MAX_BYTES);
        midline = text[n] != '\n' && text[n] != '\r';
        *cut_r = 1;
    }
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] == '\n' && ++lines == SB_MAIL_QUOTE_MAX_LINES) {
            n = i;
            midline = 0;
            *cut_r = i + 1 < strlen(text);
            break;
        }
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] != '\r')
            o[k++] = text[i];
    /* A cut mid-line drops the partial line: a half word reads as a typo. */
    if (midline) {
        size_t l = k;
        while (l > 0 && o[l - 1] != '\n')
            l--;
        if (l > 0)
            k = l;
    }
    while (k && (o[k - 1] == '\n' || o[k - 1] == ' ' || o[k - 1] == '\t'))
        k--;
    o[k] = '\0';
    return o;
}

int sb_mail_reply_quote(const char *reply, const struct sb_mail_quote *q, char **text_r,
                        char **html_r, char *err, size_t errlen)
{
    *text_r = *html_r = NULL;
    if (!reply)
        return sb_fail(err, errlen, SB_ERR_INVALID, "no reply text");
    int cut = 0;
    char *body = NULL;
    if (q && q->text) {
        body = quote_body(q->text, &cut);
        if (!body)
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory quoting mail");
    }
    if (!body || !*body) {
        free(body);
        *text_r = strdup(reply);
        *html_r = sb_mail_text_to_html(reply);
        if (*text_r && *html_r)
            return SB_OK;
        free(*text_r);
        free(*html_r);
        *text_r = *html_r = NULL;
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory quoting mail");
    }
    char attr[512];
    sb_mail_quote_attribution(q, attr, sizeof attr);

    /* text/plain: the reply, a blank line, the attribution, "> " lines. */
    struct obuf t = {0};
    size_t rl = strlen(reply);
    while (rl && (reply[rl - 1] == '\n' || reply[rl - 1] == '\r'))
        rl--;
    ob_put(&t, reply, rl);
    ob_str(&t, "\n\n");
    ob_str(&t, attr);
    ob_str(&t, "\n");
    for (const char *p = body; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        /* An empty line quotes as ">" and a quoted one as ">>": no
         * trailing space, which transports mangle. */
        ob_str(&t, n == 0 || *p == '>' ? ">" : "> ");
        ob_put(&t, p, n);
        ob_str(&t, "\n");
        p = e ? e + 1 : p + n;
    }
    if (cut)
        ob_str(&t, "> [\xe2\x80\xa6]\n");

    /* text/html: the same, the quote as a blockquote (nested ones for the
     * answered mail's own quotes). */
    struct obuf h = {0};
    int depth = 0;
    ob_str(&h, html_head);
    char *r = strndup(reply, rl);
    if (!r)
        h.failed = 1;
    else
        html_lines(&h, r, 0, &depth);
    free(r);
    for (; depth > 0; depth--)
        ob_str(&h, "</blockquote>");
    ob_str(&h, "<br><br><div class=\"sb-quote-attribution\">");
    html_escaped(&h, attr, strlen(attr));
    ob_str(&h, "</div>");
    html_lines(&h, body, 1, &depth);
    if (cut)
        ob_str(&h, "<br>[\xe2\x80\xa6]");
    for (; depth > 0; depth--)
        ob_str(&h, "</blockquote>");
    ob_str(&h, html_tail);
    free(body);
    *text_r = ob_done(&t);
    *html_r = ob_done(&h);
    if (*text_r && *html_r)
        return SB_OK;
    free(*text_r);
    free(*html_r);
    *text_r = *html_r = NULL;
    return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory quoting mail");
}
