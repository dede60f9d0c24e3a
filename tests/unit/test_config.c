/* config.h: defaults, the INI file, the environment and their order.
 *
 * The group setup saves and unsets every SWITCHBOARD_* variable of the
 * caller (tests/run exports some) and moves into an empty temporary
 * directory, so "./switchboard.conf" is under the test's control; the group
 * teardown restores both. Each test's teardown unsets what the test set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "switchboard/config.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static char saved_cwd[PATH_MAX];
static char tmpdir[] = "/tmp/sb-config-XXXXXX";
static char **saved_env; /* "NAME=value" copies */
/* The configuration under test; the teardown frees it, so a failed
 * assertion does not leak (sb_config_free is idempotent). */
static struct sb_config cfg;
static char temps[32][64]; /* files made by write_temp() */
static size_t ntemps;
static size_t nsaved_env;

/* Unset every SWITCHBOARD_* variable; with `save`, keep copies first. */
static void clear_env(int save)
{
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "SWITCHBOARD_", 12) != 0)
            e++;
        if (!*e)
            break;
        const char *eq = strchr(*e, '=');
        size_t nlen = eq ? (size_t)(eq - *e) : strlen(*e);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)nlen, *e);
        if (save) {
            saved_env = realloc(saved_env, (nsaved_env + 1) * sizeof *saved_env);
            assert_non_null(saved_env);
            saved_env[nsaved_env] = strdup(*e);
            assert_non_null(saved_env[nsaved_env]);
            nsaved_env++;
        }
        unsetenv(name);
    }
}

