/* Exporting everything about clients, for moving away or for analysis.
 *
 * `sb_export()` writes JSON Lines files into a new (or empty) directory:
 *   clients.jsonl        one client a line: id, name, company, custom_fields,
 *                        merged_into, timestamps, identities [{kind, value,
 *                        raw, verified, display_name, created_at}], tags
 *   conversations.jsonl  one conversation a line, every column
 *   interactions.jsonl   one interaction a line, every column but the raw
 *                        message bytes (raw_sha256 names them), with
 *                        attachments as metadata [{id, filename,
 *                        content_type, size, sha256 (hex), …}]
 *   manifest.json        written last: format, version, exported_at,
 *                        schema_version and the counts of each file; a
 *                        directory without it is not a finished export.
 * Timestamps are ISO 8601 UTC ("2024-05-01T10:00:00.000000Z").
 *
 * Tables are read in pages (keyset on id), so memory stays flat for
 * millions of rows, and inside one read transaction, so the files are one
 * consistent snapshot while ingest goes on. */
#ifndef SB_EXPORT_H
#define SB_EXPORT_H

#include <stddef.h>
#include <stdint.h>

struct sb_db;

/* Rows read per query: large enough that round trips do not dominate,
 * small enough that a page of long e-mails stays a few megabytes. */
#define SB_EXPORT_PAGE 1000

struct sb_export_counts {
    uint64_t clients, identities, tags, conversations, interactions, attachments;
};

/* Export into `dir`, which must not exist or be empty (SB_ERR_EXISTS
 * otherwise; SB_ERR_IO when it cannot be created or written). On failure the
 * files written so far are removed again. */
int sb_export(struct sb_db *db, const char *dir, struct sb_export_counts *counts_r, char *err,
              size_t errlen);

#endif
