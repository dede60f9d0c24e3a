/* `import clients`: a CSV or vCard file becomes clients, identities and
 * tags, recognised by the same rules as ingest (see import.h).
 *
 * DESIGN
 * The file is read once to decide its encoding (a UTF-8 BOM is skipped; a
 * UTF-16 BOM selects UTF-16; bytes that are not valid UTF-8 anywhere mean a
 * Russian Excel export in windows-1251), then streamed through iconv into
 * one parser:
 *
 *   source  (struct src)   decoded UTF-8, every line ending as '\n', the
 *                          physical line number of the next character, and
 *                          a push-back buffer for the look-ahead the format
 *                          and delimiter detection need.
 *   parser  csv_*, vc_*    records → struct row: name, company, raw
 *                          identities, tags, custom fields; the line where
 *                          the record starts.
 *   check   row_finish()   identities normalised with identity.h; a row
 *                          with neither a name nor a valid identity is
 *                          skipped and reported; invalid values are kept
 *                          raw and unverified, with a warning.
 *   write   flush()        SB_IMPORT_BATCH rows per transaction, resolved
 *                          as ingest resolves them (write_row()); a lost
 *                          race (deadlock, a concurrent creator of the same
 *                          identity) rolls the batch back and runs it again.
 *                          A row the database refuses sends the batch round
 *                          again one row per transaction, so that only that
 *                          row is skipped.
 *
 * Re-importing must create nothing. Verified identities make that so; a row
 * with only a name (or a name and values that did not normalise) has no key,
 * so it matches a client with the same name and the same raw value (or, for
 * a bare name, a client of that name without any identity). Two people with
 * one name and no contact details cannot be told apart anyway.
 *
 * A dry run parses and checks the same way and looks identities up without
 * writing; rows of the file that share an identity count once, as they
 * would in a real run. */
#include "switchboard/import.h"
#include "switchboard/arena.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/events.h"
#include "switchboard/identity.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attempts for a batch that keeps losing races, as in ingest. */
#define IMPORT_RETRIES 8

/* Bytes read from the file at a time. */
#define CHUNK 65536

/* Column widths of the schema (characters, utf8mb4). */
#define NAME_CHARS 255
#define RAW_CHARS  512
#define TAG_CHARS  100

/* -- name: identity-owner */
static const char q_owner[] =
    "SELECT client_id FROM client_identities WHERE kind = ? AND value = ?";

/* -- name: import-client-by-name
 * A row with a name and no identity at all matches the oldest live client
 * of that name that has no identity either (see DESIGN). */
static const char q_by_name_bare[] =
    "SELECT c.id FROM clients c WHERE c.name = ? AND c.merged_into IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM client_identities i WHERE i.client_id = c.id) "
    "ORDER BY c.id LIMIT 1";

/* -- name: import-client-by-name-and-raw
 * A row with a name and only unverified values matches a client of that name
 * holding the first of them, unverified and byte for byte. */
static const char q_by_name_raw[] =
    "SELECT c.id FROM client_identities i JOIN clients c ON c.id = i.client_id "
    "WHERE i.kind = ? AND i.value IS NULL AND i.raw = ? AND c.name = ? "
    "AND c.merged_into IS NULL ORDER BY c.id LIMIT 1";

/* -- name: identity-insert */
static const char q_identity_insert[] =
    "INSERT INTO client_identities (client_id, kind, value, raw, verified, display_name) "
    "VALUES (?, ?, ?, ?, ?, ?)";

/* -- name: identity-unverified-exists
 * Unverified identities have no unique key (value is NULL): look first, so
 * that importing a file again does not pile up copies. */
static const char q_unverified_exists[] =
    "SELECT 1 FROM client_identities WHERE client_id = ? AND kind = ? AND value IS NULL "
    "AND raw = ? LIMIT 1";

/* -- name: import-client-insert */
static const char q_client_insert[] =
    "INSERT INTO clients (name, company, custom_fields) VALUES (?, ?, ?)";

/* -- name: import-client-lock
 * Read what the client has under a row lock, so that filling gaps cannot
 * overwrite what an agent or a concurrent ingest writes meanwhile. */
static const char q_client_lock[] =
    "SELECT name, company, custom_fields FROM clients WHERE id = ? FOR UPDATE";

/* -- name: import-client-update */
static const char q_client_update[] =
    "UPDATE clients SET name = ?, company = ?, custom_fields = ? WHERE id = ?";

/* -- name: client-tag-add
 * Tags compare case-insensitively (the column's collation): "VIP" and "vip"
 * are one tag, and the first spelling stays. */
static const char q_tag_insert[] = "INSERT IGNORE INTO client_tags (client_id, tag) VALUES (?, ?)";

/* -- name: merge-suggest (as in ingest) */
static const char q_merge_suggest[] =
    "INSERT IGNORE INTO merge_suggestions (client_id, other_client_id, reason) VALUES (?, ?, ?)";

/* -- name: channel-default-region */
static const char q_channel_region[] =
    "SELECT JSON_UNQUOTE(JSON_EXTRACT(config, '$.default_region')) FROM channels WHERE id = ?";

/* -- Buffers ------------------------------------------------------------- */

/* A growable byte string, always NUL-terminated once anything was put. */
struct buf {
    char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_putc(struct buf *b, int c)
{
    char ch = (char)c;
    return buf_put(b, &ch, 1);
}

static void buf_clear(struct buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* A set of strings (dry run: identities seen earlier in the file). */
struct strset {
    char **slots;
    size_t cap, n;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int strset_has(const struct strset *set, const char *key)
{
    if (!set->cap)
        return 0;
    for (size_t i = fnv1a(key) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slots[i])
            return 0;
        if (!strcmp(set->slots[i], key))
            return 1;
    }
}

static int strset_insert(char **slots, size_t cap, char *key)
{
    size_t i = fnv1a(key) & (cap - 1);
    while (slots[i]) {
        if (!strcmp(slots[i], key))
            return 0;
        i = (i + 1) & (cap - 1);
    }
    slots[i] = key;
    return 1;
}

static int strset_add(struct strset *set, const char *key)
{
    if (strset_has(set, key))
        return 0;
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        char **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slots[i])
                strset_insert(slots, cap, set->slots[i]);
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    char *copy = strdup(key);
    if (!copy)
        return -1;
    strset_insert(set->slots, set->cap, copy);
    set->n++;
    return 0;
}

static void strset_free(struct strset *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    memset(set, 0, sizeof *set);
}

/* -- UTF-8 --------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (n bytes there): >0 its
 * length, 0 cut short by the end of the bytes, -1 malformed. */
static int utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c == 0xE0)
        len = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        len = 3;
    else if (c == 0xED)
        len = 3, hi = 0x9F; /* no surrogates */
    else if (c == 0xF0)
        len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        len = 4;
    else if (c == 0xF4)
        len = 4, hi = 0x8F;
    else
        return -1;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return 0;
        unsigned b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            return -1;
    }
    return len;
}

static int utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k <= 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Copy `s` into `out` with every malformed byte replaced by U+FFFD, so that
 * text from a vCard property in an unexpected charset still stores. */
static int utf8_sanitize(const char *s, size_t n, struct buf *out)
{
    buf_clear(out);
    for (size_t i = 0; i < n;) {
        int k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k <= 0) {
            if (buf_put(out, "\xEF\xBF\xBD", 3) != 0)
                return -1;
            i++;
        } else {
            if (buf_put(out, s + i, (size_t)k) != 0)
                return -1;
            i += (size_t)k;
        }
    }
    return buf_put(out, "", 0);
}

/* Bytes of the first `chars` characters of s[0..n). */
static size_t utf8_prefix(const char *s, size_t n, size_t chars)
{
    size_t i = 0;
    while (i < n && chars > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars--;
    }
    return i;
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Drop an incomplete sequence at the end (a field cut at its cap). */
static void utf8_fix_tail(struct buf *b)
{
    size_t i = b->len, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)b->p[i - 1] & 0xC0) == 0x80)
        i--, back++;
    if (i > 0 && (unsigned char)b->p[i - 1] >= 0xC0) {
        if (utf8_seq((unsigned char *)b->p + i - 1, b->len - i + 1) <= 0) {
            b->len = i - 1;
            b->p[b->len] = '\0';
        }
    }
}

/* Trim ASCII white space and no-break spaces (Excel puts U+00A0 in numbers). */
static void trim(const char **s, size_t *n)
{
    const char *p = *s;
    size_t len = *n;
    for (;;) {
        if (len && isspace((unsigned char)p[0]))
            p++, len--;
        else if (len >= 2 && (unsigned char)p[0] == 0xC2 && (unsigned char)p[1] == 0xA0)
            p += 2, len -= 2;
        else
            break;
    }
    for (;;) {
        if (len && isspace((unsigned char)p[len - 1]))
            len--;
        else if (len >= 2 && (unsigned char)p[len - 2] == 0xC2 && (unsigned char)p[len - 1] == 0xA0)
            len -= 2;
        else
            break;
    }
    *s = p;
    *n = len;
}

