/* Website forms (kind "webform"), inbound: POST /forms/{public_key}.
 *
 * A form post is a lead: the visitor's name, phone, e-mail and message (the
 * form's own field names are mapped with the `fields` setting), every other
 * field kept in meta.form, utm_* and ad click ids in meta.lead_source, files
 * as attachments. Three bodies are understood: application/x-www-form-
 * urlencoded (WHATWG parsing: '+' is a space, a '%' without two hex digits
 * stays literal), multipart/form-data (RFC 7578, as browsers write it) and a
 * JSON object of scalars (also when a fetch() sends it as text/plain to skip
 * the CORS preflight). Text must be UTF-8; anything else is SB_ERR_INVALID,
 * which the caller quarantines raw so no lead is lost to a page in
 * windows-1251.
 *
 * Idempotency. A post carrying an Idempotency-Key header or a submission_id
 * field gets the external id "idem:" + SHA-256 of that key and of the posted
 * fields and files, so a retried fetch() or a re-sent form stores one
 * interaction. Without a key every post is a new lead ("post:" + 128 random
 * bits): nothing in two identical posts tells a double click from a person
 * asking again a week later, and a lost lead costs more than a duplicate line
 * in the same client's conversation. The fields are part of the digest so a
 * site that by mistake sends one constant submission_id for everybody still
 * gets every distinct lead.
 *
 * A filled honeypot field (hidden from people, filled by bots) yields SB_OK
 * and no inbound at all: the caller answers as for a stored lead and counts
 * it. That is the only way this adapter returns an empty batch.
 *
 * The route is src/api_forms.c (rate limit, CORS, the answer); this file only
 * translates and never touches SQL. Everything but the table row is static. */
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"
#include "switchboard/log.h"

#include <ctype.h>
#include <errno.h>
#include <idn2.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Our fields, in the order of the `fields` setting. */
enum { F_NAME, F_PHONE, F_EMAIL, F_MESSAGE, F__COUNT };
static const char *const our_fields[F__COUNT] = {"name", "phone", "email", "message"};

/* The form limits (files, fields) live in limits.h with their reasons. */
/* Field names and setting values are short; a longer one is not a form. */
#define NAME_MAX_BYTES 128
#define URL_MAX_BYTES  1024

static const char *const config_keys[] = {
    "redirect_url", "allowed_origins", "honeypot_field",
    "fields",       "default_region",  "max_file_size",
    NULL,
};

/* --- configuration -------------------------------------------------------- */

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_space((unsigned char)**s))
        (*s)++, (*n)--;
    while (*n && is_space((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* "https://Shop.Example/" -> "https://shop.example"; an IDN host becomes
 * punycode because that is what browsers put in the Origin header. */
static int origin_normalise(const char *s, size_t n, char *out, size_t outlen, char *err,
                            size_t errlen)
{
    trim(&s, &n);
    if (n == 1 && s[0] == '*') {
        snprintf(out, outlen, "*");
        return SB_OK;
    }
    size_t scheme;
    if (n > 7 && !strncasecmp(s, "http://", 7))
        scheme = 7;
    else if (n > 8 && !strncasecmp(s, "https://", 8))
        scheme = 8;
    else
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "allowed_origins: '%.*s' is not an origin like https://shop.example",
                       (int)(n > 80 ? 80 : n), s);
    if (s[n - 1] == '/') /* "https://shop.example/" as copied from the address bar */
        n--;
    char host[256];
    size_t hn = n - scheme;
    if (hn == 0 || hn >= sizeof host)
        return sb_fail(err, errlen, SB_ERR_INVALID, "allowed_origins: an origin without a host");
    memcpy(host, s + scheme, hn);
    host[hn] = '\0';
    char *puny = NULL;
    int ascii = 1;
    for (size_t i = 0; i < hn; i++)
        ascii &= (unsigned char)host[i] < 0x80;
    if (!ascii) {
        int irc = idn2_to_ascii_8z(host, &puny, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
        if (irc != IDN2_OK)
            return sb_fail(err, errlen, SB_ERR_INVALID, "allowed_origins: host '%s': %s", host,
                           idn2_strerror(irc));
        if (strlen(puny) >= sizeof host) {
            idn2_free(puny);
            return sb_fail(err, errlen, SB_ERR_INVALID, "allowed_origins: host too long");
        }
        strcpy(host, puny);
        idn2_free(puny);
        hn = strlen(host);
    }
    /* host, [v6] or host:port; nothing after it (an origin has no path). */
    for (size_t i = 0; i < hn; i++) {
        char c = host[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' ||
              c == ']'))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "allowed_origins: '%.*s' is not an origin (scheme://host[:port], "
                           "no path)",
                           (int)(n > 80 ? 80 : n), s);
        host[i] = (char)tolower((unsigned char)c);
    }
    snprintf(out, outlen, "%.*s%s", (int)scheme, scheme == 7 ? "http://" : "https://", host);
    return SB_OK;
}

/* allowed_origins as a comma-separated string or an array of strings, stored
 * back as "origin,origin" with each origin normalised. */
static int check_origins(json_t *cfg, char *err, size_t errlen)
{
    json_t *v = json_object_get(cfg, "allowed_origins");
    if (!v)
        return SB_OK;
    char all[4096] = "", one[300];
    size_t used = 0;
    int rc = SB_OK;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return sb_fail(err, errlen, SB_ERR_INVALID, "allowed_origins: strings only");
            rc = origin_normalise(json_string_value(e), json_string_length(e), one, sizeof one, err,
                                  errlen);
            if (rc != SB_OK)
                return rc;
            used += (size_t)snprintf(all + used, sizeof all - used, "%s%s", used ? "," : "", one);
            if (used >= sizeof all)
                return sb_fail(err, errlen, SB_ERR_INVALID, "allowed_origins: too many origins");
        }
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t n = comma ? (size_t)(comma - s) : strlen(s);
            const char *t = s;
            size_t tn = n;
            trim(&t, &tn);
            if (tn) {
                rc = origin_normalise(t, tn, one, sizeof one, err, errlen);
                if (rc != SB_OK)
                    return rc;
                used +=
                    (size_t)snprintf(all + used, sizeof all - used, "%s%s", used ? "," : "", one);
                if (used >= sizeof all)
                    return sb_fail(err, errlen, SB_ERR_INVALID,
                                   "allowed_origins: too many origins");
            }
            s += n + (comma ? 1 : 0);
        }
    } else {
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "allowed_origins: a comma-separated list of origins");
    }
    json_object_set_new(cfg, "allowed_origins", json_string(all));
    return SB_OK;
}

