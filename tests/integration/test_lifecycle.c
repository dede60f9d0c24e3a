/* The process around the server: migrations, first-admin bootstrap, an
 * orderly stop on SIGTERM, and riding out a database restart. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int setup(void **state)
{
    (void)state;
    th_db_setup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_db_teardown();
    return 0;
}

static void migrate_twice_changes_nothing(void **state)
{
    (void)state;
    char out[2048];
    const char *args[] = {"migrate", NULL};
    /* th_db_setup() migrated once already. */
    assert_int_equal(th_run(args, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "0 applied now"));
    assert_null(strstr(out, "applied 001"));
}

static void bootstrap_creates_one_admin_once(void **state)
{
    (void)state;
    char out[2048];
    const char *args[] = {"user", "bootstrap", "--email", "boss@example.com", NULL};
    assert_int_equal(th_run(args, NULL, out, sizeof out), 0);
    char *p = strstr(out, "password: ");
    assert_non_null(p);
    char password[64];
    assert_int_equal(sscanf(p + 10, "%63s", password), 1);
    assert_true(strlen(password) >= 16);

    assert_int_equal(th_run(args, NULL, out, sizeof out), 0);
    assert_null(strstr(out, "password"));

    /* The printed password works. */
    struct th_server s;
    th_server_start(&s, NULL);
    char cookie[512];
    th_login(&s, "boss@example.com", password, cookie, sizeof cookie);
    const char *h[] = {cookie, NULL};
    struct th_resp r;
    assert_int_equal(th_http(&s, "GET", "/api/v1/me", NULL, h, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"role\":\"admin\""));
    th_resp_free(&r);
    assert_int_equal(th_server_stop(&s), 0);
}

static void cli_errors_are_clear(void **state)
{
    (void)state;
    char out[2048];
    const char *bad_role[] = {"user", "add",    "--email", "a@example.com",    "--name",
                              "A",    "--role", "boss",    "--password-stdin", NULL};
    assert_int_equal(th_run(bad_role, "password-1\n", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown role"));
    const char *ok[] = {"user", "add",    "--email", "a@example.com",    "--name",
                        "A",    "--role", "agent",   "--password-stdin", NULL};
    assert_int_equal(th_run(ok, "short\n", out, sizeof out), 1);
    assert_non_null(strstr(out, "password must be"));
    assert_int_equal(th_run(ok, "long-enough-1\n", out, sizeof out), 0);
    assert_int_equal(th_run(ok, "long-enough-1\n", out, sizeof out), 1);
    assert_non_null(strstr(out, "already exists"));
    const char *typo[] = {"serve", "--lisen", "1.2.3.4:5", NULL};
    assert_int_equal(th_run(typo, NULL, out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown argument"));
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A request whose body is still arriving when SIGTERM comes is finished and
 * answered; new connections are refused meanwhile; the process exits 0. */
static void sigterm_finishes_in_flight_request(void **state)
{
    (void)state;
    struct th_server s;
    th_server_start(&s, NULL);
    int fd = connect_to(s.port);
    assert_true(fd >= 0);
    const char *body = "{\"email\":\"slow@example.com\",\"password\":\"slow-password\"}";
    size_t blen = strlen(body);
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      blen);
    assert_int_equal(write(fd, head, (size_t)hl), hl);
    assert_int_equal(write(fd, body, 10), 10);
    usleep(200 * 1000);

    assert_int_equal(kill(s.pid, SIGTERM), 0);
    usleep(500 * 1000);
    /* Still running, no longer accepting. */
    int status;
    assert_int_equal(waitpid(s.pid, &status, WNOHANG), 0);
    int fd2 = connect_to(s.port);
    assert_int_equal(fd2, -1);

    assert_int_equal(write(fd, body + 10, blen - 10), (ssize_t)(blen - 10));
    char resp[4096];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    resp[got] = '\0';
    close(fd);
    assert_true(strncmp(resp, "HTTP/1.1 401", 12) == 0);
    assert_non_null(strstr(resp, "wrong e-mail or password"));

    for (int i = 0; i < 200 && waitpid(s.pid, &status, WNOHANG) == 0; i++)
        usleep(50 * 1000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static long readyz(const struct th_server *s)
{
    struct th_resp r;
    long st = th_http(s, "GET", "/readyz", NULL, NULL, &r) == 0 ? r.status : -1;
    th_resp_free(&r);
    return st;
}

static int localdb(const char *verb)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s/scripts/localdb %s >/dev/null", th_root(), verb);
    return system(cmd);
}

/* /readyz follows the database: 503 while it is down, 200 once it is back,
 * with no restart of switchboard. Uses the private MariaDB, so it is
 * skipped when the suite runs against an external database. */
static void readyz_follows_the_database(void **state)
{
    (void)state;
    if (getenv("SB_EXTERNAL_DB")) {
        skip();
    }
    struct th_server s;
    th_server_start(&s, NULL);
    assert_int_equal(readyz(&s), 200);
    assert_int_equal(localdb("stop"), 0);
    long st = 0;
    for (int i = 0; i < 100 && (st = readyz(&s)) != 503; i++)
        usleep(100 * 1000);
    assert_int_equal(st, 503);
    /* The liveness probe does not care. */
    struct th_resp r;
    assert_int_equal(th_http(&s, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    /* A signed-in route says 503 too, not 401 or 500. */
    const char *h[] = {"Authorization: Bearer sbt_whatever", NULL};
    assert_int_equal(th_http(&s, "GET", "/api/v1/me", NULL, h, &r), 0);
    assert_int_equal(r.status, 503);
    th_resp_free(&r);

    assert_int_equal(localdb("start"), 0);
    for (int i = 0; i < 200 && (st = readyz(&s)) != 200; i++)
        usleep(100 * 1000);
    assert_int_equal(st, 200);
    assert_int_equal(th_server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrate_twice_changes_nothing),
        cmocka_unit_test(bootstrap_creates_one_admin_once),
        cmocka_unit_test(cli_errors_are_clear),
        cmocka_unit_test(sigterm_finishes_in_flight_request),
        cmocka_unit_test(readyz_follows_the_database),
    };
    return cmocka_run_group_tests_name("lifecycle", tests, setup, teardown);
}
