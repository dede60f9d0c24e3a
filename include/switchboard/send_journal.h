/* The send journal: a per-process local file of the campaign messages whose
 * end of data has been handed to an SMTP connection, so that a restart after
 * kill -9 knows which leased recipients were already sent and does not send
 * them again (campaign_send.h, docs/campaigns.md "Exactly once").
 *
 * The database learns that a message was sent only when the sender's writer
 * commits its result, a round after the SMTP server said 250. The journal
 * closes that gap: one short line, appended with write(2) just before the
 * end-of-data sequence goes out. A kill -9 does not lose what write(2) put in
 * the page cache, so no fsync is needed for the crash case; after a power
 * loss the tail may be missing and those messages are sent again (with the
 * same Message-ID), as before the journal existed.
 *
 * Files: DIR/send-journal.PID.SEQ, each starting with a header line naming
 * the database (the tag) and held with flock(LOCK_EX) by its process for
 * as long as it lives. A file is created under a hidden temporary name,
 * locked, and only then linked to its real name, so nobody sees it unlocked.
 * Several processes (nodes on one host, tests running two servers) share a
 * directory: recovery takes only files whose lock it can get, i.e. whose
 * owner is dead, and only those with its own tag.
 *
 * Lines: "H CAMPAIGN RECIPIENT TOKENHEX" (handed over) and "N …" (the server
 * did not take it after all: refused at end of data, or the connection broke
 * before its answer). Recovery returns the H entries without an N. A torn
 * last line (no newline) is ignored; a malformed line elsewhere marks the
 * file damaged, and a damaged file is renamed, not removed.
 *
 * Rotation: a new file is started once the current one passes rotate_bytes;
 * a file that is not the current one is removed as soon as every entry in
 * it is settled (its result committed), so the journal stays small.
 *
 * Threads: sb_journal_handed, _refused and _settled may be called from any
 * thread (one mutex); open, close and recovery from one thread. */
#ifndef SB_SEND_JOURNAL_H
#define SB_SEND_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define SB_JOURNAL_ROTATE_BYTES (1024 * 1024)       /* start a new file past this */
#define SB_JOURNAL_TOKEN_LEN    16                  /* a claim token (campaign_recipients) */
#define SB_JOURNAL_TAG_MAX      512                 /* the header's database name */
#define SB_JOURNAL_READ_MAX     (64L * 1024 * 1024) /* a dead file bigger than this is damaged */

struct sb_journal;
struct sb_db_params;

/* The tag for a database: "mariadb://HOST:PORT/NAME" or the socket's path
 * (no user, no password). Journals of another database are left alone. */
void sb_journal_tag(const struct sb_db_params *p, char *out, size_t outlen);

/* Create DIR (mode 700) when missing and the process's first file.
 * rotate_bytes 0: SB_JOURNAL_ROTATE_BYTES. */
int sb_journal_open(const char *dir, const char *tag, size_t rotate_bytes, struct sb_journal **j_r,
                    char *err, size_t errlen);

/* Append "H …": the message is about to be handed over. *file_r names the
 * file it went to (for _refused and _settled); 0 when nothing was written
 * (then the error is set). */
int sb_journal_handed(struct sb_journal *j, int64_t campaign_id, int64_t recipient_id,
                      const unsigned char *token, unsigned *file_r, char *err, size_t errlen);

/* Append "N …" to the same file: the server did not accept it. */
int sb_journal_refused(struct sb_journal *j, unsigned file, int64_t campaign_id,
                       int64_t recipient_id, const unsigned char *token, char *err, size_t errlen);

/* The entry's result is committed: its file may go once all are. */
void sb_journal_settled(struct sb_journal *j, unsigned file);

/* Files whose entries are all settled are removed; the others stay (and
 * their locks go) for the next start to recover. *j is cleared. */
void sb_journal_close(struct sb_journal **j);

/* Numbers for logs and tests. */
struct sb_journal_stats {
    unsigned files; /* files open now */
    unsigned long long entries, unsettled;
};
void sb_journal_stats(struct sb_journal *j, struct sb_journal_stats *st);

/* -- Recovery (at start, before anything is claimed) ----------------------- */

struct sb_journal_entry {
    int64_t campaign_id, recipient_id;
    unsigned char token[SB_JOURNAL_TOKEN_LEN];
};

struct sb_journal_recovered {
    struct sb_journal_entry *entries; /* H without N, each once */
    size_t nentries;
    size_t files;   /* dead files of our tag, locked until _finish */
    size_t busy;    /* files skipped: their owner is alive */
    size_t other;   /* files skipped: another database's */
    size_t damaged; /* malformed lines (the torn last line not counted) */
    /* private */
    int *fds;
    char **paths;
    int *bad;
};

/* Lock and read every dead file of `tag` in DIR (a missing DIR is empty).
 * The files stay locked until sb_journal_recover_finish. */
int sb_journal_recover(const char *dir, const char *tag, struct sb_journal_recovered *r, char *err,
                       size_t errlen);

/* applied: every entry has been written to the database, the files go
 * (damaged ones are renamed "damaged-…" and kept). Otherwise they stay for
 * the next try. Releases the locks and frees r. */
void sb_journal_recover_finish(struct sb_journal_recovered *r, int applied);

#endif
