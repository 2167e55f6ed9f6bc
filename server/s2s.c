/*
 * The s2s manager.  Loop thread only.
 *
 * Outgoing: one struct s2s_out per (local domain, remote domain) pair,
 * reused while it lives.  It resolves the remote domain (the static map of
 * the config, else DNS through server/resolve.c), connects to its
 * addresses in order, the next starting beside one still unanswered after
 * s2s.connect_delay (Happy Eyeballs), opens a jabber:server stream, takes
 * STARTTLS (required unless s2s.require_tls is off), then authenticates
 * with SASL EXTERNAL when the peer's certificate verifies and the peer
 * offers it, else with dialback; a further local domain may instead share
 * a stream that works (multiplexing, below).  Once authenticated it may
 * ask for compression (XEP-0138, compression.s2s).  Stanzas queue
 * (bounded by s2s.max_queue) until it is ready; when it fails they
 * bounce with <remote-server-not-found/> or, on a timeout,
 * <remote-server-timeout/>, and the remote domain backs off (stanzas for
 * it bounce at once, the wait doubling at each failure; a pair refused on
 * a shared stream backs off alone).  The peer's answer to our dialback
 * key is XEP-0220 2.1.1's: 'invalid' bounces with
 * <internal-server-error/> and ends the stream, a dialback error bounces
 * that pair's stanzas with <remote-server-timeout/> and ends no other
 * pair.  An outgoing stream also carries the <db:verify/> requests of
 * the receiving role; an error in answer to one is passed on to the
 * initiating server as a <remote-server-not-found/> dialback error
 * (XEP-0220 2.5), never as 'invalid'.
 *
 * Incoming: a struct s2s_in per accepted stream.  It offers STARTTLS,
 * then EXTERNAL (when the peer's certificate verifies for the domain in
 * the header's 'from') and dialback.  <db:result/> is checked by asking
 * the originating domain's authoritative server over our outgoing stream
 * to it (<db:verify/>), or at once when the stream's certificate verifies
 * for that domain; <db:verify/> is answered with our own key (the
 * authoritative role).  A <db:result/> or <db:verify/> with a 'type' is
 * an answer, which an incoming stream gets only on a bidirectional route
 * of ours: any other is ignored (XEP-0220 3.1, unsolicited answers).  A
 * stanza is routed only when its 'from' domain
 * authenticated on this stream (else <invalid-from/>) and the pair of its
 * 'from' and 'to' domains did (else <host-unknown/>; peer_route).
 *
 * DANE (s2s.dane): the resolver hands each address the secure TLSA
 * records of its host (server/resolve.h); a connection to such an
 * address must present a certificate that matches them
 * (out_dane_check), which then stands for a verified certificate, and a
 * mismatch fails the connection without dialback.
 *
 * Bidirectional streams (XEP-0288): when both certificates verify, the
 * connecting side asks for one with <bidi/> before SASL EXTERNAL; the
 * accepting side then routes our stanzas for the peer over that incoming
 * stream (a struct s2s_out whose 'via' is the struct s2s_in), and the
 * connecting side accepts the peer's stanzas on its outgoing stream.
 *
 * Invariants: a stream's owner pointer is cleared before the s2s object
 * that owned it is freed, so a late ops callback finds nothing (a
 * bidirectional route never owns its stream: the incoming side does, and
 * frees the route with it); stanzas
 * from a jabber:server stream are moved into jabber:client before they
 * are routed (the rest of the server knows one stanza namespace), and
 * written back without a namespace, which the peer reads as
 * jabber:server; every queued stanza is either sent or bounced.
 */
#include "s2s.h"
#include "s2s-cert.h"
#include "host.h"
#include "listener.h"
#include "resolve.h"
#include "router.h"
#include "server.h"
#include "stream.h"
#include "tls.h"
#include "lib/latency.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_DIALBACK "jabber:server:dialback"
#define NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define NS_BIDI "urn:xmpp:bidi"
#define NS_BIDI_FEATURE "urn:xmpp:features:bidi"
#define MAX_AUTHED 64 /* domain pairs one incoming stream may authenticate */

enum out_state {
	OUT_RESOLVING,
	OUT_CONNECTING,
	OUT_HEADER,   /* header sent, waiting for the peer's */
	OUT_FEATURES, /* waiting for features */
	OUT_TLS,      /* <starttls/> sent, or the handshake runs */
	OUT_SASL,     /* <auth mechanism='EXTERNAL'/> sent */
	OUT_DIALBACK, /* <db:result/> sent */
	OUT_COMPRESS, /* authenticated, <compress/> sent (XEP-0138) */
	OUT_READY,
};
static const char *const out_state_names[] = { "resolving",     "connecting", "header",   "features", "tls",
	                                       "sasl-external", "dialback",   "compress", "ready" };

struct verify_req {
	uint64_t in_id; /* the incoming stream that asked */
	char *stream_id;
	char *key;
	bool sent;
	struct verify_req *next;
};

#define MAX_ATTEMPTS 4 /* connection attempts in flight at once (Happy Eyeballs) */

struct s2s_out;

/* One connection attempt to one resolved address. */
struct out_attempt {
	struct s2s_out *o;
	int fd; /* -1: slot free */
	size_t addr;
	ev_io w;
};

struct s2s_out {
	char *local, *remote;
	enum out_state state;
	struct stream *st;
	struct resolve_req *res;
	struct resolve_addr *addrs;
	size_t naddrs, next_addr;
	struct out_attempt attempts[MAX_ATTEMPTS]; /* while connecting */
	unsigned nattempts;
	ev_timer next_attempt; /* Happy Eyeballs: start the next address (s2s.connect_delay) */
	bool direct_tls;
	struct resolve_tlsa *dane; /* TLSA of the address connected to (owned by addrs), or NULL */
	bool dane_ok;              /* the peer's certificate matched them */
	ev_timer timer;            /* connect timeout */
	ev_timer kick;             /* starts the connection from the loop */
	struct xml_node **queue;
	size_t nqueue;
	struct verify_req *verifies;
	char *remote_id;
	const char *auth;   /* "dialback", "external" */
	const char *authed; /* how it authenticated, once it did (before compression) */
	bool sasl_done;
	bool peer_compress;      /* the peer offered zlib compression (XEP-0138) */
	bool bidi;               /* XEP-0288: the peer may send its stanzas on this stream */
	struct s2s_in *via;      /* bidirectional: the incoming stream that carries ours */
	struct s2s_out *carrier; /* piggybacking: the route whose stream this one shares */
	bool peer_dialback;      /* the peer offered dialback in its last features */
	double since;
	struct s2s_out *next;
};

struct s2s_in {
	struct stream *st;
	const struct listen_config *lc;
	char id[17];
	char *local;  /* the header's 'to' */
	char *remote; /* the header's 'from', when given */
	char *authed_remote[MAX_AUTHED];
	char *authed_local[MAX_AUTHED];
	unsigned nauthed;
	unsigned pending; /* dialback verifications in flight */
	bool header_sent;
	bool external_ok;         /* SASL EXTERNAL succeeded for remote */
	bool bidi;                /* the peer asked for XEP-0288 */
	struct s2s_out *bidi_out; /* our route to remote over this stream */
	const char *auth;
	double opened, since;
	char ip[64];
	struct s2s_in *next;
};

/* A remote domain backed off: every local domain's stanzas for it bounce
 * until 'until' (local NULL), or one pair's only (local set: the peer
 * refused that pair on a shared stream).  A pair's entry outlives its
 * wait: the pair rides no more and opens a connection of its own. */
struct backoff {
	char *domain;
	char *local;
	double until, delay;
	enum stanza_error error;
	struct backoff *next;
};

static struct ev_loop *loop_;
static struct s2s_out *outs;
static struct s2s_in *ins;
static struct backoff *backoffs;
static struct s2s_stats stats;
static unsigned char secret_hash[32];
static bool started;

static const struct s2s_config *cfg(void)
{
	return &server_config()->s2s;
}

const struct s2s_stats *s2s_stats(void)
{
	return &stats;
}

/* ---- dialback keys (XEP-0185) ------------------------------------------------ */

void s2s_dialback_key(const char *receiving, const char *originating, const char *id, char out[65])
{
	struct buf b = { 0 };
	buf_printf(&b, "%s %s %s", receiving, originating, id);
	unsigned char mac[32];
	unsigned int len = sizeof(mac);
	HMAC(EVP_sha256(), secret_hash, sizeof(secret_hash), (const unsigned char *)b.data, b.len, mac, &len);
	buf_free(&b);
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[64] = '\0';
	explicit_bzero(mac, sizeof(mac));
}

/* The peer's certificate chains to a trusted CA (tls_peer_verified),
 * names domain as an s2s certificate may (dNSName, SRVName or xmppAddr;
 * server/s2s-cert.h), and its extended key usage, when it has one, allows
 * the role the peer plays on this connection: serverAuth for a peer we
 * connected to, clientAuth or serverAuth for one that connected to us
 * (incoming).  *why_r (optional) says why not. */
static bool peer_cert_ok(SSL *ssl, const char *domain, bool incoming, const char **why_r)
{
	const char *dummy;
	if (why_r == NULL)
		why_r = &dummy;
	if (!tls_peer_verified(ssl, NULL, why_r))
		return false;
	X509 *cert = SSL_get0_peer_certificate(ssl);
	if (!s2s_cert_names_domain(cert, domain)) {
		*why_r = "the certificate does not name the domain (dNSName, SRVName or xmppAddr)";
		return false;
	}
	if (!s2s_cert_eku_allows(cert, incoming)) {
		*why_r = incoming ? "the certificate's extended key usage allows neither clientAuth "
		                    "nor serverAuth"
		                  : "the certificate's extended key usage does not allow serverAuth";
		return false;
	}
	return true;
}

static int load_secret(const char *file, char **error_r)
{
	unsigned char raw[4096];
	size_t n = 0;
	if (file == NULL) {
		random_bytes(raw, 32);
		n = 32;
	} else {
		FILE *f = fopen(file, "r");
		if (f == NULL) {
			*error_r = xasprintf("s2s.dialback_secret_file %s: %s", file, strerror(errno));
			return -1;
		}
		n = fread(raw, 1, sizeof(raw), f);
		fclose(f);
		while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
			n--;
		if (n < 16) {
			*error_r = xasprintf(
			        "s2s.dialback_secret_file %s: the secret must be at least 16 bytes", file);
			explicit_bzero(raw, sizeof(raw));
			return -1;
		}
	}
	s2s_dialback_set_secret(raw, n);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

void s2s_dialback_set_secret(const void *secret, size_t len)
{
	unsigned int hlen = sizeof(secret_hash);
	EVP_Digest(secret, len, secret_hash, &hlen, EVP_sha256(), NULL);
}

/* ---- helpers ------------------------------------------------------------------ */

/* Stanzas of a jabber:server stream move into jabber:client. */
static void to_client_ns(struct xml_node *el)
{
	if (el->type != XML_ELEMENT)
		return;
	if (strcmp(el->ns, NS_SERVER) == 0)
		el->ns = NS_CLIENT;
	for (struct xml_node *c = el->children; c != NULL; c = c->next)
		to_client_ns(c);
}

static void write_header(struct stream *st, const char *from, const char *to, const char *id)
{
	struct buf b = { 0 };
	buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER
	                   "' xmlns:stream='" NS_STREAM "' xmlns:db='" NS_DIALBACK "' from='");
	xml_escape(&b, from, strlen(from), true);
	if (to != NULL) {
		buf_append_str(&b, "' to='");
		xml_escape(&b, to, strlen(to), true);
	}
	if (id != NULL)
		buf_printf(&b, "' id='%s", id);
	buf_append_str(&b, "' version='1.0'>");
	stream_write(st, b.data, b.len);
	buf_free(&b);
}

