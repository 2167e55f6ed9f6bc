/*
 * Worker groups: threads that run blocking work (database, LDAP, key
 * derivation) off the event loop.  A job is submitted on the loop thread with
 * a shard key; jobs with the same key run on the same thread, in order (one
 * user's operations keep their order).  The work function runs on a worker
 * thread and must not touch loop-owned objects: inputs are copied into the job
 * and results written into it.  The done function runs later on the loop
 * thread, never inside worker_submit.  Each thread may own per-thread state
 * (e.g. a database connection) created by thread_init.
 */
#ifndef PARLEY_WORKER_H
#define PARLEY_WORKER_H

#include <ev.h>
#include "util.h"

struct worker_group;
struct worker_job;

/* Runs on the worker thread; thread_state is what thread_init returned. */
typedef void worker_work_fn(void *job, void *thread_state);
/* Runs on the worker thread for several jobs at once (see
 * worker_submit_batch): jobs[0..n-1] in submission order. */
typedef void worker_batch_fn(void **jobs, size_t n, void *thread_state);
/* Runs on the loop thread.  status: WORKER_DONE after work ran,
 * WORKER_EXPIRED when the deadline passed before a thread took the job (work
 * did not run), WORKER_CANCELLED after worker_cancel (work may or may not
 * have run).  A full queue never reaches here: worker_submit returns NULL. */
enum worker_status { WORKER_DONE, WORKER_EXPIRED, WORKER_CANCELLED };
typedef void worker_done_fn(void *job, enum worker_status status);
typedef void *worker_thread_init_fn(void *group_ctx, unsigned index);
typedef void worker_thread_deinit_fn(void *group_ctx, void *thread_state);

struct worker_group *worker_group_new(struct ev_loop *loop, const char *name, unsigned threads,
                                      unsigned queue_max, worker_thread_init_fn *init,
                                      worker_thread_deinit_fn *deinit, void *group_ctx);
/* Finish every queued job (their done callbacks run), stop the threads, free. */
void worker_group_free(struct worker_group **g);

/* Queue a job.  Returns NULL when the queue is full (the caller fails fast
 * with a temporary error; done is not called).  timeout: seconds until the
 * job expires if not started (0: no deadline). */
struct worker_job *worker_submit(struct worker_group *g, uint32_t shard, worker_work_fn *work,
                                 worker_done_fn *done, void *job, double timeout);
/* The same, for a job that may share one call of batch with the jobs
 * queued right behind it on its thread that have the same batch function
 * and key (at most WORKER_BATCH_MAX of them, none expired).  Each job still
 * gets its own done call, in submission order, after batch returned. */
#define WORKER_BATCH_MAX 256
struct worker_job *worker_submit_batch(struct worker_group *g, uint32_t shard, worker_work_fn *work,
                                       worker_batch_fn *batch, const void *key, worker_done_fn *done,
                                       void *job, double timeout);
/* Cancel: done will be called with WORKER_CANCELLED (from the loop, later),
 * even if the work already ran; the caller's context must stay valid or done
 * must not dereference it.  The handle is invalid after done has run. */
void worker_cancel(struct worker_job *j);

/* Jobs waiting and running, for status output. */
unsigned worker_group_pending(const struct worker_group *g);
const char *worker_group_name(const struct worker_group *g);
/* Its threads (the pool size). */
unsigned worker_group_threads(const struct worker_group *g);

/* Each group's job times (submission to done, queueing included), for
 * /metrics: counts[i] jobs took at most worker_stats_bound(i) seconds
 * (0.5 ms doubling), counts[WORKER_STATS_BUCKETS] longer.  Loop thread. */
#define WORKER_STATS_BUCKETS 14
struct worker_group_stats {
	uint64_t counts[WORKER_STATS_BUCKETS + 1];
	double sum;       /* seconds */
	uint64_t jobs;    /* done calls */
	uint64_t expired; /* of them, jobs whose deadline passed in the queue */
};
const struct worker_group_stats *worker_group_stats(const struct worker_group *g);
double worker_stats_bound(unsigned i);
/* Call fn for every live group (loop thread). */
void worker_groups_foreach(void (*fn)(const struct worker_group *g, void *ctx), void *ctx);

#endif
