/* Schema migrations (see migrate.h). */
#include "switchboard/migrate.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -- name: migrations-table
 * Created here rather than in 001 so that the runner can record 001 itself. */
static const char q_create_table[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                     " version INT UNSIGNED NOT NULL PRIMARY KEY,"
                                     " name VARCHAR(255) NOT NULL,"
                                     " checksum CHAR(64) NOT NULL,"
                                     " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
                                     ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/* -- name: migrate-lock
 * Two nodes started together must not both run 002. */
static const char q_lock[] = "SELECT GET_LOCK('switchboard.migrate', 120)";
static const char q_unlock[] = "SELECT RELEASE_LOCK('switchboard.migrate')";
static const char q_applied[] = "SELECT checksum FROM schema_migrations WHERE version = ?";
static const char q_record[] =
    "INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)";

struct mfile {
    unsigned version;
    char name[256];
};

static int cmp_mfile(const void *a, const void *b)
{
    const struct mfile *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

/* Accept exactly NNN_something.sql; anything else in the folder (README,
 * editor backups) is ignored. */
static int parse_name(const char *name, unsigned *version_r)
{
    size_t n = strlen(name);
    if (n < 9 || strcmp(name + n - 4, ".sql") != 0)
        return -1;
    if (!isdigit((unsigned char)name[0]) || !isdigit((unsigned char)name[1]) ||
        !isdigit((unsigned char)name[2]) || name[3] != '_')
        return -1;
    *version_r = (unsigned)((name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0'));
    return 0;
}

static int list_files(const char *dir, struct mfile **files_r, int *n_r, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "cannot open schema folder %s: %s", dir,
                       strerror(errno));
    struct mfile *files = NULL;
    int n = 0, cap = 0, rc = SB_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned v;
        if (parse_name(e->d_name, &v) != 0)
            continue;
        for (int i = 0; i < n; i++)
            if (files[i].version == v) {
                rc = sb_fail(err, errlen, SB_ERR_CONFIG, "two migrations numbered %03u: %s and %s",
                             v, files[i].name, e->d_name);
                goto out;
            }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct mfile *nf = realloc(files, (size_t)cap * sizeof *nf);
            if (!nf) {
                rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
                goto out;
            }
            files = nf;
        }
        files[n].version = v;
        snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
        n++;
    }
    qsort(files, (size_t)n, sizeof *files, cmp_mfile);
out:
    closedir(d);
    if (rc != SB_OK) {
        free(files);
        return rc;
    }
    *files_r = files;
    *n_r = n;
    return SB_OK;
}

static int read_file(const char *path, char **data_r, size_t *len_r, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sb_fail(err, errlen, SB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return sb_fail(err, errlen, SB_ERR_IO, "cannot read %s", path);
    }
    buf[len] = '\0';
    *data_r = buf;
    *len_r = len;
    return SB_OK;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)data, len);
    sodium_bin2hex(out, 65, h, sizeof h);
}

static int apply_one(struct sb_db *db, const char *dir, const struct mfile *m,
                     void (*print)(const char *), int *applied, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    char *sql = NULL;
    size_t len = 0;
    int rc = read_file(path, &sql, &len, err, errlen);
    if (rc != SB_OK)
        return rc;
    char sum[65];
    sha256_hex(sql, len, sum);
    struct sb_db_val v[] = {SB_INT(m->version)};
    struct sb_db_rows r;
    rc = sb_db_exec(db, q_applied, v, 1, &r, err, errlen);
    if (rc != SB_OK)
        goto out;
    if (r.nrows > 0) {
        if (strcmp(sb_db_cell(&r, 0, 0), sum) != 0)
            sb_warn("migrate", "%s changed after it was applied; add a new migration instead",
                    m->name);
        sb_db_rows_free(&r);
        goto out;
    }
    sb_db_rows_free(&r);
    char msg[512] = "";
    rc = sb_db_script(db, sql, len, msg, sizeof msg);
    if (rc != SB_OK) {
        rc = sb_fail(err, errlen, rc, "%s: %s", m->name, msg);
        goto out;
    }
    struct sb_db_val rec[] = {SB_INT(m->version), SB_TEXT(m->name), SB_TEXT(sum)};
    rc = sb_db_exec(db, q_record, rec, 3, NULL, err, errlen);
    if (rc != SB_OK)
        goto out;
    (*applied)++;
    if (print) {
        char line[300];
        snprintf(line, sizeof line, "applied %s", m->name);
        print(line);
    }
out:
    free(sql);
    return rc;
}

int sb_migrate(const struct sb_db_params *params, const char *schema_dir,
               void (*print)(const char *line), struct sb_migrate_result *res, char *err,
               size_t errlen)
{
    memset(res, 0, sizeof *res);
    struct mfile *files = NULL;
    int n = 0;
    int rc = list_files(schema_dir, &files, &n, err, errlen);
    if (rc != SB_OK)
        return rc;
    res->total = n;
    struct sb_db *db;
    rc = sb_db_open(params, 1, &db, err, errlen);
    if (rc != SB_OK)
        goto out;
    struct sb_db_rows r;
    rc = sb_db_exec(db, q_create_table, NULL, 0, NULL, err, errlen);
    if (rc == SB_OK)
        rc = sb_db_exec(db, q_lock, NULL, 0, &r, err, errlen);
    if (rc != SB_OK)
        goto out;
    int locked = sb_db_cell_int(&r, 0, 0) == 1;
    sb_db_rows_free(&r);
    if (!locked) {
        rc = sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                     "another migration has held the lock for two minutes");
        goto out;
    }
    for (int i = 0; i < n && rc == SB_OK; i++)
        rc = apply_one(db, schema_dir, &files[i], print, &res->applied, err, errlen);
    char ignored[64] = "";
    if (sb_db_exec(db, q_unlock, NULL, 0, &r, ignored, sizeof ignored) == SB_OK)
        sb_db_rows_free(&r);
out:
    sb_db_close(&db);
    free(files);
    return rc;
}