static int group_setup(void **state)
{
    (void)state;
    clear_env(1);
    if (!getcwd(saved_cwd, sizeof saved_cwd) || !mkdtemp(tmpdir) || chdir(tmpdir) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    clear_env(0);
    for (size_t i = 0; i < nsaved_env; i++) {
        char *eq = strchr(saved_env[i], '=');
        *eq = '\0';
        setenv(saved_env[i], eq + 1, 1);
        free(saved_env[i]);
    }
    free(saved_env);
    saved_env = NULL;
    nsaved_env = 0;
    unlink("switchboard.conf");
    int rc = chdir(saved_cwd);
    rmdir(tmpdir);
    return rc;
}

static int test_teardown(void **state)
{
    (void)state;
    sb_config_free(&cfg);
    clear_env(0);
    unlink("switchboard.conf");
    for (size_t i = 0; i < ntemps; i++)
        unlink(temps[i]);
    ntemps = 0;
    return 0;
}

/* Write `text` to a new file under /tmp; the test's teardown removes it. */
static void write_temp(char path[64], const char *text)
{
    assert_true(ntemps < sizeof temps / sizeof temps[0]);
    snprintf(path, 64, "/tmp/sb-config-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    memcpy(temps[ntemps++], path, 64);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void assert_defaults(const struct sb_config *c)
{
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_string_equal(c->web_root, "web");
    assert_string_equal(c->public_url, "http://localhost:8080");
    assert_int_equal(c->body_limit, 1024 * 1024);
    assert_int_equal(c->body_limit, SB_BODY_LIMIT_DEFAULT);
    assert_int_equal(c->drain_timeout, SB_DRAIN_TIMEOUT);
    assert_null(c->db_url);
    /* one per core, at least SB_DB_WORKERS_MIN */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cores < SB_DB_WORKERS_MIN   ? SB_DB_WORKERS_MIN
               : cores > SB_DB_WORKERS_MAX ? SB_DB_WORKERS_MAX
                                           : (int)cores;
    assert_int_equal(c->db_workers, want);
    assert_string_equal(c->schema_dir, "schema");
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->log_format, "text");
    assert_int_equal(c->session_ttl, SB_SESSION_TTL_DEFAULT);
    assert_int_equal(c->login_ip_limit, SB_LOGIN_IP_LIMIT_DEFAULT);
    assert_int_equal(c->login_account_limit, SB_LOGIN_ACCOUNT_LIMIT_DEFAULT);
    assert_int_equal(c->login_window, SB_LOGIN_WINDOW_DEFAULT);
    assert_int_equal(c->cookie_secure, -1);
    assert_string_equal(c->default_region, "RU");
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256] = "";
    /* No path, no $SWITCHBOARD_CONFIG, no ./switchboard.conf: defaults only. */
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(err, "");
    assert_defaults(&cfg);
    sb_config_free(&cfg);
    assert_null(cfg.listen);
    assert_null(cfg.web_root);
    sb_config_free(&cfg); /* twice is harmless */
}

static void test_empty_file_keeps_defaults(void **state)
{
    (void)state;
    char path[64];
    write_temp(path, "; nothing but a comment\n\n# and another\n");
    char err[256] = "";
    assert_int_equal(sb_config_load(&cfg, path, err, sizeof err), SB_OK);
    assert_defaults(&cfg);
    sb_config_free(&cfg);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[64];
    write_temp(path, "; Switchboard test configuration\n"
                     "[server]\n"
                     "listen = 0.0.0.0:9000\n"
                     "web_root = /srv/web\n"
                     "public_url = https://sb.example.com\n"
                     "body_limit = 2M\n"
                     "drain_timeout = 5\n"
                     "\n"
                     "[database]\n"
                     "url = mariadb://u:p@db:3306/sb\n"
                     "workers = 8\n"
                     "schema_dir = /usr/share/switchboard/schema\n"
                     "[log]\n"
                     "level = debug\n"
                     "format = json\n"
                     "[auth]\n"
                     "session_ttl = 3600\n"
                     "login_ip_limit = 50\n"
                     "login_account_limit = 3\n"
                     "login_window = 60\n"
                     "cookie_secure = yes\n"
                     "[identity]\n"
                     "default_region = DE\n");
    char err[256] = "";
    int rc = sb_config_load(&cfg, path, err, sizeof err);
    if (rc != SB_OK)
        fail_msg("load: %s", err);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_string_equal(cfg.web_root, "/srv/web");
    assert_string_equal(cfg.public_url, "https://sb.example.com");
    assert_int_equal(cfg.body_limit, 2 * 1024 * 1024);
    assert_int_equal(cfg.drain_timeout, 5);
    assert_string_equal(cfg.db_url, "mariadb://u:p@db:3306/sb");
    assert_int_equal(cfg.db_workers, 8);
    assert_string_equal(cfg.schema_dir, "/usr/share/switchboard/schema");
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.log_format, "json");
    assert_int_equal(cfg.session_ttl, 3600);
    assert_int_equal(cfg.login_ip_limit, 50);
    assert_int_equal(cfg.login_account_limit, 3);
    assert_int_equal(cfg.login_window, 60);
    assert_int_equal(cfg.cookie_secure, 1);
    assert_string_equal(cfg.default_region, "DE");
    sb_config_free(&cfg);
}

