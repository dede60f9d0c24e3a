/* Automatic-mail classifier (see mailclass.h).
 *
 * DESIGN
 * Order matters: a bounce usually carries "Auto-Submitted: auto-replied"
 * too, and an ARF report is a multipart/report like a DSN, so complaints are
 * tested first, then bounces, then auto-replies.
 *
 * Complaints: report-type=feedback-report (RFC 5965), Hotmail's JMRP
 * ("complaint about message from ...", from staff@hotmail.com) and Apple
 * Mail's one-click unsubscribe (X-Apple-Unsubscribe: true).
 *
 * Bounces: a delivery-status part (RFC 3464), X-Failed-Recipients or an
 * SES notification is enough. Otherwise two independent signals are needed
 * among a daemon sender (MAILER-DAEMON, postmaster, "Mail Delivery
 * System"), a null Return-Path, a bounce subject and a bounce phrase in the
 * body, and one of them must be the daemon sender or the null Return-Path:
 * "Delivery failed: order not delivered ... could not be delivered" is a
 * client writing about a parcel, and a client forwarding a bounce to ask
 * for help is a client too. The failed recipient comes from the DSN
 * fields when there are any; else every address in the text is scored by its
 * context (at the start of a qmail/Postfix "<addr>:" line, after RCPT TO,
 * near an SMTP status or "user unknown", in the returned message's To) and
 * the best one wins; the bounce's own sender and recipient (the original
 * sender), daemon addresses and message ids never count.
 *
 * Hard or soft: 4.x.x is soft; 5.x.x is hard except mailbox full, message
 * too big and policy blocks (5.7.x without an unknown-user phrase), which
 * say nothing bad about the address. Without any code the phrases decide,
 * and an unknown failure is soft: a wrongly suppressed address costs more
 * than one more bounce. */
#include "switchboard/mailclass.h"
#include "switchboard/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How much body text the heuristics scan: reports put what matters first,
 * and a huge returned attachment must not cost time. */
#define SCAN_MAX (64 * 1024)
#define ADDR_MAX 320
#define CAND_MAX 64

/* ---- small text helpers ---- */

/* A lower-cased copy: ASCII, and Cyrillic А-Я/Ё (the vacation subjects we
 * match are English and Russian). NULL when out of memory. */
static char *lower_utf8(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        n = max;
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            r[i] = (char)tolower(c);
        } else if (c == 0xD0 && i + 1 < n) {
            unsigned char d = (unsigned char)s[i + 1];
            /* U+0410..U+041F -> U+0430..U+043F; U+0420..U+042F -> U+0440..U+044F */
            if (d >= 0x90 && d <= 0x9F) {
                r[i] = (char)0xD0, r[i + 1] = (char)(d + 0x20);
            } else if (d >= 0xA0 && d <= 0xAF) {
                r[i] = (char)0xD1, r[i + 1] = (char)(d - 0x20);
            } else if (d == 0x81) { /* Ё -> ё */
                r[i] = (char)0xD1, r[i + 1] = (char)0x91;
            } else {
                r[i] = (char)c, r[i + 1] = (char)d;
            }
            i++;
        } else {
            r[i] = (char)c;
        }
    }
    r[n] = '\0';
    return r;
}

static int contains_any(const char *hay, const char *const *needles)
{
    if (!hay)
        return 0;
    for (size_t i = 0; needles[i]; i++)
        if (strstr(hay, needles[i]))
            return 1;
    return 0;
}

static int starts_any(const char *hay, const char *const *needles)
{
    if (!hay)
        return 0;
    while (*hay == ' ' || *hay == '\t')
        hay++;
    for (size_t i = 0; needles[i]; i++)
        if (!strncmp(hay, needles[i], strlen(needles[i])))
            return 1;
    return 0;
}

static const char *hdr(const struct sb_mailclass_input *mi, const char *name)
{
    for (size_t i = 0; i < mi->nheaders; i++)
        if (!strcasecmp(mi->headers[i].name, name))
            return mi->headers[i].value;
    return NULL;
}

/* The value of the first "Name:" field at the start of a line in text (with
 * its continuation lines), trimmed, into out. 0 when absent. */
static int field(const char *text, size_t textlen, const char *name, char *out, size_t outlen)
{
    if (!text)
        return 0;
    size_t nl = strlen(name);
    const char *end = text + textlen;
    for (const char *p = text; p < end;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        if ((size_t)(e - p) > nl && !strncasecmp(p, name, nl) &&
            (p[nl] == ':' || p[nl] == ' ' || p[nl] == '\t')) {
            const char *v = p + nl;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            if (v < e && *v == ':') {
                v++;
                size_t o = 0;
                for (;;) {
                    for (; v < e && o + 1 < outlen; v++)
                        if (*v != '\r')
                            out[o++] = *v == '\t' ? ' ' : *v;
                    if (e + 1 < end && (e[1] == ' ' || e[1] == '\t')) {
                        v = e + 1;
                        e = memchr(v, '\n', (size_t)(end - v));
                        if (!e)
                            e = end;
                        continue;
                    }
                    break;
                }
                while (o && isspace((unsigned char)out[o - 1]))
                    o--;
                out[o] = '\0';
                size_t s = 0;
                while (out[s] == ' ')
                    s++;
                memmove(out, out + s, o - s + 1);
                return 1;
            }
        }
        p = e + 1;
    }
    return 0;
}

static int addr_char(int c)
{
    return isalnum(c) || (c && strchr(".!#$%&'*+/=?^_`{|}~-", c) != NULL) || c >= 0x80;
}

static int domain_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_' || c >= 0x80;
}

/* Finds the next addr-spec in [p, end): returns its start and length, or
 * NULL. Requires a dot in the domain. */
