/* The sender's transfer set-up, run once (sb_send_once): an HTTP POST to
 * the mock provider, and an SMTP submission (the shape e-mail channels will
 * use) to a minimal SMTP responder on loopback, accepted and refused. */
#include "harness.h"
#include "switchboard/channel.h"
#include "switchboard/err.h"
#include "switchboard/sender.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static void http_post_through_send_once(void **state)
{
    (void)state;
    struct th_mock mock;
    th_mock_start(&mock, 200, "{\"ok\":true}");
    struct sb_send_req req = {0};
    snprintf(req.url, sizeof req.url, "http://127.0.0.1:%d/bot1:X/sendMessage", mock.port);
    json_t *body = json_pack("{s:i,s:s}", "chat_id", 5, "text", "привет");
    assert_int_equal(sb_send_req_json(&req, body), SB_OK);
    json_decref(body);
    assert_int_equal(sb_send_req_header(&req, "X-Test: yes"), SB_OK);
    long status;
    char *answer, err[256] = "";
    size_t len;
    assert_int_equal(sb_send_once(&req, &status, &answer, &len, err, sizeof err), SB_OK);
    assert_int_equal(status, 200);
    assert_string_equal(answer, "{\"ok\":true}");
    free(answer);
    char head[4096], got[4096];
    assert_int_equal(th_mock_request(&mock, 0, head, sizeof head, got, sizeof got), 0);
    assert_non_null(strstr(head, "POST /bot1:X/sendMessage HTTP/1.1"));
    assert_non_null(strstr(head, "X-Test: yes\r\n"));
    assert_null(strcasestr(head, "Expect:"));
    assert_string_equal(got, "{\"chat_id\":5,\"text\":\"привет\"}");
    sb_send_req_free(&req);
    th_mock_stop(&mock);

    /* Nobody listening: no answer at all. */
    snprintf(req.url, sizeof req.url, "http://127.0.0.1:%d/", mock.port);
    assert_int_equal(sb_send_once(&req, &status, &answer, &len, err, sizeof err),
                     SB_ERR_UNAVAILABLE);
    assert_null(answer);
}

/* --- a minimal SMTP responder ------------------------------------------- */

struct smtp {
    int fd, port;
    pthread_t thread;
    char envelope[1024]; /* MAIL/RCPT lines as received */
    char data[8192];     /* the DATA section, up to the final "." line */
};

static int read_line(int c, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len) {
        char ch;
        if (read(c, &ch, 1) != 1)
            return -1;
        buf[n++] = ch;
        if (ch == '\n')
            break;
    }
    buf[n] = '\0';
    return (int)n;
}

static void append(char *dst, size_t cap, const char *s)
{
    size_t have = strlen(dst), n = strlen(s);
    if (have + n < cap)
        memcpy(dst + have, s, n + 1);
}

static void say(int c, const char *line)
{
    ssize_t w = write(c, line, strlen(line));
    (void)w;
}

static void *smtp_main(void *arg)
{
    struct smtp *m = arg;
    int c = accept(m->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char line[1024];
    say(c, "220 sink ESMTP\r\n");
    while (read_line(c, line, sizeof line) > 0) {
        if (!strncasecmp(line, "EHLO", 4)) {
            say(c, "250-sink\r\n250 SIZE 1000000\r\n");
        } else if (!strncasecmp(line, "MAIL FROM:", 10)) {
            append(m->envelope, sizeof m->envelope, line);
            say(c, "250 ok\r\n");
        } else if (!strncasecmp(line, "RCPT TO:", 8)) {
            append(m->envelope, sizeof m->envelope, line);
            say(c, strstr(line, "nobody@") ? "550 5.1.1 no such user\r\n" : "250 ok\r\n");
        } else if (!strncasecmp(line, "DATA", 4)) {
            say(c, "354 go ahead\r\n");
            while (read_line(c, line, sizeof line) > 0 && strcmp(line, ".\r\n"))
                append(m->data, sizeof m->data, line);
            say(c, "250 2.0.0 queued as ABC123\r\n");
        } else if (!strncasecmp(line, "QUIT", 4)) {
            say(c, "221 bye\r\n");
            break;
        } else {
            say(c, "250 ok\r\n"); /* RSET, NOOP */
        }
    }
    close(c);
    return NULL;
}

static void smtp_start(struct smtp *m)
{
    memset(m, 0, sizeof *m);
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(m->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(m->fd, 4), 0);
    getsockname(m->fd, (struct sockaddr *)&a, &len);
    m->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&m->thread, NULL, smtp_main, m), 0);
}

static void smtp_stop(struct smtp *m)
{
    shutdown(m->fd, SHUT_RDWR);
    close(m->fd);
    pthread_join(m->thread, NULL);
}

static void smtp_req(struct sb_send_req *req, int port, const char *rcpt)
{
    memset(req, 0, sizeof *req);
    snprintf(req->url, sizeof req->url, "smtp://127.0.0.1:%d/switchboard.test", port);
    req->mail_from = strdup("<shop@example.com>");
    assert_int_equal(sb_send_req_rcpt(req, rcpt), SB_OK);
    const char *msg = "From: Shop <shop@example.com>\r\nTo: anna@example.net\r\n"
                      "Subject: Re: kitchen\r\nMessage-ID: <r1@example.com>\r\n\r\n"
                      "Hello Anna,\r\n.a line starting with a dot\r\n";
    req->body = strdup(msg);
    req->body_len = strlen(msg);
}

static void smtp_submission_through_send_once(void **state)
{
    (void)state;
    struct smtp m;
    smtp_start(&m);
    struct sb_send_req req;
    smtp_req(&req, m.port, "<anna@example.net>");
    long status;
    char *answer, err[256] = "";
    size_t len;
    assert_int_equal(sb_send_once(&req, &status, &answer, &len, err, sizeof err), SB_OK);
    free(answer);
    sb_send_req_free(&req);
    smtp_stop(&m);
    assert_int_equal(status, 250);
    assert_non_null(strstr(m.envelope, "MAIL FROM:<shop@example.com>"));
    assert_non_null(strstr(m.envelope, "RCPT TO:<anna@example.net>"));
    assert_non_null(strstr(m.data, "Subject: Re: kitchen\r\n"));
    /* curl dot-stuffs the body (RFC 5321 4.5.2) */
    assert_non_null(strstr(m.data, "\r\n..a line starting with a dot\r\n"));

    /* A refused recipient comes back with the reply code, so an adapter
     * can tell a permanent 5xx from a temporary 4xx. */
    smtp_start(&m);
    smtp_req(&req, m.port, "<nobody@example.net>");
    err[0] = '\0';
    assert_int_equal(sb_send_once(&req, &status, &answer, &len, err, sizeof err), SB_OK);
    free(answer);
    sb_send_req_free(&req);
    smtp_stop(&m);
    assert_int_equal(status, 550);
    assert_true(err[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_post_through_send_once),
        cmocka_unit_test(smtp_submission_through_send_once),
    };
    return cmocka_run_group_tests_name("send once", tests, NULL, NULL);
}
