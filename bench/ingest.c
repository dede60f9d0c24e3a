/* bench/ingest.c — ingest() throughput against the private MariaDB.
 *
 * Builds its own data: a scratch database, N pre-existing clients (each with
 * a phone identity), then 100k synthetic inbound messages (70% from known
 * clients, 30% from new ones; phones in mixed national and international
 * formats), ingested by T threads in batches of B per transaction, like the
 * DB workers do. In the same run it measures the storage ceiling: bare
 * multi-row INSERTs (1,000 rows per statement) of interaction-shaped rows.
 * Prints a table and one JSON line per scenario.
 *
 * usage: ingest DB_URL PRE_CLIENTS [MESSAGES] [THREADS] [BATCH] */
#include "switchboard/db.h"
#include "switchboard/err.h"
#include "switchboard/inbound.h"
#include "switchboard/ingest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *url;
static int64_t channel_id;
static const struct sb_ingest_options opt = {"RU", 7 * 24 * 3600};

/* CPU seconds used so far by process `pid` (0: this process), from
 * /proc: the ingest phase's cost per message on each side of the socket. */
static double cpu_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, pid ? "/proc/%ld/stat" : "/proc/self/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sb_db *connect_or_die(void)
{
    struct sb_db_params p;
    char err[512] = "";
    struct sb_db *db = NULL;
    if (sb_db_params_parse(url, &p, err, sizeof err) != SB_OK ||
        sb_db_open(&p, 0, &db, err, sizeof err) != SB_OK) {
        fprintf(stderr, "bench/ingest: %s\n", err);
        exit(1);
    }
    sb_db_params_free(&p);
    return db;
}

static void exec_or_die(struct sb_db *db, const char *sql)
{
    char err[512] = "";
    if (sb_db_exec_text(db, sql, err, sizeof err) != SB_OK) {
        fprintf(stderr, "bench/ingest: %.120s...: %s\n", sql, err);
        exit(1);
    }
}

/* Phone number k of the synthetic population: +7 9xx in a fixed range. */
static void phone_of(long k, int style, char *out, size_t len)
{
    long n = 9000000000L + k; /* 10 national digits, mobile */
    long a = n / 10000000, b = n / 10000 % 1000, c = n / 100 % 100, d = n % 100;
    switch (style % 4) {
    case 0:
        snprintf(out, len, "+7 %03ld %03ld-%02ld-%02ld", a, b, c, d);
        break;
    case 1:
        snprintf(out, len, "8 (%03ld) %03ld-%02ld-%02ld", a, b, c, d);
        break;
    case 2:
        snprintf(out, len, "7%010ld", n);
        break;
    default:
        snprintf(out, len, "+7%010ld", n);
        break;
    }
}

/* Pre-existing clients, inserted in bulk (this is set-up, not measured). */
static void populate(struct sb_db *db, long count)
{
    static char sql[200000];
    for (long start = 0; start < count; start += 1000) {
        long end = start + 1000 < count ? start + 1000 : count;
        size_t o = (size_t)snprintf(sql, sizeof sql, "INSERT INTO clients (id, name) VALUES ");
        for (long k = start; k < end; k++)
            o += (size_t)snprintf(sql + o, sizeof sql - o, "%s(%ld,'Client %ld')",
                                  k > start ? "," : "", k + 1, k);
        exec_or_die(db, sql);
        o = (size_t)snprintf(
            sql, sizeof sql,
            "INSERT INTO client_identities (client_id, kind, value, raw, verified) "
            "VALUES ");
        for (long k = start; k < end; k++)
            o +=
                (size_t)snprintf(sql + o, sizeof sql - o, "%s(%ld,'phone','+7%010ld','+7%010ld',1)",
                                 k > start ? "," : "", k + 1, 9000000000L + k, 9000000000L + k);
        exec_or_die(db, sql);
    }
}

struct worker {
    long first, count, pre_clients;
    int batch, id;
    int rc;
    long new_clients;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct sb_db *db = connect_or_die();
    struct sb_inbound **ins = calloc((size_t)w->batch, sizeof *ins);
    struct sb_ingest_result *res = calloc((size_t)w->batch, sizeof *res);
    unsigned seed = (unsigned)(w->id * 7919 + 1);
    for (long done = 0; done < w->count && w->rc == SB_OK;) {
        int n = (int)(w->count - done < w->batch ? w->count - done : w->batch);
        for (int i = 0; i < n; i++) {
            long m = w->first + done + i;
            struct sb_inbound *in = sb_inbound_new();
            char ext[32], phone[32], text[96];
            snprintf(ext, sizeof ext, "bench:%ld", m);
            /* 70% a known client, 30% a new person (unique per message). */
            long who = (long)(rand_r(&seed) % 100) < 70 ? rand_r(&seed) % w->pre_clients
                                                        : w->pre_clients + 1000000 + m;
            phone_of(who, (int)(m % 4), phone, sizeof phone);
            snprintf(text, sizeof text, "Здравствуйте! Сообщение %ld о заказе мебели.", m);
            in->channel_id = channel_id;
            in->external_id = sb_inbound_strdup(in, ext);
            in->kind = SB_IK_MESSAGE;
            in->text = sb_inbound_strdup(in, text);
            in->display_name = "Bench Client";
            sb_inbound_add_identity(in, SB_ID_PHONE, phone);
            ins[i] = in;
        }
        char err[512] = "";
        w->rc = sb_ingest_batch(db, &opt, (const struct sb_inbound *const *)ins, (size_t)n, res,
                                err, sizeof err);
        if (w->rc != SB_OK)
            fprintf(stderr, "bench/ingest: worker %d: %s\n", w->id, err);
        for (int i = 0; i < n; i++) {
            w->new_clients += res[i].client_created;
            sb_inbound_free(&ins[i]);
        }
        done += n;
    }
    free(ins);
    free(res);
    sb_db_close(&db);
    return NULL;
}