static const char *next_addr(const char *p, const char *end, size_t *len)
{
    for (const char *at = p; at < end; at++) {
        at = memchr(at, '@', (size_t)(end - at));
        if (!at)
            return NULL;
        const char *s = at;
        while (s > p && addr_char((unsigned char)s[-1]))
            s--;
        const char *e = at + 1;
        while (e < end && domain_char((unsigned char)*e))
            e++;
        while (e > at + 1 && (e[-1] == '.' || e[-1] == '-'))
            e--;
        while (s < at && (*s == '.' || *s == '\''))
            s++;
        if (s == at || e == at + 1 || !memchr(at + 1, '.', (size_t)(e - at - 1)) ||
            (size_t)(e - s) >= ADDR_MAX)
            continue;
        *len = (size_t)(e - s);
        return s;
    }
    return NULL;
}

/* The first address in a value ("rfc822; a@b", "<a@b>", "A <a@b>"), lower
 * case, into out. */
static int first_addr(const char *v, char *out, size_t outlen)
{
    if (!v)
        return 0;
    size_t n;
    const char *a = next_addr(v, v + strlen(v), &n);
    if (!a || n >= outlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)a[i]);
    out[n] = '\0';
    return 1;
}

/* The first D.D.D status code in s into out. */
static int find_status(const char *s, char *out, size_t outlen)
{
    if (!s)
        return 0;
    for (const char *p = s; *p; p++) {
        if ((*p == '2' || *p == '4' || *p == '5') && p[1] == '.' &&
            (p == s || !isalnum((unsigned char)p[-1]))) {
            const char *q = p + 2;
            size_t d1 = 0, d2 = 0;
            while (isdigit((unsigned char)q[d1]) && d1 < 3)
                d1++;
            if (!d1 || q[d1] != '.')
                continue;
            const char *r = q + d1 + 1;
            while (isdigit((unsigned char)r[d2]) && d2 < 3)
                d2++;
            if (!d2 || isdigit((unsigned char)r[d2]) ||
                (r[d2] == '.' && isdigit((unsigned char)r[d2 + 1])))
                continue;
            size_t n = (size_t)(r + d2 - p);
            if (n >= outlen)
                return 0;
            memcpy(out, p, n);
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

/* The first SMTP reply code (4xx/5xx followed by space or '-') in s. */
static int find_reply_code(const char *s)
{
    if (!s)
        return 0;
    for (const char *p = s; *p; p++)
        if ((*p == '4' || *p == '5') && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-') &&
            (p == s || !isalnum((unsigned char)p[-1])) && p[1] <= '5')
            return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    return 0;
}

/* ---- vocabularies (lower case) ---- */

static const char *const vacation_subjects[] = {"out of office",
                                                "out of the office",
                                                "automatic reply",
                                                "auto reply",
                                                "autoreply",
                                                "auto-reply",
                                                "auto response",
                                                "autoresponse",
                                                "autorespons",
                                                "auto-response",
                                                "automatische antwort",
                                                "abwesenheit",
                                                "réponse automatique",
                                                "respuesta automática",
                                                "risposta automatica",
                                                "on vacation",
                                                "vacation reply",
                                                "away from the office",
                                                "away until",
                                                "i am away",
                                                "i'm away",
                                                "absence notice",
                                                "out-of-office",
                                                "автоответ",
                                                "автоматический ответ",
                                                "нет на месте",
                                                "в отпуске",
                                                "отсутствую",
                                                "вне офиса",
                                                "自動応答",
                                                "自动回复",
                                                "不在通知",
                                                NULL};

static const char *const vacation_prefixes[] = {"auto:", "autoreply:", "automatic reply", NULL};

static const char *const bounce_subjects[] = {"undeliver",
                                              "undelivered mail",
                                              "delivery status notification",
                                              "returned mail",
                                              "mail delivery failed",
                                              "failure notice",
                                              "delivery failure",
                                              "delivery has failed",
                                              "could not be delivered",
                                              "non-delivery",
                                              "nondeliver",
                                              "non delivery",
                                              "mail system error",
                                              "returned to sender",
                                              "message not delivered",
                                              "delivery notification",
                                              "delivery failed",
                                              "failed delivery",
                                              "delivery problem",
                                              "permanent delivery failure",
                                              "mail delivery problem",
                                              "warning: could not send",
                                              "could not send message",
                                              "not delivered",
                                              "delivery report",
                                              "mail delivery system",
                                              "bounce",
                                              "unable to deliver",
                                              "mail could not be delivered",
                                              "delivery status",
                                              "rejected:",
                                              "message rejected",
                                              "returned email",
                                              "delayed mail",
                                              "delivery delayed",
                                              "undeliverable",
                                              "error sending message",
                                              "mail failure",
                                              "mail failed",
                                              "returning to sender",
                                              "メールエラー",
                                              "недоставленное сообщение",
                                              "не доставлено",
                                              "не может быть доставлено",
                                              "не удалось доставить",
                                              "ошибка доставки",
                                              "уведомление о доставке",
                                              "配信",
                                              "不達",
                                              "エラー",
                                              "unzustellbar",
                                              "nicht zustellbar",
                                              "non remis",
                                              "no se puede entregar",
                                              NULL};

static const char *const bounce_phrases[] = {"could not be delivered",
                                             "couldn't be delivered",
                                             "delivery to the following recipient",
                                             "permanent error",
                                             "permanent fatal error",
                                             "user unknown",
                                             "unknown user",
                                             "no such user",
                                             "mailbox unavailable",
                                             "mailbox not found",
                                             "this is the mail system at host",
                                             "this is the qmail-send program",
                                             "wasn't able to deliver",
                                             "was not able to deliver",
                                             "message could not be delivered",
                                             "addresses had permanent fatal errors",
                                             "delivery has failed",
                                             "your message wasn't delivered",
                                             "undeliverable",
                                             "the original message was received at",
                                             "this is a copy of the message",
                                             "a message that you sent could not be delivered",
                                             "delivery to the following recipients failed",
                                             "recipient address rejected",
                                             "address rejected",
                                             "does not exist",
                                             "mailbox is full",
                                             "mailbox full",
                                             "over quota",
                                             "quota exceeded",
                                             "delivery failed",
                                             "failed permanently",
                                             "unable to deliver",
                                             "rejected your message",
                                             "not be delivered",
                                             "smtp error",
                                             "following address(es) failed",
                                             "following addresses failed",
                                             "host unknown",
                                             "domain not found",
                                             "no mailbox",
                                             "relay access denied",
                                             "message was not accepted",
                                             "the following recipient(s) cannot be reached",
                                             "returned mail",
                                             "delivery status notification",
                                             "undelivered",
                                             "was undeliverable",
                                             "could not deliver",
                                             "delivery attempts",
                                             "не удалось доставить",
                                             "не может быть доставлено",
                                             "не было доставлено",
                                             "сообщение не доставлено",
                                             "адрес не существует",
                                             "ящик переполнен",
                                             "did not reach the following recipient",
                                             "unknown recipient",
                                             "transcript of session follows",
                                             "failed addresses follow",
                                             "invalid user address",
                                             NULL};

static const char *const daemon_locals[] = {
    "mailer-daemon",     "postmaster",    "mail-daemon", "mailerdaemon",
    "mdaemon",           "maildaemon",    "mail.daemon", "bounce",
    "bounces",           "mailer_daemon", "nobody",      "mail-delivery",
    "microsoftexchange", "mailadmin",     "post_master", NULL};

static const char *const daemon_names[] = {
    "mail delivery", "mailer-daemon",        "mailer daemon",
    "postmaster",    "delivery subsystem",   "mail administrator",
    "mail system",   "mail delivery system", NULL};

static const char *const hard_phrases[] = {"user unknown",
                                           "unknown user",
                                           "no such user",
                                           "does not exist",
                                           "doesn't exist",
                                           "not exist",
                                           "invalid recipient",
                                           "recipient unknown",
                                           "unknown recipient",
                                           "no mailbox",
                                           "mailbox not found",
                                           "mailbox unavailable",

                                           "no such domain",
                                           "domain not found",
                                           "host unknown",
                                           "host not found",
                                           "unrouteable",
                                           "unknown address",
                                           "invalid address",
                                           "bad destination mailbox",
                                           "account has been disabled",
                                           "account is disabled",
                                           "user not found",
                                           "recipient not found",
                                           "no such recipient",
                                           "not our customer",
                                           "name service error",
                                           "mailbox disabled",
                                           "address unknown",
                                           "адрес не существует",
                                           "нет такого",
                                           NULL};

static const char *const soft_phrases[] = {"mailbox full",
                                           "mailbox is full",
                                           "quota",
                                           "insufficient storage",
                                           "too large",
                                           "message size",
                                           "exceeds",
                                           "temporar",
                                           "try again",
                                           "deferred",
                                           "delayed",
                                           "will retry",
                                           "greylist",
                                           "rate limit",
                                           "too many",
                                           "ящик переполнен",
                                           NULL};

static const char *const policy_phrases[] = {
    "blacklist", "blocklist",      "blocked",       "spam",     "policy",
    "content",   "virus",          "reputation",    "dmarc",    "spf",
    "dkim",      "authentication", "not permitted", "relay",    "rate",
    "too many",  "listed",         "rbl",           "greylist", NULL};

static int is_daemon_addr(const char *addr)
{
    if (!addr)
        return 0;
    const char *at = strchr(addr, '@');
    size_t n = at ? (size_t)(at - addr) : strlen(addr);
    for (size_t i = 0; daemon_locals[i]; i++)
        if (strlen(daemon_locals[i]) == n && !strncasecmp(addr, daemon_locals[i], n))
            return 1;
    return 0;
}

/* ---- results ---- */

static int set_str(json_t *o, const char *k, const char *v)
{
    if (!v || !*v)
        return SB_OK;
    json_t *s = json_string(v);
    if (!s) /* not UTF-8 (never from mime.c) or no memory: keep going without it */
        return SB_OK;
    return json_object_set_new(o, k, s) ? SB_ERR_NOMEM : SB_OK;
}

/* Hard or soft, from the enhanced status code (RFC 3463) first and the
 * words second. Hard: the address itself is bad (x.1.x addressing except
 * the sender's own 5.1.7/5.1.8, a disabled mailbox 5.2.1, an unknown host
 * 5.4.4) or the words say so. Soft: temporary (4.x.x), mailbox full, too
 * big, system, network, protocol, content and policy classes (5.2.x, 5.3.x,
 * 5.4.x, 5.5.x, 5.6.x, 5.7.x) unless an unknown-user phrase says otherwise.
 * A bare 5.0.0 or 5xx is permanent, so hard unless its words point at the
 * message or the sending host. */
static const char *bounce_class(const char *status, int reply, const char *diag_l)
{
    int hardp = contains_any(diag_l, hard_phrases);
    int softp = contains_any(diag_l, soft_phrases);
    char c = status && *status ? status[0] : reply ? (char)('0' + reply / 100) : 0;
    if (c == '2')
        return "delivered";
    if (c == '4')
        return "soft";
    if (c == '5') {
        int subject = -1, detail = -1;
        if (status && *status)
            sscanf(status, "5.%d.%d", &subject, &detail);
        if (subject == 1)
            return detail == 7 || detail == 8 ? "soft" : "hard";
        if (subject == 2)
            return detail == 1 || hardp ? "hard" : "soft";
        if (subject == 4 && detail == 4)
            return "hard";
        if (subject >= 3)
            return hardp ? "hard" : "soft";
        if (hardp)
            return "hard";
        /* refused for what the message or the sending host is, not for the
         * address: the next message may pass */
        if (softp || contains_any(diag_l, policy_phrases))
            return "soft";
        return "hard";
    }
    if (hardp)
        return "hard";
    return "soft";
}

/* A DSN's generic x.0.0 and a more precise code in its diagnostic ("550
 * 5.1.1 ..."): the precise one, when the class agrees. */
static void refine_status(char *status, size_t len, const char *diag)
{
    char d[16];
    if (!status[0] || strcmp(status + 1, ".0.0") != 0 || !diag || !find_status(diag, d, sizeof d))
        return;
    if (d[0] == status[0] && strcmp(d + 1, ".0.0") != 0)
        snprintf(status, len, "%s", d);
}

/* ---- the returned original ---- */

/* The headers of the returned message: the first block of lines up to a
 * blank line in `orig`. */
static size_t header_block_len(const char *orig)
{
    const char *p = orig;
    while (*p) {
        const char *e = strchr(p, '\n');
        if (!e)
            return strlen(orig);
        const char *q = p;
        while (q < e && (*q == '\r'))
            q++;
        if (q == e && p != orig)
            return (size_t)(p - orig);
        p = e + 1;
    }
    return strlen(orig);
}

static void original_message_id(const char *orig, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!orig)
        return;
    char v[512];
    if (!field(orig, header_block_len(orig), "Message-ID", v, sizeof v))
        return;
    const char *s = strchr(v, '<');
    s = s ? s + 1 : v;
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, "> \t");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* ---- candidate scoring for non-standard bounces ---- */

struct cand {
    char addr[ADDR_MAX];
    int score;
    unsigned first; /* order of appearance */
};

struct cands {
    struct cand c[CAND_MAX];
    size_t n;
    unsigned seq;
};

static void cand_add(struct cands *cs, const char *a, size_t n, int score)
{
    char low[ADDR_MAX];
    if (n >= sizeof low)
        return;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)a[i]);
    low[n] = '\0';
    for (size_t i = 0; i < cs->n; i++)
        if (!strcmp(cs->c[i].addr, low)) {
            cs->c[i].score += score;
            return;
        }
    if (cs->n == CAND_MAX)
        return;
    struct cand *c = &cs->c[cs->n++];
    memcpy(c->addr, low, n + 1);
    c->score = score;
    c->first = cs->seq++;
}

