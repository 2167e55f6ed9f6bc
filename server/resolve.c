/*
 * s2s name resolution with c-ares.  Loop thread only.
 *
 * c-ares tells us which sockets it wants watched (sock_state_cb); an
 * ev_io per socket and one ev_timer for its timeouts call
 * ares_process_fd.  A request first asks both SRV names, then the
 * addresses of every target (ares_getaddrinfo: AAAA and A; without SRV
 * records, of the domain on 5269, but not when an SRV answer's only
 * target is "." and the other name gives none), and delivers
 * the list from a zero timer, so a result (even one c-ares gave at once,
 * from /etc/hosts or for a bad name) never arrives inside resolve_s2s.
 *
 * DANE (s2s.dane): the SRV queries go out through ares_send with the AD
 * bit set, so the answer's AD bit says whether the resolver validated
 * it; a target from a secure SRV answer (or the domain itself, when both
 * SRV names are securely denied) also gets a TLSA query at
 * _PORT._tcp.HOST beside its address query.  A secure TLSA answer with
 * usable records rides on the target's addresses; an insecure or empty
 * one changes nothing; a failed one (SERVFAIL: bogus, or no answer)
 * drops the target's addresses, as RFC 7672 2.2 does for mail.  The AD
 * bit is believed only when every DNS server in use is on loopback
 * (resolve_set_dane).  c-ares 1.18 has no TLSA parser: the answer section
 * is walked here (resolve_parse_tlsa) with ares_expand_name for names.
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
#define MAX_TLSA 16
#define T_TLSA 52
#define T_SRV 33
#define T_SOA 6
#define TLSA_CACHE_SIZE 256 /* entries */
#define TLSA_CACHE_MAX_TTL 86400
#define C_IN 1
#define RCODE_NOERROR 0
#define RCODE_NXDOMAIN 3

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
	bool dane;        /* its name came from a secure answer: ask its TLSA records */
	bool dane_failed; /* the TLSA lookup failed: do not use this target */
	struct resolve_tlsa *tlsa;
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
	unsigned srv_denied_secure; /* SRV names securely without records (0..2) */
	bool srv_failed;            /* DANE: an SRV lookup failed (not "no records") */
	unsigned srv_no_service;    /* SRV names answered with the target "." only (0..2) */
	ev_timer deliver;
};

static struct ev_loop *loop_;
static ares_channel channel;
static bool ready;
static bool destroying; /* inside ares_destroy: every request is cancelled */
static struct sock_watch *watches;
static ev_timer timeout_w;
static struct ares_addr_port_node *default_servers; /* resolv.conf's, for an empty list */
static bool dane_on;                                /* s2s.dane */
static bool ad_trusted;                             /* every DNS server in use is on loopback */

/* TLSA answers kept for their TTL: name is "_PORT._tcp.HOST"; tlsa the
 * secure usable records, or NULL for "DANE does not apply" (insecure, no
 * usable record, securely denied).  Failed lookups are never kept. */
struct tlsa_cached {
	char *name;
	ev_tstamp expires;
	struct resolve_tlsa *tlsa;
};
static struct tlsa_cached tlsa_cache[TLSA_CACHE_SIZE];
static struct resolve_tlsa_stats tlsa_stats;

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

/* Whether every server c-ares asks is on loopback; *list_r (malloc'd)
 * names them for logs. */
static bool servers_loopback(char **list_r)
{
	struct ares_addr_port_node *servers = NULL;
	struct buf names = { 0 };
	bool all = ares_get_servers_ports(channel, &servers) == ARES_SUCCESS && servers != NULL;
	for (struct ares_addr_port_node *n = servers; n != NULL; n = n->next) {
		char ip[INET6_ADDRSTRLEN] = "?";
		bool loop;
		if (n->family == AF_INET) {
			loop = (ntohl(n->addr.addr4.s_addr) >> 24) == 127;
			inet_ntop(AF_INET, &n->addr.addr4, ip, sizeof(ip));
		} else {
			static const unsigned char one[16] = { [15] = 1 };
			loop = n->family == AF_INET6 && memcmp(&n->addr.addr6, one, 16) == 0;
			inet_ntop(AF_INET6, &n->addr.addr6, ip, sizeof(ip));
		}
		all &= loop;
		buf_printf(&names, "%s%s", names.len > 0 ? ", " : "", ip);
	}
	if (servers != NULL)
		ares_free_data(servers);
	*list_r = names.data != NULL ? names.data : xstrdup("none");
	return all;
}