/* -- Source: decoded text with line numbers ------------------------------- */

#define NO_PEEK (-2)

struct src {
    FILE *f;
    iconv_t cd;      /* (iconv_t)-1: the bytes are UTF-8 already */
    size_t unit;     /* bytes skipped on an undecodable unit */
    char raw[CHUNK]; /* read, not yet converted */
    size_t rawlen;
    char out[4 * CHUNK]; /* converted: at most 3 bytes per windows-1251 byte */
    size_t pos, len;
    struct buf back; /* pushed back, read before the file */
    size_t backpos;
    uint64_t consumed; /* bytes of the file read */
    int eof, ioerr;
    int pending_cr;     /* the last '\n' was a '\r': a '\n' right after it is the same end */
    int peeked;         /* a character read ahead, or NO_PEEK */
    unsigned long line; /* physical line of the next character */
};

static int src_fill(struct src *s)
{
    while (s->pos >= s->len) {
        s->pos = s->len = 0;
        if (!s->eof && s->rawlen < sizeof s->raw) {
            size_t n = fread(s->raw + s->rawlen, 1, sizeof s->raw - s->rawlen, s->f);
            if (n == 0) {
                if (ferror(s->f))
                    s->ioerr = errno ? errno : EIO;
                s->eof = 1;
            }
            s->rawlen += n;
            s->consumed += n;
        }
        if (s->rawlen == 0)
            return -1;
        if (s->cd == (iconv_t)-1) {
            memcpy(s->out, s->raw, s->rawlen);
            s->len = s->rawlen;
            s->rawlen = 0;
            continue;
        }
        char *ip = s->raw, *op = s->out;
        size_t il = s->rawlen, ol = sizeof s->out;
        while (il > 0) {
            if (iconv(s->cd, &ip, &il, &op, &ol) != (size_t)-1 || errno == E2BIG)
                break;
            if (errno == EINVAL && !s->eof)
                break; /* a unit split by the chunk: wait for the rest */
            /* Undecodable (or cut short at the end): one replacement
             * character per unit, and go on. */
            if (ol < 3)
                break;
            memcpy(op, "\xEF\xBF\xBD", 3);
            op += 3, ol -= 3;
            size_t skip = s->unit < il ? s->unit : il;
            ip += skip, il -= skip;
        }
        s->len = (size_t)(op - s->out);
        memmove(s->raw, ip, il);
        s->rawlen = il;
        if (s->len == 0 && s->eof)
            s->rawlen = 0; /* nothing more can come of these bytes */
    }
    return 0;
}

static int src_byte(struct src *s)
{
    for (;;) {
        if (s->pos >= s->len && src_fill(s) != 0)
            return -1;
        int c = (unsigned char)s->out[s->pos++];
        if (c != 0) /* NUL bytes would cut C strings short; they carry nothing */
            return c;
    }
}

/* The next character, every line ending ("\r\n", "\n", "\r") as '\n';
 * -1 at the end. */
static int src_getc(struct src *s)
{
    int c;
    if (s->peeked != NO_PEEK) {
        c = s->peeked;
        s->peeked = NO_PEEK;
        return c;
    }
    if (s->backpos < s->back.len) {
        c = (unsigned char)s->back.p[s->backpos++];
    } else {
        c = src_byte(s);
        if (c == '\n' && s->pending_cr)
            c = src_byte(s);
        s->pending_cr = c == '\r';
        if (c == '\r')
            c = '\n';
    }
    if (c == '\n')
        s->line++;
    return c;
}

static int src_peek(struct src *s)
{
    if (s->peeked == NO_PEEK)
        s->peeked = src_getc(s);
    return s->peeked;
}

/* The line of the next character to be read. */
static unsigned long src_line(const struct src *s)
{
    return s->line - (s->peeked == '\n');
}

/* Put text read from here back in front, and the line counter back to
 * where it started. Nothing may be peeked. */
static int src_unread(struct src *s, const char *p, size_t n, unsigned long line)
{
    struct buf b = {0};
    if (buf_put(&b, p, n) != 0 ||
        buf_put(&b, s->back.p ? s->back.p + s->backpos : "", s->back.len - s->backpos) != 0) {
        buf_free(&b);
        return -1;
    }
    buf_free(&s->back);
    s->back = b;
    s->backpos = 0;
    s->line = line;
    return 0;
}

/* Decide the encoding: a BOM says it; else the whole file is checked for
 * UTF-8, and bytes that are not UTF-8 mean windows-1251 (what Excel writes
 * for "CSV" on a Russian Windows). */
static int detect_encoding(FILE *f, const char **enc_r, long *skip_r, char *err, size_t errlen)
{
    unsigned char *b = malloc(CHUNK + 4);
    if (!b)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    *enc_r = "UTF-8";
    *skip_r = 0;
    size_t n = fread(b, 1, CHUNK, f);
    if (n >= 2 && b[0] == 0xFF && b[1] == 0xFE) {
        *enc_r = "UTF-16LE", *skip_r = 2;
    } else if (n >= 2 && b[0] == 0xFE && b[1] == 0xFF) {
        *enc_r = "UTF-16BE", *skip_r = 2;
    } else if (n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF) {
        *skip_r = 3;
    } else if (n >= 64) {
        /* UTF-16 without a BOM: a third of the bytes or more are NUL, and
         * (for Latin and Cyrillic text) nearly all on one side. */
        size_t even = 0, odd = 0;
        for (size_t i = 0; i < n; i++)
            if (!b[i])
                *(i & 1 ? &odd : &even) += 1;
        if ((even + odd) * 3 >= n && (odd > 4 * even || even > 4 * odd)) {
            *enc_r = odd > even ? "UTF-16LE" : "UTF-16BE";
        }
    }
    int rc = SB_OK;
    if (!strcmp(*enc_r, "UTF-8")) {
        size_t start = (size_t)*skip_r, carry = 0;
        int bad = 0;
        for (;;) {
            size_t len = carry + n - start, i = 0;
            memmove(b + carry, b + start, n - start);
            while (i < len && !bad) {
                if (b[i] < 0x80) {
                    i++;
                    continue;
                }
                int k = utf8_seq(b + i, len - i);
                if (k < 0)
                    bad = 1;
                else if (k == 0)
                    break; /* continues in the next chunk */
                else
                    i += (size_t)k;
            }
            if (bad)
                break;
            carry = len - i;
            memmove(b, b + i, carry);
            n = fread(b + carry, 1, CHUNK, f);
            start = carry;
            if (n == 0) {
                bad = carry > 0; /* cut in the middle of a character */
                break;
            }
            n += carry;
        }
        if (bad)
            *enc_r = "windows-1251";
    }
    if (ferror(f))
        rc = sb_fail(err, errlen, SB_ERR_IO, "cannot read the file: %s", strerror(errno));
    free(b);
    return rc;
}

/* -- Rows ---------------------------------------------------------------- */

struct rid {
    enum sb_identity_kind kind;
    const char *raw;
    const char *value; /* normalised; NULL: unverified */
    const char *why;   /* why it did not normalise */
    int64_t owner;
};

struct row {
    unsigned long line;
    const char *name, *company;
    const char *first, *middle, *last;
    struct rid ids[SB_IMPORT_IDS_MAX];
    size_t nids, dropped_ids;
    const char *tags[SB_IMPORT_TAGS_MAX];
    size_t ntags;
    json_t *fields; /* custom fields, or NULL */
    int warned;
};

struct imp {
    struct sb_db *db;
    const struct sb_import_options *opt;
    struct sb_import_result *res;
    uint64_t file_size;
    struct src src;
    struct sb_arena arena;
    struct row rows[SB_IMPORT_BATCH];
    size_t nrows;
    struct strset seen; /* dry run */
    struct buf tmp, tmp2;
};

