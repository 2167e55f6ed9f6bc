/*
 * Unit tests for lib/latency.c: nested sections split the time between
 * them, the rest of an iteration is "other", the cause of an iteration is
 * the class with the most time (with its longest section's name), the
 * histogram's buckets and quantiles, the worst list (sorted, bounded), the
 * threshold's counter and warning line, reset, unbalanced ends, and the
 * test hook that sleeps inside a class.  The clock is the test's own
 * (the _at variants) except in the hook's test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/latency.h"
#include "lib/log.h"

#define US 1000ull
#define MS 1000000ull

static uint64_t clock_ns = 1 * MS;

/* One iteration of busy ns in which one section of class c (named name)
 * takes section_ns. */
static void iteration(uint64_t busy, enum latency_class c, const char *name, uint64_t section_ns)
{
	uint64_t t = clock_ns;
	latency_iteration_start_at(t);
	latency_begin_at(c, name, t);
	latency_end_at(t + section_ns);
	latency_iteration_end_at(t + busy);
	clock_ns = t + busy + 1 * MS; /* asleep between iterations */
}

static int setup(void **state)
{
	(void)state;
	latency_set_threshold(0);
	latency_reset();
	return 0;
}

static void test_class_names(void **state)
{
	(void)state;
	for (int c = 0; c < LATENCY_CLASS_COUNT; c++) {
		const char *n = latency_class_name((enum latency_class)c);
		assert_int_equal(latency_class_parse(n, strlen(n)), c);
	}
	assert_string_equal(latency_class_name(LATENCY_MODULE), "module");
	assert_int_equal(latency_class_parse("stream-readx", 11), LATENCY_STREAM_READ);
	assert_int_equal(latency_class_parse("nothing", 7), -1);
}

static void test_nested_sections_split_the_time(void **state)
{
	(void)state;
	uint64_t t = 10 * MS;
	latency_iteration_start_at(t);
	latency_begin_at(LATENCY_STREAM_FLUSH, NULL, t + 5 * US); /* 5 us before: other */
	latency_begin_at(LATENCY_STREAM_CLOSE, NULL, t + 15 * US);
	latency_end_at(t + 45 * US);            /* close: 30 us */
	latency_end_at(t + 65 * US);            /* flush: 10 + 20 us */
	latency_iteration_end_at(t + 100 * US); /* other: 5 + 35 us */

	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->iterations, 1);
	assert_int_equal(st->busy_ns, 100 * US);
	assert_int_equal(st->max_ns, 100 * US);
	assert_int_equal(st->classes[LATENCY_STREAM_FLUSH].total_ns, 30 * US);
	assert_int_equal(st->classes[LATENCY_STREAM_FLUSH].calls, 1);
	assert_int_equal(st->classes[LATENCY_STREAM_CLOSE].total_ns, 30 * US);
	assert_int_equal(st->classes[LATENCY_OTHER].total_ns, 40 * US);
	/* other has the most: it is the cause, with no calls */
	assert_int_equal(st->nworst, 1);
	assert_int_equal(st->worst[0].cause, LATENCY_OTHER);
	assert_int_equal(st->worst[0].cause_ns, 40 * US);
}