/* An absolute http(s) URL that can go into a Location header as it is. */
static int check_url(const char *u, char *err, size_t errlen)
{
    size_t n = strlen(u), scheme = !strncasecmp(u, "https://", 8)  ? 8
                                   : !strncasecmp(u, "http://", 7) ? 7
                                                                   : 0;
    if (!scheme || n == scheme || n > URL_MAX_BYTES || u[scheme] == '/' || u[scheme] == '?' ||
        u[scheme] == '#')
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "redirect_url: an absolute http(s) URL like https://shop.example/thanks "
                       "(at most %d bytes)",
                       URL_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\')
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "redirect_url: no spaces, quotes or non-ASCII characters "
                           "(percent-encode them, write an IDN host in punycode)");
    }
    return SB_OK;
}

/* "name=fio,phone=tel" (or an object) -> the complete canonical mapping
 * "name=fio,phone=tel,email=email,message=message". */
static int check_fields(json_t *cfg, char *err, size_t errlen)
{
    char map[F__COUNT][NAME_MAX_BYTES + 1];
    for (int i = 0; i < F__COUNT; i++)
        snprintf(map[i], sizeof map[i], "%s", our_fields[i]);
    json_t *v = json_object_get(cfg, "fields");
    json_t *obj = NULL;
    if (json_is_string(v)) {
        obj = json_object();
        const char *s = json_string_value(v);
        while (*s) {
            const char *comma = strchr(s, ',');
            size_t n = comma ? (size_t)(comma - s) : strlen(s);
            const char *eq = memchr(s, '=', n);
            const char *k = s, *val = eq ? eq + 1 : NULL;
            size_t kn = eq ? (size_t)(eq - s) : n, vn = eq ? n - kn - 1 : 0;
            trim(&k, &kn);
            if (val)
                trim(&val, &vn);
            if (kn || vn) {
                if (!val || !kn || !vn) {
                    json_decref(obj);
                    return sb_fail(err, errlen, SB_ERR_INVALID,
                                   "fields: pairs like name=fio,phone=tel,email=mail,"
                                   "message=comment");
                }
                char key[64];
                snprintf(key, sizeof key, "%.*s", (int)(kn < 63 ? kn : 63), k);
                json_object_set_new(obj, key, json_stringn(val, vn));
            }
            s += n + (comma ? 1 : 0);
        }
    } else if (json_is_object(v)) {
        obj = json_incref(v);
    } else if (v) {
        return sb_fail(err, errlen, SB_ERR_INVALID, "fields: a mapping like name=fio,phone=tel");
    }
    const char *key;
    json_t *val;
    int rc = SB_OK;
    json_object_foreach(obj, key, val)
    {
        int i = 0;
        while (i < F__COUNT && strcmp(key, our_fields[i]) != 0)
            i++;
        const char *name = json_string_value(val);
        if (i == F__COUNT) {
            rc = sb_fail(err, errlen, SB_ERR_INVALID,
                         "fields: '%s' is not one of name, phone, email, message", key);
            break;
        }
        if (!name || !*name || strlen(name) > NAME_MAX_BYTES || strpbrk(name, ",=")) {
            rc = sb_fail(err, errlen, SB_ERR_INVALID,
                         "fields: %s needs a form field name (1 to %d bytes, no ',' or '=')", key,
                         NAME_MAX_BYTES);
            break;
        }
        snprintf(map[i], sizeof map[i], "%s", name);
    }
    json_decref(obj);
    if (rc != SB_OK)
        return rc;
    char canon[4 * (NAME_MAX_BYTES + 16)];
    snprintf(canon, sizeof canon, "name=%s,phone=%s,email=%s,message=%s", map[F_NAME], map[F_PHONE],
             map[F_EMAIL], map[F_MESSAGE]);
    json_object_set_new(cfg, "fields", json_string(canon));
    return SB_OK;
}

