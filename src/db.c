/* MariaDB connections, prepared statements and results (see db.h).
 *
 * Results are fetched with zero-length bindings first and then column by
 * column at their real length (mysql_stmt_fetch_column), so no column type or
 * maximum width needs to be known in advance and nothing is truncated. */
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"
#include "switchboard/log.h"

#include <ctype.h>
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statements per connection: modules prepare a few dozen named queries. */
#define STMT_CACHE_MAX 256

struct stmt_slot {
    const char *sql; /* the caller's pointer: the cache key */
    char *text;      /* a copy, to notice a reused buffer */
    MYSQL_STMT *stmt;
};

struct sb_db {
    struct sb_db_params params; /* private copy, so a reconnect needs nothing from the caller */
    int multi;
    MYSQL *conn;
    int in_tx;
    int tx_lost; /* the connection died inside a transaction: fail until rollback */
    size_t nstmts;
    struct stmt_slot stmts[STMT_CACHE_MAX];
};

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    size_t o = 0;
    /* Percent-decode: passwords in URLs may hold '@', ':' or '/'. */
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            d[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = '\0';
    return d;
}

void sb_db_params_free(struct sb_db_params *p)
{
    free(p->user);
    free(p->password);
    free(p->host);
    free(p->database);
    free(p->socket);
    memset(p, 0, sizeof *p);
}

int sb_db_params_parse(const char *url, struct sb_db_params *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!url || !*url)
        return sb_fail(
            err, errlen, SB_ERR_CONFIG,
            "no database configured: set SWITCHBOARD_DB=mariadb://user:pass@host:port/db");
    const char *s = url;
    if (!strncmp(s, "mariadb://", 10))
        s += 10;
    else if (!strncmp(s, "mysql://", 8))
        s += 8;
    else
        return sb_fail(err, errlen, SB_ERR_CONFIG, "database URL must start with mariadb://");

    const char *slash = strchr(s, '/');
    if (!slash)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "database URL has no /database part");
    const char *at = memchr(s, '@', (size_t)(slash - s));
    /* The last '@' before the path separates credentials from the host. */
    for (const char *q = s; q < slash; q++)
        if (*q == '@')
            at = q;
    const char *hoststart = s;
    int rc = SB_ERR_NOMEM;
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon) {
            p->user = dup_range(s, (size_t)(colon - s));
            p->password = dup_range(colon + 1, (size_t)(at - colon - 1));
            if (!p->password)
                goto fail;
        } else {
            p->user = dup_range(s, (size_t)(at - s));
        }
        if (!p->user)
            goto fail;
        hoststart = at + 1;
    }
    const char *hostend = slash;
    const char *colon = NULL;
    if (*hoststart == '[') { /* [::1]:3306 */
        const char *rb = memchr(hoststart, ']', (size_t)(slash - hoststart));
        if (!rb) {
            rc = sb_fail(err, errlen, SB_ERR_CONFIG, "database URL: unclosed '[' in host");
            goto fail;
        }
        p->host = dup_range(hoststart + 1, (size_t)(rb - hoststart - 1));
        colon = rb + 1 < slash && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(hoststart, ':', (size_t)(slash - hoststart));
        p->host = dup_range(hoststart, (size_t)((colon ? colon : hostend) - hoststart));
    }
    if (!p->host)
        goto fail;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hostend || port <= 0 || port > 65535) {
            rc = sb_fail(err, errlen, SB_ERR_CONFIG, "database URL: bad port");
            goto fail;
        }
        p->port = (unsigned)port;
    }
    const char *dbstart = slash + 1;
    const char *qmark = strchr(dbstart, '?');
    p->database = dup_range(dbstart, qmark ? (size_t)(qmark - dbstart) : strlen(dbstart));
    if (!p->database)
        goto fail;
    if (!*p->database) {
        rc = sb_fail(err, errlen, SB_ERR_CONFIG, "database URL has an empty database name");
        goto fail;
    }
    while (qmark && *qmark) {
        const char *kv = qmark + 1;
        const char *amp = strchr(kv, '&');
        size_t n = amp ? (size_t)(amp - kv) : strlen(kv);
        if (n > 7 && !strncmp(kv, "socket=", 7)) {
            free(p->socket);
            p->socket = dup_range(kv + 7, n - 7);
            if (!p->socket)
                goto fail;
        } else if (n > 0) {
            rc = sb_fail(err, errlen, SB_ERR_CONFIG, "database URL: unknown option '%.*s'", (int)n,
                         kv);
            goto fail;
        }
        qmark = amp;
    }
    if (!*p->host && !p->socket) {
        rc = sb_fail(err, errlen, SB_ERR_CONFIG, "database URL has no host");
        goto fail;
    }
    return SB_OK;
