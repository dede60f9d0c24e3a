/* Mail composition: one outgoing e-mail described field by field in, one
 * RFC 5322 message (CRLF line ends, 7-bit clean) out.
 *
 * The e-mail channel's SMTP side (agent replies) and campaigns build their
 * messages here, so headers, encodings and Message-IDs are made one way:
 * non-ASCII header text becomes RFC 2047 encoded words, UTF-8 bodies are
 * quoted-printable (or base64 when mostly non-ASCII) with lines of at most
 * 76 characters, text + html become multipart/alternative. The result can be
 * handed to libcurl's SMTP upload unchanged and parses back with
 * sb_mime_parse (mime.h) to the same subject, text, html and ids.
 *
 * Pure: no I/O besides the random bytes of a generated Message-ID, no
 * globals; safe on any thread. */
#ifndef SB_MAILCOMPOSE_H
#define SB_MAILCOMPOSE_H

#include <stddef.h>
#include <time.h>

/* A file attached to a message: a base64 part of a multipart/mixed, its
 * name as RFC 2231 parameters (UTF-8, split into continuations). */
struct sb_mail_file {
    const char *filename;     /* UTF-8; NULL → "file" */
    const char *content_type; /* "type/subtype"; anything else → application/octet-stream */
    const unsigned char *data;
    size_t len;
};

struct sb_mail_out {
    const char *from; /* "Name <addr>" or "addr" (UTF-8 name → RFC 2047) */
    const char *const *to;
    size_t nto;              /* addresses, "Name <addr>" or "addr" */
    const char *subject;     /* UTF-8; RFC 2047 encoded when not ASCII; NULL = none */
    const char *text, *html; /* either may be NULL; both → multipart/alternative */
    const char *message_id;  /* without <>; NULL → one is generated */
    const char *in_reply_to; /* without <>; NULL = none */
    const char *const *references;
    size_t nreferences; /* without <>, oldest first */
    const char *const *extra_headers;
    size_t nextra; /* "Name: value" (List-Unsubscribe, …);
                      refused if they hold CR/LF */
    time_t date;   /* 0 → now */
    const struct sb_mail_file *files;
    size_t nfiles; /* with files the body becomes the first part of a multipart/mixed */
};

/* The RFC 5322 message with CRLF line ends: Date, From, To, Subject,
 * Message-ID, In-Reply-To, References, MIME-Version, Content-Type and
 * Content-Transfer-Encoding (7bit for short ASCII, else quoted-printable or
 * base64; lines ≤ 76, headers folded under 998), extra headers.
 * *out is malloc'd (NUL-terminated; *outlen without the NUL), owned by the
 * caller. SB_ERR_INVALID (with a message in err) for no From, no recipient,
 * no body, an address or header holding CR/LF/NUL, an extra header without
 * "Name:" or naming one this module writes; SB_ERR_NOMEM. */
int sb_mail_compose(const struct sb_mail_out *m, char **out, size_t *outlen, char *err,
                    size_t errlen);

/* A new globally unique Message-ID, without <>, "<random>@<domain>"
 * (128 random bits, base32). A NULL or empty domain gives "switchboard.local".
 * buflen ≥ 64 + strlen(domain) always suffices; a shorter buffer gets "". */
void sb_mail_message_id(const char *domain, char *buf, size_t buflen);

/* The domain of an address ("Name <a@b.c>" or "a@b.c" → "b.c") copied into
 * buf; "" when there is none. For sb_mail_message_id's domain. */
void sb_mail_addr_domain(const char *addr, char *buf, size_t buflen);

/* The bare address of "Name <a@b.c>" or "a@b.c" → "a@b.c" copied into buf
 * (for SMTP MAIL FROM / RCPT TO); "" when none or it would not fit. */
void sb_mail_addr_spec(const char *addr, char *buf, size_t buflen);

/* "Re: " + subject, unless the subject already starts with a reply prefix
 * ("Re:", "RE:", "Re[2]:", "AW:", "SV:", "Ответ:"), which is kept as it is, so
 * a thread never grows "Re: Re: ". NULL or empty subject → "Re:".
 * malloc'd, NULL on allocation failure. */
char *sb_mail_reply_subject(const char *subject);

/* The HTML part of a plain-text reply: the text HTML-escaped, line breaks
 * as <br>, quoted lines ("> …") as a blockquote-styled block, in a minimal
 * document. malloc'd, NULL on allocation failure. */
char *sb_mail_text_to_html(const char *text);

/* The message a reply answers, as the caller read it (mailcompose reads no
 * database): its sender as the mail named it ("Anna <anna@example.ru>"),
 * when it was written (0: unknown) and its text part. */
struct sb_mail_quote {
    const char *author; /* NULL or "" → "the sender" */
    time_t date;
    const char *text; /* NULL or blank → nothing is quoted */
};

/* How much of the answered text is quoted: a long thread's history stays in
 * the thread, not in every reply. The cut falls on a line end and is shown
 * as "[…]". */
#define SB_MAIL_QUOTE_MAX_BYTES 8192
#define SB_MAIL_QUOTE_MAX_LINES 200

/* "On Mon, 23 Nov 2026 10:00 UTC, Anna <anna@example.ru> wrote:" (no date:
 * "Anna <anna@example.ru> wrote:"), one line, into buf. */
void sb_mail_quote_attribution(const struct sb_mail_quote *q, char *buf, size_t buflen);

/* The text and HTML parts of an e-mail reply quoting the answered message
 * the way mail clients do. text/plain: the reply, a blank line, the
 * attribution line, then the answered text (CRs dropped, trailing blank
 * lines trimmed, cut to the limits above) with "> " before every line (">"
 * alone before an empty or already quoted line, so no line ends in a space).
 * text/html: the reply as sb_mail_text_to_html renders it, the attribution,
 * and the answered text HTML-escaped in a <blockquote type="cite"> (its own
 * quoted lines in nested ones). q NULL or without text: the reply alone and
 * its sb_mail_text_to_html. Both malloc'd, owned by the caller; on failure
 * both NULL. SB_ERR_INVALID for a NULL reply, SB_ERR_NOMEM. */
int sb_mail_reply_quote(const char *reply, const struct sb_mail_quote *q, char **text_r,
                        char **html_r, char *err, size_t errlen);

#endif