static void test_implicit_and_env_path(void **state)
{
    (void)state;
    char err[256] = "";
    /* ./switchboard.conf is read when no path is given. */
    write_file("switchboard.conf", "[server]\nlisten = 127.0.0.1:1111\n");
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:1111");
    sb_config_free(&cfg);
    /* $SWITCHBOARD_CONFIG beats ./switchboard.conf. */
    char path[64];
    write_temp(path, "[server]\nlisten = 127.0.0.1:2222\n");
    setenv("SWITCHBOARD_CONFIG", path, 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:2222");
    sb_config_free(&cfg);
    /* An explicit path beats both. */
    char path2[64];
    write_temp(path2, "[server]\nlisten = 127.0.0.1:3333\n");
    assert_int_equal(sb_config_load(&cfg, path2, err, sizeof err), SB_OK);
    assert_string_equal(cfg.listen, "127.0.0.1:3333");
    sb_config_free(&cfg);
}

/* Sizes through sb_config_set: suffixes and bounds (1 KiB .. 1 GiB). */
static const struct {
    const char *value;
    int rc;
    size_t expect;
} size_cases[] = {
    {"2M", SB_OK, 2u * 1024 * 1024},
    {"2m", SB_OK, 2u * 1024 * 1024},
    {"64k", SB_OK, 64u * 1024},
    {"64K", SB_OK, 64u * 1024},
    {"1G", SB_OK, 1024u * 1024 * 1024}, /* the maximum, exactly */
    {"1024", SB_OK, 1024},              /* the minimum, exactly */
    {"1K", SB_OK, 1024},
    {"1048576", SB_OK, 1048576},
    {"1023", SB_ERR_CONFIG, 0},       /* one under the minimum */
    {"1073741825", SB_ERR_CONFIG, 0}, /* one over the maximum */
    {"2G", SB_ERR_CONFIG, 0},
    {"0", SB_ERR_CONFIG, 0},
    {"-1K", SB_ERR_CONFIG, 0},
    {"-2M", SB_ERR_CONFIG, 0},
    {"2T", SB_ERR_CONFIG, 0},
    {"2MB", SB_ERR_CONFIG, 0},
    {"1.5M", SB_ERR_CONFIG, 0},
    {"M", SB_ERR_CONFIG, 0},
    {"", SB_ERR_CONFIG, 0},
    {"abc", SB_ERR_CONFIG, 0},
    {"12abc", SB_ERR_CONFIG, 0},
    {"99999999999999999999", SB_ERR_CONFIG, 0}, /* overflows long */
    {"9999999999999999G", SB_ERR_CONFIG, 0},    /* overflows after the multiplier */
};

static void test_size_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof size_cases / sizeof size_cases[0]; i++) {
        char err[256] = "";
        assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
        size_t n = strlen(size_cases[i].value);
        char *v = malloc(n + 1);
        assert_non_null(v);
        memcpy(v, size_cases[i].value, n + 1);
        int rc = sb_config_set(&cfg, "server", "body_limit", v, err, sizeof err);
        if (rc != size_cases[i].rc)
            fail_msg("'%s': rc %d, expected %d (%s)", v, rc, size_cases[i].rc, err);
        if (rc == SB_OK) {
            assert_int_equal(cfg.body_limit, size_cases[i].expect);
        } else {
            /* The old value stays; the message names the key and value. */
            assert_int_equal(cfg.body_limit, SB_BODY_LIMIT_DEFAULT);
            assert_non_null(strstr(err, "server.body_limit"));
            assert_non_null(strstr(err, "is not a number"));
        }
        free(v);
        sb_config_free(&cfg);
    }
}

/* Integers: no size suffixes, bounds inclusive. */
static const struct {
    const char *section, *key, *value;
    int rc;
    int expect;
} int_cases[] = {
    {"database", "workers", "1", SB_OK, 1},
    {"database", "workers", "64", SB_OK, 64},
    {"database", "workers", "0", SB_ERR_CONFIG, 0},
    {"database", "workers", "65", SB_ERR_CONFIG, 0},
    {"database", "workers", "1k", SB_ERR_CONFIG, 0},
    {"database", "workers", "4x", SB_ERR_CONFIG, 0},
    {"database", "workers", "lots", SB_ERR_CONFIG, 0},
    {"database", "workers", "", SB_ERR_CONFIG, 0},
    {"server", "drain_timeout", "0", SB_OK, 0},
    {"server", "drain_timeout", "3600", SB_OK, 3600},
    {"server", "drain_timeout", "3601", SB_ERR_CONFIG, 0},
    {"server", "drain_timeout", "-1", SB_ERR_CONFIG, 0},
    {"auth", "session_ttl", "60", SB_OK, 60},
    {"auth", "session_ttl", "59", SB_ERR_CONFIG, 0},
    {"auth", "session_ttl", "1M", SB_ERR_CONFIG, 0},
    {"auth", "login_window", "86400", SB_OK, 86400},
    {"auth", "login_window", "86401", SB_ERR_CONFIG, 0},
    {"auth", "login_ip_limit", "1000000", SB_OK, 1000000},
    {"auth", "login_account_limit", "0", SB_ERR_CONFIG, 0},
};

