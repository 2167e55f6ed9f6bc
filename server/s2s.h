/*
 * The s2s manager: federation with other XMPP servers (RFC 6120 server
 * streams, STARTTLS, SASL EXTERNAL with certificates (XEP-0178) and
 * dialback (XEP-0220) with XEP-0185 keys).  It is the router's remote
 * route (stanzas for domains not served here) and the accept function of
 * `module: s2s` listeners.  Loop thread only.
 */
#ifndef PARLEY_S2S_H
#define PARLEY_S2S_H

#include <ev.h>
#include <stdint.h>
#include "lib/util.h"

/* Register the listener kind and the remote route, load the dialback
 * secret, start the resolver and the client TLS context.  Before
 * listeners_open.  -1 with a malloc'd message. */
int s2s_start(struct ev_loop *loop, char **error_r);
/* After a reload: close the streams with domains the new allow/deny
 * lists refuse, and say so in report.  Other options apply to new
 * connections as they are read at each use. */
void s2s_reload(struct buf *report);
struct listen_config;
struct limits_config;
/* Take an accepted socket of a `module: s2s` listener: an incoming
 * stream (s2s_start registers it as the listener kind's accept function;
 * the fuzz target tests/fuzz/fuzz-dialback.c calls it on a socketpair).
 * fd is non-blocking; the stream owns it from here on. */
void s2s_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port, const struct listen_config *lc,
                const struct limits_config *limits);
/* Close every s2s stream (server stop): queued stanzas bounce. */
void s2s_shutdown_all(void);
void s2s_stop(void);

struct s2s_stats {
	uint64_t out_connections, in_connections; /* streams that authenticated */
	uint64_t out_failures;                    /* connections that failed to open */
	uint64_t stanzas_out, stanzas_in, bounced;
	uint64_t dialback_valid, dialback_invalid, external;
	uint64_t refused; /* incoming streams refused (policy, limits, bad input) */
	/* outgoing streams that got ready with a certificate DANE authenticated,
	 * and those refused because it matched none of the TLSA records */
	uint64_t dane_valid, dane_mismatch;
};
const struct s2s_stats *s2s_stats(void);
/* Current streams: outgoing established/opening, incoming. */
void s2s_counts(unsigned *out_r, unsigned *opening_r, unsigned *in_r);

/* One line per stream and domain pair for `parleyctl s2s-list`:
 * direction, remote domain, local domain, TLS, authentication, since,
 * queue length, and the id of the connection that carries the pair
 * (pairs multiplexed on one connection share it; "-" while none). */
void s2s_list(struct buf *out);
/* Close every stream with domain (remote); returns how many. */
unsigned s2s_close_domain(const char *domain);

/* The dialback key (XEP-0185) for receiving, originating and stream id:
 * hex HMAC-SHA256 keyed with SHA-256 of the secret, into out (65 bytes). */
void s2s_dialback_key(const char *receiving, const char *originating, const char *id, char out[65]);
/* Set the secret keys derive from (s2s_start does, from the file or
 * random bytes). */
void s2s_dialback_set_secret(const void *secret, size_t len);

#endif