fail:
    if (rc == SB_ERR_NOMEM)
        sb_fail(err, errlen, rc, "out of memory");
    sb_db_params_free(p);
    return rc;
}

static int dup_field(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? SB_ERR_NOMEM : SB_OK;
}

static int copy_params(struct sb_db_params *dst, const struct sb_db_params *src)
{
    memset(dst, 0, sizeof *dst);
    dst->port = src->port;
    if (dup_field(&dst->user, src->user) || dup_field(&dst->password, src->password) ||
        dup_field(&dst->host, src->host) || dup_field(&dst->database, src->database) ||
        dup_field(&dst->socket, src->socket)) {
        sb_db_params_free(dst);
        return SB_ERR_NOMEM;
    }
    return SB_OK;
}

/* Errors that mean the connection, not the statement, failed. */
static int is_conn_error(unsigned e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED ||
           e == ER_SERVER_SHUTDOWN || e == CR_COMMANDS_OUT_OF_SYNC;
}

static int map_errno(unsigned e)
{
    if (is_conn_error(e))
        return SB_ERR_UNAVAILABLE;
    switch (e) {
    case ER_DUP_ENTRY:
    case ER_DUP_ENTRY_WITH_KEY_NAME:
        return SB_ERR_EXISTS;
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
        return SB_ERR_RETRY;
    case ER_NO_REFERENCED_ROW_2:
    case ER_ROW_IS_REFERENCED_2:
    case ER_DATA_TOO_LONG:
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
    case WARN_DATA_TRUNCATED:
        return SB_ERR_INVALID;
    default:
        return SB_ERR_DB;
    }
}

static void drop_conn(struct sb_db *db)
{
    for (size_t i = 0; i < db->nstmts; i++) {
        mysql_stmt_close(db->stmts[i].stmt);
        free(db->stmts[i].text);
    }
    db->nstmts = 0;
    if (db->conn)
        mysql_close(db->conn);
    db->conn = NULL;
    if (db->in_tx)
        db->tx_lost = 1;
    db->in_tx = 0;
}

static int connect_now(struct sb_db *db, char *err, size_t errlen)
{
    MYSQL *m = mysql_init(NULL);
    if (!m)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "mysql_init failed");
    unsigned timeout = SB_DB_CONNECT_TIMEOUT;
    my_bool off = 0;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off); /* we reconnect, so statements are re-prepared */
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(m, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
    const struct sb_db_params *p = &db->params;
    const char *host = p->host && *p->host ? p->host : "localhost";
    if (!mysql_real_connect(m, host, p->user, p->password, p->database, p->port, p->socket,
                            db->multi ? CLIENT_MULTI_STATEMENTS : 0)) {
        unsigned e = mysql_errno(m);
        int rc = is_conn_error(e) || e == ER_ACCESS_DENIED_ERROR || e == ER_BAD_DB_ERROR ||
                         e == CR_UNKNOWN_HOST
                     ? SB_ERR_UNAVAILABLE
                     : SB_ERR_DB;
        sb_fail(err, errlen, rc, "cannot connect to MariaDB at %s: %s",
                p->socket ? p->socket : host, mysql_error(m));
        mysql_close(m);
        return rc;
    }
    db->conn = m;
    return SB_OK;
}

