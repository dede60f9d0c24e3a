/* tzinfo.h: civil dates, fixed offsets and the system's zone files (Debian
 * tzdata), including the days a zone changes its clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/err.h"
#include "switchboard/tzinfo.h"

#include <string.h>

/* 2026-03-29 00:00 UTC and friends, as Unix seconds. */
#define T(y, m, d, h) (sb_days_from_civil(y, m, d) * 86400 + (h)*3600)

static void civil_dates_round_trip(void **state)
{
    (void)state;
    assert_int_equal(sb_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(sb_days_from_civil(2000, 3, 1), 11017);
    int y, m, d;
    for (int64_t z = -800; z < 30000; z += 7) {
        sb_civil_from_days(z, &y, &m, &d);
        assert_int_equal(sb_days_from_civil(y, m, d), z);
    }
    assert_int_equal(sb_date_parse("2024-02-29", &y, &m, &d), 0);
    assert_int_equal(y * 10000 + m * 100 + d, 20240229);
    static const char *const bad[] = {"2023-02-29", "2026-13-01", "2026-00-10",  "2026-1-01",
                                      "2026-01-32", "20260101",   "2026-01-01x", "",
                                      "abcd-ef-gh", "1969-12-31"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(sb_date_parse(bad[i], &y, &m, &d), -1);
}

static void fixed_offsets(void **state)
{
    (void)state;
    struct sb_tz tz;
    char err[128] = "";
    assert_int_equal(sb_tz_load("+03:00", &tz, err, sizeof err), SB_OK);
    assert_string_equal(tz.name, "+03:00");
    assert_int_equal(sb_tz_offset(&tz, 0), 3 * 3600);
    assert_int_equal(sb_tz_day_start(&tz, 2026, 11, 24), T(2026, 11, 23, 21));
    sb_tz_free(&tz);
    assert_int_equal(sb_tz_load("-0530", &tz, err, sizeof err), SB_OK);
    assert_string_equal(tz.name, "-05:30");
    assert_int_equal(sb_tz_offset(&tz, 0), -(5 * 3600 + 1800));
    sb_tz_free(&tz);
    assert_int_equal(sb_tz_load("UTC", &tz, err, sizeof err), SB_OK);
    assert_int_equal(sb_tz_day_start(&tz, 2026, 1, 1), T(2026, 1, 1, 0));
    sb_tz_free(&tz);
    static const char *const bad[] = {"+15:00", "+03:60", "+", "+3:0", "03:00", "+03:00:00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(sb_tz_load(bad[i], &tz, err, sizeof err), SB_ERR_INVALID);
        assert_true(err[0] != '\0');
    }
}

static void zone_files(void **state)
{
    (void)state;
    struct sb_tz tz;
    char err[128] = "";
    assert_int_equal(sb_tz_load("Europe/Moscow", &tz, err, sizeof err), SB_OK);
    assert_int_equal(sb_tz_offset(&tz, T(2026, 11, 24, 0)), 3 * 3600);
    assert_int_equal(sb_tz_offset(&tz, T(2012, 1, 1, 0)), 4 * 3600); /* 2011-2014 */
    assert_int_equal(sb_tz_day_start(&tz, 2026, 11, 24), T(2026, 11, 23, 21));
    sb_tz_free(&tz);

    /* Berlin: clocks go forward on 2026-03-29 and back on 2026-10-25, both
     * at 01:00 UTC; midnights either side are 23:00 and 22:00 UTC. */
    assert_int_equal(sb_tz_load("Europe/Berlin", &tz, err, sizeof err), SB_OK);
    assert_int_equal(sb_tz_offset(&tz, T(2026, 1, 15, 12)), 3600);
    assert_int_equal(sb_tz_offset(&tz, T(2026, 7, 15, 12)), 7200);
    assert_int_equal(sb_tz_day_start(&tz, 2026, 3, 29), T(2026, 3, 28, 23));
    assert_int_equal(sb_tz_day_start(&tz, 2026, 3, 30), T(2026, 3, 29, 22));
    assert_int_equal(sb_tz_day_start(&tz, 2026, 10, 25), T(2026, 10, 24, 22));
    assert_int_equal(sb_tz_day_start(&tz, 2026, 10, 26), T(2026, 10, 25, 23));
    sb_tz_free(&tz);

    /* America/Sao_Paulo jumped over midnight: 2018-11-04 began at 01:00
     * local, 03:00 UTC. */
    assert_int_equal(sb_tz_load("America/Sao_Paulo", &tz, err, sizeof err), SB_OK);
    assert_int_equal(sb_tz_day_start(&tz, 2018, 11, 4), T(2018, 11, 4, 3));
    assert_int_equal(sb_tz_day_start(&tz, 2018, 11, 5), T(2018, 11, 5, 2));
    sb_tz_free(&tz);

    static const char *const bad[] = {"Europe/Nowhere", "../../etc/passwd", "/etc/passwd",
                                      "Europe//Moscow", "Europe/",          "Europe/Mos cow",
                                      "1Europe"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(sb_tz_load(bad[i], &tz, err, sizeof err), SB_ERR_INVALID);
        assert_null(tz.at);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(civil_dates_round_trip),
        cmocka_unit_test(fixed_offsets),
        cmocka_unit_test(zone_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