static void report(struct imp *im, unsigned long line, int warning, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(struct imp *im, unsigned long line, int warning, const char *fmt, ...)
{
    if (!im->opt->problem)
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    im->opt->problem(im->opt->arg, line, warning, msg);
}

static void row_warn(struct imp *im, struct row *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_warn(struct imp *im, struct row *r, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(im, r->line, 1, "%s", msg);
    r->warned = 1;
}

static void row_invalid(struct imp *im, struct row *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_invalid(struct imp *im, struct row *r, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(im, r->line, 0, "%s", msg);
    im->res->invalid++;
    if (im->res->ninvalid_lines < SB_IMPORT_LINES_KEPT)
        im->res->invalid_lines[im->res->ninvalid_lines++] = r->line;
}

/* The next free row of the batch, cleared. */
static struct row *row_begin(struct imp *im, unsigned long line)
{
    struct row *r = &im->rows[im->nrows];
    memset(r, 0, sizeof *r);
    r->line = line;
    return r;
}

static void row_discard(struct row *r)
{
    json_decref(r->fields);
    r->fields = NULL;
}

/* A copy in the arena, trimmed, cut to `chars` characters; control
 * characters (a newline in a quoted cell) become spaces when `flat`. NULL
 * for an empty value; *nomem set when out of memory. */
static const char *row_text(struct imp *im, const char *s, size_t n, size_t chars, int flat,
                            int *nomem)
{
    trim(&s, &n);
    if (!n)
        return NULL;
    n = utf8_prefix(s, n, chars);
    char *d = sb_arena_strndup(&im->arena, s, n);
    if (!d) {
        *nomem = 1;
        return NULL;
    }
    if (flat)
        for (char *p = d; *p; p++)
            if ((unsigned char)*p < 0x20)
                *p = ' ';
    return d;
}

static int row_set(struct imp *im, const char **slot, const char *s, size_t n)
{
    if (*slot)
        return SB_OK; /* the first non-empty column of a kind wins */
    int nomem = 0;
    *slot = row_text(im, s, n, NAME_CHARS, 1, &nomem);
    return nomem ? SB_ERR_NOMEM : SB_OK;
}

static int row_add_id(struct imp *im, struct row *r, enum sb_identity_kind kind, const char *s,
                      size_t n)
{
    trim(&s, &n);
    if (!n)
        return SB_OK;
    if (r->nids == SB_IMPORT_IDS_MAX) {
        r->dropped_ids++;
        return SB_OK;
    }
    int nomem = 0;
    const char *raw = row_text(im, s, n, RAW_CHARS, 1, &nomem);
    if (nomem)
        return SB_ERR_NOMEM;
    r->ids[r->nids++] = (struct rid){.kind = kind, .raw = raw};
    return SB_OK;
}

/* Several values in one cell: "a@x.ru; b@y.ru", "+7 916 …, 8 495 …". */
static int row_add_ids(struct imp *im, struct row *r, enum sb_identity_kind kind, const char *s,
                       size_t n)
{
    /* E-mail addresses hold no spaces, so a space separates them too,
     * unless the cell has "Name <address>" forms. */
    const char *seps = kind == SB_ID_EMAIL && !memchr(s, '<', n) ? ",;\n\t " : ",;\n";
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !strchr(seps, s[i]))
            continue;
        int rc = row_add_id(im, r, kind, s + start, i - start);
        if (rc != SB_OK)
            return rc;
        start = i + 1;
    }
    return SB_OK;
}

static int row_add_tag(struct imp *im, struct row *r, const char *s, size_t n)
{
    trim(&s, &n);
    if (!n)
        return SB_OK;
    if (utf8_chars(s, n) > TAG_CHARS) {
        row_warn(im, r, "tag '%.40s…' is longer than %d characters; left out", s, TAG_CHARS);
        return SB_OK;
    }
    for (size_t i = 0; i < r->ntags; i++)
        if (strlen(r->tags[i]) == n && !strncasecmp(r->tags[i], s, n))
            return SB_OK;
    if (r->ntags == SB_IMPORT_TAGS_MAX) {
        row_warn(im, r, "more than %d tags; the rest were left out", SB_IMPORT_TAGS_MAX);
        return SB_OK;
    }
    int nomem = 0;
    const char *t = row_text(im, s, n, TAG_CHARS, 1, &nomem);
    if (nomem)
        return SB_ERR_NOMEM;
    r->tags[r->ntags++] = t;
    return SB_OK;
}

/* "vip; kitchen" or "vip, kitchen": campaigns select on these. */
static int row_add_tags(struct imp *im, struct row *r, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',' && s[i] != ';' && s[i] != '\n')
            continue;
        int rc = row_add_tag(im, r, s + start, i - start);
        if (rc != SB_OK)
            return rc;
        start = i + 1;
    }
    return SB_OK;
}

static int row_set_field(struct imp *im, struct row *r, const char *key, const char *s, size_t n)
{
    (void)im;
    trim(&s, &n);
    if (!n)
        return SB_OK;
    if (!r->fields && !(r->fields = json_object()))
        return SB_ERR_NOMEM;
    if (json_object_get(r->fields, key))
        return SB_OK;
    json_t *v = json_stringn(s, n);
    if (!v) /* not UTF-8: the source is checked, so this is memory */
        return SB_ERR_NOMEM;
    return json_object_set_new(r->fields, key, v) == 0 ? SB_OK : SB_ERR_NOMEM;
}

/* Normalise the identities and decide whether the row can be imported;
 * report why not, or what was kept unverified. */