static void tlsa_cache_drop(struct tlsa_cached *e)
{
	free(e->name);
	resolve_tlsa_unref(&e->tlsa);
	*e = (struct tlsa_cached){ 0 };
}

/* Forget every kept answer: the servers or what their AD bit is worth
 * changed. */
static void tlsa_cache_flush(void)
{
	for (size_t i = 0; i < TLSA_CACHE_SIZE; i++)
		if (tlsa_cache[i].name != NULL)
			tlsa_cache_drop(&tlsa_cache[i]);
}

/* The fresh entry for name, or NULL (an expired one is dropped). */
static struct tlsa_cached *tlsa_cache_find(const char *name)
{
	ev_tstamp now = ev_now(loop_);
	for (size_t i = 0; i < TLSA_CACHE_SIZE; i++) {
		struct tlsa_cached *e = &tlsa_cache[i];
		if (e->name == NULL || strcmp(e->name, name) != 0)
			continue;
		if (e->expires > now)
			return e;
		tlsa_cache_drop(e);
		return NULL;
	}
	return NULL;
}

/* Keep the outcome of name's lookup (tlsa: a new reference is taken) for
 * ttl seconds, at most TLSA_CACHE_MAX_TTL; a full cache gives up an
 * expired entry, else the one that expires first. */
static void tlsa_cache_put(const char *name, struct resolve_tlsa *tlsa, unsigned ttl)
{
	if (ttl == 0)
		return;
	if (ttl > TLSA_CACHE_MAX_TTL)
		ttl = TLSA_CACHE_MAX_TTL;
	ev_tstamp now = ev_now(loop_);
	struct tlsa_cached *slot = NULL;
	for (size_t i = 0; i < TLSA_CACHE_SIZE; i++) {
		struct tlsa_cached *e = &tlsa_cache[i];
		if (e->name != NULL && strcmp(e->name, name) == 0) {
			slot = e; /* two lookups of one name overlapped: the later wins */
			break;
		}
		if (e->name == NULL || e->expires <= now) {
			if (slot == NULL || slot->name != NULL)
				slot = e;
		} else if (slot == NULL || (slot->name != NULL && e->expires < slot->expires)) {
			slot = e;
		}
	}
	if (slot->name != NULL)
		tlsa_cache_drop(slot);
	slot->name = xstrdup(name);
	slot->expires = now + ttl;
	slot->tlsa = resolve_tlsa_ref(tlsa);
}

const struct resolve_tlsa_stats *resolve_tlsa_stats(void)
{
	tlsa_stats.cached = 0;
	for (size_t i = 0; i < TLSA_CACHE_SIZE; i++)
		tlsa_stats.cached += tlsa_cache[i].name != NULL;
	return &tlsa_stats;
}

void resolve_set_dane(bool on)
{
	tlsa_cache_flush();
	dane_on = on;
	ad_trusted = false;
	if (!on || !ready)
		return;
	char *list = NULL;
	ad_trusted = servers_loopback(&list);
	if (ad_trusted)
		log_info("s2s: DANE on: TLSA records count when the DNS server (%s, on loopback, which "
		         "must validate DNSSEC) marks them authentic (AD)",
		         list);
	else
		log_warning("s2s: DANE is on but the DNS servers (%s) are not all on loopback: their AD "
		            "bit is not trusted, so no answer counts as secure and DANE never applies; "
		            "run a validating resolver on this host and list it in s2s.dns_servers",
		            list);
	free(list);
}

struct resolve_tlsa *resolve_tlsa_ref(struct resolve_tlsa *t)
{
	if (t != NULL)
		t->refs++;
	return t;
}

void resolve_tlsa_unref(struct resolve_tlsa **tp)
{
	struct resolve_tlsa *t = *tp;
	*tp = NULL;
	if (t == NULL || --t->refs > 0)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->recs[i].data);
	free(t->recs);
	free(t->host);
	free(t);
}

/* Skip a (maybe compressed) name at *p; -1 when it runs out of abuf. */
static int skip_name(const unsigned char **p, const unsigned char *abuf, int alen)
{
	char *name = NULL;
	long enclen = 0;
	if (ares_expand_name(*p, abuf, alen, &name, &enclen) != ARES_SUCCESS)
		return -1;
	ares_free_string(name);
	*p += enclen;
	return 0;
}

