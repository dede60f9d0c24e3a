/* The `switchboard` command: parses global options and runs one subcommand.
 * Subcommands that touch the database open their own connection; only
 * `serve` starts threads. Every failure prints one line to stderr and exits
 * non-zero; nothing here prints secrets except where the user asked for one
 * (`token create`, the first admin's password). */
#include "switchboard/auth.h"
#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"
#include "switchboard/log.h"
#include "switchboard/migrate.h"
#include "switchboard/server.h"
#include "switchboard/users.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SB_VERSION
#define SB_VERSION "0.1.0-dev"
#endif

static const char usage_text[] =
    "usage: switchboard [--config FILE] [--log-level debug|info|warn|error]\n"
    "                   [--log-format text|json] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  serve [--listen ADDR:PORT]      run the HTTP/WebSocket server (default 127.0.0.1:8080)\n"
    "  migrate                          apply pending schema migrations\n"
    "  user add --email E --name N --role admin|agent|marketer --password-stdin\n"
    "  user bootstrap [--email E]       create the first admin when there is no user yet;\n"
    "                                   prints its e-mail and generated password once\n"
    "  user list                        list users as JSON\n"
    "  token create --user E [--name N] create an API token and print it\n"
    "  channel add KIND --name N [--set key=value ...]\n"
    "                                   add a channel; prints it as JSON\n"
    "  channel list | channel test ID   list channels; check a channel's credentials\n"
    "  identity normalize [--region RR] (--phone V | --email V | --kind K --value V)\n"
    "                                   print the normalised form ingest will store\n"
    "  import clients FILE [--channel ID] [--region RR] [--dry-run]\n"
    "                                   import clients from CSV or vCard; importing\n"
    "                                   again creates no duplicates\n"
    "  export DIR                       write clients, conversations and interactions\n"
    "                                   as JSON lines into a new or empty directory\n"
    "  version                          print the version\n"
    "\n"
    "configuration: switchboard.conf (INI) and SWITCHBOARD_* variables; the database is\n"
    "SWITCHBOARD_DB=mariadb://user:pass@host:port/db or mariadb://user@localhost/db?socket=PATH\n";

struct cli {
    struct sb_config cfg;
    int argc;
    char **argv;
};