static int row_finish(struct imp *im, struct row *r, int *valid_r)
{
    *valid_r = 0;
    if (!r->name && (r->first || r->middle || r->last)) {
        buf_clear(&im->tmp);
        const char *parts[] = {r->first, r->middle, r->last};
        for (int i = 0; i < 3; i++) {
            if (!parts[i])
                continue;
            if ((im->tmp.len && buf_putc(&im->tmp, ' ')) ||
                buf_put(&im->tmp, parts[i], strlen(parts[i])))
                return SB_ERR_NOMEM;
        }
        int nomem = 0;
        r->name = row_text(im, im->tmp.p, im->tmp.len, NAME_CHARS, 1, &nomem);
        if (nomem)
            return SB_ERR_NOMEM;
    }
    size_t n = 0, verified = 0;
    const char *region = im->opt->region;
    for (size_t i = 0; i < r->nids; i++) {
        struct rid id = r->ids[i];
        char value[SB_EMAIL_MAX + 1], why[256] = "";
        if (sb_identity_normalize(id.kind, id.raw, region, value, sizeof value, why, sizeof why) ==
            SB_OK) {
            id.value = sb_arena_strndup(&im->arena, value, strlen(value));
            if (!id.value)
                return SB_ERR_NOMEM;
        } else {
            id.why = sb_arena_strndup(&im->arena, why, strlen(why));
            if (!id.why)
                return SB_ERR_NOMEM;
        }
        /* The same identity twice in a row (a phone in two columns) is one. */
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = r->ids[j].kind == id.kind && !r->ids[j].value == !id.value &&
                  !strcmp(id.value ? r->ids[j].value : r->ids[j].raw, id.value ? id.value : id.raw);
        if (dup)
            continue;
        r->ids[n++] = id;
        verified += id.value != NULL;
    }
    r->nids = n;
    if (!verified && !r->name) {
        const char *why = NULL;
        for (size_t i = 0; i < n && !why; i++)
            why = r->ids[i].why;
        if (why)
            row_invalid(im, r, "no name, and nothing valid to recognise the client by: %s", why);
        else
            row_invalid(im, r, "no name, e-mail, phone or messenger id");
        return SB_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (!r->ids[i].value)
            row_warn(im, r,
                     "%s (kept unverified: stored as given, never used to recognise the "
                     "client)",
                     r->ids[i].why);
    if (r->dropped_ids)
        row_warn(im, r, "more than %d identities; %zu left out", SB_IMPORT_IDS_MAX, r->dropped_ids);
    *valid_r = 1;
    return SB_OK;
}

/* -- Writing: the same resolution as ingest ------------------------------- */

static int add_identity(struct sb_db *db, int64_t client_id, const struct rid *id,
                        const char *display_name, int *added, char *err, size_t errlen)
{
    const char *kind = sb_identity_kind_name(id->kind);
    if (!id->value) {
        struct sb_db_val e[] = {SB_INT(client_id), SB_TEXT(kind), SB_TEXT(id->raw)};
        struct sb_db_rows r;
        int rc = sb_db_exec(db, q_unverified_exists, e, 3, &r, err, errlen);
        size_t exists = r.nrows;
        sb_db_rows_free(&r);
        if (rc != SB_OK || exists)
            return rc;
    }
    struct sb_db_val a[] = {SB_INT(client_id), SB_TEXT(kind),       SB_TEXT(id->value),
                            SB_TEXT(id->raw),  SB_INT(!!id->value), SB_TEXT(display_name)};
    int rc = sb_db_exec(db, q_identity_insert, a, 6, NULL, err, errlen);
    if (rc == SB_OK)
        *added = 1;
    /* Someone claimed it since our snapshot: run the batch again. */
    return rc == SB_ERR_EXISTS ? SB_ERR_RETRY : rc;
}

static int query_id(struct sb_db *db, const char *sql, const struct sb_db_val *a, size_t n,
                    int64_t *id_r, char *err, size_t errlen)
{
    struct sb_db_rows r;
    int rc = sb_db_exec(db, sql, a, n, &r, err, errlen);
    *id_r = rc == SB_OK && r.nrows ? sb_db_cell_int(&r, 0, 0) : 0;
    sb_db_rows_free(&r);
    return rc;
}

/* The client a row belongs to, 0 for a new one (see DESIGN). Fills owners. */
static int find_client(struct sb_db *db, struct row *r, int64_t *client_r, char *err, size_t errlen)
{
    int64_t winner = 0;
    int verified = 0;
    for (size_t i = 0; i < r->nids; i++) {
        struct rid *id = &r->ids[i];
        if (!id->value)
            continue;
        verified = 1;
        struct sb_db_val a[] = {SB_TEXT(sb_identity_kind_name(id->kind)), SB_TEXT(id->value)};
        int rc = query_id(db, q_owner, a, 2, &id->owner, err, errlen);
        if (rc != SB_OK)
            return rc;
        if (id->owner && (!winner || id->owner < winner))
            winner = id->owner;
    }
    if (!verified && r->name) {
        int rc;
        if (r->nids) {
            struct sb_db_val a[] = {SB_TEXT(sb_identity_kind_name(r->ids[0].kind)),
                                    SB_TEXT(r->ids[0].raw), SB_TEXT(r->name)};
            rc = query_id(db, q_by_name_raw, a, 3, &winner, err, errlen);
        } else {
            struct sb_db_val a[] = {SB_TEXT(r->name)};
            rc = query_id(db, q_by_name_bare, a, 1, &winner, err, errlen);
        }
        if (rc != SB_OK)
            return rc;
    }
    *client_r = winner;
    return SB_OK;
}

static json_t *event_data(const struct sb_import_options *opt, int64_t id, const char *name)
{
    json_t *d = json_pack("{s:I,s:s?,s:s}", "id", (json_int_t)id, "name", name, "source", "import");
    if (d && opt->channel_id)
        json_object_set_new(d, "channel_id", json_integer(opt->channel_id));
    return d;
}

static int add_tags(struct sb_db *db, int64_t client_id, const struct row *r, int *added, char *err,
                    size_t errlen)
{
    for (size_t i = 0; i < r->ntags; i++) {
        struct sb_db_val a[] = {SB_INT(client_id), SB_TEXT(r->tags[i])};
        struct sb_db_rows res;
        int rc = sb_db_exec(db, q_tag_insert, a, 2, &res, err, errlen);
        if (rc == SB_OK && res.affected)
            *added = 1;
        sb_db_rows_free(&res);
        if (rc != SB_OK)
            return rc;
    }
    return SB_OK;
}

static int create_client(struct imp *im, struct row *r, char *err, size_t errlen)
{
    struct sb_db *db = im->db;
    char *fields = r->fields ? json_dumps(r->fields, JSON_COMPACT) : NULL;
    if (r->fields && !fields)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    struct sb_db_val a[] = {SB_TEXT(r->name), SB_TEXT(r->company), SB_TEXT(fields ? fields : "{}")};
    struct sb_db_rows res;
    int rc = sb_db_exec(db, q_client_insert, a, 3, &res, err, errlen);
    free(fields);
    int64_t id = (int64_t)res.insert_id;
    sb_db_rows_free(&res);
    int added = 0;
    for (size_t i = 0; rc == SB_OK && i < r->nids; i++)
        rc = add_identity(db, id, &r->ids[i], r->name, &added, err, errlen);
    if (rc == SB_OK)
        rc = add_tags(db, id, r, &added, err, errlen);
    if (rc == SB_OK)
        rc = sb_event_append(db, "client.created", 0, id, 0, event_data(im->opt, id, r->name), err,
                             errlen);
    return rc;
}

/* Fill what the client lacks; *changed when anything was written. */
static int update_client(struct imp *im, struct row *r, int64_t id, char *err, size_t errlen)
{
    struct sb_db *db = im->db;
    struct sb_db_val a[] = {SB_INT(id)};
    struct sb_db_rows cur;
    int rc = sb_db_exec(db, q_client_lock, a, 1, &cur, err, errlen);
    if (rc != SB_OK || !cur.nrows) {
        sb_db_rows_free(&cur);
        return rc != SB_OK ? rc : SB_ERR_RETRY; /* deleted meanwhile: look again */
    }
    const char *name = sb_db_cell(&cur, 0, 0), *company = sb_db_cell(&cur, 0, 1);
    json_t *changed = json_array();
    json_t *fields = json_loads(sb_db_cell(&cur, 0, 2) ? sb_db_cell(&cur, 0, 2) : "{}", 0, NULL);
    int fields_changed = 0;
    if (r->name && (!name || !*name)) {
        name = r->name;
        json_array_append_new(changed, json_string("name"));
    }
    if (r->company && (!company || !*company)) {
        company = r->company;
        json_array_append_new(changed, json_string("company"));
    }
    /* Imported values fill gaps only: a key the client has keeps its value
     * (an agent may have corrected it). A damaged document is left alone. */
    if (r->fields && json_is_object(fields)) {
        const char *key;
        json_t *v;
        json_object_foreach(r->fields, key, v)
        {
            if (!json_object_get(fields, key)) {
                json_object_set(fields, key, v);
                fields_changed = 1;
            }
        }
        if (fields_changed)
            json_array_append_new(changed, json_string("custom_fields"));
    }
    if (json_array_size(changed)) {
        char *text = json_dumps(fields, JSON_COMPACT);
        const char *keep = fields_changed ? text : sb_db_cell(&cur, 0, 2);
        struct sb_db_val u[] = {SB_TEXT(name), SB_TEXT(company), SB_TEXT(keep), SB_INT(id)};
        rc = (fields_changed && !text) ? sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory")
                                       : sb_db_exec(db, q_client_update, u, 4, NULL, err, errlen);
        free(text);
    }
    json_decref(fields);

    int added_ids = 0, added_tags = 0;
    for (size_t i = 0; rc == SB_OK && i < r->nids; i++) {
        const struct rid *rid = &r->ids[i];
        if (rid->value && rid->owner == id)
            continue;
        if (rid->value && rid->owner) {
            /* Another client has it: leave it there and let a person decide
             * whether they are one (as ingest does). */
            char reason[400];
            snprintf(reason, sizeof reason, "both have %s %s", sb_identity_kind_name(rid->kind),
                     rid->value);
            struct sb_db_val m[] = {SB_INT(id), SB_INT(rid->owner), SB_TEXT(reason)};
            rc = sb_db_exec(db, q_merge_suggest, m, 3, NULL, err, errlen);
        } else {
            rc = add_identity(db, id, rid, r->name, &added_ids, err, errlen);
        }
    }
    if (rc == SB_OK)
        rc = add_tags(db, id, r, &added_tags, err, errlen);
    if (added_ids)
        json_array_append_new(changed, json_string("identities"));
    if (added_tags)
        json_array_append_new(changed, json_string("tags"));
    if (rc == SB_OK && json_array_size(changed)) {
        json_t *data = event_data(im->opt, id, name && *name ? name : NULL);
        json_object_set(data, "changed", changed);
        rc = sb_event_append(db, "client.updated", 0, id, 0, data, err, errlen);
    }
    json_decref(changed);
    sb_db_rows_free(&cur);
    return rc;
}

static int write_row(struct imp *im, struct row *r, int *created_r, char *err, size_t errlen)
{
    int64_t id;
    int rc = find_client(im->db, r, &id, err, errlen);
    if (rc != SB_OK)
        return rc;
    *created_r = id == 0;
    return id ? update_client(im, r, id, err, errlen) : create_client(im, r, err, errlen);
}

/* Rows [first, first + n) in one transaction, again when it loses a race. */
static int write_rows(struct imp *im, size_t first, size_t n, char *err, size_t errlen)
{
    int rc = SB_OK;
    for (int attempt = 0; attempt < IMPORT_RETRIES; attempt++) {
        char msg[512] = "";
        uint64_t created = 0;
        size_t i = first;
        rc = sb_db_begin(im->db, msg, sizeof msg);
        for (; rc == SB_OK && i < first + n; i++) {
            int c = 0;
            rc = write_row(im, &im->rows[i], &c, msg, sizeof msg);
            created += (uint64_t)c;
        }
        if (rc == SB_OK) {
            rc = sb_db_commit(im->db, msg, sizeof msg);
            if (rc == SB_OK) {
                im->res->created += created;
                im->res->matched += n - created;
                return SB_OK;
            }
        } else {
            sb_db_rollback(im->db);
        }
        if (rc == SB_ERR_EXISTS)
            rc = SB_ERR_RETRY; /* a concurrent writer stored the same thing first */
        if (rc != SB_ERR_RETRY)
            return sb_fail(err, errlen, rc, "%s", msg);
        usleep((useconds_t)(1000 + randombytes_uniform(4000) * (unsigned)(attempt + 1)));
    }
    return sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                   "the import kept conflicting with other writers; gave up after %d tries",
                   IMPORT_RETRIES);
}

/* Errors that concern one row's data, not the database as a whole. */
static int row_error(int rc)
{
    return rc == SB_ERR_INVALID || rc == SB_ERR_DB || rc == SB_ERR_TOO_LARGE;
}