static int int_field(const struct sb_config *c, const char *key)
{
    if (!strcmp(key, "workers"))
        return c->db_workers;
    if (!strcmp(key, "drain_timeout"))
        return c->drain_timeout;
    if (!strcmp(key, "session_ttl"))
        return c->session_ttl;
    if (!strcmp(key, "login_window"))
        return c->login_window;
    if (!strcmp(key, "login_ip_limit"))
        return c->login_ip_limit;
    if (!strcmp(key, "login_account_limit"))
        return c->login_account_limit;
    fail_msg("no field for %s", key);
    return 0;
}

static void test_int_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof int_cases / sizeof int_cases[0]; i++) {
        char err[256] = "";
        assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
        int before = int_field(&cfg, int_cases[i].key);
        int rc = sb_config_set(&cfg, int_cases[i].section, int_cases[i].key, int_cases[i].value,
                               err, sizeof err);
        if (rc != int_cases[i].rc)
            fail_msg("%s.%s = '%s': rc %d, expected %d (%s)", int_cases[i].section,
                     int_cases[i].key, int_cases[i].value, rc, int_cases[i].rc, err);
        if (rc == SB_OK) {
            assert_int_equal(int_field(&cfg, int_cases[i].key), int_cases[i].expect);
        } else {
            assert_int_equal(int_field(&cfg, int_cases[i].key), before);
            assert_non_null(strstr(err, int_cases[i].key));
        }
        sb_config_free(&cfg);
    }
}

static void test_cookie_secure(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int rc;
        int expect;
    } cases[] = {
        {"yes", SB_OK, 1},          {"true", SB_OK, 1},          {"1", SB_OK, 1},
        {"no", SB_OK, 0},           {"false", SB_OK, 0},         {"0", SB_OK, 0},
        {"auto", SB_OK, -1},        {"maybe", SB_ERR_CONFIG, 0}, {"", SB_ERR_CONFIG, 0},
        {"yess", SB_ERR_CONFIG, 0}, {"2", SB_ERR_CONFIG, 0},     {"ye", SB_ERR_CONFIG, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
        /* Start from the opposite of auto to see "auto" being applied. */
        cfg.cookie_secure = 7;
        size_t n = strlen(cases[i].value);
        char *v = malloc(n + 1);
        assert_non_null(v);
        memcpy(v, cases[i].value, n + 1);
        int rc = sb_config_set(&cfg, "auth", "cookie_secure", v, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, expected %d", v, rc, cases[i].rc);
        if (rc == SB_OK) {
            assert_int_equal(cfg.cookie_secure, cases[i].expect);
        } else {
            assert_int_equal(cfg.cookie_secure, 7);
            assert_non_null(strstr(err, "auth.cookie_secure"));
        }
        free(v);
        sb_config_free(&cfg);
    }
    /* And from a file. */
    char path[64];
    write_temp(path, "[auth]\ncookie_secure = no\n");
    char err[256] = "";
    assert_int_equal(sb_config_load(&cfg, path, err, sizeof err), SB_OK);
    assert_int_equal(cfg.cookie_secure, 0);
    sb_config_free(&cfg);
}

static void test_set_unknown(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_int_equal(sb_config_set(&cfg, "server", "listn", "x", err, sizeof err), SB_ERR_CONFIG);
    assert_non_null(strstr(err, "server.listn"));
    err[0] = '\0';
    /* A real key in the wrong section is unknown there. */
    assert_int_equal(sb_config_set(&cfg, "database", "listen", "x", err, sizeof err),
                     SB_ERR_CONFIG);
    assert_non_null(strstr(err, "database.listen"));
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    /* A string setting replaces the old one (ASan checks the old is freed). */
    assert_int_equal(sb_config_set(&cfg, "server", "listen", "[::1]:80", err, sizeof err), SB_OK);
    assert_int_equal(sb_config_set(&cfg, "server", "listen", "", err, sizeof err), SB_OK);
    assert_string_equal(cfg.listen, "");
    sb_config_free(&cfg);
}

/* Errors while loading a file: each names the file and what is wrong. */
static const struct {
    const char *text;
    const char *expect[3]; /* substrings of the message besides the path */
} file_error_cases[] = {
    {"[server]\nbody_limt = 5\n", {"unknown setting", "server.body_limt", NULL}},
    {"[sever]\nlisten = x\n", {"unknown setting", "sever.listen", NULL}},
    {"listen = x\n", {"unknown setting", ".listen", NULL}}, /* before any section */
    {"[database]\nworkers = lots\n", {"database.workers", "'lots'", NULL}},
    {"[server]\nbody_limit = 2T\n", {"server.body_limit", "'2T'", NULL}},
    {"[auth]\ncookie_secure = perhaps\n", {"auth.cookie_secure", "'perhaps'", NULL}},
    /* Syntax errors report the line. */
    {"[server]\nlisten = 127.0.0.1:1\nthis line is broken\n", {":3: syntax error", NULL}},
    {"[server\n; the section header above is not closed\n", {":1: syntax error", NULL}},
    {"\n\n\n\n[server]\nno equals sign here\n", {":6: syntax error", NULL}},
    /* The first failure is the one reported. */
    {"[server]\nworkers = 1\n[database]\nworkers = x\n", {"server.workers", NULL}},
};

static void test_file_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof file_error_cases / sizeof file_error_cases[0]; i++) {
        char path[64];
        write_temp(path, file_error_cases[i].text);
        char err[512] = "";
        int rc = sb_config_load(&cfg, path, err, sizeof err);
        if (rc != SB_ERR_CONFIG)
            fail_msg("case %zu: rc %d, expected SB_ERR_CONFIG", i, rc);
        if (!strstr(err, path))
            fail_msg("case %zu: '%s' does not name %s", i, err, path);
        for (int k = 0; k < 3 && file_error_cases[i].expect[k]; k++)
            if (!strstr(err, file_error_cases[i].expect[k]))
                fail_msg("case %zu: '%s' lacks '%s'", i, err, file_error_cases[i].expect[k]);
        sb_config_free(&cfg);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[256] = "";
    const char *path = "/tmp/sb-config-does-not-exist/switchboard.conf";
    assert_int_equal(sb_config_load(&cfg, path, err, sizeof err), SB_ERR_CONFIG);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "cannot read"));
    sb_config_free(&cfg);
    /* Named by $SWITCHBOARD_CONFIG it is explicit too. */
    setenv("SWITCHBOARD_CONFIG", path, 1);
    err[0] = '\0';
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_ERR_CONFIG);
    assert_non_null(strstr(err, path));
}