static void write_db_error(struct stream *st, const char *name, const char *from, const char *to,
                           const char *id, enum stanza_error e);

/* "<db:NAME from='F' to='T' [id='I'": the start tag up to its last
 * attribute value's closing quote. */
static void db_start_tag(struct buf *b, const char *name, const char *from, const char *to, const char *id)
{
	buf_printf(b, "<db:%s from='", name);
	xml_escape(b, from, strlen(from), true);
	buf_append_str(b, "' to='");
	xml_escape(b, to, strlen(to), true);
	if (id != NULL) {
		buf_append_str(b, "' id='");
		xml_escape(b, id, strlen(id), true);
	}
}

/* <db:NAME from to [id] [type]>text</db:NAME>; type 'error' carries
 * <remote-server-not-found/> (XEP-0220 2.4: the verification failed). */
static void write_db(struct stream *st, const char *name, const char *from, const char *to, const char *id,
                     const char *type, const char *text)
{
	if (type != NULL && strcmp(type, "error") == 0 && text == NULL) {
		write_db_error(st, name, from, to, id, SE_REMOTE_SERVER_NOT_FOUND);
		return;
	}
	struct buf b = { 0 };
	db_start_tag(&b, name, from, to, id);
	if (type != NULL)
		buf_printf(&b, "' type='%s", type);
	if (text != NULL) {
		buf_append_str(&b, "'>");
		xml_escape(&b, text, strlen(text), false);
		buf_printf(&b, "</db:%s>", name);
	} else {
		buf_append_str(&b, "'/>");
	}
	stream_write(st, b.data, b.len);
	buf_free(&b);
}

/* A dialback error (XEP-0220 2.4): <db:NAME type='error'> with the stanza
 * error condition e.  Not a stream error: the stream stays open. */
static void write_db_error(struct stream *st, const char *name, const char *from, const char *to,
                           const char *id, enum stanza_error e)
{
	struct buf b = { 0 };
	db_start_tag(&b, name, from, to, id);
	buf_printf(&b, "' type='error'><error type='%s'><%s xmlns='" NS_STANZAS "'/></error></db:%s>",
	           stanza_error_type(e), stanza_error_name(e), name);
	stream_write(st, b.data, b.len);
	buf_free(&b);
}

/* The condition of a dialback error the peer sent, for the log. */
static const char *db_error_condition(const struct xml_node *el)
{
	const struct xml_node *err = xml_first_element(el);
	const struct xml_node *cond = err != NULL ? xml_first_element(err) : NULL;
	return cond != NULL ? cond->name : "none given";
}

/* The entry of the remote domain (local NULL) or of one pair. */
static struct backoff *backoff_find(const char *local, const char *domain)
{
	for (struct backoff *b = backoffs; b != NULL; b = b->next)
		if (strcmp(b->domain, domain) == 0 &&
		    (local == NULL ? b->local == NULL : b->local != NULL && strcmp(b->local, local) == 0))
			return b;
	return NULL;
}

/* The wait that holds up stanzas from local to domain now: the domain's
 * or the pair's, NULL when neither waits. */
static struct backoff *backoff_active(const char *local, const char *domain)
{
	double now = ev_now(loop_);
	struct backoff *b = backoff_find(NULL, domain);
	if (b != NULL && now < b->until)
		return b;
	b = backoff_find(local, domain);
	return b != NULL && now < b->until ? b : NULL;
}

/* Back off domain (local NULL) or the pair from local to it. */
static void backoff_fail(const char *local, const char *domain, enum stanza_error e)
{
	struct backoff *b = backoff_find(local, domain);
	if (b == NULL) {
		b = xcalloc(1, sizeof(*b));
		b->domain = xstrdup(domain);
		b->local = local != NULL ? xstrdup(local) : NULL;
		b->next = backoffs;
		backoffs = b;
	}
	double base = cfg()->backoff, max = cfg()->max_backoff;
	b->delay = b->delay <= 0 ? base : b->delay * 2 > max ? max : b->delay * 2;
	b->until = ev_now(loop_) + b->delay;
	b->error = e;
}

static void backoff_free(struct backoff *b)
{
	free(b->domain);
	free(b->local);
	free(b);
}

/* domain is up: its back-off ends; with local, the wait of that pair
 * ends too (its entry stays: the pair keeps to connections of its own). */
static void backoff_clear(const char *local, const char *domain)
{
	for (struct backoff **pp = &backoffs; *pp != NULL;) {
		struct backoff *b = *pp;
		if (strcmp(b->domain, domain) != 0) {
			pp = &b->next;
		} else if (b->local == NULL) {
			*pp = b->next;
			backoff_free(b);
		} else {
			if (local != NULL && strcmp(b->local, local) == 0)
				b->until = b->delay = 0;
			pp = &b->next;
		}
	}
}

/* ---- outgoing ------------------------------------------------------------------ */

static const struct stream_ops out_ops;
/* Has the peer authenticated, on this stream, for stanzas from the domain
 * 'from' to the local domain 'to' (NULL: to any local domain)? */
typedef bool peer_authed_fn(void *ctx, const char *from, const char *to);
static int peer_route(struct xml_node *el, peer_authed_fn *authed, void *ctx, const char **why_r);
static void in_verified(uint64_t in_id, const char *local, const char *remote, const char *type);
static bool db_addressed(const struct xml_node *el, const char *from, const char *to);

static struct s2s_out *out_find(const char *local, const char *remote)
{
	for (struct s2s_out *o = outs; o != NULL; o = o->next)
		if (strcmp(o->local, local) == 0 && strcmp(o->remote, remote) == 0)
			return o;
	return NULL;
}

static void out_unlink(struct s2s_out *o)
{
	for (struct s2s_out **pp = &outs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			return;
		}
	}
}

static void out_release_riders(struct s2s_out *carrier);

/* Close every connection attempt still in flight. */
static void out_attempts_stop(struct s2s_out *o)
{
	ev_timer_stop(loop_, &o->next_attempt);
	for (unsigned i = 0; i < MAX_ATTEMPTS; i++) {
		struct out_attempt *t = &o->attempts[i];
		if (t->fd < 0)
			continue;
		ev_io_stop(loop_, &t->w);
		close(t->fd);
		t->fd = -1;
	}
	o->nattempts = 0;
}

/* A route piggybacking on another's stream (XEP-0220 2.4) lets go of it:
 * the stream stays the carrier's. */
static void out_unride(struct s2s_out *o)
{
	if (o->carrier == NULL)
		return;
	o->carrier = NULL;
	o->st = NULL;
}

/* Free o; its stream (if any) was told to close or is gone.  The
 * dialback verifications still waiting on it are answered with an error
 * on the incoming streams that asked. */
static void out_free(struct s2s_out *o)
{
	out_unride(o);
	out_release_riders(o);
	out_unlink(o);
	ev_timer_stop(loop_, &o->timer);
	ev_timer_stop(loop_, &o->kick);
	out_attempts_stop(o);
	resolve_cancel(&o->res);
	for (size_t i = 0; i < o->naddrs; i++)
		resolve_tlsa_unref(&o->addrs[i].tlsa);
	if (o->via != NULL)
		o->via->bidi_out = NULL; /* the stream is the incoming one's */
	else if (o->st != NULL)
		o->st->owner = NULL;
	for (size_t i = 0; i < o->nqueue; i++)
		xml_unref(&o->queue[i]);
	free(o->queue);
	while (o->verifies != NULL) {
		struct verify_req *v = o->verifies;
		o->verifies = v->next;
		/* The incoming stream that waits on it must not wait forever. */
		log_info("s2s %s -> %s: the stream closed before the authoritative server answered; "
		         "dialback for stream %llu fails with an error",
		         o->local, o->remote, (unsigned long long)v->in_id);
		in_verified(v->in_id, o->local, o->remote, "error");
		free(v->stream_id);
		free(v->key);
		free(v);
	}
	free(o->addrs);
	free(o->remote_id);
	free(o->local);
	free(o->remote);
	free(o);
}

/* Log why o failed and bounce its queue with e. */
static void out_bounce_queue(struct s2s_out *o, enum stanza_error e, const char *why)
{
	log_info("s2s %s -> %s: %s (%zu queued stanzas bounce with <%s/>)", o->local, o->remote, why,
	         o->nqueue, stanza_error_name(e));
	for (size_t i = 0; i < o->nqueue; i++) {
		stats.bounced++;
		router_bounce(o->queue[i], e, why);
		xml_unref(&o->queue[i]);
	}
	o->nqueue = 0;
}

/* Bounce the queue with e, answer the pending verifications with an
 * error, back off when the peer failed (not when we gave up on it, as
 * the administrator's close does), close and free. */
static void out_end(struct s2s_out *o, enum stanza_error e, const char *why, bool peer_failed)
{
	out_unlink(o);
	if (peer_failed) {
		stats.out_failures++;
		/* a rider failed on a stream that works: its pair alone */
		backoff_fail(o->carrier != NULL ? o->local : NULL, o->remote, e);
	}
	out_bounce_queue(o, e, why);
	out_unride(o); /* a rider's stream is its carrier's: it stays open */
	if (o->st != NULL) {
		struct stream *st = o->st;
		o->st = NULL;
		if (o->via != NULL) {
			o->via->bidi_out = NULL;
			o->via = NULL;
		} else {
			st->owner = NULL;
		}
		if (o->state >= OUT_FEATURES)
			stream_close(st, -1, NULL);
		else
			stream_abort(st);
	}
	out_free(o);
}

/* The connection failed: out_end, backing off. */
static void out_fail(struct s2s_out *o, enum stanza_error e, const char *why)
{
	out_end(o, e, why, true);
}

/* Close a working stream on purpose (idle, administrator, stop, the
 * peer's stream error) with stream error e (-1: none) and free o; a
 * bidirectional route closes the incoming stream that carries it. */
static void out_close(struct s2s_out *o, int e)
{
	out_unride(o); /* a rider's stream is its carrier's: it stays open */
	struct stream *st = o->st;
	o->st = NULL;
	if (o->via != NULL) {
		o->via->bidi_out = NULL;
		o->via = NULL;
	} else if (st != NULL) {
		st->owner = NULL;
	}
	if (st != NULL)
		stream_close(st, e, NULL);
	out_free(o);
}

static void out_send_verifies(struct s2s_out *o)
{
	for (struct verify_req *v = o->verifies; v != NULL; v = v->next) {
		if (v->sent)
			continue;
		v->sent = true;
		write_db(o->st, "verify", o->local, o->remote, v->stream_id, NULL, v->key);
	}
}

static void out_ready(struct s2s_out *o, const char *auth)
{
	o->state = OUT_READY;
	o->auth = auth;
	o->since = ev_now(loop_);
	ev_timer_stop(loop_, &o->timer);
	backoff_clear(o->local, o->remote);
	stats.out_connections++;
	if (o->dane_ok)
		stats.dane_valid++;
	log_info("s2s %s -> %s: ready (%s, %s), %zu queued stanzas sent", o->local, o->remote,
	         o->st->ssl != NULL ? SSL_get_version(o->st->ssl) : "no TLS", auth, o->nqueue);
	for (size_t i = 0; i < o->nqueue; i++) {
		stats.stanzas_out++;
		stream_send(o->st, o->queue[i], NS_CLIENT);
		xml_unref(&o->queue[i]);
	}
	o->nqueue = 0;
}

