/* IMAP client on libetpan (see imap.h).
 *
 * libetpan does not check server certificates, so after the TLS handshake
 * the chain it received is verified here with GnuTLS (system trust store,
 * host name) before the password is sent. */
#include "switchboard/imap.h"
#include "switchboard/err.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct sb_imap {
    mailimap *m;
    mailstream *stream; /* captured once connected, for sb_imap_cancel() */
    int has_idle;
};

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int sb_imap_conf_read(const json_t *cfg, struct sb_imap_conf *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->host = jstr(cfg, "host");
    c->username = jstr(cfg, "username");
    c->password = jstr(cfg, "password");
    const char *tls = jstr(cfg, "tls");
    c->tls = !tls || !strcmp(tls, "imaps") ? SB_IMAP_TLS_IMAPS
             : !strcmp(tls, "starttls")    ? SB_IMAP_TLS_STARTTLS
                                           : SB_IMAP_TLS_NONE;
    c->port = (int)json_integer_value(json_object_get(cfg, "port"));
    if (!c->port)
        c->port = c->tls == SB_IMAP_TLS_IMAPS ? 993 : 143;
    json_t *v = json_object_get(cfg, "tls_verify");
    c->tls_verify = v ? json_is_true(v) : 1;
    c->timeout_s = 60;
    if (!c->host || !*c->host || !c->username || !c->password)
        return sb_fail(err, errlen, SB_ERR_CONFIG,
                       "the IMAP side needs host, username and password");
    return SB_OK;
}

/* The server's last words, one printable line, for error messages. */
static const char *said(const struct sb_imap *s)
{
    const char *r = s && s->m ? s->m->imap_response : NULL;
    return r && *r ? r : "no response";
}

static int fail_imap(const struct sb_imap *s, int r, char *err, size_t errlen, const char *what)
{
    switch (r) {
    case MAILIMAP_ERROR_STREAM:
    case MAILIMAP_ERROR_CONNECTION_REFUSED:
    case MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION:
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "%s: connection lost or refused", what);
    case MAILIMAP_ERROR_SSL:
    case MAILIMAP_ERROR_STARTTLS:
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "%s: TLS failed", what);
    case MAILIMAP_ERROR_PARSE:
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "%s: unexpected server response", what);
    case MAILIMAP_ERROR_MEMORY:
        return sb_fail(err, errlen, SB_ERR_NOMEM, "%s: out of memory", what);
    case MAILIMAP_ERROR_LOGIN:
        return sb_fail(err, errlen, SB_ERR_UNAUTHORIZED, "%s: the server refused the login: %s",
                       what, said(s));
    default:
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "%s failed: %s", what, said(s));
    }
}

static int verify_chain(mailstream *st, const char *host, char *err, size_t errlen)
{
    carray *chain = mailstream_get_certificate_chain(st);
    if (!chain || carray_count(chain) == 0) {
        if (chain)
            mailstream_certificate_chain_free(chain);
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "TLS: the server sent no certificate");
    }
    unsigned n = carray_count(chain);
    gnutls_x509_crt_t *crts = calloc(n, sizeof *crts);
    gnutls_x509_trust_list_t tl = NULL;
    int rc = SB_ERR_UNAVAILABLE;
    unsigned loaded = 0, status = 0;
    if (!crts || gnutls_x509_trust_list_init(&tl, 0) < 0 ||
        gnutls_x509_trust_list_add_system_trust(tl, 0, 0) < 0) {
        sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "TLS: cannot load the system trust store");
        goto out;
    }
    for (; loaded < n; loaded++) {
        MMAPString *der = carray_get(chain, loaded);
        gnutls_datum_t d = {(unsigned char *)der->str, (unsigned)der->len};
        if (gnutls_x509_crt_init(&crts[loaded]) < 0 ||
            gnutls_x509_crt_import(crts[loaded], &d, GNUTLS_X509_FMT_DER) < 0) {
            if (crts[loaded])
                gnutls_x509_crt_deinit(crts[loaded]);
            sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "TLS: unreadable server certificate");
            goto out;
        }
    }
    gnutls_typed_vdata_st data[] = {
        {GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)host, 0},
        {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER, 0},
    };
    if (gnutls_x509_trust_list_verify_crt2(tl, crts, n, data, 2, 0, &status, NULL) < 0 || status) {
        gnutls_datum_t why = {0};
        if (status &&
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0) {
            sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                    "TLS: the certificate of %s is not trusted (%s); set tls_verify=false only "
                    "for a server you control",
                    host, why.data);
            gnutls_free(why.data);
        } else {
            sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "TLS: the certificate of %s is not trusted",
                    host);
        }
        goto out;
    }
    rc = SB_OK;
