/*
 * Unit tests for lib/worker.c: order per shard, callbacks on the loop
 * thread and never inside submit/cancel, queue full, deadline expiry while
 * the thread is stuck, cancel (queued and running), per-thread state, and a
 * group free that finishes its jobs.  Each test runs its own libev loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "lib/worker.h"

/* ---- helpers ------------------------------------------------------------------ */

static pthread_t loop_thread;
static bool in_call; /* inside worker_submit / worker_cancel */

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	fail_msg("the loop waited too long (a job never finished?)");
}

/* Run the loop until no job is outstanding, failing after 10 s. */
static void run(struct ev_loop *loop)
{
	ev_timer wd;
	ev_timer_init(&wd, watchdog_cb, 10, 0);
	ev_timer_start(loop, &wd);
	ev_unref(loop);
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &wd);
}

struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool open;
	bool started;
};

static void gate_init(struct gate *g)
{
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = g->started = false;
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
}

static void gate_wait_started(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->started)
		pthread_cond_wait(&g->cond, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cond);
}

struct job {
	unsigned shard, seq;
	struct gate *gate; /* block on it when set */
	bool ran;
	pthread_t ran_on;
	int done_calls;
	enum worker_status status;
	unsigned *done_counter;
	/* ordering records */
	unsigned *work_log; /* per shard */
	unsigned *work_log_len;
	unsigned *done_log;
	unsigned *done_log_len;
	void (*on_done)(struct job *j);
	void *ptr;
};

static void job_work(void *arg, void *state)
{
	struct job *j = arg;
	__atomic_store_n(&j->ran, true, __ATOMIC_SEQ_CST);
	j->ran_on = pthread_self();
	if (j->work_log != NULL)
		j->work_log[(*j->work_log_len)++] = j->seq;
	if (j->gate != NULL) {
		pthread_mutex_lock(&j->gate->mu);
		j->gate->started = true;
		pthread_cond_broadcast(&j->gate->cond);
		while (!j->gate->open)
			pthread_cond_wait(&j->gate->cond, &j->gate->mu);
		pthread_mutex_unlock(&j->gate->mu);
	}
}

static void job_done(void *arg, enum worker_status status)
{
	struct job *j = arg;
	assert_true(pthread_equal(pthread_self(), loop_thread));
	assert_false(in_call);
	j->done_calls++;
	j->status = status;
	if (j->done_counter != NULL)
		(*j->done_counter)++;
	if (j->done_log != NULL)
		j->done_log[(*j->done_log_len)++] = j->seq;
	if (j->on_done != NULL)
		j->on_done(j);
}

static struct worker_job *submit(struct worker_group *g, unsigned shard, struct job *j, double timeout)
{
	in_call = true;
	struct worker_job *wj = worker_submit(g, shard, job_work, job_done, j, timeout);
	in_call = false;
	return wj;
}

static void cancel(struct worker_job *wj)
{
	in_call = true;
	worker_cancel(wj);
	in_call = false;
}

static int setup(void **state)
{
	loop_thread = pthread_self();
	*state = ev_loop_new(EVFLAG_AUTO);
	return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	ev_loop_destroy(*state);
	return 0;
}

/* ---- tests ---------------------------------------------------------------------- */

#define NSHARDS 6
#define PER_SHARD 60

static void test_order_per_shard(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "order", 3, 0, NULL, NULL, NULL);
	static struct job jobs[NSHARDS][PER_SHARD];
	unsigned work_log[NSHARDS][PER_SHARD], work_len[NSHARDS] = { 0 };
	unsigned done_log[NSHARDS][PER_SHARD], done_len[NSHARDS] = { 0 };
	unsigned done = 0;
	memset(jobs, 0, sizeof(jobs));
	/* Interleave the shards so each thread has several queues' jobs mixed. */
	for (unsigned k = 0; k < PER_SHARD; k++) {
		for (unsigned s = 0; s < NSHARDS; s++) {
			struct job *j = &jobs[s][k];
			j->shard = s;
			j->seq = k;
			j->work_log = work_log[s];
			j->work_log_len = &work_len[s];
			j->done_log = done_log[s];
			j->done_log_len = &done_len[s];
			j->done_counter = &done;
			assert_non_null(submit(g, s * 7919u, j, 0));
		}
	}
	run(loop);
	assert_int_equal(done, NSHARDS * PER_SHARD);
	for (unsigned s = 0; s < NSHARDS; s++) {
		assert_int_equal(work_len[s], PER_SHARD);
		assert_int_equal(done_len[s], PER_SHARD);
		for (unsigned k = 0; k < PER_SHARD; k++) {
			assert_int_equal(work_log[s][k], k);
			assert_int_equal(done_log[s][k], k);
			assert_int_equal(jobs[s][k].status, WORKER_DONE);
			assert_int_equal(jobs[s][k].done_calls, 1);
			/* One shard, one thread; never the loop thread. */
			assert_true(pthread_equal(jobs[s][k].ran_on, jobs[s][0].ran_on));
			assert_false(pthread_equal(jobs[s][k].ran_on, loop_thread));
		}
	}
	assert_int_equal(worker_group_pending(g), 0);
	assert_string_equal(worker_group_name(g), "order");
	worker_group_free(&g);
	assert_null(g);
}