static void out_connect_next(struct s2s_out *o);

static void out_fallback(struct s2s_out *o, const char *why);

static void out_timeout_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct s2s_out *o = w->data;
	if (o->carrier != NULL) {
		out_fallback(o, "no answer to the dialback request on the shared stream");
		return;
	}
	char why[128];
	snprintf(why, sizeof(why), "no authenticated stream within %g s (state %s)", cfg()->connect_timeout,
	         out_state_names[o->state]);
	out_fail(o, SE_REMOTE_SERVER_TIMEOUT, why);
}

static void out_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "s2s-connect");
	out_timeout_event(loop, w, revents);
	latency_end();
}

static void out_start_stream(struct s2s_out *o, int fd, const char *ip, unsigned port)
{
	const struct limits_config *l = &server.cfg->limits;
	struct xml_parser_limits pl = {
		.max_stanza = l->max_stanza_size,
		.max_depth = l->max_depth,
		.max_attrs = l->max_attrs,
	};
	o->st = stream_new(loop_, fd, ip, port, &pl, l->max_output, false, &out_ops, o);
	if (o->direct_tls) {
		o->state = OUT_TLS;
		SSL *ssl = tls_new_client(fd, o->remote, o->local, "xmpp-server");
		if (ssl == NULL)
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "cannot start TLS");
		else
			stream_start_tls_client(o->st, ssl);
		return;
	}
	o->state = OUT_HEADER;
	write_header(o->st, o->local, o->remote, NULL);
}

/* Happy Eyeballs (RFC 8305, simplified): the addresses are tried in the
 * resolver's order (each SRV target's AAAA, then its A records), but an
 * attempt that has not connected within s2s.connect_delay does not hold
 * up the next one: that one starts beside it, up to MAX_ATTEMPTS at once.
 * A failed attempt starts the next address at once.  The first attempt
 * that connects wins and the others are closed. */
static void out_attempt_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct out_attempt *t = w->data;
	struct s2s_out *o = t->o;
	ev_io_stop(loop, &t->w);
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	const struct resolve_addr *a = &o->addrs[t->addr];
	char where[96];
	resolve_addr_str(a, where, sizeof(where));
	int fd = t->fd;
	t->fd = -1;
	o->nattempts--;
	if (err != 0) {
		log_info("s2s %s -> %s: connecting to %s: %s", o->local, o->remote, where, strerror(err));
		close(fd);
		ev_timer_stop(loop_, &o->next_attempt);
		out_connect_next(o);
		return;
	}
	if (o->nattempts > 0)
		log_debug("s2s %s -> %s: %s connected first; %u other attempts closed", o->local, o->remote,
		          where, o->nattempts);
	out_attempts_stop(o);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (a->sa.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
	} else {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	}
	log_debug("s2s %s -> %s: connected to %s", o->local, o->remote, where);
	o->direct_tls = a->direct_tls;
	o->dane = a->tlsa;
	out_start_stream(o, fd, ip, port);
}

/* Start an attempt on the next address that takes one; when it is not
 * the last address, the next starts after s2s.connect_delay unless this
 * one has connected or failed by then.  With no attempt left in flight
 * and no address left, the connection fails. */
static void out_connect_next(struct s2s_out *o)
{
	while (o->next_addr < o->naddrs && o->nattempts < MAX_ATTEMPTS) {
		size_t i = o->next_addr++;
		const struct resolve_addr *a = &o->addrs[i];
		int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, (const struct sockaddr *)&a->sa, a->len) < 0 && errno != EINPROGRESS) {
			char where[96];
			resolve_addr_str(a, where, sizeof(where));
			log_info("s2s %s -> %s: connecting to %s: %s", o->local, o->remote, where,
			         strerror(errno));
			close(fd);
			continue;
		}
		struct out_attempt *t = NULL;
		for (unsigned k = 0; t == NULL && k < MAX_ATTEMPTS; k++)
			if (o->attempts[k].fd < 0)
				t = &o->attempts[k];
		t->o = o;
		t->fd = fd;
		t->addr = i;
		ev_io_init(&t->w, out_attempt_cb, fd, EV_WRITE);
		t->w.data = t;
		ev_io_start(loop_, &t->w);
		o->nattempts++;
		o->state = OUT_CONNECTING;
		double delay = cfg()->connect_delay;
		if (o->next_addr < o->naddrs && delay > 0) {
			ev_timer_stop(loop_, &o->next_attempt);
			ev_timer_set(&o->next_attempt, delay, 0);
			ev_timer_start(loop_, &o->next_attempt);
		}
		return;
	}
	if (o->nattempts == 0)
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "no address of the domain accepted a connection");
}

static void out_next_attempt_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "s2s-connect-delay");
	out_connect_next(w->data);
	latency_end();
}

static void out_resolved(void *ctx, const struct resolve_addr *addrs, size_t n, const char *error)
{
	struct s2s_out *o = ctx;
	o->res = NULL;
	if (n == 0) {
		char why[160];
		snprintf(why, sizeof(why), "cannot resolve %s: %s", o->remote, error);
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, why);
		return;
	}
	o->addrs = xcalloc(n, sizeof(*o->addrs));
	memcpy(o->addrs, addrs, n * sizeof(*addrs));
	o->naddrs = n;
	for (size_t i = 0; i < n; i++)
		resolve_tlsa_ref(o->addrs[i].tlsa);
	struct buf list = { 0 };
	for (size_t i = 0; i < n; i++) {
		char where[96];
		resolve_addr_str(&addrs[i], where, sizeof(where));
		buf_printf(&list, "%s%s", i > 0 ? ", " : "", where);
	}
	log_debug("s2s %s -> %s: resolved to %s", o->local, o->remote, list.data);
	buf_free(&list);
	out_connect_next(o);
}

static void out_kick_event(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct s2s_out *o = w->data;
	const struct s2s_static_host *sh = s2s_config_static(cfg(), o->remote);
	if (sh == NULL) {
		o->res = resolve_s2s(o->remote, out_resolved, o);
		return;
	}
	struct resolve_addr a = { .direct_tls = sh->direct_tls };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a.sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a.sa;
	if (inet_pton(AF_INET, sh->address, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)sh->port);
		a.len = sizeof(*s4);
	} else {
		inet_pton(AF_INET6, sh->address, &s6->sin6_addr);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)sh->port);
		a.len = sizeof(*s6);
	}
	out_resolved(o, &a, 1, NULL);
}

static void out_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	latency_begin(LATENCY_TIMER, "s2s-kick");
	out_kick_event(loop, w, revents);
	latency_end();
}

static struct s2s_out *out_new(const char *local, const char *remote)
{
	struct s2s_out *o = xcalloc(1, sizeof(*o));
	o->local = xstrdup(local);
	o->remote = xstrdup(remote);
	for (unsigned i = 0; i < MAX_ATTEMPTS; i++)
		o->attempts[i].fd = -1;
	o->state = OUT_RESOLVING;
	o->since = ev_now(loop_);
	ev_timer_init(&o->timer, out_timeout_cb, cfg()->connect_timeout, 0);
	o->timer.data = o;
	ev_timer_start(loop_, &o->timer);
	ev_timer_init(&o->kick, out_kick_cb, 0, 0);
	o->kick.data = o;
	ev_timer_start(loop_, &o->kick);
	ev_timer_init(&o->next_attempt, out_next_attempt_cb, 0, 0);
	o->next_attempt.data = o;
	o->next = outs;
	outs = o;
	log_debug("s2s %s -> %s: opening a connection", local, remote);
	return o;
}

/* ---- multiplexing (XEP-0220 2.4, "piggybacking") ------------------------------
 *
 * A local domain B that needs a route to remote R while an authenticated
 * stream A -> R of ours works sends <db:result from='B' to='R'/> on that
 * stream, its key made with that stream's id, and once R answers 'valid'
 * B's stanzas go on it too.  The route of B (a "rider") keeps its own
 * queue, timer and verifications and borrows the stream of A's route
 * (its "carrier"): it never closes or owns it.  A refusal fails B's pair
 * alone (out_rider_answer, XEP-0220 2.1.1): its queue bounces, the pair
 * backs off, and B opens a connection of its own the next time; after
 * 'invalid' the carrier's stream closes too, as the peer closes it.  No
 * answer within s2s.connect_timeout, or the carrier closing before the
 * answer, sends B to a connection of its own, its queue intact.  When the
 * carrier closes later, B's route goes with it and the next stanza opens
 * anew.  Only our own streams carry riders (not a
 * bidirectional route over an incoming stream), and only when the peer
 * offered dialback on it. */

/* A working stream of ours to remote that a route from local may share. */
static struct s2s_out *out_find_carrier(const char *local, const char *remote)
{
	const struct s2s_config *c = cfg();
	if (!c->multiplex || !c->dialback)
		return NULL;
	for (struct s2s_out *o = outs; o != NULL; o = o->next)
		if (o->carrier == NULL && o->via == NULL && o->state == OUT_READY && o->peer_dialback &&
		    o->st != NULL && !o->st->dead && !o->st->closing && o->remote_id != NULL &&
		    strcmp(o->remote, remote) == 0 && strcmp(o->local, local) != 0)
			return o;
	return NULL;
}

/* Ask the peer, on carrier's stream, to take o's pair too. */
static void out_ride(struct s2s_out *o, struct s2s_out *carrier)
{
	ev_timer_stop(loop_, &o->kick);
	o->carrier = carrier;
	o->st = carrier->st;
	free(o->remote_id);
	o->remote_id = xstrdup(carrier->remote_id);
	char key[65];
	s2s_dialback_key(o->remote, o->local, o->remote_id, key);
	write_db(o->st, "result", o->local, o->remote, NULL, NULL, key);
	explicit_bzero(key, sizeof(key));
	o->state = OUT_DIALBACK;
	log_info("s2s %s -> %s: asking to share the stream of %s -> %s (dialback)", o->local, o->remote,
	         carrier->local, carrier->remote);
}

/* o stops riding and opens a connection of its own, keeping its queue
 * and its verifications (sent again on the new stream). */
static void out_fallback(struct s2s_out *o, const char *why)
{
	log_info("s2s %s -> %s: %s: opening a connection of its own", o->local, o->remote, why);
	out_unride(o);
	o->state = OUT_RESOLVING;
	free(o->remote_id);
	o->remote_id = NULL;
	for (struct verify_req *v = o->verifies; v != NULL; v = v->next)
		v->sent = false;
	ev_timer_stop(loop_, &o->timer);
	ev_timer_set(&o->timer, cfg()->connect_timeout, 0);
	ev_timer_start(loop_, &o->timer);
	ev_timer_stop(loop_, &o->kick);
	ev_timer_set(&o->kick, 0, 0);
	ev_timer_start(loop_, &o->kick);
}

/* carrier's stream is going: a rider that works with nothing waiting
 * goes with it (the next stanza opens anew); one still waiting for its
 * answer, or with verifications in flight, opens its own connection. */
static void out_release_riders(struct s2s_out *carrier)
{
	for (;;) {
		struct s2s_out *r = outs;
		while (r != NULL && r->carrier != carrier)
			r = r->next;
		if (r == NULL)
			return;
		out_unride(r);
		if (r->state == OUT_READY && r->nqueue == 0 && r->verifies == NULL) {
			log_info("s2s %s -> %s: the shared stream of %s -> %s closed", r->local, r->remote,
			         carrier->local, carrier->remote);
			out_free(r);
		} else {
			out_fallback(r, "the shared stream closed");
		}
	}
}

