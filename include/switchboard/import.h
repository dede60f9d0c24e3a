/* Importing clients from a file: CSV with a header row, or vCard 2.1/3.0/4.0.
 *
 * Every row goes through the same recognition rules as ingest (ingest.h):
 * identities are normalised with identity.h; a verified identity already
 * known names its client (several clients: the oldest, and a merge
 * suggestion); none known: a new client carrying them all; an identity that
 * does not normalise is kept raw and unverified and never matches. Imported
 * values only fill gaps: a name or company the client has is kept, custom
 * fields add missing keys, tags are added. So importing the same file twice
 * creates nothing the second time.
 *
 * An import is not an interaction: no conversation, no interaction row; only
 * clients, identities, tags and client.created / client.updated events.
 *
 * The file is streamed (rows are written in batches of SB_IMPORT_BATCH, one
 * transaction each), so memory stays flat whatever its size. Runs on the
 * calling thread with the caller's connection. */
#ifndef SB_IMPORT_H
#define SB_IMPORT_H

#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* Longest field (CSV cell, vCard property value) kept. Contact data is a
 * few hundred bytes; a longer cell is a broken quote swallowing the file or
 * a pasted document, and capping it bounds memory per row. */
#define SB_IMPORT_FIELD_MAX (64 * 1024)

/* Bytes of one CSV row or one unfolded vCard line, all fields together:
 * a vCard PHOTO line can be a few hundred KiB and is skipped, not kept. */
#define SB_IMPORT_RECORD_MAX (1024 * 1024)

/* Columns of a CSV file. Spreadsheets exported from CRMs reach a few dozen;
 * the cap keeps the per-row field table static. */
#define SB_IMPORT_COLUMNS_MAX 256

/* Rows per transaction: large enough that commits (fsyncs) do not dominate,
 * small enough that a retried batch after a deadlock is cheap and that locks
 * on client rows are not held for long against live ingest. */
#define SB_IMPORT_BATCH 500

/* Identities and tags kept per row; more are reported and dropped. Ingest
 * takes 16 identities per inbound too. */
#define SB_IMPORT_IDS_MAX  16
#define SB_IMPORT_TAGS_MAX 64

/* Line numbers of skipped rows remembered for the summary. */
#define SB_IMPORT_LINES_KEPT 1000

enum sb_import_format { SB_IMPORT_CSV, SB_IMPORT_VCARD };

struct sb_import_options {
    const char *region; /* default region for phones without a country code; NULL: none */
    int64_t channel_id; /* recorded in the events as where the list came from; 0: none */
    int dry_run;        /* parse, validate and look up read-only; write nothing */

    /* A row skipped (warning 0) or imported with a caveat (warning 1); `line`
     * is the physical line the row starts on. May be NULL. */
    void (*problem)(void *arg, unsigned long line, int warning, const char *msg);
    /* After every batch: bytes of the file read, the file's size, rows done.
     * May be NULL. */
    void (*progress)(void *arg, uint64_t done, uint64_t total, uint64_t rows);
    void *arg;
};

struct sb_import_result {
    enum sb_import_format format;
    const char *encoding; /* "UTF-8", "windows-1251", "UTF-16LE", "UTF-16BE" */
    int converted;        /* the file was not UTF-8 and was converted from `encoding` */
    uint64_t rows;        /* data rows or cards read (blank lines not counted) */
    uint64_t created;     /* rows that made a new client (dry run: would make) */
    uint64_t matched;     /* rows that found their client */
    uint64_t invalid;     /* rows skipped */
    uint64_t warnings;    /* rows imported with a caveat */
    unsigned long invalid_lines[SB_IMPORT_LINES_KEPT]; /* the first skipped rows' lines */
    size_t ninvalid_lines;
    int looked_up; /* dry run: the database was consulted (db given) */
};

/* Import the clients in the file at `path`. `db` may be NULL only for a dry
 * run, which then checks the file alone. `res` is filled as far as the
 * import got, also on failure. SB_ERR_IO: the file cannot be read;
 * SB_ERR_INVALID: it cannot be parsed at all (no usable header); other
 * codes: the database failed (batches committed before stay committed; a
 * re-run is safe). Bad rows are not a failure: they are reported through
 * `problem` and counted. */
int sb_import_clients(struct sb_db *db, const char *path, const struct sb_import_options *opt,
                      struct sb_import_result *res, char *err, size_t errlen);

/* The default region configured on a channel (config "default_region"),
 * for --channel. `region` gets "" when the channel sets none;
 * SB_ERR_NOT_FOUND when there is no such channel. */
int sb_import_channel_region(struct sb_db *db, int64_t channel_id, char *region, size_t len,
                             char *err, size_t errlen);

#endif
