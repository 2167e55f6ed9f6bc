/*
 * Asynchronous name resolution for s2s (c-ares, driven from the loop
 * through its socket-state callback): the addresses of a remote XMPP
 * domain from SRV _xmpps-server._tcp (XEP-0368 direct TLS) and
 * _xmpp-server._tcp, in priority order (by weight at random among equal
 * priorities, RFC 2782), each target's AAAA and A
 * addresses; without SRV records, the domain's own addresses on port
 * 5269.  With DANE on (s2s.dane), also the TLSA records of each target
 * whose SRV answer was DNSSEC-secure (RFC 7673), trusting the AD bit
 * only from resolvers on loopback.  Loop thread only; nothing here
 * blocks.
 */
#ifndef PARLEY_RESOLVE_H
#define PARLEY_RESOLVE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "s2s-cert.h"

struct strlist;

/* The usable TLSA records of one host and port (RFC 6698), from an answer
 * a trusted validating resolver marked secure; reference counted. */
struct resolve_tlsa {
	unsigned refs;
	char *host; /* the TLSA base domain: the SRV target, or the domain */
	unsigned port;
	size_t n;
	struct s2s_tlsa *recs; /* usable ones only (s2s_tlsa_usable), n >= 1 */
};

struct resolve_addr {
	struct sockaddr_storage sa;
	socklen_t len;
	bool direct_tls; /* from an _xmpps-server record */
	/* DANE: the secure TLSA records of this address's host, or NULL when
	 * DANE does not apply (off, insecure, no usable record).  Borrowed
	 * for the callback: take a reference to keep it. */
	struct resolve_tlsa *tlsa;
};

struct resolve_tlsa *resolve_tlsa_ref(struct resolve_tlsa *t);
/* Drop a reference (NULL is fine); *t is set to NULL. */
void resolve_tlsa_unref(struct resolve_tlsa **t);

/* addrs (n of them, in the order to try) or, when n is 0, error says why.
 * Runs from the loop, never inside resolve_s2s. */
typedef void resolve_fn(void *ctx, const struct resolve_addr *addrs, size_t n, const char *error);

struct resolve_req;

int resolve_init(struct ev_loop *loop, char **error_r);
void resolve_shutdown(void);
/* Ask these DNS servers ("address" or "address:port", numeric, "[v6]:port")
 * from now on, in order; an empty list: those of /etc/resolv.conf, as
 * read at resolve_init.  -1 and a malloc'd *error_r (nothing changed). */
int resolve_set_servers(const struct strlist *servers, char **error_r);
/* DANE on or off (s2s.dane), for requests started from now on.  On, SRV
 * and TLSA queries carry the AD bit (RFC 6840 5.7) and an answer counts
 * as secure when its AD bit is set and every DNS server in use is on
 * loopback (127.0.0.0/8, ::1): c-ares does not validate, so the AD bit
 * is only believed from a validating resolver the operator runs on the
 * same host.  Logs what it decided. */
void resolve_set_dane(bool on);
/* Parse a TLSA answer (a whole DNS response, abuf of alen bytes): its
 * rcode into *rcode_r, the AD bit into *ad_r, how many seconds it may be
 * kept into *ttl_r (the least TTL of its answer records; with none, the
 * negative TTL of an SOA in its authority section, RFC 2308 5; else 0),
 * and the usable TLSA records of its answer section into a new struct
 * (NULL when there are none).  -1 when the message is malformed. */
int resolve_parse_tlsa(const unsigned char *abuf, int alen, const char *host, unsigned port, int *rcode_r,
                       bool *ad_r, unsigned *ttl_r, struct resolve_tlsa **tlsa_r);
/* TLSA lookups since start: queries sent, lookups answered from the
 * cache (an answer is kept for its TTL, at most a day, 256 names at
 * most; emptied when the DNS servers or s2s.dane change), lookups that
 * failed, and the names kept now. */
struct resolve_tlsa_stats {
	uint64_t queries, cache_hits, failed;
	unsigned cached;
};
const struct resolve_tlsa_stats *resolve_tlsa_stats(void);
/* Start resolving domain; cb runs once (unless cancelled). */
struct resolve_req *resolve_s2s(const char *domain, resolve_fn *cb, void *ctx);
/* cb will not run; *r is set to NULL. */
void resolve_cancel(struct resolve_req **r);
/* One SRV record, as resolve_order_srv sees it: index is the caller's. */
struct resolve_srv {
	unsigned short priority, weight;
	bool direct_tls; /* from _xmpps-server: tried first at equal priority */
	size_t index;
};

/* A uniform random number in [0, bound]. */
typedef unsigned long resolve_random_fn(void *ctx, unsigned long bound);

/* Put recs (n of them) in the order to try, as RFC 2782 says: by
 * priority, lowest first (direct TLS before STARTTLS at equal priority),
 * and within one priority by weight at random: each next record is drawn
 * with a chance proportional to its weight, records of weight 0 having a
 * very small chance (only when all left weigh 0, or the draw is 0).  rnd
 * (NULL: a random source from lib/util.h) makes the draws; tests pass a
 * fixed one. */
void resolve_order_srv(struct resolve_srv *recs, size_t n, resolve_random_fn *rnd, void *ctx);

/* "192.0.2.1 port 5269" for logs, into out. */
void resolve_addr_str(const struct resolve_addr *a, char *out, size_t size);

#endif
