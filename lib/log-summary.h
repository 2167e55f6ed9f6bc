/*
 * A rate-limited log line whose left-out repeats are said once the
 * lines stop: a log_limit (lib/log.h) with a one-shot timer on the loop
 * that writes a summary line with the count.  For failures that can come
 * once per message (a storage outage fails every message at once).  Loop
 * thread only.
 */
#ifndef PARLEY_LOG_SUMMARY_H
#define PARLEY_LOG_SUMMARY_H

#include "log.h"

#include <ev.h>
#include <stdbool.h>

struct log_summary {
	struct log_limit limit; /* set limit.every */
	const char *module;     /* the latency monitor's name for the timer */
	/* Writes the summary line for n lines left out (n > 0); s is this
	 * struct, for a caller that embeds it in its own. */
	void (*say)(const struct log_summary *s, unsigned n);
	ev_timer timer; /* due when lines were left out */
	struct ev_loop *loop;
};

/* A line is due now: true when it should be written, with *more_r the
 * lines left out before it (to be said on it); false when it is left out,
 * counted, and said by the summary a little later unless a written line
 * says it first.  The pending summary does not keep the loop running. */
bool log_summary_pass(struct log_summary *s, struct ev_loop *loop, unsigned *more_r);
/* Before s goes away: its pending summary is written now, and its timer
 * stopped. */
void log_summary_stop(struct log_summary *s);

#endif
