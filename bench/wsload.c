/* bench/wsload: the WebSocket load generator of bench/ws.
 *
 *   wsload idle   PORT CONNS [HEADER]
 *       opens CONNS WebSocket connections to ws://127.0.0.1:PORT/ws, prints
 *       "ready N" once all are upgraded, and holds them (answering pings)
 *       until its stdin closes.
 *   wsload fanout PORT CONNS HOOKPORT HOOKPATH RATE SECONDS [HEADER [HOOKHEADER]]
 *       opens CONNS connections, then posts Telegram-style webhooks to
 *       http://127.0.0.1:HOOKPORT/HOOKPATH at RATE a second for SECONDS, each
 *       with the text "bench-<seq>", and times every frame that carries one
 *       from the webhook's 200 to its arrival on each connection, and also
 *       from writing the webhook's request. Prints p50/p99/max and what
 *       arrived, then a JSON line.
 *
 * One thread, epoll, raw sockets: the client must cost less than what it
 * measures. Everything is on loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Enough posting connections that a server slow to answer still gets the
 * full rate (an open-loop load): a server that answers late must not be
 * rewarded with fewer webhooks to fan out. */
#define HOOK_CONNS 128

struct conn {
    int fd;
    int upgraded;
    char *buf;
    size_t len, cap;
    /* webhook connections only */
    int hook;
    long long seq; /* in flight, or -1 */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 1000);
            continue;
        }
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

static void append(struct conn *c, const char *p, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf)
            die("realloc");
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    c->buf[c->len] = '\0';
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* --- state for the fan-out measurement ------------------------------------- */

/* The poster thread writes sent_at (the time each webhook's 200 was read);
 * the receiver thread appends arrivals. Latencies are worked out after both
 * have stopped, so an event read before its 200 (the two threads race)
 * still gets its true latency, not zero. */
static double *sent_at;   /* seq → time of the 200 (0 = never) */
static double *posted_at; /* seq → time the request was written */
static long long nseq;
struct arrival {
    double t;
    long long seq;
};
static struct arrival *arrivals;
static size_t narrivals, arrivals_cap;

static void record(long long seq, double t)
{
    if (seq < 0 || seq >= nseq || narrivals == arrivals_cap)
        return;
    arrivals[narrivals].t = t;
    arrivals[narrivals].seq = seq;
    narrivals++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Frames from the server: text frames are searched for "bench-<seq>";
 * pings are answered (masked, as a client must). */
static void ws_frames(struct conn *c, double t)
{
    size_t off = 0;
    for (;;) {
        if (c->len - off < 2)
            break;
        unsigned char *p = (unsigned char *)c->buf + off;
        int op = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (c->len - off < 4)
                break;
            len = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (len == 127) {
            if (c->len - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            h = 10;
        }
        if (c->len - off < h + len)
            break;
        const char *payload = (const char *)p + h;
        if (op == 1) {
            const char *s = payload, *end = payload + len;
            while ((s = memmem(s, (size_t)(end - s), "bench-", 6)) != NULL) {
                s += 6;
                record(strtoll(s, NULL, 10), t);
            }
        } else if (op == 9 && len <= 125) { /* ping → pong */
            unsigned char pong[2 + 4 + 125];
            pong[0] = 0x8a;
            pong[1] = (unsigned char)(0x80 | len);
            memset(pong + 2, 0, 4); /* a zero mask keeps the payload as it is */
            memcpy(pong + 6, payload, len);
            write_all(c->fd, (const char *)pong, 6 + len);
        } else if (op == 8) {
            fprintf(stderr, "wsload: the server closed a connection\n");
        }
        off += h + len;
    }
    consume(c, off);
}

static int on_readable(struct conn *c, double t)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = read(c->fd, tmp, sizeof tmp);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        append(c, tmp, (size_t)n);
        if (c->hook) {
            /* HTTP answers: headers, then Content-Length bytes. */
            char *eoh;
            while ((eoh = strstr(c->buf, "\r\n\r\n")) != NULL) {
                char *cl = strcasestr(c->buf, "content-length:");
                size_t body = cl && cl < eoh ? strtoul(cl + 15, NULL, 10) : 0;
                size_t total = (size_t)(eoh + 4 - c->buf) + body;
                if (c->len < total)
                    break;
                if (strncmp(c->buf + 9, "200", 3) != 0)
                    fprintf(stderr, "wsload: webhook answered %.12s\n", c->buf);
                else if (c->seq >= 0 && c->seq < nseq)
                    sent_at[c->seq] = t;
                c->seq = -1;
                consume(c, total);
            }
        } else if (!c->upgraded) {
            char *eoh = strstr(c->buf, "\r\n\r\n");
            if (!eoh)
                continue;
            if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0) {
                fprintf(stderr, "wsload: upgrade refused: %.60s\n", c->buf);
                exit(1);
            }
            c->upgraded = 1;
            consume(c, (size_t)(eoh + 4 - c->buf));
            ws_frames(c, t);
        } else {
            ws_frames(c, t);
        }
    }
}