static void test_cause_is_the_class_with_most_time(void **state)
{
	(void)state;
	uint64_t t = 10 * MS;
	latency_iteration_start_at(t);
	/* three module sections: 2 + 7 + 3 ms; one stream read of 9 ms */
	latency_begin_at(LATENCY_MODULE, "push", t);
	latency_end_at(t + 2 * MS);
	latency_begin_at(LATENCY_MODULE, "mam", t + 2 * MS);
	latency_end_at(t + 9 * MS);
	latency_begin_at(LATENCY_MODULE, "offline", t + 9 * MS);
	latency_end_at(t + 12 * MS);
	latency_begin_at(LATENCY_STREAM_READ, NULL, t + 12 * MS);
	latency_end_at(t + 21 * MS);
	latency_iteration_end_at(t + 21 * MS);

	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->nworst, 1);
	const struct latency_event *e = &st->worst[0];
	assert_int_equal(e->busy_ns, 21 * MS);
	assert_int_equal(e->cause, LATENCY_MODULE);
	assert_int_equal(e->cause_ns, 12 * MS);
	assert_int_equal(e->cause_calls, 3);
	assert_string_equal(e->name, "mam");
	assert_int_equal(st->classes[LATENCY_MODULE].max_ns, 7 * MS);
	assert_string_equal(st->classes[LATENCY_MODULE].max_name, "mam");
	assert_int_equal(st->classes[LATENCY_STREAM_READ].total_ns, 9 * MS);
	assert_int_equal(st->classes[LATENCY_OTHER].total_ns, 0);
	assert_int_equal(st->classes[LATENCY_MODULE].max_calls, 3);
	assert_int_equal(st->classes[LATENCY_STREAM_READ].max_calls, 1);
}

/* A TLS handshake step nested in a stream read counts in its own class;
 * max_calls keeps the most sections of a class in one iteration. */
static void test_handshakes_per_iteration(void **state)
{
	(void)state;
	uint64_t t = 10 * MS;
	for (unsigned steps = 1; steps <= 3; steps += 2) {
		latency_iteration_start_at(t);
		for (unsigned i = 0; i < steps; i++) {
			latency_begin_at(LATENCY_STREAM_READ, NULL, t);
			latency_begin_at(LATENCY_TLS_HANDSHAKE, NULL, t + 10 * US);
			latency_end_at(t + 510 * US);
			latency_end_at(t + 520 * US);
			t += 520 * US;
		}
		latency_iteration_end_at(t);
		t += MS;
	}
	latency_iteration_start_at(t); /* one with none */
	latency_iteration_end_at(t + 5 * US);

	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->classes[LATENCY_TLS_HANDSHAKE].calls, 4);
	assert_int_equal(st->classes[LATENCY_TLS_HANDSHAKE].max_calls, 3);
	assert_int_equal(st->classes[LATENCY_TLS_HANDSHAKE].total_ns, 4 * 500 * US);
	assert_int_equal(st->classes[LATENCY_STREAM_READ].total_ns, 4 * 20 * US);
	assert_int_equal(st->worst[0].cause, LATENCY_TLS_HANDSHAKE);
	assert_int_equal(st->worst[0].cause_calls, 3);
	assert_string_equal(latency_class_name(LATENCY_TLS_HANDSHAKE), "tls-handshake");

	struct buf out = { 0 };
	latency_format_report(st, &out);
	assert_non_null(strstr(out.data, "most sections in one iteration"));
	assert_non_null(strstr(out.data, "  tls-handshake      0.002 s            4      3  500 us\n"));
	buf_free(&out);
}

static void test_histogram_and_quantiles(void **state)
{
	(void)state;
	assert_int_equal(latency_bucket_floor_us(0), 0);
	assert_int_equal(latency_bucket_floor_us(1), 16);
	assert_int_equal(latency_bucket_floor_us(2), 32);

	iteration(15 * US, LATENCY_TIMER, NULL, 1 * US);   /* bucket 0 */
	iteration(16 * US, LATENCY_TIMER, NULL, 1 * US);   /* bucket 1 */
	iteration(31 * US, LATENCY_TIMER, NULL, 1 * US);   /* bucket 1 */
	iteration(32 * US, LATENCY_TIMER, NULL, 1 * US);   /* bucket 2 */
	iteration(5000 * MS, LATENCY_TIMER, NULL, 1 * US); /* the last */
	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->iterations, 5);
	assert_int_equal(st->buckets[0], 1);
	assert_int_equal(st->buckets[1], 2);
	assert_int_equal(st->buckets[2], 1);
	assert_int_equal(st->buckets[LATENCY_BUCKETS - 1], 1);
	uint64_t sum = 0;
	for (unsigned i = 0; i < LATENCY_BUCKETS; i++)
		sum += st->buckets[i];
	assert_int_equal(sum, 5);

	assert_int_equal(latency_quantile_us(st, 0.2), 16);
	assert_int_equal(latency_quantile_us(st, 0.6), 32);
	assert_int_equal(latency_quantile_us(st, 0.8), 64);
	/* beyond the last edge: the longest iteration */
	assert_int_equal(latency_quantile_us(st, 1.0), 5000 * 1000);

	latency_reset();
	assert_int_equal(latency_quantile_us(latency_stats(), 0.99), 0);
}

