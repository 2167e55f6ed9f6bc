/*
 * The loop latency monitor: how long each iteration of the event loop is
 * busy (from the moment the poll returns until the loop sleeps again), and
 * which class of callback used that time.
 *
 * Callbacks mark their work with latency_begin/latency_end; sections nest
 * (the inner section's time is taken out of the outer one's), and the time
 * of an iteration outside any section is counted as "other" (libev itself,
 * unmarked watchers).  Each section costs two clock reads and no
 * allocation; the per-iteration bookkeeping runs from libev's release and
 * acquire callbacks around the poll.
 *
 * Kept: a histogram of iteration busy times, per-class totals, the worst
 * LATENCY_WORST iterations with the loop thread's CPU time and context
 * switches in them (getrusage at each end of an iteration: a stall inside
 * Parley computes or blocks, one around it is preempted) and their cause (the class that used most of
 * the iteration, with the name of its longest section: the module of a
 * module timer, the worker group of a completion), and a warning in the
 * log when one iteration is busy longer than the threshold (at most one
 * line a second; the next line counts the ones left out).
 *
 * Loop thread only; the state is process-wide (one loop is monitored).
 *
 * Test hook: when the environment variable PARLEY_TEST_LATENCY_STALL is
 * set to "CLASS[/NAME]:MS" when latency_attach runs, every section of that
 * class (with that name) sleeps MS milliseconds inside the section.  It
 * exists for the integration tests; never set it in production.
 */
#ifndef PARLEY_LATENCY_H
#define PARLEY_LATENCY_H

#include "util.h"

#include <ev.h>
#include <stdint.h>

enum latency_class {
	LATENCY_STREAM_READ,   /* a stream's socket is readable: parse and handle stanzas */
	LATENCY_STREAM_WRITE,  /* a stream's socket, full before, takes output again */
	LATENCY_STREAM_FLUSH,  /* the prepare watcher writes the queued output */
	LATENCY_STREAM_CLOSE,  /* a closed stream's session ends (prepare watcher) */
	LATENCY_ACCEPT,        /* a listener accepts a connection */
	LATENCY_TIMER,         /* the server's own timers (name: which) */
	LATENCY_WORKER,        /* completions of blocking work (name: worker group) */
	LATENCY_CONTROL,       /* the control socket and its commands, signals */
	LATENCY_MODULE,        /* a module's timers and watchers (name: module) */
	LATENCY_AUTH,          /* external auth helper processes */
	LATENCY_TLS_HANDSHAKE, /* one step of a TLS handshake (inside a stream's read or write) */
	LATENCY_OTHER,         /* the rest of the iteration: libev, unmarked watchers */
	LATENCY_CLASS_COUNT
};

#define LATENCY_BUCKETS 18   /* bucket 0: < 16 us; bucket i: < 16 us << i; the last: the rest */
#define LATENCY_WORST 10     /* worst iterations kept */
#define LATENCY_NAME_MAX 24  /* section names are cut to this (with the NUL) */
#define LATENCY_MAX_DEPTH 16 /* nesting deeper than this is counted in the outer section */

/* One iteration among the worst. */
struct latency_event {
	int64_t when_ms;             /* wall clock, ms since the epoch */
	uint64_t busy_ns;            /* the iteration's busy time */
	uint64_t cpu_ns;             /* the loop thread's CPU time in it, as the kernel
	                              * accounts it (to about a scheduler tick): much
	                              * less than busy_ns means waiting, not computing */
	uint32_t blocked;            /* times the thread waited in the kernel (a blocking
	                              * call, a lock, a page read from disk) */
	uint32_t preempted;          /* times the system gave its CPU to another thread */
	bool usage;                  /* cpu_ns, blocked and preempted were measured */
	uint64_t cause_ns;           /* the time of the cause's class in it */
	uint32_t cause_calls;        /* sections of that class in it */
	enum latency_class cause;    /* the class with the most time */
	char name[LATENCY_NAME_MAX]; /* its longest section's name; "" if none */
};

struct latency_class_stats {
	uint64_t total_ns, calls, max_ns; /* max_ns: the longest one section */
	uint32_t max_calls;               /* the most sections of the class in one iteration */
	char max_name[LATENCY_NAME_MAX];
};

struct latency_stats {
	uint64_t iterations;
	uint64_t busy_ns, idle_ns; /* totals since the start or the reset */
	uint64_t max_ns;           /* the longest iteration */
	uint64_t over;             /* iterations over the threshold */
	uint64_t buckets[LATENCY_BUCKETS];
	struct latency_class_stats classes[LATENCY_CLASS_COUNT];
	struct latency_event worst[LATENCY_WORST]; /* longest first */
	unsigned nworst;
	double since; /* wall clock of the start or the reset */
};

/* Short name of a class ("stream-read"); latency_class_parse is the
 * reverse (-1 if unknown). */
const char *latency_class_name(enum latency_class c);
int latency_class_parse(const char *name, size_t len);

/* Monitor loop from now on (sets its release/acquire callbacks, reads the
 * test hook's environment variable).  threshold: seconds; 0 warns never. */
void latency_attach(struct ev_loop *loop, double threshold);
void latency_set_threshold(double threshold);
double latency_threshold(void);
/* Whether each iteration reads the loop thread's resource usage (CPU time,
 * blocked, preempted: one getrusage at its start); on until this is
 * called (parleyd calls it with the option latency_usage, off by
 * default).  Off, the worst iterations and the warning leave those figures
 * out. */
void latency_set_usage(bool on);

/* Mark a callback's work: every latency_begin is matched by one
 * latency_end on the same call path.  name may be NULL; it is copied (cut
 * to LATENCY_NAME_MAX - 1 bytes). */
void latency_begin(enum latency_class c, const char *name);
void latency_end(void);

/* The iteration boundaries: called by the loop's release and acquire
 * callbacks; exposed for the unit tests, which pass their own clock
 * (nanoseconds, monotonic) through the _at variants. */
void latency_iteration_start_at(uint64_t now_ns);
void latency_iteration_end_at(uint64_t now_ns);
void latency_begin_at(enum latency_class c, const char *name, uint64_t now_ns);
void latency_end_at(uint64_t now_ns);

const struct latency_stats *latency_stats(void);
/* Forget every figure (the threshold and the test hook stay). */
void latency_reset(void);

/* Lower edge of histogram bucket i, in microseconds. */
uint64_t latency_bucket_floor_us(unsigned i);
/* Upper edge of the bucket where the given quantile (0..1) of the
 * iterations falls, in microseconds; 0 when nothing was measured. */
uint64_t latency_quantile_us(const struct latency_stats *st, double q);

/* The figures as text: one line (for parleyctl status), or the histogram,
 * the classes and the worst iterations (parleyctl latency). */
void latency_format_summary(const struct latency_stats *st, struct buf *out);
void latency_format_report(const struct latency_stats *st, struct buf *out);

#endif
