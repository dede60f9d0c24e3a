/* ingest(): the one door into storage (DESIGN.md, "Data flow").
 *
 * In one transaction per batch it: (1) returns the stored interaction when
 * (channel_id, external_id) is known — redelivery is a no-op, an edit
 * updates the text and keeps the original in meta; (2) normalises every
 * identity and resolves the client — known identity → that client; several
 * clients → the oldest, new identities attached only when unclaimed, and a
 * merge suggestion; none → a new client with all identities; (3) finds or
 * opens the conversation; (4) inserts the interaction; (5) appends events.
 *
 * Concurrency: no table locks. Two workers creating the same new person
 * collide on UNIQUE(kind, value); the loser rolls back and retries, and
 * then finds the winner's client. Runs on a DB worker or a poller thread
 * with that thread's own connection. */
#ifndef SB_INGEST_H
#define SB_INGEST_H

#include "switchboard/inbound.h"

#include <stddef.h>
#include <stdint.h>

struct sb_db;

struct sb_ingest_options {
    const char *default_region; /* for phones without a country code */
    int reopen_window_s;        /* a resolved conversation reopens within this; else a new one */
};

struct sb_ingest_result {
    int64_t interaction_id;
    int64_t conversation_id; /* 0 for bounces */
    int64_t client_id;       /* 0 for bounces */
    int duplicate;           /* it was already stored: nothing changed (or an edit applied) */
    int client_created;
    int conversation_created;
};

/* Ingest one inbound. */
int sb_ingest(struct sb_db *db, const struct sb_ingest_options *opt, const struct sb_inbound *in,
              struct sb_ingest_result *res, char *err, size_t errlen);

/* Ingest several in one transaction (one commit, one fsync): how webhooks
 * waiting for the same worker and IMAP batches are stored. `res` has `n`
 * slots. All or nothing: on failure no inbound of the batch is stored. */
int sb_ingest_batch(struct sb_db *db, const struct sb_ingest_options *opt,
                    const struct sb_inbound *const *in, size_t n, struct sb_ingest_result *res,
                    char *err, size_t errlen);

/* Work of the caller's that must commit or fail with the batch (the IMAP
 * cursor, bounce suppressions): runs inside the batch's transaction after
 * the inbounds are stored, before COMMIT, with their results. A failure
 * rolls the whole batch back. It runs again when the transaction is
 * retried, so it must only write through `db`. */
typedef int (*sb_ingest_hook)(struct sb_db *db, const struct sb_inbound *const *in,
                              const struct sb_ingest_result *res, size_t n, void *arg, char *err,
                              size_t errlen);

/* sb_ingest_batch with a hook (may be NULL); `n` may be 0, and then only
 * the hook runs in the transaction. */
int sb_ingest_batch_hook(struct sb_db *db, const struct sb_ingest_options *opt,
                         const struct sb_inbound *const *in, size_t n, struct sb_ingest_result *res,
                         sb_ingest_hook hook, void *arg, char *err, size_t errlen);

#endif
