/*
 * A rate-limited log line with a summary of what it left out: see
 * log-summary.h.
 */
#include "log-summary.h"
#include "util.h"
#include "latency.h"

static void summary_event(struct ev_loop *loop, ev_timer *w, int revents);

static void arm(struct log_summary *s, struct ev_loop *loop, double now)
{
	double wait = s->limit.last + s->limit.every - now;
	/* libev counts from the time it read when this loop pass began,
	 * which may be well before now */
	ev_now_update(loop);
	ev_timer_init(&s->timer, summary_event, wait > 0 ? wait : 0, 0);
	s->timer.data = s;
	s->loop = loop;
	ev_timer_start(loop, &s->timer);
	ev_unref(loop); /* a summary alone does not keep the loop running */
}

static void summary_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct log_summary *s = w->data;
	(void)revents;
	latency_begin(LATENCY_MODULE, s->module);
	ev_ref(loop); /* the one-shot timer has stopped */
	double now = mono_now();
	if (now < s->limit.last + s->limit.every - 0.001) {
		arm(s, loop, now); /* early (clocks differ): not yet a second */
	} else {
		unsigned n = log_limit_take(&s->limit, now);
		if (n > 0)
			s->say(s, n);
	}
	latency_end();
}

bool log_summary_pass(struct log_summary *s, struct ev_loop *loop, unsigned *more_r)
{
	double now = mono_now();
	if (log_limit_pass(&s->limit, now, more_r))
		return true;
	/* A timer that has just expired is pending until its callback runs
	 * (maybe after other callbacks of this loop pass, such as the one
	 * calling here): that callback counts this line; initialising the
	 * watcher again then would corrupt libev's list of pending events. */
	if (!ev_is_active(&s->timer) && !ev_is_pending(&s->timer))
		arm(s, loop, now);
	return false;
}

void log_summary_stop(struct log_summary *s)
{
	if (ev_is_active(&s->timer))
		ev_timer_stop(s->loop, &s->timer);
	else if (ev_is_pending(&s->timer))
		ev_clear_pending(s->loop, &s->timer);
	else
		return;
	ev_ref(s->loop); /* balances arm()'s ev_unref */
	unsigned n = log_limit_take(&s->limit, mono_now());
	if (n > 0)
		s->say(s, n);
}