/* "10M", "512K", "1000" -> bytes. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return -1;
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    if (*end || v > SIZE_MAX / mul)
        return -1;
    *out = (size_t)(v * mul);
    return 0;
}

static int validate(json_t *cfg, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(cfg, key, v)
    {
        int known = 0;
        for (const char *const *k = config_keys; *k && !known; k++)
            known = !strcmp(*k, key);
        if (!known)
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "unknown setting '%s' (webform takes redirect_url, allowed_origins, "
                           "honeypot_field, fields, default_region, max_file_size)",
                           key);
    }
    const char *redirect = json_string_value(json_object_get(cfg, "redirect_url"));
    if (json_object_get(cfg, "redirect_url") && !redirect)
        return sb_fail(err, errlen, SB_ERR_INVALID, "redirect_url: a URL string");
    if (redirect && *redirect) {
        int rc = check_url(redirect, err, errlen);
        if (rc != SB_OK)
            return rc;
    } else if (redirect) {
        json_object_del(cfg, "redirect_url"); /* --set redirect_url= clears it */
    }
    int rc = check_origins(cfg, err, errlen);
    if (rc == SB_OK)
        rc = check_fields(cfg, err, errlen);
    if (rc != SB_OK)
        return rc;

    json_t *hp = json_object_get(cfg, "honeypot_field");
    if (!hp) {
        json_object_set_new(cfg, "honeypot_field", json_string("website"));
    } else if (!json_is_string(hp) || json_string_length(hp) > NAME_MAX_BYTES) {
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "honeypot_field: a field name (empty turns the honeypot off)");
    }
    const char *hpname = json_string_value(json_object_get(cfg, "honeypot_field"));
    const char *map = json_string_value(json_object_get(cfg, "fields"));
    for (int i = 0; *hpname && i < F__COUNT; i++) {
        char probe[NAME_MAX_BYTES + 16];
        snprintf(probe, sizeof probe, "%s=%s,", our_fields[i], hpname);
        char whole[4 * (NAME_MAX_BYTES + 16) + 1];
        snprintf(whole, sizeof whole, "%s,", map);
        if (strstr(whole, probe))
            return sb_fail(err, errlen, SB_ERR_INVALID, "honeypot_field: '%s' is also the %s field",
                           hpname, our_fields[i]);
    }

    json_t *region = json_object_get(cfg, "default_region");
    if (region) {
        const char *r = json_string_value(region);
        if (!r || strlen(r) != 2 || !isalpha((unsigned char)r[0]) || !isalpha((unsigned char)r[1]))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "default_region: a two-letter country code such as RU");
        char up[3] = {(char)toupper((unsigned char)r[0]), (char)toupper((unsigned char)r[1]), 0};
        json_object_set_new(cfg, "default_region", json_string(up));
    }

    json_t *mfs = json_object_get(cfg, "max_file_size");
    size_t max_file = SB_FORM_FILE_MAX;
    if (mfs) {
        char tmp[32];
        if (json_is_integer(mfs) && json_integer_value(mfs) >= 0)
            snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(mfs));
        else
            snprintf(tmp, sizeof tmp, "%s", json_string_value(mfs) ? json_string_value(mfs) : "");
        if (parse_size(tmp, &max_file) != 0 || max_file > SB_FORM_FILE_MAX)
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "max_file_size: bytes (K and M suffixes allowed), at most %d",
                           SB_FORM_FILE_MAX);
    }
    char bytes[32];
    snprintf(bytes, sizeof bytes, "%zu", max_file);
    json_object_set_new(cfg, "max_file_size", json_string(bytes));
    return SB_OK;
}

/* --- parsing -------------------------------------------------------------- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF, no
 * NUL (a C string cannot carry it and no form field means one). */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (!c)
                return 0;
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return 0;
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

/* At most `max` bytes of valid UTF-8 `s`, not cutting a character. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    return max;
}

struct form {
    struct sb_inbound *in;
    json_t *fields;  /* name -> "value" or ["value", ...] (a repeated name) */
    json_t *dropped; /* files not stored, with why */
    json_t *digests; /* name -> sha256 hex of each stored file, for the idempotency digest */
    int nfields, nfiles;
    size_t max_file;
    char *err;
    size_t errlen;
};

static const char not_utf8[] =
    "a field is not valid UTF-8 (a page in another charset? give the form "
    "accept-charset=\"UTF-8\")";

