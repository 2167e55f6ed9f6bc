/*
 * Latency of message archive queries through the storage interface: opens
 * a store (SQLite file or PostgreSQL DSN) that bench/mam-query.sh filled,
 * runs queries one after the other (each submitted, then the loop run
 * until its callback), and prints the 50th and 99th percentiles and the
 * maximum of the time from submission to the callback, per kind of query.
 *
 *   bench/mam-query sqlite PATH OWNER NPEERS [N]
 *   bench/mam-query pgsql DSN OWNER NPEERS [N]     (password: PGPASSWORD)
 *
 * The queries: a page of 50 messages filtered by 'with' (a random peer
 * among peer0..peer<NPEERS-1>@bench.local), forwards after a random id
 * of the archive's range and backwards from the newest (RSM <before/>),
 * the newest page of 50 with no filter, and the newest page of a
 * full-text search for a word in one body (a message's number) and for
 * a word in every body (n / 100 of those).  With WORD arguments after N,
 * only the newest page of a full-text search for each word, n times:
 *
 *   bench/mam-query pgsql DSN OWNER NPEERS N WORD...
 *
 * Loop thread only; the store's workers do the SQL.
 */
#include "storage/storage.h"
#include "lib/log.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wait {
	bool done;
	enum storage_result res;
	size_t count;
	int64_t first, last;
};

static void query_cb(enum storage_result res, const struct mam_message *msgs, size_t count, bool complete,
                     void *ctx)
{
	struct wait *w = ctx;
	w->done = true;
	w->res = res;
	w->count = count;
	w->first = count > 0 ? msgs[0].id : 0;
	w->last = count > 0 ? msgs[count - 1].id : 0;
	(void)complete;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One query to its callback: its time in milliseconds, or -1. */
static double timed_query(struct ev_loop *loop, struct storage *st, const char *owner,
                          const struct mam_query *q, size_t *count_r)
{
	struct wait w = { 0 };
	double t0 = now_ms();
	storage_mam_query(st, "bench.local", owner, q, query_cb, &w);
	while (!w.done)
		ev_run(loop, EVRUN_ONCE);
	double t = now_ms() - t0;
	*count_r = w.count;
	return w.res == STORAGE_OK ? t : -1;
}

static void report(const char *what, double *t, size_t n, size_t rows)
{
	qsort(t, n, sizeof(*t), cmp_double);
	printf("%-34s n=%zu rows/query=%.1f p50=%.2f ms p99=%.2f ms max=%.2f ms\n", what, n,
	       (double)rows / (double)n, t[n / 2], t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], t[n - 1]);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s sqlite|pgsql PATH|DSN OWNER NPEERS [N]\n", argv[0]);
		return 2;
	}
	log_set_level(LOG_LEVEL_WARNING);
	const char *owner = argv[3];
	unsigned npeers = (unsigned)atoi(argv[4]);
	size_t n = argc > 5 ? (size_t)atol(argv[5]) : 2000;
	struct storage_config cfg;
	storage_config_defaults(&cfg);
	cfg.driver = argv[1];
	if (strcmp(argv[1], "sqlite") == 0)
		cfg.path = argv[2];
	else {
		cfg.dsn = argv[2];
		cfg.password = getenv("PGPASSWORD");
	}
	cfg.pool_size = 2;
	struct ev_loop *loop = ev_default_loop(0);
	struct storage *st = NULL;
	char *err = NULL;
	if (storage_open(loop, &cfg, &st, &err) < 0) {
		fprintf(stderr, "open: %s\n", err);
		return 1;
	}
	/* The archive's id range, from the oldest and the newest page. */
	struct mam_query q = { .max = 1 };
	struct wait w = { 0 };
	storage_mam_query(st, "bench.local", owner, &q, query_cb, &w);
	while (!w.done)
		ev_run(loop, EVRUN_ONCE);
	int64_t lo = w.first;
	q.backwards = true;
	memset(&w, 0, sizeof(w));
	storage_mam_query(st, "bench.local", owner, &q, query_cb, &w);
	while (!w.done)
		ev_run(loop, EVRUN_ONCE);
	int64_t hi = w.last;
	if (lo == 0 || hi <= lo) {
		fprintf(stderr, "the archive of %s is empty\n", owner);
		return 1;
	}
	printf("archive of %s: ids %lld..%lld\n", owner, (long long)lo, (long long)hi);

	double *t = calloc(n, sizeof(*t));
	if (argc > 6) {
		for (int a = 6; a < argc; a++) {
			struct mam_query qq = { .max = 50, .text = argv[a], .backwards = true };
			size_t rows = 0, c = 0, fails = 0;
			for (size_t i = 0; i < n + 1; i++) {
				double ms = timed_query(loop, st, owner, &qq, &c);
				if (i == 0)
					continue; /* warm-up: the statements prepared */
				fails += ms < 0;
				t[i - 1] = ms;
				rows += c;
			}
			char what[64];
			snprintf(what, sizeof(what), "text \"%.40s\"%s", argv[a], fails > 0 ? " FAILED" : "");
			report(what, t, n, rows);
		}
		free(t);
		storage_close(&st);
		return 0;
	}
	srandom(42);
	for (int kind = 0; kind < 5; kind++) {
		size_t rows = 0, fails = 0;
		/* a word in every body: fewer of those */
		size_t nk = kind == 4 ? (n / 100 > 0 ? n / 100 : 1) : n;
		/* warm-up: the statements prepared, the pages read once */
		for (size_t i = 0; i < nk + 50; i++) {
			char with[64], word[32];
			snprintf(with, sizeof(with), "peer%u@bench.local", (unsigned)(random() % npeers));
			snprintf(word, sizeof(word), "%lld",
			         (long long)(random() % ((hi - lo) / 1000 + 1) + 1));
			struct mam_query qq = { .max = 50 };
			if (kind == 0) {
				qq.with = with;
				qq.after_id =
				        lo + (int64_t)((double)(hi - lo) * ((double)random() / RAND_MAX));
			} else if (kind == 1) {
				qq.with = with;
				qq.backwards = true;
			} else if (kind == 2) {
				qq.backwards = true;
			} else if (kind == 3) {
				qq.text = word; /* a message's number: one body has it */
				qq.backwards = true;
			} else {
				qq.text = "garden";
				qq.backwards = true;
			}
			size_t c = 0;
			double ms = timed_query(loop, st, owner, &qq, &c);
			if (i < 50)
				continue;
			if (ms < 0)
				fails++;
			t[i - 50] = ms;
			rows += c;
		}
		static const char *const what[] = { "with, forwards after a random id", "with, newest page",
			                            "no filter, newest page", "text, a word in one body",
			                            "text, a word in every body" };
		if (fails > 0)
			printf("%s: %zu queries failed\n", what[kind], fails);
		report(what[kind], t, nk, rows);
	}
	free(t);
	storage_close(&st);
	return 0;
}