static int excluded(const char *addr, char excl[][ADDR_MAX], size_t nexcl)
{
    if (is_daemon_addr(addr))
        return 1;
    for (size_t i = 0; i < nexcl; i++)
        if (!strcasecmp(addr, excl[i]))
            return 1;
    return 0;
}

/* Scores every address of the text by the context it appears in. */
static void score_text(struct cands *cs, const char *text, size_t len)
{
    const char *end = text + len;
    int after_failed_heading = 0;
    for (const char *p = text; p < end;) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        size_t ll = (size_t)(e - p);
        char line[512];
        size_t cl = ll < sizeof line - 1 ? ll : sizeof line - 1;
        for (size_t i = 0; i < cl; i++)
            line[i] = (char)tolower((unsigned char)p[i]);
        line[cl] = '\0';
        const char *t = line;
        while (*t == ' ' || *t == '\t' || *t == '>')
            t++;
        /* Header lines that hold ids or the original's sender, not a
         * recipient. */
        static const char *const skip[] = {"message-id",
                                           "in-reply-to",
                                           "references",
                                           "from:",
                                           "return-path",
                                           "sender:",
                                           "reply-to",
                                           "x-",
                                           "dkim-",
                                           "arc-",
                                           "authentication-results",
                                           "list-",
                                           "content-",
                                           "received-spf",
                                           "reporting-mta",
                                           "errors-to",
                                           NULL};
        if (starts_any(t, skip)) {
            p = e + 1;
            continue;
        }
        int base = 1;
        static const char *const recip_ctx[] = {"rcpt to",
                                                "undeliverable to",
                                                "delivery to",
                                                "final-recipient",
                                                "original-recipient",
                                                "recipient",
                                                "delivered to",
                                                "deliver to",
                                                "address",
                                                "mailbox",
                                                "to:",
                                                "for <",
                                                "адрес",
                                                "получател",
                                                "user",
                                                NULL};
        static const char *const err_ctx[] = {
            " 550",    " 551",           " 552",    " 553",     " 554",    " 450",
            " 451",    " 452",           "5.1.",    "5.2.",     "5.7.",    "4.2.",
            "unknown", "does not exist", "failed",  "rejected", "refused", "unavailable",
            "quota",   "full",           "invalid", "error",    NULL};
        if (contains_any(line, recip_ctx))
            base += 3;
        if (contains_any(line, err_ctx) || find_reply_code(line))
            base += 3;
        if (after_failed_heading)
            base += 4;
        static const char *const headings[] = {
            "following address",         "following recipient",  "permanent fatal errors",
            "failed recipient",          "these recipients",     "cannot be reached",
            "could not be delivered to", "failed permanently",   "wasn't delivered to",
            "not yet been delivered",    "to which the message", NULL};
        int heading = contains_any(line, headings);
        size_t n;
        const char *a = p;
        int any = 0;
        while ((a = next_addr(a, e, &n)) != NULL) {
            int s = base;
            /* qmail / Postfix: "<addr>:" at the start of the line */
            const char *ls = p;
            while (ls < a && (*ls == ' ' || *ls == '\t' || *ls == '<' || *ls == '"' || *ls == '\''))
                ls++;
            if (ls == a && a + n < e &&
                (a[n] == ':' || (a[n] == '>' && a + n + 1 < e && a[n + 1] == ':')))
                s += 8;
            else if (ls == a)
                s += 2; /* alone at the start of a line: Exim, Sendmail lists */
            cand_add(cs, a, n, s);
            any = 1;
            a += n;
        }
        if (heading)
            after_failed_heading = 3;
        else if (after_failed_heading && (any || after_failed_heading > 0))
            after_failed_heading--;
        p = e + 1;
    }
}