static struct conn *open_all(int ep, int port, int n, const char *header)
{
    struct conn *cs = calloc((size_t)n, sizeof *cs);
    if (!cs)
        die("calloc");
    char req[2048];
    int len = snprintf(req, sizeof req,
                       "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: switchboard.v1\r\n"
                       "%s%s\r\n",
                       port, header ? header : "", header ? "\r\n" : "");
    int upgraded = 0;
    for (int i = 0; i < n; i++) {
        cs[i].fd = dial(port);
        cs[i].seq = -1;
        write_all(cs[i].fd, req, (size_t)len);
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        /* Keep the server's accept queue short: wait for upgrades now and then. */
        if (i % 200 == 199 || i == n - 1) {
            double until = now() + 30;
            while (upgraded < i + 1 && now() < until) {
                struct epoll_event evs[256];
                int k = epoll_wait(ep, evs, 256, 100);
                for (int j = 0; j < k; j++) {
                    struct conn *c = evs[j].data.ptr;
                    int was = c->upgraded;
                    if (on_readable(c, now()) < 0) {
                        fprintf(stderr, "wsload: a connection closed during the upgrade\n");
                        exit(1);
                    }
                    upgraded += c->upgraded && !was;
                }
            }
            if (upgraded < i + 1) {
                fprintf(stderr, "wsload: only %d of %d upgraded\n", upgraded, i + 1);
                exit(1);
            }
        }
    }
    return cs;
}

static int cmd_idle(int port, int n, const char *header)
{
    int ep = epoll_create1(0);
    struct conn *cs = open_all(ep, port, n, header);
    printf("ready %d\n", n);
    fflush(stdout);
    struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
    for (;;) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int j = 0; j < k; j++) {
            if (!evs[j].data.ptr) { /* stdin: closed or a line: stop */
                for (int i = 0; i < n; i++)
                    close(cs[i].fd);
                return 0;
            }
            on_readable(evs[j].data.ptr, now());
        }
    }
}

struct poster {
    int port, rate, seconds;
    const char *path, *header;
    long long sent, failed, reconnects;
};

/* The poster thread: webhooks at the given rate over HOOK_CONNS kept-alive
 * connections; a webhook waits for a free connection rather than being
 * skipped, so every one is sent (late if the server is behind). */