int sb_db_open(const struct sb_db_params *p, int multi, struct sb_db **db_r, char *err,
               size_t errlen)
{
    *db_r = NULL;
    struct sb_db *db = calloc(1, sizeof *db);
    if (!db || copy_params(&db->params, p) != SB_OK) {
        free(db);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    db->multi = multi;
    int rc = connect_now(db, err, errlen);
    /* A handle without a live connection is still useful: it reconnects on
     * next use, which is how workers ride out a database restart. */
    *db_r = db;
    return rc;
}

void sb_db_close(struct sb_db **dbp)
{
    struct sb_db *db = *dbp;
    if (!db)
        return;
    drop_conn(db);
    sb_db_params_free(&db->params);
    free(db);
    *dbp = NULL;
}

static int ensure_conn(struct sb_db *db, char *err, size_t errlen)
{
    /* Reconnecting here would run the rest of a transaction in autocommit
     * and report a commit that never happened. */
    if (db->tx_lost)
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE,
                       "database connection lost inside a transaction");
    if (db->conn)
        return SB_OK;
    return connect_now(db, err, errlen);
}

struct sb_db_val sb_db_text(const char *s)
{
    if (!s)
        return SB_NULL;
    return (struct sb_db_val){.type = SB_DB_TEXT, .p = s, .len = strlen(s)};
}

static int db_error(struct sb_db *db, unsigned e, const char *msg, char *err, size_t errlen)
{
    int rc = map_errno(e);
    sb_fail(err, errlen, rc, "database: %s", msg);
    if (is_conn_error(e))
        drop_conn(db);
    return rc;
}

/* Find or prepare `sql`. A dead connection found while preparing is reopened
 * once: nothing has run yet, so retrying cannot double a write. */
static int get_stmt(struct sb_db *db, const char *sql, MYSQL_STMT **stmt_r, char *err,
                    size_t errlen)
{
    if (db->tx_lost)
        return ensure_conn(db, err, errlen);
    for (size_t i = 0; i < db->nstmts; i++)
        if (db->stmts[i].sql == sql) {
            /* Named queries are constants, so the address identifies them.
             * The strcmp guards against a caller reusing a buffer for
             * another text: that would run the wrong statement. */
            if (strcmp(db->stmts[i].text, sql) == 0) {
                *stmt_r = db->stmts[i].stmt;
                return SB_OK;
            }
            mysql_stmt_close(db->stmts[i].stmt);
            free(db->stmts[i].text);
            db->stmts[i] = db->stmts[--db->nstmts];
            break;
        }
    for (int attempt = 0;; attempt++) {
        int rc = ensure_conn(db, err, errlen);
        if (rc != SB_OK)
            return rc;
        MYSQL_STMT *st = mysql_stmt_init(db->conn);
        if (!st)
            return sb_fail(err, errlen, SB_ERR_NOMEM, "mysql_stmt_init failed");
        if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
            unsigned e = mysql_stmt_errno(st);
            if (is_conn_error(e) && attempt == 0 && !db->in_tx) {
                mysql_stmt_close(st);
                drop_conn(db);
                continue;
            }
            char msg[512];
            snprintf(msg, sizeof msg, "%s", mysql_stmt_error(st));
            mysql_stmt_close(st);
            rc = db_error(db, e, msg, err, errlen);
            if (rc == SB_ERR_DB)
                sb_error("db", "prepare failed (a bug in a query?): %s", sql);
            return rc;
        }
        char *text = strdup(sql);
        if (db->nstmts == STMT_CACHE_MAX && text) {
            /* Full: the inbox builds one statement per combination of
             * filters (api_conversations.c), a few hundred in all, so
             * a long-lived connection can meet more than fit. Drop one
             * (the first slot; results are copied out, so nothing of
             * it is in use) rather than fail the request. */
            sb_warn("db", "statement cache full; dropping one");
            mysql_stmt_close(db->stmts[0].stmt);
            free(db->stmts[0].text);
            db->stmts[0] = db->stmts[--db->nstmts];
        }
        if (db->nstmts < STMT_CACHE_MAX && text) {
            db->stmts[db->nstmts].sql = sql;
            db->stmts[db->nstmts].text = text;
            db->stmts[db->nstmts].stmt = st;
            db->nstmts++;
        } else {
            sb_warn("db", "statement cache full; a query text is probably built at run time");
            free(text);
            mysql_stmt_close(st);
            return sb_fail(err, errlen, SB_ERR_INTERNAL, "statement cache full");
        }
        *stmt_r = st;
        return SB_OK;
    }
}