static int add_field(struct form *f, const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (!nlen)
        return SB_OK; /* "&&" or "=x": nothing to name it by */
    if (++f->nfields > SB_FORM_FIELDS_MAX)
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "more than %d fields",
                       SB_FORM_FIELDS_MAX);
    if (nlen > NAME_MAX_BYTES)
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "a field name over %d bytes",
                       NAME_MAX_BYTES);
    if (!utf8_valid((const unsigned char *)name, nlen) ||
        !utf8_valid((const unsigned char *)val, vlen))
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "%s", not_utf8);
    char key[NAME_MAX_BYTES + 1];
    memcpy(key, name, nlen);
    key[nlen] = '\0';
    /* A textarea's line breaks arrive as CRLF; store them as LF. */
    char *v = malloc(vlen + 1);
    if (!v)
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < vlen; i++)
        if (!(val[i] == '\r' && i + 1 < vlen && val[i + 1] == '\n'))
            v[o++] = val[i];
    json_t *js = json_stringn(v, o);
    free(v);
    if (!js)
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");
    json_t *old = json_object_get(f->fields, key);
    if (!old)
        return json_object_set_new(f->fields, key, js) ? SB_ERR_NOMEM : SB_OK;
    if (json_is_string(old)) {
        json_t *arr = json_pack("[O]", old);
        json_object_set_new(f->fields, key, arr);
        old = arr;
    }
    return json_array_append_new(old, js) ? SB_ERR_NOMEM : SB_OK;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* application/x-www-form-urlencoded byte decoding (WHATWG URL, "percent-
 * decode" after '+' -> ' '); `out` has room for n bytes. */
static size_t form_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static int parse_urlencoded(struct form *f, const char *body, size_t len)
{
    /* A browser percent-encodes line breaks, so trailing raw ones are
     * transport residue (curl -d @file.txt), not data. */
    while (len && (body[len - 1] == '\n' || body[len - 1] == '\r'))
        len--;
    char *buf = malloc(len + 1);
    if (!buf)
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");
    int rc = SB_OK;
    for (size_t i = 0; i < len && rc == SB_OK;) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t plen = amp ? (size_t)(amp - (body + i)) : len - i;
        const char *eq = memchr(body + i, '=', plen);
        size_t nraw = eq ? (size_t)(eq - (body + i)) : plen;
        size_t nlen = form_decode(body + i, nraw, buf);
        size_t vlen = eq ? form_decode(eq + 1, plen - nraw - 1, buf + nlen) : 0;
        rc = add_field(f, buf, nlen, buf + nlen, vlen);
        i += plen + 1;
    }
    free(buf);
    return rc;
}

static int add_json_scalar(struct form *f, const char *key, json_t *v)
{
    if (json_is_string(v))
        return add_field(f, key, strlen(key), json_string_value(v), json_string_length(v));
    if (json_is_null(v))
        return SB_OK;
    if (json_is_number(v) || json_is_boolean(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        int rc = s ? add_field(f, key, strlen(key), s, strlen(s)) : SB_ERR_NOMEM;
        free(s);
        return rc;
    }
    return sb_fail(f->err, f->errlen, SB_ERR_INVALID,
                   "field '%.*s': a form field is a string, a number or a list of them",
                   (int)utf8_cut(key, 64), key);
}

static int parse_json(struct form *f, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "not a JSON object of form fields%s%s",
                       o ? "" : ": ", o ? "" : jerr.text);
    }
    const char *key;
    json_t *v;
    int rc = SB_OK;
    json_object_foreach(o, key, v)
    {
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (rc == SB_OK)
                    rc = json_is_array(e) || json_is_object(e)
                             ? sb_fail(f->err, f->errlen, SB_ERR_INVALID,
                                       "field '%.*s': a list of strings or numbers",
                                       (int)utf8_cut(key, 64), key)
                             : add_json_scalar(f, key, e);
            }
        } else {
            rc = add_json_scalar(f, key, v);
        }
        if (rc != SB_OK)
            break;
    }
    json_decref(o);
    return rc;
}

/* The value of parameter `pname` in a header value like
 * `form-data; name="a"; filename="b.pdf"` (quoted strings with backslash
 * escapes, or tokens). 1 when present. */
