/* DB worker pool (see dbpool.h).
 *
 * DESIGN
 * One shared FIFO of pending jobs guarded by `lock` and `cond`; any idle
 * worker takes the head, so a slow query on one connection never holds up
 * jobs that another connection could run. Finished jobs go on the `done`
 * list under the same lock; the loop swaps the whole list out and runs the
 * callbacks outside the lock (cf. Redis bio.c), so workers never wait for
 * the loop and the loop never waits for a query.
 *
 * Group jobs (webhooks) ride together: the worker that takes one also takes
 * the queued jobs of the same group, so a burst of requests costs one
 * transaction and one fsync instead of one each — durability unchanged,
 * since every request is answered only after that commit.
 *
 * Lock `lock` guards: head, tail, queued, done_head, done_tail, stopping,
 * busy and the counters. Each worker's `db` is touched only by that worker. */
#include "switchboard/dbpool.h"
#include "switchboard/err.h"
#include "switchboard/limits.h"
#include "switchboard/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
    sb_dbjob_run_fn run;     /* one job at a time, or */
    sb_dbjob_group_fn group; /* several queued jobs of the same group together */
    sb_dbjob_done_fn done;
    void *arg;
    uint64_t queued_at_us;
    struct job *next;
};

struct worker {
    struct sb_dbpool *pool;
    pthread_t thread;
    struct sb_db *db;
};

struct sb_dbpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    size_t queued;
    struct job *done_head, *done_tail;
    int stopping;
    int busy;
    uint64_t submitted, rejected, wait_us_total;
    void (*wake)(void *);
    void *wake_arg;
    int nworkers;
    struct worker *workers;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct sb_dbpool *pool = w->pool;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->stopping)
            pthread_cond_wait(&pool->cond, &pool->lock);
        if (!pool->head && pool->stopping)
            break;
        struct job *j = pool->head;
        pool->head = j->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        pool->busy++;
        uint64_t now = now_us();
        pool->wait_us_total += now - j->queued_at_us;
        j->next = NULL;
        /* A group job takes every queued job of its group along (up to a
         * cap), so they share one transaction and one commit. */
        struct job *batch_tail = j;
        size_t n = 1;
        if (j->group) {
            struct job **pp = &pool->head, *prev = NULL;
            while (*pp && n < SB_DB_GROUP_MAX) {
                struct job *k = *pp;
                if (k->group == j->group) {
                    *pp = k->next;
                    if (pool->tail == k)
                        pool->tail = prev;
                    pool->queued--;
                    pool->wait_us_total += now - k->queued_at_us;
                    k->next = NULL;
                    batch_tail->next = k;
                    batch_tail = k;
                    n++;
                } else {
                    prev = k;
                    pp = &k->next;
                }
            }
        }
        pthread_mutex_unlock(&pool->lock);

        if (j->group) {
            void *args[SB_DB_GROUP_MAX];
            size_t i = 0;
            for (struct job *k = j; k; k = k->next)
                args[i++] = k->arg;
            j->group(w->db, args, n);
        } else {
            j->run(w->db, j->arg);
        }

        pthread_mutex_lock(&pool->lock);
        pool->busy--;
        if (pool->done_tail)
            pool->done_tail->next = j;
        else
            pool->done_head = j;
        pool->done_tail = batch_tail;
        pthread_mutex_unlock(&pool->lock);
        if (pool->wake)
            pool->wake(pool->wake_arg);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int sb_dbpool_start(const struct sb_db_params *params, int workers, void (*wake)(void *),
                    void *wake_arg, struct sb_dbpool **pool_r, char *err, size_t errlen)
{
    *pool_r = NULL;
    if (workers < 1 || workers > SB_DB_WORKERS_MAX)
        return sb_fail(err, errlen, SB_ERR_CONFIG, "database.workers must be 1..%d",
                       SB_DB_WORKERS_MAX);
    struct sb_dbpool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    pool->workers = calloc((size_t)workers, sizeof *pool->workers);
    if (!pool->workers) {
        free(pool);
        return sb_fail(err, errlen, SB_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->wake = wake;
    pool->wake_arg = wake_arg;
    for (int i = 0; i < workers; i++) {
        struct worker *w = &pool->workers[i];
        w->pool = pool;
        char msg[256] = "";
        int rc = sb_db_open(params, 0, &w->db, msg, sizeof msg);
        if (rc != SB_OK && !w->db) {
            sb_dbpool_stop(&pool);
            return sb_fail(err, errlen, rc, "%s", msg);
        }
        if (rc != SB_OK && i == 0)
            sb_warn("db", "%s (will retry on each request)", msg);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            sb_db_close(&w->db);
            sb_dbpool_stop(&pool);
            return sb_fail(err, errlen, SB_ERR_INTERNAL, "cannot start DB worker thread");
        }
        pool->nworkers++;
    }
    *pool_r = pool;
    return SB_OK;
}

static int submit(struct sb_dbpool *pool, sb_dbjob_run_fn run, sb_dbjob_group_fn group,
                  sb_dbjob_done_fn done, void *arg)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return SB_ERR_NOMEM;
    *j = (struct job){run, group, done, arg, now_us(), NULL};
    pthread_mutex_lock(&pool->lock);
    if (pool->queued >= SB_DB_QUEUE_MAX || pool->stopping) {
        pool->rejected++;
        pthread_mutex_unlock(&pool->lock);
        free(j);
        return SB_ERR_LIMIT;
    }
    if (pool->tail)
        pool->tail->next = j;
    else
        pool->head = j;
    pool->tail = j;
    pool->queued++;
    pool->submitted++;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return SB_OK;
}

int sb_dbpool_submit(struct sb_dbpool *pool, sb_dbjob_run_fn run, sb_dbjob_done_fn done, void *arg)
{
    return submit(pool, run, NULL, done, arg);
}

int sb_dbpool_submit_group(struct sb_dbpool *pool, sb_dbjob_group_fn group, sb_dbjob_done_fn done,
                           void *arg)
{
    return submit(pool, NULL, group, done, arg);
}

void sb_dbpool_drain(struct sb_dbpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    struct job *j = pool->done_head;
    pool->done_head = pool->done_tail = NULL;
    pthread_mutex_unlock(&pool->lock);
    while (j) {
        struct job *next = j->next;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = next;
    }
}

void sb_dbpool_abandon_queued(struct sb_dbpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->head) {
        if (pool->done_tail)
            pool->done_tail->next = pool->head;
        else
            pool->done_head = pool->head;
        pool->done_tail = pool->tail;
        pool->head = pool->tail = NULL;
        pool->queued = 0;
    }
    pthread_mutex_unlock(&pool->lock);
}

size_t sb_dbpool_queued(struct sb_dbpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->queued;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void sb_dbpool_stats(struct sb_dbpool *pool, struct sb_dbpool_stats *st)
{
    pthread_mutex_lock(&pool->lock);
    st->workers = pool->nworkers;
    st->busy = pool->busy;
    st->queued = pool->queued;
    st->submitted = pool->submitted;
    st->rejected = pool->rejected;
    st->wait_us_total = pool->wait_us_total;
    pthread_mutex_unlock(&pool->lock);
}

void sb_dbpool_stop(struct sb_dbpool **poolp)
{
    struct sb_dbpool *pool = *poolp;
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->nworkers; i++)
        pthread_join(pool->workers[i].thread, NULL);
    for (int i = 0; i < pool->nworkers; i++)
        sb_db_close(&pool->workers[i].db);
    sb_dbpool_drain(pool);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cond);
    free(pool->workers);
    free(pool);
    *poolp = NULL;
}
