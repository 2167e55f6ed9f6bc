/*
 * s2s name resolution with c-ares.  Loop thread only.
 *
 * c-ares tells us which sockets it wants watched (sock_state_cb); an
 * ev_io per socket and one ev_timer for its timeouts call
 * ares_process_fd.  A request first asks both SRV names, then the
 * addresses of every target (ares_getaddrinfo: AAAA and A), and delivers
 * the list from a zero timer, so a result (even one c-ares gave at once,
 * from /etc/hosts or for a bad name) never arrives inside resolve_s2s.
 *
 * Invariant: a cancelled request stays allocated until its last c-ares
 * query has answered (c-ares cannot cancel one query), but its callback
 * is gone.
 */
#include "resolve.h"
#include "lib/latency.h"
#include "lib/log.h"
#include "lib/options.h"
#include "lib/util.h"

#include <ares.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TARGETS 16
#define MAX_ADDRS 32

struct sock_watch {
	ev_io io;
	struct sock_watch *next;
};

struct target {
	char *name;
	unsigned short port, priority, weight;
	bool direct_tls;
	struct resolve_addr addrs[8];
	size_t naddrs;
};

struct resolve_req {
	char *domain;
	resolve_fn *cb;
	void *ctx;
	unsigned pending; /* c-ares queries not answered yet */
	bool addr_phase;
	struct target targets[MAX_TARGETS];
	size_t ntargets;
	const char *error;
	ev_timer deliver;
};

static struct ev_loop *loop_;
static ares_channel channel;
static bool ready;
static bool destroying; /* inside ares_destroy: every request is cancelled */
static struct sock_watch *watches;
static ev_timer timeout_w;
static struct ares_addr_port_node *default_servers; /* resolv.conf's, for an empty list */

static void arm_timeout(void)
{
	struct timeval tv, *t = ares_timeout(channel, NULL, &tv);
	ev_timer_stop(loop_, &timeout_w);
	if (t != NULL) {
		ev_timer_set(&timeout_w, (double)t->tv_sec + (double)t->tv_usec / 1e6 + 0.001, 0);
		ev_timer_start(loop_, &timeout_w);
	}
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	ares_process_fd(channel, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
	                (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
	arm_timeout();
}

static void timeout_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timeout();
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "resolve-timeout");
	timeout_event(loop, w, revents);
	latency_end();
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct sock_watch **pp = &watches;
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->io.fd == fd)
			break;
	struct sock_watch *w = *pp;
	if (!readable && !writable) {
		if (w != NULL) {
			ev_io_stop(loop_, &w->io);
			*pp = w->next;
			free(w);
		}
		return;
	}
	if (w == NULL) {
		w = xcalloc(1, sizeof(*w));
		ev_io_init(&w->io, io_cb, fd, 0);
		w->next = watches;
		watches = w;
	}
	ev_io_stop(loop_, &w->io);
	ev_io_set(&w->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(loop_, &w->io);
}

int resolve_init(struct ev_loop *loop, char **error_r)
{
	if (ready)
		return 0;
	loop_ = loop;
	int r = ares_library_init(ARES_LIB_INIT_ALL);
	if (r != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: %s", ares_strerror(r));
		return -1;
	}
	struct ares_options opts = { 0 };
	opts.sock_state_cb = sock_state_cb;
	opts.timeout = 3000;
	opts.tries = 2;
	r = ares_init_options(&channel, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (r != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: %s", ares_strerror(r));
		ares_library_cleanup();
		return -1;
	}
	if (ares_get_servers_ports(channel, &default_servers) != ARES_SUCCESS)
		default_servers = NULL;
	ev_timer_init(&timeout_w, timeout_cb, 1, 0);
	ready = true;
	return 0;
}

void resolve_shutdown(void)
{
	if (!ready)
		return;
	destroying = true;
	ares_destroy(channel); /* pending queries answer ARES_EDESTRUCTION */
	destroying = false;
	ev_timer_stop(loop_, &timeout_w);
	while (watches != NULL) {
		struct sock_watch *w = watches;
		watches = w->next;
		ev_io_stop(loop_, &w->io);
		free(w);
	}
	if (default_servers != NULL)
		ares_free_data(default_servers);
	default_servers = NULL;
	ares_library_cleanup();
	ready = false;
}

int resolve_set_servers(const struct strlist *servers, char **error_r)
{
	if (!ready)
		return 0;
	int r;
	if (servers->count == 0) {
		r = ares_set_servers_ports(channel, default_servers);
	} else {
		struct buf csv = { 0 };
		for (size_t i = 0; i < servers->count; i++) {
			const char *v = servers->items[i];
			unsigned char sa[16];
			/* a bare IPv6 address: brackets, so its colons are not a port */
			bool bare6 = inet_pton(AF_INET6, v, sa) == 1;
			buf_printf(&csv, "%s%s%s%s", i > 0 ? "," : "", bare6 ? "[" : "", v, bare6 ? "]" : "");
		}
		r = ares_set_servers_ports_csv(channel, csv.data);
		buf_free(&csv);
	}
	if (r != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: cannot use these DNS servers: %s", ares_strerror(r));
		return -1;
	}
	return 0;
}

static void req_free(struct resolve_req *r)
{
	for (size_t i = 0; i < r->ntargets; i++)
		free(r->targets[i].name);
	free(r->domain);
	free(r);
}

static void deliver_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve_req *r = w->data;
	struct resolve_addr addrs[MAX_ADDRS];
	size_t n = 0;
	for (size_t i = 0; i < r->ntargets; i++)
		for (size_t k = 0; k < r->targets[i].naddrs && n < MAX_ADDRS; k++)
			addrs[n++] = r->targets[i].addrs[k];
	if (r->cb != NULL)
		r->cb(r->ctx, addrs, n, n > 0 ? NULL : r->error != NULL ? r->error : "no address");
	req_free(r);
}