static void test_worst_list_is_sorted_and_bounded(void **state)
{
	(void)state;
	/* 30 iterations of 1..30 ms in a shuffled order */
	for (unsigned i = 0; i < 30; i++) {
		unsigned ms = (i * 7) % 30 + 1;
		char name[16];
		snprintf(name, sizeof(name), "m%u", ms);
		iteration(ms * MS, LATENCY_MODULE, name, ms * MS - 1 * US);
	}
	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->nworst, LATENCY_WORST);
	for (unsigned i = 0; i < LATENCY_WORST; i++) {
		char name[16];
		snprintf(name, sizeof(name), "m%u", 30 - i);
		assert_int_equal(st->worst[i].busy_ns, (30 - i) * MS);
		assert_string_equal(st->worst[i].name, name);
		assert_int_equal(st->worst[i].cause, LATENCY_MODULE);
		assert_true(st->worst[i].when_ms > 0);
	}
	/* one shorter than all of them changes nothing */
	iteration(1 * MS, LATENCY_TIMER, NULL, 1 * US);
	assert_int_equal(st->worst[LATENCY_WORST - 1].busy_ns, (30 - LATENCY_WORST + 1) * MS);
	assert_int_equal(st->iterations, 31);
}

static void test_threshold_counts_and_warns(void **state)
{
	(void)state;
	char path[] = "/tmp/test-latency-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	const char *error = NULL;
	assert_int_equal(log_open_file(path, &error), 0);

	latency_set_threshold(0.020);
	assert_true(latency_threshold() > 0.0199 && latency_threshold() < 0.0201);
	iteration(19 * MS, LATENCY_MODULE, "mam", 18 * MS);
	iteration(25 * MS, LATENCY_MODULE, "pubsub", 24 * MS);
	/* within the same second: counted, not logged */
	iteration(30 * MS, LATENCY_WORKER, "sql", 29 * MS);
	clock_ns += 2000 * MS;
	iteration(40 * MS, LATENCY_STREAM_READ, "tls-handshake", 39 * MS);
	assert_int_equal(latency_stats()->over, 3);
	assert_int_equal(log_open_file(NULL, NULL), 0);

	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char text[4096];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(path);
	assert_non_null(strstr(text, "busy 25.0 ms ("));
	assert_non_null(strstr(text, "module/pubsub: 24.0 ms in 1 call"));
	assert_null(strstr(text, "mam"));
	assert_null(strstr(text, "worker/sql"));
	assert_non_null(strstr(text, "stream-read/tls-handshake: 39.0 ms in 1 call"));
	assert_non_null(strstr(text, "and 1 more"));

	/* 0: never warn, never count */
	latency_set_threshold(0);
	iteration(90 * MS, LATENCY_TIMER, NULL, 1 * MS);
	assert_int_equal(latency_stats()->over, 3);
}

