/*
 * Worker groups: a few threads that run blocking work (SQL, LDAP, key
 * derivation) so the event loop never waits.
 *
 * Threads: worker_group_new, worker_submit, worker_cancel and
 * worker_group_free run on the loop thread; each group thread runs the work
 * functions of the jobs of its shard, in submission order.  Completion comes
 * back to the loop through one ev_async; done functions always run on the
 * loop thread, from the loop (or from worker_group_free), never inside
 * worker_submit or worker_cancel.
 *
 * Invariants:
 * - one mutex per group guards every queue, the done list, the queued count
 *   and the stopping flag; each thread sleeps on its own condition variable;
 * - a job is in exactly one place: a thread's queue (QUEUED), a thread's hands
 *   (RUNNING) or the done list (FINISHED); its done function runs exactly once
 *   and the job record is freed right after it;
 * - a deadline is checked both by the loop (a timer set to the earliest
 *   deadline, so a thread stuck on a dead server does not hold back the
 *   expiry of the jobs behind it) and by the thread when it takes the job;
 * - a batch is a run of consecutive jobs of one thread's queue with the same
 *   batch function and key; the thread takes them all at once (so none of
 *   them can be cancelled or expire while it works) and hands them to the
 *   done list together, in order;
 * - the group keeps the loop alive only while it has jobs whose done has not
 *   run (ev_ref/ev_unref around the async watcher);
 * - a job's time, from its submission to its done call, goes into its
 *   group's histogram on the loop thread (for /metrics); the live groups
 *   are on one list, kept by the loop thread.
 */
#include "worker.h"
#include "latency.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_FINISHED };

struct worker_job {
	struct worker_group *g;
	struct worker_job *prev, *next; /* thread queue or done list */
	worker_work_fn *work;
	worker_batch_fn *batch; /* NULL: never batched */
	const void *batch_key;
	worker_done_fn *done;
	void *arg;
	double deadline;  /* monotonic seconds; 0: none */
	double submitted; /* monotonic seconds */
	unsigned thread;
	enum job_state state;      /* under the group mutex */
	enum worker_status status; /* DONE or EXPIRED, set before FINISHED */
	bool cancelled;            /* loop thread only */
};

struct job_list {
	struct worker_job *head, *tail;
};

struct worker_thread {
	struct worker_group *g;
	unsigned index;
	pthread_t tid;
	bool started;
	pthread_cond_t cond;
	struct job_list queue;
};

struct worker_group {
	struct ev_loop *loop;
	char *name;
	unsigned nthreads;
	unsigned queue_max; /* 0: unlimited */
	worker_thread_init_fn *init;
	worker_thread_deinit_fn *deinit;
	void *group_ctx;

	pthread_mutex_t mutex;
	struct worker_thread *threads;
	unsigned queued;      /* jobs in thread queues (mutex) */
	bool stopping;        /* mutex */
	struct job_list done; /* mutex */

	ev_async async;
	ev_timer expire;
	double expire_at;                /* deadline the timer is set for (loop) */
	unsigned outstanding;            /* submitted, done not yet run (loop) */
	bool freeing;                    /* loop */
	struct worker_group_stats stats; /* loop */
	struct worker_group *next_group; /* the list of live groups (loop) */
};

static struct worker_group *groups;