static int write_batch(struct imp *im, char *err, size_t errlen)
{
    char msg[512] = "";
    int rc = write_rows(im, 0, im->nrows, msg, sizeof msg);
    if (rc == SB_OK || !row_error(rc))
        return rc == SB_OK ? SB_OK : sb_fail(err, errlen, rc, "%s", msg);
    /* One row is refused: write them one by one so only that one is lost. */
    for (size_t i = 0; i < im->nrows; i++) {
        char one[512] = "";
        rc = write_rows(im, i, 1, one, sizeof one);
        if (rc == SB_OK)
            continue;
        if (!row_error(rc))
            return sb_fail(err, errlen, rc, "%s", one);
        row_invalid(im, &im->rows[i], "the database refused the row: %s", one);
    }
    return SB_OK;
}

static int seen_key(struct imp *im, const char *a, const char *b, const char *c)
{
    buf_clear(&im->tmp2);
    if (buf_put(&im->tmp2, a, strlen(a)) || buf_putc(&im->tmp2, '\x1f') ||
        buf_put(&im->tmp2, b, strlen(b)) || buf_putc(&im->tmp2, '\x1f') ||
        buf_put(&im->tmp2, c ? c : "", c ? strlen(c) : 0))
        return -1;
    return 0;
}

/* Dry run: would the row find a client (in the database, or made by an
 * earlier row of the file)? Nothing is written. */
static int check_row(struct imp *im, struct row *r, int *created_r, char *err, size_t errlen)
{
    int known = 0, verified = 0;
    for (size_t i = 0; i < r->nids; i++) {
        const struct rid *id = &r->ids[i];
        if (!id->value)
            continue;
        verified = 1;
        if (seen_key(im, "id", sb_identity_kind_name(id->kind), id->value))
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        known |= strset_has(&im->seen, im->tmp2.p);
    }
    if (!verified && seen_key(im, "name", r->name, r->nids ? r->ids[0].raw : NULL))
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (!verified)
        known |= strset_has(&im->seen, im->tmp2.p);
    if (!known && im->db) {
        int64_t id;
        int rc = find_client(im->db, r, &id, err, errlen);
        if (rc != SB_OK)
            return rc;
        known = id != 0;
    }
    for (size_t i = 0; i < r->nids; i++)
        if (r->ids[i].value &&
            (seen_key(im, "id", sb_identity_kind_name(r->ids[i].kind), r->ids[i].value) ||
             strset_add(&im->seen, im->tmp2.p)))
            return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (!verified && (seen_key(im, "name", r->name, r->nids ? r->ids[0].raw : NULL) ||
                      strset_add(&im->seen, im->tmp2.p)))
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    *created_r = !known;
    return SB_OK;
}

/* Write (or check) the batch, then free it and tell the progress callback. */
static int flush(struct imp *im, char *err, size_t errlen)
{
    int rc = SB_OK;
    if (im->nrows && im->opt->dry_run) {
        for (size_t i = 0; rc == SB_OK && i < im->nrows; i++) {
            int created = 0;
            rc = check_row(im, &im->rows[i], &created, err, errlen);
            if (rc == SB_OK)
                *(created ? &im->res->created : &im->res->matched) += 1;
        }
    } else if (im->nrows) {
        rc = write_batch(im, err, errlen);
    }
    for (size_t i = 0; i < im->nrows; i++)
        row_discard(&im->rows[i]);
    im->nrows = 0;
    sb_arena_free(&im->arena);
    if (rc == SB_OK && im->opt->progress)
        im->opt->progress(im->opt->arg, im->src.consumed, im->file_size,
                          im->res->created + im->res->matched + im->res->invalid);
    return rc;
}

/* A parsed row: check it, keep it for the batch when valid. */
static int row_done(struct imp *im, struct row *r, char *err, size_t errlen)
{
    int valid;
    int rc = row_finish(im, r, &valid);
    if (rc != SB_OK) {
        row_discard(r);
        return sb_fail(err, errlen, rc, "out of memory");
    }
    if (r->warned)
        im->res->warnings++;
    if (!valid) {
        row_discard(r);
        return SB_OK;
    }
    im->nrows++;
    return im->nrows == SB_IMPORT_BATCH ? flush(im, err, errlen) : SB_OK;
}

/* -- CSV ----------------------------------------------------------------- */

enum col_role {
    COL_CUSTOM,
    COL_NAME,
    COL_NAME_OR_FIRST, /* "имя": the first name when there is a surname column */
    COL_FIRST,
    COL_MIDDLE,
    COL_LAST,
    COL_EMAIL,
    COL_PHONE,
    COL_COMPANY,
    COL_TAGS,
    COL_TELEGRAM,
    COL_WHATSAPP,
    COL_VIBER,
};

/* Header names as header_key() folds them: lower case, ё as е, without
 * spaces, punctuation and a trailing number ("E-mail 2" → "email"). */
static const struct {
    const char *key;
    enum col_role role;
} aliases[] = {
    {"name", COL_NAME},
    {"fullname", COL_NAME},
    {"displayname", COL_NAME},
    {"contact", COL_NAME},
    {"contactname", COL_NAME},
    {"clientname", COL_NAME},
    {"customername", COL_NAME},
    {"фио", COL_NAME},
    {"клиент", COL_NAME},
    {"контакт", COL_NAME},
    {"имяклиента", COL_NAME},
    {"полноеимя", COL_NAME},
    {"имя", COL_NAME_OR_FIRST},
    {"firstname", COL_FIRST},
    {"givenname", COL_FIRST},
    {"middlename", COL_MIDDLE},
    {"additionalname", COL_MIDDLE},
    {"отчество", COL_MIDDLE},
    {"lastname", COL_LAST},
    {"familyname", COL_LAST},
    {"surname", COL_LAST},
    {"фамилия", COL_LAST},
    {"email", COL_EMAIL},
    {"mail", COL_EMAIL},
    {"emailaddress", COL_EMAIL},
    {"emailvalue", COL_EMAIL},
    {"почта", COL_EMAIL},
    {"электроннаяпочта", COL_EMAIL},
    {"элпочта", COL_EMAIL},
    {"емейл", COL_EMAIL},
    {"имейл", COL_EMAIL},
    {"phone", COL_PHONE},
    {"phonenumber", COL_PHONE},
    {"phonevalue", COL_PHONE},
    {"tel", COL_PHONE},
    {"telephone", COL_PHONE},
    {"mobile", COL_PHONE},
    {"mobilephone", COL_PHONE},
    {"cell", COL_PHONE},
    {"телефон", COL_PHONE},
    {"тел", COL_PHONE},
    {"номертелефона", COL_PHONE},
    {"мобильный", COL_PHONE},
    {"мобильныйтелефон", COL_PHONE},
    {"сотовый", COL_PHONE},
    {"company", COL_COMPANY},
    {"companyname", COL_COMPANY},
    {"organization", COL_COMPANY},
    {"organisation", COL_COMPANY},
    {"org", COL_COMPANY},
    {"компания", COL_COMPANY},
    {"организация", COL_COMPANY},
    {"фирма", COL_COMPANY},
    {"tags", COL_TAGS},
    {"tag", COL_TAGS},
    {"labels", COL_TAGS},
    {"теги", COL_TAGS},
    {"тег", COL_TAGS},
    {"метки", COL_TAGS},
    {"telegram", COL_TELEGRAM},
    {"telegramid", COL_TELEGRAM},
    {"телеграм", COL_TELEGRAM},
    {"телеграмм", COL_TELEGRAM},
    {"whatsapp", COL_WHATSAPP},
    {"whatsappid", COL_WHATSAPP},
    {"ватсап", COL_WHATSAPP},
    {"вотсап", COL_WHATSAPP},
    {"viber", COL_VIBER},
    {"вайбер", COL_VIBER},
};