out:
    for (unsigned i = 0; i < loaded; i++)
        gnutls_x509_crt_deinit(crts[i]);
    free(crts);
    if (tl)
        gnutls_x509_trust_list_deinit(tl, 1); /* with the system CAs it loaded */
    mailstream_certificate_chain_free(chain);
    return rc;
}

static int read_capabilities(struct sb_imap *s)
{
    struct mailimap_capability_data *cap = NULL;
    int r = mailimap_capability(s->m, &cap);
    if (r != MAILIMAP_NO_ERROR)
        return r;
    mailimap_capability_data_free(cap);
    s->has_idle = mailimap_has_idle(s->m);
    return MAILIMAP_NO_ERROR;
}

int sb_imap_connect(const struct sb_imap_conf *c, struct sb_imap **s_r, char *err, size_t errlen)
{
    *s_r = NULL;
    if (c->port <= 0 || c->port > 65535)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "IMAP port %d is out of range", c->port);
    struct sb_imap *s = calloc(1, sizeof *s);
    if (!s || !(s->m = mailimap_new(0, NULL))) {
        free(s);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    mailimap_set_timeout(s->m, c->timeout_s);
    char what[320];
    snprintf(what, sizeof what, "IMAP %s:%d", c->host, c->port);
    int r;
    if (c->tls == SB_IMAP_TLS_IMAPS)
        r = mailimap_ssl_connect(s->m, c->host, (uint16_t)c->port);
    else
        r = mailimap_socket_connect(s->m, c->host, (uint16_t)c->port);
    int rc = SB_OK;
    if (r != MAILIMAP_NO_ERROR && r != MAILIMAP_NO_ERROR_AUTHENTICATED &&
        r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
        rc = fail_imap(s, r, err, errlen, what);
        goto fail;
    }
    if (c->tls == SB_IMAP_TLS_STARTTLS) {
        r = mailimap_socket_starttls(s->m);
        if (r != MAILIMAP_NO_ERROR) {
            rc = sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                         "%s: STARTTLS failed (%s); is the port right for tls=starttls?", what,
                         said(s));
            goto fail;
        }
    }
    s->stream = s->m->imap_stream;
    if (c->tls != SB_IMAP_TLS_NONE && c->tls_verify) {
        rc = verify_chain(s->m->imap_stream, c->host, err, errlen);
        if (rc != SB_OK)
            goto fail;
    }
    r = mailimap_login(s->m, c->username, c->password);
    if (r != MAILIMAP_NO_ERROR) {
        rc = fail_imap(s, r == MAILIMAP_ERROR_STREAM ? r : MAILIMAP_ERROR_LOGIN, err, errlen, what);
        goto fail;
    }
    r = read_capabilities(s);
    if (r != MAILIMAP_NO_ERROR) {
        rc = fail_imap(s, r, err, errlen, what);
        goto fail;
    }
    *s_r = s;
    return SB_OK;
fail:
    mailimap_free(s->m);
    free(s);
    return rc;
}

void sb_imap_close(struct sb_imap **sp)
{
    struct sb_imap *s = *sp;
    if (!s)
        return;
    if (s->m->imap_stream)
        mailimap_logout(s->m);
    mailimap_free(s->m);
    free(s);
    *sp = NULL;
}

void sb_imap_cancel(struct sb_imap *s)
{
    if (s && s->stream)
        mailstream_cancel(s->stream);
}

int sb_imap_has_idle(const struct sb_imap *s)
{
    return s->has_idle;
}