/* A 32-bit TTL at p; one with the top bit set counts as 0 (RFC 2181 8). */
static unsigned read_ttl(const unsigned char *p)
{
	uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return v > INT32_MAX ? 0 : (unsigned)v;
}

/* The negative TTL (RFC 2308 5) of the ns records of the authority
 * section at p: the least of an SOA record's own TTL and its MINIMUM
 * field; 0 when there is none or the section is malformed (the answer
 * then is not kept, nothing else changes). */
static unsigned negative_ttl(const unsigned char *p, unsigned ns, const unsigned char *abuf, int alen)
{
	const unsigned char *end = abuf + alen;
	for (unsigned i = 0; i < ns; i++) {
		if (skip_name(&p, abuf, alen) < 0 || end - p < 10)
			return 0;
		unsigned type = (unsigned)p[0] << 8 | p[1], cls = (unsigned)p[2] << 8 | p[3];
		unsigned ttl = read_ttl(p + 4);
		size_t rdlen = (size_t)p[8] << 8 | p[9];
		p += 10;
		if ((size_t)(end - p) < rdlen)
			return 0;
		const unsigned char *rd = p, *rdend = p + rdlen;
		p += rdlen;
		if (type != T_SOA || cls != C_IN)
			continue;
		/* MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM */
		if (skip_name(&rd, abuf, alen) < 0 || rd > rdend || skip_name(&rd, abuf, alen) < 0 ||
		    rd > rdend || rdend - rd != 20)
			return 0;
		unsigned minimum = read_ttl(rd + 16);
		return ttl < minimum ? ttl : minimum;
	}
	return 0;
}

int resolve_parse_tlsa(const unsigned char *abuf, int alen, const char *host, unsigned port, int *rcode_r,
                       bool *ad_r, unsigned *ttl_r, struct resolve_tlsa **tlsa_r)
{
	*tlsa_r = NULL;
	*ttl_r = 0;
	if (abuf == NULL || alen < 12)
		return -1;
	const unsigned char *end = abuf + alen, *p = abuf + 12;
	*rcode_r = abuf[3] & 0x0f;
	*ad_r = (abuf[3] & 0x20) != 0;
	unsigned qd = (unsigned)abuf[4] << 8 | abuf[5], an = (unsigned)abuf[6] << 8 | abuf[7];
	unsigned ns = (unsigned)abuf[8] << 8 | abuf[9];
	for (unsigned i = 0; i < qd; i++) {
		if (skip_name(&p, abuf, alen) < 0 || end - p < 4)
			return -1;
		p += 4;
	}
	struct s2s_tlsa recs[MAX_TLSA];
	size_t n = 0;
	int ret = 0;
	unsigned ttl = UINT_MAX;
	for (unsigned i = 0; i < an; i++) {
		if (skip_name(&p, abuf, alen) < 0 || end - p < 10) {
			ret = -1;
			break;
		}
		unsigned type = (unsigned)p[0] << 8 | p[1], cls = (unsigned)p[2] << 8 | p[3];
		unsigned rrttl = read_ttl(p + 4);
		size_t rdlen = (size_t)p[8] << 8 | p[9];
		p += 10;
		if ((size_t)(end - p) < rdlen) {
			ret = -1;
			break;
		}
		/* every record of the answer (a CNAME on the way too) bounds it */
		if (rrttl < ttl)
			ttl = rrttl;
		if (type == T_TLSA && cls == C_IN && rdlen >= 3 && n < MAX_TLSA) {
			struct s2s_tlsa r = {
				.usage = p[0], .selector = p[1], .mtype = p[2], .len = rdlen - 3
			};
			r.data = (unsigned char *)p + 3;
			if (s2s_tlsa_usable(&r)) {
				r.data = xmalloc(r.len);
				memcpy(r.data, p + 3, r.len);
				recs[n++] = r;
			}
		}
		p += rdlen;
	}
	if (ret == 0)
		*ttl_r = an > 0 ? ttl : negative_ttl(p, ns, abuf, alen);
	if (ret < 0 || n == 0) {
		for (size_t i = 0; i < n; i++)
			free(recs[i].data);
		return ret;
	}
	struct resolve_tlsa *t = xcalloc(1, sizeof(*t));
	t->refs = 1;
	t->host = xstrdup(host);
	t->port = port;
	t->n = n;
	t->recs = xcalloc(n, sizeof(*t->recs));
	memcpy(t->recs, recs, n * sizeof(*recs));
	*tlsa_r = t;
	return 0;
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
	ad_trusted = false;
	tlsa_cache_flush();
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
	tlsa_cache_flush(); /* answers of other servers */
	if (dane_on) {
		/* the AD bit of the new servers is judged afresh */
		char *list = NULL;
		ad_trusted = servers_loopback(&list);
		free(list);
	}
	return 0;
}