static void list_push(struct job_list *l, struct worker_job *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static void list_remove(struct job_list *l, struct worker_job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
}

static struct worker_job *list_pop(struct job_list *l)
{
	struct worker_job *j = l->head;
	if (j != NULL)
		list_remove(l, j);
	return j;
}

/* ---- worker threads ---------------------------------------------------------- */

static void *thread_main(void *arg)
{
	struct worker_thread *t = arg;
	struct worker_group *g = t->g;
	void *state = g->init != NULL ? g->init(g->group_ctx, t->index) : NULL;

	pthread_mutex_lock(&g->mutex);
	for (;;) {
		while (t->queue.head == NULL && !g->stopping)
			pthread_cond_wait(&t->cond, &g->mutex);
		struct worker_job *j = list_pop(&t->queue);
		if (j == NULL)
			break; /* stopping and nothing left */
		g->queued--;
		j->state = JOB_RUNNING;
		/* The jobs right behind it that can share its batch. */
		struct worker_job *batch[WORKER_BATCH_MAX];
		size_t n = 1;
		batch[0] = j;
		double now = mono_now();
		bool expired = j->deadline > 0 && now >= j->deadline;
		while (j->batch != NULL && !expired && n < WORKER_BATCH_MAX) {
			struct worker_job *nx = t->queue.head;
			if (nx == NULL || nx->batch != j->batch || nx->batch_key != j->batch_key ||
			    (nx->deadline > 0 && now >= nx->deadline))
				break;
			list_remove(&t->queue, nx);
			g->queued--;
			nx->state = JOB_RUNNING;
			batch[n++] = nx;
		}
		pthread_mutex_unlock(&g->mutex);

		if (expired) {
			j->status = WORKER_EXPIRED;
		} else if (n == 1) {
			j->work(j->arg, state);
			j->status = WORKER_DONE;
		} else {
			void *args[WORKER_BATCH_MAX];
			for (size_t i = 0; i < n; i++)
				args[i] = batch[i]->arg;
			j->batch(args, n, state);
			for (size_t i = 0; i < n; i++)
				batch[i]->status = WORKER_DONE;
		}

		pthread_mutex_lock(&g->mutex);
		for (size_t i = 0; i < n; i++) {
			batch[i]->state = JOB_FINISHED;
			list_push(&g->done, batch[i]);
		}
		pthread_mutex_unlock(&g->mutex);
		ev_async_send(g->loop, &g->async);
		pthread_mutex_lock(&g->mutex);
	}
	pthread_mutex_unlock(&g->mutex);

	if (g->deinit != NULL)
		g->deinit(g->group_ctx, state);
	return NULL;
}

/* ---- completion on the loop thread -------------------------------------------- */

static void expire_timer_stop(struct worker_group *g)
{
	ev_timer_stop(g->loop, &g->expire);
	g->expire_at = 0;
}

static void expire_timer_arm(struct worker_group *g, double deadline)
{
	if (deadline <= 0)
		return;
	if (ev_is_active(&g->expire) && g->expire_at <= deadline)
		return;
	ev_timer_stop(g->loop, &g->expire);
	double delay = deadline - mono_now();
	/* A hair late rather than early: an early wake-up only rescans. */
	ev_timer_set(&g->expire, delay > 0 ? delay + 0.001 : 0, 0);
	ev_timer_start(g->loop, &g->expire);
	g->expire_at = deadline;
}

double worker_stats_bound(unsigned i)
{
	return 0.0005 * (double)(1u << i);
}

/* Count a finished job in its group's figures.  Loop thread. */
static void stats_add(struct worker_group *g, const struct worker_job *j, enum worker_status st)
{
	if (st == WORKER_EXPIRED)
		g->stats.expired++;
	double t = mono_now() - j->submitted;
	unsigned i = 0;
	while (i < WORKER_STATS_BUCKETS && t > worker_stats_bound(i))
		i++;
	g->stats.counts[i]++;
	g->stats.sum += t;
	g->stats.jobs++;
}

/* Run the done functions of every finished job.  Loop thread. */
static void deliver(struct worker_group *g)
{
	for (;;) {
		pthread_mutex_lock(&g->mutex);
		struct job_list l = g->done;
		g->done.head = g->done.tail = NULL;
		pthread_mutex_unlock(&g->mutex);
		if (l.head == NULL)
			break;
		struct worker_job *j;
		while ((j = list_pop(&l)) != NULL) {
			enum worker_status st = j->cancelled ? WORKER_CANCELLED : j->status;
			assert(g->outstanding > 0);
			if (--g->outstanding == 0) {
				ev_unref(g->loop);
				expire_timer_stop(g);
			}
			stats_add(g, j, st);
			j->done(j->arg, st);
			free(j);
		}
	}
}

static void async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct worker_group *g = w->data;
	latency_begin(LATENCY_WORKER, g->name);
	deliver(g);
	latency_end();
}

static void expire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct worker_group *g = w->data;
	latency_begin(LATENCY_WORKER, g->name);
	double now = mono_now();
	double next = 0;
	bool moved = false;
	g->expire_at = 0;

	pthread_mutex_lock(&g->mutex);
	for (unsigned i = 0; i < g->nthreads; i++) {
		struct worker_job *j = g->threads[i].queue.head;
		while (j != NULL) {
			struct worker_job *nx = j->next;
			if (j->deadline > 0 && j->deadline <= now) {
				list_remove(&g->threads[i].queue, j);
				g->queued--;
				j->state = JOB_FINISHED;
				j->status = WORKER_EXPIRED;
				list_push(&g->done, j);
				moved = true;
			} else if (j->deadline > 0 && (next == 0 || j->deadline < next)) {
				next = j->deadline;
			}
			j = nx;
		}
	}
	pthread_mutex_unlock(&g->mutex);

	if (moved)
		log_debug("worker group %s: jobs expired in the queue", g->name);
	expire_timer_arm(g, next);
	if (moved)
		deliver(g);
	latency_end();
}

/* ---- public interface ------------------------------------------------------------ */