/* A new route from local to remote: on a stream already open to remote
 * when one may be shared, else a connection of its own. */
static struct s2s_out *out_open(const char *local, const char *remote)
{
	struct s2s_out *o = out_new(local, remote);
	/* a pair the peer refused on a shared stream rides no more */
	struct s2s_out *carrier =
	        backoff_find(local, remote) == NULL ? out_find_carrier(local, remote) : NULL;
	if (carrier != NULL)
		out_ride(o, carrier);
	return o;
}

/* The route a dialback answer on o's stream is for, by its 'to': o, or
 * one riding on it. */
static struct s2s_out *out_addressee(struct s2s_out *o, const struct xml_node *el)
{
	const char *t = xml_attr(el, "to");
	char *pt = t != NULL ? jid_nameprep(t) : NULL;
	struct s2s_out *found = o;
	if (pt != NULL && strcmp(pt, o->local) != 0)
		for (struct s2s_out *r = outs; r != NULL; r = r->next)
			if (r->carrier == o && strcmp(r->local, pt) == 0) {
				found = r;
				break;
			}
	free(pt);
	return found;
}

/* The peer refused r's pair on the shared stream (XEP-0220 2.1.1): its
 * queue bounces with e and the pair alone backs off; the next stanza
 * opens a connection of its own (backoff_find).  Verifications waiting
 * on r take such a connection now. */
static void out_pair_refused(struct s2s_out *r, enum stanza_error e, const char *why)
{
	stats.out_failures++;
	backoff_fail(r->local, r->remote, e);
	out_bounce_queue(r, e, why);
	if (r->verifies != NULL) {
		out_fallback(r, "verification requests wait");
		return;
	}
	out_free(r);
}

/* The peer's answer to a rider's <db:result/>.  A dialback error is for
 * that pair only and the stream goes on (XEP-0220 2.1.1, 2.5): the
 * pair's stanzas bounce with <remote-server-timeout/>.  'invalid' bounces
 * them with <internal-server-error/>, and since the peer closes a stream
 * after 'invalid' (2.2.1), the other pairs send nothing more on it: it
 * closes, and their next stanzas open a new one. */
static void out_rider_answer(struct s2s_out *r, struct xml_node *el)
{
	const char *type = xml_attr(el, "type");
	if (r->state != OUT_DIALBACK || !db_addressed(el, r->remote, r->local)) {
		log_debug("s2s %s -> %s: ignoring a <db:result/> on the shared stream", r->local, r->remote);
		return;
	}
	if (type != NULL && strcmp(type, "valid") == 0) {
		stats.dialback_valid++;
		out_send_verifies(r);
		out_ready(r, "dialback");
		return;
	}
	if (type != NULL && strcmp(type, "error") == 0) {
		char why[200];
		snprintf(why, sizeof(why),
		         "a dialback error <%s/> from the peer for the pair on the shared stream",
		         db_error_condition(el));
		out_pair_refused(r, SE_REMOTE_SERVER_TIMEOUT, why);
		return;
	}
	struct s2s_out *carrier = r->carrier;
	stats.dialback_invalid++;
	out_pair_refused(r, SE_INTERNAL_SERVER_ERROR,
	                 "the peer did not accept our dialback key on the shared stream");
	log_info("s2s %s -> %s: closing the stream the peer answered 'invalid' on", carrier->local,
	         carrier->remote);
	out_close(carrier, -1);
}

/* The stream's header. */
static void out_stream_start(struct stream *st, struct xml_node *header, const char *default_ns)
{
	struct s2s_out *o = st->owner;
	if (o == NULL) {
		xml_unref(&header);
		return;
	}
	const char *id = xml_attr(header, "id");
	const char *version = xml_attr(header, "version");
	bool ok = strcmp(default_ns, NS_SERVER) == 0 && id != NULL && version != NULL && atoi(version) >= 1;
	free(o->remote_id);
	o->remote_id = id != NULL ? xstrdup(id) : NULL;
	xml_unref(&header);
	if (!ok) {
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND,
		         "the peer's stream header is not a jabber:server 1.0 header with an id");
		return;
	}
	o->state = OUT_FEATURES;
}

/* DANE: with TLSA records for the address connected to, the peer's
 * certificate must match them: *valid_r true when it does; -1 (o failed
 * and freed) when it does not.  Without records, *valid_r false: the CA
 * check decides as before. */
static int out_dane_check(struct s2s_out *o, bool *valid_r)
{
	*valid_r = false;
	if (o->dane == NULL)
		return 0;
	SSL *ssl = o->st->ssl;
	const char *why = "no TLS, but the domain publishes TLSA records";
	enum s2s_dane_result r = S2S_DANE_MISMATCH;
	if (ssl != NULL) {
		X509 *cert = SSL_get0_peer_certificate(ssl);
		/* the SRV target is a reference identity when it is not the domain itself */
		r = s2s_cert_dane_check(cert, SSL_get_peer_cert_chain(ssl), o->dane->recs, o->dane->n,
		                        o->remote, o->dane->host, &why);
	}
	if (r == S2S_DANE_NO_USABLE)
		return 0;
	if (r == S2S_DANE_MISMATCH) {
		stats.dane_mismatch++;
		char msg[400];
		snprintf(msg, sizeof(msg),
		         "DANE: the certificate of %s does not match the TLSA records of _%u._tcp.%s (%s)",
		         o->remote, o->dane->port, o->dane->host, why);
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, msg);
		return -1;
	}
	log_info("s2s %s -> %s: DANE: the certificate matches a %s record of _%u._tcp.%s", o->local,
	         o->remote, r == S2S_DANE_MATCH_EE ? "DANE-EE(3)" : "DANE-TA(2)", o->dane->port,
	         o->dane->host);
	o->dane_ok = true;
	*valid_r = true;
	return 0;
}

/* XEP-0138 on our stream: compression.s2s is on, the peer offers zlib,
 * and the stream is ours alone (not compressed yet, not a rider's). */
static bool out_wants_compression(const struct s2s_out *o)
{
	return server_config()->compression.s2s && o->peer_compress && o->st != NULL && o->st->z == NULL &&
	       o->carrier == NULL && o->via == NULL;
}

/* The stream authenticated (how): ask for compression first when both
 * sides want it (stanzas keep queuing until the stream restarts), else
 * it is ready.  Not on a bidirectional stream (the peer's stanzas may
 * already flow there) nor for a rider. */
static void out_authenticated(struct s2s_out *o, const char *how)
{
	o->authed = how;
	if (out_wants_compression(o) && !o->bidi) {
		stream_write_str(o->st, "<compress xmlns='" NS_COMPRESS "'><method>zlib</method></compress>");
		o->state = OUT_COMPRESS;
		return;
	}
	out_ready(o, how);
}

static void out_features(struct s2s_out *o, struct xml_node *f)
{
	struct stream *st = o->st;
	const struct s2s_config *c = cfg();
	o->peer_dialback = xml_child(f, "dialback", NS_DIALBACK_FEATURE) != NULL;
	o->peer_compress = false;
	const struct xml_node *z = xml_child(f, "compression", NS_COMPRESS_FEATURE);
	for (const struct xml_node *m = z != NULL ? xml_child(z, "method", NS_COMPRESS_FEATURE) : NULL;
	     m != NULL; m = xml_next(m, "method", NS_COMPRESS_FEATURE))
		if (strcmp(xml_text(m), "zlib") == 0)
			o->peer_compress = true;
	if (st->ssl == NULL) {
		if (xml_child(f, "starttls", NS_TLS) != NULL) {
			o->state = OUT_TLS;
			stream_write_str(st, "<starttls xmlns='" NS_TLS "'/>");
			return;
		}
		if (c->require_tls) {
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND,
			         "the peer does not offer STARTTLS (s2s.require_tls is on)");
			return;
		}
	}
	if (o->authed != NULL) {
		/* The stream restarted compressed. */
		out_send_verifies(o);
		out_ready(o, o->authed);
		return;
	}
	if (o->sasl_done) {
		out_send_verifies(o);
		out_authenticated(o, o->dane_ok ? "dane" : "external");
		return;
	}
	const char *why = "no TLS";
	bool valid;
	if (out_dane_check(o, &valid) < 0)
		return;
	if (!valid)
		valid = st->ssl != NULL && peer_cert_ok(st->ssl, o->remote, false, &why);
	if (!valid && c->require_valid_certificate) {
		char msg[300];
		snprintf(msg, sizeof(msg), "the peer's certificate is not valid for %s (%s)", o->remote, why);
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, msg);
		return;
	}
	out_send_verifies(o);
	struct xml_node *mechs = xml_child(f, "mechanisms", NS_SASL);
	bool external = false;
	for (struct xml_node *m = mechs != NULL ? xml_child(mechs, "mechanism", NS_SASL) : NULL; m != NULL;
	     m = xml_next(m, "mechanism", NS_SASL))
		if (strcmp(xml_text(m), "EXTERNAL") == 0)
			external = true;
	if (valid && external) {
		/* XEP-0288: both ends are proven by certificates, so the peer's
		 * stanzas may come back on this stream. */
		if (cfg()->bidi && !out_wants_compression(o) &&
		    xml_child(f, "bidi", NS_BIDI_FEATURE) != NULL) {
			stream_write_str(st, "<bidi xmlns='" NS_BIDI "'/>");
			o->bidi = true;
		}
		char *b64 = base64_encode(o->local, strlen(o->local));
		struct buf b = { 0 };
		buf_printf(&b, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>%s</auth>", b64);
		stream_write(st, b.data, b.len);
		buf_free(&b);
		free(b64);
		o->state = OUT_SASL;
		return;
	}
	if (!c->dialback) {
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND,
		         "the peer does not accept SASL EXTERNAL and s2s.dialback is off");
		return;
	}
	char key[65];
	s2s_dialback_key(o->remote, o->local, o->remote_id, key);
	write_db(st, "result", o->local, o->remote, NULL, NULL, key);
	o->state = OUT_DIALBACK;
}

/* Whether a dialback answer is from `from` to `to` (prepared domains). */
static bool db_addressed(const struct xml_node *el, const char *from, const char *to)
{
	const char *f = xml_attr(el, "from"), *t = xml_attr(el, "to");
	if (f == NULL || t == NULL)
		return false;
	char *pf = jid_nameprep(f), *pt = jid_nameprep(t);
	bool ok = pf != NULL && pt != NULL && strcmp(pf, from) == 0 && strcmp(pt, to) == 0;
	free(pf);
	free(pt);
	return ok;
}

/* The authoritative server answered one of our <db:verify/> requests:
 * 'valid' or 'invalid' goes on to the initiating server; a dialback
 * error (step 3) becomes a <remote-server-not-found/> dialback error to
 * it (XEP-0220 2.5), not 'invalid', which would say its key was forged. */
static void out_verify_answer(struct s2s_out *o, struct xml_node *el)
{
	const char *id = xml_attr(el, "id");
	const char *type = xml_attr(el, "type");
	if (type == NULL || (strcmp(type, "valid") != 0 && strcmp(type, "error") != 0))
		type = "invalid";
	for (struct verify_req **pp = &o->verifies; *pp != NULL; pp = &(*pp)->next) {
		struct verify_req *v = *pp;
		if (!v->sent || id == NULL || strcmp(v->stream_id, id) != 0 ||
		    !db_addressed(el, o->remote, o->local))
			continue;
		*pp = v->next;
		if (strcmp(type, "error") == 0)
			log_info("s2s %s -> %s: a dialback error <%s/> from the authoritative server for "
			         "stream %llu",
			         o->local, o->remote, db_error_condition(el), (unsigned long long)v->in_id);
		in_verified(v->in_id, o->local, o->remote, type);
		free(v->stream_id);
		free(v->key);
		free(v);
		return;
	}
	log_debug("s2s %s -> %s: a <db:verify/> answer for nothing we asked", o->local, o->remote);
}

