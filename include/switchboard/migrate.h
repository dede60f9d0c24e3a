/* Schema migrations: schema/NNN_name.sql applied in order, each recorded in
 * schema_migrations with a checksum. Running it again changes nothing; two
 * nodes starting at once serialise on a named lock (GET_LOCK). MariaDB
 * commits DDL implicitly, so a migration that fails half-way is reported with
 * its file name and statement error and must be repaired by hand; keep each
 * file small and idempotent where possible. */
#ifndef SB_MIGRATE_H
#define SB_MIGRATE_H

#include <stddef.h>

struct sb_db_params;

struct sb_migrate_result {
    int applied; /* files applied by this run */
    int total;   /* files present */
};

/* Apply pending migrations from `schema_dir`. `print` (may be NULL) gets a
 * line per applied file. */
int sb_migrate(const struct sb_db_params *params, const char *schema_dir,
               void (*print)(const char *line), struct sb_migrate_result *res, char *err,
               size_t errlen);

#endif