static void *poster_main(void *arg)
{
    struct poster *ps = arg;
    int ep = epoll_create1(0);
    struct conn hooks[HOOK_CONNS];
    memset(hooks, 0, sizeof hooks);
    for (int i = 0; i < HOOK_CONNS; i++) {
        hooks[i].fd = dial(ps->port);
        hooks[i].hook = 1;
        hooks[i].seq = -1;
        fcntl(hooks[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &hooks[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, hooks[i].fd, &ev);
    }
    /* Update ids unique to this run: a second run against the same server
     * must not be taken for redeliveries of the first (and stored once). */
    long long base = (long long)getpid() * 1000000;
    double start = now(), interval = 1.0 / ps->rate;
    long long next = 0;
    double end_at = start + ps->seconds + 5;
    while (now() < end_at) {
        int busy = 0;
        for (int i = 0; i < HOOK_CONNS; i++)
            busy += hooks[i].seq >= 0;
        if (next == nseq && !busy)
            break;
        double t = now();
        while (next < nseq && start + (double)next * interval <= t) {
            struct conn *h = NULL;
            for (int i = 0; i < HOOK_CONNS && !h; i++)
                if (hooks[i].seq < 0)
                    h = &hooks[i];
            if (!h)
                break; /* all busy: send when one is free */
            char body[512], req[1024];
            long long user = 100000 + next % 200;
            int bl = snprintf(body, sizeof body,
                              "{\"update_id\":%lld,\"message\":{\"message_id\":%lld,\"from\":{"
                              "\"id\":%lld,\"first_name\":\"Bench\"},\"chat\":{\"id\":%lld,"
                              "\"type\":\"private\"},\"date\":1763900000,\"text\":\"bench-%lld\"}}",
                              base + next, base + next, user, user, next);
            int rl = snprintf(req, sizeof req,
                              "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                              "application/json\r\nContent-Length: %d\r\n%s%s\r\n%s",
                              ps->path, bl, ps->header ? ps->header : "", ps->header ? "\r\n" : "",
                              body);
            h->seq = next;
            posted_at[next] = now();
            write_all(h->fd, req, (size_t)rl);
            next++;
            ps->sent++;
        }
        /* Round the wait up: a wait of 0 ms would spin until the next
         * webhook is due and take a core from what is being measured. */
        double wake = start + (double)next * interval;
        int ms = next < nseq ? (int)((wake - now()) * 1000 + 0.999) : 50;
        if (ms < 1)
            ms = 1;
        struct epoll_event evs[HOOK_CONNS];
        int k = epoll_wait(ep, evs, HOOK_CONNS, ms);
        double tr = now();
        for (int j = 0; j < k; j++) {
            struct conn *h = evs[j].data.ptr;
            if (on_readable(h, tr) >= 0)
                continue;
            /* The server closed a kept-alive connection (its idle timeout):
             * dial again. A webhook in flight on it never gets its 200 and
             * is left out of the latencies. */
            ps->reconnects++;
            epoll_ctl(ep, EPOLL_CTL_DEL, h->fd, NULL);
            close(h->fd);
            free(h->buf);
            *h = (struct conn){.fd = dial(ps->port), .hook = 1, .seq = -1};
            fcntl(h->fd, F_SETFL, O_NONBLOCK);
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = h};
            epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &ev);
        }
    }
    for (int i = 0; i < HOOK_CONNS; i++)
        close(hooks[i].fd);
    close(ep);
    return NULL;
}