/* A small error buffer truncates the message, exactly at its size. */
static void test_error_buffer_small(void **state)
{
    (void)state;
    char path[64];
    write_temp(path, "[server]\nbody_limt = 5\n");
    char *err = calloc(1, 8);
    assert_non_null(err);
    assert_int_equal(sb_config_load(&cfg, path, err, 8), SB_ERR_CONFIG);
    assert_int_equal(strlen(err), 7);
    assert_memory_equal(err, path, 7);
    sb_config_free(&cfg);
    free(err);
    /* No buffer at all. */
    assert_int_equal(sb_config_load(&cfg, path, NULL, 0), SB_ERR_CONFIG);
    sb_config_free(&cfg);
}

/* A value longer than the INI reader's line buffer must never load cut
 * short: either it arrives whole or loading fails. */
static void test_long_value_not_truncated(void **state)
{
    (void)state;
    static const size_t lens[] = {150, 193, 194, 250, 1000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char url[1100];
        int n = snprintf(url, sizeof url, "mariadb://user:");
        memset(url + n, 'p', lens[i]);
        snprintf(url + (size_t)n + lens[i], sizeof url - (size_t)n - lens[i], "@host/db");
        char text[1200];
        snprintf(text, sizeof text, "[database]\nurl = %s\n[server]\nlisten = 1.2.3.4:5\n", url);
        char path[64];
        write_temp(path, text);
        char err[256] = "";
        int rc = sb_config_load(&cfg, path, err, sizeof err);
        if (rc == SB_OK) {
            assert_string_equal(cfg.db_url, url);
            assert_string_equal(cfg.listen, "1.2.3.4:5");
        } else {
            assert_non_null(strstr(err, path));
        }
        sb_config_free(&cfg);
    }
}