static int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("switchboard: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Find "--name VALUE" among the subcommand's arguments. */
static const char *opt(struct cli *c, const char *name)
{
    for (int i = 0; i < c->argc - 1; i++)
        if (!strcmp(c->argv[i], name))
            return c->argv[i + 1];
    return NULL;
}

static int flag(struct cli *c, const char *name)
{
    for (int i = 0; i < c->argc; i++)
        if (!strcmp(c->argv[i], name))
            return 1;
    return 0;
}

/* Refuse options we do not know, so a typo is not silently ignored. */
static int check_opts(struct cli *c, const char *const *with_value, const char *const *flags)
{
    for (int i = 0; i < c->argc; i++) {
        int known = 0;
        for (const char *const *w = with_value; w && *w && !known; w++)
            if (!strcmp(c->argv[i], *w)) {
                if (i + 1 >= c->argc)
                    return die(2, "%s needs a value", *w);
                known = 1;
                i++;
            }
        for (const char *const *f = flags; f && *f && !known; f++)
            known = !strcmp(c->argv[i], *f);
        if (!known)
            return die(2, "unknown argument '%s' (see switchboard --help)", c->argv[i]);
    }
    return 0;
}

static int open_db(struct cli *c, struct sb_db **db)
{
    struct sb_db_params p;
    char err[512] = "";
    if (sb_db_params_parse(c->cfg.db_url, &p, err, sizeof err) != SB_OK)
        return die(1, "%s", err);
    int rc = sb_db_open(&p, 0, db, err, sizeof err);
    sb_db_params_free(&p);
    if (rc != SB_OK) {
        sb_db_close(db);
        return die(1, "%s", err);
    }
    return 0;
}

static void print_line(const char *line)
{
    printf("%s\n", line);
}

static int cmd_migrate(struct cli *c)
{
    if (check_opts(c, NULL, NULL))
        return 2;
    struct sb_db_params p;
    char err[512] = "";
    if (sb_db_params_parse(c->cfg.db_url, &p, err, sizeof err) != SB_OK)
        return die(1, "%s", err);
    struct sb_migrate_result res;
    int rc = sb_migrate(&p, c->cfg.schema_dir, print_line, &res, err, sizeof err);
    sb_db_params_free(&p);
    if (rc != SB_OK)
        return die(1, "migration failed: %s", err);
    printf("schema up to date (%d migration%s, %d applied now)\n", res.total,
           res.total == 1 ? "" : "s", res.applied);
    return 0;
}

static int cmd_serve(struct cli *c)
{
    static const char *const v[] = {"--listen", NULL};
    if (check_opts(c, v, NULL))
        return 2;
    const char *listen = opt(c, "--listen");
    char err[512] = "";
    if (listen && sb_config_set(&c->cfg, "server", "listen", listen, err, sizeof err) != SB_OK)
        return die(2, "%s", err);
    if (sb_server_run(&c->cfg, err, sizeof err) != SB_OK)
        return die(1, "%s", err);
    return 0;
}

/* One line from stdin, without its newline; the password never appears in
 * the process list or shell history. */
static int read_password(char *buf, size_t len)
{
    if (!fgets(buf, (int)len, stdin))
        return -1;
    size_t n = strlen(buf);
    if (n == len - 1 && buf[n - 1] != '\n')
        return -1; /* longer than we accept */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return 0;
}

static int cmd_user_add(struct cli *c)
{
    static const char *const v[] = {"--email", "--name", "--role", NULL};
    static const char *const f[] = {"--password-stdin", NULL};
    if (check_opts(c, v, f))
        return 2;
    const char *email = opt(c, "--email"), *name = opt(c, "--name"), *role_s = opt(c, "--role");
    if (!email || !name || !role_s || !flag(c, "--password-stdin"))
        return die(2, "usage: switchboard user add --email E --name N "
                      "--role admin|agent|marketer --password-stdin");
    enum sb_role role;
    if (sb_role_parse(role_s, &role) != SB_OK)
        return die(2, "unknown role '%s': use admin, agent or marketer", role_s);
    char password[SB_PASSWORD_MAX + 2];
    if (read_password(password, sizeof password) != 0)
        return die(2, "no password on standard input (one line, at most %d characters)",
                   SB_PASSWORD_MAX);
    struct sb_db *db;
    if (open_db(c, &db))
        return 1;
    char err[512] = "";
    int64_t id;
    int rc = sb_user_create(db, email, name, role, password, &id, err, sizeof err);
    sodium_memzero(password, sizeof password);
    if (rc == SB_OK)
        sb_audit(db, 0, "user.create", "user", id, "cli");
    sb_db_close(&db);
    if (rc != SB_OK)
        return die(1, "%s", err);
    char norm[256];
    sb_user_email_normalize(email, norm, sizeof norm, err, sizeof err);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "email", norm, "name", name,
                          "role", role_s);
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(o);
    return 0;
}

static int cmd_user_bootstrap(struct cli *c)
{
    static const char *const v[] = {"--email", NULL};
    if (check_opts(c, v, NULL))
        return 2;
    const char *email = opt(c, "--email");
    if (!email)
        email = "admin@localhost.localdomain";
    struct sb_db *db;
    if (open_db(c, &db))
        return 1;
    char err[512] = "";
    int64_t count;
    int rc = sb_user_count(db, &count, err, sizeof err);
    if (rc != SB_OK) {
        sb_db_close(&db);
        return die(1, "%s (has `switchboard migrate` run?)", err);
    }
    if (count > 0) {
        sb_db_close(&db);
        printf("users exist already; no admin created\n");
        return 0;
    }
    char password[32];
    sb_password_generate(password, sizeof password);
    int64_t id;
    rc = sb_user_create(db, email, "Administrator", SB_ROLE_ADMIN, password, &id, err, sizeof err);
    if (rc == SB_OK)
        sb_audit(db, 0, "user.create", "user", id, "bootstrap");
    sb_db_close(&db);
    if (rc != SB_OK)
        return die(1, "%s", err);
    printf("first admin created; this password is shown only once:\n"
           "  e-mail:   %s\n  password: %s\n",
           email, password);
    sodium_memzero(password, sizeof password);
    return 0;
}