/* The authoritative role: answer a <db:verify/> request that came on st
 * (an incoming stream, or a bidirectional outgoing one) with whether the
 * key is ours.  Returns -1 (*why_r saying why) when it lacks an address. */
static int db_verify_answer(struct stream *st, struct xml_node *el, const char **why_r)
{
	const char *from = xml_attr(el, "from"), *to = xml_attr(el, "to"), *id = xml_attr(el, "id");
	if (from == NULL || to == NULL || id == NULL) {
		*why_r = "<db:verify/> needs from, to and id";
		return -1;
	}
	char *receiving = jid_nameprep(from), *originating = jid_nameprep(to);
	const char *type = "invalid";
	if (originating == NULL || !router_is_local(originating)) {
		/* XEP-0220 2.2.2: a dialback error, not a stream error. */
		log_debug("s2s stream %llu: db:verify %s -> %s: not a domain served here",
		          (unsigned long long)st->id, to, from);
		write_db_error(st, "verify", to, from, id, SE_ITEM_NOT_FOUND);
		free(receiving);
		free(originating);
		return 0;
	}
	if (receiving != NULL) {
		char key[65];
		s2s_dialback_key(receiving, originating, id, key);
		const char *got = xml_text(el);
		if (strlen(got) == 64 && secure_memeq(got, key, 64))
			type = "valid";
	}
	log_debug("s2s stream %llu: db:verify %s -> %s: %s", (unsigned long long)st->id, to, from, type);
	write_db(st, "verify", to, from, id, type, NULL);
	free(receiving);
	free(originating);
	return 0;
}

/* The peer's stanzas on our bidirectional stream: from the domain its
 * certificate proved, to our domain of the stream or of a pair riding on
 * it (XEP-0288 lets the peer use every pair the stream carries). */
static bool out_bidi_authed(void *ctx, const char *from, const char *to)
{
	const struct s2s_out *o = ctx;
	if (strcmp(from, o->remote) != 0)
		return false;
	if (to == NULL || strcmp(to, o->local) == 0)
		return true;
	for (const struct s2s_out *r = outs; r != NULL; r = r->next)
		if (r->carrier == o && r->state == OUT_READY && strcmp(r->local, to) == 0)
			return true;
	return false;
}

static bool out_stanza(struct stream *st, struct xml_node *el)
{
	struct s2s_out *o = st->owner, *r;
	if (o == NULL) {
		xml_unref(&el);
		return true;
	}
	if (xml_is(el, "error", NS_STREAM)) {
		struct xml_node *cond = xml_first_element(el);
		char why[160];
		snprintf(why, sizeof(why), "stream error <%s/> from the peer",
		         cond != NULL ? cond->name : "?");
		if (o->state == OUT_READY && o->nqueue == 0 && o->verifies == NULL) {
			/* A working connection ended: the next stanza opens another. */
			log_info("s2s %s -> %s: %s", o->local, o->remote, why);
			out_close(o, -1);
		} else {
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, why);
		}
	} else if (xml_is(el, "features", NS_STREAM) && o->state == OUT_FEATURES) {
		out_features(o, el);
	} else if (xml_is(el, "proceed", NS_TLS) && o->state == OUT_TLS) {
		SSL *ssl = tls_new_client(st->fd, o->remote, o->local, NULL);
		if (ssl == NULL)
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "cannot start TLS");
		else
			stream_start_tls_client(st, ssl);
	} else if (xml_is(el, "compressed", NS_COMPRESS) && o->state == OUT_COMPRESS) {
		if (stream_start_compression(st) < 0) {
			log_info("s2s %s -> %s: cannot start compression; going on without", o->local,
			         o->remote);
			out_ready(o, o->authed);
		} else {
			log_debug("s2s %s -> %s: zlib compression started", o->local, o->remote);
			o->state = OUT_HEADER;
			write_header(st, o->local, o->remote, NULL);
		}
	} else if (xml_is(el, "failure", NS_COMPRESS) && o->state == OUT_COMPRESS) {
		log_info("s2s %s -> %s: the peer refused compression; going on without", o->local, o->remote);
		out_ready(o, o->authed);
	} else if (xml_is(el, "failure", NS_TLS)) {
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "the peer refused STARTTLS");
	} else if (xml_is(el, "success", NS_SASL) && o->state == OUT_SASL) {
		o->sasl_done = true;
		o->state = OUT_HEADER;
		stats.external++;
		stream_restart(st);
		write_header(st, o->local, o->remote, NULL);
	} else if (xml_is(el, "failure", NS_SASL) && o->state == OUT_SASL) {
		/* EXTERNAL refused: dialback, when allowed. */
		if (!cfg()->dialback) {
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND,
			         "SASL EXTERNAL refused and s2s.dialback is off");
		} else {
			char key[65];
			s2s_dialback_key(o->remote, o->local, o->remote_id, key);
			write_db(st, "result", o->local, o->remote, NULL, NULL, key);
			o->state = OUT_DIALBACK;
		}
	} else if (xml_is(el, "result", NS_DIALBACK) && (r = out_addressee(o, el)) != o) {
		out_rider_answer(r, el);
	} else if (xml_is(el, "result", NS_DIALBACK) && o->state == OUT_DIALBACK) {
		const char *type = xml_attr(el, "type");
		if (!db_addressed(el, o->remote, o->local)) {
			log_info("s2s %s -> %s: ignoring a <db:result/> for other domains", o->local,
			         o->remote);
		} else if (type != NULL && strcmp(type, "valid") == 0) {
			stats.dialback_valid++;
			out_authenticated(o, o->dane_ok ? "dane+dialback" : "dialback");
		} else if (type != NULL && strcmp(type, "error") == 0) {
			/* XEP-0220 2.1.1: not about our key; the queue bounces
			 * with <remote-server-timeout/>. */
			char why[160];
			snprintf(why, sizeof(why), "a dialback error <%s/> from the peer",
			         db_error_condition(el));
			out_fail(o, SE_REMOTE_SERVER_TIMEOUT, why);
		} else {
			/* XEP-0220 2.1.1: 'invalid' bounces the queue with
			 * <internal-server-error/>. */
			stats.dialback_invalid++;
			out_fail(o, SE_INTERNAL_SERVER_ERROR, "the peer did not accept our dialback key");
		}
	} else if (xml_is(el, "verify", NS_DIALBACK) && xml_attr(el, "type") != NULL) {
		out_verify_answer(out_addressee(o, el), el);
	} else if (xml_is(el, "verify", NS_DIALBACK) && o->bidi && o->state == OUT_READY) {
		/* XEP-0288: the peer's requests of the authoritative role come
		 * on our stream too. */
		const char *why = NULL;
		if (db_verify_answer(st, el, &why) < 0) {
			log_info("s2s %s -> %s: closing with <improper-addressing/>: %s", o->local, o->remote,
			         why);
			stats.refused++;
			out_close(o, STE_IMPROPER_ADDRESSING);
		}
	} else if (o->bidi && o->state == OUT_READY && stanza_kind(el) != STANZA_OTHER &&
	           strcmp(el->ns, NS_SERVER) == 0) {
		/* XEP-0288: the peer's stanzas, from the domain we connected to
		 * (its certificate proved it). */
		const char *why = NULL;
		int e = peer_route(el, out_bidi_authed, o, &why);
		if (e >= 0) {
			log_info("s2s %s -> %s: closing with <%s/>: %s", o->local, o->remote,
			         stream_error_name((enum stream_error)e), why);
			stats.refused++;
			out_close(o, e);
		}
	} else {
		log_debug("s2s %s -> %s: ignoring <%s/> in state %s", o->local, o->remote, el->name,
		          out_state_names[o->state]);
	}
	xml_unref(&el);
	return false;
}

static void out_stream_end(struct stream *st)
{
	struct s2s_out *o = st->owner;
	stream_close(st, -1, NULL);
	if (o == NULL)
		return;
	if (o->state == OUT_DIALBACK) {
		/* XEP-0220 2.1.1: as a dialback error. */
		out_fail(o, SE_REMOTE_SERVER_TIMEOUT,
		         "the peer closed the stream before answering our dialback key");
		return;
	}
	if (o->state != OUT_READY || o->nqueue > 0 || o->verifies != NULL) {
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "the peer closed the stream");
		return;
	}
	log_info("s2s %s -> %s: the peer closed the stream", o->local, o->remote);
	o->st = NULL;
	st->owner = NULL;
	out_free(o);
}

static void out_error(struct stream *st, enum stream_error e, const char *text)
{
	struct s2s_out *o = st->owner;
	if (o != NULL) {
		char why[200];
		snprintf(why, sizeof(why), "bad input from the peer: %s", text != NULL ? text : "");
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, why);
	}
	stream_close(st, (int)e, text);
}

static void out_tls_ready(struct stream *st)
{
	struct s2s_out *o = st->owner;
	if (o == NULL)
		return;
	o->state = OUT_HEADER;
	write_header(st, o->local, o->remote, NULL);
}

static void out_tick(struct stream *st, double now)
{
	struct s2s_out *o = st->owner;
	if (o == NULL || o->state != OUT_READY)
		return;
	double idle = cfg()->idle_timeout;
	double last = st->last_in > st->last_out ? st->last_in : st->last_out;
	if (idle > 0 && now - last > idle && o->verifies == NULL) {
		log_info("s2s %s -> %s: idle for %g s: closing", o->local, o->remote, idle);
		out_close(o, -1);
		return;
	}
	const struct limits_config *l = &server_config()->limits;
	if (l->keepalive > 0 && now - st->last_out > l->keepalive && st->out.len == 0)
		stream_write(st, " ", 1);
}

static void out_closed(struct stream *st)
{
	struct s2s_out *o = st->owner;
	if (o == NULL)
		return;
	o->st = NULL;
	if (o->state == OUT_READY && o->nqueue == 0 && o->verifies == NULL) {
		log_info("s2s %s -> %s: connection closed", o->local, o->remote);
		out_free(o);
		return;
	}
	if (o->state == OUT_DIALBACK) {
		out_fail(o, SE_REMOTE_SERVER_TIMEOUT,
		         "the connection closed before the peer answered our dialback key");
	} else if (o->state == OUT_TLS && st->ssl != NULL && !st->tls_done) {
		/* the stream logged the TLS error; this says which peer */
		char why[80];
		snprintf(why, sizeof(why), "TLS handshake failed on stream %llu", (unsigned long long)st->id);
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, why);
	} else {
		out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "the connection closed");
	}
}

static const struct stream_ops out_ops = {
	.stream_start = out_stream_start,
	.stanza = out_stanza,
	.stream_end = out_stream_end,
	.tls_ready = out_tls_ready,
	.error = out_error,
	.tick = out_tick,
	.closed = out_closed,
};

