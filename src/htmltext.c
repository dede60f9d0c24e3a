/* HTML to plain text (see htmltext.h). One pass over the input; the output
 * grows by doubling, so the work is linear in the input. */
#include "switchboard/htmltext.h"
#include "switchboard/textutil.h"
#include "switchboard/err.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct out {
    char *p;
    size_t len, cap;
    int space;    /* white space seen since the last character */
    int newlines; /* line breaks at the end of the output */
    int pre;      /* inside <pre>: white space kept */
    int nomem;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->nomem)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t ncap = o->cap ? o->cap : 256;
        while (ncap < o->len + n + 1)
            ncap *= 2;
        char *np = realloc(o->p, ncap);
        if (!np) {
            o->nomem = 1;
            return;
        }
        o->p = np;
        o->cap = ncap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* Visible text: a pending space first, unless at the start of a line. */
static void text(struct out *o, const char *s, size_t n)
{
    if (!n)
        return;
    if (o->space && o->len && !o->newlines)
        put(o, " ", 1);
    o->space = 0;
    o->newlines = 0;
    put(o, s, n);
}

static void breaks(struct out *o, int k)
{
    o->space = 0;
    if (!o->len)
        return;
    while (o->newlines < k) {
        put(o, "\n", 1);
        o->newlines++;
    }
}

static void codepoint(struct out *o, unsigned long cp)
{
    char t[4];
    size_t n;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp == 0xA0) { /* &nbsp; is a space that does not collapse away */
        text(o, " ", 1);
        return;
    }
    if (cp == 0xAD) /* soft hyphen: invisible */
        return;
    n = sb_utf8_encode(cp, t);
    text(o, t, n);
}

static const struct {
    const char *name;
    unsigned cp;
} entities[] = {
    {"amp", '&'},       {"lt", '<'},       {"gt", '>'},        {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},     {"laquo", 0xAB},   {"raquo", 0xBB},    {"mdash", 0x2014}, {"ndash", 0x2013},
    {"hellip", 0x2026}, {"copy", 0xA9},    {"reg", 0xAE},      {"trade", 0x2122}, {"euro", 0x20AC},
    {"rsquo", 0x2019},  {"lsquo", 0x2018}, {"ldquo", 0x201C},  {"rdquo", 0x201D}, {"bdquo", 0x201E},
    {"bull", 0x2022},   {"middot", 0xB7},  {"times", 0xD7},    {"shy", 0xAD},     {"deg", 0xB0},
    {"numero", 0x2116}, {"rarr", 0x2192},  {"larr", 0x2190},   {"pound", 0xA3},   {"yen", 0xA5},
    {"sect", 0xA7},     {"para", 0xB6},    {"plusmn", 0xB1},   {"zwnj", 0x200C},  {"zwj", 0x200D},
    {"ensp", 0x2002},   {"emsp", 0x2003},  {"thinsp", 0x2009},
};

/* A character reference at s (after '&'); returns the bytes consumed (0:
 * not a reference, the '&' is text). */
static size_t entity(struct out *o, const char *s, const char *end)
{
    const char *semi = s;
    while (semi < end && semi - s < 12 && *semi != ';' && *semi != '&' && *semi != '<' &&
           !isspace((unsigned char)*semi))
        semi++;
    if (semi >= end || *semi != ';' || semi == s)
        return 0;
    size_t n = (size_t)(semi - s);
    if (s[0] == '#') {
        int hex = n > 1 && (s[1] == 'x' || s[1] == 'X');
        const char *d = s + 1 + hex;
        if (d == semi)
            return 0;
        unsigned long cp = 0;
        for (; d < semi; d++) {
            int v = isdigit((unsigned char)*d)           ? *d - '0'
                    : hex && isxdigit((unsigned char)*d) ? tolower((unsigned char)*d) - 'a' + 10
                                                         : -1;
            if (v < 0)
                return 0;
            cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            if (cp > 0x10FFFF)
                cp = 0x110000; /* stays out of range, no overflow */
        }
        codepoint(o, cp);
        return n + 1;
    }
    for (size_t i = 0; i < sizeof entities / sizeof *entities; i++)
        if (strlen(entities[i].name) == n && !strncmp(s, entities[i].name, n)) {
            codepoint(o, entities[i].cp);
            return n + 1;
        }
    return 0;
}

/* Case-insensitive search for `needle` in [p, end). */
static const char *find_ci(const char *p, const char *end, const char *needle)
{
    size_t nl = strlen(needle);
    for (; p + nl <= end; p++)
        if (!strncasecmp(p, needle, nl))
            return p;
    return NULL;
}

static int name_is(const char *name, size_t n, const char *const *set)
{
    for (size_t i = 0; set[i]; i++)
        if (strlen(set[i]) == n && !strncasecmp(name, set[i], n))
            return 1;
    return 0;
}

/* The value of attribute `attr` inside a tag's text [s, e), into a malloc'd
 * string (entities not decoded: URLs rarely need it), or NULL. */
static char *attr_value(const char *s, const char *e, const char *attr)
{
    size_t al = strlen(attr);
    for (const char *p = s; p + al < e; p++) {
        if (strncasecmp(p, attr, al) != 0 || (p > s && !isspace((unsigned char)p[-1])))
            continue;
        const char *q = p + al;
        while (q < e && isspace((unsigned char)*q))
            q++;
        if (q >= e || *q != '=')
            continue;
        q++;
        while (q < e && isspace((unsigned char)*q))
            q++;
        const char *v = q, *ve;
        if (q < e && (*q == '"' || *q == '\'')) {
            v = q + 1;
            ve = memchr(v, *q, (size_t)(e - v));
            if (!ve)
                ve = e;
        } else {
            ve = v;
            while (ve < e && !isspace((unsigned char)*ve) && *ve != '>')
                ve++;
        }
        char *r = malloc((size_t)(ve - v) + 1);
        if (r) {
            memcpy(r, v, (size_t)(ve - v));
            r[ve - v] = '\0';
        }
        return r;
    }
    return NULL;
}