/* ---- the three classes ---- */

/* Amazon SES notifications through SNS: a JSON document in the body,
 * {"notificationType":"Bounce", "bounce":{...}} (or eventType). */
static int ses_notification(const char *text, const char *type)
{
    if (!text || !strstr(text, "amazonses") || !strchr(text, '{'))
        return 0;
    char pat[64];
    snprintf(pat, sizeof pat, "\"notificationType\":\"%s\"", type);
    if (strstr(text, pat))
        return 1;
    snprintf(pat, sizeof pat, "\"eventType\":\"%s\"", type);
    if (strstr(text, pat))
        return 1;
    /* wrapped in an SNS envelope: the notification is a JSON string */
    snprintf(pat, sizeof pat, "\\\"notificationType\\\":\\\"%s\\\"", type);
    return strstr(text, pat) != NULL;
}

static json_t *ses_json(const char *text)
{
    const char *p = text ? strchr(text, '{') : NULL;
    if (!p)
        return NULL;
    json_error_t e;
    json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &e);
    if (!j) {
        /* Some relays fold the long JSON line ("\n " inside a string):
         * unfold and try again. */
        size_t n = strnlen(p, SCAN_MAX), o = 0;
        char *u = malloc(n + 1);
        if (!u)
            return NULL;
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '\r')
                continue;
            if (p[i] == '\n' && i + 1 < n && p[i + 1] == ' ') {
                i++;
                continue;
            }
            u[o++] = p[i];
        }
        u[o] = '\0';
        j = json_loads(u, JSON_DISABLE_EOF_CHECK, &e);
        free(u);
    }
    const char *inner = json_string_value(json_object_get(j, "Message"));
    if (inner && !json_object_get(j, "notificationType")) {
        json_t *k = json_loads(inner, 0, &e);
        json_decref(j);
        j = k;
    }
    return j;
}