static void test_callback_not_in_submit(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "sync", 2, 0, NULL, NULL, NULL);
	struct job j[20];
	memset(j, 0, sizeof(j));
	for (unsigned i = 0; i < 20; i++) {
		assert_non_null(submit(g, i, &j[i], 5));
		/* Give the threads time to finish: still no callback before the loop runs. */
		if (i == 10)
			usleep(20000);
	}
	for (unsigned i = 0; i < 20; i++)
		assert_int_equal(j[i].done_calls, 0);
	assert_int_equal(worker_group_pending(g), 20);
	run(loop);
	for (unsigned i = 0; i < 20; i++) {
		assert_int_equal(j[i].done_calls, 1);
		assert_true(j[i].ran);
	}
	assert_int_equal(worker_group_pending(g), 0);
	worker_group_free(&g);
}

static void test_queue_full(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "full", 1, 2, NULL, NULL, NULL);
	struct gate gate;
	gate_init(&gate);
	struct job blocker = { .gate = &gate }, a = { 0 }, b = { 0 }, c = { 0 };
	assert_non_null(submit(g, 0, &blocker, 0));
	gate_wait_started(&gate); /* the thread holds it: the queue is empty */
	assert_non_null(submit(g, 0, &a, 0));
	assert_non_null(submit(g, 1, &b, 0));
	assert_null(submit(g, 2, &c, 0)); /* two queued: full */
	gate_open(&gate);
	run(loop);
	assert_int_equal(blocker.done_calls, 1);
	assert_int_equal(a.done_calls, 1);
	assert_int_equal(b.done_calls, 1);
	assert_int_equal(c.done_calls, 0);
	assert_false(c.ran);
	/* Room again. */
	assert_non_null(submit(g, 2, &c, 0));
	run(loop);
	assert_int_equal(c.done_calls, 1);
	worker_group_free(&g);
	gate_destroy(&gate);
}

static void open_gate_on_done(struct job *j)
{
	gate_open(j->ptr);
}

static void test_deadline(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "deadline", 1, 0, NULL, NULL, NULL);
	struct gate gate;
	gate_init(&gate);
	struct job blocker = { .gate = &gate };
	/* x expires while the only thread is stuck: the loop must notice on its
	 * own (x's done opens the gate; without the loop's timer this hangs). */
	struct job x = { .on_done = open_gate_on_done, .ptr = &gate };
	struct job y = { 0 }; /* no deadline: waits and runs */
	assert_non_null(submit(g, 0, &blocker, 0));
	gate_wait_started(&gate);
	double t0 = ev_time();
	assert_non_null(submit(g, 0, &x, 0.05));
	assert_non_null(submit(g, 0, &y, 0));
	run(loop);
	assert_int_equal(x.done_calls, 1);
	assert_int_equal(x.status, WORKER_EXPIRED);
	assert_false(x.ran);
	assert_true(ev_time() - t0 >= 0.05);
	assert_int_equal(blocker.status, WORKER_DONE);
	assert_int_equal(y.status, WORKER_DONE);
	assert_true(y.ran);
	worker_group_free(&g);
	gate_destroy(&gate);
}

static void test_deadline_checked_by_thread(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "deadline2", 1, 0, NULL, NULL, NULL);
	struct gate gate;
	gate_init(&gate);
	struct job blocker = { .gate = &gate }, x = { 0 };
	assert_non_null(submit(g, 0, &blocker, 0));
	gate_wait_started(&gate);
	assert_non_null(submit(g, 0, &x, 0.02));
	usleep(50000); /* expired, and the loop has not looked yet */
	gate_open(&gate);
	run(loop);
	assert_int_equal(x.status, WORKER_EXPIRED);
	assert_false(x.ran);
	worker_group_free(&g);
	gate_destroy(&gate);
}

static void test_cancel(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "cancel", 1, 0, NULL, NULL, NULL);
	struct gate gate;
	gate_init(&gate);
	struct job blocker = { .gate = &gate }, x = { 0 }, y = { 0 };
	struct worker_job *wb = submit(g, 0, &blocker, 0);
	assert_non_null(wb);
	gate_wait_started(&gate);
	struct worker_job *wx = submit(g, 0, &x, 0);
	assert_non_null(wx);
	assert_non_null(submit(g, 0, &y, 0));
	cancel(wx); /* queued: will not run */
	cancel(wb); /* running: runs to its end, reported cancelled */
	assert_int_equal(x.done_calls, 0);
	assert_int_equal(blocker.done_calls, 0);
	gate_open(&gate);
	run(loop);
	assert_int_equal(x.done_calls, 1);
	assert_int_equal(x.status, WORKER_CANCELLED);
	assert_false(x.ran);
	assert_int_equal(blocker.done_calls, 1);
	assert_int_equal(blocker.status, WORKER_CANCELLED);
	assert_true(blocker.ran);
	assert_int_equal(y.status, WORKER_DONE);
	worker_group_free(&g);
	gate_destroy(&gate);
}