int sb_imap_examine(struct sb_imap *s, const char *folder, struct sb_imap_folder *f, char *err,
                    size_t errlen)
{
    memset(f, 0, sizeof *f);
    char *name = sb_imap_utf7_encode(folder);
    if (!name)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    int r = mailimap_examine(s->m, name);
    free(name);
    if (r != MAILIMAP_NO_ERROR) {
        char what[300];
        snprintf(what, sizeof what, "folder '%s'", folder);
        return fail_imap(s, r, err, errlen, what);
    }
    struct mailimap_selection_info *si = s->m->imap_selection_info;
    if (!si || !si->sel_uidvalidity)
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                       "folder '%s': the server gave no UIDVALIDITY", folder);
    f->uidvalidity = si->sel_uidvalidity;
    f->uidnext = si->sel_uidnext;
    f->exists = si->sel_exists;
    return SB_OK;
}

int sb_imap_uids(struct sb_imap *s, uint32_t first, uint32_t last, struct sb_imap_uid **list_r,
                 size_t *n_r, char *err, size_t errlen)
{
    *list_r = NULL;
    *n_r = 0;
    struct mailimap_set *set = mailimap_set_new_interval(first, last);
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    if (!set || !ft) {
        if (set)
            mailimap_set_free(set);
        if (ft)
            mailimap_fetch_type_free(ft);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid());
    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_rfc822_size());
    clist *res = NULL;
    int r = mailimap_uid_fetch(s->m, set, ft, &res);
    mailimap_set_free(set);
    mailimap_fetch_type_free(ft);
    if (r != MAILIMAP_NO_ERROR)
        return fail_imap(s, r, err, errlen, "UID FETCH");
    size_t cap = (size_t)clist_count(res), n = 0;
    struct sb_imap_uid *list = cap ? calloc(cap, sizeof *list) : NULL;
    if (cap && !list) {
        mailimap_fetch_list_free(res);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
        struct mailimap_msg_att *ma = clist_content(it);
        uint32_t uid = 0, size = 0;
        for (clistiter *j = clist_begin(ma->att_list); j; j = clist_next(j)) {
            struct mailimap_msg_att_item *item = clist_content(j);
            if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
                continue;
            struct mailimap_msg_att_static *st = item->att_data.att_static;
            if (st->att_type == MAILIMAP_MSG_ATT_UID)
                uid = st->att_data.att_uid;
            else if (st->att_type == MAILIMAP_MSG_ATT_RFC822_SIZE)
                size = st->att_data.att_rfc822_size;
        }
        /* "n:*" answers with the last message even when its UID is below n. */
        if (uid < first || (last && uid > last))
            continue;
        list[n].uid = uid;
        list[n].size = size;
        n++;
    }
    mailimap_fetch_list_free(res);
    /* Servers answer in sequence order, which is UID order; make sure. */
    for (size_t i = 1; i < n; i++)
        if (list[i].uid < list[i - 1].uid) {
            for (size_t a = 1; a < n; a++) /* insertion sort: almost sorted already */
                for (size_t b = a; b > 0 && list[b].uid < list[b - 1].uid; b--) {
                    struct sb_imap_uid t = list[b];
                    list[b] = list[b - 1];
                    list[b - 1] = t;
                }
            break;
        }
    if (!n) {
        free(list);
        list = NULL;
    }
    *list_r = list;
    *n_r = n;
    return SB_OK;
}