static void header_key(const char *s, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, n = strlen(s);
    while (*p && o + 5 < outlen) {
        unsigned c = p[0];
        if (c < 0x80) {
            if (isalnum(c))
                out[o++] = (char)tolower(c);
            p++;
            continue;
        }
        int k = utf8_seq(p, n - (size_t)(p - (const unsigned char *)s));
        if (k <= 0)
            break;
        if (k == 2 && (c == 0xD0 || c == 0xD1)) {
            unsigned cp = ((c & 0x1F) << 6) | (p[1] & 0x3F);
            if (cp >= 0x410 && cp <= 0x42F) /* А-Я */
                cp += 0x20;
            if (cp == 0x401 || cp == 0x451) /* Ё ё */
                cp = 0x435;
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (!(k == 2 && c == 0xC2)) { /* drop Latin-1 punctuation (NBSP, «») */
            memcpy(out + o, p, (size_t)k);
            o += (size_t)k;
        }
        p += k;
    }
    while (o && isdigit((unsigned char)out[o - 1]))
        o--;
    out[o] = '\0';
}

struct csv {
    char delim;
    struct buf fields[SB_IMPORT_COLUMNS_MAX];
    struct buf extra; /* fields beyond the cap */
    size_t nfields;
    size_t total;
    int too_long, unclosed, extra_values;
    unsigned long line;
};

static struct buf *csv_field_begin(struct csv *c)
{
    if (c->nfields < SB_IMPORT_COLUMNS_MAX) {
        struct buf *f = &c->fields[c->nfields++];
        buf_clear(f);
        return f;
    }
    c->nfields++;
    buf_clear(&c->extra);
    return &c->extra;
}

static int csv_append(struct csv *c, struct buf *f, int ch)
{
    if (f == &c->extra) {
        c->extra_values |= !isspace(ch);
        return 0;
    }
    if (f->len >= SB_IMPORT_FIELD_MAX || c->total >= SB_IMPORT_RECORD_MAX) {
        c->too_long = 1;
        return 0;
    }
    c->total++;
    return buf_putc(f, ch);
}

static int blank(const struct buf *f)
{
    for (size_t i = 0; i < f->len; i++)
        if (!isspace((unsigned char)f->p[i]))
            return 0;
    return 1;
}

/* One record (RFC 4180, leniently: a quote inside an unquoted field is
 * text, text after a closing quote is kept). 1 when read, 0 at the end,
 * -1 out of memory. */
static int csv_record(struct src *s, struct csv *c)
{
    int ch;
    do {
        c->line = src_line(s);
        ch = src_getc(s);
    } while (ch == '\n');
    if (ch < 0)
        return 0;
    c->nfields = 0;
    c->total = 0;
    c->too_long = c->unclosed = c->extra_values = 0;
    struct buf *f = csv_field_begin(c);
    int quoted = 0, after_quote = 0, rc = 0;
    for (; rc == 0; ch = src_getc(s)) {
        if (quoted) {
            if (ch < 0) {
                c->unclosed = 1;
                break;
            }
            if (ch == '"') {
                if (src_peek(s) == '"') {
                    src_getc(s);
                    rc = csv_append(c, f, '"');
                } else {
                    quoted = 0;
                    after_quote = 1;
                }
            } else {
                rc = csv_append(c, f, ch);
            }
            continue;
        }
        if (ch < 0 || ch == '\n')
            break;
        if (ch == c->delim) {
            if (f != &c->extra)
                utf8_fix_tail(f);
            f = csv_field_begin(c);
            after_quote = 0;
        } else if (ch == '"' && !after_quote && f != &c->extra && blank(f)) {
            buf_clear(f); /* spaces before an opening quote */
            quoted = 1;
        } else {
            rc = csv_append(c, f, ch);
        }
    }
    if (f != &c->extra)
        utf8_fix_tail(f);
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < c->nfields && i < SB_IMPORT_COLUMNS_MAX; i++)
        if (!c->fields[i].p && buf_put(&c->fields[i], "", 0) != 0)
            return -1;
    return 1;
}

/* Read the header line raw to choose the delimiter (the most frequent of
 * ',', ';' and tab outside quotes), then put it back for csv_record(). An
 * Excel "sep=;" line names it instead. */
static int csv_sniff(struct src *s, struct csv *c, char *err, size_t errlen)
{
    struct buf line = {0};
    int rc = SB_OK;
    for (int pass = 0; pass < 2; pass++) {
        int ch;
        unsigned long start;
        do {
            start = src_line(s);
            ch = src_getc(s);
        } while (ch == '\n');
        buf_clear(&line);
        size_t counts[3] = {0, 0, 0};
        int inq = 0;
        for (; ch >= 0 && (inq || ch != '\n'); ch = src_getc(s)) {
            if (ch == '"')
                inq = !inq;
            else if (!inq && ch == ',')
                counts[0]++;
            else if (!inq && ch == ';')
                counts[1]++;
            else if (!inq && ch == '\t')
                counts[2]++;
            if (line.len >= SB_IMPORT_RECORD_MAX) {
                rc = sb_fail(err, errlen, SB_ERR_INVALID,
                             "line %lu: the header row is longer than %d bytes (is this a CSV "
                             "file?)",
                             start, SB_IMPORT_RECORD_MAX);
                goto out;
            }
            if (buf_putc(&line, ch) != 0) {
                rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
                goto out;
            }
        }
        if (pass == 0 && line.len == 5 && !strncasecmp(line.p, "sep=", 4)) {
            c->delim = line.p[4];
            continue; /* the header is the next line */
        }
        if (!c->delim) {
            c->delim = ',';
            if (counts[1] > counts[0] && counts[1] >= counts[2])
                c->delim = ';';
            else if (counts[2] > counts[0] && counts[2] > counts[1])
                c->delim = '\t';
        }
        if (line.len && (buf_putc(&line, '\n') != 0 || src_unread(s, line.p, line.len, start)))
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        break;
    }
out:
    buf_free(&line);
    return rc;
}