static void test_cancel_finished_not_delivered(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "cancel2", 1, 0, NULL, NULL, NULL);
	struct job x = { 0 };
	struct worker_job *wx = submit(g, 0, &x, 0);
	/* Wait until it has run: its done is waiting for the loop. */
	for (int i = 0; i < 5000 && !__atomic_load_n(&x.ran, __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	usleep(1000);
	cancel(wx);
	run(loop);
	assert_int_equal(x.done_calls, 1);
	assert_int_equal(x.status, WORKER_CANCELLED);
	assert_true(x.ran);
	worker_group_free(&g);
}

struct tstate {
	unsigned index;
	pthread_t tid;
	unsigned jobs;
};

static unsigned deinit_calls;
static unsigned deinit_jobs;
static bool init_wrong; /* set by a worker thread; checked on the main one */

static void *tinit(void *ctx, unsigned index)
{
	if (ctx != &deinit_calls || pthread_equal(pthread_self(), loop_thread))
		init_wrong = true;
	struct tstate *t = calloc(1, sizeof(*t));
	t->index = index;
	t->tid = pthread_self();
	return t;
}

static void tdeinit(void *ctx, void *state)
{
	struct tstate *t = state;
	if (!pthread_equal(pthread_self(), t->tid))
		init_wrong = true;
	__atomic_add_fetch(&deinit_calls, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&deinit_jobs, t->jobs, __ATOMIC_SEQ_CST);
	free(t);
}

struct sjob {
	unsigned shard;
	unsigned index;
	bool same_thread;
	int done_calls;
};

static void sjob_work(void *arg, void *state)
{
	struct sjob *j = arg;
	struct tstate *t = state;
	j->index = t->index;
	j->same_thread = pthread_equal(pthread_self(), t->tid);
	t->jobs++;
}

static void sjob_done(void *arg, enum worker_status status)
{
	struct sjob *j = arg;
	assert_int_equal(status, WORKER_DONE);
	j->done_calls++;
}

static void test_thread_state(void **state)
{
	struct ev_loop *loop = *state;
	deinit_calls = deinit_jobs = 0;
	struct worker_group *g = worker_group_new(loop, "state", 4, 0, tinit, tdeinit, &deinit_calls);
	struct sjob jobs[40];
	memset(jobs, 0, sizeof(jobs));
	for (unsigned i = 0; i < 40; i++) {
		jobs[i].shard = i * 3;
		assert_non_null(worker_submit(g, jobs[i].shard, sjob_work, sjob_done, &jobs[i], 0));
	}
	run(loop);
	for (unsigned i = 0; i < 40; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].index, jobs[i].shard % 4);
		assert_true(jobs[i].same_thread);
	}
	worker_group_free(&g);
	assert_false(init_wrong);
	assert_int_equal(deinit_calls, 4);
	assert_int_equal(deinit_jobs, 40);
}

static struct worker_group *freeing_group;
static bool resubmit_failed;

static void resubmit_on_done(struct job *j)
{
	/* Submitting while the group is being freed fails (no done later). */
	static struct job late;
	resubmit_failed = worker_submit(freeing_group, 0, job_work, job_done, &late, 0) == NULL;
}

static void slow_work(void *arg, void *state)
{
	usleep(200);
	job_work(arg, state);
}

static void test_free_finishes_jobs(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "free", 2, 0, NULL, NULL, NULL);
	struct job jobs[100];
	unsigned done = 0;
	memset(jobs, 0, sizeof(jobs));
	for (unsigned i = 0; i < 100; i++) {
		jobs[i].done_counter = &done;
		assert_non_null(worker_submit(g, i, slow_work, job_done, &jobs[i], 30));
	}
	jobs[99].on_done = resubmit_on_done;
	freeing_group = g;
	resubmit_failed = false;
	worker_group_free(&g); /* waits for all of them; their done functions run */
	assert_int_equal(done, 100);
	for (unsigned i = 0; i < 100; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].status, WORKER_DONE);
		assert_true(jobs[i].ran);
	}
	assert_true(resubmit_failed);
	/* Nothing left keeps the loop alive. */
	ev_run(loop, EVRUN_NOWAIT);
}

static void chain_on_done(struct job *j)
{
	/* Submitting from a done function is fine. */
	struct worker_group *g = j->ptr;
	struct job *next = j + 1;
	if (next->seq != 0)
		assert_non_null(submit(g, 5, next, 1));
}

static void test_submit_from_done(void **state)
{
	struct ev_loop *loop = *state;
	struct worker_group *g = worker_group_new(loop, "chain", 2, 1, NULL, NULL, NULL);
	struct job jobs[6];
	memset(jobs, 0, sizeof(jobs));
	for (unsigned i = 0; i < 5; i++) {
		jobs[i].seq = i + 1;
		jobs[i].on_done = chain_on_done;
		jobs[i].ptr = g;
	}
	assert_non_null(submit(g, 5, &jobs[0], 1));
	run(loop);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(jobs[i].done_calls, 1);
	worker_group_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_per_shard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_not_in_submit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_checked_by_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_finished_not_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_finishes_jobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_submit_from_done, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