/* The remote route: a stanza for a domain not served here. */
static void s2s_route(void *ctx, struct xml_node *stanza, const struct jid *from, const struct jid *to)
{
	(void)ctx;
	const struct s2s_config *c = cfg();
	if (!c->enabled) {
		stats.bounced++;
		router_bounce(stanza, SE_REMOTE_SERVER_NOT_FOUND, "federation is not enabled here");
		return;
	}
	if (!s2s_config_allowed(c, to->domain)) {
		stats.bounced++;
		router_bounce(stanza, SE_REMOTE_SERVER_NOT_FOUND,
		              "federation with that domain is not allowed");
		return;
	}
	if (from == NULL || from->domain == NULL || !router_is_local(from->domain)) {
		log_info("s2s: a stanza for %s from a domain not served here (%s): dropped", to->domain,
		         from != NULL && from->domain != NULL ? from->domain : "none");
		return;
	}
	struct s2s_out *o = out_find(from->domain, to->domain);
	if (o == NULL) {
		struct backoff *b = backoff_active(from->domain, to->domain);
		if (b != NULL) {
			stats.bounced++;
			router_bounce(stanza, b->error, "the remote server could not be reached lately");
			return;
		}
		o = out_open(from->domain, to->domain);
	}
	if (o->state == OUT_READY && o->st != NULL && (o->st->dead || o->st->closing)) {
		/* Written now it would follow </stream:stream>, never read: say
		 * so instead of losing it (the route goes when the stream does). */
		stats.bounced++;
		router_bounce(stanza, SE_REMOTE_SERVER_TIMEOUT, "the stream to that server is closing");
		return;
	}
	if (o->state == OUT_READY && o->st != NULL) {
		stats.stanzas_out++;
		stream_send(o->st, stanza, NS_CLIENT);
		return;
	}
	if (o->nqueue >= c->max_queue) {
		stats.bounced++;
		router_bounce(stanza, SE_RESOURCE_CONSTRAINT, "too many stanzas wait for that server");
		return;
	}
	o->queue = xrealloc(o->queue, (o->nqueue + 1) * sizeof(*o->queue));
	xml_ref(stanza);
	o->queue[o->nqueue++] = stanza;
}

/* ---- incoming ------------------------------------------------------------------ */

static const struct stream_ops in_ops;

static unsigned in_count_ip(const char *ip)
{
	unsigned n = 0;
	for (struct s2s_in *i = ins; i != NULL; i = i->next)
		if (strcmp(i->ip, ip) == 0)
			n++;
	return n;
}

static void in_fail(struct s2s_in *in, enum stream_error e, const char *text)
{
	if (in->st == NULL || in->st->dead || in->st->closing)
		return;
	if (!in->header_sent) {
		write_header(in->st, in->local != NULL ? in->local : "localhost", NULL, in->id);
		in->header_sent = true;
	}
	log_info("s2s in %llu from %s%s%s: closing with <%s/>%s%s", (unsigned long long)in->st->id, in->ip,
	         in->remote != NULL ? " " : "", in->remote != NULL ? in->remote : "", stream_error_name(e),
	         text != NULL ? ": " : "", text != NULL ? text : "");
	stats.refused++;
	stream_close(in->st, (int)e, text);
}

static bool in_is_authed(const struct s2s_in *in, const char *remote, const char *local)
{
	for (unsigned i = 0; i < in->nauthed; i++)
		if (strcmp(in->authed_remote[i], remote) == 0 &&
		    (local == NULL || strcmp(in->authed_local[i], local) == 0))
			return true;
	return false;
}

static void in_add_authed(struct s2s_in *in, const char *remote, const char *local, const char *how)
{
	if (in_is_authed(in, remote, local) || in->nauthed >= MAX_AUTHED)
		return;
	in->authed_remote[in->nauthed] = xstrdup(remote);
	in->authed_local[in->nauthed] = xstrdup(local);
	in->nauthed++;
	in->auth = how;
	if (in->since == 0)
		in->since = ev_now(loop_);
	stats.in_connections++;
	log_info("s2s in %llu from %s: %s authenticated for %s (%s)", (unsigned long long)in->st->id, in->ip,
	         remote, local, how);
	/* The peer is up: stanzas for it need not bounce at once any more. */
	backoff_clear(NULL, remote);
}

static void in_send_features(struct s2s_in *in)
{
	struct stream *st = in->st;
	const struct s2s_config *c = cfg();
	struct buf b = { 0 };
	buf_append_str(&b, "<stream:features>");
	bool secure = st->tls_done;
	if (!secure && in->lc->starttls != STARTTLS_OFF && tls_available()) {
		buf_append_str(&b, "<starttls xmlns='" NS_TLS "'>");
		if (c->require_tls)
			buf_append_str(&b, "<required/>");
		buf_append_str(&b, "</starttls>");
	}
	if (secure || !c->require_tls) {
		if (!in->external_ok && in->remote != NULL && peer_cert_ok(st->ssl, in->remote, true, NULL))
			buf_append_str(&b, "<mechanisms xmlns='" NS_SASL "'><mechanism>EXTERNAL</mechanism>"
			                   "</mechanisms>");
		if (c->dialback)
			buf_append_str(&b, "<dialback xmlns='" NS_DIALBACK_FEATURE "'><errors/></dialback>");
		if (c->bidi && secure && !in->external_ok)
			buf_append_str(&b, "<bidi xmlns='" NS_BIDI_FEATURE "'/>");
		/* XEP-0138: taken once the peer authenticated (in_compress). */
		if (server_config()->compression.s2s && stream_can_compress(st) && !in->bidi)
			buf_append_str(&b, "<compression xmlns='" NS_COMPRESS_FEATURE
			                   "'><method>zlib</method></compression>");
	}
	buf_append_str(&b, "</stream:features>");
	stream_write(st, b.data, b.len);
	buf_free(&b);
}

static void in_bidi_route(struct s2s_in *in);

static void in_stream_start(struct stream *st, struct xml_node *header, const char *default_ns)
{
	struct s2s_in *in = st->owner;
	const char *to = xml_attr(header, "to");
	const char *from = xml_attr(header, "from");
	const char *version = xml_attr(header, "version");
	bool v1 = version != NULL && atoi(version) >= 1;
	char *local = to != NULL ? jid_nameprep(to) : NULL;
	char *remote = from != NULL ? jid_nameprep(from) : NULL;
	bool ns_ok = strcmp(default_ns, NS_SERVER) == 0;
	xml_unref(&header); /* default_ns and the attributes live in its pool */
	random_id(in->id, 16);
	if (local != NULL && router_is_local(local)) {
		free(in->local);
		in->local = local;
	} else {
		free(local);
		local = NULL;
	}
	if (remote != NULL) {
		free(in->remote);
		in->remote = remote;
	}
	if (!ns_ok) {
		in_fail(in, STE_INVALID_NAMESPACE, "the default namespace must be jabber:server");
		return;
	}
	if (local == NULL) {
		in_fail(in, STE_HOST_UNKNOWN, "this server does not serve that domain");
		return;
	}
	if (in->remote != NULL && !s2s_config_allowed(cfg(), in->remote)) {
		in_fail(in, STE_POLICY_VIOLATION, "federation with your domain is not allowed here");
		return;
	}
	write_header(st, in->local, in->remote, in->id);
	in->header_sent = true;
	if (!v1) {
		in_fail(in, STE_UNSUPPORTED_VERSION, "XMPP 1.0 streams only");
		return;
	}
	in_send_features(in);
	/* The stream restarted after SASL EXTERNAL: with XEP-0288 our
	 * stanzas for the peer may go on it from now on. */
	if (in->external_ok && in->bidi && in->bidi_out == NULL)
		in_bidi_route(in);
}

static struct s2s_in *in_find_id(uint64_t id)
{
	for (struct s2s_in *i = ins; i != NULL; i = i->next)
		if (i->st != NULL && i->st->id == id)
			return i;
	return NULL;
}

/* A verification we asked the authoritative server for came back. */
static void in_verified(uint64_t in_id, const char *local, const char *remote, const char *type)
{
	struct s2s_in *in = in_find_id(in_id);
	if (in == NULL || in->st->dead || in->st->closing)
		return;
	if (in->pending > 0)
		in->pending--;
	if (strcmp(type, "valid") == 0) {
		stats.dialback_valid++;
		in_add_authed(in, remote, local, "dialback");
	} else {
		stats.dialback_invalid++;
		log_info("s2s in %llu from %s: dialback for %s -> %s: %s", (unsigned long long)in->st->id,
		         in->ip, remote, local, type);
	}
	write_db(in->st, "result", local, remote, NULL, type, NULL);
}

static void in_db_result(struct s2s_in *in, struct xml_node *el)
{
	const struct s2s_config *c = cfg();
	if (xml_attr(el, "type") != NULL) {
		/* An answer: we never send <db:result/> on an incoming stream
		 * (XEP-0220 2.2, 3.1), so it is unsolicited; not a request, and
		 * no reason to end the pairs the stream carries. */
		log_info("s2s in %llu from %s: ignoring a <db:result type='%s'/>: no request of ours "
		         "travels on this stream",
		         (unsigned long long)in->st->id, in->ip, xml_attr(el, "type"));
		return;
	}
	char *local = xml_attr(el, "to") != NULL ? jid_nameprep(xml_attr(el, "to")) : NULL;
	char *remote = xml_attr(el, "from") != NULL ? jid_nameprep(xml_attr(el, "from")) : NULL;
	const char *key = xml_text(el);
	if (remote == NULL) {
		in_fail(in, STE_IMPROPER_ADDRESSING, "<db:result/> needs a valid 'from'");
		goto out;
	}
	if (local == NULL) {
		in_fail(in, STE_IMPROPER_ADDRESSING, "<db:result/> needs a valid 'to'");
		goto out;
	}
	if (!router_is_local(local)) {
		/* XEP-0220 2.2.1: a dialback error, which must not close the
		 * stream (it may carry other pairs); from the domain asked for. */
		log_info("s2s in %llu from %s: dialback for %s -> %s: not a domain served here",
		         (unsigned long long)in->st->id, in->ip, remote, local);
		write_db_error(in->st, "result", local, remote, NULL, SE_ITEM_NOT_FOUND);
		goto out;
	}
	if (!c->dialback) {
		in_fail(in, STE_POLICY_VIOLATION, "dialback is not accepted here");
		goto out;
	}
	if (!s2s_config_allowed(c, remote)) {
		write_db(in->st, "result", local, remote, NULL, "invalid", NULL);
		goto out;
	}
	bool cert_ok = peer_cert_ok(in->st->ssl, remote, true, NULL);
	if (cert_ok) {
		/* The certificate already proves the domain (XEP-0344). */
		stats.dialback_valid++;
		in_add_authed(in, remote, local, "dialback+certificate");
		write_db(in->st, "result", local, remote, NULL, "valid", NULL);
		goto out;
	}
	if (c->require_valid_certificate && in->nauthed > 0) {
		/* A further pair on a working stream (multiplexing): refuse
		 * that pair only; the peer may open a stream of its own. */
		log_info("s2s in %llu from %s: dialback for %s -> %s refused: a valid certificate is "
		         "required here",
		         (unsigned long long)in->st->id, in->ip, remote, local);
		write_db(in->st, "result", local, remote, NULL, "error", NULL);
		goto out;
	}
	if (c->require_valid_certificate) {
		in_fail(in, STE_NOT_AUTHORIZED, "a valid certificate is required here");
		goto out;
	}
	if (in->pending >= c->max_pending_dialback) {
		in_fail(in, STE_POLICY_VIOLATION, "too many dialback requests in flight");
		goto out;
	}
	if (key == NULL || *key == '\0' || strlen(key) > 1024) {
		in_fail(in, STE_NOT_AUTHORIZED, "<db:result/> needs a key");
		goto out;
	}
	/* Ask the authoritative server over our stream to it.  A back-off
	 * from remote does not hold this connection up: it is about our
	 * own attempts, and the peer, connecting to us, is evidently up. */
	struct s2s_out *o = out_find(local, remote);
	if (o == NULL)
		o = out_open(local, remote);
	struct verify_req *v = xcalloc(1, sizeof(*v));
	v->in_id = in->st->id;
	v->stream_id = xstrdup(in->id);
	v->key = xstrdup(key);
	v->next = o->verifies;
	o->verifies = v;
	in->pending++;
	if (o->st != NULL && o->state >= OUT_SASL && o->state != OUT_COMPRESS)
		out_send_verifies(o);
out:
	free(local);
	free(remote);
}