static int cmd_user_list(struct cli *c)
{
    if (check_opts(c, NULL, NULL))
        return 2;
    struct sb_db *db;
    if (open_db(c, &db))
        return 1;
    json_t *users;
    char err[512] = "";
    int rc = sb_user_list(db, &users, err, sizeof err);
    sb_db_close(&db);
    if (rc != SB_OK)
        return die(1, "%s", err);
    char *s = json_dumps(users, JSON_INDENT(2));
    printf("%s\n", s ? s : "[]");
    free(s);
    json_decref(users);
    return 0;
}

static int cmd_token_create(struct cli *c)
{
    static const char *const v[] = {"--user", "--name", NULL};
    if (check_opts(c, v, NULL))
        return 2;
    const char *email = opt(c, "--user");
    if (!email)
        return die(2, "usage: switchboard token create --user E [--name N]");
    struct sb_db *db;
    if (open_db(c, &db))
        return 1;
    char token[SB_TOKEN_MAX];
    char err[512] = "";
    int rc = sb_api_token_create(db, email, opt(c, "--name"), token, sizeof token, err, sizeof err);
    sb_db_close(&db);
    if (rc != SB_OK)
        return die(1, "%s", err);
    printf("%s\n", token);
    sodium_memzero(token, sizeof token);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *log_level = NULL, *log_format = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("switchboard %s\n", SB_VERSION);
            return 0;
        } else if (i + 1 < argc && !strcmp(a, "--config")) {
            config_path = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--log-level")) {
            log_level = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--log-format")) {
            log_format = argv[++i];
        } else {
            fputs(usage_text, stderr);
            return die(2, "unknown option '%s'", a);
        }
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }

    struct cli c;
    char err[512] = "";
    if (sb_config_load(&c.cfg, config_path, err, sizeof err) != SB_OK) {
        sb_config_free(&c.cfg);
        return die(2, "%s", err);
    }
    enum sb_log_level lvl;
    enum sb_log_format fmt;
    if (sb_log_level_parse(log_level ? log_level : c.cfg.log_level, &lvl) != 0 ||
        sb_log_format_parse(log_format ? log_format : c.cfg.log_format, &fmt) != 0) {
        sb_config_free(&c.cfg);
        return die(2, "unknown log level or format (levels: debug info warn error; formats: "
                      "text json)");
    }
    sb_log_setup(lvl, fmt);
    if (sb_auth_init(err, sizeof err) != SB_OK) {
        sb_config_free(&c.cfg);
        return die(1, "%s", err);
    }

    const char *cmd = argv[i];
    const char *sub = i + 1 < argc ? argv[i + 1] : "";
    int rc;
    c.argc = argc - i - 1;
    c.argv = argv + i + 1;
    if (!strcmp(cmd, "serve")) {
        rc = cmd_serve(&c);
    } else if (!strcmp(cmd, "migrate")) {
        rc = cmd_migrate(&c);
    } else if (!strcmp(cmd, "channel")) {
        rc = sb_cli_channel(c.argc, c.argv, &c.cfg);
    } else if (!strcmp(cmd, "identity")) {
        rc = sb_cli_identity(c.argc, c.argv, c.cfg.default_region);
    } else if (!strcmp(cmd, "import")) {
        rc = sb_cli_import(c.argc, c.argv, c.cfg.db_url, c.cfg.default_region);
    } else if (!strcmp(cmd, "export")) {
        rc = sb_cli_export(c.argc, c.argv, c.cfg.db_url);
    } else if (!strcmp(cmd, "version")) {
        printf("switchboard %s\n", SB_VERSION);
        rc = 0;
    } else if (!strcmp(cmd, "user") || !strcmp(cmd, "token")) {
        c.argc--, c.argv++;
        if (!strcmp(cmd, "user") && !strcmp(sub, "add"))
            rc = cmd_user_add(&c);
        else if (!strcmp(cmd, "user") && !strcmp(sub, "bootstrap"))
            rc = cmd_user_bootstrap(&c);
        else if (!strcmp(cmd, "user") && !strcmp(sub, "list"))
            rc = cmd_user_list(&c);
        else if (!strcmp(cmd, "token") && !strcmp(sub, "create"))
            rc = cmd_token_create(&c);
        else
            rc = die(2, "unknown command '%s %s' (see switchboard --help)", cmd, sub);
    } else {
        rc = die(2, "unknown command '%s' (see switchboard --help)", cmd);
    }
    sb_config_free(&c.cfg);
    return rc;
}