static int header_param(const char *v, size_t vn, const char *pname, char *out, size_t outlen)
{
    size_t i = 0, pn = strlen(pname);
    while (i < vn && v[i] != ';')
        i++;
    while (i < vn) {
        while (i < vn && (v[i] == ';' || is_space((unsigned char)v[i])))
            i++;
        size_t ns = i;
        while (i < vn && v[i] != '=' && v[i] != ';')
            i++;
        size_t ne = i;
        while (ne > ns && is_space((unsigned char)v[ne - 1]))
            ne--;
        size_t o = 0;
        int match = ne - ns == pn && !strncasecmp(v + ns, pname, pn);
        if (i < vn && v[i] == '=') {
            i++;
            while (i < vn && is_space((unsigned char)v[i]))
                i++;
            if (i < vn && v[i] == '"') {
                for (i++; i < vn && v[i] != '"'; i++) {
                    if (v[i] == '\\' && i + 1 < vn)
                        i++;
                    if (match && o + 1 < outlen)
                        out[o++] = v[i];
                }
                i++;
            } else {
                for (; i < vn && v[i] != ';'; i++)
                    if (match && o + 1 < outlen)
                        out[o++] = v[i];
                while (match && o && is_space((unsigned char)out[o - 1]))
                    o--;
            }
        }
        if (match) {
            out[o] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Browsers write '"', CR and LF in multipart names as %22, %0D, %0A (HTML
 * "multipart/form-data encoding algorithm"); nothing else is escaped. */
static void unescape_html_name(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '%' && p[1] == '2' && p[2] == '2')
            *o++ = '"', p += 2;
        else if (p[0] == '%' && p[1] == '0' && (p[2] == 'D' || p[2] == 'd'))
            *o++ = '\r', p += 2;
        else if (p[0] == '%' && p[1] == '0' && (p[2] == 'A' || p[2] == 'a'))
            *o++ = '\n', p += 2;
        else
            *o++ = *p;
    }
    *o = '\0';
}

static int boundary_of(const char *ct, char *b, size_t blen)
{
    size_t n = strlen(ct);
    if (!header_param(ct, n, "boundary", b, blen))
        return -1;
    size_t bn = strlen(b);
    return bn >= 1 && bn <= 70 ? 0 : -1; /* RFC 2046 */
}

static int add_file(struct form *f, const char *field, char *filename, const char *ctype,
                    size_t ctlen, const char *data, size_t size)
{
    /* Old IE sends the whole path: keep the last component. */
    char *base = filename;
    for (char *p = filename; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    if (!*base && !size)
        return SB_OK; /* a file input left empty posts an empty part without a name */
    if (!utf8_valid((const unsigned char *)base, strlen(base)))
        base = "";
    size_t fl = strlen(base);
    if (fl > 255) { /* the column's width; cut on a character boundary */
        fl = 255;
        while (fl && ((unsigned char)base[fl] & 0xc0) == 0x80)
            fl--;
        base[fl] = '\0';
    }
    const char *reason = NULL;
    if (!size)
        reason = "empty";
    else if (size > f->max_file)
        reason = "over max_file_size";
    else if (f->nfiles >= SB_FORM_FILES_MAX)
        reason = "too many files";
    if (reason) {
        json_array_append_new(f->dropped,
                              json_pack("{s:s,s:s,s:I,s:s}", "field", field, "filename", base,
                                        "size", (json_int_t)size, "reason", reason));
        return SB_OK;
    }
    /* "type/subtype" without parameters, or the generic type. */
    char type[128] = "application/octet-stream";
    const char *t = ctype;
    size_t tn = ctlen;
    const char *semi = t ? memchr(t, ';', tn) : NULL;
    if (semi)
        tn = (size_t)(semi - t);
    if (t)
        trim(&t, &tn);
    if (t && tn && tn < sizeof type && memchr(t, '/', tn)) {
        int ok = 1;
        for (size_t i = 0; i < tn && ok; i++)
            ok = isalnum((unsigned char)t[i]) || strchr("!#$&-^_.+/", t[i]);
        if (ok) {
            for (size_t i = 0; i < tn; i++)
                type[i] = (char)tolower((unsigned char)t[i]);
            type[tn] = '\0';
        }
    }
    struct sb_inbound_attachment a = {0};
    a.filename = *base ? base : NULL;
    a.content_type = type;
    a.data = (const unsigned char *)data;
    a.size = size;
    if (sb_inbound_add_attachment(f->in, &a) != SB_OK)
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");
    f->nfiles++;
    unsigned char h[32];
    char hex[65];
    crypto_hash_sha256(h, (const unsigned char *)data, size);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    json_t *list = json_object_get(f->digests, field);
    if (!list) {
        list = json_array();
        json_object_set_new(f->digests, field, list);
    }
    json_array_append_new(list, json_string(hex));
    return SB_OK;
}

static int parse_part(struct form *f, const char *h, size_t hn, const char *data, size_t size)
{
    const char *disp = NULL, *ctype = NULL;
    size_t dn = 0, cn = 0;
    for (size_t i = 0; i < hn;) {
        const char *eol = memmem(h + i, hn - i, "\r\n", 2);
        size_t ln = eol ? (size_t)(eol - (h + i)) : hn - i;
        const char *line = h + i, *colon = memchr(line, ':', ln);
        if (colon) {
            size_t nn = (size_t)(colon - line);
            const char *val = colon + 1;
            size_t vn = ln - nn - 1;
            trim(&val, &vn);
            if (nn == 19 && !strncasecmp(line, "content-disposition", 19))
                disp = val, dn = vn;
            else if (nn == 12 && !strncasecmp(line, "content-type", 12))
                ctype = val, cn = vn;
        }
        i += ln + 2;
    }
    char name[NAME_MAX_BYTES * 3 + 1], filename[1024];
    if (!disp || !header_param(disp, dn, "name", name, sizeof name))
        return SB_OK; /* not a form field (RFC 7578 requires a name) */
    unescape_html_name(name);
    if (strlen(name) > NAME_MAX_BYTES)
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "a field name over %d bytes",
                       NAME_MAX_BYTES);
    if (header_param(disp, dn, "filename", filename, sizeof filename)) {
        unescape_html_name(filename);
        if (!utf8_valid((const unsigned char *)name, strlen(name)))
            return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "%s", not_utf8);
        return add_file(f, name, filename, ctype, cn, data, size);
    }
    return add_field(f, name, strlen(name), data, size);
}