static int fetch_rows(MYSQL_STMT *st, struct sb_db_rows *r, char *err, size_t errlen)
{
    size_t ncols = mysql_stmt_field_count(st);
    r->ncols = ncols;
    if (mysql_stmt_store_result(st) != 0)
        return sb_fail(err, errlen, map_errno(mysql_stmt_errno(st)), "database: %s",
                       mysql_stmt_error(st));
    size_t nrows = (size_t)mysql_stmt_num_rows(st);
    MYSQL_BIND *b = calloc(ncols, sizeof *b);
    unsigned long *lens = calloc(ncols, sizeof *lens);
    my_bool *nulls = calloc(ncols, sizeof *nulls);
    r->cells = calloc(nrows * ncols + 1, sizeof *r->cells);
    r->lens = calloc(nrows * ncols + 1, sizeof *r->lens);
    int rc = SB_OK;
    if (!b || !lens || !nulls || !r->cells || !r->lens) {
        rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory reading a result");
        goto out;
    }
    for (size_t c = 0; c < ncols; c++) {
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].length = &lens[c];
        b[c].is_null = &nulls[c];
    }
    if (mysql_stmt_bind_result(st, b) != 0) {
        rc = sb_fail(err, errlen, SB_ERR_DB, "database: %s", mysql_stmt_error(st));
        goto out;
    }
    for (size_t row = 0; row < nrows; row++) {
        int f = mysql_stmt_fetch(st);
        if (f == MYSQL_NO_DATA)
            break;
        if (f == 1) {
            rc = sb_fail(err, errlen, map_errno(mysql_stmt_errno(st)), "database: %s",
                         mysql_stmt_error(st));
            goto out;
        }
        for (size_t c = 0; c < ncols; c++) {
            size_t idx = row * ncols + c;
            if (nulls[c])
                continue;
            char *cell = malloc(lens[c] + 1);
            if (!cell) {
                rc = sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory reading a result");
                goto out;
            }
            MYSQL_BIND one = {0};
            unsigned long got = 0;
            one.buffer_type = MYSQL_TYPE_STRING;
            one.buffer = cell;
            one.buffer_length = lens[c] + 1;
            one.length = &got;
            if (lens[c] > 0 && mysql_stmt_fetch_column(st, &one, (unsigned)c, 0) != 0) {
                free(cell);
                rc = sb_fail(err, errlen, SB_ERR_DB, "database: %s", mysql_stmt_error(st));
                goto out;
            }
            cell[lens[c]] = '\0';
            r->cells[idx] = cell;
            r->lens[idx] = lens[c];
        }
        r->nrows = row + 1;
    }
out:
    mysql_stmt_free_result(st);
    free(b);
    free(lens);
    free(nulls);
    return rc;
}

int sb_db_exec(struct sb_db *db, const char *sql, const struct sb_db_val *args, size_t nargs,
               struct sb_db_rows *rows_r, char *err, size_t errlen)
{
    if (rows_r)
        memset(rows_r, 0, sizeof *rows_r);
    MYSQL_STMT *st = NULL;
    int rc = get_stmt(db, sql, &st, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (mysql_stmt_param_count(st) != nargs) {
        sb_error("db", "query expects %lu parameters, got %zu: %s", mysql_stmt_param_count(st),
                 nargs, sql);
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "query parameter count mismatch");
    }
    /* Most statements bind a few values; a multi-row insert binds more. */
    MYSQL_BIND stack_pb[32], *pb = stack_pb;
    if (nargs > 32 && !(pb = calloc(nargs, sizeof *pb)))
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    if (pb == stack_pb)
        memset(stack_pb, 0, sizeof stack_pb);
    for (size_t i = 0; i < nargs; i++) {
        switch (args[i].type) {
        case SB_DB_NULL:
            pb[i].buffer_type = MYSQL_TYPE_NULL;
            break;
        case SB_DB_INT:
            pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
            pb[i].buffer = (void *)&args[i].i;
            break;
        case SB_DB_TEXT:
        case SB_DB_BLOB:
            pb[i].buffer_type = args[i].type == SB_DB_TEXT ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
            pb[i].buffer = (void *)args[i].p;
            pb[i].buffer_length = (unsigned long)args[i].len;
            break;
        }
    }
    int failed = (nargs && mysql_stmt_bind_param(st, pb) != 0) || mysql_stmt_execute(st) != 0;
    if (pb != stack_pb)
        free(pb);
    if (failed)
        return db_error(db, mysql_stmt_errno(st), mysql_stmt_error(st), err, errlen);
    if (mysql_stmt_field_count(st) > 0) {
        struct sb_db_rows tmp = {0};
        rc = fetch_rows(st, &tmp, err, errlen);
        if (rows_r && rc == SB_OK)
            *rows_r = tmp;
        else
            sb_db_rows_free(&tmp);
        return rc;
    }
    if (rows_r) {
        rows_r->affected = mysql_stmt_affected_rows(st);
        rows_r->insert_id = mysql_stmt_insert_id(st);
    }
    return SB_OK;
}