static void test_reset_and_unbalanced_end(void **state)
{
	(void)state;
	iteration(5 * MS, LATENCY_CONTROL, NULL, 4 * MS);
	latency_end_at(clock_ns); /* one end too many: ignored */
	iteration(6 * MS, LATENCY_CONTROL, NULL, 5 * MS);
	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->iterations, 2);
	assert_int_equal(st->classes[LATENCY_CONTROL].calls, 2);
	assert_int_equal(st->classes[LATENCY_CONTROL].total_ns, 9 * MS);
	latency_reset();
	assert_int_equal(st->iterations, 0);
	assert_int_equal(st->nworst, 0);
	assert_int_equal(st->classes[LATENCY_CONTROL].calls, 0);
	/* sections outside an iteration are not counted in the next one */
	latency_begin_at(LATENCY_ACCEPT, NULL, clock_ns);
	latency_end_at(clock_ns + 3 * MS);
	clock_ns += 4 * MS;
	iteration(1 * MS, LATENCY_TIMER, NULL, 1 * MS);
	assert_int_equal(st->classes[LATENCY_ACCEPT].calls, 0);
	assert_int_equal(st->classes[LATENCY_TIMER].calls, 1);
}

static void test_deep_nesting_stays_balanced(void **state)
{
	(void)state;
	uint64_t t = clock_ns;
	latency_iteration_start_at(t);
	for (unsigned i = 0; i < LATENCY_MAX_DEPTH + 4; i++)
		latency_begin_at(LATENCY_WORKER, "deep", t + i * US);
	for (unsigned i = 0; i < LATENCY_MAX_DEPTH + 4; i++)
		latency_end_at(t + (LATENCY_MAX_DEPTH + 4 + i) * US);
	latency_iteration_end_at(t + 100 * US);
	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->classes[LATENCY_WORKER].calls, LATENCY_MAX_DEPTH);
	uint64_t all = 0;
	for (unsigned c = 0; c < LATENCY_CLASS_COUNT; c++)
		all += st->classes[c].total_ns;
	assert_int_equal(all, 100 * US);
	/* the next iteration starts clean */
	clock_ns = t + 200 * US;
	iteration(10 * US, LATENCY_TIMER, NULL, 10 * US);
	assert_int_equal(st->classes[LATENCY_WORKER].calls, LATENCY_MAX_DEPTH);
	assert_int_equal(st->classes[LATENCY_TIMER].total_ns, 10 * US);
}

static void test_report_text(void **state)
{
	(void)state;
	latency_set_threshold(0.020);
	iteration(50 * US, LATENCY_STREAM_READ, NULL, 40 * US);
	iteration(3 * MS, LATENCY_MODULE, "a-very-long-module-name-that-is-cut", 2 * MS);
	struct buf b = { 0 };
	latency_format_summary(latency_stats(), &b);
	assert_non_null(strstr(b.data, "loop: 2 iterations"));
	assert_non_null(strstr(b.data, "longest 3.0 ms (module/a-very-long-module-name)"));
	assert_non_null(strstr(b.data, "0 over 20.0 ms"));
	buf_reset(&b);
	latency_format_report(latency_stats(), &b);
	assert_non_null(strstr(b.data, "iterations: 2\n"));
	assert_non_null(strstr(b.data, "< 64 us"));
	assert_non_null(strstr(b.data, "< 4.1 ms"));
	assert_non_null(strstr(b.data, "module/a-very-long-module-name 2.0 ms in 1 call\n"));
	assert_non_null(strstr(b.data, "stream-read"));
	assert_non_null(strstr(b.data, "  cpu "));
	buf_free(&b);

	/* without the thread's usage, the worst iterations leave it out */
	latency_reset();
	latency_set_usage(false);
	iteration(3 * MS, LATENCY_MODULE, "mam", 2 * MS);
	assert_false(latency_stats()->worst[0].usage);
	latency_format_report(latency_stats(), &b);
	assert_null(strstr(b.data, "  cpu "));
	assert_non_null(strstr(b.data, "  module/mam 2.0 ms in 1 call\n"));
	buf_free(&b);
	latency_set_usage(true);
	latency_set_threshold(0);
}

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* How long one section of class c named name takes on the real clock. */
static uint64_t timed_section(enum latency_class c, const char *name)
{
	uint64_t t = mono();
	latency_begin(c, name);
	latency_end();
	return mono() - t;
}