static void req_free(struct resolve_req *r)
{
	for (size_t i = 0; i < r->ntargets; i++) {
		free(r->targets[i].name);
		resolve_tlsa_unref(&r->targets[i].tlsa);
	}
	free(r->domain);
	free(r);
}

static void deliver_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve_req *r = w->data;
	struct resolve_addr addrs[MAX_ADDRS];
	size_t n = 0;
	for (size_t i = 0; i < r->ntargets; i++) {
		struct target *t = &r->targets[i];
		if (t->dane_failed) {
			log_info("s2s %s: the TLSA lookup for %s failed (bogus or no answer): not "
			         "connecting to it",
			         r->domain, t->name);
			r->error = "the TLSA lookup failed";
			continue;
		}
		for (size_t k = 0; k < t->naddrs && n < MAX_ADDRS; k++) {
			addrs[n] = t->addrs[k];
			addrs[n++].tlsa = t->tlsa;
		}
	}
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

/* Send a query for name and type with RD, and AD when DANE is on. */
static void send_query(const char *name, int type, ares_callback cb, void *arg)
{
	unsigned char *qbuf = NULL;
	int qlen = 0;
	int rc = ares_create_query(name, C_IN, type, 0, 1, &qbuf, &qlen, 0);
	if (rc != ARES_SUCCESS) {
		cb(arg, rc, 0, NULL, 0);
		return;
	}
	if (dane_on)
		qbuf[3] |= 0x20; /* AD: tell us whether you validated it */
	ares_send(channel, qbuf, qlen, cb, arg);
	ares_free_string(qbuf);
}

struct tlsa_query {
	struct resolve_req *r;
	struct target *t;
	char *name;
};

static void tlsa_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct tlsa_query *q = arg;
	struct resolve_req *r = q->r;
	struct target *t = q->t;
	(void)timeouts;
	int rcode = -1;
	bool ad = false;
	unsigned ttl = 0;
	struct resolve_tlsa *tlsa = NULL;
	if (status != ARES_SUCCESS ||
	    resolve_parse_tlsa(abuf, alen, t->name, t->port, &rcode, &ad, &ttl, &tlsa) < 0 ||
	    (rcode != RCODE_NOERROR && rcode != RCODE_NXDOMAIN)) {
		/* SERVFAIL is what a validating resolver answers for bogus data */
		t->dane_failed = true;
		tlsa_stats.failed++;
		log_debug("s2s %s: TLSA %s: %s", r->domain, q->name,
		          status != ARES_SUCCESS ? ares_strerror(status) : "bad answer");
	} else if (tlsa != NULL && ad && ad_trusted) {
		log_debug("s2s %s: TLSA %s: %zu usable records, secure", r->domain, q->name, tlsa->n);
		t->tlsa = tlsa;
		tlsa = NULL;
	} else {
		log_debug("s2s %s: TLSA %s: %s: DANE does not apply", r->domain, q->name,
		          tlsa == NULL ? "no usable record" : "not DNSSEC-secure (no AD)");
	}
	/* a cancelled request's answer is as good as any, unless the
	 * resolver is going away */
	if (!t->dane_failed && !destroying)
		tlsa_cache_put(q->name, t->tlsa, ttl);
	resolve_tlsa_unref(&tlsa);
	free(q->name);
	free(q);
	r->pending--;
	req_step_done(r);
}

/* Ask t's TLSA records, or take them from the cache: true when a query
 * went out (its answer is pending). */
static bool start_tlsa(struct resolve_req *r, struct target *t)
{
	char *name = xasprintf("_%u._tcp.%s", t->port, t->name);
	struct tlsa_cached *e = tlsa_cache_find(name);
	if (e != NULL) {
		tlsa_stats.cache_hits++;
		log_debug("s2s %s: TLSA %s: kept for %.0f s more: %s", r->domain, name,
		          e->expires - ev_now(loop_),
		          e->tlsa != NULL ? "secure records" : "DANE does not apply");
		t->tlsa = resolve_tlsa_ref(e->tlsa);
		free(name);
		return false;
	}
	tlsa_stats.queries++;
	struct tlsa_query *q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->t = t;
	q->name = name;
	send_query(name, T_TLSA, tlsa_cb, q);
	return true;
}

