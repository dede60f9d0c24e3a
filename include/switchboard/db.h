/* One MariaDB connection and the statements prepared on it.
 *
 * Every statement that carries data is a prepared statement with bound
 * parameters; SQL text is a constant (a named query in the calling module),
 * never assembled from input. Statements are prepared once per connection and
 * cached by their text's address.
 *
 * A connection is owned by exactly one thread at a time (a DB worker, a CLI
 * command); nothing here locks. A lost connection is reopened on next use.
 * A loss during COMMIT is reported as SB_ERR_UNKNOWN_COMMIT: the change may or
 * may not be stored, and callers rely on idempotency keys rather than resend. */
#ifndef SB_DB_H
#define SB_DB_H

#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* Connection parameters parsed from
 * mariadb://user:pass@host:port/db or mariadb://user@localhost/db?socket=/path */
struct sb_db_params {
    char *user;
    char *password;
    char *host;
    unsigned port;
    char *database;
    char *socket;
};

int sb_db_params_parse(const char *url, struct sb_db_params *p, char *err, size_t errlen);
void sb_db_params_free(struct sb_db_params *p);

/* Open a connection (session time zone UTC, utf8mb4). `multi` allows
 * multi-statement scripts: only the migration runner asks for it. */
int sb_db_open(const struct sb_db_params *p, int multi, struct sb_db **db_r, char *err,
               size_t errlen);
void sb_db_close(struct sb_db **db);

/* A bound value. Build them with the SB_* macros below. */
enum sb_db_type { SB_DB_NULL, SB_DB_INT, SB_DB_TEXT, SB_DB_BLOB };
struct sb_db_val {
    enum sb_db_type type;
    int64_t i;
    const void *p;
    size_t len;
};
#define SB_NULL         ((struct sb_db_val){.type = SB_DB_NULL})
#define SB_INT(v)       ((struct sb_db_val){.type = SB_DB_INT, .i = (int64_t)(v)})
#define SB_TEXT(s)      sb_db_text(s)
#define SB_BLOB(ptr, n) ((struct sb_db_val){.type = SB_DB_BLOB, .p = (ptr), .len = (n)})
struct sb_db_val sb_db_text(const char *s); /* NULL s binds SQL NULL */

/* A fully fetched result: cells are NUL-terminated copies (binary columns too,
 * with their length in `lens`), NULL for SQL NULL. Owned by the caller; free
 * with sb_db_rows_free(). */
struct sb_db_rows {
    size_t nrows, ncols;
    char **cells;
    size_t *lens;
    uint64_t affected;
    uint64_t insert_id;
};

/* Run one statement. `rows_r` may be NULL for statements without results;
 * when given it is always initialised (empty on error). */
int sb_db_exec(struct sb_db *db, const char *sql, const struct sb_db_val *args, size_t nargs,
               struct sb_db_rows *rows_r, char *err, size_t errlen);

const char *sb_db_cell(const struct sb_db_rows *r, size_t row, size_t col);
int64_t sb_db_cell_int(const struct sb_db_rows *r, size_t row, size_t col);
void sb_db_rows_free(struct sb_db_rows *r);

/* Run one statement given as text, unprepared and uncached: for generated
 * bulk statements in benchmarks and test set-up. Never with input in it. */
int sb_db_exec_text(struct sb_db *db, const char *sql, char *err, size_t errlen);

int sb_db_begin(struct sb_db *db, char *err, size_t errlen);
int sb_db_commit(struct sb_db *db, char *err, size_t errlen);
void sb_db_rollback(struct sb_db *db);

/* Check the connection, reopening it when it was lost: the /readyz probe. */
int sb_db_ping(struct sb_db *db, char *err, size_t errlen);

/* Run a multi-statement script of constant DDL (migrations only; the handle
 * must have been opened with `multi`). */
int sb_db_script(struct sb_db *db, const char *sql, size_t len, char *err, size_t errlen);

#endif