static int cmd_fanout(int port, int n, int hook_port, const char *hook_path, int rate, int seconds,
                      const char *header, const char *hook_header)
{
    nseq = (long long)rate * seconds;
    sent_at = calloc((size_t)nseq, sizeof *sent_at);
    posted_at = calloc((size_t)nseq, sizeof *posted_at);
    arrivals_cap = (size_t)nseq * (size_t)n;
    arrivals = malloc(arrivals_cap * sizeof *arrivals);
    if (!sent_at || !posted_at || !arrivals)
        die("calloc");
    int ep = epoll_create1(0);
    struct conn *cs = open_all(ep, port, n, header);
    /* Let the server settle (presence events and the like) before timing. */
    double settle = now() + 1;
    while (now() < settle) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 50);
        for (int j = 0; j < k; j++)
            on_readable(evs[j].data.ptr, now());
    }
    narrivals = 0;
    struct poster ps = {.port = hook_port,
                        .rate = rate,
                        .seconds = seconds,
                        .path = hook_path,
                        .header = hook_header};
    pthread_t poster;
    double t0 = now();
    if (pthread_create(&poster, NULL, poster_main, &ps) != 0)
        die("pthread_create");
    double end_at = now() + seconds + 5;
    size_t expected = (size_t)nseq * (size_t)n;
    while (now() < end_at && narrivals < expected) {
        struct epoll_event evs[512];
        int k = epoll_wait(ep, evs, 512, 50);
        double tr = now();
        for (int j = 0; j < k; j++)
            if (on_readable(evs[j].data.ptr, tr) < 0) {
                fprintf(stderr, "wsload: a connection closed\n");
                return 1;
            }
    }
    pthread_join(poster, NULL);
    /* Two clocks: from the 200 (what the issue asks; a frame read before
     * its 200 counts as 0, and a starved poster thread reads 200s late),
     * and from writing the request (takes in the server's answer and the
     * commit too, but no reading order). */
    double *lat = malloc((narrivals ? narrivals : 1) * sizeof *lat);
    double *lat_req = malloc((narrivals ? narrivals : 1) * sizeof *lat_req);
    size_t nl = 0, early = 0;
    for (size_t i = 0; lat && lat_req && i < narrivals; i++) {
        double t200 = sent_at[arrivals[i].seq];
        if (!t200)
            continue; /* its webhook never got a 200 */
        double l = (arrivals[i].t - t200) * 1000;
        if (l < 0) {
            early++;
            l = 0;
        }
        lat_req[nl] = (arrivals[i].t - posted_at[arrivals[i].seq]) * 1000;
        lat[nl++] = l;
    }
    qsort(lat, nl, sizeof *lat, cmp_double);
    qsort(lat_req, nl, sizeof *lat_req, cmp_double);
    double req_p50 = nl ? lat_req[nl / 2] : 0,
           req_p99 = nl ? lat_req[(size_t)((double)nl * 0.99)] : 0;
    double t_last = t0;
    for (size_t i = 0; i < narrivals; i++)
        if (arrivals[i].t > t_last)
            t_last = arrivals[i].t;
    double fps = t_last > t0 ? (double)narrivals / (t_last - t0) : 0;
    double p50 = nl ? lat[nl / 2] : 0, p99 = nl ? lat[(size_t)((double)nl * 0.99)] : 0,
           mx = nl ? lat[nl - 1] : 0;
    long long ok = 0;
    for (long long i = 0; i < nseq; i++)
        ok += sent_at[i] != 0;
    printf("connections %d, webhooks %lld at %d/s, %lld answered 200 (%lld webhook connections "
           "closed by the server and dialled again)\n",
           n, ps.sent, rate, ok, ps.reconnects);
    printf("frames delivered %zu of %lld (%.1f%%), %zu read before their webhook's 200\n",
           narrivals, ok * n, ok ? 100.0 * (double)narrivals / (double)(ok * n) : 0, early);
    printf("latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.0f frames/s from the first webhook "
           "to the last frame\n",
           p50, p99, mx, fps);
    printf("from writing the request: p50 %.1f ms, p99 %.1f ms\n", req_p50, req_p99);
    printf("{\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,\"req_p50_ms\":%.1f,"
           "\"req_p99_ms\":%.1f,\"delivered\":%zu,\"expected\":%lld,\"fps\":%.0f}\n",
           p50, p99, mx, req_p50, req_p99, narrivals, ok * n, fps);
    for (int i = 0; i < n; i++)
        close(cs[i].fd);
    free(lat);
    free(lat_req);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "idle"))
        return cmd_idle(atoi(argv[2]), atoi(argv[3]), argc > 4 ? argv[4] : NULL);
    if (argc >= 8 && !strcmp(argv[1], "fanout"))
        return cmd_fanout(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5], atoi(argv[6]),
                          atoi(argv[7]), argc > 8 ? argv[8] : NULL, argc > 9 ? argv[9] : NULL);
    fprintf(stderr, "usage: wsload idle PORT CONNS [HEADER]\n"
                    "       wsload fanout PORT CONNS HOOKPORT HOOKPATH RATE SECONDS [HEADER "
                    "[HOOKHEADER]]\n");
    return 2;
}
