/* The tests' WebSocket client (see wsclient.h). */
#include "wsclient.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct msg {
    struct msg *next;
    char *text;
};

struct th_ws {
    struct lws_context *ctx;
    struct lws *wsi;
    char header_name[64];
    char header_value[1024];
    int established, closed, close_code;
    char error[256];
    struct msg *head, *tail;
    char *partial;
    size_t partial_len;
    char *out; /* one message waiting to be written */
    size_t out_len;
};

static int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    (void)user;
    struct th_ws *c = lws_get_opaque_user_data(wsi);
    if (!c)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!c->header_name[0])
            return 0;
        unsigned char **p = in, *end = *p + len;
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)c->header_name,
                                        (const unsigned char *)c->header_value,
                                        (int)strlen(c->header_value), p, end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->established = 1;
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        snprintf(c->error, sizeof c->error, "%s", in ? (const char *)in : "connection error");
        c->closed = 1;
        c->wsi = NULL;
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        char *np = realloc(c->partial, c->partial_len + len + 1);
        if (!np)
            return -1;
        c->partial = np;
        memcpy(c->partial + c->partial_len, in, len);
        c->partial_len += len;
        c->partial[c->partial_len] = '\0';
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            struct msg *m = calloc(1, sizeof *m);
            if (!m)
                return -1;
            m->text = c->partial;
            c->partial = NULL;
            c->partial_len = 0;
            if (c->tail)
                c->tail->next = m;
            else
                c->head = m;
            c->tail = m;
        }
        return 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c->out) {
            unsigned char *buf = malloc(LWS_PRE + c->out_len);
            if (!buf)
                return -1;
            memcpy(buf + LWS_PRE, c->out, c->out_len);
            int n = lws_write(wsi, buf + LWS_PRE, c->out_len, LWS_WRITE_TEXT);
            free(buf);
            free(c->out);
            c->out = NULL;
            if (n < 0)
                return -1;
        }
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            c->close_code = b[0] << 8 | b[1];
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->closed = 1;
        c->wsi = NULL;
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols client_protocols[] = {
    {"switchboard.v1", client_callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* lws 4.1 waits in poll(2) for its next timer when told 0 (which may be
 * days away): the tests poll without blocking, a millisecond apart. */
static void service(struct th_ws *c)
{
    if (lws_service(c->ctx, -1) == 0)
        usleep(500);
}

static void service_for(struct th_ws *c, double until)
{
    while (now_ms() < until) {
        service(c);
        if (c->head || c->closed)
            return;
    }
}

struct th_ws *th_ws_connect(int port, const char *header, char *why, size_t whylen)
{
    lws_set_log_level(LLL_ERR, NULL);
    struct th_ws *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (header) {
        const char *colon = strchr(header, ':');
        if (colon && (size_t)(colon - header) + 2 < sizeof c->header_name) {
            memcpy(c->header_name, header, (size_t)(colon - header) + 1);
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            snprintf(c->header_value, sizeof c->header_value, "%s", v);
        }
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = client_protocols;
    c->ctx = lws_create_context(&info);
    if (!c->ctx) {
        snprintf(why, whylen, "cannot create a client context");
        free(c);
        return NULL;
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.address = "127.0.0.1";
    ci.port = port;
    ci.path = "/ws";
    ci.host = "127.0.0.1";
    ci.origin = NULL;
    ci.protocol = "switchboard.v1";
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci)) {
        snprintf(why, whylen, "connect failed: %s", c->error[0] ? c->error : "at once");
        lws_context_destroy(c->ctx);
        free(c);
        return NULL;
    }
    double until = now_ms() + 5000;
    while (!c->established && !c->closed && now_ms() < until)
        service(c);
    if (!c->established) {
        snprintf(why, whylen, "upgrade failed: %s", c->error[0] ? c->error : "timeout");
        th_ws_free(&c);
        return NULL;
    }
    return c;
}

int th_ws_send(struct th_ws *c, const char *text)
{
    if (!c->wsi || c->closed)
        return -1;
    free(c->out);
    c->out = strdup(text);
    if (!c->out)
        return -1;
    c->out_len = strlen(text);
    lws_callback_on_writable(c->wsi);
    double until = now_ms() + 2000;
    while (c->out && !c->closed && now_ms() < until)
        service(c);
    return c->out ? -1 : 0;
}

char *th_ws_recv(struct th_ws *c, int timeout_ms)
{
    if (!c->head && !c->closed)
        service_for(c, now_ms() + timeout_ms);
    struct msg *m = c->head;
    if (!m)
        return NULL;
    c->head = m->next;
    if (!c->head)
        c->tail = NULL;
    char *t = m->text;
    free(m);
    return t;
}

char *th_ws_recv_type(struct th_ws *c, const char *type, int timeout_ms)
{
    char want[80];
    snprintf(want, sizeof want, "\"type\":\"%s\"", type);
    double until = now_ms() + timeout_ms;
    for (;;) {
        double left = until - now_ms();
        if (left <= 0)
            return NULL;
        char *m = th_ws_recv(c, (int)left);
        if (!m)
            return NULL;
        if (strstr(m, want))
            return m;
        free(m);
    }
}

void th_ws_pump(struct th_ws *c, int timeout_ms)
{
    double until = now_ms() + timeout_ms;
    while (now_ms() < until && !c->closed)
        service(c);
}

int th_ws_close_code(const struct th_ws *c)
{
    return c->close_code;
}

int th_ws_closed(const struct th_ws *c)
{
    return c->closed;
}

void th_ws_free(struct th_ws **cp)
{
    struct th_ws *c = *cp;
    if (!c)
        return;
    lws_context_destroy(c->ctx);
    while (c->head) {
        struct msg *m = c->head;
        c->head = m->next;
        free(m->text);
        free(m);
    }
    free(c->partial);
    free(c->out);
    free(c);
    *cp = NULL;
}
