/* The DB worker pool: a few threads, each owning one MariaDB connection, that
 * run jobs for the event loop (cf. Redis bio.h).
 *
 * Thread contract:
 *   - sb_dbpool_submit() and sb_dbpool_drain() are called on the loop thread.
 *   - a job's `run` is called on a worker thread with that worker's connection.
 *   - a job's `done` is called on the loop thread, from sb_dbpool_drain(),
 *     after `run` returned. The pool calls `wake` (lws_cancel_service) from the
 *     worker so the loop knows to drain.
 * The job's `arg` belongs to the submitter; the pool never frees it. */
#ifndef SB_DBPOOL_H
#define SB_DBPOOL_H

#include "switchboard/db.h"

#include <stddef.h>
#include <stdint.h>

struct sb_dbpool;

typedef void (*sb_dbjob_run_fn)(struct sb_db *db, void *arg);
typedef void (*sb_dbjob_done_fn)(void *arg);
/* Runs several jobs of one group on one worker: `args` has `n` entries, in
 * submission order. */
typedef void (*sb_dbjob_group_fn)(struct sb_db *db, void **args, size_t n);

struct sb_dbpool_stats {
    int workers;
    int busy;               /* workers running a job right now */
    size_t queued;          /* jobs waiting for a worker */
    uint64_t submitted;     /* jobs accepted since start */
    uint64_t rejected;      /* jobs refused because the queue was full */
    uint64_t wait_us_total; /* time jobs spent queued, summed */
};

/* Start `workers` threads. They connect lazily, so the pool starts even while
 * the database is down; jobs then see SB_ERR_UNAVAILABLE from their queries. */
int sb_dbpool_start(const struct sb_db_params *params, int workers, void (*wake)(void *),
                    void *wake_arg, struct sb_dbpool **pool_r, char *err, size_t errlen);

/* Queue a job. SB_ERR_LIMIT when the queue is full (the caller answers 503). */
int sb_dbpool_submit(struct sb_dbpool *pool, sb_dbjob_run_fn run, sb_dbjob_done_fn done, void *arg);

/* Queue a job that may run together with other queued jobs of the same
 * `group` function (at most SB_DB_GROUP_MAX at once). */
int sb_dbpool_submit_group(struct sb_dbpool *pool, sb_dbjob_group_fn group, sb_dbjob_done_fn done,
                           void *arg);

/* Run the `done` callbacks of finished jobs (loop thread). */
void sb_dbpool_drain(struct sb_dbpool *pool);

void sb_dbpool_stats(struct sb_dbpool *pool, struct sb_dbpool_stats *st);

/* Jobs waiting for a worker now (a snapshot; loop thread or any). */
size_t sb_dbpool_queued(struct sb_dbpool *pool);

/* Give up on jobs still waiting for a worker: they never run and go to the
 * done list as they are (their requests are dropped unanswered, which is
 * safe: nothing was stored, and providers redeliver what got no 200). For a
 * stop whose drain time is over. */
void sb_dbpool_abandon_queued(struct sb_dbpool *pool);

/* Finish queued jobs, join the workers, run the remaining `done` callbacks
 * and free the pool. */
void sb_dbpool_stop(struct sb_dbpool **pool);

#endif