static void start_addrs(struct resolve_req *r)
{
	r->addr_phase = true;
	if (r->ntargets == 0) {
		r->targets[0].name = xstrdup(r->domain);
		r->targets[0].port = 5269;
		/* RFC 7673 4.1: no SRV records, securely: the domain's own TLSA */
		r->targets[0].dane = r->srv_denied_secure == 2;
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
	/* counted before any query starts: one may answer at once (a
	 * kept TLSA answer needs no query and is counted off at once) */
	r->pending = (unsigned)r->ntargets;
	for (size_t i = 0; i < r->ntargets; i++)
		r->pending += r->targets[i].dane;
	for (size_t i = 0; i < r->ntargets; i++)
		if (r->targets[i].dane && !start_tlsa(r, &r->targets[i]))
			r->pending--;
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
	if (!r->addr_phase && r->cb != NULL && r->srv_failed) {
		/* RFC 7673 3.1: a failed SRV lookup aborts; falling back to
		 * the domain on 5269 would skip its TLSA records */
		r->addr_phase = true;
		r->error = "the SRV lookup failed";
	} else if (!r->addr_phase && r->cb != NULL && r->ntargets == 0 && r->srv_no_service > 0) {
		/* RFC 2782, XEP-0368 5: "." says the service is decidedly not
		 * available; with no target from the other name either, there
		 * is nothing to fall back to */
		r->addr_phase = true;
		r->error = "its SRV records say it offers no XMPP server (target \".\")";
	} else if (!r->addr_phase && r->cb != NULL) {
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
	char *name;
};

static void srv_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct srv_query *q = arg;
	struct resolve_req *r = q->r;
	(void)timeouts;
	struct ares_srv_reply *srv = NULL;
	bool secure = status == ARES_SUCCESS && alen >= 12 && (abuf[3] & 0x20) && dane_on && ad_trusted;
	int rcode = status == ARES_SUCCESS && alen >= 12 ? abuf[3] & 0x0f : -1;
	int prc = rcode == RCODE_NOERROR ? ares_parse_srv_reply(abuf, alen, &srv) : ARES_ENOTFOUND;
	if (secure && (rcode == RCODE_NXDOMAIN || (rcode == RCODE_NOERROR && prc == ARES_ENODATA)))
		r->srv_denied_secure++;
	/* SERVFAIL (bogus), REFUSED, a timeout, a malformed answer: with
	 * DANE, a failure that is not "no records" (RFC 7673 3.1) */
	if (dane_on && ad_trusted && !destroying && status != ARES_ENOTFOUND && status != ARES_ENODATA &&
	    (rcode != RCODE_NOERROR || (prc != ARES_SUCCESS && prc != ARES_ENODATA)) &&
	    rcode != RCODE_NXDOMAIN) {
		char why[64];
		if (status != ARES_SUCCESS)
			snprintf(why, sizeof(why), "%s", ares_strerror(status));
		else if (rcode != RCODE_NOERROR)
			snprintf(why, sizeof(why), "rcode %d", rcode);
		else
			snprintf(why, sizeof(why), "malformed answer");
		log_info("s2s %s: the SRV lookup for %s failed (%s): not connecting (DANE, RFC 7673 3.1)",
		         r->domain, q->name, why);
		r->srv_failed = true;
	}
	if (prc == ARES_SUCCESS) {
		bool only_dot = srv != NULL;
		for (struct ares_srv_reply *s = srv; s != NULL; s = s->next) {
			/* "." says the service is not offered (RFC 2782). */
			bool dot = s->host[0] == '\0' || strcmp(s->host, ".") == 0;
			only_dot &= dot;
			if (dot || r->ntargets >= MAX_TARGETS)
				continue;
			struct target *t = &r->targets[r->ntargets++];
			t->name = xstrdup(s->host);
			t->port = s->port;
			t->priority = s->priority;
			t->weight = s->weight;
			t->direct_tls = q->direct_tls;
			t->dane = secure; /* RFC 7673 4.1: TLSA of the target of a secure SRV */
		}
		r->srv_no_service += only_dot;
		ares_free_data(srv);
	}
	free(q->name);
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
		q->name = xasprintf("%s.%s", i == 0 ? "_xmpps-server._tcp" : "_xmpp-server._tcp", domain);
		send_query(q->name, T_SRV, srv_cb, q);
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
