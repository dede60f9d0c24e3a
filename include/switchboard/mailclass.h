/* Automatic-mail classifier: tells ordinary mail from auto-replies (RFC 3834
 * and vacation responders), bounces (RFC 3464 delivery reports and the
 * non-standard MTA formats) and complaints (RFC 5965 ARF feedback reports).
 *
 * mime.c gathers what the classifier needs while it parses (the top-level
 * headers, the report parts, the returned original headers, the text) and
 * calls sb_mailclass_classify(); the result goes to the inbound's flags and
 * meta: meta.classification is always set ("ordinary", "auto_reply",
 * "bounce", "complaint"), with meta.auto_reply = reason, meta.bounce =
 * {recipient, status, class, diagnostic, action, original_message_id} or
 * meta.complaint = {recipient, feedback_type, suppress, ...}: suppress is
 * false for reports about the message rather than a wish of the recipient
 * (auth-failure DMARC/DKIM/SPF reports, not-spam); campaigns suppress the
 * recipient of a hard bounce and of a complaint with suppress true. Bounces and complaints
 * get SB_IN_BOUNCE (no client, no conversation); auto-replies
 * SB_IN_AUTO_REPLY.
 *
 * Pure: no I/O, no globals; safe on any thread. */
#ifndef SB_MAILCLASS_H
#define SB_MAILCLASS_H

#include <jansson.h>
#include <stddef.h>

/* One header field as it appeared: name, unfolded value (raw bytes, not
 * RFC 2047 decoded). */
struct sb_mail_header {
    const char *name;
    const char *value;
};

struct sb_mailclass_input {
    const struct sb_mail_header *headers; /* the message's own header fields, in order */
    size_t nheaders;
    const char *content_type; /* top level, lower case: "multipart/report" */
    const char *report_type;  /* its report-type parameter, lower case, or NULL */
    const char *subject;      /* decoded, UTF-8, or NULL */
    const char *from_addr;    /* From's addr-spec, or NULL */
    const char *from_name;    /* From's display name (decoded), or NULL */
    const char *text;         /* the text body (UTF-8), or NULL */
    /* Decoded bodies of the report parts, when present (NUL-terminated). */
    const char *delivery_status; /* message/delivery-status (or its text/ stand-ins) */
    const char *feedback_report; /* message/feedback-report */
    const char *original;        /* message/rfc822 or text/rfc822-headers: the returned message */
};

/* Classification results. */
enum sb_mailclass {
    SB_MAIL_ORDINARY,
    SB_MAIL_AUTO_REPLY,
    SB_MAIL_BOUNCE,
    SB_MAIL_COMPLAINT,
};

/* "ordinary", "auto_reply", "bounce", "complaint". */
const char *sb_mailclass_name(enum sb_mailclass c);

/* Classify; add the details to `meta` (an object) and return the class in
 * *class_r. SB_ERR_NOMEM is the only failure. */
int sb_mailclass_classify(const struct sb_mailclass_input *mi, json_t *meta,
                          enum sb_mailclass *class_r);

#endif