static int parse_csv(struct imp *im, char *err, size_t errlen)
{
    struct csv *c = calloc(1, sizeof *c);
    char **keys = calloc(SB_IMPORT_COLUMNS_MAX, sizeof *keys);
    enum col_role roles[SB_IMPORT_COLUMNS_MAX];
    size_t ncols = 0;
    int rc = c && keys ? csv_sniff(&im->src, c, err, errlen)
                       : sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (rc != SB_OK)
        goto out;
    int got = csv_record(&im->src, c);
    if (got < 0) {
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (got == 0)
        goto out; /* an empty file: nothing to do */
    if (c->nfields > SB_IMPORT_COLUMNS_MAX) {
        rc = sb_fail(err, errlen, SB_ERR_INVALID, "the header has %zu columns; at most %d are read",
                     c->nfields, SB_IMPORT_COLUMNS_MAX);
        goto out;
    }
    if (c->unclosed) {
        rc = sb_fail(err, errlen, SB_ERR_INVALID,
                     "line %lu: a quote in the header row is never closed", c->line);
        goto out;
    }
    ncols = c->nfields;
    int have_last = 0, known = 0;
    for (size_t i = 0; i < ncols; i++) {
        const char *h = c->fields[i].p;
        size_t hn = c->fields[i].len;
        trim(&h, &hn);
        char label[64];
        if (!hn)
            snprintf(label, sizeof label, "column %zu", i + 1);
        if (!(keys[i] = hn ? strndup(h, hn) : strdup(label))) {
            rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
            goto out;
        }
        char key[256];
        header_key(keys[i], key, sizeof key);
        roles[i] = COL_CUSTOM;
        for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
            if (!strcmp(key, aliases[k].key))
                roles[i] = aliases[k].role;
        have_last |= roles[i] == COL_LAST;
    }
    for (size_t i = 0; i < ncols; i++) {
        if (roles[i] == COL_NAME_OR_FIRST)
            roles[i] = have_last ? COL_FIRST : COL_NAME;
        known |= roles[i] != COL_CUSTOM && roles[i] != COL_TAGS && roles[i] != COL_COMPANY;
    }
    if (!known) {
        char list[400] = "";
        for (size_t i = 0; i < ncols && strlen(list) < 300; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%.60s'", i ? ", " : "",
                     keys[i]);
        for (char *q = list; *q; q++) /* a binary file's "header" must not garble the terminal */
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = '?';
        rc = sb_fail(err, errlen, SB_ERR_INVALID,
                     "line %lu: no column for a name, e-mail, phone or messenger id in the header "
                     "(found %s; delimiter '%s')",
                     c->line, list, c->delim == '\t' ? "\\t" : (char[2]){c->delim, 0});
        goto out;
    }

    while (rc == SB_OK && (got = csv_record(&im->src, c)) > 0) {
        int empty = 1;
        for (size_t i = 0; i < c->nfields && i < SB_IMPORT_COLUMNS_MAX && empty; i++)
            empty = blank(&c->fields[i]);
        if (empty && !c->extra_values)
            continue;
        im->res->rows++;
        struct row *r = row_begin(im, c->line);
        if (c->unclosed) {
            row_invalid(im, r,
                        "a quoted field is never closed (the rest of the file was read "
                        "as part of this row)");
            continue;
        }
        if (c->too_long) {
            row_invalid(im, r, "a field is longer than %d bytes or the row longer than %d",
                        SB_IMPORT_FIELD_MAX, SB_IMPORT_RECORD_MAX);
            continue;
        }
        for (size_t i = 0; rc == SB_OK && i < c->nfields && i < ncols; i++) {
            const char *v = c->fields[i].p;
            size_t n = c->fields[i].len;
            switch (roles[i]) {
            case COL_NAME:
            case COL_NAME_OR_FIRST:
                rc = row_set(im, &r->name, v, n);
                break;
            case COL_FIRST:
                rc = row_set(im, &r->first, v, n);
                break;
            case COL_MIDDLE:
                rc = row_set(im, &r->middle, v, n);
                break;
            case COL_LAST:
                rc = row_set(im, &r->last, v, n);
                break;
            case COL_COMPANY:
                rc = row_set(im, &r->company, v, n);
                break;
            case COL_EMAIL:
                rc = row_add_ids(im, r, SB_ID_EMAIL, v, n);
                break;
            case COL_PHONE:
                rc = row_add_ids(im, r, SB_ID_PHONE, v, n);
                break;
            case COL_TELEGRAM:
                rc = row_add_ids(im, r, SB_ID_TELEGRAM, v, n);
                break;
            case COL_WHATSAPP:
                rc = row_add_ids(im, r, SB_ID_WHATSAPP, v, n);
                break;
            case COL_VIBER:
                rc = row_add_id(im, r, SB_ID_VIBER, v, n);
                break;
            case COL_TAGS:
                rc = row_add_tags(im, r, v, n);
                break;
            case COL_CUSTOM:
                rc = row_set_field(im, r, keys[i], v, n);
                break;
            }
        }
        if (rc != SB_OK) {
            row_discard(r);
            rc = sb_fail(err, errlen, rc, "out of memory");
            break;
        }
        int extra = c->extra_values;
        for (size_t i = ncols; i < c->nfields && i < SB_IMPORT_COLUMNS_MAX; i++)
            extra |= !blank(&c->fields[i]);
        if (extra)
            row_warn(im, r,
                     "the row has %zu fields, the header %zu; the values beyond were left out",
                     c->nfields, ncols);
        rc = row_done(im, r, err, errlen);
    }
    if (rc == SB_OK && got < 0)
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
out:
    if (c) {
        for (size_t i = 0; i < SB_IMPORT_COLUMNS_MAX; i++)
            buf_free(&c->fields[i]);
        buf_free(&c->extra);
    }
    for (size_t i = 0; keys && i < SB_IMPORT_COLUMNS_MAX; i++)
        free(keys[i]);
    free(keys);
    free(c);
    return rc;
}

/* -- vCard --------------------------------------------------------------- */

/* Is this (partial) content line quoted-printable? Looks at the part before
 * the value only. */
static int vc_is_qp(const struct buf *b)
{
    size_t end = 0;
    int inq = 0;
    while (end < b->len && (inq || b->p[end] != ':')) {
        inq ^= b->p[end] == '"';
        end++;
    }
    for (size_t i = 0; i + 16 <= end; i++)
        if (!strncasecmp(b->p + i, "QUOTED-PRINTABLE", 16))
            return 1;
    return 0;
}

/* One unfolded content line. 1 when read, 0 at the end, -1 out of memory. */
static int vc_line(struct src *s, struct buf *b, unsigned long *line_r, int *too_long)
{
    int ch;
    do {
        *line_r = src_line(s);
        ch = src_getc(s);
    } while (ch == '\n');
    if (ch < 0)
        return 0;
    buf_clear(b);
    *too_long = 0;
    for (; ch >= 0; ch = src_getc(s)) {
        if (ch == '\n') {
            int next = src_peek(s);
            int qp_soft = b->len && b->p[b->len - 1] == '=' && vc_is_qp(b);
            if (next == ' ' || next == '\t') { /* folded (RFC 6350 3.2) */
                src_getc(s);
                if (qp_soft)
                    b->p[--b->len] = '\0';
                continue;
            }
            if (qp_soft && next >= 0) { /* vCard 2.1 soft line break */
                b->p[--b->len] = '\0';
                continue;
            }
            break;
        }
        if (b->len >= SB_IMPORT_RECORD_MAX) {
            *too_long = 1;
            continue;
        }
        if (buf_putc(b, ch) != 0)
            return -1;
    }
    if (buf_put(b, "", 0) != 0)
        return -1;
    return 1;
}

struct vprop {
    char name[64];
    char charset[40];
    int qp, b64;
    const char *value;
    size_t vlen;
};

/* Split "group.NAME;PARAM=x;PARAM:value". -1 when there is no ':'. */
static int vc_parse(const char *line, size_t len, struct vprop *p)
{
    memset(p, 0, sizeof *p);
    size_t i = 0, n = 0;
    while (i < len && line[i] != ';' && line[i] != ':') {
        if (line[i] == '.')
            n = 0; /* a group prefix */
        else if (n + 1 < sizeof p->name)
            p->name[n++] = (char)toupper((unsigned char)line[i]);
        i++;
    }
    p->name[n] = '\0';
    while (i < len && line[i] == ';') {
        size_t start = ++i;
        int inq = 0;
        while (i < len && (inq || (line[i] != ';' && line[i] != ':'))) {
            inq ^= line[i] == '"';
            i++;
        }
        const char *prm = line + start;
        size_t plen = i - start;
        if ((plen == 16 && !strncasecmp(prm, "QUOTED-PRINTABLE", 16)) ||
            (plen == 25 && !strncasecmp(prm, "ENCODING=QUOTED-PRINTABLE", 25)))
            p->qp = 1;
        else if ((plen == 6 && !strncasecmp(prm, "BASE64", 6)) ||
                 (plen >= 10 && !strncasecmp(prm, "ENCODING=", 9) &&
                  (prm[9] == 'b' || prm[9] == 'B')))
            p->b64 = 1;
        else if (plen > 8 && !strncasecmp(prm, "CHARSET=", 8))
            snprintf(p->charset, sizeof p->charset, "%.*s", (int)(plen - 8), prm + 8);
    }
    if (i >= len || line[i] != ':')
        return -1;
    p->value = line + i + 1;
    p->vlen = len - i - 1;
    return 0;
}

static int hexdig(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (c | 0x20) - 'a' + 10 : -1;
}

/* The property's value as UTF-8 text (still with vCard escapes). */
static int vc_decode(struct imp *im, const struct vprop *p, struct buf *out)
{
    struct buf *b = &im->tmp;
    buf_clear(b);
    if (p->qp) {
        for (size_t i = 0; i < p->vlen; i++) {
            int c = (unsigned char)p->value[i];
            if (c == '=' && i + 2 < p->vlen && hexdig((unsigned char)p->value[i + 1]) >= 0 &&
                hexdig((unsigned char)p->value[i + 2]) >= 0) {
                c = hexdig((unsigned char)p->value[i + 1]) * 16 +
                    hexdig((unsigned char)p->value[i + 2]);
                i += 2;
            }
            if (buf_putc(b, c) != 0)
                return -1;
        }
    } else if (buf_put(b, p->value, p->vlen) != 0) {
        return -1;
    }
    if (buf_put(b, "", 0) != 0)
        return -1;
    /* A declared charset, or (quoted-printable bytes that are not UTF-8)
     * the windows-1251 that Russian phones of the 2.1 era wrote. */
    const char *from = NULL;
    if (p->charset[0] && strcasecmp(p->charset, "UTF-8") && strcasecmp(p->charset, "UTF8"))
        from = p->charset;
    else if (p->qp && !utf8_valid(b->p, b->len))
        from = "CP1251";
    if (from) {
        iconv_t cd = iconv_open("UTF-8", from);
        if (cd != (iconv_t)-1) {
            buf_clear(out);
            if (buf_reserve(out, b->len * 4 + 4) != 0) {
                iconv_close(cd);
                return -1;
            }
            char *ip = b->p, *op = out->p;
            size_t il = b->len, ol = out->cap - 1;
            while (il > 0 && iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 && errno != E2BIG) {
                ip++, il--; /* skip what the charset cannot decode */
            }
            out->len = (size_t)(op - out->p);
            out->p[out->len] = '\0';
            iconv_close(cd);
            buf_clear(b);
            if (buf_put(b, out->p, out->len) != 0)
                return -1;
        }
    }
    return utf8_sanitize(b->p, b->len, out);
}

/* The `idx`-th component of a structured value (separated by an unescaped
 * `sep`), unescaped (\n \, \; \\). Returns 0, or -1 when there is none. */
static int vc_component(const char *v, size_t n, char sep, size_t idx, struct buf *out)
{
    buf_clear(out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '\\' && i + 1 < n) {
            c = v[++i];
            if (c == 'n' || c == 'N')
                c = '\n';
            if (k == idx && buf_putc(out, c) != 0)
                return -1;
            continue;
        }
        if (sep && c == sep) {
            if (k++ == idx)
                break;
            continue;
        }
        if (k == idx && buf_putc(out, c) != 0)
            return -1;
    }
    if (buf_put(out, "", 0) != 0)
        return -1;
    return k >= idx ? 0 : -1;
}