static void deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "resolve-deliver");
	deliver_event(loop, w, revents);
	latency_end();
}

/* Every query answered: deliver (or free a cancelled request). */
static void req_step_done(struct resolve_req *r);

static void addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct target *t = arg;
	(void)timeouts;
	if (status == ARES_SUCCESS && ai != NULL) {
		/* IPv6 first, then IPv4, as c-ares lists them per family. */
		for (int pass = 0; pass < 2; pass++) {
			for (struct ares_addrinfo_node *n = ai->nodes; n != NULL; n = n->ai_next) {
				if ((pass == 0) != (n->ai_family == AF_INET6) || t->naddrs >= 8 ||
				    n->ai_addrlen > sizeof(struct sockaddr_storage))
					continue;
				struct resolve_addr *a = &t->addrs[t->naddrs++];
				memcpy(&a->sa, n->ai_addr, n->ai_addrlen);
				a->len = n->ai_addrlen;
				a->direct_tls = t->direct_tls;
			}
		}
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
}

struct addr_query {
	struct resolve_req *r;
	struct target *t;
};

static void addr_query_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct addr_query *q = arg;
	struct resolve_req *r = q->r;
	if (status != ARES_SUCCESS && r->error == NULL)
		r->error = ares_strerror(status);
	addr_cb(q->t, status, timeouts, ai);
	free(q);
	r->pending--;
	req_step_done(r);
}

/* By priority, direct TLS first at equal priority; then zero weights
 * first (RFC 2782 puts them at the start of the list it draws from), then
 * the caller's order, so the draw depends on nothing but the records. */
static int srv_cmp(const void *a, const void *b)
{
	const struct resolve_srv *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	if (x->direct_tls != y->direct_tls)
		return x->direct_tls ? -1 : 1;
	if ((x->weight == 0) != (y->weight == 0))
		return x->weight == 0 ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index ? 1 : 0;
}

static unsigned long default_random(void *ctx, unsigned long bound)
{
	(void)ctx;
	if (bound == 0)
		return 0;
	/* Rejection sampling: uniform in [0, bound] without modulo bias. */
	unsigned long span = bound + 1, limit = span == 0 ? 0 : ULONG_MAX - ULONG_MAX % span;
	for (;;) {
		unsigned long v;
		random_bytes(&v, sizeof(v));
		if (span == 0)
			return v;
		if (v < limit)
			return v % span;
	}
}

void resolve_order_srv(struct resolve_srv *recs, size_t n, resolve_random_fn *rnd, void *ctx)
{
	if (rnd == NULL)
		rnd = default_random;
	qsort(recs, n, sizeof(recs[0]), srv_cmp);
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;
		while (end < n && recs[end].priority == recs[start].priority &&
		       recs[end].direct_tls == recs[start].direct_tls)
			end++;
		/* RFC 2782: sum the weights left, draw a number in [0, sum], take
		 * the first record whose running sum reaches it, and repeat on
		 * the rest. */
		for (size_t i = start; i + 1 < end; i++) {
			unsigned long sum = 0;
			for (size_t j = i; j < end; j++)
				sum += recs[j].weight;
			unsigned long draw = rnd(ctx, sum), run = 0;
			size_t pick = end - 1;
			for (size_t j = i; j < end; j++) {
				run += recs[j].weight;
				if (run >= draw) {
					pick = j;
					break;
				}
			}
			struct resolve_srv chosen = recs[pick];
			memmove(&recs[i + 1], &recs[i], (pick - i) * sizeof(recs[0]));
			recs[i] = chosen;
		}
		start = end;
	}
}

