/* Time zones from TZif files (RFC 8536) and fixed offsets; see tzinfo.h.
 *
 * Only the version 2+ body (64-bit transition times) is read when present,
 * version 1 otherwise. Leap-second records are skipped: zone files on Debian
 * carry none ("right/" zones do, and are not meant for civil time). */
#include "switchboard/tzinfo.h"
#include "switchboard/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A zone file is a few kilobytes; anything far larger is not one. */
#define TZIF_MAX (256 * 1024)

int64_t sb_days_from_civil(int y, int m, int d)
{
    /* H. Hinnant's days_from_civil: eras of 400 years from 0000-03-01. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void sb_civil_from_days(int64_t z, int *y_r, int *m_r, int *d_r)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y_r = (int)(yoe + era * 400 + (m <= 2));
    *m_r = m;
    *d_r = d;
}

int sb_date_parse(const char *s, int *y, int *m, int *d)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return -1;
    int yy = atoi(s), mm = atoi(s + 5), dd = atoi(s + 8);
    if (yy < 1970 || mm < 1 || mm > 12 || dd < 1)
        return -1;
    /* A day that does not exist (Feb 30) comes back as another date. */
    int y2, m2, d2;
    sb_civil_from_days(sb_days_from_civil(yy, mm, dd), &y2, &m2, &d2);
    if (y2 != yy || m2 != mm || d2 != dd)
        return -1;
    *y = yy;
    *m = mm;
    *d = dd;
    return 0;
}

/* "+03:00", "-0530", "+3", "+03": hours 0..14, minutes 0..59. */
static int parse_offset(const char *s, int32_t *off_r)
{
    if (*s != '+' && *s != '-')
        return -1;
    int sign = *s == '-' ? -1 : 1;
    const char *p = s + 1;
    int h = 0, mi = 0, nd = 0;
    while (isdigit((unsigned char)*p) && nd < 2) {
        h = h * 10 + (*p++ - '0');
        nd++;
    }
    if (!nd)
        return -1;
    if (*p == ':')
        p++;
    if (*p) {
        if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) || p[2])
            return -1;
        mi = (p[0] - '0') * 10 + (p[1] - '0');
    }
    if (h > 14 || mi > 59)
        return -1;
    *off_r = sign * (h * 3600 + mi * 60);
    return 0;
}

/* An IANA name: letters, digits, '_', '-', '+', '/' between parts; no ".."
 * or leading '/', so it cannot leave the zone directory. */
static int valid_zone_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n >= sizeof((struct sb_tz *)0)->name || s[0] == '/' || s[n - 1] == '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '+' && c != '/')
            return 0;
        if (c == '/' && s[i + 1] == '/')
            return 0;
    }
    return isalpha((unsigned char)s[0]);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static int tzif_header(const unsigned char *p, size_t len, struct tzif_counts *c, int *version)
{
    if (len < 44 || memcmp(p, "TZif", 4))
        return -1;
    *version = p[4] ? p[4] - '0' : 1;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    if (c->type == 0 || c->type > 256 || c->time > 100000 || c->leap > 10000 || c->chars > 10000 ||
        c->isut > 256 || c->isstd > 256)
        return -1;
    return 0;
}

static size_t tzif_body_len(const struct tzif_counts *c, size_t tsize)
{
    return c->time * tsize + c->time + c->type * 6 + c->chars + c->leap * (tsize + 4) + c->isstd +
           c->isut;
}