int sb_imap_first_uid_since(struct sb_imap *s, int days, uint32_t *uid_r, char *err, size_t errlen)
{
    *uid_r = 0;
    time_t t = time(NULL) - (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    struct mailimap_date *d = mailimap_date_new(tm.tm_mday, tm.tm_mon + 1, tm.tm_year + 1900);
    struct mailimap_search_key *key = d ? mailimap_search_key_new_since(d) : NULL;
    if (!key) {
        if (d)
            mailimap_date_free(d);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    clist *res = NULL;
    int r = mailimap_uid_search(s->m, NULL, key, &res);
    mailimap_search_key_free(key);
    if (r != MAILIMAP_NO_ERROR)
        return fail_imap(s, r, err, errlen, "UID SEARCH SINCE");
    for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
        uint32_t u = *(uint32_t *)clist_content(it);
        if (!*uid_r || u < *uid_r)
            *uid_r = u;
    }
    mailimap_search_result_free(res);
    return SB_OK;
}

int sb_imap_fetch(struct sb_imap *s, const uint32_t *uids, size_t n, sb_imap_message_fn fn,
                  void *arg, char *err, size_t errlen)
{
    if (!n)
        return SB_OK;
    struct mailimap_set *set = mailimap_set_new_empty();
    struct mailimap_fetch_type *ft = mailimap_fetch_type_new_fetch_att_list_empty();
    struct mailimap_section *sec = mailimap_section_new(NULL);
    int bad = !set || !ft || !sec;
    /* Runs of consecutive UIDs as ranges: a short command line. */
    for (size_t i = 0; !bad && i < n;) {
        size_t j = i;
        while (j + 1 < n && uids[j + 1] == uids[j] + 1)
            j++;
        bad = (i == j ? mailimap_set_add_single(set, uids[i])
                      : mailimap_set_add_interval(set, uids[i], uids[j])) != MAILIMAP_NO_ERROR;
        i = j + 1;
    }
    if (!bad) {
        bad = mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid()) ||
              mailimap_fetch_type_new_fetch_att_list_add(
                  ft, mailimap_fetch_att_new_body_peek_section(sec));
        sec = NULL; /* owned by ft now */
    }
    if (bad) {
        if (set)
            mailimap_set_free(set);
        if (ft)
            mailimap_fetch_type_free(ft);
        if (sec)
            mailimap_section_free(sec);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    clist *res = NULL;
    int r = mailimap_uid_fetch(s->m, set, ft, &res);
    mailimap_set_free(set);
    mailimap_fetch_type_free(ft);
    if (r != MAILIMAP_NO_ERROR)
        return fail_imap(s, r, err, errlen, "UID FETCH BODY.PEEK[]");
    int rc = SB_OK;
    for (clistiter *it = clist_begin(res); it && rc == SB_OK; it = clist_next(it)) {
        struct mailimap_msg_att *ma = clist_content(it);
        uint32_t uid = 0;
        const char *body = NULL;
        size_t len = 0;
        for (clistiter *j = clist_begin(ma->att_list); j; j = clist_next(j)) {
            struct mailimap_msg_att_item *item = clist_content(j);
            if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
                continue;
            struct mailimap_msg_att_static *st = item->att_data.att_static;
            if (st->att_type == MAILIMAP_MSG_ATT_UID) {
                uid = st->att_data.att_uid;
            } else if (st->att_type == MAILIMAP_MSG_ATT_BODY_SECTION) {
                body = st->att_data.att_body_section->sec_body_part;
                len = st->att_data.att_body_section->sec_length;
            }
        }
        /* Unsolicited FETCH responses (flag changes) carry no body. */
        if (uid && (body || len == 0))
            rc = fn(uid, (const unsigned char *)(body ? body : ""), len, arg);
    }
    mailimap_fetch_list_free(res);
    return rc;
}

int sb_imap_idle(struct sb_imap *s, int seconds, int wake_fd, char *err, size_t errlen)
{
    if (!s->has_idle)
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "IDLE without the server's support");
    int r = mailimap_idle(s->m);
    if (r != MAILIMAP_NO_ERROR)
        return fail_imap(s, r, err, errlen, "IDLE");
    /* Bytes libetpan already buffered count as news. */
    if (s->m->imap_stream->read_buffer_len == 0) {
        struct pollfd p[2] = {{mailimap_idle_get_fd(s->m), POLLIN, 0}, {wake_fd, POLLIN, 0}};
        poll(p, wake_fd >= 0 ? 2 : 1, seconds * 1000);
    }
    r = mailimap_idle_done(s->m);
    if (r != MAILIMAP_NO_ERROR)
        return fail_imap(s, r, err, errlen, "IDLE DONE");
    return SB_OK;
}

int sb_imap_list(struct sb_imap *s, json_t **names_r, char *err, size_t errlen)
{
    *names_r = NULL;
    clist *res = NULL;
    int r = mailimap_list(s->m, "", "*", &res);
    if (r != MAILIMAP_NO_ERROR)
        return fail_imap(s, r, err, errlen, "LIST");
    json_t *a = json_array();
    for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
        struct mailimap_mailbox_list *mb = clist_content(it);
        char *name = mb->mb_name ? sb_imap_utf7_decode(mb->mb_name) : NULL;
        if (name)
            json_array_append_new(a, json_string(name));
        free(name);
    }
    mailimap_list_result_free(res);
    *names_r = a;
    return SB_OK;
}