static int parse_multipart(struct form *f, const char *ct, const char *body, size_t len)
{
    char b[80];
    if (boundary_of(ct, b, sizeof b) != 0)
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "multipart without a usable boundary");
    char delim[96];
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", b);
    const char *end = body + len, *p;
    if (len >= (size_t)dl - 2 && !memcmp(body, delim + 2, (size_t)dl - 2)) {
        p = body + dl - 2;
    } else { /* a preamble before the first boundary */
        p = memmem(body, len, delim, (size_t)dl);
        if (!p)
            return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "multipart without its boundary");
        p += dl;
    }
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return SB_OK; /* the close delimiter; an epilogue may follow */
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "multipart boundary not ended");
        p += 2;
        const char *hend;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            hend = p; /* a part without headers */
        } else {
            hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
            if (!hend)
                return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "multipart part headers cut");
            hend += 2;
        }
        const char *data = hend + 2;
        const char *next = memmem(data, (size_t)(end - data), delim, (size_t)dl);
        if (!next)
            return sb_fail(f->err, f->errlen, SB_ERR_INVALID,
                           "multipart without a closing "
                           "boundary");
        int rc = parse_part(f, p, (size_t)(hend - p), data, (size_t)(next - data));
        if (rc != SB_OK)
            return rc;
        p = next + dl;
    }
}

/* --- building the lead ---------------------------------------------------- */

static void field_map(const struct sb_channel *ch, char map[F__COUNT][NAME_MAX_BYTES + 1])
{
    for (int i = 0; i < F__COUNT; i++)
        snprintf(map[i], sizeof map[i], "%s", our_fields[i]);
    const char *s = sb_channel_conf(ch, "fields");
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        for (int i = 0; eq && i < F__COUNT; i++)
            if ((size_t)(eq - s) == strlen(our_fields[i]) &&
                !strncmp(s, our_fields[i], (size_t)(eq - s)) &&
                n - (size_t)(eq - s) - 1 <= NAME_MAX_BYTES)
                snprintf(map[i], sizeof map[i], "%.*s", (int)(n - (size_t)(eq - s) - 1), eq + 1);
        s += n + (comma ? 1 : 0);
    }
}

/* The first non-blank value of a field, trimmed, copied into the inbound. */
static const char *first_value(struct sb_inbound *in, json_t *v)
{
    size_t i = 0;
    for (json_t *e = json_is_array(v) ? json_array_get(v, 0) : v; e;
         e = json_is_array(v) ? json_array_get(v, ++i) : NULL) {
        const char *s = json_string_value(e);
        size_t n = s ? strlen(s) : 0;
        if (s)
            trim(&s, &n);
        if (n)
            return sb_inbound_strndup(in, s, n);
    }
    return NULL;
}

static int blank(json_t *v)
{
    size_t i;
    json_t *e;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        trim(&s, &n);
        return n == 0;
    }
    json_array_foreach(v, i, e)
    {
        if (!blank(e))
            return 0;
    }
    return 1;
}

static int add_identities(struct sb_inbound *in, enum sb_identity_kind kind, json_t *v)
{
    size_t i = 0;
    for (json_t *e = json_is_array(v) ? json_array_get(v, 0) : v; e;
         e = json_is_array(v) ? json_array_get(v, ++i) : NULL) {
        const char *s = json_string_value(e);
        size_t n = s ? strlen(s) : 0;
        if (s)
            trim(&s, &n);
        char raw[512];
        if (!n || n >= sizeof raw)
            continue;
        memcpy(raw, s, n);
        raw[n] = '\0';
        if (sb_inbound_add_identity(in, kind, raw) != SB_OK)
            return SB_ERR_NOMEM;
    }
    return SB_OK;
}

static int is_lead_source(const char *name)
{
    return !strncasecmp(name, "utm_", 4) || !strcmp(name, "gclid") || !strcmp(name, "yclid") ||
           !strcmp(name, "fbclid");
}

static void set_if(json_t *o, const char *key, const char *val)
{
    if (val && *val)
        json_object_set_new(o, key, json_string(val));
}

/* "idem:" + hex SHA-256 over the key, the fields and the files' digests
 * (sorted, so field order does not matter); "post:" + random otherwise. */
