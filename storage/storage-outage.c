/*
 * Outage detection and backoff for a store whose workers each keep a
 * connection to a server (the SQL store; an LDAP store could use it too).
 * While the server is down, only one worker at a time tries to connect,
 * not before the backoff has passed (1 s, doubling up to 30 s); the other
 * workers fail their jobs at once with a temporary error, and say so in the
 * log at most once a second.
 *
 * Threads: any (the workers, and the loop for status and open); every field
 * is under the outage's own lock.  Invariants: connecting is set by at most
 * one worker at a time, between storage_outage_may_connect returning true
 * and its storage_outage_connected or storage_outage_failed; nconns counts
 * the connections open now.
 */
#include "storage/storage-private.h"
#include "lib/log.h"

#include <time.h>

/* Reconnection attempts after a failure: the first at once, then after
 * 1 s, 2 s, 4 s, ... up to this. */
#define OUTAGE_BACKOFF_MAX 30.0

void storage_outage_init(struct storage_outage *o, const char *description, const char *server)
{
	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->lock, NULL);
	o->description = description;
	o->server = server;
	o->fast_logs.every = 1.0;
}

void storage_outage_start_down(struct storage_outage *o, char *error)
{
	pthread_mutex_lock(&o->lock);
	o->down = true;
	o->down_since = mono_now();
	o->retry_at = o->down_since; /* the first worker tries at once */
	o->backoff = 1.0;
	free(o->last_error);
	o->last_error = error;
	pthread_mutex_unlock(&o->lock);
}

void storage_outage_deinit(struct storage_outage *o)
{
	free(o->last_error);
	o->last_error = NULL;
	pthread_mutex_destroy(&o->lock);
}

/* A job of r could not get a connection: say so, at most once a second
 * per store (the count of the lines left out follows). */
static void log_outage(struct storage_outage *o, const struct storage_req *r, double now)
{
	pthread_mutex_lock(&o->lock);
	unsigned more = 0;
	bool say = log_limit_pass(&o->fast_logs, now, &more);
	double since = now - o->down_since;
	double next = o->retry_at - now;
	pthread_mutex_unlock(&o->lock);
	if (!say)
		return;
	char extra[LOG_LIMIT_MORE_SIZE];
	log_limit_more(more, extra);
	char who[512];
	log_warning("storage %s: %s %s failed at once: the %s is unreachable (down for %.0f s, "
	            "next connection attempt in %.1f s)%s",
	            o->description, r->op->name, storage_req_who(r, who, sizeof(who)), o->server, since,
	            next > 0 ? next : 0, extra);
}

bool storage_outage_may_connect(struct storage_outage *o, const struct storage_req *req)
{
	double now = mono_now();
	pthread_mutex_lock(&o->lock);
	if (o->down && (o->connecting || now < o->retry_at)) {
		pthread_mutex_unlock(&o->lock);
		if (req != NULL)
			log_outage(o, req, now);
		return false;
	}
	o->connecting = true;
	pthread_mutex_unlock(&o->lock);
	return true;
}

void storage_outage_failed(struct storage_outage *o, const char *error)
{
	double now = mono_now();
	const char *why = error != NULL ? error : "unknown error";
	pthread_mutex_lock(&o->lock);
	o->connecting = false;
	bool first = !o->down;
	if (first) {
		o->down = true;
		o->down_since = now;
		o->backoff = 1.0;
	} else {
		o->backoff = o->backoff * 2 > OUTAGE_BACKOFF_MAX ? OUTAGE_BACKOFF_MAX : o->backoff * 2;
	}
	o->retry_at = now + o->backoff;
	free(o->last_error);
	o->last_error = xstrdup(why);
	double wait = o->backoff;
	double since = now - o->down_since;
	pthread_mutex_unlock(&o->lock);
	if (first)
		log_error("storage %s: cannot connect: %s; the hosts on this store are degraded "
		          "(their storage requests fail with a temporary error) until it comes back; "
		          "next attempt in %.0f s",
		          o->description, why, wait);
	else
		log_warning("storage %s: still cannot connect (down for %.0f s): %s; next attempt "
		            "in %.0f s",
		            o->description, since, why, wait);
}

void storage_outage_connected(struct storage_outage *o, unsigned worker)
{
	double now = mono_now();
	pthread_mutex_lock(&o->lock);
	o->connecting = false;
	bool was_down = o->down;
	double since = now - o->down_since;
	o->down = false;
	o->backoff = 0;
	o->nconns++;
	pthread_mutex_unlock(&o->lock);
	if (was_down)
		log_notice("storage %s: connected again (worker %u) after %.0f s; the hosts on this "
		           "store work again",
		           o->description, worker, since);
}

void storage_outage_disconnected(struct storage_outage *o)
{
	pthread_mutex_lock(&o->lock);
	o->nconns--;
	pthread_mutex_unlock(&o->lock);
}

void storage_outage_status(struct storage_outage *o, unsigned pool_size, struct buf *out)
{
	pthread_mutex_lock(&o->lock);
	double now = mono_now();
	if (o->down)
		buf_printf(out,
		           "DOWN for %.0f s (%s); next connection attempt in %.1f s; %u of %u "
		           "connections open",
		           now - o->down_since, o->last_error != NULL ? o->last_error : "?",
		           o->retry_at > now ? o->retry_at - now : 0.0, o->nconns, pool_size);
	else
		buf_printf(out, "up: %u of %u connections open", o->nconns, pool_size);
	pthread_mutex_unlock(&o->lock);
}