/* ---- modified UTF-7 (RFC 3501 5.1.3) ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Next code point of UTF-8 text; U+FFFD for a broken sequence. */
static uint32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = *s++;
    int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (c >= 0x80 && !more) {
        *p = s;
        return 0xFFFD;
    }
    c &= more == 3 ? 0x07 : more == 2 ? 0x0F : more == 1 ? 0x1F : 0x7F;
    while (more--) {
        if ((*s & 0xC0) != 0x80) {
            *p = s;
            return 0xFFFD;
        }
        c = (c << 6) | (*s++ & 0x3F);
    }
    *p = s;
    return c;
}

char *sb_imap_utf7_encode(const char *utf8)
{
    size_t len = strlen(utf8);
    char *out = malloc(len * 4 + 3), *o = out;
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)utf8;
    while (*p) {
        if (*p >= 0x20 && *p < 0x7F) {
            *o++ = (char)*p;
            if (*p++ == '&')
                *o++ = '-';
            continue;
        }
        /* A run of other characters: UTF-16BE, base64 with ',' for '/'. */
        *o++ = '&';
        uint32_t bits = 0;
        int nbits = 0;
        while (*p && (*p < 0x20 || *p >= 0x7F)) {
            uint32_t c = utf8_next(&p);
            uint16_t units[2];
            int nu = 1;
            if (c >= 0x10000) {
                c -= 0x10000;
                units[0] = (uint16_t)(0xD800 | (c >> 10));
                units[1] = (uint16_t)(0xDC00 | (c & 0x3FF));
                nu = 2;
            } else {
                units[0] = (uint16_t)c;
            }
            for (int u = 0; u < nu; u++) {
                bits = (bits << 16) | units[u];
                nbits += 16;
                while (nbits >= 6) {
                    nbits -= 6;
                    *o++ = b64[(bits >> nbits) & 0x3F];
                }
            }
        }
        if (nbits)
            *o++ = b64[(bits << (6 - nbits)) & 0x3F];
        *o++ = '-';
    }
    *o = '\0';
    return out;
}

static void put_utf8(char **o, uint32_t c)
{
    char *p = *o;
    if (c < 0x80) {
        *p++ = (char)c;
    } else if (c < 0x800) {
        *p++ = (char)(0xC0 | (c >> 6));
        *p++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *p++ = (char)(0xE0 | (c >> 12));
        *p++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *p++ = (char)(0x80 | (c & 0x3F));
    } else {
        *p++ = (char)(0xF0 | (c >> 18));
        *p++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *p++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *p++ = (char)(0x80 | (c & 0x3F));
    }
    *o = p;
}

char *sb_imap_utf7_decode(const char *in)
{
    size_t len = strlen(in);
    char *out = malloc(len * 3 + 1), *o = out;
    if (!out)
        return NULL;
    const char *p = in;
    while (*p) {
        if (*p != '&') {
            *o++ = *p++;
            continue;
        }
        p++;
        if (*p == '-') {
            *o++ = '&';
            p++;
            continue;
        }
        uint32_t bits = 0, hi = 0;
        int nbits = 0;
        for (; *p && *p != '-'; p++) {
            const char *k = strchr(b64, *p);
            if (!k)
                break;
            bits = (bits << 6) | (uint32_t)(k - b64);
            nbits += 6;
            if (nbits >= 16) {
                nbits -= 16;
                uint32_t u = (bits >> nbits) & 0xFFFF;
                if (u >= 0xD800 && u < 0xDC00) {
                    hi = u;
                } else if (u >= 0xDC00 && u < 0xE000 && hi) {
                    put_utf8(&o, 0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00));
                    hi = 0;
                } else {
                    put_utf8(&o, u);
                    hi = 0;
                }
            }
        }
        if (*p == '-')
            p++;
    }
    *o = '\0';
    return out;
}