static int classify_complaint(const struct sb_mailclass_input *mi, const char *subj_l, json_t *meta,
                              int *hit)
{
    *hit = 0;
    if (ses_notification(mi->text, "Complaint")) {
        json_t *j = ses_json(mi->text);
        json_t *cp = json_object_get(j, "complaint");
        const char *addr = json_string_value(json_object_get(
            json_array_get(json_object_get(cp, "complainedRecipients"), 0), "emailAddress"));
        const char *ft = json_string_value(json_object_get(cp, "complaintFeedbackType"));
        json_t *c = json_object();
        int rc = !c || json_object_set_new(meta, "complaint", c) ||
                         set_str(c, "feedback_type", ft ? ft : "abuse") != SB_OK ||
                         set_str(c, "recipient", addr) != SB_OK
                     ? SB_ERR_NOMEM
                     : SB_OK;
        json_decref(j);
        *hit = 1;
        return rc;
    }
    const char *apple = hdr(mi, "X-Apple-Unsubscribe");
    int arf = (mi->report_type && !strcmp(mi->report_type, "feedback-report")) ||
              mi->feedback_report != NULL;
    int jmrp = subj_l && strstr(subj_l, "complaint about message from") && mi->original;
    int apple_unsub = apple && !strncasecmp(apple, "true", 4);
    if (!arf && !jmrp && !apple_unsub)
        return SB_OK;
    *hit = 1;
    json_t *c = json_object();
    if (!c || json_object_set_new(meta, "complaint", c))
        return SB_ERR_NOMEM;
    const char *fr = mi->feedback_report;
    size_t frl = fr ? strlen(fr) : 0;
    char v[1024], addr[ADDR_MAX];
    const char *type = apple_unsub ? "opt-out" : jmrp && !arf ? "abuse" : NULL;
    if (fr && field(fr, frl, "Feedback-Type", v, sizeof v)) {
        for (char *q = v; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        if (set_str(c, "feedback_type", v) != SB_OK)
            return SB_ERR_NOMEM;
    } else if (set_str(c, "feedback_type", type ? type : "abuse") != SB_OK) {
        return SB_ERR_NOMEM;
    }
    int have = 0;
    if (fr &&
        ((field(fr, frl, "Original-Rcpt-To", v, sizeof v) && first_addr(v, addr, sizeof addr)) ||
         (field(fr, frl, "Removal-Recipient", v, sizeof v) && first_addr(v, addr, sizeof addr))))
        have = 1;
    if (!have && mi->original) {
        size_t hl = header_block_len(mi->original);
        if ((field(mi->original, hl, "X-HmXmrOriginalRecipient", v, sizeof v) ||
             field(mi->original, hl, "To", v, sizeof v)) &&
            first_addr(v, addr, sizeof addr))
            have = 1;
    }
    if (!have && apple_unsub && mi->from_addr && first_addr(mi->from_addr, addr, sizeof addr))
        have = 1;
    if (have && set_str(c, "recipient", addr) != SB_OK)
        return SB_ERR_NOMEM;
    if (fr) {
        static const char *const keep[][2] = {{"Original-Mail-From", "original_mail_from"},
                                              {"Source-IP", "source_ip"},
                                              {"Arrival-Date", "arrival_date"},
                                              {"Reported-Domain", "reported_domain"},
                                              {"User-Agent", "user_agent"}};
        for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
            if (field(fr, frl, keep[i][0], v, sizeof v) && set_str(c, keep[i][1], v) != SB_OK)
                return SB_ERR_NOMEM;
    }
    char mid[512];
    original_message_id(mi->original, mid, sizeof mid);
    return set_str(c, "original_message_id", mid);
}

/* One recipient record of a delivery-status part. */
struct dsn_rec {
    char recipient[ADDR_MAX];
    char status[16];
    char action[32];
    char diagnostic[1024];
};

/* Reads the per-recipient blocks of a message/delivery-status body and
 * picks the first failed one (else delayed, else the first). */
static int parse_dsn(const char *ds, struct dsn_rec *out)
{
    memset(out, 0, sizeof *out);
    int best = -1; /* 3 failed, 2 delayed, 1 other */
    const char *p = ds;
    while (*p) {
        /* a block: up to a blank line */
        const char *b = p;
        const char *q = p;
        for (;;) {
            const char *e = strchr(q, '\n');
            if (!e) {
                q += strlen(q);
                break;
            }
            const char *t = q;
            while (t < e && (*t == '\r' || *t == ' ' || *t == '\t'))
                t++;
            if (t == e && q != b) {
                q = e + 1;
                break;
            }
            q = e + 1;
        }
        size_t bl = (size_t)(q - b);
        char v[1024];
        struct dsn_rec r = {0};
        int has = 0;
        if ((field(b, bl, "Final-Recipient", v, sizeof v) &&
             first_addr(v, r.recipient, sizeof r.recipient)) ||
            (field(b, bl, "Original-Recipient", v, sizeof v) &&
             first_addr(v, r.recipient, sizeof r.recipient)))
            has = 1;
        if (has) {
            if (field(b, bl, "Status", v, sizeof v))
                find_status(v, r.status, sizeof r.status);
            if (field(b, bl, "Action", v, sizeof v)) {
                size_t n = strcspn(v, " ;(");
                if (n >= sizeof r.action)
                    n = sizeof r.action - 1;
                for (size_t i = 0; i < n; i++)
                    r.action[i] = (char)tolower((unsigned char)v[i]);
            }
            field(b, bl, "Diagnostic-Code", r.diagnostic, sizeof r.diagnostic);
            int rank = !strcmp(r.action, "failed") ? 3 : !strcmp(r.action, "delayed") ? 2 : 1;
            if (rank > best) {
                best = rank;
                *out = r;
            }
        }
        if (q == p)
            break;
        p = q;
    }
    return best >= 0;
}

static int parse_ses(const char *text, struct dsn_rec *out)
{
    memset(out, 0, sizeof *out);
    json_t *j = ses_json(text);
    if (!j)
        return 0;
    json_t *b = json_object_get(j, "bounce");
    json_t *d = json_object_get(j, "delivery");
    json_t *rs = b ? json_object_get(b, "bouncedRecipients") : NULL;
    json_t *r0 = json_array_get(rs, 0);
    const char *addr = json_string_value(json_object_get(r0, "emailAddress"));
    if (!addr && d)
        addr = json_string_value(json_array_get(json_object_get(d, "recipients"), 0));
    int ok = 0;
    if (addr && first_addr(addr, out->recipient, sizeof out->recipient)) {
        ok = 1;
        const char *st = json_string_value(json_object_get(r0, "status"));
        const char *dc = json_string_value(json_object_get(r0, "diagnosticCode"));
        const char *bt = json_string_value(json_object_get(b, "bounceType"));
        if (st)
            find_status(st, out->status, sizeof out->status);
        if (d && !out->status[0])
            snprintf(out->status, sizeof out->status, "2.0.0");
        if (dc)
            snprintf(out->diagnostic, sizeof out->diagnostic, "%s", dc);
        else if (d)
            snprintf(out->diagnostic, sizeof out->diagnostic, "%s",
                     json_string_value(json_object_get(d, "smtpResponse"))
                         ? json_string_value(json_object_get(d, "smtpResponse"))
                         : "");
        snprintf(out->action, sizeof out->action, "%s",
                 d                                    ? "delivered"
                 : bt && !strcasecmp(bt, "Transient") ? "delayed"
                                                      : "failed");
    }
    json_decref(j);
    return ok;
}

/* The details of a message known to be a bounce: meta.bounce. */
static int bounce_details(const struct sb_mailclass_input *mi, const char *text_l, const char *xfr,
                          const char *rp, int ses, json_t *meta)
{
    json_t *b = json_object();
    if (!b || json_object_set_new(meta, "bounce", b))
        return SB_ERR_NOMEM;
    struct dsn_rec r;
    int have_dsn = mi->delivery_status && parse_dsn(mi->delivery_status, &r);
    if (!have_dsn && mi->text && strstr(text_l, "final-recipient"))
        have_dsn = parse_dsn(mi->text, &r); /* a DSN pasted as text */
    if (!have_dsn && ses)
        have_dsn = parse_ses(mi->text, &r);
    /* A bounce of a bounce: the returned message is itself a report. */
    if (!have_dsn && !xfr && mi->original && strcasestr(mi->original, "final-recipient"))
        have_dsn = parse_dsn(mi->original, &r);
    char recipient[ADDR_MAX] = "", status[16] = "";
    const char *diag = "";
    const char *action = NULL;
    if (have_dsn) {
        memcpy(recipient, r.recipient, sizeof recipient);
        memcpy(status, r.status, sizeof status);
        diag = r.diagnostic;
        action = r.action[0] ? r.action : NULL;
    }
    if (!recipient[0] && xfr)
        first_addr(xfr, recipient, sizeof recipient);
    if (!recipient[0]) {
        /* Excluded: the bounce's own parties (its To is the original
         * sender) and the original's From. */
        char excl[8][ADDR_MAX];
        size_t nexcl = 0;
        if (mi->from_addr && first_addr(mi->from_addr, excl[nexcl], ADDR_MAX))
            nexcl++;
        /* The bounce's To is the original sender, but a message bounced
         * back to its own sender names it too: a penalty, not a ban. */
        char to_addr[ADDR_MAX] = "";
        const char *to = hdr(mi, "To");
        if (to)
            first_addr(to, to_addr, sizeof to_addr);
        if (rp && first_addr(rp, excl[nexcl], ADDR_MAX))
            nexcl++;
        char v[1024];
        if (mi->original) {
            size_t hl = header_block_len(mi->original);
            if (field(mi->original, hl, "From", v, sizeof v) &&
                first_addr(v, excl[nexcl], ADDR_MAX))
                nexcl++;
            if (field(mi->original, hl, "Return-Path", v, sizeof v) &&
                first_addr(v, excl[nexcl], ADDR_MAX))
                nexcl++;
        }
        struct cands *cs = calloc(1, sizeof *cs);
        if (!cs)
            return SB_ERR_NOMEM;
        if (mi->text)
            score_text(cs, mi->text, strnlen(mi->text, SCAN_MAX));
        if (mi->original) {
            size_t hl = header_block_len(mi->original);
            if (field(mi->original, hl, "To", v, sizeof v)) {
                size_t n;
                const char *a = v, *e = v + strlen(v);
                while ((a = next_addr(a, e, &n)) != NULL) {
                    cand_add(cs, a, n, 4);
                    a += n;
                }
            }
        }
        const struct cand *best = NULL;
        int best_score = 0;
        for (size_t i = 0; i < cs->n; i++) {
            const struct cand *c = &cs->c[i];
            if (excluded(c->addr, excl, nexcl))
                continue;
            int sc = c->score - (to_addr[0] && !strcmp(c->addr, to_addr) ? 8 : 0);
            if (!best || sc > best_score) {
                best = c;
                best_score = sc;
            }
        }
        if (best && best_score >= 4)
            memcpy(recipient, best->addr, sizeof recipient);
        free(cs);
    }
    /* Status and diagnostic from the text when the DSN had none. */
    char diagbuf[1024] = "";
    if (!*diag && mi->text) {
        /* the line holding the recipient or a reply code, as the diagnostic */
        const char *t = mi->text;
        size_t tl = strnlen(t, SCAN_MAX);
        const char *hitp = NULL;
        for (const char *p = t; p < t + tl && !hitp;) {
            const char *e = memchr(p, '\n', (size_t)(t + tl - p));
            if (!e)
                e = t + tl;
            char line[512];
            size_t n = (size_t)(e - p) < sizeof line - 1 ? (size_t)(e - p) : sizeof line - 1;
            memcpy(line, p, n);
            line[n] = '\0';
            char st[16];
            if (find_reply_code(line) || find_status(line, st, sizeof st))
                hitp = p;
            else
                p = e + 1;
            if (hitp) {
                size_t o = 0;
                for (size_t i = 0; i < n && o + 1 < sizeof diagbuf; i++)
                    diagbuf[o++] = line[i] == '\t' || line[i] == '\r' ? ' ' : line[i];
                diagbuf[o] = '\0';
            }
        }
        diag = diagbuf;
        while (*diag == ' ')
            diag++;
    }
    if (!status[0]) {
        if (!find_status(diag, status, sizeof status))
            find_status(text_l, status, sizeof status);
    }
    refine_status(status, sizeof status, diag);
    int reply = find_reply_code(diag);
    char *dl = lower_utf8(*diag ? diag : (text_l ? text_l : ""), SCAN_MAX);
    if (!dl)
        return SB_ERR_NOMEM;
    const char *cls = bounce_class(status, reply, dl);
    free(dl);
    if (action && !strcmp(action, "delayed") && strcmp(cls, "delivered") != 0)
        cls = "soft";
    char mid[512];
    original_message_id(mi->original, mid, sizeof mid);
    if (set_str(b, "recipient", recipient) != SB_OK || set_str(b, "status", status) != SB_OK ||
        set_str(b, "class", cls) != SB_OK || set_str(b, "diagnostic", diag) != SB_OK ||
        set_str(b, "action", action) != SB_OK || set_str(b, "original_message_id", mid) != SB_OK)
        return SB_ERR_NOMEM;
    return SB_OK;
}

static int classify_bounce(const struct sb_mailclass_input *mi, const char *subj_l, json_t *meta,
                           int *hit)
{
    *hit = 0;
    const char *xfr = hdr(mi, "X-Failed-Recipients");
    const char *rp = hdr(mi, "Return-Path");
    int strong = mi->delivery_status != NULL ||
                 (mi->report_type && !strcmp(mi->report_type, "delivery-status")) || xfr;
    int ses = ses_notification(mi->text, "Bounce") || ses_notification(mi->text, "Delivery");
    int daemon = is_daemon_addr(mi->from_addr);
    if (!daemon && mi->from_name) {
        char *nl = lower_utf8(mi->from_name, 256);
        if (!nl)
            return SB_ERR_NOMEM;
        daemon = contains_any(nl, daemon_names);
        free(nl);
    }
    if (!daemon) {
        /* "MAILER-DAEMON@host (Mail Delivery System)": the comment is in the raw value */
        const char *from = hdr(mi, "From");
        char *fl = from ? lower_utf8(from, 512) : NULL;
        if (from && !fl)
            return SB_ERR_NOMEM;
        daemon = fl && contains_any(fl, daemon_names);
        free(fl);
    }
    int null_sender = rp && !strncmp(rp, "<>", 2);
    int subj = contains_any(subj_l, bounce_subjects);
    /* Ordinary mail stops here, before the body is lowered and scanned. */
    if (!strong && !ses && !daemon && !subj && !null_sender)
        return SB_OK;
    char *text_l = lower_utf8(mi->text ? mi->text : "", SCAN_MAX);
    if (!text_l)
        return SB_ERR_NOMEM;
    int body = contains_any(text_l, bounce_phrases);
    int signals = daemon + subj + body + (null_sender && (subj || body));
    int rc = SB_OK;
    if (strong || ses || (signals >= 2 && (daemon || null_sender))) {
        *hit = 1;
        rc = bounce_details(mi, text_l, xfr, rp, ses, meta);
    }
    free(text_l);
    return rc;
}

static int classify_auto_reply(const struct sb_mailclass_input *mi, const char *subj_l,
                               json_t *meta, int *hit)
{
    *hit = 0;
    char reason[128] = "";
    const char *v;
    if ((v = hdr(mi, "Auto-Submitted")) != NULL) {
        size_t n = strcspn(v, " ;(\t");
        if (n && !(n == 2 && !strncasecmp(v, "no", 2)))
            snprintf(reason, sizeof reason, "Auto-Submitted: %.*s", (int)(n > 64 ? 64 : n), v);
    }
    if (!reason[0] && (v = hdr(mi, "X-Autoreply")) != NULL && strncasecmp(v, "no", 2) != 0)
        snprintf(reason, sizeof reason, "X-Autoreply");
    if (!reason[0] && (v = hdr(mi, "X-Autorespond")) != NULL)
        snprintf(reason, sizeof reason, "X-Autorespond");
    if (!reason[0] && (v = hdr(mi, "X-Autoresponder")) != NULL)
        snprintf(reason, sizeof reason, "X-Autoresponder");
    if (!reason[0] && (v = hdr(mi, "X-Apple-Action")) != NULL && !strncasecmp(v, "vacation", 8))
        snprintf(reason, sizeof reason, "X-Apple-Action: VACATION");
    if (!reason[0] && (v = hdr(mi, "Precedence")) != NULL) {
        size_t n = strcspn(v, " ;(\t");
        if ((n == 10 && !strncasecmp(v, "auto_reply", 10)) ||
            (n == 4 && !strncasecmp(v, "bulk", 4)) || (n == 4 && !strncasecmp(v, "junk", 4)))
            snprintf(reason, sizeof reason, "Precedence: %.*s", (int)n, v);
    }
    /* "Re: Out of office hours?" is a person answering: a reply or forward
     * prefix rules the subject out (responders put their own word first). */
    static const char *const human_prefixes[] = {
        "re:", "re[", "fw:", "fwd:", "aw:", "wg:", "ответ:", "пересл:", "отв:", NULL};
    if (!reason[0] && subj_l && !starts_any(subj_l, human_prefixes) &&
        (starts_any(subj_l, vacation_prefixes) || contains_any(subj_l, vacation_subjects)))
        snprintf(reason, sizeof reason, "subject");
    if (!reason[0])
        return SB_OK;
    *hit = 1;
    return set_str(meta, "auto_reply", reason);
}

/* meta.complaint.suppress: whether the person asked not to get our mail.
 * A DMARC/DKIM/SPF failure report (auth-failure) or "not spam" is about the
 * message, not a wish of the recipient: no suppression. */
static int complaint_suppress(json_t *c)
{
    if (!c)
        return SB_OK;
    const char *ft = json_string_value(json_object_get(c, "feedback_type"));
    static const char *const keep[] = {"auth-failure", "not-spam", "dkim", "dmarc", "spf", NULL};
    int suppress = 1;
    for (size_t i = 0; ft && keep[i]; i++)
        if (!strcasecmp(ft, keep[i]))
            suppress = 0;
    return json_object_set_new(c, "suppress", json_boolean(suppress)) ? SB_ERR_NOMEM : SB_OK;
}

const char *sb_mailclass_name(enum sb_mailclass c)
{
    switch (c) {
    case SB_MAIL_AUTO_REPLY:
        return "auto_reply";
    case SB_MAIL_BOUNCE:
        return "bounce";
    case SB_MAIL_COMPLAINT:
        return "complaint";
    default:
        return "ordinary";
    }
}

int sb_mailclass_classify(const struct sb_mailclass_input *mi, json_t *meta,
                          enum sb_mailclass *class_r)
{
    *class_r = SB_MAIL_ORDINARY;
    char *subj_l = mi->subject ? lower_utf8(mi->subject, 1024) : NULL;
    int rc = SB_ERR_NOMEM, hit = 0;
    if (mi->subject && !subj_l)
        goto out;
    if ((rc = classify_complaint(mi, subj_l, meta, &hit)) != SB_OK)
        goto out;
    if (hit) {
        *class_r = SB_MAIL_COMPLAINT;
        if ((rc = complaint_suppress(json_object_get(meta, "complaint"))) != SB_OK)
            goto out;
    } else {
        if ((rc = classify_bounce(mi, subj_l, meta, &hit)) != SB_OK)
            goto out;
        if (hit) {
            *class_r = SB_MAIL_BOUNCE;
        } else {
            if ((rc = classify_auto_reply(mi, subj_l, meta, &hit)) != SB_OK)
                goto out;
            if (hit)
                *class_r = SB_MAIL_AUTO_REPLY;
        }
    }
    rc = json_object_set_new(meta, "classification", json_string(sb_mailclass_name(*class_r)))
             ? SB_ERR_NOMEM
             : SB_OK;
out:
    free(subj_l);
    return rc;
}