static int external_id(struct form *f, const struct sb_http_request *req, const char *sub_id,
                       char out[70])
{
    char key[300] = "";
    if (sb_request_header(req, "idempotency-key", key, sizeof key) != 0 || !key[0])
        snprintf(key, sizeof key, "%s", sub_id ? sub_id : "");
    if (!key[0]) {
        unsigned char r[16];
        randombytes_buf(r, sizeof r);
        memcpy(out, "post:", 5);
        sodium_bin2hex(out + 5, 33, r, sizeof r);
        return SB_OK;
    }
    char *fields = json_dumps(f->fields, JSON_COMPACT | JSON_SORT_KEYS);
    char *files = json_dumps(f->digests, JSON_COMPACT | JSON_SORT_KEYS);
    if (!fields || !files) {
        free(fields);
        free(files);
        return SB_ERR_NOMEM;
    }
    crypto_hash_sha256_state st;
    unsigned char h[32];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)key, strlen(key) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)fields, strlen(fields) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)files, strlen(files));
    crypto_hash_sha256_final(&st, h);
    free(fields);
    free(files);
    memcpy(out, "idem:", 5);
    sodium_bin2hex(out + 5, 65, h, sizeof h);
    return SB_OK;
}

static int build(struct sb_channel *ch, const struct sb_http_request *req, struct form *f,
                 int keep_raw, struct sb_inbound_batch *out)
{
    struct sb_inbound *in = f->in;
    const char *hp = sb_channel_conf(ch, "honeypot_field");
    if (!hp)
        hp = "website";
    json_t *trap = *hp ? json_object_get(f->fields, hp) : NULL;
    if (trap && !blank(trap)) {
        sb_debug("webform", "channel %lld: honeypot '%s' filled by %s; dropped", (long long)ch->id,
                 hp, req->peer);
        return SB_OK; /* nothing added: the caller answers as usual and counts it */
    }
    int anything = f->nfiles > 0 || json_array_size(f->dropped) > 0;
    const char *k;
    json_t *v;
    json_object_foreach(f->fields, k, v)
    {
        if (strcmp(k, hp) != 0 && !blank(v))
            anything = 1;
    }
    if (!anything)
        return sb_fail(f->err, f->errlen, SB_ERR_INVALID, "the form is empty");

    char map[F__COUNT][NAME_MAX_BYTES + 1];
    field_map(ch, map);
    json_t *form = json_object(), *source = json_object(), *contact = json_object();
    json_t *meta =
        json_pack("{s:o,s:o,s:o}", "form", form, "lead_source", source, "contact", contact);
    in->meta = meta;
    if (!meta)
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");

    const char *val[F__COUNT] = {0};
    for (int i = 0; i < F__COUNT; i++) {
        json_t *fv = json_object_get(f->fields, map[i]);
        if (!fv)
            continue;
        val[i] = first_value(in, fv);
        if (i != F_MESSAGE && !blank(fv))
            json_object_set(contact, our_fields[i], fv);
    }
    int rc = SB_OK;
    json_t *phones = json_object_get(f->fields, map[F_PHONE]);
    json_t *emails = json_object_get(f->fields, map[F_EMAIL]);
    if (phones)
        rc = add_identities(in, SB_ID_PHONE, phones);
    if (rc == SB_OK && emails)
        rc = add_identities(in, SB_ID_EMAIL, emails);
    if (rc != SB_OK)
        return sb_fail(f->err, f->errlen, rc, "out of memory");

    const char *sub_id = NULL;
    json_object_foreach(f->fields, k, v)
    {
        int mapped = 0;
        for (int i = 0; i < F__COUNT && !mapped; i++)
            mapped = !strcmp(k, map[i]);
        if (mapped || !strcmp(k, hp) || !strcmp(k, "_charset_"))
            continue;
        if (!strcmp(k, "submission_id"))
            sub_id = first_value(in, v);
        else if (is_lead_source(k))
            json_object_set(source, k, v);
        else
            json_object_set(form, k, v);
    }
    if (sub_id)
        json_object_set_new(meta, "submission_id", json_string(sub_id));
    /* utm_* on the action URL too ("/forms/KEY?utm_source=…"); fields win. */
    for (const char *q = req->query; *q; q += strlen(q) + 1) {
        const char *eq = strchr(q, '=');
        char name[NAME_MAX_BYTES + 1];
        if (!eq || (size_t)(eq - q) > NAME_MAX_BYTES)
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(eq - q), q);
        if (is_lead_source(name) && !json_object_get(source, name) &&
            utf8_valid((const unsigned char *)eq + 1, strlen(eq + 1)))
            set_if(source, name, eq + 1);
    }
    if (!json_object_size(form))
        json_object_del(meta, "form");
    if (!json_object_size(source))
        json_object_del(meta, "lead_source");
    if (!json_object_size(contact))
        json_object_del(meta, "contact");
    json_t *request = json_object();
    set_if(request, "ip", req->peer);
    if (utf8_valid((const unsigned char *)req->user_agent, strlen(req->user_agent)))
        set_if(request, "user_agent", req->user_agent);
    if (utf8_valid((const unsigned char *)req->origin, strlen(req->origin)))
        set_if(request, "origin", req->origin);
    json_object_set_new(meta, "request", request);
    if (json_array_size(f->dropped))
        json_object_set(meta, "dropped_files", f->dropped);

    char ext[70];
    if (external_id(f, req, sub_id, ext) != SB_OK)
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");
    in->external_id = sb_inbound_strdup(in, ext);
    in->channel_id = ch->id;
    in->kind = SB_IK_FORM;
    in->direction = SB_DIR_IN;
    in->region = sb_inbound_strdup(in, sb_channel_conf(ch, "default_region"));
    /* Columns hold 255 (names) and 512 (sender) characters; the whole
     * values stay in meta.contact. */
    if (val[F_NAME])
        in->display_name = sb_inbound_strndup(in, val[F_NAME], utf8_cut(val[F_NAME], 255));
    in->text = val[F_MESSAGE];
    in->subject = sb_inbound_strdup(in, ch->name);
    char sender[520];
    const char *who = val[F_NAME] ? val[F_NAME] : val[F_EMAIL] ? val[F_EMAIL] : val[F_PHONE];
    if (val[F_NAME] && val[F_EMAIL])
        snprintf(sender, sizeof sender, "%.*s <%.*s>", (int)utf8_cut(val[F_NAME], 200), val[F_NAME],
                 (int)utf8_cut(val[F_EMAIL], 300), val[F_EMAIL]);
    else
        snprintf(sender, sizeof sender, "%.*s", who ? (int)utf8_cut(who, 500) : 0, who ? who : "");
    in->sender = sender[0] ? sb_inbound_strdup(in, sender) : NULL;
    if (keep_raw) {
        in->raw = sb_inbound_memdup(in, req->body, req->body_len);
        in->raw_len = in->raw ? req->body_len : 0;
    }
    if (!in->external_id || (ch->name[0] && !in->subject))
        return sb_fail(f->err, f->errlen, SB_ERR_NOMEM, "out of memory");
    f->in = NULL; /* the batch owns it now */
    return sb_inbound_batch_add(out, in);
}

