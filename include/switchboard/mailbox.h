/* Mailbox poller: the IMAP side of every enabled e-mail channel, fetched
 * into the database exactly once.
 *
 * A bounded pool of threads (imap.max_threads), each with its own database
 * connection, works the mailboxes: one thread holds one mailbox at a time.
 * While there are no more mailboxes than threads, a thread stays with its
 * mailbox and waits in IDLE (where the server offers it); otherwise each
 * mailbox gets a pass every poll_seconds. New, changed and disabled
 * channels are noticed within imap.scan_seconds.
 *
 * Exactly once: per folder, the cursor (UIDVALIDITY, last UID) moves in the
 * same transaction that stores the fetched messages (ingest's hook), so a
 * crash at any moment neither loses nor doubles mail; ingest's dedup on
 * (channel, external id) makes a re-sync after a UIDVALIDITY change
 * harmless. A lease per mailbox in the database ("imap:<channel id>", DB
 * clock, generation fencing checked inside that same transaction) keeps
 * two nodes from fetching the same mailbox.
 *
 * Threads: sb_mailboxes_start/stop/stats run on the caller's thread (the
 * server's loop); everything else on the pool's threads. */
#ifndef SB_MAILBOX_H
#define SB_MAILBOX_H

#include <stddef.h>

struct sb_config;
struct sb_db_params;
struct sb_mailboxes;

/* Start the pool. `key` seals channel secrets (NULL when none is
 * configured: mailboxes then fail with a clear status). Returns at once;
 * mailboxes are found by the first scan. */
int sb_mailboxes_start(const struct sb_config *cfg, const struct sb_db_params *params,
                       const unsigned char *key, struct sb_mailboxes **mb_r, char *err,
                       size_t errlen);

/* Stop promptly: blocked reads and IDLE are interrupted, a batch being
 * stored finishes or rolls back, leases are released. NULL-safe. */
void sb_mailboxes_stop(struct sb_mailboxes **mb);

struct sb_mailbox_stats {
    unsigned mailboxes;
    unsigned failing;               /* mailboxes with 3 or more failures in a row */
    unsigned long long fetched;     /* messages fetched and stored (or found stored) */
    unsigned long long errors;      /* failed passes */
    unsigned long long quarantined; /* messages that could not be stored, kept raw */
};

void sb_mailboxes_stats(struct sb_mailboxes *mb, struct sb_mailbox_stats *st);

#endif