static int vc_property(struct imp *im, struct row *r, const struct vprop *p, struct buf *val,
                       struct buf *comp)
{
    static const struct {
        const char *name, *field;
    } fields[] = {{"NOTE", "note"}, {"TITLE", "title"}, {"BDAY", "birthday"}, {"URL", "url"}};
    static const struct {
        const char *name;
        enum sb_identity_kind kind;
    } ids[] = {{"EMAIL", SB_ID_EMAIL},         {"TEL", SB_ID_PHONE},
               {"X-TELEGRAM", SB_ID_TELEGRAM}, {"X-TELEGRAM-ID", SB_ID_TELEGRAM},
               {"X-WHATSAPP", SB_ID_WHATSAPP}, {"X-VIBER", SB_ID_VIBER}};
    if (p->b64)
        return SB_OK; /* PHOTO, LOGO, KEY: nothing we keep */
    if (vc_decode(im, p, val) != 0)
        return SB_ERR_NOMEM;
    if (!strcmp(p->name, "FN")) {
        if (vc_component(val->p, val->len, 0, 0, comp) != 0)
            return SB_ERR_NOMEM;
        return row_set(im, &r->name, comp->p, comp->len);
    }
    if (!strcmp(p->name, "N")) {
        const char **slots[] = {&r->last, &r->first, &r->middle};
        for (size_t i = 0; i < 3; i++) {
            if (vc_component(val->p, val->len, ';', i, comp) != 0)
                break;
            int rc = row_set(im, slots[i], comp->p, comp->len);
            if (rc != SB_OK)
                return rc;
        }
        return SB_OK;
    }
    if (!strcmp(p->name, "ORG")) {
        if (vc_component(val->p, val->len, ';', 0, comp) != 0)
            return SB_OK;
        return row_set(im, &r->company, comp->p, comp->len);
    }
    if (!strcmp(p->name, "CATEGORIES")) {
        for (size_t i = 0; vc_component(val->p, val->len, ',', i, comp) == 0; i++) {
            int rc = row_add_tag(im, r, comp->p, comp->len);
            if (rc != SB_OK)
                return rc;
        }
        return SB_OK;
    }
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        if (strcmp(p->name, ids[k].name))
            continue;
        if (vc_component(val->p, val->len, 0, 0, comp) != 0)
            return SB_ERR_NOMEM;
        const char *v = comp->p;
        size_t n = comp->len;
        if (ids[k].kind == SB_ID_PHONE && n > 4 && !strncasecmp(v, "tel:", 4))
            v += 4, n -= 4; /* vCard 4 URIs */
        if (ids[k].kind == SB_ID_EMAIL && n > 7 && !strncasecmp(v, "mailto:", 7))
            v += 7, n -= 7;
        return row_add_id(im, r, ids[k].kind, v, n);
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if (strcmp(p->name, fields[k].name))
            continue;
        if (vc_component(val->p, val->len, 0, 0, comp) != 0)
            return SB_ERR_NOMEM;
        return row_set_field(im, r, fields[k].field, comp->p, comp->len);
    }
    return SB_OK;
}

static int parse_vcard(struct imp *im, char *err, size_t errlen)
{
    struct buf line = {0}, val = {0}, comp = {0};
    struct row *r = NULL;
    int rc = SB_OK, got, too_long, depth = 0;
    unsigned long at;
    while (rc == SB_OK && (got = vc_line(&im->src, &line, &at, &too_long)) > 0) {
        struct vprop p;
        if (vc_parse(line.p, line.len, &p) != 0)
            continue; /* not a content line: tolerated, as most readers do */
        int begin = !strcmp(p.name, "BEGIN") && p.vlen == 5 && !strncasecmp(p.value, "VCARD", 5);
        int end = !strcmp(p.name, "END") && p.vlen == 5 && !strncasecmp(p.value, "VCARD", 5);
        if (begin && depth++ == 0) {
            im->res->rows++;
            r = row_begin(im, at);
            continue;
        }
        if (end && depth > 0 && --depth == 0) {
            rc = row_done(im, r, err, errlen);
            r = NULL;
            continue;
        }
        if (!r || depth != 1)
            continue; /* outside a card, or inside an embedded AGENT card */
        if (too_long) {
            if (!p.b64)
                row_warn(im, r, "%s (line %lu) is longer than %d bytes; left out", p.name, at,
                         SB_IMPORT_RECORD_MAX);
            continue;
        }
        rc = vc_property(im, r, &p, &val, &comp);
        if (rc != SB_OK) {
            row_discard(r);
            r = NULL;
            rc = sb_fail(err, errlen, rc, "out of memory");
        }
    }
    if (rc == SB_OK && got < 0)
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (rc == SB_OK && r) {
        row_warn(im, r, "the card has no END:VCARD; read to the end of the file");
        rc = row_done(im, r, err, errlen);
    } else if (r) {
        row_discard(r);
    }
    buf_free(&line);
    buf_free(&val);
    buf_free(&comp);
    return rc;
}

/* Look at the first characters: "BEGIN:VCARD" makes it a vCard file. */
static int is_vcard(struct src *s, int *vcard_r)
{
    struct buf head = {0};
    char sig[12];
    size_t n = 0;
    int ch;
    unsigned long line = src_line(s);
    while (n < 11 && (ch = src_getc(s)) >= 0) {
        if (buf_putc(&head, ch) != 0) {
            buf_free(&head);
            return -1;
        }
        if (n == 0 && isspace(ch))
            continue;
        sig[n++] = (char)ch;
    }
    sig[n] = '\0';
    *vcard_r = !strcasecmp(sig, "BEGIN:VCARD");
    int rc = head.len ? src_unread(s, head.p, head.len, line) : 0;
    buf_free(&head);
    return rc;
}

int sb_import_clients(struct sb_db *db, const char *path, const struct sb_import_options *opt,
                      struct sb_import_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->encoding = "UTF-8";
    if (!db && !opt->dry_run)
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "an import needs a database");
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        return sb_fail(err, errlen, SB_ERR_IO, "cannot read %s: %s", path,
                       S_ISDIR(st.st_mode) ? "it is a directory" : strerror(errno));
    }
    const char *enc = "UTF-8";
    long skip = 0;
    int rc = detect_encoding(f, &enc, &skip, err, errlen);
    if (rc != SB_OK) {
        fclose(f);
        return rc;
    }
    res->encoding = enc;
    res->converted = strcmp(enc, "UTF-8") != 0;
    struct imp *im = calloc(1, sizeof *im);
    if (!im) {
        fclose(f);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    im->db = db;
    im->opt = opt;
    im->res = res;
    im->file_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    im->src.f = f;
    im->src.cd = (iconv_t)-1;
    im->src.peeked = NO_PEEK;
    im->src.line = 1;
    im->src.consumed = (uint64_t)skip;
    if (fseek(f, skip, SEEK_SET) != 0) {
        rc = sb_fail(err, errlen, SB_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (res->converted) {
        int win = !strcmp(enc, "windows-1251");
        im->src.cd = iconv_open("UTF-8", win ? "CP1251" : enc);
        im->src.unit = win ? 1 : 2;
        if (im->src.cd == (iconv_t)-1) {
            rc = sb_fail(err, errlen, SB_ERR_INTERNAL, "iconv cannot convert %s: %s", enc,
                         strerror(errno));
            goto out;
        }
    }
    int vcard = 0;
    if (is_vcard(&im->src, &vcard) != 0) {
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
        goto out;
    }
    res->format = vcard ? SB_IMPORT_VCARD : SB_IMPORT_CSV;
    res->looked_up = db != NULL;
    rc = vcard ? parse_vcard(im, err, errlen) : parse_csv(im, err, errlen);
    if (rc == SB_OK && im->src.ioerr)
        rc =
            sb_fail(err, errlen, SB_ERR_IO, "reading %s failed: %s", path, strerror(im->src.ioerr));
    if (rc == SB_OK)
        rc = flush(im, err, errlen);
out:
    for (size_t i = 0; i < im->nrows; i++)
        row_discard(&im->rows[i]);
    sb_arena_free(&im->arena);
    strset_free(&im->seen);
    buf_free(&im->tmp);
    buf_free(&im->tmp2);
    buf_free(&im->src.back);
    if (im->src.cd != (iconv_t)-1)
        iconv_close(im->src.cd);
    free(im);
    fclose(f);
    return rc;
}

int sb_import_channel_region(struct sb_db *db, int64_t channel_id, char *region, size_t len,
                             char *err, size_t errlen)
{
    struct sb_db_val a[] = {SB_INT(channel_id)};
    struct sb_db_rows r;
    int rc = sb_db_exec(db, q_channel_region, a, 1, &r, err, errlen);
    if (rc == SB_OK && !r.nrows)
        rc = sb_fail(err, errlen, SB_ERR_NOT_FOUND, "no channel %lld", (long long)channel_id);
    if (rc == SB_OK)
        snprintf(region, len, "%s", sb_db_cell(&r, 0, 0) ? sb_db_cell(&r, 0, 0) : "");
    sb_db_rows_free(&r);
    return rc;
}
