/* IMAP client: the protocol side of the e-mail channel, on libetpan.
 *
 * Read-only by construction: folders are opened with EXAMINE and bodies are
 * fetched with BODY.PEEK[], so the mailbox is left exactly as it was (no
 * \Seen, no flags, no expunge). The poller (mailbox.h) does scheduling and
 * storage; `switchboard channel test` uses the same calls.
 *
 * A session is used by one thread at a time, except sb_imap_cancel(), which
 * another thread may call to break a blocking read (server stop). */
#ifndef SB_IMAP_H
#define SB_IMAP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum sb_imap_tls { SB_IMAP_TLS_IMAPS, SB_IMAP_TLS_STARTTLS, SB_IMAP_TLS_NONE };

/* The IMAP side of an e-mail channel's configuration (strings borrowed
 * from the JSON it was read from). */
struct sb_imap_conf {
    const char *host;
    int port;
    enum sb_imap_tls tls;
    int tls_verify; /* check the server certificate against the system CAs and the host name */
    const char *username;
    const char *password;
    int timeout_s; /* per network operation */
};

/* Read the conf from a validated channel configuration. */
int sb_imap_conf_read(const json_t *cfg, struct sb_imap_conf *c, char *err, size_t errlen);

struct sb_imap;

/* Connect, negotiate TLS as configured, LOGIN and read CAPABILITY.
 * SB_ERR_UNAUTHORIZED when the server refused the credentials,
 * SB_ERR_UNAVAILABLE for network/TLS trouble; `err` says which. */
int sb_imap_connect(const struct sb_imap_conf *c, struct sb_imap **s_r, char *err, size_t errlen);
/* LOGOUT (best effort) and free; NULL-safe. */
void sb_imap_close(struct sb_imap **s);
/* Break whatever the session's thread is blocked on; any thread. */
void sb_imap_cancel(struct sb_imap *s);

int sb_imap_has_idle(const struct sb_imap *s);

struct sb_imap_folder {
    uint32_t uidvalidity;
    uint32_t uidnext; /* 0 when the server did not say */
    uint32_t exists;
};

/* EXAMINE a folder (name in UTF-8; encoded to modified UTF-7 here). */
int sb_imap_examine(struct sb_imap *s, const char *folder, struct sb_imap_folder *f, char *err,
                    size_t errlen);

struct sb_imap_uid {
    uint32_t uid;
    uint32_t size;
};

/* UIDs and sizes of the selected folder's messages with first <= UID <=
 * last (last 0: no upper bound), ascending. *list_r is malloc'd (NULL when
 * none). */
int sb_imap_uids(struct sb_imap *s, uint32_t first, uint32_t last, struct sb_imap_uid **list_r,
                 size_t *n_r, char *err, size_t errlen);

/* The lowest UID of a message that arrived on or after `days` days ago; 0
 * when none did. */
int sb_imap_first_uid_since(struct sb_imap *s, int days, uint32_t *uid_r, char *err, size_t errlen);

/* One fetched message: the raw bytes are the session's until the callback
 * returns. A non-zero return stops the fetch with that code. */
typedef int (*sb_imap_message_fn)(uint32_t uid, const unsigned char *raw, size_t len, void *arg);

/* BODY.PEEK[] of the given UIDs (ascending) in one UID FETCH. Messages
 * expunged meanwhile are simply missing. */
int sb_imap_fetch(struct sb_imap *s, const uint32_t *uids, size_t n, sb_imap_message_fn fn,
                  void *arg, char *err, size_t errlen);

/* IDLE on the selected folder until the server reports something, `seconds`
 * pass, or `wake_fd` (may be -1) becomes readable. */
int sb_imap_idle(struct sb_imap *s, int seconds, int wake_fd, char *err, size_t errlen);

/* Every folder's name (UTF-8), as a JSON array of strings. */
int sb_imap_list(struct sb_imap *s, json_t **names_r, char *err, size_t errlen);

/* Modified UTF-7 (RFC 3501 5.1.3) of a UTF-8 folder name; caller frees. */
char *sb_imap_utf7_encode(const char *utf8);
char *sb_imap_utf7_decode(const char *utf7);

#endif