static void test_env_overrides(void **state)
{
    (void)state;
    char path[64];
    write_temp(path, "[server]\nlisten = 127.0.0.1:1000\nbody_limit = 2M\n"
                     "[database]\nurl = mariadb://file@h/db\nworkers = 2\n");
    setenv("SWITCHBOARD_SERVER_LISTEN", "0.0.0.0:9999", 1);
    setenv("SWITCHBOARD_SERVER_BODY_LIMIT", "64k", 1);
    setenv("SWITCHBOARD_AUTH_COOKIE_SECURE", "no", 1);
    setenv("SWITCHBOARD_LOG_LEVEL", "warn", 1);
    char err[256] = "";
    assert_int_equal(sb_config_load(&cfg, path, err, sizeof err), SB_OK);
    /* The environment wins over the file... */
    assert_string_equal(cfg.listen, "0.0.0.0:9999");
    assert_int_equal(cfg.body_limit, 64 * 1024);
    assert_int_equal(cfg.cookie_secure, 0);
    assert_string_equal(cfg.log_level, "warn");
    /* ...and the file over the defaults where the environment is silent. */
    assert_string_equal(cfg.db_url, "mariadb://file@h/db");
    assert_int_equal(cfg.db_workers, 2);
    sb_config_free(&cfg);
}

static void test_env_db_alias(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("SWITCHBOARD_DB", "mariadb://alias@h/db", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.db_url, "mariadb://alias@h/db");
    sb_config_free(&cfg);
    /* The long form wins over the alias. */
    setenv("SWITCHBOARD_DATABASE_URL", "mariadb://long@h/db", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.db_url, "mariadb://long@h/db");
    sb_config_free(&cfg);
    /* Also when the long form is set first (order of setenv is irrelevant). */
    unsetenv("SWITCHBOARD_DB");
    setenv("SWITCHBOARD_DB", "mariadb://alias2@h/db", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.db_url, "mariadb://long@h/db");
    sb_config_free(&cfg);
    /* The other aliases. */
    unsetenv("SWITCHBOARD_DATABASE_URL");
    unsetenv("SWITCHBOARD_DB");
    setenv("SWITCHBOARD_LISTEN", "10.0.0.1:80", 1);
    setenv("SWITCHBOARD_WEB_ROOT", "/var/www", 1);
    setenv("SWITCHBOARD_SCHEMA_DIR", "/opt/schema", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.listen, "10.0.0.1:80");
    assert_string_equal(cfg.web_root, "/var/www");
    assert_string_equal(cfg.schema_dir, "/opt/schema");
    sb_config_free(&cfg);
    setenv("SWITCHBOARD_SERVER_LISTEN", "10.0.0.2:80", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_OK);
    assert_string_equal(cfg.listen, "10.0.0.2:80");
    sb_config_free(&cfg);
}

static void test_env_bad_value(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("SWITCHBOARD_DATABASE_WORKERS", "many", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_ERR_CONFIG);
    assert_non_null(strstr(err, "environment"));
    assert_non_null(strstr(err, "database.workers"));
    assert_non_null(strstr(err, "'many'"));
    sb_config_free(&cfg);
    unsetenv("SWITCHBOARD_DATABASE_WORKERS");
    err[0] = '\0';
    setenv("SWITCHBOARD_AUTH_COOKIE_SECURE", "sometimes", 1);
    assert_int_equal(sb_config_load(&cfg, NULL, err, sizeof err), SB_ERR_CONFIG);
    assert_non_null(strstr(err, "auth.cookie_secure"));
    sb_config_free(&cfg);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),           T(test_empty_file_keeps_defaults),
        T(test_load_file),          T(test_implicit_and_env_path),
        T(test_size_values),        T(test_int_values),
        T(test_cookie_secure),      T(test_set_unknown),
        T(test_file_errors),        T(test_missing_file),
        T(test_error_buffer_small), T(test_long_value_not_truncated),
        T(test_env_overrides),      T(test_env_db_alias),
        T(test_env_bad_value),
    };
#undef T
    return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
