/*
 * The loop latency monitor (see latency.h).  Loop thread only.
 *
 * Invariants:
 * - A section costs two clock reads: latency_begin reads the clock once
 *   (the end of the enclosing section's running part and the start of the
 *   new one), latency_end once (the end of the section and the resumption
 *   of the enclosing one); so the time between two reads always belongs to
 *   exactly one section, or to none ("other").
 * - A section's name is copied when it begins (a worker group may be freed
 *   by one of its own completions).
 * - The per-iteration figures of a class are cleared lazily: a bit in
 *   `touched` says they belong to this iteration.  Nothing is allocated
 *   after latency_attach.
 * - The histogram, the class totals and the worst list are updated once per
 *   iteration, at its end (the release callback, just before the poll).
 * - An iteration costs two monotonic clock reads and (unless turned off)
 *   one getrusage at its start, and a second getrusage at its end only
 *   when it joins the worst list or passes the threshold.
 */
#include "latency.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define WARN_EVERY_NS 1000000000ull /* at most one warning line a second */

static const char *const class_names[LATENCY_CLASS_COUNT] = {
	[LATENCY_STREAM_READ] = "stream-read",
	[LATENCY_STREAM_WRITE] = "stream-write",
	[LATENCY_STREAM_FLUSH] = "stream-flush",
	[LATENCY_STREAM_CLOSE] = "stream-close",
	[LATENCY_ACCEPT] = "accept",
	[LATENCY_TIMER] = "timer",
	[LATENCY_WORKER] = "worker",
	[LATENCY_CONTROL] = "control",
	[LATENCY_MODULE] = "module",
	[LATENCY_AUTH] = "auth",
	[LATENCY_TLS_HANDSHAKE] = "tls-handshake",
	[LATENCY_OTHER] = "other",
};

struct open_section {
	enum latency_class c;
	uint64_t ns; /* running time so far, nested sections excluded */
	char name[LATENCY_NAME_MAX];
};

struct iter_class {
	uint64_t ns, max_ns;
	uint32_t calls;
	char name[LATENCY_NAME_MAX]; /* of the longest section */
};

static struct latency_stats stats;
static uint64_t threshold_ns;
static bool usage_on = true;

/* The current iteration. */
static bool in_iteration;
static uint64_t iter_start, idle_start;
static struct thread_usage {
	uint64_t cpu_ns;
	long blocked, preempted;
} iter_usage;
static bool iter_usage_read; /* iter_usage is this iteration's */
static uint64_t last;        /* the last clock read of a section boundary */
static struct open_section stack[LATENCY_MAX_DEPTH];
static unsigned depth; /* may exceed LATENCY_MAX_DEPTH: those levels are not tracked */
static struct iter_class iter[LATENCY_CLASS_COUNT];
static unsigned touched; /* bit c: iter[c] belongs to this iteration */

/* Warnings. */
static uint64_t last_warning;
static unsigned warnings_left_out;

