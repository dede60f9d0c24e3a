/* Campaign template rendering (template.h). One pass over the template
 * copies text and replaces tags; a second pass over a rendered HTML part
 * rewrites link targets. Output grows in one buffer, capped at
 * SB_TPL_OUT_MAX so a template cannot expand without bound. */
#include "switchboard/template.h"
#include "switchboard/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A rendered part larger than this is refused: a mail part over 16 MiB
 * would be refused by every SMTP server anyway. */
#define SB_TPL_OUT_MAX (16u << 20)
#define FIELD_MAX      256

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = cap <= SB_TPL_OUT_MAX ? realloc(b->p, cap) : NULL;
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put_escaped(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            put(b, "&amp;", 5);
            break;
        case '<':
            put(b, "&lt;", 4);
            break;
        case '>':
            put(b, "&gt;", 4);
            break;
        case '"':
            put(b, "&quot;", 6);
            break;
        case '\'':
            put(b, "&#39;", 5);
            break;
        default:
            put(b, s, 1);
        }
    }
}

/* A parsed tag: the field name and the fallback, trimmed. */
struct tag {
    char field[FIELD_MAX];
    char fallback[FIELD_MAX * 4];
    int raw;
    size_t end; /* offset just past the closing braces */
};

static void trim_copy(char *dst, size_t dlen, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= dlen)
        n = dlen - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Parse the tag opening at tpl[i] ("{{"). 0 on success, -1 unclosed. */
static int parse_tag(const char *tpl, size_t i, struct tag *t)
{
    int raw = tpl[i + 2] == '{';
    size_t start = i + (raw ? 3 : 2);
    const char *close = strstr(tpl + start, raw ? "}}}" : "}}");
    if (!close)
        return -1;
    size_t n = (size_t)(close - (tpl + start));
    const char *inner = tpl + start;
    const char *bar = memchr(inner, '|', n);
    memset(t, 0, sizeof *t);
    t->raw = raw;
    if (bar) {
        trim_copy(t->field, sizeof t->field, inner, (size_t)(bar - inner));
        trim_copy(t->fallback, sizeof t->fallback, bar + 1, n - (size_t)(bar - inner) - 1);
    } else {
        trim_copy(t->field, sizeof t->field, inner, n);
    }
    t->end = start + n + (raw ? 3 : 2);
    return 0;
}

static int known_field(const char *f, enum sb_tpl_scope scope)
{
    if (!strcmp(f, "client.name") || !strcmp(f, "client.first_name") || !strcmp(f, "client.email"))
        return 1;
    if (scope == SB_TPL_CAMPAIGN && (!strcmp(f, "unsubscribe_url") || !strcmp(f, "view_url")))
        return 1;
    if (scope == SB_TPL_CANNED &&
        (!strcmp(f, "client.phone") || !strcmp(f, "agent.name") || !strcmp(f, "conversation.id")))
        return 1;
    return !strncmp(f, "custom.", 7) && f[7];
}

int sb_tpl_check(const char *tpl, char *err, size_t errlen)
{
    return sb_tpl_check_scope(tpl, SB_TPL_CAMPAIGN, err, errlen);
}

int sb_tpl_check_scope(const char *tpl, enum sb_tpl_scope scope, char *err, size_t errlen)
{
    if (!tpl)
        return SB_OK;
    for (size_t i = 0; tpl[i]; i++) {
        if (tpl[i] != '{' || tpl[i + 1] != '{')
            continue;
        struct tag t;
        if (parse_tag(tpl, i, &t) != 0)
            return sb_fail(err, errlen, SB_ERR_INVALID, "unclosed {{ at offset %zu", i);
        if (!known_field(t.field, scope))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "unknown merge field '%s' at offset %zu (known: %s)", t.field, i,
                           scope == SB_TPL_CANNED
                               ? "client.name, client.first_name, client.email, client.phone, "
                                 "custom.NAME, agent.name, conversation.id"
                               : "client.name, client.first_name, client.email, custom.NAME, "
                                 "unsubscribe_url, view_url");
        i = t.end - 1;
    }
    return SB_OK;
}

