/* Integration test harness (see harness.h). */
#include "harness.h"
#include "switchboard/db.h"
#include "switchboard/err.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* after the four above, as cmocka wants */
#include <cmocka.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/stat.h>
#include <dirent.h>

static char db_url[1024];
static char base_url[1024];
static char db_name[128];
static int db_ready;

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

const char *th_root(void)
{
    const char *r = getenv("SB_ROOT");
    return r ? r : ".";
}

const char *th_bin(void)
{
    static char path[512];
    if (!path[0])
        snprintf(path, sizeof path, "%s/switchboard",
                 getenv("SB_BUILD") ? getenv("SB_BUILD") : "build");
    return path;
}

const char *th_db_url(void)
{
    return db_url;
}

struct sb_db *th_db_connect(void)
{
    struct sb_db_params p;
    char err[512] = "";
    if (sb_db_params_parse(db_url, &p, err, sizeof err) != SB_OK)
        fatal("%s", err);
    struct sb_db *d = NULL;
    int rc = sb_db_open(&p, 0, &d, err, sizeof err);
    sb_db_params_free(&p);
    if (rc != SB_OK)
        fatal("cannot connect to the scratch database: %s", err);
    return d;
}

static void admin_exec(const char *sql)
{
    struct sb_db_params p;
    char err[512] = "";
    if (sb_db_params_parse(base_url, &p, err, sizeof err) != SB_OK)
        fatal("%s", err);
    struct sb_db *db;
    int rc = sb_db_open(&p, 0, &db, err, sizeof err);
    if (rc == SB_OK)
        rc = sb_db_exec(db, sql, NULL, 0, NULL, err, sizeof err);
    sb_db_close(&db);
    sb_db_params_free(&p);
    if (rc != SB_OK)
        fatal("%s: %s", sql, err);
}

void th_db_setup(void)
{
    const char *env = getenv("SWITCHBOARD_DB");
    if (env && *env) {
        snprintf(base_url, sizeof base_url, "%s", env);
    } else {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "%s/scripts/localdb url", th_root());
        FILE *f = popen(cmd, "r");
        if (!f || !fgets(base_url, sizeof base_url, f))
            fatal("no SWITCHBOARD_DB and scripts/localdb url gave nothing (run scripts/localdb "
                  "start)");
        pclose(f);
        base_url[strcspn(base_url, "\r\n")] = '\0';
    }
    static int counter;
    snprintf(db_name, sizeof db_name, "switchboard_test_%d_%d", (int)getpid(), counter++);
    /* Swap the database name at the end of the URL for the scratch one. */
    char *slash = strrchr(base_url, '/');
    if (!slash)
        fatal("bad database URL");
    snprintf(db_url, sizeof db_url, "%.*s/%s", (int)(slash - base_url), base_url, db_name);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s CHARACTER SET utf8mb4", db_name);
    admin_exec(sql);
    db_ready = 1;
    setenv("SWITCHBOARD_DB", db_url, 1);
    char out[4096];
    const char *args[] = {"migrate", NULL};
    if (th_run(args, NULL, out, sizeof out) != 0)
        fatal("migrate failed: %s", out);
}

void th_db_teardown(void)
{
    if (!db_ready)
        return;
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db_name);
    admin_exec(sql);
    db_ready = 0;
}