/* The test hook. */
static int stall_class = -1;
static char stall_name[LATENCY_NAME_MAX];
static unsigned stall_ms;

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct thread_usage thread_usage(void)
{
	struct rusage ru;
	struct thread_usage u = { 0 };
	if (getrusage(RUSAGE_THREAD, &ru) == 0) {
		u.cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
		           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
		u.blocked = ru.ru_nvcsw;
		u.preempted = ru.ru_nivcsw;
	}
	return u;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void copy_name(char *dst, const char *src)
{
	size_t i = 0;
	if (src != NULL)
		for (; i + 1 < LATENCY_NAME_MAX && src[i] != '\0'; i++)
			dst[i] = src[i];
	dst[i] = '\0';
}

const char *latency_class_name(enum latency_class c)
{
	return (unsigned)c < LATENCY_CLASS_COUNT ? class_names[c] : "?";
}

int latency_class_parse(const char *name, size_t len)
{
	for (int i = 0; i < LATENCY_CLASS_COUNT; i++)
		if (strlen(class_names[i]) == len && memcmp(class_names[i], name, len) == 0)
			return i;
	return -1;
}

/* ---- sections ------------------------------------------------------------------ */

/* The figures of class c in this iteration (cleared when first used). */
static struct iter_class *iter_class(enum latency_class c)
{
	struct iter_class *ic = &iter[c];
	if ((touched & (1u << c)) == 0) {
		touched |= 1u << c;
		ic->ns = ic->max_ns = 0;
		ic->calls = 0;
		ic->name[0] = '\0';
	}
	return ic;
}

static void account(enum latency_class c, const char *name, uint64_t ns)
{
	struct iter_class *ic = iter_class(c);
	ic->ns += ns;
	ic->calls++;
	if (ns > ic->max_ns || ic->calls == 1) {
		ic->max_ns = ns;
		copy_name(ic->name, name);
	}
}

static void stall(enum latency_class c, const char *name)
{
	if ((int)c != stall_class ||
	    (stall_name[0] != '\0' && (name == NULL || strcmp(name, stall_name) != 0)))
		return;
	struct timespec ts = { .tv_sec = stall_ms / 1000, .tv_nsec = (long)(stall_ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The innermost tracked section: deeper ones count in it. */
static struct open_section *innermost(void)
{
	return &stack[(depth < LATENCY_MAX_DEPTH ? depth : LATENCY_MAX_DEPTH) - 1];
}

void latency_begin_at(enum latency_class c, const char *name, uint64_t now)
{
	if (depth > 0)
		innermost()->ns += now - last;
	if (depth < LATENCY_MAX_DEPTH) {
		stack[depth].c = c;
		stack[depth].ns = 0;
		copy_name(stack[depth].name, name);
	}
	depth++;
	last = now;
}

void latency_end_at(uint64_t now)
{
	if (depth == 0)
		return; /* unbalanced: ignore rather than corrupt the stack */
	innermost()->ns += now - last;
	last = now;
	depth--;
	if (depth < LATENCY_MAX_DEPTH)
		account(stack[depth].c, stack[depth].name, stack[depth].ns);
}

void latency_begin(enum latency_class c, const char *name)
{
	latency_begin_at(c, name, mono_ns());
	if (__builtin_expect(stall_ms != 0, 0))
		stall(c, name);
}

void latency_end(void)
{
	latency_end_at(mono_ns());
}

/* ---- iterations ------------------------------------------------------------------ */

static unsigned bucket_of(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;
	while (b + 1 < LATENCY_BUCKETS && us >= (16ull << b))
		b++;
	return b;
}

uint64_t latency_bucket_floor_us(unsigned i)
{
	return i == 0 ? 0 : 16ull << (i - 1);
}

uint64_t latency_quantile_us(const struct latency_stats *st, double q)
{
	if (st->iterations == 0)
		return 0;
	uint64_t want = (uint64_t)((double)st->iterations * q);
	if (want == 0)
		want = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
		seen += st->buckets[i];
		if (seen >= want)
			return i + 1 < LATENCY_BUCKETS ? 16ull << i : (st->max_ns + 999) / 1000;
	}
	return (st->max_ns + 999) / 1000;
}

static void cause_label(const struct latency_event *e, char *out, size_t size)
{
	snprintf(out, size, "%s%s%s", latency_class_name(e->cause), e->name[0] != '\0' ? "/" : "", e->name);
}

/* " in 3 calls"; nothing for "other", which is not made of calls. */
static const char *calls_text(const struct latency_event *e)
{
	static char text[32];
	if (e->cause == LATENCY_OTHER)
		return "";
	snprintf(text, sizeof(text), " in %u call%s", e->cause_calls, e->cause_calls == 1 ? "" : "s");
	return text;
}

static void warn(const struct latency_event *e, uint64_t now)
{
	if (last_warning != 0 && now - last_warning < WARN_EVERY_NS) {
		warnings_left_out++;
		return;
	}
	char label[64], more[64] = "", usage[80] = "";
	cause_label(e, label, sizeof(label));
	if (warnings_left_out > 0)
		snprintf(more, sizeof(more), " (and %u more over it since the last warning)",
		         warnings_left_out);
	if (e->usage)
		snprintf(usage, sizeof(usage), " (%.1f ms on the CPU, blocked %u, preempted %u)",
		         e->cpu_ns / 1e6, e->blocked, e->preempted);
	log_warning("loop stalled: one iteration busy %.1f ms%s, over the %.1f ms threshold; most of it "
	            "in %s: %.1f ms%s%s",
	            e->busy_ns / 1e6, usage, threshold_ns / 1e6, label, e->cause_ns / 1e6, calls_text(e),
	            more);
	last_warning = now;
	warnings_left_out = 0;
}

static void keep_worst(const struct latency_event *e)
{
	unsigned n = stats.nworst;
	if (n == LATENCY_WORST && e->busy_ns <= stats.worst[n - 1].busy_ns)
		return;
	unsigned i = n < LATENCY_WORST ? n : n - 1;
	while (i > 0 && stats.worst[i - 1].busy_ns < e->busy_ns) {
		stats.worst[i] = stats.worst[i - 1];
		i--;
	}
	stats.worst[i] = *e;
	if (n < LATENCY_WORST)
		stats.nworst++;
}

void latency_iteration_start_at(uint64_t now)
{
	if (idle_start != 0 && now >= idle_start)
		stats.idle_ns += now - idle_start;
	in_iteration = true;
	iter_start = now;
	if (usage_on)
		iter_usage = thread_usage();
	iter_usage_read = usage_on;
	last = now; /* a section left open across a nested loop's poll */
	touched = 0;
}

void latency_iteration_end_at(uint64_t now)
{
	idle_start = now;
	if (!in_iteration) {
		touched = 0;
		return;
	}
	in_iteration = false;
	uint64_t busy = now - iter_start, marked = 0;
	for (unsigned c = 0; c < LATENCY_CLASS_COUNT; c++)
		if (touched & (1u << c))
			marked += iter[c].ns;
	/* Sections still open (a nested loop) end here for this iteration. */
	if (depth > 0)
		marked += now - last;
	iter_class(LATENCY_OTHER)->ns += busy > marked ? busy - marked : 0;

	enum latency_class cause = LATENCY_OTHER;
	for (unsigned c = 0; c < LATENCY_CLASS_COUNT; c++) {
		if ((touched & (1u << c)) == 0)
			continue;
		struct iter_class *ic = &iter[c];
		struct latency_class_stats *cs = &stats.classes[c];
		cs->total_ns += ic->ns;
		cs->calls += ic->calls;
		if (ic->calls > cs->max_calls)
			cs->max_calls = ic->calls;
		if (ic->max_ns > cs->max_ns) {
			cs->max_ns = ic->max_ns;
			memcpy(cs->max_name, ic->name, sizeof(cs->max_name));
		}
		if (ic->ns > iter[cause].ns)
			cause = (enum latency_class)c;
	}
	stats.iterations++;
	stats.busy_ns += busy;
	if (busy > stats.max_ns)
		stats.max_ns = busy;
	stats.buckets[bucket_of(busy)]++;

	bool over = threshold_ns > 0 && busy > threshold_ns;
	if (over)
		stats.over++;
	if (over || stats.nworst < LATENCY_WORST || busy > stats.worst[LATENCY_WORST - 1].busy_ns) {
		struct latency_event e = {
			.when_ms = (int64_t)(wall_now() * 1000),
			.busy_ns = busy,
			.cause_ns = iter[cause].ns,
			.cause_calls = iter[cause].calls,
			.cause = cause,
		};
		memcpy(e.name, iter[cause].name, sizeof(e.name));
		if (iter_usage_read) {
			struct thread_usage u = thread_usage();
			e.usage = true;
			e.cpu_ns = u.cpu_ns - iter_usage.cpu_ns;
			e.blocked = (uint32_t)(u.blocked - iter_usage.blocked);
			e.preempted = (uint32_t)(u.preempted - iter_usage.preempted);
		}
		keep_worst(&e);
		if (over)
			warn(&e, now);
	}
	touched = 0;
}

static void release_cb(struct ev_loop *loop)
{
	(void)loop;
	latency_iteration_end_at(mono_ns());
}

static void acquire_cb(struct ev_loop *loop)
{
	(void)loop;
	latency_iteration_start_at(mono_ns());
}

/* ---- set-up and figures -------------------------------------------------------------- */

static void read_test_hook(void)
{
	const char *v = getenv("PARLEY_TEST_LATENCY_STALL");
	stall_class = -1;
	stall_ms = 0;
	stall_name[0] = '\0';
	if (v == NULL || *v == '\0')
		return;
	const char *colon = strrchr(v, ':');
	const char *slash = memchr(v, '/', colon != NULL ? (size_t)(colon - v) : strlen(v));
	char *end;
	long ms = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
	int c = latency_class_parse(v, (size_t)((slash != NULL ? slash : colon != NULL ? colon : v) - v));
	if (colon == NULL || *end != '\0' || ms <= 0 || ms > 10000 || c < 0) {
		log_warning("PARLEY_TEST_LATENCY_STALL=%s: expected CLASS[/NAME]:MS; ignored", v);
		return;
	}
	if (slash != NULL) {
		size_t n = (size_t)(colon - slash - 1);
		if (n >= LATENCY_NAME_MAX)
			n = LATENCY_NAME_MAX - 1;
		memcpy(stall_name, slash + 1, n);
		stall_name[n] = '\0';
	}
	stall_class = c;
	stall_ms = (unsigned)ms;
	log_warning("test hook: every %s%s%s section sleeps %u ms (PARLEY_TEST_LATENCY_STALL)",
	            class_names[c], stall_name[0] != '\0' ? "/" : "", stall_name, stall_ms);
}

void latency_attach(struct ev_loop *loop, double threshold)
{
	latency_set_threshold(threshold);
	read_test_hook();
	latency_reset();
	ev_set_loop_release_cb(loop, release_cb, acquire_cb);
}

void latency_set_threshold(double threshold)
{
	threshold_ns = threshold > 0 ? (uint64_t)(threshold * 1e9) : 0;
}

void latency_set_usage(bool on)
{
	usage_on = on;
}

double latency_threshold(void)
{
	return threshold_ns / 1e9;
}

const struct latency_stats *latency_stats(void)
{
	return &stats;
}

void latency_reset(void)
{
	memset(&stats, 0, sizeof(stats));
	stats.since = wall_now();
	last_warning = 0;
	warnings_left_out = 0;
}

/* ---- text ------------------------------------------------------------------------------ */

static void format_us(struct buf *out, uint64_t us)
{
	if (us < 1000)
		buf_printf(out, "%llu us", (unsigned long long)us);
	else if (us < 10000000)
		buf_printf(out, "%.1f ms", us / 1000.0);
	else
		buf_printf(out, "%.1f s", us / 1e6);
}

static void format_time(struct buf *out, double t)
{
	time_t sec = (time_t)t;
	struct tm tm;
	char when[32];
	gmtime_r(&sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	buf_printf(out, "%s.%03d UTC", when, (int)((t - (double)sec) * 1000));
}

void latency_format_summary(const struct latency_stats *st, struct buf *out)
{
	uint64_t all = st->busy_ns + st->idle_ns;
	buf_printf(out, "loop: %llu iterations, busy %.1f%%, p99 < ", (unsigned long long)st->iterations,
	           all > 0 ? 100.0 * st->busy_ns / all : 0.0);
	format_us(out, latency_quantile_us(st, 0.99));
	buf_append_str(out, ", longest ");
	format_us(out, st->max_ns / 1000);
	if (st->nworst > 0) {
		char label[64];
		cause_label(&st->worst[0], label, sizeof(label));
		buf_printf(out, " (%s)", label);
	}
	buf_printf(out, ", %llu over %.1f ms\n", (unsigned long long)st->over, threshold_ns / 1e6);
}

void latency_format_report(const struct latency_stats *st, struct buf *out)
{
	uint64_t all = st->busy_ns + st->idle_ns;
	buf_append_str(out, "since: ");
	format_time(out, st->since);
	buf_printf(out, "\niterations: %llu\nbusy: %.3f s (%.2f%% of the time)\nlongest: ",
	           (unsigned long long)st->iterations, st->busy_ns / 1e9,
	           all > 0 ? 100.0 * st->busy_ns / all : 0.0);
	format_us(out, st->max_ns / 1000);
	buf_printf(out, "\nthreshold: %.1f ms (%llu iterations over it)\n", threshold_ns / 1e6,
	           (unsigned long long)st->over);
	static const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
	static const char *const qnames[] = { "p50", "p90", "p99", "p99.9" };
	for (size_t i = 0; i < ARRAY_SIZE(qs); i++) {
		buf_printf(out, "%s%s < ", i == 0 ? "" : ", ", qnames[i]);
		format_us(out, latency_quantile_us(st, qs[i]));
	}
	buf_append_str(out, "\n\nbusy time per iteration:\n");
	unsigned top = 0;
	uint64_t most = 0;
	for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
		if (st->buckets[i] > 0)
			top = i;
		if (st->buckets[i] > most)
			most = st->buckets[i];
	}
	for (unsigned i = 0; i <= top && st->iterations > 0; i++) {
		struct buf edge = { 0 };
		if (i + 1 < LATENCY_BUCKETS) {
			buf_append_str(&edge, "< ");
			format_us(&edge, 16ull << i);
		} else {
			buf_append_str(&edge, ">= ");
			format_us(&edge, latency_bucket_floor_us(i));
		}
		int bar = most > 0 ? (int)((st->buckets[i] * 40 + most - 1) / most) : 0;
		buf_printf(out, "  %-10s %12llu %.*s\n", edge.data, (unsigned long long)st->buckets[i], bar,
		           "########################################");
		buf_free(&edge);
	}
	buf_append_str(out, "\nper class (total, sections, most sections in one iteration, longest "
	                    "section):\n");
	for (unsigned c = 0; c < LATENCY_CLASS_COUNT; c++) {
		const struct latency_class_stats *cs = &st->classes[c];
		if (cs->total_ns == 0 && cs->calls == 0)
			continue;
		buf_printf(out, "  %-13s %10.3f s %12llu %6u  ", class_names[c], cs->total_ns / 1e9,
		           (unsigned long long)cs->calls, cs->max_calls);
		format_us(out, cs->max_ns / 1000);
		if (cs->max_name[0] != '\0')
			buf_printf(out, " (%s)", cs->max_name);
		buf_append_str(out, "\n");
	}
	buf_append_str(out, "\nworst iterations (busy time; the loop thread's CPU time and how often it "
	                    "blocked or was preempted; the class that used most of it):\n");
	if (st->nworst == 0)
		buf_append_str(out, "  none\n");
	for (unsigned i = 0; i < st->nworst; i++) {
		const struct latency_event *e = &st->worst[i];
		char label[64];
		cause_label(e, label, sizeof(label));
		buf_append_str(out, "  ");
		format_time(out, e->when_ms / 1000.0);
		buf_append_str(out, "  ");
		format_us(out, e->busy_ns / 1000);
		if (e->usage) {
			buf_append_str(out, "  cpu ");
			format_us(out, e->cpu_ns / 1000);
			buf_printf(out, " blocked %u preempted %u", e->blocked, e->preempted);
		}
		buf_printf(out, "  %s ", label);
		format_us(out, e->cause_ns / 1000);
		buf_printf(out, "%s\n", calls_text(e));
	}
}