static int media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    while (*ct == ' ')
        ct++;
    return !strncasecmp(ct, type, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int on_webhook(struct sb_channel *ch, const struct sb_http_request *req,
                      struct sb_inbound_batch *out, struct sb_http_reply *reply, char *err,
                      size_t errlen)
{
    (void)reply;
    /* Forms come in through /forms/{public_key}, which rate-limits and
     * answers browsers; the generic /hooks/{kind}/{id} would bypass both. */
    if (strncmp(req->path, "/forms/", 7) != 0)
        return sb_fail(err, errlen, SB_ERR_FORBIDDEN,
                       "forms post to /forms/{public_key}, not to /hooks/");
    struct form f = {.fields = json_object(),
                     .dropped = json_array(),
                     .digests = json_object(),
                     .in = sb_inbound_new(),
                     .err = err,
                     .errlen = errlen};
    const char *mfs = sb_channel_conf(ch, "max_file_size");
    if (!mfs || parse_size(mfs, &f.max_file) != 0 || f.max_file > SB_FORM_FILE_MAX)
        f.max_file = SB_FORM_FILE_MAX;
    int rc;
    const char *body = req->body ? req->body : "";
    const char *ct = req->content_type;
    size_t i = 0;
    while (i < req->body_len && is_space((unsigned char)body[i]))
        i++;
    if (!f.fields || !f.dropped || !f.digests || !f.in)
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    else if (media_is(ct, "application/x-www-form-urlencoded"))
        rc = parse_urlencoded(&f, body, req->body_len);
    else if (media_is(ct, "multipart/form-data"))
        rc = parse_multipart(&f, ct, body, req->body_len);
    else if (media_is(ct, "application/json") ||
             (media_is(ct, "text/plain") && i < req->body_len && body[i] == '{'))
        rc = parse_json(&f, body, req->body_len);
    else
        rc = sb_fail(err, errlen, SB_ERR_UNSUPPORTED_MEDIA,
                     "a form posts application/x-www-form-urlencoded, multipart/form-data or "
                     "application/json");
    if (rc == SB_OK)
        /* Multipart bodies are not kept raw: every field is in meta and every
         * file an attachment, and the file would be stored twice. */
        rc = build(ch, req, &f, !media_is(ct, "multipart/form-data"), out);
    /* The message is stored with a quarantined body: keep it valid UTF-8. */
    if (rc != SB_OK && !utf8_valid((const unsigned char *)err, strlen(err)))
        snprintf(err, errlen, "the body cannot be read as a form");
    sb_inbound_free(&f.in);
    json_decref(f.fields);
    json_decref(f.dropped);
    json_decref(f.digests);
    return rc;
}

/* `switchboard channel test`: nothing remote to ask; say where forms post. */
static int test(struct sb_channel *ch, char *msg, size_t msglen)
{
    const char *origins = sb_channel_conf(ch, "allowed_origins");
    const char *redirect = sb_channel_conf(ch, "redirect_url");
    snprintf(msg, msglen, "ok: forms post to /forms/%s; CORS for %s; browsers go to %s",
             ch->public_key, origins && *origins ? origins : "no origin",
             redirect ? redirect : "a built-in thank-you page");
    return SB_OK;
}

const struct sb_channel_kind sb_channel_webform = {
    .name = "webform",
    .flags = 0, /* not SB_CH_WEBHOOK: its own route, /forms/{public_key} */
    .secret_keys = NULL,
    .validate_config = validate,
    .on_webhook = on_webhook,
    .test = test,
};