/* A <db:verify/> on an incoming stream: a request of the authoritative
 * role, or, when this stream carries our bidirectional route (XEP-0288),
 * the answer to a request we sent on it. */
static void in_db_verify(struct s2s_in *in, struct xml_node *el)
{
	if (xml_attr(el, "type") != NULL && in->bidi_out != NULL) {
		out_verify_answer(in->bidi_out, el);
		return;
	}
	if (xml_attr(el, "type") != NULL) {
		/* An answer to nothing asked here (XEP-0220 2.2, 3.1): never
		 * answered back, nor does it end the stream. */
		log_info("s2s in %llu from %s: ignoring a <db:verify type='%s'/>: no request of ours "
		         "travels on this stream",
		         (unsigned long long)in->st->id, in->ip, xml_attr(el, "type"));
		return;
	}
	const char *why = NULL;
	if (db_verify_answer(in->st, el, &why) < 0)
		in_fail(in, STE_IMPROPER_ADDRESSING, why);
}

/* XEP-0288 on a stream authenticated by certificate: our stanzas for the
 * peer's domain go back on it, unless a stream of ours already works. */
static void in_bidi_route(struct s2s_in *in)
{
	struct s2s_out *o = out_find(in->local, in->remote);
	if (o != NULL && (o->state == OUT_READY || o->verifies != NULL))
		return; /* ours works, or carries dialback verifications */
	if (o == NULL)
		o = out_new(in->local, in->remote);
	/* An opening one stops opening: this stream carries what it queued. */
	ev_timer_stop(loop_, &o->timer);
	ev_timer_stop(loop_, &o->kick);
	out_attempts_stop(o);
	resolve_cancel(&o->res);
	if (o->carrier != NULL) {
		out_unride(o);
	} else if (o->st != NULL) {
		o->st->owner = NULL;
		stream_close(o->st, -1, NULL);
	}
	o->st = in->st;
	o->via = in;
	in->bidi_out = o;
	out_ready(o, "external-bidi");
}

/* XEP-0138 <compress/>: once the peer authenticated a pair on this
 * stream (after TLS when it is required, as everything), and not on a
 * bidirectional one, whose own stanzas may already travel on it, nor
 * while a dialback verification is in flight: its answer would write a
 * <db:result/> between <compressed/> and our restarted header. */
static void in_compress(struct s2s_in *in, struct xml_node *el)
{
	bool allowed = server_config()->compression.s2s && in->nauthed > 0 && !in->bidi && in->pending == 0;
	const char *failure = NULL;
	if (stream_answer_compress(in->st, el, allowed, &failure) < 0) {
		log_info("s2s in %llu from %s: compression refused: %s", (unsigned long long)in->st->id,
		         in->ip, failure);
		return;
	}
	log_debug("s2s in %llu from %s: zlib compression started", (unsigned long long)in->st->id, in->ip);
	in->header_sent = false;
}

