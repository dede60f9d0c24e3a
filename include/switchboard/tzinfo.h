/* Time zones for reports: the UTC offset in force at an instant, read from
 * the system's compiled zone files (RFC 8536 TZif, /usr/share/zoneinfo or
 * $TZDIR) or given as a fixed offset.
 *
 * Why not MariaDB's CONVERT_TZ: named zones there need the mysql.time_zone
 * tables, which a fresh Debian MariaDB (and our private test instance) does
 * not load. Why not localtime_r: it follows the process-wide TZ variable,
 * which a multi-threaded server cannot switch per request. A loaded zone is
 * plain data, so any thread may use its own.
 *
 * Instants beyond the file's last transition keep the last transition's
 * offset: Debian's tzdata is built "fat" (transitions listed up to 2037), so
 * this only matters after 2037 or with a "slim" build of a zone that still
 * changes its clocks; the footer rule of such a file is not evaluated. */
#ifndef SB_TZINFO_H
#define SB_TZINFO_H

#include <stddef.h>
#include <stdint.h>

struct sb_tz {
    char name[64];
    size_t n;           /* transitions */
    int64_t *at;        /* transition instants, Unix seconds, ascending */
    int32_t *off;       /* offset from UTC in seconds from at[i] on */
    int32_t off_before; /* before the first transition (or the fixed offset) */
};

/* "UTC", "Z", "+03:00", "-0530", "+3", or an IANA name such as
 * "Europe/Moscow". SB_ERR_INVALID for a malformed or unknown zone. */
int sb_tz_load(const char *spec, struct sb_tz *tz, char *err, size_t errlen);
void sb_tz_free(struct sb_tz *tz);

/* The offset from UTC (seconds, east positive) in force at `utc`. */
int32_t sb_tz_offset(const struct sb_tz *tz, int64_t utc);
/* The instant (Unix seconds) of local midnight that starts the civil day
 * y-m-d. In a zone whose clocks jump over midnight, the first instant of
 * that day. */
int64_t sb_tz_day_start(const struct sb_tz *tz, int y, int m, int d);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t sb_days_from_civil(int y, int m, int d);
void sb_civil_from_days(int64_t days, int *y, int *m, int *d);
/* "YYYY-MM-DD" (a real date) to y, m, d; -1 when it is not one. */
int sb_date_parse(const char *s, int *y, int *m, int *d);

#endif