static int tzif_parse(const unsigned char *buf, size_t len, struct sb_tz *tz)
{
    struct tzif_counts c;
    int version;
    if (tzif_header(buf, len, &c, &version))
        return -1;
    const unsigned char *p = buf + 44;
    size_t tsize = 4;
    size_t body = tzif_body_len(&c, 4);
    if (version >= 2) {
        /* Skip the version 1 body to the 64-bit one. */
        if (44 + body > len || tzif_header(p + body, len - 44 - body, &c, &version))
            return -1;
        p += body + 44;
        tsize = 8;
        body = tzif_body_len(&c, 8);
    }
    if ((size_t)(p - buf) + body > len)
        return -1;
    const unsigned char *times = p, *idx = p + c.time * tsize, *types = idx + c.time;
    tz->n = c.time;
    tz->at = calloc(c.time ? c.time : 1, sizeof *tz->at);
    tz->off = calloc(c.time ? c.time : 1, sizeof *tz->off);
    if (!tz->at || !tz->off)
        return -1;
    for (uint32_t i = 0; i < c.time; i++) {
        tz->at[i] = tsize == 8 ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
        if (idx[i] >= c.type || (i && tz->at[i] <= tz->at[i - 1]))
            return -1;
        tz->off[i] = (int32_t)be32(types + 6 * idx[i]);
    }
    /* RFC 8536 section 3.2: type 0 applies before the first transition. */
    tz->off_before = (int32_t)be32(types);
    return 0;
}

int sb_tz_load(const char *spec, struct sb_tz *tz, char *err, size_t errlen)
{
    memset(tz, 0, sizeof *tz);
    if (!spec || !*spec)
        return sb_fail(err, errlen, SB_ERR_INVALID, "empty time zone");
    if (!strcmp(spec, "UTC") || !strcmp(spec, "Z") || !strcmp(spec, "Etc/UTC")) {
        snprintf(tz->name, sizeof tz->name, "UTC");
        return SB_OK;
    }
    if (*spec == '+' || *spec == '-') {
        if (parse_offset(spec, &tz->off_before))
            return sb_fail(err, errlen, SB_ERR_INVALID,
                           "time zone offset must look like +03:00 (at most 14 hours)");
        int32_t a = tz->off_before < 0 ? -tz->off_before : tz->off_before;
        snprintf(tz->name, sizeof tz->name, "%c%02d:%02d", tz->off_before < 0 ? '-' : '+', a / 3600,
                 a / 60 % 60);
        return SB_OK;
    }
    if (!valid_zone_name(spec))
        return sb_fail(err, errlen, SB_ERR_INVALID,
                       "time zone must be an IANA name such as Europe/Moscow or an offset "
                       "such as +03:00");
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", spec);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_fail(err, errlen, SB_ERR_INVALID, "unknown time zone \"%s\"", spec);
    unsigned char *buf = malloc(TZIF_MAX);
    size_t len = buf ? fread(buf, 1, TZIF_MAX, f) : 0;
    fclose(f);
    if (!buf)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    int bad = len == TZIF_MAX || tzif_parse(buf, len, tz);
    free(buf);
    if (bad) {
        sb_tz_free(tz);
        return sb_fail(err, errlen, SB_ERR_INVALID, "unknown time zone \"%s\"", spec);
    }
    snprintf(tz->name, sizeof tz->name, "%s", spec);
    return SB_OK;
}

void sb_tz_free(struct sb_tz *tz)
{
    free(tz->at);
    free(tz->off);
    tz->at = NULL;
    tz->off = NULL;
    tz->n = 0;
}

/* Index of the last transition at or before `utc`, or -1. */
static long last_at(const struct sb_tz *tz, int64_t utc)
{
    long lo = 0, hi = (long)tz->n - 1, found = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= utc) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

int32_t sb_tz_offset(const struct sb_tz *tz, int64_t utc)
{
    long i = last_at(tz, utc);
    return i < 0 ? tz->off_before : tz->off[i];
}

int64_t sb_tz_day_start(const struct sb_tz *tz, int y, int m, int d)
{
    int64_t local = sb_days_from_civil(y, m, d) * 86400;
    /* Offsets that could be in force: those a day either side. The earliest
     * instant that reads as local midnight wins (a repeated hour). */
    int32_t cand[2] = {sb_tz_offset(tz, local - 86400), sb_tz_offset(tz, local + 86400)};
    int64_t best = INT64_MAX;
    for (int i = 0; i < 2; i++) {
        int64_t u = local - cand[i];
        if (sb_tz_offset(tz, u) == cand[i] && u < best)
            best = u;
    }
    if (best != INT64_MAX)
        return best;
    /* Midnight was skipped: the day starts at the transition that jumped it. */
    long i = last_at(tz, local - cand[0]);
    return i >= 0 ? tz->at[i] : local - cand[1];
}