static void in_sasl(struct s2s_in *in, struct xml_node *el)
{
	const char *mech = xml_attr(el, "mechanism");
	const char *why = "no certificate";
	bool ok = mech != NULL && strcmp(mech, "EXTERNAL") == 0 && in->remote != NULL && in->local != NULL &&
	          peer_cert_ok(in->st->ssl, in->remote, true, &why);
	if (ok) {
		/* The authorization identity, when given, is the peer's domain. */
		const char *data = xml_text(el);
		if (data[0] != '\0' && strcmp(data, "=") != 0) {
			unsigned char *dec = NULL;
			size_t len = 0;
			ok = base64_decode(data, strlen(data), &dec, &len) == 0 &&
			     len == strlen(in->remote) &&
			     strncasecmp((const char *)dec, in->remote, len) == 0;
			free(dec);
			why = "the authorization identity is not the stream's 'from'";
		}
	}
	if (!ok) {
		log_info("s2s in %llu from %s: SASL EXTERNAL for %s refused: %s",
		         (unsigned long long)in->st->id, in->ip, in->remote != NULL ? in->remote : "?", why);
		stream_write_str(in->st, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
		return;
	}
	stats.external++;
	in->external_ok = true;
	in_add_authed(in, in->remote, in->local, "external");
	/* With XEP-0288, our stanzas take this stream once it has restarted
	 * (in_stream_start), not before <success/> and the new header. */
	stream_write_str(in->st, "<success xmlns='" NS_SASL "'/>");
	in->header_sent = false;
	stream_restart(in->st);
}

/* A stanza a peer sent, on an incoming stream or on a bidirectional
 * outgoing one (XEP-0288): its 'from' domain must have authenticated on
 * that stream (authed), and for its 'to' domain: dialback and SASL
 * EXTERNAL validate a pair (remote, local), so a stream authenticated for
 * (R, A) carries stanzas from R to A, and to another local domain B only
 * once (R, B) was validated on it too (XEP-0220 multiplexing: a further
 * <db:result/> on the same stream).  Returns -1 when it was routed (or
 * answered with an error), else the stream error to close the stream
 * with, *why_r saying why.
 *
 * The conditions, from RFC 6120 section 4.9.3: <invalid-from/> (4.9.3.9)
 * is for a 'from' that does not match a domain validated by SASL or
 * dialback; <improper-addressing/> (4.9.3.7) for a stanza between servers
 * without 'to' or 'from', or with an empty or malformed one; the 'to' of
 * a well-formed stanza naming a domain this stream does not serve, be it
 * served by another server or by this one for another validated pair,
 * is <host-unknown/> (4.9.3.6: the 'to' does not correspond to a domain
 * serviced by the receiving entity -- for this stream, whose service is
 * the validated pairs).  Closing the stream rather than bouncing the one
 * stanza keeps a peer that addresses unvalidated domains from probing
 * local users through a stream it was not granted. */
static int peer_route(struct xml_node *el, peer_authed_fn *authed, void *ctx, const char **why_r)
{
	const char *from_s = xml_attr(el, "from"), *to_s = xml_attr(el, "to");
	if (from_s == NULL || to_s == NULL) {
		*why_r = "a stanza between servers needs 'from' and 'to'";
		return STE_IMPROPER_ADDRESSING;
	}
	struct jid from = { 0 }, to = { 0 };
	const char *err;
	int ret = -1;
	if (jid_parse(from_s, &from, &err) != 0 || !authed(ctx, from.domain, NULL)) {
		*why_r = "'from' is not a domain this stream authenticated";
		ret = STE_INVALID_FROM;
	} else if (!s2s_config_allowed(cfg(), from.domain)) {
		/* A reload denied a domain that authenticated before. */
		*why_r = "federation with your domain is not allowed here";
		ret = STE_POLICY_VIOLATION;
	} else if (jid_parse(to_s, &to, &err) != 0) {
		router_bounce(el, SE_JID_MALFORMED, err);
	} else if (!router_is_local(to.domain)) {
		*why_r = "'to' is not a domain served here";
		ret = STE_HOST_UNKNOWN;
	} else if (!authed(ctx, from.domain, to.domain)) {
		*why_r = "'to' is not a domain this stream was authenticated for";
		ret = STE_HOST_UNKNOWN;
	} else {
		stats.stanzas_in++;
		to_client_ns(el);
		router_route(el, &from, &to);
	}
	jid_clear(&from);
	jid_clear(&to);
	return ret;
}

static bool in_authed(void *ctx, const char *from, const char *to)
{
	return in_is_authed(ctx, from, to);
}

static void in_route(struct s2s_in *in, struct xml_node *el)
{
	if (in->nauthed == 0) {
		in_fail(in, STE_NOT_AUTHORIZED, "stanzas before authentication");
		return;
	}
	const char *why = NULL;
	int e = peer_route(el, in_authed, in, &why);
	if (e >= 0)
		in_fail(in, (enum stream_error)e, why);
}

static bool in_stanza(struct stream *st, struct xml_node *el)
{
	struct s2s_in *in = st->owner;
	const struct s2s_config *c = cfg();
	if (in == NULL || !in->header_sent) {
		if (in != NULL)
			in_fail(in, STE_NOT_WELL_FORMED, "stanza before the stream header");
		xml_unref(&el);
		return true;
	}
	if (xml_is(el, "error", NS_STREAM)) {
		struct xml_node *cond = xml_first_element(el);
		log_info("s2s in %llu from %s%s%s: stream error <%s/> from the peer",
		         (unsigned long long)st->id, in->ip, in->remote != NULL ? " " : "",
		         in->remote != NULL ? in->remote : "", cond != NULL ? cond->name : "?");
		stream_close(st, -1, NULL);
	} else if (xml_is(el, "starttls", NS_TLS)) {
		if (st->ssl != NULL || in->lc->starttls == STARTTLS_OFF || !tls_available()) {
			stream_write_str(st, "<failure xmlns='" NS_TLS "'/>");
			stream_close(st, -1, NULL);
		} else {
			stream_write_str(st, "<proceed xmlns='" NS_TLS "'/>");
			in->header_sent = false;
			st->request_peer_cert = true;
			stream_start_tls(st);
		}
	} else if (c->require_tls && st->ssl == NULL) {
		in_fail(in, STE_POLICY_VIOLATION, "STARTTLS is required on this server");
	} else if (xml_is(el, "result", NS_DIALBACK)) {
		in_db_result(in, el);
	} else if (xml_is(el, "verify", NS_DIALBACK)) {
		in_db_verify(in, el);
	} else if (xml_is(el, "auth", NS_SASL)) {
		in_sasl(in, el);
	} else if (xml_is(el, "compress", NS_COMPRESS)) {
		in_compress(in, el);
	} else if (xml_is(el, "bidi", NS_BIDI)) {
		in->bidi = c->bidi && st->ssl != NULL;
	} else if (stanza_kind(el) != STANZA_OTHER && strcmp(el->ns, NS_SERVER) == 0) {
		in_route(in, el);
	} else {
		in_fail(in, STE_UNSUPPORTED_STANZA_TYPE, NULL);
	}
	xml_unref(&el);
	return false;
}

static void in_stream_end(struct stream *st)
{
	struct s2s_in *in = st->owner;
	if (in != NULL && !in->header_sent) {
		write_header(st, in->local != NULL ? in->local : "localhost", NULL, in->id);
		in->header_sent = true;
	}
	stream_close(st, -1, NULL);
}

static void in_error(struct stream *st, enum stream_error e, const char *text)
{
	struct s2s_in *in = st->owner;
	if (in != NULL)
		in_fail(in, e, text);
	else
		stream_close(st, (int)e, text);
}

static void in_tls_ready(struct stream *st)
{
}

static void in_tick(struct stream *st, double now)
{
	struct s2s_in *in = st->owner;
	if (in == NULL)
		return;
	const struct limits_config *l = &server_config()->limits;
	if (in->nauthed == 0 && l->handshake_timeout > 0 && now - in->opened > l->handshake_timeout) {
		in_fail(in, STE_CONNECTION_TIMEOUT, "authentication took too long");
		return;
	}
	double idle = cfg()->idle_timeout;
	double last = in->bidi_out != NULL && st->last_out > st->last_in ? st->last_out : st->last_in;
	if (idle > 0 && now - last > idle && in->pending == 0) {
		in_fail(in, STE_CONNECTION_TIMEOUT, "idle for too long");
		return;
	}
}

static void in_free(struct s2s_in *in)
{
	for (struct s2s_in **pp = &ins; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	if (in->bidi_out != NULL) {
		struct s2s_out *o = in->bidi_out;
		o->via = NULL;
		o->st = NULL;
		in->bidi_out = NULL;
		log_info("s2s %s -> %s: the bidirectional stream closed", o->local, o->remote);
		out_free(o);
	}
	for (unsigned i = 0; i < in->nauthed; i++) {
		free(in->authed_remote[i]);
		free(in->authed_local[i]);
	}
	free(in->local);
	free(in->remote);
	free(in);
}

static void in_closed(struct stream *st)
{
	struct s2s_in *in = st->owner;
	if (in == NULL)
		return;
	if (in->nauthed > 0)
		log_info("s2s in %llu from %s: %s: stream closed", (unsigned long long)st->id, in->ip,
		         in->authed_remote[0]);
	in_free(in);
}

static const struct stream_ops in_ops = {
	.stream_start = in_stream_start,
	.stanza = in_stanza,
	.stream_end = in_stream_end,
	.tls_ready = in_tls_ready,
	.error = in_error,
	.tick = in_tick,
	.closed = in_closed,
};

void s2s_accept(struct ev_loop *loop, int fd, const char *ip, unsigned port, const struct listen_config *lc,
                const struct limits_config *limits)
{
	const struct s2s_config *c = cfg();
	if (c->max_connections_per_ip > 0 && in_count_ip(ip) >= c->max_connections_per_ip) {
		log_notice("s2s: refusing a connection from %s: already %u s2s connections from that address "
		           "(s2s.max_connections_per_ip)",
		           ip, c->max_connections_per_ip);
		stats.refused++;
		close(fd);
		return;
	}
	struct s2s_in *in = xcalloc(1, sizeof(*in));
	in->lc = lc;
	in->opened = ev_now(loop);
	snprintf(in->ip, sizeof(in->ip), "%s", ip);
	random_id(in->id, 16);
	struct xml_parser_limits pl = {
		.max_stanza = limits->max_stanza_size,
		.max_depth = limits->max_depth,
		.max_attrs = limits->max_attrs,
	};
	in->next = ins;
	ins = in;
	in->st = stream_new(loop, fd, ip, port, &pl, limits->max_output, lc->direct_tls, &in_ops, in);
	stream_set_rate(in->st, server_config()->shaper.s2s);
	in->st->request_peer_cert = true;
	if (in->st->ssl != NULL)
		tls_request_peer_certificate(in->st->ssl);
	log_debug("s2s in %llu: connection from %s port %u", (unsigned long long)in->st->id, ip, port);
}

/* ---- administration ------------------------------------------------------------ */

void s2s_counts(unsigned *out_r, unsigned *opening_r, unsigned *in_r)
{
	unsigned o = 0, op = 0, i = 0;
	for (struct s2s_out *x = outs; x != NULL; x = x->next)
		if (x->carrier == NULL) /* a rider shares its carrier's stream */
			x->state == OUT_READY ? o++ : op++;
	for (struct s2s_in *x = ins; x != NULL; x = x->next)
		i++;
	*out_r = o;
	*opening_r = op;
	*in_r = i;
}

static void fmt_since(struct buf *out, double t)
{
	char stamp[XEP82_STAMP_LEN];
	time_t secs = (time_t)(ev_time() - ev_now(loop_) + t);
	xep82_stamp(stamp, (int64_t)secs);
	buf_append_str(out, stamp);
}

void s2s_list(struct buf *out)
{
	for (struct s2s_out *o = outs; o != NULL; o = o->next) {
		buf_printf(out, "out\t%s\t%s\t%s%s\t%s\t", o->remote, o->local,
		           o->st != NULL && o->st->ssl != NULL && o->st->tls_done
		                   ? SSL_get_version(o->st->ssl)
		                   : "no-tls",
		           o->st != NULL && o->st->z != NULL ? "+zlib" : "",
		           o->state == OUT_READY ? o->auth : out_state_names[o->state]);
		fmt_since(out, o->since);
		buf_printf(out, "\t%zu\t", o->nqueue);
		if (o->st != NULL)
			buf_printf(out, "%llu\n", (unsigned long long)o->st->id);
		else
			buf_append_str(out, "-\n");
	}
	for (struct s2s_in *in = ins; in != NULL; in = in->next) {
		char tls[48];
		snprintf(tls, sizeof(tls), "%s%s",
		         in->st != NULL && in->st->ssl != NULL && in->st->tls_done
		                 ? SSL_get_version(in->st->ssl)
		                 : "no-tls",
		         in->st != NULL && in->st->z != NULL ? "+zlib" : "");
		if (in->nauthed == 0) {
			buf_printf(out, "in\t%s\t%s\t%s\t%s\t", in->remote != NULL ? in->remote : "?",
			           in->local != NULL ? in->local : "?", tls, "opening");
			fmt_since(out, in->opened);
			buf_printf(out, "\t0\t%llu\n", (unsigned long long)in->st->id);
			continue;
		}
		for (unsigned i = 0; i < in->nauthed; i++) {
			buf_printf(out, "in\t%s\t%s\t%s\t%s\t", in->authed_remote[i], in->authed_local[i],
			           tls, in->auth);
			fmt_since(out, in->since);
			buf_printf(out, "\t0\t%llu\n", (unsigned long long)in->st->id);
		}
	}
	/* Domains backed off: the condition their stanzas bounce with, until
	 * when, and the seconds left. */
	for (struct backoff *b = backoffs; b != NULL; b = b->next) {
		double now = ev_now(loop_);
		if (b->until <= now)
			continue;
		buf_printf(out, "backoff\t%s\t%s\t-\t%s\t", b->domain, b->local != NULL ? b->local : "-",
		           stanza_error_name(b->error));
		fmt_since(out, b->until);
		buf_printf(out, "\t%.0f\t-\n", b->until - now + 0.5);
	}
}

unsigned s2s_close_domain(const char *domain)
{
	unsigned n = 0;
	/* Riders first (they share their carriers' streams and are not
	 * counted as streams): freeing a carrier then frees no other route
	 * under the loop. */
	for (int riders = 1; riders >= 0; riders--) {
		for (struct s2s_out *o = outs, *next; o != NULL; o = next) {
			next = o->next;
			if (strcasecmp(o->remote, domain) != 0 || (o->carrier != NULL) != riders)
				continue;
			n += !riders;
			if (o->state != OUT_READY || o->nqueue > 0) {
				/* not the peer's failure: the next stanza opens anew */
				out_end(o, SE_REMOTE_SERVER_NOT_FOUND, "closed by the administrator", false);
				continue;
			}
			log_info("s2s %s -> %s: closed by the administrator", o->local, o->remote);
			out_close(o, -1);
		}
	}
	for (struct s2s_in *in = ins; in != NULL; in = in->next) {
		bool match = in->remote != NULL && strcasecmp(in->remote, domain) == 0;
		for (unsigned i = 0; !match && i < in->nauthed; i++)
			match = strcasecmp(in->authed_remote[i], domain) == 0;
		if (!match || in->st->closing || in->st->dead)
			continue;
		n++;
		log_info("s2s in %llu from %s: closed by the administrator", (unsigned long long)in->st->id,
		         in->ip);
		stream_close(in->st, -1, NULL);
	}
	return n;
}

void s2s_reload(struct buf *report)
{
	if (!started)
		return;
	const struct s2s_config *c = cfg();
	unsigned closed = 0;
	char *err = NULL;
	if (resolve_set_servers(&c->dns_servers, &err) < 0) {
		log_warning("s2s: %s; the DNS servers stay as they were", err);
		buf_printf(report, "s2s: %s; the DNS servers stay as they were\n", err);
		free(err);
	}
	resolve_set_dane(c->dane);
	for (int riders = 1; riders >= 0; riders--) {
		for (struct s2s_out *o = outs, *next; o != NULL; o = next) {
			next = o->next;
			if (s2s_config_allowed(c, o->remote) || (o->carrier != NULL) != riders)
				continue;
			closed += !riders;
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND,
			         "federation with that domain is no longer allowed");
		}
	}
	for (struct s2s_in *in = ins; in != NULL; in = in->next) {
		bool denied = in->remote != NULL && !s2s_config_allowed(c, in->remote);
		for (unsigned i = 0; !denied && i < in->nauthed; i++)
			denied = !s2s_config_allowed(c, in->authed_remote[i]);
		if (!denied || in->st->closing || in->st->dead)
			continue;
		closed++;
		in_fail(in, STE_POLICY_VIOLATION, "federation with your domain is not allowed here");
	}
	buf_printf(report, "s2s: applied to new connections%s", closed > 0 ? "; " : "\n");
	if (closed > 0)
		buf_printf(report, "%u streams with domains now denied closed\n", closed);
}

/* ---- start and stop ------------------------------------------------------------ */

int s2s_start(struct ev_loop *loop, char **error_r)
{
	const struct parley_config *pc = server_config();
	bool listener = false;
	for (size_t i = 0; i < pc->nlisten; i++)
		listener |= pc->listen[i].module == LISTEN_S2S;
	loop_ = loop;
	if (!pc->s2s.enabled && !listener)
		return 0; /* the router bounces remote domains itself */
	if (load_secret(pc->s2s.dialback_secret_file, error_r) < 0)
		return -1;
	if (tls_s2s_init(pc->s2s.ca_file, error_r) < 0)
		return -1;
	if (resolve_init(loop, error_r) < 0 || resolve_set_servers(&pc->s2s.dns_servers, error_r) < 0)
		return -1;
	resolve_set_dane(pc->s2s.dane);
	listener_register(LISTEN_S2S, s2s_accept);
	router_set_remote(s2s_route, NULL);
	started = true;
	log_info("s2s: federation %s; STARTTLS %s, dialback %s, certificates %s",
	         pc->s2s.enabled ? "enabled" : "incoming only", pc->s2s.require_tls ? "required" : "optional",
	         pc->s2s.dialback ? "allowed" : "off",
	         pc->s2s.require_valid_certificate ? "must verify" : "checked when presented");
	return 0;
}

void s2s_shutdown_all(void)
{
	for (struct s2s_out *o = outs, *next; o != NULL; o = next) {
		next = o->next;
		if (o->carrier == NULL)
			continue;
		if (o->state != OUT_READY || o->nqueue > 0)
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "the server is stopping");
		else
			out_close(o, -1);
	}
	while (outs != NULL) {
		struct s2s_out *o = outs;
		if (o->state != OUT_READY || o->nqueue > 0 || o->verifies != NULL) {
			out_fail(o, SE_REMOTE_SERVER_NOT_FOUND, "the server is stopping");
			continue;
		}
		out_close(o, STE_SYSTEM_SHUTDOWN);
	}
	for (struct s2s_in *in = ins; in != NULL; in = in->next)
		in_fail(in, STE_SYSTEM_SHUTDOWN, NULL);
}

void s2s_stop(void)
{
	if (!started)
		return;
	s2s_shutdown_all();
	while (backoffs != NULL) {
		struct backoff *b = backoffs;
		backoffs = b->next;
		backoff_free(b);
	}
	resolve_shutdown();
	tls_s2s_shutdown();
	router_set_remote(NULL, NULL);
	explicit_bzero(secret_hash, sizeof(secret_hash));
	started = false;
}
