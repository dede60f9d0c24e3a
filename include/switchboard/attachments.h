/* Attachments as agents see and send them: the pure rules (what type a file
 * really is, a safe file name, the Content-Disposition of a download) and the
 * SQL of uploads (schema/007_attachments.sql) and attachment listings.
 *
 * Inbound files arrive through ingest (bytes, or a provider_ref the sender
 * fetches later); outbound ones start as an agent's upload, a blob with an
 * uploads row that only its uploader may use. A reply naming the upload
 * turns it into an attachments row of the reply's interaction in the
 * reply's transaction, and the sender hands the bytes to the channel
 * adapter (struct sb_out_file in channel.h). Served types come from a fixed
 * list, so a stored "text/html" or "image/svg+xml" is never served as such,
 * and only raster images are ever shown inline. */
#ifndef SB_ATTACHMENTS_H
#define SB_ATTACHMENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sb_db;
struct sb_db_rows;

/* One upload's ceiling whatever server.body_limit allows: a file is one blob
 * INSERT, which must fit in MariaDB's max_allowed_packet (16 MiB default). */
#define SB_UPLOAD_MAX (10 * 1024 * 1024)
/* Files one reply may carry (Telegram's media group takes 10). */
#define SB_REPLY_FILES_MAX 10
/* Unsent uploads are kept this long. */
#define SB_UPLOAD_TTL_S 86400

/* The type to store for these bytes: what their first bytes prove (PNG,
 * JPEG, GIF, WebP, PDF, ZIP, OGG…), else the declared type when it is on
 * our list and the bytes do not contradict it, else
 * "application/octet-stream". A static string. */
const char *sb_att_sniff(const unsigned char *p, size_t n, const char *declared);

/* The Content-Type to serve for a stored type: itself when on our list,
 * else "application/octet-stream". A static string. */
const char *sb_att_served_type(const char *stored);

/* 1 when the bytes are a PNG, JPEG, GIF or WebP image and `type` says so:
 * the only files served inline. */
int sb_att_inline_ok(const char *type, const unsigned char *p, size_t n);

/* A file name safe to store and to hand to mail and messengers: the last
 * path component, no control characters, valid UTF-8 (bad bytes become
 * '_'), no leading dots, at most 200 bytes; "file" when nothing is left. */
void sb_att_filename_clean(const char *in, char *out, size_t outlen);

/* `attachment; filename="ascii"; filename*=UTF-8''pct` (RFC 6266 / 8187),
 * or `inline; …`. SB_ERR_TOO_LARGE when out is too small. */
int sb_att_disposition(const char *filename, int inline_, char *out, size_t outlen);

/* -- SQL ------------------------------------------------------------------ */

/* Store an upload (blob and uploads row, one transaction). */
int sb_att_upload_store(struct sb_db *db, int64_t user_id, const char *filename,
                        const char *content_type, const void *data, size_t len, int64_t *id_r,
                        char *err, size_t errlen);

/* In the caller's transaction: turn the user's uploads `ids` into
 * attachments of `interaction_id`. SB_ERR_FORBIDDEN naming the first id
 * that is not one of this user's uploads (another agent's, used already,
 * or pruned); the caller rolls back. */
int sb_att_link_uploads(struct sb_db *db, int64_t user_id, int64_t interaction_id,
                        const int64_t *ids, size_t n, char *err, size_t errlen);

/* In the caller's transaction: the files of `interaction_id` as the payload
 * of a link-sending kind: [{"url": "<public_url>/f/<token>", "filename",
 * "content_type", "size"}], each link signed (campaign.h's token scheme,
 * kind SB_TOK_FILE) and valid for SB_FILE_LINK_TTL_S. */
#define SB_FILE_LINK_TTL_S (7 * 86400)
int sb_att_links(struct sb_db *db, const unsigned char master_key[32], const char *public_url,
                 int64_t interaction_id, json_t **files_r, char *err, size_t errlen);

/* A public link's attachment: SB_OK and the id when `token` is intact, of
 * kind SB_TOK_FILE and not expired; SB_ERR_NOT_FOUND otherwise. */
int sb_att_link_check(const unsigned char master_key[32], const char *token, int64_t *id_r);

/* Attach an "attachments" array to each item of `items` (interaction JSON
 * objects with "id") whose interaction has files. One query for the page:
 * the interactions of conversation `conv_id` with ids in [min_id, max_id]. */
int sb_att_annotate(struct sb_db *db, int64_t conv_id, int64_t min_id, int64_t max_id,
                    json_t *items, char *err, size_t errlen);

/* The files of an outbound interaction with their bytes, in id order:
 * columns filename, content_type, data. */
int sb_att_out_files(struct sb_db *db, int64_t interaction_id, struct sb_db_rows *rows_r, char *err,
                     size_t errlen);

/* Delete unsent uploads older than SB_UPLOAD_TTL_S and the blobs nothing
 * else points at. *n_r counts uploads removed. */
int sb_att_prune(struct sb_db *db, size_t *n_r, char *err, size_t errlen);

#endif
