/*
 * Client-to-server streams (RFC 6120): stream headers and features,
 * STARTTLS, SASL, resource binding, then stanzas to and from the router.
 * Loop thread.
 */
#ifndef PARLEY_C2S_H
#define PARLEY_C2S_H

#include <ev.h>
#include "config.h"
#include "stanza.h"

/* Take over an accepted, non-blocking client socket. */
void c2s_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port, const struct listen_config *lc,
                const struct limits_config *limits);
struct stream;
/* Run the client state machine on a stream that is already open (XMPP over
 * WebSocket: the HTTP connection after its upgrade, with its transport set);
 * it counts against the per-address limit like an accepted socket (the
 * caller checks the limit first with c2s_ip_admits). */
void c2s_attach(struct stream *st, const struct listen_config *lc, const struct limits_config *limits);
/* Close every client stream with <system-shutdown/>. */
void c2s_shutdown_all(void);
struct host;
/* Close every client stream of host h (authenticated or not) with stream
 * error e (a removed virtual host). */
void c2s_close_host(const struct host *h, enum stream_error e, const char *text);
/* Close with stream error e every client stream of user on h: the bound
 * ones (sm_kick_user ends their sessions first), and those authenticated
 * as user and not yet bound or still in a SASL exchange for user (which
 * is cancelled), so that none binds a session of a removed account. */
void c2s_close_user(const struct host *h, const char *user, enum stream_error e, const char *text);
/* Client streams still attached to h (closing ones included); with abort,
 * close them at once without writing more. */
unsigned c2s_count_host(const struct host *h, bool abort);
/* Client streams open now, authenticated or not. */
unsigned c2s_count(void);
/* Stanzas of bound sessions since start, indexed by enum stanza_kind:
 * in = sent by clients, out = delivered to clients. */
struct c2s_stats {
	uint64_t in[4], out[4];
};
const struct c2s_stats *c2s_stats(void);
/* Whether limits.max_connections_per_ip lets one more client stream from
 * ip in.  An address's open client streams and its stream management
 * sessions that wait to be resumed count; at the limit, a stream is still
 * let in while more of those sessions wait than streams were let in over
 * the limit, so that a client can come back to resume: one that binds a
 * new session instead (or resumes one that waited elsewhere) ends the
 * session from its address that has waited longest, as its expiry would. */
bool c2s_ip_admits(const char *ip, const struct limits_config *limits);

#endif