/* The storage ceiling: the same number of interaction-shaped rows as
 * multi-row INSERTs, 1,000 per statement, one commit per statement. */
static double ceiling(struct sb_db *db, long rows)
{
    exec_or_die(db, "CREATE TABLE ceiling LIKE interactions");
    static char sql[400000];
    double t0 = now_s();
    for (long start = 0; start < rows; start += 1000) {
        long end = start + 1000 < rows ? start + 1000 : rows;
        size_t o = (size_t)snprintf(sql, sizeof sql,
                                    "INSERT INTO ceiling (conversation_id, client_id, channel_id, "
                                    "direction, kind, external_id, text, occurred_at) VALUES ");
        for (long k = start; k < end; k++)
            o += (size_t)snprintf(sql + o, sizeof sql - o,
                                  "%s(%ld,%ld,%lld,'in','message','ceil:%ld','Здравствуйте! "
                                  "Сообщение %ld о заказе мебели.',NOW(6))",
                                  k > start ? "," : "", k % 5000 + 1, k % 5000 + 1,
                                  (long long)channel_id, k, k);
        exec_or_die(db, sql);
    }
    double rate = (double)rows / (now_s() - t0);
    exec_or_die(db, "DROP TABLE ceiling");
    return rate;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ingest DB_URL PRE_CLIENTS [MESSAGES] [THREADS] [BATCH]\n");
        return 2;
    }
    url = argv[1];
    long pre = atol(argv[2]);
    long messages = argc > 3 ? atol(argv[3]) : 100000;
    int threads = argc > 4 ? atoi(argv[4]) : 4;
    int batch = argc > 5 ? atoi(argv[5]) : 50;
    if (pre < 1 || messages < 1 || threads < 1 || threads > 64 || batch < 1 || batch > 1000) {
        fprintf(stderr, "bench/ingest: bad arguments\n");
        return 2;
    }
    struct sb_db *db = connect_or_die();
    exec_or_die(db, "INSERT INTO channels (kind, name) VALUES ('telegram', 'bench')");
    struct sb_db_rows r;
    char err[256] = "";
    static const char q_channel[] = "SELECT MAX(id) FROM channels";
    sb_db_exec(db, q_channel, NULL, 0, &r, err, sizeof err);
    channel_id = sb_db_cell_int(&r, 0, 0);
    sb_db_rows_free(&r);

    double t0 = now_s();
    populate(db, pre);
    fprintf(stderr, "bench/ingest: %ld pre-existing clients in %.1f s\n", pre, now_s() - t0);

    pthread_t t[64];
    struct worker w[64];
    long per = messages / threads;
    /* BENCH_SERVER_PID: the MariaDB server's, for its CPU per message. */
    const char *spid = getenv("BENCH_SERVER_PID");
    long server_pid = spid ? atol(spid) : -1;
    double srv0 = server_pid > 0 ? cpu_s(server_pid) : -1, cli0 = cpu_s(0);
    t0 = now_s();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.first = i * per,
                               .count = i == threads - 1 ? messages - per * i : per,
                               .pre_clients = pre,
                               .batch = batch,
                               .id = i};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    long created = 0;
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        created += w[i].new_clients;
        failed |= w[i].rc != SB_OK;
    }
    double secs = now_s() - t0;
    double srv_us = srv0 >= 0 ? (cpu_s(server_pid) - srv0) * 1e6 / (double)messages : -1;
    double cli_us = (cpu_s(0) - cli0) * 1e6 / (double)messages;
    if (failed)
        return 1;
    double rate = (double)messages / secs;
    double srv1 = server_pid > 0 ? cpu_s(server_pid) : -1;
    double ceil_rate = ceiling(db, messages);
    double ceil_us = srv1 >= 0 ? (cpu_s(server_pid) - srv1) * 1e6 / (double)messages : -1;
    sb_db_close(&db);

    printf("%-44s %12s\n", "what", "rows/s");
    printf("%-44s %12.0f\n", "bare multi-row INSERT (storage ceiling)", ceil_rate);
    printf("ingest() %ld msgs, %d threads x batch %d, %ld clients %12.0f   (%.1f s, %ld new "
           "clients, ratio %.3f)\n",
           messages, threads, batch, pre, rate, secs, created, rate / ceil_rate);
    /* Noise-proof beside the rates: the machine's neighbours move rates
     * by up to 1.9x between runs, CPU time per row much less. */
    if (srv_us >= 0)
        printf("CPU per message: server %.0f us, this client (generating, normalising, "
               "building statements) %.0f us; the ceiling's server %.0f us a row\n",
               srv_us, cli_us, ceil_us);
    printf("{\"bench\":\"ingest\",\"value\":%.0f,\"unit\":\"interactions/s\",\"baseline\":%.0f,"
           "\"baseline_name\":\"bare multi-row INSERT of the same rows\",\"ratio\":%.3f,"
           "\"pre_clients\":%ld,\"messages\":%ld,\"threads\":%d,\"batch\":%d,\"new_clients\":%ld,"
           "\"server_cpu_us_per_msg\":%.0f,\"client_cpu_us_per_msg\":%.0f,"
           "\"ceiling_server_cpu_us_per_row\":%.0f}\n",
           rate, ceil_rate, rate / ceil_rate, pre, messages, threads, batch, created, srv_us,
           cli_us, ceil_us);
    return 0;
}