struct worker_group *worker_group_new(struct ev_loop *loop, const char *name, unsigned threads,
                                      unsigned queue_max, worker_thread_init_fn *init,
                                      worker_thread_deinit_fn *deinit, void *group_ctx)
{
	struct worker_group *g = xcalloc(1, sizeof(*g));
	g->loop = loop;
	g->name = xstrdup(name != NULL ? name : "worker");
	g->nthreads = threads > 0 ? threads : 1;
	g->queue_max = queue_max;
	g->init = init;
	g->deinit = deinit;
	g->group_ctx = group_ctx;
	pthread_mutex_init(&g->mutex, NULL);

	ev_async_init(&g->async, async_cb);
	g->async.data = g;
	ev_async_start(loop, &g->async);
	ev_unref(loop); /* only outstanding jobs keep the loop alive */
	ev_timer_init(&g->expire, expire_cb, 0, 0);
	g->expire.data = g;
	struct worker_group **tail = &groups; /* oldest first: stable labels in /metrics */
	while (*tail != NULL)
		tail = &(*tail)->next_group;
	*tail = g;

	g->threads = xcalloc(g->nthreads, sizeof(*g->threads));
	/* Threads block every signal: signals belong to the loop thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < g->nthreads; i++) {
		struct worker_thread *t = &g->threads[i];
		t->g = g;
		t->index = i;
		pthread_cond_init(&t->cond, NULL);
		int err = pthread_create(&t->tid, NULL, thread_main, t);
		if (err != 0)
			log_fatal("worker group %s: cannot start thread %u: %s", g->name, i, strerror(err));
		t->started = true;
		char tname[32];
		snprintf(tname, sizeof(tname), "%.11s-%u", g->name, i);
		tname[15] = '\0'; /* the kernel's limit */
		pthread_setname_np(t->tid, tname);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return g;
}

void worker_group_free(struct worker_group **gp)
{
	struct worker_group *g = *gp;
	if (g == NULL)
		return;
	*gp = NULL;
	g->freeing = true;
	for (struct worker_group **pp = &groups; *pp != NULL; pp = &(*pp)->next_group) {
		if (*pp == g) {
			*pp = g->next_group;
			break;
		}
	}

	pthread_mutex_lock(&g->mutex);
	g->stopping = true;
	for (unsigned i = 0; i < g->nthreads; i++)
		pthread_cond_signal(&g->threads[i].cond);
	pthread_mutex_unlock(&g->mutex);
	for (unsigned i = 0; i < g->nthreads; i++)
		if (g->threads[i].started)
			pthread_join(g->threads[i].tid, NULL);

	/* Every job has finished (ran or expired): their done functions run
	 * now.  Submitting from them fails (the group is stopping). */
	deliver(g);
	assert(g->outstanding == 0);
	assert(g->queued == 0);

	expire_timer_stop(g);
	ev_ref(g->loop);
	ev_async_stop(g->loop, &g->async);
	for (unsigned i = 0; i < g->nthreads; i++)
		pthread_cond_destroy(&g->threads[i].cond);
	pthread_mutex_destroy(&g->mutex);
	free(g->threads);
	free(g->name);
	free(g);
}

struct worker_job *worker_submit_batch(struct worker_group *g, uint32_t shard, worker_work_fn *work,
                                       worker_batch_fn *batch, const void *key, worker_done_fn *done,
                                       void *arg, double timeout)
{
	assert(work != NULL && done != NULL);
	if (g->freeing)
		return NULL;
	struct worker_job *j = xcalloc(1, sizeof(*j));
	j->g = g;
	j->work = work;
	j->batch = batch;
	j->batch_key = key;
	j->done = done;
	j->arg = arg;
	j->thread = shard % g->nthreads;
	j->submitted = mono_now();
	j->deadline = timeout > 0 ? j->submitted + timeout : 0;
	j->state = JOB_QUEUED;

	pthread_mutex_lock(&g->mutex);
	if (g->stopping || (g->queue_max > 0 && g->queued >= g->queue_max)) {
		pthread_mutex_unlock(&g->mutex);
		free(j);
		return NULL;
	}
	struct worker_thread *t = &g->threads[j->thread];
	list_push(&t->queue, j);
	g->queued++;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&g->mutex);

	if (g->outstanding++ == 0)
		ev_ref(g->loop);
	expire_timer_arm(g, j->deadline);
	return j;
}

struct worker_job *worker_submit(struct worker_group *g, uint32_t shard, worker_work_fn *work,
                                 worker_done_fn *done, void *arg, double timeout)
{
	return worker_submit_batch(g, shard, work, NULL, NULL, done, arg, timeout);
}

void worker_cancel(struct worker_job *j)
{
	if (j == NULL || j->cancelled)
		return;
	struct worker_group *g = j->g;
	j->cancelled = true;
	pthread_mutex_lock(&g->mutex);
	bool queued = j->state == JOB_QUEUED;
	if (queued) {
		/* Not started: it will not run; done comes from the loop. */
		list_remove(&g->threads[j->thread].queue, j);
		g->queued--;
		j->state = JOB_FINISHED;
		list_push(&g->done, j);
	}
	pthread_mutex_unlock(&g->mutex);
	if (queued)
		ev_async_send(g->loop, &g->async);
}

unsigned worker_group_pending(const struct worker_group *g)
{
	return g->outstanding;
}

unsigned worker_group_threads(const struct worker_group *g)
{
	return g->nthreads;
}

const char *worker_group_name(const struct worker_group *g)
{
	return g->name;
}

const struct worker_group_stats *worker_group_stats(const struct worker_group *g)
{
	return &g->stats;
}

void worker_groups_foreach(void (*fn)(const struct worker_group *g, void *ctx), void *ctx)
{
	for (const struct worker_group *g = groups; g != NULL; g = g->next_group)
		fn(g, ctx);
}