/* The value of a field as text in `tmp`, or NULL when missing or empty. */
static const char *value_of(const struct sb_tpl_vars *v, const char *f, char *tmp, size_t tmplen)
{
    const char *s = NULL;
    if (!strcmp(f, "client.name"))
        s = v->name;
    else if (!strcmp(f, "client.first_name") && v->name) {
        /* The first word: "Анна Смирнова" -> "Анна". */
        size_t n = strcspn(v->name + strspn(v->name, " \t"), " \t");
        snprintf(tmp, tmplen, "%.*s", (int)(n < tmplen ? n : tmplen - 1),
                 v->name + strspn(v->name, " \t"));
        s = tmp;
    } else if (!strcmp(f, "client.phone"))
        s = v->phone;
    else if (!strcmp(f, "agent.name"))
        s = v->agent_name;
    else if (!strcmp(f, "conversation.id") && v->conversation_id > 0) {
        snprintf(tmp, tmplen, "%lld", v->conversation_id);
        s = tmp;
    } else if (!strcmp(f, "client.email"))
        s = v->email;
    else if (!strcmp(f, "unsubscribe_url"))
        s = v->unsubscribe_url;
    else if (!strcmp(f, "view_url"))
        s = v->view_url;
    else if (!strncmp(f, "custom.", 7) && v->custom) {
        json_t *j = json_object_get(v->custom, f + 7);
        if (json_is_string(j))
            s = json_string_value(j);
        else if (json_is_integer(j)) {
            snprintf(tmp, tmplen, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
            s = tmp;
        } else if (json_is_real(j)) {
            snprintf(tmp, tmplen, "%g", json_real_value(j));
            s = tmp;
        } else if (json_is_boolean(j)) {
            s = json_is_true(j) ? "true" : "false";
        }
    }
    return s && *s ? s : NULL;
}

/* Decode the few entities an escaped URL holds (&amp; and numeric ones for
 * ASCII); anything else stays as it is. */
static void entity_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (!strncmp(r, "&amp;", 5)) {
            *w++ = '&';
            r += 5;
        } else if (r[0] == '&' && r[1] == '#') {
            char *end;
            long c = r[2] == 'x' || r[2] == 'X' ? strtol(r + 3, &end, 16) : strtol(r + 2, &end, 10);
            if (*end == ';' && c > 0x20 && c < 0x7f) {
                *w++ = (char)c;
                r = end + 1;
            } else {
                *w++ = *r++;
            }
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* Rewrite href="http(s)://…" targets through `link`. */
static void rewrite_links(const char *in, const struct sb_tpl_vars *v, sb_tpl_link_fn link,
                          void *arg, struct buf *out)
{
    const char *p = in;
    for (;;) {
        const char *h = strcasestr(p, "href");
        if (!h) {
            put(out, p, strlen(p));
            return;
        }
        const char *q = h + 4;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if (*q != '=' || (h > in && (isalnum((unsigned char)h[-1]) || h[-1] == '-'))) {
            put(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        char quote = *q;
        if (quote != '"' && quote != '\'') {
            put(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        const char *vstart = q + 1, *vend = strchr(vstart, quote);
        if (!vend) {
            put(out, p, strlen(p));
            return;
        }
        put(out, p, (size_t)(vstart - p));
        size_t n = (size_t)(vend - vstart);
        char *url = malloc(n + 1);
        char *repl = NULL;
        if (url) {
            memcpy(url, vstart, n);
            url[n] = '\0';
            entity_decode(url);
            int ours = (v->unsubscribe_url && !strcmp(url, v->unsubscribe_url)) ||
                       (v->view_url && !strcmp(url, v->view_url));
            if (!ours && (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8)))
                repl = link(url, arg);
        } else {
            out->oom = 1;
        }
        if (repl)
            put_escaped(out, repl);
        else
            put(out, vstart, n);
        free(repl);
        free(url);
        p = vend;
    }
}

int sb_tpl_render(const char *tpl, int html, const struct sb_tpl_vars *v, sb_tpl_link_fn link,
                  void *arg, char **out, size_t *len_r, char *err, size_t errlen)
{
    *out = NULL;
    if (len_r)
        *len_r = 0;
    struct buf b = {0};
    put(&b, "", 0);
    if (tpl) {
        size_t i = 0, lit = 0;
        while (tpl[i]) {
            if (tpl[i] != '{' || tpl[i + 1] != '{') {
                i++;
                continue;
            }
            struct tag t;
            if (parse_tag(tpl, i, &t) != 0)
                break; /* unclosed: the rest is literal */
            put(&b, tpl + lit, i - lit);
            char tmp[FIELD_MAX];
            const char *val = value_of(v, t.field, tmp, sizeof tmp);
            if (!val)
                val = t.fallback;
            if (html && !t.raw)
                put_escaped(&b, val);
            else
                put(&b, val, strlen(val));
            i = lit = t.end;
        }
        put(&b, tpl + lit, strlen(tpl + lit));
    }
    if (!b.oom && html && link) {
        struct buf r = {0};
        put(&r, "", 0);
        rewrite_links(b.p, v, link, arg, &r);
        free(b.p);
        b = r;
    }
    if (b.oom) {
        free(b.p);
        return sb_fail(err, errlen, SB_ERR_TOO_LARGE, "rendered template too large");
    }
    *out = b.p;
    if (len_r)
        *len_r = b.len;
    return SB_OK;
}
