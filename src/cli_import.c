/* `switchboard import clients FILE` and `switchboard export DIR`: the
 * command-line faces of import.c and export.c. Options, the database
 * connection, the progress bar and the summary live here; the work does
 * not, so a future web upload goes through the same import code.
 *
 * Output contract (scripts and tests read it): problems with a row go to
 * stderr as "switchboard: line N: skipped: …" or "… warning: …"; the last
 * stdout line is the summary. The progress bar is drawn on stderr only when
 * stderr is a terminal, so logs and CI output carry no \r noise. */
#include "switchboard/cli.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/export.h"
#include "switchboard/import.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char import_usage[] =
    "usage: switchboard import clients FILE [--channel ID] [--region RR] [--dry-run]\n";
static const char export_usage[] = "usage: switchboard export DIR\n";

/* Skipped lines listed in the summary; the rest are on stderr. */
#define SUMMARY_LINES 20

/* Redraws of the progress bar per second, at most. */
#define PROGRESS_HZ 10

static int fail(const char *usage, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const char *usage, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("switchboard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (code == 2)
        fputs(usage, stderr);
    return code;
}

static int open_db(const char *db_url, struct sb_db **db, char *err, size_t errlen)
{
    struct sb_db_params p;
    *db = NULL;
    int rc = sb_db_params_parse(db_url, &p, err, errlen);
    if (rc != SB_OK)
        return rc;
    rc = sb_db_open(&p, 0, db, err, errlen);
    sb_db_params_free(&p);
    if (rc != SB_OK)
        sb_db_close(db);
    return rc;
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* -- Progress ------------------------------------------------------------ */

struct progress {
    int tty;
    int shown; /* a bar is on the line: clear it before printing a message */
    double start, last;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bar_clear(struct progress *p)
{
    if (p->shown)
        fputs("\r\033[K", stderr);
    p->shown = 0;
}

static void on_problem(void *arg, unsigned long line, int warning, const char *msg)
{
    struct progress *p = arg;
    bar_clear(p);
    fprintf(stderr, "switchboard: line %lu: %s: %s\n", line, warning ? "warning" : "skipped", msg);
}

static void on_progress(void *arg, uint64_t done, uint64_t total, uint64_t rows)
{
    struct progress *p = arg;
    if (!p->tty)
        return;
    double t = now_s();
    if (p->shown && t - p->last < 1.0 / PROGRESS_HZ)
        return;
    p->last = t;
    /* Rows are not counted ahead (that would read the file twice more);
     * the share of the file read stands for the share done. */
    unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 0;
    char bar[31];
    for (unsigned i = 0; i < 30; i++)
        bar[i] = i < pct * 30 / 100 ? '#' : '.';
    bar[30] = '\0';
    double rate = t > p->start ? (double)rows / (t - p->start) : 0;
    fprintf(stderr, "\r\033[K[%s] %3u%%  %llu rows  %.0f rows/s", bar, pct,
            (unsigned long long)rows, rate);
    fflush(stderr);
    p->shown = 1;
}

/* -- import clients ------------------------------------------------------- */

static void print_lines(const struct sb_import_result *res)
{
    if (!res->invalid)
        return;
    fputs(" (lines: ", stdout);
    size_t shown = res->ninvalid_lines < SUMMARY_LINES ? res->ninvalid_lines : SUMMARY_LINES;
    for (size_t i = 0; i < shown; i++)
        printf("%s%lu", i ? ", " : "", res->invalid_lines[i]);
    if (res->invalid > shown)
        fputs(shown ? ", …" : "…", stdout);
    fputc(')', stdout);
}

static void print_summary(const struct sb_import_result *res, int dry_run)
{
    if (res->converted)
        printf("encoding: %s (the file is not UTF-8; converted)\n", res->encoding);
    if (dry_run && !res->looked_up) {
        printf("dry run, nothing written (no database: the file alone was checked): valid %llu, "
               "invalid %llu",
               (unsigned long long)(res->created + res->matched), (unsigned long long)res->invalid);
    } else {
        printf("%screated %llu, matched %llu, invalid %llu",
               dry_run ? "dry run, nothing written: " : "", (unsigned long long)res->created,
               (unsigned long long)res->matched, (unsigned long long)res->invalid);
    }
    print_lines(res);
    fputc('\n', stdout);
}

int sb_cli_import(int argc, char **argv, const char *db_url, const char *default_region)
{
    if (argc < 1 || is_help(argv[0])) {
        if (argc >= 1) {
            fputs(import_usage, stdout);
            return 0;
        }
        return fail(import_usage, 2, "import what? (clients)");
    }
    if (strcmp(argv[0], "clients"))
        return fail(import_usage, 2, "unknown command 'import %s'", argv[0]);
    const char *file = NULL, *channel_s = NULL, *region_s = NULL;
    int dry_run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            fputs(import_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--dry-run")) {
            dry_run = 1;
        } else if (!strcmp(a, "--channel") || !strcmp(a, "--region")) {
            if (i + 1 >= argc)
                return fail(import_usage, 2, "%s needs a value", a);
            const char **slot = !strcmp(a, "--channel") ? &channel_s : &region_s;
            if (*slot)
                return fail(import_usage, 2, "%s given twice", a);
            *slot = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return fail(import_usage, 2, "unknown argument '%s'", a);
        } else if (file) {
            return fail(import_usage, 2, "one file at a time ('%s' and '%s')", file, a);
        } else {
            file = a;
        }
    }
    if (!file)
        return fail(import_usage, 2, "which file? Give a CSV or vCard file");
    int64_t channel_id = 0;
    if (channel_s) {
        char *end;
        long long v = strtoll(channel_s, &end, 10);
        if (*end || v <= 0)
            return fail(import_usage, 2,
                        "--channel takes a channel id (a positive number), not '%s'", channel_s);
        channel_id = v;
    }
    char region[8] = "";
    if (region_s) {
        if (strlen(region_s) != 2 || !isalpha((unsigned char)region_s[0]) ||
            !isalpha((unsigned char)region_s[1]))
            return fail(import_usage, 2,
                        "--region takes a two-letter country code such as RU, not '%s'", region_s);
        region[0] = (char)toupper((unsigned char)region_s[0]);
        region[1] = (char)toupper((unsigned char)region_s[1]);
        region[2] = '\0';
    }

    char err[512] = "";
    struct sb_db *db = NULL;
    if (open_db(db_url, &db, err, sizeof err) != SB_OK) {
        if (!dry_run)
            return fail(import_usage, 1, "%s", err);
        /* A dry run can still check the file on a machine without the
         * database; it says so in the summary. */
        fprintf(stderr, "switchboard: %s; checking the file alone\n", err);
        err[0] = '\0';
    }
    if (channel_id) {
        char ch_region[16] = "";
        int rc = db ? sb_import_channel_region(db, channel_id, ch_region, sizeof ch_region, err,
                                               sizeof err)
                    : sb_fail(err, sizeof err, SB_ERR_UNAVAILABLE, "--channel needs the database");
        if (rc != SB_OK) {
            sb_db_close(&db);
            return fail(import_usage, 1, "%s", err);
        }
        if (!region[0] && ch_region[0])
            snprintf(region, sizeof region, "%.2s", ch_region);
    }

    struct progress prog = {.tty = isatty(STDERR_FILENO), .start = now_s()};
    struct sb_import_options opt = {
        .region = region[0] ? region : default_region,
        .channel_id = channel_id,
        .dry_run = dry_run,
        .problem = on_problem,
        .progress = on_progress,
        .arg = &prog,
    };
    struct sb_import_result *res = calloc(1, sizeof *res);
    if (!res) {
        sb_db_close(&db);
        return fail(import_usage, 1, "out of memory");
    }
    int rc = sb_import_clients(db, file, &opt, res, err, sizeof err);
    sb_db_close(&db);
    bar_clear(&prog);
    int status;
    if (rc != SB_OK) {
        /* Batches written before the failure stay written; the summary says
         * how far it got, and a re-run skips what is there. */
        if (res->created || res->matched)
            print_summary(res, dry_run);
        status = fail(import_usage, 1, "%s%s", err,
                      res->created || res->matched ? " (the rows counted above are stored; "
                                                     "running the import again is safe)"
                                                   : "");
    } else {
        print_summary(res, dry_run);
        status = res->created + res->matched > 0 || res->rows == 0 ? 0 : 1;
        if (status)
            fprintf(stderr, "switchboard: no row of %s could be imported\n", file);
    }
    free(res);
    if (fflush(stdout) != 0)
        return fail(import_usage, 1, "cannot write the summary: standard output failed");
    return status;
}

/* -- export --------------------------------------------------------------- */

int sb_cli_export(int argc, char **argv, const char *db_url)
{
    const char *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(export_usage, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return fail(export_usage, 2, "unknown argument '%s'", argv[i]);
        if (dir)
            return fail(export_usage, 2, "one directory at a time ('%s' and '%s')", dir, argv[i]);
        dir = argv[i];
    }
    if (!dir)
        return fail(export_usage, 2, "export where? Give a new or empty directory");
    char err[512] = "";
    struct sb_db *db;
    if (open_db(db_url, &db, err, sizeof err) != SB_OK)
        return fail(export_usage, 1, "%s", err);
    struct sb_export_counts n;
    int rc = sb_export(db, dir, &n, err, sizeof err);
    sb_db_close(&db);
    if (rc != SB_OK)
        return fail(export_usage, 1, "export failed: %s", err);
    printf("exported %llu clients (%llu identities, %llu tags), %llu conversations, "
           "%llu interactions (%llu attachments) to %s\n",
           (unsigned long long)n.clients, (unsigned long long)n.identities,
           (unsigned long long)n.tags, (unsigned long long)n.conversations,
           (unsigned long long)n.interactions, (unsigned long long)n.attachments, dir);
    return fflush(stdout) == 0 ? 0
                               : fail(export_usage, 1,
                                      "cannot write the summary: standard "
                                      "output failed");
}