static void test_stall_hook(void **state)
{
	(void)state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	setenv("PARLEY_TEST_LATENCY_STALL", "module/mam:30", 1);
	latency_attach(loop, 0);
	unsetenv("PARLEY_TEST_LATENCY_STALL");
	assert_true(timed_section(LATENCY_MODULE, "pubsub") < 30 * MS); /* another name */
	assert_true(timed_section(LATENCY_TIMER, "mam") < 30 * MS);     /* another class */
	assert_true(timed_section(LATENCY_MODULE, "mam") >= 30 * MS);

	/* the sleep is inside the section: the monitor names it */
	latency_iteration_start_at(mono());
	latency_begin(LATENCY_MODULE, "mam");
	latency_end();
	latency_begin(LATENCY_MODULE, "pubsub");
	latency_end();
	latency_iteration_end_at(mono());
	const struct latency_stats *st = latency_stats();
	assert_int_equal(st->nworst, 1);
	assert_int_equal(st->worst[0].cause, LATENCY_MODULE);
	assert_string_equal(st->worst[0].name, "mam");
	assert_true(st->worst[0].cause_ns >= 30 * MS);

	/* a whole class */
	setenv("PARLEY_TEST_LATENCY_STALL", "stream-read:30", 1);
	latency_attach(loop, 0);
	assert_true(timed_section(LATENCY_STREAM_READ, NULL) >= 30 * MS);
	assert_true(timed_section(LATENCY_STREAM_FLUSH, NULL) < 30 * MS);

	/* malformed values are ignored */
	static const char *const bad[] = { "no-such-class:30", "stream-read", "stream-read:x",
		                           "stream-read:0", ":30" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("PARLEY_TEST_LATENCY_STALL", bad[i], 1);
		latency_attach(loop, 0);
		assert_true(timed_section(LATENCY_STREAM_READ, NULL) < 30 * MS);
	}
	unsetenv("PARLEY_TEST_LATENCY_STALL");
	latency_attach(loop, 0);
	ev_loop_destroy(loop);
}

/* The monitor on a real loop: a timer that takes 25 ms is an iteration of
 * at least 25 ms whose cause is that timer's class (the timer fires twice:
 * an iteration is counted when the loop goes back to sleep). */
static void slow_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	static int fired;
	if (fired++ > 0) {
		ev_timer_stop(loop, w);
		fired = 0;
		return;
	}
	latency_begin(LATENCY_TIMER, "slow");
	usleep(25000);
	latency_end();
}

static void test_real_loop(void **state)
{
	(void)state;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	latency_attach(loop, 0);
	ev_timer t;
	ev_timer_init(&t, slow_timer_cb, 0.01, 0.01);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	const struct latency_stats *st = latency_stats();
	assert_true(st->iterations >= 1);
	assert_true(st->max_ns >= 25 * MS);
	assert_true(st->idle_ns > 0);
	assert_int_equal(st->worst[0].cause, LATENCY_TIMER);
	assert_string_equal(st->worst[0].name, "slow");
	/* the timer slept: the thread blocked and was hardly on the CPU */
	assert_true(st->worst[0].usage);
	assert_true(st->worst[0].blocked >= 1);
	assert_true(st->worst[0].cpu_ns < 20 * MS);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_class_names, setup),
		cmocka_unit_test_setup(test_nested_sections_split_the_time, setup),
		cmocka_unit_test_setup(test_cause_is_the_class_with_most_time, setup),
		cmocka_unit_test_setup(test_handshakes_per_iteration, setup),
		cmocka_unit_test_setup(test_histogram_and_quantiles, setup),
		cmocka_unit_test_setup(test_worst_list_is_sorted_and_bounded, setup),
		cmocka_unit_test_setup(test_threshold_counts_and_warns, setup),
		cmocka_unit_test_setup(test_reset_and_unbalanced_end, setup),
		cmocka_unit_test_setup(test_deep_nesting_stays_balanced, setup),
		cmocka_unit_test_setup(test_report_text, setup),
		cmocka_unit_test_setup(test_stall_hook, setup),
		cmocka_unit_test_setup(test_real_loop, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
