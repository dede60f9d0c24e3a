/* Integration test harness: a scratch database on the private MariaDB, the
 * switchboard binary under test started on a free port, and a small libcurl
 * client. Every suite gets its own database (switchboard_test_<pid>_<n>),
 * dropped at the end, so runs never see each other's rows. */
#ifndef SB_TEST_HARNESS_H
#define SB_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct th_server {
    pid_t pid;
    int port;
    char log_path[512];
};

struct th_resp {
    long status;
    char *body;
    char headers[16384];
    double seconds;
};

/* Create and migrate a scratch database; sets SWITCHBOARD_DB for children. */
void th_db_setup(void);
void th_db_teardown(void);
/* The URL of the scratch database. */
const char *th_db_url(void);
/* A connection of the test's own to the scratch database (fails the run
 * when it cannot be had). Close it with sb_db_close(). */
struct sb_db *th_db_connect(void);

/* Path of the binary under test ($SB_BUILD/switchboard). */
const char *th_bin(void);
/* Run the binary with `args` (NULL-terminated), optional stdin text; returns
 * the exit status and fills `out` (stdout, NUL-terminated) when given. */
int th_run(const char *const *args, const char *stdin_text, char *out, size_t outlen);

/* Start `switchboard serve` on a free port with extra "NAME=value"
 * environment entries (NULL-terminated, may be NULL); waits for /healthz. */
void th_server_start(struct th_server *s, const char *const *env);
/* SIGTERM and wait; returns the exit status (or -1 when killed by a signal). */
int th_server_stop(struct th_server *s);

/* One HTTP request to the server. `headers` NULL-terminated, may be NULL;
 * `body` may be NULL. Returns 0 or -1 on a transport error. */
int th_http(const struct th_server *s, const char *method, const char *path, const char *body,
            const char *const *headers, struct th_resp *r);
void th_resp_free(struct th_resp *r);
/* A JSON API call with `auth` (a "Cookie: …" or "Authorization: …" line): asserts the
 * transport and the status `want` (printing the body when it differs) and returns the
 * parsed body, NULL when it is empty. The caller owns the result. */
json_t *th_call(const struct th_server *s, const char *auth, const char *method, const char *path,
                const char *body, long want);
/* A response header's value (case-insensitive name) copied into out; 0 if found. */
int th_header(const struct th_resp *r, const char *name, char *out, size_t outlen);

/* Create a user through the CLI and return a session cookie "sb_session=..." for it. */
void th_user(const char *email, const char *role, const char *password);
void th_login(const struct th_server *s, const char *email, const char *password, char *cookie,
              size_t cookielen);

/* A mock provider API on loopback: answers every request with one canned
 * response and remembers the requests it got (line + body, separated by
 * "\n\n", one after another). */
struct th_mock {
    int port;
    int fd;
    unsigned long thread;
    char response[4096]; /* full HTTP response, set before requests arrive */
    char seen[65536];
    int requests;
    /* Scripted answers (th_mock_push), each used once, in order, before the
     * canned response. */
    char queue[64][4096];
    int queue_delay_ms[64];
    int queued, queue_next;
    /* Every request in full: request line and headers (each ending "\r\n"),
     * and body; read them with th_mock_request(). */
    char *heads[256], *bodies[256];
};
void th_mock_start(struct th_mock *m, int status, const char *json_body);
void th_mock_respond(struct th_mock *m, int status, const char *json_body);
void th_mock_stop(struct th_mock *m);
/* Queue one answer for the next request not yet answered by the queue;
 * `extra_headers` are "Name: value\r\n" lines (e.g. "Retry-After: 1\r\n")
 * or NULL. */
void th_mock_push(struct th_mock *m, int status, const char *extra_headers, const char *body);
/* The same, answered only after `delay_ms` (a provider that hangs). */
void th_mock_push_delayed(struct th_mock *m, int delay_ms, int status, const char *extra_headers,
                          const char *body);
/* Request `i` (0-based) as seen: copies of its head (request line and
 * headers) and body. 0 when there is such a request. */
int th_mock_request(struct th_mock *m, int i, char *head, size_t headlen, char *body,
                    size_t bodylen);
/* Wait until `n` requests have been seen or `timeout_ms` passed; returns
 * how many have been seen. */
int th_mock_wait(struct th_mock *m, int n, int timeout_ms);

/* A private Dovecot (IMAP only, no TLS) on a free loopback port, with one
 * maildir under a fresh temporary directory. Any user name logs in with
 * TH_DOVECOT_PASSWORD and sees the same maildir. Runs as root with its
 * login processes as dovenull and mail access as dovecot (DESIGN.md). */
#define TH_DOVECOT_PASSWORD "secret"
struct th_dovecot {
    pid_t pid;
    int port;          /* IMAP, STARTTLS offered */
    int imaps_port;    /* IMAP over TLS; the certificate is self-signed for localhost */
    char dir[256];     /* config, sockets, state, log */
    char maildir[320]; /* the INBOX maildir; other folders are .NAME inside it */
};
void th_dovecot_start(struct th_dovecot *d);
void th_dovecot_stop(struct th_dovecot *d);
/* Drop one message into new/ of `folder` (NULL or "INBOX" for the inbox),
 * as a mail delivery agent would (tmp/, then rename). */
void th_maildir_deliver(const struct th_dovecot *d, const char *folder, const char *raw,
                        size_t len);

/* Postfix's smtp-sink on a free loopback port (scripts/smtp-tools puts it
 * under var/tools; the harness runs that script when it is missing). Every
 * mail transaction is dumped to its own file: smtp-sink's X-Mail-Args /
 * X-Rcpt-Args lines (the envelope) and a Received line, then the message
 * as received, with LF line ends. `args` are extra smtp-sink options
 * (NULL-terminated, may be NULL): {"-r", "RCPT", NULL} answers RCPT TO with
 * 450, {"-f", "RCPT", NULL} with 500; -b / -B set those replies' text. */
struct th_smtp_sink {
    pid_t pid;
    int port;
    char dir[256]; /* the dumps, one file per message */
};
void th_smtp_sink_start(struct th_smtp_sink *s, const char *const *args);
/* The same on a given port (a sink replaced by one that answers otherwise,
 * where a channel already points). */
void th_smtp_sink_start_on(struct th_smtp_sink *s, int port, const char *const *args);
void th_smtp_sink_stop(struct th_smtp_sink *s);
/* Wait until `n` messages have been dumped or `timeout_ms` passed; returns
 * how many there are. */
int th_smtp_sink_wait(const struct th_smtp_sink *s, int n, int timeout_ms);
/* Message `i` (0-based, in order of arrival): the whole dump, malloc'd and
 * NUL-terminated; NULL when there is no such message. */
char *th_smtp_sink_message(const struct th_smtp_sink *s, int i, size_t *len_r);

/* Path of the repository root (tests run from it). */
const char *th_root(void);

#endif
