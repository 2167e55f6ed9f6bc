/*
 * Metrics: a registry of collectors that write the server's figures in the
 * Prometheus text exposition format (version 0.0.4), served at /metrics by
 * an http listener when the metrics section enables it.  Loop thread.
 *
 * A part of the server that has figures to show registers a collector
 * (metrics_register); when /metrics is scraped every collector runs and
 * adds samples to families it declares (metrics_family).  Several
 * collectors may add to one family (parley_connections gets kind="c2s"
 * from here, s2s and components add their own kinds): the output groups
 * every family's samples under one HELP and TYPE.  The figures are read
 * from the counters parleyctl status and stats show (router_stats,
 * c2s_stats, sm_count, the loop latency monitor, the worker groups), so
 * both always agree.
 *
 * The addresses allowed to scrape (and to call the admin API) are CIDR
 * lists: metrics_cidr_check validates one, metrics_ip_allowed matches.
 */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <ev.h>
#include "config.h"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics_out;
/* Add the collector's families and samples to out. */
typedef void metrics_collect_fn(void *ctx, struct metrics_out *out);
/* Register a collector (run in registration order); unregister with the
 * same fn and ctx. */
void metrics_register(metrics_collect_fn *fn, void *ctx);
void metrics_unregister(metrics_collect_fn *fn, void *ctx);

/* Declare a family (name without _total/_bucket suffixes; counters end in
 * _total by convention).  Declaring it again with the same type is fine;
 * with another type, the later samples are dropped with a log line. */
void metrics_family(struct metrics_out *out, const char *name, enum metrics_type type, const char *help);
/* One sample of a counter or gauge family: labels are name, value pairs
 * ending with NULL (values are escaped). */
void metrics_sample(struct metrics_out *out, const char *family, double value, ...) __attribute__((sentinel));
/* One histogram of a histogram family: counts[i] observations at most
 * bounds[i] (not cumulative; counts[n] the rest), their sum and total. */
void metrics_histogram(struct metrics_out *out, const char *family, const double *bounds,
                       const uint64_t *counts, size_t n, double sum, ...) __attribute__((sentinel));

/* Every collector's output as the exposition text (appended to text). */
void metrics_format(struct buf *text);

/* The built-in collectors (connections, sessions, stanzas, router, auth,
 * loop latency, worker groups, memory); parleyd registers them at start. */
void metrics_register_builtin(void);

/* The process's memory: resident set, heap in use and free (KiB). */
struct metrics_memory {
	long rss_kib;
	size_t heap_kib, heap_free_kib;
};
void metrics_memory(struct metrics_memory *m);

/* Serve /metrics on the http listeners when cfg enables it.  -1 with a
 * malloc'd *error_r when the path cannot be mounted. */
int metrics_start(const struct parley_config *cfg, char **error_r);
void metrics_stop(void);

/* Whether s is an address or a CIDR block (192.0.2.0/24, 2001:db8::/32). */
bool metrics_cidr_check(const char *s);
/* Whether ip (IPv4, IPv6, or IPv4-mapped IPv6) is in one of the blocks of
 * allow. */
bool metrics_ip_allowed(const struct strlist *allow, const char *ip);

#endif