int th_run(const char *const *args, const char *stdin_text, char *out, size_t outlen)
{
    int in[2], o[2];
    if (pipe(in) || pipe(o))
        fatal("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        fatal("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        dup2(o[1], 2);
        close(in[1]);
        close(o[0]);
        const char *argv[32] = {th_bin()};
        int n = 1;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(th_bin(), (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    if (stdin_text) {
        ssize_t w = write(in[1], stdin_text, strlen(stdin_text));
        (void)w;
    }
    close(in[1]);
    size_t len = 0;
    char sink[4096];
    for (;;) {
        char *dst = out && len + 1 < outlen ? out + len : sink;
        size_t room = out && len + 1 < outlen ? outlen - len - 1 : sizeof sink;
        ssize_t r = read(o[0], dst, room);
        if (r <= 0)
            break;
        if (dst != sink)
            len += (size_t)r;
    }
    if (out)
        out[len] = '\0';
    close(o[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        fatal("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

void th_server_start(struct th_server *s, const char *const *env)
{
    memset(s, 0, sizeof *s);
    s->port = free_port();
    snprintf(s->log_path, sizeof s->log_path, "%s/tests/logs/server-%d.log",
             getenv("SB_BUILD") ? getenv("SB_BUILD") : "build", s->port);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    s->pid = fork();
    if (s->pid < 0)
        fatal("fork: %s", strerror(errno));
    if (s->pid == 0) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        execl(th_bin(), th_bin(), "serve", "--listen", listen, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        struct th_resp r;
        if (th_http(s, "GET", "/healthz", NULL, NULL, &r) == 0 && r.status == 200) {
            th_resp_free(&r);
            return;
        }
        th_resp_free(&r);
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            fatal("server exited at start-up; see %s", s->log_path);
        usleep(50 * 1000);
    }
    fatal("server did not answer /healthz within 10 s; see %s", s->log_path);
}

int th_server_stop(struct th_server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 400; i++) { /* 20 s */
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(50 * 1000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return -1;
}

struct buf {
    char *p;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = size * n;
    char *np = realloc(b->p, b->len + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, data, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct th_resp *r = arg;
    size_t add = size * n, have = strlen(r->headers);
    if (have + add < sizeof r->headers) {
        memcpy(r->headers + have, data, add);
        r->headers[have + add] = '\0';
    }
    return add;
}

int th_http(const struct th_server *s, const char *method, const char *path, const char *body,
            const char *const *headers, struct th_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    struct buf b = {calloc(1, 1), 0};
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    r->body = b.p;
    return cc == CURLE_OK ? 0 : -1;
}

json_t *th_call(const struct th_server *s, const char *auth, const char *method, const char *path,
                const char *body, long want)
{
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    struct th_resp r;
    assert_int_equal(th_http(s, method, path, body, h, &r), 0);
    if (r.status != want)
        fprintf(stderr, "%s %s -> %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, want);
    json_t *o = r.body && *r.body ? json_loads(r.body, 0, NULL) : NULL;
    th_resp_free(&r);
    return o;
}

void th_resp_free(struct th_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int th_header(const struct th_resp *r, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        if (!strncasecmp(line, name, n) && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = eol ? (size_t)(eol - v) : strlen(v);
            if (len >= outlen)
                len = outlen - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 0;
        }
        line = eol ? eol + 2 : NULL;
    }
    return -1;
}

void th_user(const char *email, const char *role, const char *password)
{
    char out[1024], pw[300];
    snprintf(pw, sizeof pw, "%s\n", password);
    const char *args[] = {"user",   "add", "--email",          email, "--name", "Test User",
                          "--role", role,  "--password-stdin", NULL};
    if (th_run(args, pw, out, sizeof out) != 0)
        fatal("user add %s failed: %s", email, out);
}

void th_login(const struct th_server *s, const char *email, const char *password, char *cookie,
              size_t cookielen)
{
    char body[512];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    const char *h[] = {"Content-Type: application/json", NULL};
    struct th_resp r;
    char set[512];
    if (th_http(s, "POST", "/api/v1/session", body, h, &r) != 0 || r.status != 200 ||
        th_header(&r, "set-cookie", set, sizeof set) != 0)
        fatal("login as %s failed: %ld %s", email, r.status, r.body ? r.body : "");
    th_resp_free(&r);
    snprintf(cookie, cookielen, "Cookie: %.*s", (int)strcspn(set, ";"), set);
}

/* --- mock provider --------------------------------------------------------- */

static pthread_mutex_t mock_lock = PTHREAD_MUTEX_INITIALIZER;

void th_mock_respond(struct th_mock *m, int status, const char *json_body)
{
    pthread_mutex_lock(&mock_lock);
    snprintf(m->response, sizeof m->response,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             status, strlen(json_body), json_body);
    pthread_mutex_unlock(&mock_lock);
}

static void *mock_main(void *arg)
{
    struct th_mock *m = arg;
    for (;;) {
        int c = accept(m->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* closed by th_mock_stop */
        char req[16384];
        size_t got = 0;
        for (;;) { /* headers, then Content-Length bytes of body */
            ssize_t n = read(c, req + got, sizeof req - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            char *end = strstr(req, "\r\n\r\n");
            if (!end)
                continue;
            char *cl = strcasestr(req, "content-length:");
            size_t want = cl && cl < end ? (size_t)atol(cl + 15) : 0;
            if (got >= (size_t)(end + 4 - req) + want)
                break;
        }
        req[got] = '\0';
        pthread_mutex_lock(&mock_lock);
        char *eol = strstr(req, "\r\n"), *body = strstr(req, "\r\n\r\n");
        size_t used = strlen(m->seen);
        snprintf(m->seen + used, sizeof m->seen - used, "%.*s\n%s\n\n", eol ? (int)(eol - req) : 0,
                 req, body ? body + 4 : "");
        if (m->requests < (int)(sizeof m->heads / sizeof m->heads[0])) {
            m->heads[m->requests] = strndup(req, body ? (size_t)(body - req) + 2 : got);
            m->bodies[m->requests] = strdup(body ? body + 4 : "");
        }
        m->requests++;
        const char *answer = m->response;
        int delay = 0;
        if (m->queue_next < m->queued) {
            delay = m->queue_delay_ms[m->queue_next];
            answer = m->queue[m->queue_next++];
        }
        if (delay) { /* hang without holding the lock: tests read meanwhile */
            pthread_mutex_unlock(&mock_lock);
            usleep((useconds_t)delay * 1000);
            pthread_mutex_lock(&mock_lock);
        }
        /* send, not write: a client that hung up must not kill the test (SIGPIPE) */
        ssize_t w = send(c, answer, strlen(answer), MSG_NOSIGNAL);
        (void)w;
        pthread_mutex_unlock(&mock_lock);
        close(c);
    }
}

void th_mock_start(struct th_mock *m, int status, const char *json_body)
{
    memset(m, 0, sizeof *m);
    th_mock_respond(m, status, json_body);
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&a, sizeof a) || listen(m->fd, 16) ||
        getsockname(m->fd, (struct sockaddr *)&a, &len))
        fatal("mock provider: %s", strerror(errno));
    m->port = ntohs(a.sin_port);
    pthread_t t;
    if (pthread_create(&t, NULL, mock_main, m) != 0)
        fatal("mock provider thread");
    m->thread = (unsigned long)t;
}

void th_mock_stop(struct th_mock *m)
{
    shutdown(m->fd, SHUT_RDWR);
    close(m->fd);
    pthread_join((pthread_t)m->thread, NULL);
    for (size_t i = 0; i < sizeof m->heads / sizeof m->heads[0]; i++) {
        free(m->heads[i]);
        free(m->bodies[i]);
        m->heads[i] = m->bodies[i] = NULL;
    }
}

void th_mock_push(struct th_mock *m, int status, const char *extra_headers, const char *body)
{
    th_mock_push_delayed(m, 0, status, extra_headers, body);
}

void th_mock_push_delayed(struct th_mock *m, int delay_ms, int status, const char *extra_headers,
                          const char *body)
{
    pthread_mutex_lock(&mock_lock);
    if (m->queued < (int)(sizeof m->queue / sizeof m->queue[0])) {
        m->queue_delay_ms[m->queued] = delay_ms;
        snprintf(m->queue[m->queued++], sizeof m->queue[0],
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                 "%sConnection: close\r\n\r\n%s",
                 status, strlen(body), extra_headers ? extra_headers : "", body);
    }
    pthread_mutex_unlock(&mock_lock);
}

int th_mock_request(struct th_mock *m, int i, char *head, size_t headlen, char *body,
                    size_t bodylen)
{
    int rc = -1;
    pthread_mutex_lock(&mock_lock);
    if (i >= 0 && i < m->requests && i < (int)(sizeof m->heads / sizeof m->heads[0]) &&
        m->heads[i]) {
        if (head)
            snprintf(head, headlen, "%s", m->heads[i]);
        if (body)
            snprintf(body, bodylen, "%s", m->bodies[i]);
        rc = 0;
    }
    pthread_mutex_unlock(&mock_lock);
    return rc;
}

int th_mock_wait(struct th_mock *m, int n, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        pthread_mutex_lock(&mock_lock);
        int seen = m->requests;
        pthread_mutex_unlock(&mock_lock);
        if (seen >= n || waited >= timeout_ms)
            return seen;
        usleep(20 * 1000);
    }
}

/* ---- Dovecot ---- */

static void dovecot_ids(uid_t *uid, gid_t *gid)
{
    /* getpwnam() returns a static buffer: read it before the next call. */
    struct passwd *pw = getpwnam("dovecot");
    if (pw) {
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
    }
    if (!pw || !getpwnam("dovenull"))
        fatal("no dovecot/dovenull users: install dovecot-core and dovecot-imapd (scripts/deps)");
}

static void mkdir_owned(const char *path, uid_t uid, gid_t gid)
{
    if (mkdir(path, 0755) && errno != EEXIST)
        fatal("mkdir %s: %s", path, strerror(errno));
    if (chown(path, uid, gid))
        fatal("chown %s: %s", path, strerror(errno));
}

static void maildir_make(const char *path, uid_t uid, gid_t gid)
{
    char sub[512];
    mkdir_owned(path, uid, gid);
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s/%s", path, i == 0 ? "new" : i == 1 ? "cur" : "tmp");
        mkdir_owned(sub, uid, gid);
    }
}

/* Wait until something accepts on 127.0.0.1:port. 0 when it does, -1 when
 * `pid` exited first (its wait status in *status), 1 after timeout_ms. */
static int wait_listening(pid_t pid, int port, int timeout_ms, int *status)
{
    for (int waited = 0; waited < timeout_ms; waited += 25) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return 0;
        if (waitpid(pid, status, WNOHANG) == pid)
            return -1;
        usleep(25 * 1000);
    }
    return 1;
}

void th_dovecot_start(struct th_dovecot *d)
{
    memset(d, 0, sizeof *d);
    if (geteuid() != 0)
        fatal("the private Dovecot needs root (it switches to the dovecot and dovenull users)");
    uid_t uid;
    gid_t gid;
    dovecot_ids(&uid, &gid);
    snprintf(d->dir, sizeof d->dir, "/tmp/sb-dovecot-XXXXXX");
    if (!mkdtemp(d->dir))
        fatal("mkdtemp: %s", strerror(errno));
    chmod(d->dir, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/mail", d->dir);
    mkdir_owned(path, uid, gid);
    snprintf(d->maildir, sizeof d->maildir, "%s/mail/Maildir", d->dir);
    maildir_make(d->maildir, uid, gid);
    d->port = free_port();
    d->imaps_port = free_port();
    char cmd[1600];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost -keyout '%s/key.pem' -out '%s/cert.pem' "
             ">/dev/null 2>&1",
             d->dir, d->dir);
    if (system(cmd) != 0)
        fatal("openssl could not make a test certificate (install openssl)");
    snprintf(path, sizeof path, "%s/dovecot.conf", d->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        fatal("%s: %s", path, strerror(errno));
    fprintf(f,
            "protocols = imap\n"
            "listen = 127.0.0.1\n"
            "base_dir = %s/run\n"
            "state_dir = %s/state\n"
            "log_path = %s/dovecot.log\n"
            "ssl = yes\n"
            "ssl_cert = <%s/cert.pem\n"
            "ssl_key = <%s/key.pem\n"
            "disable_plaintext_auth = no\n"
            "auth_mechanisms = plain login\n"
            "default_login_user = dovenull\n"
            "default_internal_user = dovecot\n"
            "first_valid_uid = %u\n"
            "first_valid_gid = %u\n"
            "mail_location = maildir:%s\n"
            "passdb {\n  driver = static\n  args = password=" TH_DOVECOT_PASSWORD "\n}\n"
            "userdb {\n  driver = static\n  args = uid=dovecot gid=dovecot home=%s/mail\n}\n"
            "service imap-login {\n  chroot =\n"
            "  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n"
            "  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n  }\n}\n"
            "service anvil {\n  chroot =\n}\n"
            "service stats {\n  chroot =\n}\n",
            d->dir, d->dir, d->dir, d->dir, d->dir, (unsigned)uid, (unsigned)gid, d->maildir,
            d->dir, d->port, d->imaps_port);
    fclose(f);
    const char *bin = access("/usr/sbin/dovecot", X_OK) == 0 ? "/usr/sbin/dovecot" : "dovecot";
    d->pid = fork();
    if (d->pid < 0)
        fatal("fork: %s", strerror(errno));
    if (d->pid == 0) {
        /* stderr too goes to a file: a Dovecot outliving a crashed test must
         * not hold tests/run's output pipe open (it would wait forever). */
        int fd = open("/dev/null", O_RDWR);
        char errpath[600];
        snprintf(errpath, sizeof errpath, "%s/dovecot.stderr", d->dir);
        int efd = open(errpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
        }
        if (efd >= 0)
            dup2(efd, 2);
        execlp(bin, bin, "-F", "-c", path, (char *)NULL);
        _exit(127);
    }
    int status;
    int rc = wait_listening(d->pid, d->port, 10000, &status);
    if (rc < 0)
        fatal("dovecot exited at start-up; see %s/dovecot.log", d->dir);
    if (rc > 0)
        fatal("dovecot did not listen within 10 s; see %s/dovecot.log", d->dir);
}

void th_dovecot_stop(struct th_dovecot *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int status;
        waitpid(d->pid, &status, 0);
        d->pid = 0;
    }
    if (d->dir[0] && !getenv("TH_KEEP_DOVECOT")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", d->dir);
    }
    d->dir[0] = '\0';
}

void th_maildir_deliver(const struct th_dovecot *d, const char *folder, const char *raw, size_t len)
{
    static unsigned long counter;
    uid_t uid;
    gid_t gid;
    dovecot_ids(&uid, &gid);
    char dir[512], tmp[700], dst[700];
    if (!folder || !strcmp(folder, "INBOX")) {
        snprintf(dir, sizeof dir, "%s", d->maildir);
    } else {
        snprintf(dir, sizeof dir, "%s/.%s", d->maildir, folder);
        maildir_make(dir, uid, gid);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char name[128];
    snprintf(name, sizeof name, "%lld.M%ldP%dQ%lu.switchboard-test", (long long)ts.tv_sec,
             ts.tv_nsec / 1000, (int)getpid(), ++counter);
    snprintf(tmp, sizeof tmp, "%s/tmp/%s", dir, name);
    snprintf(dst, sizeof dst, "%s/new/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        fatal("%s: %s", tmp, strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, raw + off, len - off);
        if (w <= 0)
            fatal("write %s: %s", tmp, strerror(errno));
        off += (size_t)w;
    }
    if (fchown(fd, uid, gid))
        fatal("chown %s: %s", tmp, strerror(errno));
    close(fd);
    if (rename(tmp, dst))
        fatal("rename %s: %s", dst, strerror(errno));
}

/* --- SMTP sink -------------------------------------------------------------- */

static void sink_tool(char *path, size_t n)
{
    const char *var = getenv("SWITCHBOARD_VAR");
    char dir[512];
    if (var)
        snprintf(dir, sizeof dir, "%s/tools", var);
    else
        snprintf(dir, sizeof dir, "%s/var/tools", th_root());
    snprintf(path, n, "%s/smtp-sink", dir);
    if (access(path, X_OK) == 0)
        return;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "'%s/scripts/smtp-tools' >/dev/null", th_root());
    if (system(cmd) != 0 || access(path, X_OK) != 0)
        fatal("no smtp-sink: scripts/smtp-tools could not unpack Postfix's (see its message)");
}

void th_smtp_sink_start(struct th_smtp_sink *s, const char *const *args)
{
    th_smtp_sink_start_on(s, 0, args);
}

void th_smtp_sink_start_on(struct th_smtp_sink *s, int port, const char *const *args)
{
    memset(s, 0, sizeof *s);
    char bin[600];
    sink_tool(bin, sizeof bin);
    snprintf(s->dir, sizeof s->dir, "/tmp/sb-smtp-sink-XXXXXX");
    if (!mkdtemp(s->dir))
        fatal("mkdtemp: %s", strerror(errno));
    /* smtp-sink run as root drops to -u nobody, which must write the dumps. */
    chmod(s->dir, 0777);
    s->port = port > 0 ? port : free_port();
    char tmpl[400], listen[64];
    /* One file per transaction; smtp-sink appends a random suffix. */
    snprintf(tmpl, sizeof tmpl, "%s/%%Y%%m%%d%%H%%M%%S.", s->dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    const char *argv[32];
    size_t k = 0;
    argv[k++] = bin;
    if (geteuid() == 0) {
        argv[k++] = "-u";
        argv[k++] = "nobody";
    }
    argv[k++] = "-d";
    argv[k++] = tmpl;
    for (size_t i = 0; args && args[i] && k < 28; i++)
        argv[k++] = args[i];
    argv[k++] = listen;
    argv[k++] = "64"; /* listen backlog */
    argv[k] = NULL;
    s->pid = fork();
    if (s->pid < 0)
        fatal("fork: %s", strerror(errno));
    if (s->pid == 0) {
        /* Not the test's stdout/stderr: a sink left behind by a crashed
         * test must not hold tests/run's pipe open. Its words go to a log
         * beside the dumps' directory. */
        char logp[300];
        snprintf(logp, sizeof logp, "%s.log", s->dir);
        int fd = open("/dev/null", O_RDWR);
        int lf = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
        }
        if (lf >= 0)
            dup2(lf, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status;
    int rc = wait_listening(s->pid, s->port, 5000, &status);
    if (rc < 0)
        fatal("smtp-sink exited at start-up (status %d)", status);
    if (rc > 0)
        fatal("smtp-sink did not listen within 5 s");
}

void th_smtp_sink_stop(struct th_smtp_sink *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int status;
        waitpid(s->pid, &status, 0);
        s->pid = 0;
    }
    if (s->dir[0] && !getenv("TH_KEEP_SMTP_SINK")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.log'", s->dir, s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", s->dir);
    }
    s->dir[0] = '\0';
}

struct sink_file {
    char name[256];
    struct timespec mtime;
};

static int sink_file_cmp(const void *a, const void *b)
{
    const struct sink_file *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The dumps in order of arrival (last write); *n_r of them, malloc'd. */
static struct sink_file *sink_files(const struct th_smtp_sink *s, size_t *n_r)
{
    *n_r = 0;
    DIR *d = opendir(s->dir);
    if (!d)
        return NULL;
    struct sink_file *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct sink_file *nv = realloc(v, cap * sizeof *v);
            if (!nv)
                fatal("out of memory");
            v = nv;
        }
        char path[600];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
        if (stat(path, &st))
            continue;
        snprintf(v[n].name, sizeof v[n].name, "%s", e->d_name);
        v[n].mtime = st.st_mtim;
        n++;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, sink_file_cmp);
    *n_r = n;
    return v;
}

int th_smtp_sink_wait(const struct th_smtp_sink *s, int n, int timeout_ms)
{
    size_t have = 0;
    for (int waited = 0;; waited += 20) {
        free(sink_files(s, &have));
        if ((int)have >= n || waited >= timeout_ms)
            break;
        usleep(20 * 1000);
    }
    /* A dump is written while DATA arrives; give the last one a moment to
     * be complete before it is read. */
    usleep(50 * 1000);
    return (int)have;
}

char *th_smtp_sink_message(const struct th_smtp_sink *s, int i, size_t *len_r)
{
    size_t n;
    struct sink_file *v = sink_files(s, &n);
    char *out = NULL;
    if (i >= 0 && (size_t)i < n) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", s->dir, v[i].name);
        FILE *f = fopen(path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            out = malloc((size_t)sz + 1);
            if (!out || fread(out, 1, (size_t)sz, f) != (size_t)sz)
                fatal("read %s", path);
            out[sz] = '\0';
            if (len_r)
                *len_r = (size_t)sz;
            fclose(f);
        }
    }
    free(v);
    return out;
}