static void start_addrs(struct resolve_req *r)
{
	r->addr_phase = true;
	if (r->ntargets == 0) {
		r->targets[0].name = xstrdup(r->domain);
		r->targets[0].port = 5269;
		r->ntargets = 1;
	}
	struct resolve_srv order[MAX_TARGETS];
	for (size_t i = 0; i < r->ntargets; i++)
		order[i] = (struct resolve_srv){ .priority = r->targets[i].priority,
			                         .weight = r->targets[i].weight,
			                         .direct_tls = r->targets[i].direct_tls,
			                         .index = i };
	resolve_order_srv(order, r->ntargets, NULL, NULL);
	struct target sorted[MAX_TARGETS];
	for (size_t i = 0; i < r->ntargets; i++)
		sorted[i] = r->targets[order[i].index];
	memcpy(r->targets, sorted, r->ntargets * sizeof(r->targets[0]));
	r->pending = (unsigned)r->ntargets;
	for (size_t i = 0; i < r->ntargets; i++) {
		struct addr_query *q = xcalloc(1, sizeof(*q));
		q->r = r;
		q->t = &r->targets[i];
		char port[8];
		snprintf(port, sizeof(port), "%u", r->targets[i].port);
		struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC,
			                             .ai_socktype = SOCK_STREAM,
			                             .ai_flags = ARES_AI_NUMERICSERV };
		ares_getaddrinfo(channel, r->targets[i].name, port, &hints, addr_query_cb, q);
	}
}

static void req_step_done(struct resolve_req *r)
{
	if (destroying)
		r->cb = NULL;
	if (r->pending > 0)
		return;
	if (!r->addr_phase && r->cb != NULL) {
		start_addrs(r);
		return;
	}
	if (r->cb == NULL) {
		req_free(r);
		return;
	}
	ev_timer_init(&r->deliver, deliver_cb, 0, 0);
	r->deliver.data = r;
	ev_timer_start(loop_, &r->deliver);
}

struct srv_query {
	struct resolve_req *r;
	bool direct_tls;
};

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct srv_query *q = arg;
	struct resolve_req *r = q->r;
	(void)timeouts;
	struct ares_srv_reply *srv = NULL;
	if (status == ARES_SUCCESS && ares_parse_srv_reply(abuf, alen, &srv) == ARES_SUCCESS) {
		for (struct ares_srv_reply *s = srv; s != NULL; s = s->next) {
			/* "." says the service is not offered (RFC 2782). */
			if (s->host[0] == '\0' || strcmp(s->host, ".") == 0 || r->ntargets >= MAX_TARGETS)
				continue;
			struct target *t = &r->targets[r->ntargets++];
			t->name = xstrdup(s->host);
			t->port = s->port;
			t->priority = s->priority;
			t->weight = s->weight;
			t->direct_tls = q->direct_tls;
		}
		ares_free_data(srv);
	}
	free(q);
	r->pending--;
	req_step_done(r);
}

struct resolve_req *resolve_s2s(const char *domain, resolve_fn *cb, void *ctx)
{
	struct resolve_req *r = xcalloc(1, sizeof(*r));
	r->domain = xstrdup(domain);
	r->cb = cb;
	r->ctx = ctx;
	if (!ready) {
		r->error = "no resolver";
		req_step_done(r);
		return r;
	}
	r->pending = 2;
	for (int i = 0; i < 2; i++) {
		struct srv_query *q = xcalloc(1, sizeof(*q));
		q->r = r;
		q->direct_tls = i == 0;
		char *name = xasprintf("%s.%s", i == 0 ? "_xmpps-server._tcp" : "_xmpp-server._tcp", domain);
		ares_query(channel, name, 1 /* C_IN */, 33 /* T_SRV */, srv_cb, q);
		free(name);
	}
	arm_timeout();
	return r;
}

void resolve_cancel(struct resolve_req **rp)
{
	struct resolve_req *r = *rp;
	if (r == NULL)
		return;
	*rp = NULL;
	if (r->pending == 0 && ev_is_active(&r->deliver)) {
		ev_timer_stop(loop_, &r->deliver);
		req_free(r);
		return;
	}
	r->cb = NULL; /* freed when the last query answers */
}

void resolve_addr_str(const struct resolve_addr *a, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&a->sa;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		port = ntohs(s->sin_port);
	} else if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->sa;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		port = ntohs(s->sin6_port);
	}
	snprintf(out, size, "%s port %u%s", ip, port, a->direct_tls ? " (direct TLS)" : "");
}