int sb_html_to_text(const char *html, size_t n, char **out, size_t *outlen)
{
    static const char *const skip_content[] = {"script", "style",    "head",
                                               "title",  "noscript", NULL};
    static const char *const para[] = {"p",  "h1", "h2", "h3",    "h4",         "h5",
                                       "h6", "ul", "ol", "table", "blockquote", NULL};
    static const char *const block[] = {
        "div",   "tr",      "dt",     "dd",    "section", "article", "header", "footer",
        "form",  "address", "center", "dl",    "hr",      "pre",     "tbody",  "thead",
        "tfoot", "caption", "nav",    "aside", "main",    "figure",  NULL};
    struct out o = {0};
    char *href = NULL;
    size_t link_start = 0;
    const char *p = html, *end = html + n;
    while (p < end && !o.nomem) {
        if (*p == '<') {
            if (end - p >= 4 && !strncmp(p, "<!--", 4)) {
                const char *c = find_ci(p + 4, end, "-->");
                p = c ? c + 3 : end;
                continue;
            }
            const char *t = p + 1;
            int closing = t < end && *t == '/';
            if (closing)
                t++;
            const char *ns = t;
            while (t < end && (isalnum((unsigned char)*t)))
                t++;
            size_t nl = (size_t)(t - ns);
            if (!nl && !(ns < end && (*ns == '!' || *ns == '?'))) {
                text(&o, "<", 1); /* a lone '<' is text */
                p++;
                continue;
            }
            /* the end of the tag, quotes respected */
            const char *e = t;
            char q = 0;
            while (e < end && (q || *e != '>')) {
                if (q && *e == q)
                    q = 0;
                else if (!q && (*e == '"' || *e == '\''))
                    q = *e;
                e++;
            }
            const char *after = e < end ? e + 1 : end;
            if (!closing && name_is(ns, nl, skip_content)) {
                char close[16] = "</";
                memcpy(close + 2, ns, nl < 12 ? nl : 12);
                close[2 + (nl < 12 ? nl : 12)] = '\0';
                const char *c = find_ci(after, end, close);
                /* unclosed, it runs to the end, as in a browser (and a
                 * second search from here could only fail again) */
                const char *ce = c ? memchr(c, '>', (size_t)(end - c)) : NULL;
                p = ce ? ce + 1 : end;
                continue;
            }
            if (name_is(ns, nl, (const char *const[]){"br", NULL})) {
                breaks(&o, o.newlines + 1 > 2 ? 2 : o.newlines + 1);
            } else if (name_is(ns, nl, para)) {
                breaks(&o, 2);
            } else if (name_is(ns, nl, block)) {
                breaks(&o, 1);
                if (nl == 3 && !strncasecmp(ns, "pre", 3))
                    o.pre = !closing;
            } else if (name_is(ns, nl, (const char *const[]){"li", NULL})) {
                breaks(&o, 1);
                if (!closing)
                    text(&o, "- ", 2), o.space = 0;
            } else if (name_is(ns, nl, (const char *const[]){"td", "th", NULL})) {
                if (closing)
                    o.space = 1;
            } else if (nl == 1 && (*ns == 'a' || *ns == 'A')) {
                if (!closing) {
                    free(href);
                    href = attr_value(t, e, "href");
                    link_start = o.len;
                } else if (href) {
                    const char *h = href;
                    while (isspace((unsigned char)*h))
                        h++;
                    size_t hl = strlen(h);
                    const char *shown = o.p ? o.p + link_start : "";
                    size_t sl = o.len - link_start;
                    /* the address when it adds something: not an anchor,
                     * not mailto, not what the text already says */
                    if (*h && *h != '#' && strncasecmp(h, "mailto:", 7) != 0 &&
                        strncasecmp(h, "javascript:", 11) != 0 &&
                        !(sl >= hl && memmem(shown, sl, h, hl))) {
                        o.space = 1;
                        text(&o, "(", 1);
                        put(&o, h, hl);
                        put(&o, ")", 1);
                    }
                    free(href);
                    href = NULL;
                }
            }
            p = after;
            continue;
        }
        if (*p == '&') {
            size_t used = entity(&o, p + 1, end);
            if (used) {
                p += used + 1;
                continue;
            }
            text(&o, "&", 1);
            p++;
            continue;
        }
        if (isspace((unsigned char)*p)) {
            if (o.pre) {
                if (*p == '\n') {
                    put(&o, "\n", 1);
                    o.newlines++;
                } else if (*p != '\r') {
                    put(&o, p, 1);
                    o.newlines = 0;
                }
            } else {
                o.space = 1;
            }
            p++;
            continue;
        }
        const char *r = p;
        while (r < end && *r != '<' && *r != '&' && !isspace((unsigned char)*r))
            r++;
        text(&o, p, (size_t)(r - p));
        p = r;
    }
    free(href);
    if (!o.nomem && !o.p)
        put(&o, "", 0);
    if (o.nomem) {
        free(o.p);
        return SB_ERR_NOMEM;
    }
    while (o.len && (o.p[o.len - 1] == '\n' || o.p[o.len - 1] == ' '))
        o.p[--o.len] = '\0';
    *out = o.p;
    if (outlen)
        *outlen = o.len;
    return SB_OK;
}