const char *sb_db_cell(const struct sb_db_rows *r, size_t row, size_t col)
{
    if (row >= r->nrows || col >= r->ncols)
        return NULL;
    return r->cells[row * r->ncols + col];
}

int64_t sb_db_cell_int(const struct sb_db_rows *r, size_t row, size_t col)
{
    const char *s = sb_db_cell(r, row, col);
    return s ? strtoll(s, NULL, 10) : 0;
}

void sb_db_rows_free(struct sb_db_rows *r)
{
    if (r->cells)
        for (size_t i = 0; i < r->nrows * r->ncols; i++)
            free(r->cells[i]);
    free(r->cells);
    free(r->lens);
    memset(r, 0, sizeof *r);
}

static int simple(struct sb_db *db, const char *sql, char *err, size_t errlen)
{
    int rc = ensure_conn(db, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (mysql_real_query(db->conn, sql, (unsigned long)strlen(sql)) != 0)
        return db_error(db, mysql_errno(db->conn), mysql_error(db->conn), err, errlen);
    return SB_OK;
}

int sb_db_exec_text(struct sb_db *db, const char *sql, char *err, size_t errlen)
{
    return simple(db, sql, err, errlen);
}

int sb_db_begin(struct sb_db *db, char *err, size_t errlen)
{
    db->tx_lost = 0; /* a new transaction starts clean */
    int rc = simple(db, "START TRANSACTION", err, errlen);
    if (rc == SB_OK)
        db->in_tx = 1;
    return rc;
}

int sb_db_commit(struct sb_db *db, char *err, size_t errlen)
{
    if (db->tx_lost) /* the server rolled it back when the connection died */
        return ensure_conn(db, err, errlen);
    if (!db->conn)
        return sb_fail(err, errlen, SB_ERR_UNAVAILABLE, "database connection lost");
    db->in_tx = 0;
    if (mysql_commit(db->conn) != 0) {
        unsigned e = mysql_errno(db->conn);
        int rc = db_error(db, e, mysql_error(db->conn), err, errlen);
        return is_conn_error(e) ? SB_ERR_UNKNOWN_COMMIT : rc;
    }
    return SB_OK;
}

void sb_db_rollback(struct sb_db *db)
{
    db->in_tx = 0;
    db->tx_lost = 0;
    if (db->conn && mysql_rollback(db->conn) != 0 && is_conn_error(mysql_errno(db->conn)))
        drop_conn(db);
}

int sb_db_ping(struct sb_db *db, char *err, size_t errlen)
{
    if (db->conn && mysql_ping(db->conn) == 0)
        return SB_OK;
    drop_conn(db);
    return connect_now(db, err, errlen);
}

int sb_db_script(struct sb_db *db, const char *sql, size_t len, char *err, size_t errlen)
{
    int rc = ensure_conn(db, err, errlen);
    if (rc != SB_OK)
        return rc;
    if (!db->multi)
        return sb_fail(err, errlen, SB_ERR_INTERNAL, "script on a single-statement connection");
    int status = mysql_real_query(db->conn, sql, (unsigned long)len);
    /* Walk every statement's result: MariaDB stops at the first failing one
     * and reports it from mysql_next_result(). */
    for (;;) {
        if (status != 0)
            return db_error(db, mysql_errno(db->conn), mysql_error(db->conn), err, errlen);
        MYSQL_RES *res = mysql_store_result(db->conn);
        if (res)
            mysql_free_result(res);
        status = mysql_next_result(db->conn);
        if (status == -1)
            return SB_OK;
        if (status > 0)
            status = 1;
    }
}
